//! Recognising report files by their content.
//!
//! Each known format has a distinguishing key or root element; the checks
//! below look for exactly those and nothing more. A file that matches none
//! is [`FileKind::Unknown`]: it is still packed and signed, and the high
//! side's policy decides whether it matters. This module does not judge
//! what a report says, only what it is.

use serde_json::{Map, Value};
use sluice_protocol::manifest::FileKind;

/// Prefix of the containers/image "sigstore" signature file format.
const COSIGN_SIGNATURE_MAGIC: &[u8] = b"\0sigstore-json\n";
const SIGSTORE_BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle";
const IN_TOTO_STATEMENT: &str = "https://in-toto.io/Statement/";

/// The kind of a report, from its bytes.
pub fn detect_kind(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(COSIGN_SIGNATURE_MAGIC) {
        return FileKind::CosignSignature;
    }
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) {
        return json_kind(&object);
    }
    let text = String::from_utf8_lossy(bytes);
    if let Some(kind) = json_lines_kind(&text) {
        return kind;
    }
    if is_junit(&text) {
        return FileKind::Junit;
    }
    FileKind::Unknown
}

fn json_kind(object: &Map<String, Value>) -> FileKind {
    let has = |key: &str| object.contains_key(key);
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
    if has("bomFormat") && text("bomFormat") == "CycloneDX" {
        FileKind::CycloneDx
    } else if has("spdxVersion") || is_spdx3(object) {
        FileKind::Spdx
    } else if has("SchemaVersion") && (has("Results") || has("ArtifactName")) {
        FileKind::Trivy
    } else if has("matches") && has("descriptor") {
        FileKind::Grype
    } else if has("runs") && (has("version") || text("$schema").contains("sarif")) {
        FileKind::Sarif
    } else if text("mediaType").starts_with(SIGSTORE_BUNDLE_MEDIA_TYPE) {
        FileKind::SigstoreBundle
    } else if has("payloadType") && has("signatures") {
        FileKind::Dsse
    } else if text("_type").starts_with(IN_TOTO_STATEMENT) || is_gcb_provenance(object) {
        FileKind::InToto
    } else if has("sluice_health") {
        FileKind::SluiceHealth
    } else {
        FileKind::Unknown
    }
}

/// SPDX 3 is JSON-LD whose `@context` names an spdx.org context.
fn is_spdx3(object: &Map<String, Value>) -> bool {
    let context = match object.get("@context") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(items)) => items.first().and_then(Value::as_str).unwrap_or_default(),
        _ => "",
    };
    context.contains("spdx.org")
}

/// Google Cloud Build's provenance wrapper holds in-toto statements under
/// `provenance_summary`.
fn is_gcb_provenance(object: &Map<String, Value>) -> bool {
    object
        .get("provenance_summary")
        .is_some_and(Value::is_object)
}

/// JSON Lines where every line is a DSSE envelope or an in-toto statement
/// (the `.intoto.jsonl` files SLSA generators write).
fn json_lines_kind(text: &str) -> Option<FileKind> {
    let mut kinds = text.lines().filter(|l| !l.trim().is_empty()).map(|line| {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => json_kind(&object),
            _ => FileKind::Unknown,
        }
    });
    let first = kinds.next()?;
    let uniform = kinds.all(|k| k == first);
    (uniform && matches!(first, FileKind::Dsse | FileKind::InToto)).then_some(first)
}

/// JUnit XML: the root element (after the prolog and comments) is
/// `<testsuites>` or `<testsuite>`.
fn is_junit(text: &str) -> bool {
    let root = root_element(text).unwrap_or_default();
    root == "testsuites" || root == "testsuite"
}

