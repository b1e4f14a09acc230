//! Grype JSON reports (`grype -o json`).
//!
//! Each match is one vulnerability in one artifact; matched artifacts are
//! also listed as components, once each. The subject is `source.target`:
//! a path for directory scans, or an image with its user input, image ID,
//! manifest digest, repo digests and tags.

use serde::{Deserialize, Deserializer};
use sluice_protocol::digest::Digest;

use super::json::{self, Items, StringOr};
use super::{
    Component, Evidence, FileKind, FixState, Limits, Severity, SubjectRef, SubjectRole,
    Vulnerability,
};

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, super::EvidenceError> {
    let report: Report = json::from_slice(FileKind::Grype, bytes, limits)?;
    let mut evidence = Evidence::new(FileKind::Grype);
    evidence.subjects = subjects(&report.source.target);
    for m in &report.matches {
        evidence.vulnerabilities.push(vulnerability(m));
        let component = component(&m.artifact);
        if !evidence.components.contains(&component) {
            evidence.components.push(component);
        }
    }
    Ok(evidence)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Report {
    matches: Items<Match>,
    source: Source,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Match {
    vulnerability: GrypeVulnerability,
    artifact: Artifact,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GrypeVulnerability {
    id: String,
    severity: String,
    fix: Fix,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Fix {
    versions: Items<String>,
    state: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Artifact {
    name: String,
    version: Option<String>,
    purl: Option<String>,
    licenses: Items<Licence>,
}

/// Grype has written artifact licences both as plain strings and as
/// objects; either is read.
#[derive(Debug, Default)]
struct Licence(Option<String>);

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LicenceObject {
    value: Option<String>,
    spdx_expression: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Source {
    #[serde(deserialize_with = "json::string_or")]
    target: StringOr<ImageTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ImageTarget {
    user_input: Option<String>,
    #[serde(rename = "imageID")]
    image_id: Option<String>,
    manifest_digest: Option<String>,
    repo_digests: Items<String>,
    tags: Items<String>,
}

impl<'de> Deserialize<'de> for Licence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = match json::string_or::<D, LicenceObject>(deserializer)? {
            StringOr::String(text) => Some(text),
            StringOr::Value(object) => object.spdx_expression.or(object.value),
            StringOr::Absent => None,
        };
        Ok(Self(text.filter(|t| !t.is_empty())))
    }
}

fn subjects(target: &StringOr<ImageTarget>) -> Vec<SubjectRef> {
    let image = match target {
        StringOr::String(path) => {
            return vec![SubjectRef::new(
                SubjectRole::Artifact,
                Some(path.clone()),
                None,
            )];
        }
        StringOr::Value(image) => image,
        StringOr::Absent => return Vec::new(),
    };
    let mut subjects = Vec::new();
    for name in image.user_input.iter().chain(image.tags.iter()) {
        subjects.push(SubjectRef::new(
            SubjectRole::Artifact,
            Some(name.clone()),
            None,
        ));
    }
    let digest = |text: &Option<String>| text.as_deref().and_then(|t| Digest::parse(t).ok());
    if image.image_id.is_some() {
        subjects.push(SubjectRef::new(
            SubjectRole::ImageConfig,
            None,
            digest(&image.image_id),
        ));
    }
    if image.manifest_digest.is_some() {
        let manifest = digest(&image.manifest_digest);
        subjects.push(SubjectRef::new(SubjectRole::ImageManifest, None, manifest));
    }
    for repo_digest in &image.repo_digests {
        let (name, digest) = super::split_repo_digest(repo_digest);
        subjects.push(SubjectRef::new(SubjectRole::ImageManifest, name, digest));
    }
    subjects
}

fn vulnerability(m: &Match) -> Vulnerability {
    let v = &m.vulnerability;
    Vulnerability {
        id: v.id.clone(),
        package: Some(m.artifact.name.clone()),
        installed_version: m.artifact.version.clone(),
        purl: m.artifact.purl.clone().filter(|p| !p.is_empty()),
        severity: Severity::from_word(&v.severity),
        fix: fix_state(&v.fix),
    }
}

fn component(artifact: &Artifact) -> Component {
    Component {
        name: artifact.name.clone(),
        version: artifact.version.clone(),
        purl: artifact.purl.clone().filter(|p| !p.is_empty()),
        licences: artifact
            .licenses
            .iter()
            .filter_map(|l| l.0.clone())
            .collect(),
    }
}

/// Grype's fix states (`fixed`, `not-fixed`, `wont-fix`, `unknown`). Several
/// fixed versions (one per release line) are listed together.
fn fix_state(fix: &Fix) -> FixState {
    match fix.state.as_str() {
        "fixed" => {
            let versions: Vec<&str> = fix.versions.iter().map(String::as_str).collect();
            let version = Some(versions.join(", ")).filter(|v| !v.is_empty());
            FixState::Fixed { version }
        }
        "not-fixed" => FixState::NotFixed,
        "wont-fix" => FixState::WontFix,
        _ => FixState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};

    fn digest(text: &str) -> Option<Digest> {
        Some(Digest::parse(text).unwrap())
    }

    #[test]
    fn fixture_vulnerabilities() {
        let Some(root) = fixture_root() else { return };
        for rel in ["grype/grype-image.json", "grype/grype-dir.json"] {
            let evidence = parse_fixture(&root, rel, FileKind::Grype);
            let expected = [(Severity::Low, 1), (Severity::Critical, 1)];
            assert_eq!(
                evidence.severity_counts(),
                expected.into_iter().collect(),
                "{rel}"
            );

            let first = &evidence.vulnerabilities[0];
            assert_eq!(first.id, "CVE-1999-0001");
            assert_eq!(first.package.as_deref(), Some("package-1"));
            assert_eq!(first.installed_version.as_deref(), Some("1.1.1"));
            let version = Some("1.2.1, 2.1.3, 3.4.0".to_owned());
            assert_eq!(first.fix, FixState::Fixed { version });
            let second = &evidence.vulnerabilities[1];
            assert_eq!(second.fix, FixState::Unknown);
            assert_eq!(second.purl.as_deref(), Some("pkg:deb/package-2@2.2.2"));
        }
    }

    #[test]
    fn fixture_components() {
        let Some(root) = fixture_root() else { return };
        let evidence = parse_fixture(&root, "grype/grype-image.json", FileKind::Grype);
        let names: Vec<_> = evidence
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["package-1", "package-2"]);
        assert_eq!(evidence.components[1].licences, ["Apache-2.0", "MIT"]);
        assert_eq!(evidence.components[0].purl, None, "empty purl is absent");
    }

    #[test]
    fn fixture_subjects() {
        let Some(root) = fixture_root() else { return };
        let image = parse_fixture(&root, "grype/grype-image.json", FileKind::Grype);
        let config = "sha256:ab5608d634db2716a297adbfa6a5dd5d8f8f5a7d0cab73649ea7fbb8c8da544f";
        let manifest = "sha256:ca738abb87a8d58f112d3400ebb079b61ceae7dc290beb34bda735be4b1941d5";
        assert_eq!(
            image.subjects,
            [
                SubjectRef::new(SubjectRole::Artifact, Some("user-input".into()), None),
                SubjectRef::new(SubjectRole::ImageConfig, None, digest(config)),
                SubjectRef::new(SubjectRole::ImageManifest, None, digest(manifest)),
            ]
        );
        let dir = parse_fixture(&root, "grype/grype-dir.json", FileKind::Grype);
        assert_eq!(
            dir.subjects,
            [SubjectRef::new(
                SubjectRole::Artifact,
                Some("/some/path".into()),
                None
            )]
        );
    }

    #[test]
    fn licence_objects_and_repo_digests() {
        let hex = "c".repeat(64);
        let doc = format!(
            r#"{{"matches":[{{"vulnerability":{{"id":"GHSA-x","severity":"High","fix":{{"state":"wont-fix"}}}},
                "artifact":{{"name":"a","licenses":[{{"value":"MIT","spdxExpression":"MIT"}}]}}}}],
                "source":{{"type":"image","target":{{"repoDigests":["r/a@sha256:{hex}"]}}}}}}"#
        );
        let evidence =
            super::super::parse(FileKind::Grype, doc.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(evidence.vulnerabilities[0].fix, FixState::WontFix);
        assert_eq!(evidence.components[0].licences, ["MIT"]);
        assert_eq!(evidence.subjects[0].name.as_deref(), Some("r/a"));
        assert_eq!(evidence.subjects[0].role, SubjectRole::ImageManifest);
    }
}
