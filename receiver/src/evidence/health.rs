//! Sluice's build-host health document.
//!
//! The reporting service writes one of these beside the reports it signs,
//! so the high side can judge the environment that produced them. Format
//! version 1, as JSON:
//!
//! ```text
//! {
//!   "sluice_health": 1,                  required; the format version
//!   "host": "build-07",                  required
//!   "os": "Debian GNU/Linux 12",
//!   "kernel": "6.1.0-26-amd64",
//!   "patch_level": "2024-10-03",         the distribution's own notion
//!   "time": "2024-10-03T12:00:00Z",      RFC 3339, when the checks ran
//!   "disk_free_bytes": 52428800000,
//!   "tools": {"trivy": "0.56.1"},        tool name to version
//!   "checks": [{"name": "clamav", "passed": true, "detail": "0 found"}]
//! }
//! ```
//!
//! Only `sluice_health` and `host` are required; an absent field reads as
//! unknown and policy decides whether that matters. Unknown fields are
//! ignored, so later writers may add fields without breaking this reader;
//! a change that old readers must not misread raises `sluice_health`. The
//! sender recognises the document by its `sluice_health` key
//! (`sender/src/report.rs`), so that key must stay.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::json::{self, Items};
use super::{Evidence, EvidenceError, FileKind, HealthCheck, HostHealth, Limits};

/// The health document format this receiver reads.
pub const HEALTH_FORMAT_VERSION: u64 = 1;

const KIND: FileKind = FileKind::SluiceHealth;

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, EvidenceError> {
    let document: Document = json::from_slice(KIND, bytes, limits)?;
    if document.sluice_health != HEALTH_FORMAT_VERSION {
        return Err(EvidenceError::UnsupportedVersion {
            kind: KIND,
            found: document.sluice_health,
            supported: HEALTH_FORMAT_VERSION,
        });
    }
    if document.tools.len() > limits.max_items.saturating_sub(document.checks.0.len()) {
        return Err(json::too_many(KIND, limits));
    }
    let mut evidence = Evidence::new(KIND);
    evidence.notes.extend(missing_fields(&document));
    evidence.health = Some(HostHealth {
        format_version: document.sluice_health,
        host: document.host,
        os: document.os,
        kernel: document.kernel,
        patch_level: document.patch_level,
        time: document.time,
        disk_free_bytes: document.disk_free_bytes,
        tools: document.tools,
        checks: document.checks.into_iter().map(check).collect(),
    });
    Ok(evidence)
}

#[derive(Debug, Deserialize)]
struct Document {
    sluice_health: u64,
    host: String,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    kernel: Option<String>,
    #[serde(default)]
    patch_level: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    disk_free_bytes: Option<u64>,
    // Limitation: the tools map is checked against the item limit after it
    // is read; the file-size limit bounds it until then.
    #[serde(default)]
    tools: BTreeMap<String, String>,
    #[serde(default)]
    checks: Items<Check>,
}

#[derive(Debug, Deserialize)]
struct Check {
    name: String,
    passed: bool,
    #[serde(default)]
    detail: String,
}

fn check(c: Check) -> HealthCheck {
    HealthCheck {
        name: c.name,
        passed: c.passed,
        detail: c.detail,
    }
}

fn missing_fields(document: &Document) -> Option<String> {
    let fields = [
        ("os", document.os.is_none()),
        ("kernel", document.kernel.is_none()),
        ("patch_level", document.patch_level.is_none()),
        ("time", document.time.is_none()),
        ("disk_free_bytes", document.disk_free_bytes.is_none()),
    ];
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, absent)| *absent)
        .map(|(n, _)| *n)
        .collect();
    (!missing.is_empty()).then(|| format!("health document omits {}", missing.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Evidence, EvidenceError> {
        super::super::parse(KIND, text.as_bytes(), &Limits::default())
    }

    const FULL: &str = r#"{"sluice_health":1,"host":"build-07","os":"Debian GNU/Linux 12",
        "kernel":"6.1.0-26-amd64","patch_level":"2024-10-03","time":"2024-10-03T12:00:00Z",
        "disk_free_bytes":52428800000,"tools":{"trivy":"0.56.1","grype":"0.82.0"},
        "checks":[{"name":"clamav","passed":true,"detail":"0 found"},{"name":"selinux","passed":false}],
        "future_field":{"nested":[1,2,3]}}"#;

    #[test]
    fn full_document_with_an_unknown_field() {
        let evidence = parse_str(FULL).unwrap();
        let health = evidence.health.unwrap();
        assert_eq!(health.host, "build-07");
        assert_eq!(health.kernel.as_deref(), Some("6.1.0-26-amd64"));
        assert_eq!(health.disk_free_bytes, Some(52_428_800_000));
        assert_eq!(
            health.tools.get("trivy").map(String::as_str),
            Some("0.56.1")
        );
        assert_eq!(health.tools.len(), 2);
        let failed: Vec<_> = health
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["selinux"]);
        assert_eq!(health.checks[1].detail, "");
        assert!(evidence.notes.is_empty());
    }

    #[test]
    fn the_senders_minimal_document_reads_with_a_note() {
        // The smallest document sender/src/report.rs recognises.
        let evidence = parse_str(r#"{"sluice_health":1,"host":"a"}"#).unwrap();
        assert_eq!(evidence.health.unwrap().host, "a");
        assert_eq!(
            evidence.notes,
            ["health document omits os, kernel, patch_level, time, disk_free_bytes"]
        );
    }

    #[test]
    fn later_format_versions_are_refused() {
        let err = parse_str(r#"{"sluice_health":2,"host":"a"}"#).unwrap_err();
        assert_eq!(
            err,
            EvidenceError::UnsupportedVersion {
                kind: KIND,
                found: 2,
                supported: 1
            }
        );
    }

    #[test]
    fn missing_host_or_wrong_types_are_shape_errors() {
        for doc in [
            r#"{"sluice_health":1}"#,
            r#"{"sluice_health":"1","host":"a"}"#,
            r#"{"sluice_health":1,"host":"a","disk_free_bytes":-5}"#,
            r#"{"sluice_health":1,"host":"a","checks":[{"name":"x"}]}"#,
        ] {
            let err = parse_str(doc).unwrap_err();
            assert!(
                matches!(
                    err,
                    EvidenceError::Json {
                        fault: super::super::JsonFault::Shape,
                        ..
                    }
                ),
                "{doc}: {err:?}"
            );
        }
    }
}
