//! Trivy JSON reports (`trivy image --format json`, schema version 2).
//!
//! The subjects are the scanned artifact's name and tags, its image ID
//! (config digest), repo digests and layer diff IDs. Vulnerabilities come
//! from every result; installed packages (`--list-all-pkgs`) become
//! components; failed misconfiguration checks become findings.

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::json::{self, Items};
use super::{
    Component, Evidence, FileKind, Finding, FixState, Limits, Severity, SubjectRef, SubjectRole,
    Vulnerability,
};

/// The report schema this reader was written against.
const SCHEMA_VERSION: u64 = 2;

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, super::EvidenceError> {
    let report: Report = json::from_slice(FileKind::Trivy, bytes, limits)?;
    let mut evidence = Evidence::new(FileKind::Trivy);
    if report.schema_version != Some(SCHEMA_VERSION) {
        let found = report
            .schema_version
            .map_or("none".into(), |v| v.to_string());
        let note = format!("Trivy SchemaVersion is {found}, not {SCHEMA_VERSION}; read as if 2");
        evidence.notes.push(note);
    }
    evidence.subjects = subjects(&report);
    for result in &report.results {
        read_result(result, &mut evidence);
    }
    Ok(evidence)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Report {
    schema_version: Option<u64>,
    artifact_name: Option<String>,
    metadata: Metadata,
    results: Items<TrivyResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Metadata {
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    repo_tags: Items<String>,
    repo_digests: Items<String>,
    #[serde(rename = "DiffIDs")]
    diff_ids: Items<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct TrivyResult {
    target: String,
    vulnerabilities: Items<TrivyVulnerability>,
    packages: Items<Package>,
    misconfigurations: Items<Misconfiguration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct TrivyVulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: Option<String>,
    installed_version: Option<String>,
    fixed_version: Option<String>,
    severity: String,
    status: Option<String>,
    pkg_identifier: PkgIdentifier,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PkgIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Package {
    name: String,
    version: Option<String>,
    identifier: PkgIdentifier,
    licenses: Items<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Misconfiguration {
    #[serde(rename = "ID")]
    id: String,
    severity: String,
    status: String,
}

fn subjects(report: &Report) -> Vec<SubjectRef> {
    let mut subjects = Vec::new();
    if let Some(name) = &report.artifact_name {
        let digest = Digest::parse(name).ok();
        subjects.push(SubjectRef::new(
            SubjectRole::Artifact,
            Some(name.clone()),
            digest,
        ));
    }
    let meta = &report.metadata;
    for tag in &meta.repo_tags {
        subjects.push(SubjectRef::new(
            SubjectRole::Artifact,
            Some(tag.clone()),
            None,
        ));
    }
    if let Some(id) = &meta.image_id {
        subjects.push(SubjectRef::new(
            SubjectRole::ImageConfig,
            None,
            Digest::parse(id).ok(),
        ));
    }
    for repo_digest in &meta.repo_digests {
        let (name, digest) = super::split_repo_digest(repo_digest);
        subjects.push(SubjectRef::new(SubjectRole::ImageManifest, name, digest));
    }
    for diff_id in &meta.diff_ids {
        subjects.push(SubjectRef::new(
            SubjectRole::Layer,
            None,
            Digest::parse(diff_id).ok(),
        ));
    }
    subjects
}

fn read_result(result: &TrivyResult, evidence: &mut Evidence) {
    evidence
        .vulnerabilities
        .extend(result.vulnerabilities.iter().map(vulnerability));
    evidence
        .components
        .extend(result.packages.iter().map(|p| Component {
            name: p.name.clone(),
            version: p.version.clone(),
            purl: p.identifier.purl.clone(),
            licences: p.licenses.0.clone(),
        }));
    let failed = result
        .misconfigurations
        .iter()
        .filter(|m| m.status == "FAIL");
    evidence.findings.extend(failed.map(|m| Finding {
        rule_id: m.id.clone(),
        severity: Severity::from_word(&m.severity),
        location: Some(result.target.clone()).filter(|t| !t.is_empty()),
    }));
}

fn vulnerability(v: &TrivyVulnerability) -> Vulnerability {
    Vulnerability {
        id: v.id.clone(),
        package: v.pkg_name.clone(),
        installed_version: v.installed_version.clone(),
        purl: v.pkg_identifier.purl.clone(),
        severity: Severity::from_word(&v.severity),
        fix: fix_state(v.status.as_deref(), v.fixed_version.as_deref()),
    }
}

/// Trivy's `Status` (its vulnerability-status names) to fix state. Older
/// reports have no status; a fixed version then means fixed.
fn fix_state(status: Option<&str>, fixed_version: Option<&str>) -> FixState {
    let version = fixed_version.filter(|v| !v.is_empty()).map(str::to_owned);
    match status {
        Some("fixed") => FixState::Fixed { version },
        Some("affected" | "fix_deferred" | "under_investigation") => FixState::NotFixed,
        Some("will_not_fix" | "end_of_life") => FixState::WontFix,
        Some("not_affected") => FixState::NotAffected,
        _ if version.is_some() => FixState::Fixed { version },
        _ => FixState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};
    use std::collections::BTreeMap;

    fn counts(pairs: &[(Severity, usize)]) -> BTreeMap<Severity, usize> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn fixture_severity_counts() {
        let Some(root) = fixture_root() else { return };
        use Severity::*;
        let expected = [
            ("trivy/trivy-alpine-310.json", counts(&[(Medium, 4)])),
            (
                "trivy/trivy-amazon-2.json",
                counts(&[(Medium, 1), (Low, 1)]),
            ),
            (
                "trivy/trivy-centos-7.json",
                counts(&[(Medium, 1), (Low, 2)]),
            ),
            (
                "trivy/trivy-debian-buster.json",
                counts(&[(Critical, 1), (Low, 1)]),
            ),
            (
                "trivy/trivy-distroless-base.json",
                counts(&[(Medium, 2), (Low, 2)]),
            ),
        ];
        for (rel, severities) in expected {
            let evidence = parse_fixture(&root, rel, FileKind::Trivy);
            assert_eq!(evidence.severity_counts(), severities, "{rel}");
            assert!(evidence.notes.is_empty(), "{rel}: {:?}", evidence.notes);
        }
    }

    #[test]
    fn fixture_fix_states() {
        let Some(root) = fixture_root() else { return };
        // (fixed, not fixed, won't fix) per report.
        let expected = [
            ("trivy/trivy-alpine-310.json", (4, 0, 0)),
            ("trivy/trivy-amazon-2.json", (2, 0, 0)),
            ("trivy/trivy-centos-7.json", (2, 0, 1)),
            ("trivy/trivy-debian-buster.json", (1, 1, 0)),
            ("trivy/trivy-distroless-base.json", (2, 2, 0)),
        ];
        for (rel, (fixed, not_fixed, wont_fix)) in expected {
            let evidence = parse_fixture(&root, rel, FileKind::Trivy);
            let count = |f: fn(&FixState) -> bool| {
                evidence
                    .vulnerabilities
                    .iter()
                    .filter(|v| f(&v.fix))
                    .count()
            };
            assert_eq!(
                count(|f| matches!(f, FixState::Fixed { .. })),
                fixed,
                "{rel}"
            );
            assert_eq!(count(|f| *f == FixState::NotFixed), not_fixed, "{rel}");
            assert_eq!(count(|f| *f == FixState::WontFix), wont_fix, "{rel}");
        }
    }

    #[test]
    fn fixture_first_vulnerability_in_full() {
        let Some(root) = fixture_root() else { return };
        let evidence = parse_fixture(&root, "trivy/trivy-alpine-310.json", FileKind::Trivy);
        let v = &evidence.vulnerabilities[0];
        assert_eq!(v.id, "CVE-2019-1549");
        assert_eq!(v.package.as_deref(), Some("libcrypto1.1"));
        assert_eq!(v.installed_version.as_deref(), Some("1.1.1c-r0"));
        assert_eq!(
            v.fix,
            FixState::Fixed {
                version: Some("1.1.1d-r0".into())
            }
        );
        assert_eq!(v.severity, Severity::Medium);
        assert!(
            v.purl
                .as_deref()
                .unwrap()
                .starts_with("pkg:apk/alpine/libcrypto1.1@")
        );
    }

    #[test]
    fn fixture_subjects() {
        let Some(root) = fixture_root() else { return };
        let expected = [
            (
                "trivy/trivy-alpine-310.json",
                "961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4",
                1,
            ),
            (
                "trivy/trivy-amazon-2.json",
                "b94321659aca6a89cb7650a5b864bc8ec4bf62c620b8f1a01530c2e90a88c391",
                1,
            ),
            (
                "trivy/trivy-centos-7.json",
                "f1cb7c7d58b73eac859c395882eec49d50651244e342cd6c68a5c7809785f427",
                1,
            ),
            (
                "trivy/trivy-debian-buster.json",
                "c2c03a296d2329a4f3ab72a7bf38b78a8a80108204d326b0139d6af700e152d1",
                1,
            ),
            (
                "trivy/trivy-distroless-base.json",
                "7f04a8d247173b1f2546d22913af637bbab4e7411e00ae6207da8d94c445750d",
                2,
            ),
        ];
        for (rel, image_id, layers) in expected {
            let evidence = parse_fixture(&root, rel, FileKind::Trivy);
            let config: Vec<_> = evidence
                .subjects
                .iter()
                .filter(|s| s.role == SubjectRole::ImageConfig)
                .map(|s| s.digest.as_ref().unwrap().hex())
                .collect();
            assert_eq!(config, [image_id], "{rel}");
            let layer_count = evidence
                .subjects
                .iter()
                .filter(|s| s.role == SubjectRole::Layer)
                .count();
            assert_eq!(layer_count, layers, "{rel}");
            // The artifact name and one repo tag.
            let named = evidence
                .subjects
                .iter()
                .filter(|s| s.role == SubjectRole::Artifact)
                .count();
            assert_eq!(named, 2, "{rel}");
        }
    }

    #[test]
    fn repo_digests_packages_and_misconfigurations() {
        let hex = "b".repeat(64);
        let doc = format!(
            r#"{{"SchemaVersion":2,"ArtifactName":"x","Metadata":{{"RepoDigests":["reg/x@sha256:{hex}"],"DiffIDs":null}},
                "Results":[{{"Target":"main.tf","Packages":[{{"Name":"zlib","Version":"1.3","Licenses":["Zlib"]}}],
                "Misconfigurations":[{{"ID":"AVD-1","Severity":"HIGH","Status":"FAIL"}},{{"ID":"AVD-2","Status":"PASS"}}]}}]}}"#
        );
        let evidence =
            super::super::parse(FileKind::Trivy, doc.as_bytes(), &Limits::default()).unwrap();
        let manifest = &evidence.subjects[1];
        assert_eq!(manifest.role, SubjectRole::ImageManifest);
        assert_eq!(manifest.name.as_deref(), Some("reg/x"));
        assert_eq!(manifest.digest.as_ref().unwrap().hex(), hex);
        assert_eq!(evidence.components[0].licences, ["Zlib"]);
        assert_eq!(evidence.findings.len(), 1);
        assert_eq!(evidence.findings[0].severity, Severity::High);
    }

    #[test]
    fn other_schema_versions_are_noted() {
        let evidence = super::super::parse(
            FileKind::Trivy,
            br#"{"SchemaVersion":3}"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(evidence.notes.len(), 1);
    }
}
