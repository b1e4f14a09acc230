//! CycloneDX JSON (1.2 to 1.7): SBOMs, vulnerability BOMs and VEX.
//!
//! Components are read depth-first, nested ones included. The subject is
//! `metadata.component`, with the digests Trivy and Grype attach to it. Each
//! vulnerability becomes one [`Vulnerability`] per affected component;
//! severity is the worst rating given, and a VEX `analysis` sets the fix
//! state.

use std::collections::HashMap;

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::json::{self, Items};
use super::{
    Component, Evidence, FileKind, FixState, Limits, Severity, SubjectRef, SubjectRole,
    Vulnerability,
};

/// Trivy's names for image digests in component properties.
const TRIVY_IMAGE_ID: &str = "aquasecurity:trivy:ImageID";
const TRIVY_REPO_DIGEST: &str = "aquasecurity:trivy:RepoDigest";
const TRIVY_DIFF_ID: &str = "aquasecurity:trivy:DiffID";

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, super::EvidenceError> {
    let bom: Bom = json::from_slice(FileKind::CycloneDx, bytes, limits)?;
    let mut evidence = Evidence::new(FileKind::CycloneDx);
    read_bom(&bom, &mut evidence);
    Ok(evidence)
}

/// A CycloneDX document, as far as Sluice reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Bom {
    metadata: Metadata,
    components: Items<CdxComponent>,
    vulnerabilities: Items<CdxVulnerability>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    component: Option<CdxComponent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CdxComponent {
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    name: String,
    version: Option<String>,
    purl: Option<String>,
    licenses: Items<LicenseChoice>,
    components: Items<CdxComponent>,
    properties: Items<Property>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LicenseChoice {
    license: Option<License>,
    expression: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct License {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Property {
    name: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CdxVulnerability {
    id: String,
    ratings: Items<Rating>,
    affects: Items<Affect>,
    analysis: Option<Analysis>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Rating {
    severity: Option<String>,
    score: Option<f64>,
    method: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Affect {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Analysis {
    state: Option<String>,
    response: Items<String>,
}

/// Adds what `bom` says to `evidence` (also used for CycloneDX predicates of
/// in-toto statements).
pub(super) fn read_bom(bom: &Bom, evidence: &mut Evidence) {
    if let Some(subject) = &bom.metadata.component {
        evidence.subjects.extend(subjects_of(subject));
    }
    let mut flat = Vec::new();
    flatten(&bom.components, &mut flat);
    evidence
        .components
        .extend(flat.iter().map(|c| component(c)));

    let mut by_ref: HashMap<&str, &CdxComponent> = HashMap::new();
    let metadata = bom.metadata.component.iter();
    for c in flat.iter().copied().chain(metadata) {
        if let Some(r) = &c.bom_ref {
            by_ref.entry(r.as_str()).or_insert(c);
        }
    }
    for vulnerability in &bom.vulnerabilities {
        read_vulnerability(vulnerability, &by_ref, evidence);
    }
}

/// Every component, nested ones after their parent.
fn flatten<'a>(components: &'a Items<CdxComponent>, out: &mut Vec<&'a CdxComponent>) {
    for c in components {
        out.push(c);
        flatten(&c.components, out);
    }
}

fn component(c: &CdxComponent) -> Component {
    Component {
        name: c.name.clone(),
        version: c.version.clone(),
        purl: c.purl.clone(),
        licences: c.licenses.iter().filter_map(licence).collect(),
    }
}

fn licence(choice: &LicenseChoice) -> Option<String> {
    let named = choice
        .license
        .as_ref()
        .and_then(|l| l.id.clone().or(l.name.clone()));
    named.or(choice.expression.clone())
}

/// The described component and the digests attached to it.
fn subjects_of(c: &CdxComponent) -> Vec<SubjectRef> {
    let name = Some(c.name.clone()).filter(|n| !n.is_empty());
    let version_digest = c.version.as_deref().and_then(|v| Digest::parse(v).ok());
    let mut subjects = vec![SubjectRef::new(
        SubjectRole::Artifact,
        name.clone(),
        version_digest,
    )];

    if let Some(digest) = c.purl.as_deref().and_then(super::oci_purl_digest) {
        subjects.push(SubjectRef::new(
            SubjectRole::ImageManifest,
            name.clone(),
            Some(digest),
        ));
    }
    for property in &c.properties {
        subjects.extend(property_subject(property));
    }
    subjects
}

fn property_subject(property: &Property) -> Option<SubjectRef> {
    let value = property.value.as_str();
    match property.name.as_str() {
        TRIVY_IMAGE_ID => Some(SubjectRef::new(
            SubjectRole::ImageConfig,
            None,
            Digest::parse(value).ok(),
        )),
        TRIVY_REPO_DIGEST => {
            let (name, digest) = super::split_repo_digest(value);
            Some(SubjectRef::new(SubjectRole::ImageManifest, name, digest))
        }
        TRIVY_DIFF_ID => Some(SubjectRef::new(
            SubjectRole::Layer,
            None,
            Digest::parse(value).ok(),
        )),
        _ => None,
    }
}

fn read_vulnerability(
    v: &CdxVulnerability,
    by_ref: &HashMap<&str, &CdxComponent>,
    evidence: &mut Evidence,
) {
    let severity = worst_rating(&v.ratings);
    let fix = v.analysis.as_ref().map_or(FixState::Unknown, fix_state);
    let template = Vulnerability {
        id: v.id.clone(),
        package: None,
        installed_version: None,
        purl: None,
        severity,
        fix,
    };
    if v.affects.is_empty() {
        evidence.vulnerabilities.push(template);
        return;
    }
    for affect in &v.affects {
        let mut entry = template.clone();
        fill_package(&mut entry, &affect.reference, by_ref);
        evidence.vulnerabilities.push(entry);
    }
}

/// Names the affected package from its bom-ref, or from a package URL in
/// the reference when it points into another BOM.
fn fill_package(entry: &mut Vulnerability, reference: &str, by_ref: &HashMap<&str, &CdxComponent>) {
    if let Some(c) = by_ref.get(reference) {
        entry.package = Some(c.name.clone());
        entry.installed_version = c.version.clone();
        entry.purl = c.purl.clone();
        return;
    }
    let purl = reference.rsplit_once('#').map_or(reference, |(_, p)| p);
    if let Some((name, version)) = super::purl_name_version(purl) {
        entry.package = Some(name);
        entry.installed_version = version;
        entry.purl = Some(purl.to_owned());
    }
}

fn worst_rating(ratings: &Items<Rating>) -> Severity {
    ratings
        .iter()
        .map(rating_severity)
        .max()
        .unwrap_or(Severity::Unknown)
}

fn rating_severity(rating: &Rating) -> Severity {
    let worded = rating
        .severity
        .as_deref()
        .map_or(Severity::Unknown, Severity::from_word);
    let is_cvss = rating
        .method
        .as_deref()
        .is_some_and(|m| m.starts_with("CVSS"));
    match (worded, rating.score) {
        (Severity::Unknown, Some(score)) if is_cvss => Severity::from_cvss(score),
        _ => worded,
    }
}

/// VEX analysis to fix state (CycloneDX 1.4 `impactAnalysisState` and
/// `response`).
fn fix_state(analysis: &Analysis) -> FixState {
    let responds = |word: &str| analysis.response.iter().any(|r| r == word);
    match analysis.state.as_deref() {
        Some("not_affected" | "false_positive") => FixState::NotAffected,
        Some("resolved" | "resolved_with_pedigree") => FixState::Fixed { version: None },
        _ if responds("will_not_fix") => FixState::WontFix,
        _ if responds("update") => FixState::Fixed { version: None },
        Some("exploitable" | "in_triage") => FixState::NotFixed,
        _ => FixState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};

    fn parse_str(text: &str) -> Evidence {
        super::super::parse(FileKind::CycloneDx, text.as_bytes(), &Limits::default()).unwrap()
    }

    fn digest(text: &str) -> Option<Digest> {
        Some(Digest::parse(text).unwrap())
    }

    #[test]
    fn fixture_component_counts() {
        let Some(root) = fixture_root() else { return };
        let expected = [
            ("cyclonedx/bom-examples-vex.cdx.json", 0, 0),
            ("cyclonedx/cern-lhc-vdm-editor.cdx.json", 43, 43),
            ("cyclonedx/grype-image-vulns.cdx.json", 2, 1),
            ("cyclonedx/laravel-7.12.0.cdx-1.4.json", 62, 62),
            ("cyclonedx/trivy-centos-7.cdx.json", 3, 2),
            ("cyclonedx/trivy-fluentd.cdx.json", 4, 3),
        ];
        for (rel, components, with_purl) in expected {
            let evidence = parse_fixture(&root, rel, FileKind::CycloneDx);
            assert_eq!(evidence.components.len(), components, "{rel}");
            let purls = evidence
                .components
                .iter()
                .filter(|c| c.purl.is_some())
                .count();
            assert_eq!(purls, with_purl, "{rel}");
        }
    }

    #[test]
    fn fixture_licences() {
        let Some(root) = fixture_root() else { return };
        let cern = parse_fixture(
            &root,
            "cyclonedx/cern-lhc-vdm-editor.cdx.json",
            FileKind::CycloneDx,
        );
        let licensed = cern
            .components
            .iter()
            .filter(|c| !c.licences.is_empty())
            .count();
        assert_eq!(licensed, 43);
        let centos = parse_fixture(
            &root,
            "cyclonedx/trivy-centos-7.cdx.json",
            FileKind::CycloneDx,
        );
        assert_eq!(centos.components[0].name, "bash");
        assert_eq!(centos.components[0].licences, ["GPLv3+"]);
        let grype = parse_fixture(
            &root,
            "cyclonedx/grype-image-vulns.cdx.json",
            FileKind::CycloneDx,
        );
        assert_eq!(grype.components[1].licences, ["Apache-2.0", "MIT"]);
    }

    #[test]
    fn fixture_vulnerabilities() {
        let Some(root) = fixture_root() else { return };
        let grype = parse_fixture(
            &root,
            "cyclonedx/grype-image-vulns.cdx.json",
            FileKind::CycloneDx,
        );
        let found: Vec<_> = grype
            .vulnerabilities
            .iter()
            .map(|v| {
                (
                    v.id.as_str(),
                    v.package.as_deref(),
                    v.installed_version.as_deref(),
                    v.severity,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "CVE-1999-0001",
                    Some("package-1"),
                    Some("1.1.1"),
                    Severity::Low
                ),
                (
                    "CVE-1999-0002",
                    Some("package-2"),
                    Some("2.2.2"),
                    Severity::Critical
                ),
            ]
        );

        let vex = parse_fixture(
            &root,
            "cyclonedx/bom-examples-vex.cdx.json",
            FileKind::CycloneDx,
        );
        assert_eq!(vex.vulnerabilities.len(), 1);
        let v = &vex.vulnerabilities[0];
        assert_eq!(v.id, "CVE-2020-25649");
        assert_eq!(v.severity, Severity::High);
        assert_eq!(v.fix, FixState::NotAffected);
        assert_eq!(v.package.as_deref(), Some("jackson-databind"));
        assert_eq!(v.installed_version.as_deref(), Some("2.10.0"));
    }

    #[test]
    fn fixture_subjects() {
        let Some(root) = fixture_root() else { return };
        let grype = parse_fixture(
            &root,
            "cyclonedx/grype-image-vulns.cdx.json",
            FileKind::CycloneDx,
        );
        assert_eq!(
            grype.subjects,
            [SubjectRef::new(
                SubjectRole::Artifact,
                Some("user-input".into()),
                digest("sha256:ca738abb87a8d58f112d3400ebb079b61ceae7dc290beb34bda735be4b1941d5"),
            )]
        );

        let centos = parse_fixture(
            &root,
            "cyclonedx/trivy-centos-7.cdx.json",
            FileKind::CycloneDx,
        );
        let roles: Vec<_> = centos.subjects.iter().map(|s| s.role).collect();
        assert_eq!(
            roles,
            [
                SubjectRole::Artifact,
                SubjectRole::ImageConfig,
                SubjectRole::Layer
            ]
        );
        assert_eq!(
            centos.subjects[1].digest,
            digest("sha256:f1cb7c7d58b73eac859c395882eec49d50651244e342cd6c68a5c7809785f427")
        );

        let fluentd = parse_fixture(
            &root,
            "cyclonedx/trivy-fluentd.cdx.json",
            FileKind::CycloneDx,
        );
        let layers = fluentd
            .subjects
            .iter()
            .filter(|s| s.role == SubjectRole::Layer)
            .count();
        assert_eq!(layers, 6);

        let cern = parse_fixture(
            &root,
            "cyclonedx/cern-lhc-vdm-editor.cdx.json",
            FileKind::CycloneDx,
        );
        assert_eq!(
            cern.subjects,
            [SubjectRef::new(
                SubjectRole::Artifact,
                Some("lhc-vdm-editor".into()),
                None
            )]
        );
    }

    #[test]
    fn nested_components_and_expressions_are_read() {
        let evidence = parse_str(
            r#"{"bomFormat":"CycloneDX","components":[
                {"name":"outer","version":"1","licenses":[{"expression":"MIT OR Apache-2.0"}],
                 "components":[{"name":"inner","licenses":[{"license":{"name":"Custom"}}]}]}]}"#,
        );
        let names: Vec<_> = evidence
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["outer", "inner"]);
        assert_eq!(evidence.components[0].licences, ["MIT OR Apache-2.0"]);
        assert_eq!(evidence.components[1].licences, ["Custom"]);
    }

    #[test]
    fn cvss_score_stands_in_for_a_missing_severity_word() {
        let evidence = parse_str(
            r#"{"vulnerabilities":[{"id":"CVE-1","ratings":[
                {"score":9.1,"method":"CVSSv31"},{"score":0.9,"method":"other"}]}]}"#,
        );
        assert_eq!(evidence.vulnerabilities[0].severity, Severity::Critical);
        assert_eq!(evidence.vulnerabilities[0].package, None);
    }

    #[test]
    fn oci_purl_names_a_manifest_digest() {
        let hex = "e76a13475c6b4a713a0e4a7a8574ce450274d340357a2c40b8221cfcfedf8b19";
        let purl = format!("pkg:oci/demo@sha256%3A{hex}?arch=arm64");
        assert_eq!(
            super::super::oci_purl_digest(&purl),
            digest(&format!("sha256:{hex}"))
        );
        assert_eq!(super::super::oci_purl_digest("pkg:npm/x@1.0"), None);
    }
}