fn root_element(text: &str) -> Option<&str> {
    let mut rest = text.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("<?") {
            rest = &after[after.find("?>")? + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->")? + 3..];
        } else if let Some(after) = rest.strip_prefix("<!") {
            rest = &after[after.find('>')? + 1..];
        } else {
            let after = rest.strip_prefix('<')?;
            let end = after.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
            return Some(&after[..end]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn detect_str(text: &str) -> FileKind {
        detect_kind(text.as_bytes())
    }

    #[test]
    fn small_documents_of_each_kind() {
        assert_eq!(
            detect_str(r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#),
            FileKind::CycloneDx
        );
        assert_eq!(detect_str(r#"{"spdxVersion":"SPDX-2.3"}"#), FileKind::Spdx);
        assert_eq!(
            detect_str(r#"{"SchemaVersion":2,"Results":[]}"#),
            FileKind::Trivy
        );
        assert_eq!(
            detect_str(r#"{"matches":[],"descriptor":{}}"#),
            FileKind::Grype
        );
        assert_eq!(
            detect_str(r#"{"version":"2.1.0","runs":[]}"#),
            FileKind::Sarif
        );
        assert_eq!(
            detect_str(r#"{"payloadType":"x","signatures":[]}"#),
            FileKind::Dsse
        );
        assert_eq!(
            detect_str(r#"{"_type":"https://in-toto.io/Statement/v1"}"#),
            FileKind::InToto
        );
        assert_eq!(
            detect_str(r#"{"sluice_health":1,"host":"a"}"#),
            FileKind::SluiceHealth
        );
        assert_eq!(detect_str("<testsuite name=\"x\"/>"), FileKind::Junit);
    }

    #[test]
    fn unrecognised_content_is_unknown() {
        assert_eq!(detect_str(r#"{"hello":"world"}"#), FileKind::Unknown);
        assert_eq!(detect_str("sha256:abc\n"), FileKind::Unknown);
        assert_eq!(detect_str("<html></html>"), FileKind::Unknown);
        assert_eq!(detect_kind(&[0xff, 0x00, 0x13]), FileKind::Unknown);
    }

    #[test]
    fn junit_root_is_found_after_prolog_and_comments() {
        let xml = "<?xml version=\"1.0\"?>\n<!-- a <testcase> comment -->\n<testsuites>";
        assert_eq!(detect_str(xml), FileKind::Junit);
    }

    #[test]
    fn every_report_fixture_is_recognised() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/reports");
        if !root.exists() {
            eprintln!("skipped: ../shared/fixtures not found");
            return;
        }
        for (rel, expected) in expected_fixture_kinds() {
            let bytes = std::fs::read(root.join(rel)).unwrap();
            assert_eq!(detect_kind(&bytes), expected, "{rel}");
        }
    }

    pub(crate) fn expected_fixture_kinds() -> Vec<(&'static str, FileKind)> {
        use FileKind::*;
        vec![
            ("cyclonedx/bom-examples-vex.cdx.json", CycloneDx),
            ("cyclonedx/cern-lhc-vdm-editor.cdx.json", CycloneDx),
            ("cyclonedx/grype-image-vulns.cdx.json", CycloneDx),
            ("cyclonedx/laravel-7.12.0.cdx-1.4.json", CycloneDx),
            ("cyclonedx/trivy-centos-7.cdx.json", CycloneDx),
            ("cyclonedx/trivy-fluentd.cdx.json", CycloneDx),
            ("grype/grype-dir.json", Grype),
            ("grype/grype-image.json", Grype),
            ("intoto-slsa/gcb-v0.2-container-provenance.digest", Unknown),
            ("intoto-slsa/gcb-v0.2-container-provenance.json", InToto),
            ("intoto-slsa/gcb-v0.3-container-provenance.digest", Unknown),
            ("intoto-slsa/gcb-v0.3-container-provenance.json", InToto),
            ("intoto-slsa/slsa-gha-generic-v1.10.0.intoto.jsonl", Dsse),
            ("intoto-slsa/trivy-attestation.json", Dsse),
            ("intoto-slsa/trivy-centos-7-cyclonedx.intoto.jsonl", Dsse),
            ("junit/java-junit4-complete.xml", Junit),
            ("junit/jest-junit.xml", Junit),
            ("junit/pytest-xunit.xml", Junit),
            ("junit/trivy-alpine-310.junit.xml", Junit),
            ("sarif/trivy-action-config-misconfig.sarif", Sarif),
            ("sarif/trivy-alpine-310.sarif", Sarif),
            ("sigstore/cosign-fulcio-rekor/manifest.json", Unknown),
            ("sigstore/cosign-fulcio-rekor/signature-1", CosignSignature),
            ("sigstore/cosign-key-rekor/manifest.json", Unknown),
            ("sigstore/cosign-key-rekor/signature-1", CosignSignature),
            (
                "sigstore/sigstore-go-bundle-provenance.sigstore.json",
                SigstoreBundle,
            ),
            ("sigstore/sigstore-go-dsse.sigstore.json", SigstoreBundle),
            (
                "sigstore/trivy-cyclonedx-attestation.sigstore.json",
                SigstoreBundle,
            ),
            ("spdx/bitnami-postgresql.spdx.json", Spdx),
            ("spdx/spdx-examples-example10.spdx3.json", Spdx),
            ("spdx/spdx-examples-example7-bin.spdx.json", Spdx),
            ("spdx/spdx-examples-example9.spdx.json", Spdx),
            ("spdx/trivy-centos-7.spdx.json", Spdx),
            ("trivy/trivy-alpine-310.json", Trivy),
            ("trivy/trivy-amazon-2.json", Trivy),
            ("trivy/trivy-centos-7.json", Trivy),
            ("trivy/trivy-debian-buster.json", Trivy),
            ("trivy/trivy-distroless-base.json", Trivy),
        ]
    }
}
