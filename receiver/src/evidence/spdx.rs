//! SPDX JSON: 2.2 and 2.3 documents, and SPDX 3 JSON-LD.
//!
//! Every package is a component. The subjects are the packages the document
//! describes (`documentDescribes` or `DESCRIBES` relationships in 2.x; the
//! document's `rootElement` or `describes` relationships in 3), with any
//! sha256 or sha512 checksum they carry and the image digests Trivy writes
//! into `attributionTexts`.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::json::{self, Items};
use super::{Component, Evidence, FileKind, Limits, SubjectRef, SubjectRole};

/// SPDX's word for "the author made no statement".
const NO_ASSERTION: &str = "NOASSERTION";

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, super::EvidenceError> {
    let document: SpdxDocument = json::from_slice(FileKind::Spdx, bytes, limits)?;
    let mut evidence = Evidence::new(FileKind::Spdx);
    read_document(&document, &mut evidence);
    Ok(evidence)
}

/// An SPDX document of either generation.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct SpdxDocument {
    spdx_version: Option<String>,
    document_describes: Items<String>,
    packages: Items<Package>,
    relationships: Items<Relationship>,
    #[serde(rename = "@graph")]
    graph: Items<Element>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    id: String,
    name: String,
    version_info: Option<String>,
    external_refs: Items<ExternalRef>,
    license_concluded: Option<String>,
    license_declared: Option<String>,
    checksums: Items<Checksum>,
    attribution_texts: Items<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ExternalRef {
    reference_type: String,
    reference_locator: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Checksum {
    algorithm: String,
    checksum_value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    related_spdx_element: String,
    relationship_type: String,
}

/// One node of an SPDX 3 `@graph`; only the properties Sluice reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Element {
    #[serde(rename = "type", alias = "@type")]
    element_type: String,
    #[serde(rename = "spdxId", alias = "@id")]
    id: String,
    name: Option<String>,
    #[serde(rename = "software_packageVersion")]
    package_version: Option<String>,
    #[serde(rename = "software_packageUrl")]
    package_url: Option<String>,
    #[serde(rename = "verifiedUsing")]
    verified_using: Items<IntegrityMethod>,
    #[serde(rename = "relationshipType")]
    relationship_type: Option<String>,
    from: Option<String>,
    to: Items<String>,
    #[serde(rename = "simplelicensing_licenseExpression")]
    license_expression: Option<String>,
    #[serde(rename = "rootElement")]
    root_element: Items<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IntegrityMethod {
    algorithm: String,
    hash_value: String,
}

/// Adds what `document` says to `evidence` (also used for SPDX predicates
/// of in-toto statements).
pub(super) fn read_document(document: &SpdxDocument, evidence: &mut Evidence) {
    if !document.graph.is_empty() {
        read_graph(&document.graph, evidence);
        return;
    }
    if document.spdx_version.is_none() {
        evidence
            .notes
            .push("SPDX document names no spdxVersion and has no @graph".into());
    }
    evidence
        .components
        .extend(document.packages.iter().map(component));

    let described = described_ids(document);
    for package in document
        .packages
        .iter()
        .filter(|p| described.contains(p.id.as_str()))
    {
        evidence.subjects.extend(package_subjects(package));
    }
}

fn component(package: &Package) -> Component {
    let purl = package
        .external_refs
        .iter()
        .find(|r| r.reference_type == "purl")
        .map(|r| r.reference_locator.clone());
    let mut licences = Vec::new();
    for licence in [&package.license_concluded, &package.license_declared]
        .into_iter()
        .flatten()
    {
        if licence != NO_ASSERTION && !licences.contains(licence) {
            licences.push(licence.clone());
        }
    }
    Component {
        name: package.name.clone(),
        version: package.version_info.clone(),
        purl,
        licences,
    }
}

fn described_ids(document: &SpdxDocument) -> BTreeSet<&str> {
    let mut ids: BTreeSet<&str> = document
        .document_describes
        .iter()
        .map(String::as_str)
        .collect();
    for r in &document.relationships {
        match r.relationship_type.as_str() {
            "DESCRIBES" => ids.insert(r.related_spdx_element.as_str()),
            "DESCRIBED_BY" => ids.insert(r.spdx_element_id.as_str()),
            _ => false,
        };
    }
    ids
}

fn package_subjects(package: &Package) -> Vec<SubjectRef> {
    let name = Some(package.name.clone()).filter(|n| !n.is_empty());
    let checksums: Vec<Digest> = package
        .checksums
        .iter()
        .filter_map(|c| super::digest_from_parts(&c.algorithm, &c.checksum_value))
        .collect();
    let mut subjects = artifact_subjects(name.clone(), checksums);
    let purls = package
        .external_refs
        .iter()
        .filter(|r| r.reference_type == "purl");
    for purl in purls {
        if let Some(digest) = super::oci_purl_digest(&purl.reference_locator) {
            subjects.push(SubjectRef::new(
                SubjectRole::ImageManifest,
                name.clone(),
                Some(digest),
            ));
        }
    }
    subjects.extend(
        package
            .attribution_texts
            .iter()
            .filter_map(|t| attribution_subject(t)),
    );
    subjects
}

/// One artifact subject per digest, or one without a digest.
fn artifact_subjects(name: Option<String>, digests: Vec<Digest>) -> Vec<SubjectRef> {
    if digests.is_empty() {
        return vec![SubjectRef::new(SubjectRole::Artifact, name, None)];
    }
    let role = SubjectRole::Artifact;
    digests
        .into_iter()
        .map(|d| SubjectRef::new(role, name.clone(), Some(d)))
        .collect()
}

/// Trivy writes image digests as `ImageID: sha256:...` attribution texts.
fn attribution_subject(text: &str) -> Option<SubjectRef> {
    let (key, value) = text.split_once(": ")?;
    let role = match key {
        "ImageID" => SubjectRole::ImageConfig,
        "RepoDigest" => SubjectRole::ImageManifest,
        "DiffID" => SubjectRole::Layer,
        _ => return None,
    };
    let (name, digest) = super::split_repo_digest(value.trim());
    Some(SubjectRef::new(role, name, digest))
}

/// SPDX 3: packages are `software_Package` elements; licences hang off
/// them through relationships to licence-expression elements.
fn read_graph(graph: &Items<Element>, evidence: &mut Evidence) {
    let by_id: HashMap<&str, &Element> = graph.iter().map(|e| (e.id.as_str(), e)).collect();
    let relationships: Vec<&Element> = graph
        .iter()
        .filter(|e| e.element_type == "Relationship")
        .collect();
    let roots = graph_roots(graph, &relationships);

    for package in graph
        .iter()
        .filter(|e| e.element_type == "software_Package")
    {
        let licences = graph_licences(package, &relationships, &by_id);
        evidence.components.push(Component {
            name: package.name.clone().unwrap_or_default(),
            version: package.package_version.clone(),
            purl: package.package_url.clone(),
            licences,
        });
        if roots.contains(package.id.as_str()) {
            evidence.subjects.extend(element_subjects(package));
        }
    }
}

fn graph_roots<'a>(graph: &'a Items<Element>, relationships: &[&'a Element]) -> BTreeSet<&'a str> {
    let documents = graph
        .iter()
        .filter(|e| matches!(e.element_type.as_str(), "SpdxDocument" | "software_Sbom"));
    let mut roots: BTreeSet<&str> = documents
        .flat_map(|d| d.root_element.iter())
        .map(String::as_str)
        .collect();
    for r in relationships
        .iter()
        .filter(|r| r.relationship_type.as_deref() == Some("describes"))
    {
        roots.extend(r.to.iter().map(String::as_str));
    }
    roots
}

fn graph_licences(
    package: &Element,
    relationships: &[&Element],
    by_id: &HashMap<&str, &Element>,
) -> Vec<String> {
    let mut licences = Vec::new();
    let from_package = relationships
        .iter()
        .filter(|r| r.from.as_deref() == Some(package.id.as_str()));
    for r in from_package {
        let kind = r.relationship_type.as_deref().unwrap_or_default();
        if kind != "hasConcludedLicense" && kind != "hasDeclaredLicense" {
            continue;
        }
        let expressions =
            r.to.iter()
                .filter_map(|id| by_id.get(id.as_str())?.license_expression.as_ref());
        for expression in expressions {
            if expression != NO_ASSERTION && !licences.contains(expression) {
                licences.push(expression.clone());
            }
        }
    }
    licences
}

fn element_subjects(package: &Element) -> Vec<SubjectRef> {
    let digests = package
        .verified_using
        .iter()
        .filter_map(|h| super::digest_from_parts(&h.algorithm, &h.hash_value))
        .collect();
    let mut subjects = artifact_subjects(package.name.clone(), digests);
    if let Some(digest) = package
        .package_url
        .as_deref()
        .and_then(super::oci_purl_digest)
    {
        subjects.push(SubjectRef::new(
            SubjectRole::ImageManifest,
            package.name.clone(),
            Some(digest),
        ));
    }
    subjects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};

    fn parse_str(text: &str) -> Evidence {
        super::super::parse(FileKind::Spdx, text.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn fixture_package_counts() {
        let Some(root) = fixture_root() else { return };
        let expected = [
            ("spdx/bitnami-postgresql.spdx.json", 4, 4),
            ("spdx/spdx-examples-example10.spdx3.json", 1, 0),
            ("spdx/spdx-examples-example7-bin.spdx.json", 1, 0),
            ("spdx/spdx-examples-example9.spdx.json", 7, 4),
            ("spdx/trivy-centos-7.spdx.json", 4, 2),
        ];
        for (rel, components, with_purl) in expected {
            let evidence = parse_fixture(&root, rel, FileKind::Spdx);
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
    fn fixture_licences_and_versions() {
        let Some(root) = fixture_root() else { return };
        let bitnami = parse_fixture(&root, "spdx/bitnami-postgresql.spdx.json", FileKind::Spdx);
        let geos = &bitnami.components[1];
        assert_eq!(
            (geos.name.as_str(), geos.version.as_deref()),
            ("GEOS", Some("3.8.3"))
        );
        assert_eq!(geos.licences, ["LGPL-2.1-only"]);

        let example9 = parse_fixture(
            &root,
            "spdx/spdx-examples-example9.spdx.json",
            FileKind::Spdx,
        );
        let app = example9
            .components
            .iter()
            .find(|c| c.name == "App-BOM-ination")
            .unwrap();
        assert_eq!(
            app.licences,
            ["(LicenseRef-1 AND Apache-2.0)", "Apache-2.0"]
        );

        let example7 = parse_fixture(
            &root,
            "spdx/spdx-examples-example7-bin.spdx.json",
            FileKind::Spdx,
        );
        assert!(
            example7.components[0].licences.is_empty(),
            "NOASSERTION is dropped"
        );

        let spdx3 = parse_fixture(
            &root,
            "spdx/spdx-examples-example10.spdx3.json",
            FileKind::Spdx,
        );
        assert_eq!(spdx3.components[0].name, "hello");
        assert_eq!(spdx3.components[0].licences, ["MIT"]);
    }

    #[test]
    fn fixture_subjects() {
        let Some(root) = fixture_root() else { return };
        let names = |rel: &str| -> Vec<Option<String>> {
            let evidence = parse_fixture(&root, rel, FileKind::Spdx);
            evidence.subjects.into_iter().map(|s| s.name).collect()
        };
        assert_eq!(
            names("spdx/bitnami-postgresql.spdx.json"),
            [Some("PostgreSQL".into())]
        );
        assert_eq!(
            names("spdx/spdx-examples-example9.spdx.json"),
            [Some("App-BOM-ination".into())]
        );
        assert_eq!(
            names("spdx/spdx-examples-example10.spdx3.json"),
            [Some("hello".into())]
        );

        let centos = parse_fixture(&root, "spdx/trivy-centos-7.spdx.json", FileKind::Spdx);
        let roles: Vec<_> = centos.subjects.iter().map(|s| s.role).collect();
        assert_eq!(
            roles,
            [
                SubjectRole::Artifact,
                SubjectRole::ImageConfig,
                SubjectRole::Layer
            ]
        );
        let config = "sha256:f1cb7c7d58b73eac859c395882eec49d50651244e342cd6c68a5c7809785f427";
        assert_eq!(
            centos.subjects[1].digest,
            Some(Digest::parse(config).unwrap())
        );
    }

    #[test]
    fn sha256_checksum_of_a_described_package_is_a_subject_digest() {
        let hex = "a".repeat(64);
        let evidence = parse_str(&format!(
            r#"{{"spdxVersion":"SPDX-2.3","documentDescribes":["SPDXRef-img"],
                "packages":[{{"SPDXID":"SPDXRef-img","name":"img",
                "checksums":[{{"algorithm":"SHA1","checksumValue":"00"}},
                             {{"algorithm":"SHA256","checksumValue":"{hex}"}}]}}]}}"#
        ));
        assert_eq!(evidence.subjects.len(), 1);
        let digest = evidence.subjects[0].digest.as_ref().unwrap();
        assert_eq!(digest.as_str(), format!("sha256:{hex}"));
    }

    #[test]
    fn document_without_version_or_graph_gets_a_note() {
        let evidence = parse_str(r#"{"packages":[]}"#);
        assert_eq!(evidence.notes.len(), 1);
    }
}
