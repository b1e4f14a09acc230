//! What a report file says, in one shape whatever its format.
//!
//! A report bundle's files were classified by content when they were packed
//! ([`FileKind`]). Here each kind is parsed into an [`Evidence`]: the
//! subjects the report is about, the components it lists, the
//! vulnerabilities it found, test results, provenance and build-host health.
//! Policy and binding checks read only this model; the original file is kept
//! as received elsewhere.
//!
//! ```text
//!  FileKind + bytes ──▶ size check ──▶ depth scan ──▶ format parser ──▶ Evidence
//!                        (Limits)      (JSON only)    (item budget)
//! ```
//!
//! Every file is hostile until policy has judged it, signature or not: the
//! signer vouches for who sent it, not for the tool that wrote it. Parsing is
//! bounded by [`Limits`] (bytes, nesting, items) and never panics. A file of
//! a kind Sluice does not read becomes an `Evidence` with a note, not an
//! error. This module does not judge what it reads: that is policy's job.

mod cyclonedx;
mod grype;
mod health;
mod intoto;
mod json;
mod junit;
mod sarif;
mod spdx;
mod trivy;

use std::collections::BTreeMap;

use serde::Serialize;
use sluice_protocol::digest::Digest;
pub use sluice_protocol::manifest::FileKind;

pub use health::HEALTH_FORMAT_VERSION;

/// Largest report file parsed by default.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// Most list items (components, vulnerabilities, test cases, ...) per file.
pub const DEFAULT_MAX_ITEMS: usize = 1_000_000;
/// Deepest nesting of JSON arrays and objects, or XML elements.
pub const DEFAULT_MAX_DEPTH: usize = 128;
/// Most names of failed test cases kept in a [`TestSummary`].
pub const MAX_FAILED_CASE_NAMES: usize = 100;

/// What one report file says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub kind: FileKind,
    /// Images or artifacts the report says it is about.
    pub subjects: Vec<SubjectRef>,
    pub components: Vec<Component>,
    pub vulnerabilities: Vec<Vulnerability>,
    /// Scanner results that are not vulnerabilities (misconfigurations,
    /// code findings), from SARIF.
    pub findings: Vec<Finding>,
    pub tests: Option<TestSummary>,
    pub provenance: Option<Provenance>,
    pub health: Option<HostHealth>,
    /// Things an administrator should know that fit nowhere else.
    pub notes: Vec<String>,
}

/// One thing a report names as its subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectRef {
    pub role: SubjectRole,
    /// A human name (image reference, file name); never used for matching.
    pub name: Option<String>,
    /// Set when the report gave a digest Sluice can check (sha256, sha512).
    pub digest: Option<Digest>,
}

/// What a subject digest identifies, so binding checks compare like with
/// like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectRole {
    /// What an SBOM or attestation describes: an image, file or package.
    Artifact,
    /// An image manifest or index digest (a registry's repo digest).
    ImageManifest,
    /// An image config digest (what Docker calls the image ID).
    ImageConfig,
    /// An uncompressed layer digest (a diff ID).
    Layer,
}

/// A package a report lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Component {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    /// SPDX ids, licence names or expressions, as the report wrote them.
    pub licences: Vec<String>,
}

/// One vulnerability in one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vulnerability {
    /// CVE, GHSA or the scanner's own id.
    pub id: String,
    pub package: Option<String>,
    pub installed_version: Option<String>,
    pub purl: Option<String>,
    pub severity: Severity,
    pub fix: FixState,
}

/// Severity, lowest first so that `max` picks the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

/// Whether a fix exists, as the report says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FixState {
    /// A fixed release exists; `version` names it when the report did.
    Fixed {
        version: Option<String>,
    },
    NotFixed,
    WontFix,
    /// A VEX statement says the product is not affected.
    NotAffected,
    Unknown,
}

/// A scanner result that is not a package vulnerability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule_id: String,
    pub severity: Severity,
    /// Where the tool found it (a file or artifact URI), if it said.
    pub location: Option<String>,
}

/// What a JUnit file says about its tests.
///
/// The figures count the `<testcase>` elements actually present; `declared`
/// holds the totals the file's own attributes claim. Where a file has no
/// test cases at all, the figures are the declared ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TestSummary {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// `classname::name` of failed or errored cases, at most
    /// [`MAX_FAILED_CASE_NAMES`].
    pub failed_cases: Vec<String>,
    /// Failed cases left out of `failed_cases`.
    pub failed_cases_omitted: u64,
    pub declared: DeclaredCounts,
}

/// Totals a JUnit file claims in its attributes; `None` where it is silent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeclaredCounts {
    pub tests: Option<u64>,
    pub failures: Option<u64>,
    pub errors: Option<u64>,
    pub skipped: Option<u64>,
}

/// What an in-toto statement attests, SLSA provenance or otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// The statement's `_type`.
    pub statement_type: String,
    pub predicate_type: String,
    /// DSSE `payloadType` when the statement came in an envelope.
    pub payload_type: Option<String>,
    pub builder_id: Option<String>,
    pub build_type: Option<String>,
    pub source: Option<SourceRef>,
    pub subjects: Vec<SubjectRef>,
}

/// Where a build's source came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub uri: String,
    /// Branch or tag (`refs/heads/main`), when named.
    pub git_ref: Option<String>,
    pub commit: Option<String>,
}

/// The health of the host that produced a report bundle; see
/// the `health` module for the document format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostHealth {
    pub format_version: u64,
    pub host: String,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub patch_level: Option<String>,
    /// RFC 3339 time of the check, as written.
    pub time: Option<String>,
    pub disk_free_bytes: Option<u64>,
    /// Tool name to version.
    pub tools: BTreeMap<String, String>,
    pub checks: Vec<HealthCheck>,
}

/// One named check on the build host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Bounds on one report file.
///
/// `max_depth` is enforced by a scan before parsing; whatever it says,
/// serde_json itself refuses JSON nested deeper than 128 levels, so larger
/// values do not raise that ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_items: usize,
    pub max_depth: usize,
}

/// Why a report file could not be read. Each variant names the file kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("{kind} report is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        kind: FileKind,
        len: usize,
        max: usize,
    },
    #[error("{kind} report nests deeper than {max} levels")]
    TooDeep { kind: FileKind, max: usize },
    #[error("{kind} report lists more than {max} items")]
    TooManyItems { kind: FileKind, max: usize },
    #[error("{kind} report is not valid JSON ({fault}) at line {line}, column {column}: {detail}")]
    Json {
        kind: FileKind,
        fault: JsonFault,
        line: usize,
        column: usize,
        detail: String,
    },
    #[error("{kind} report is not well-formed XML at byte {offset}: {detail}")]
    Xml {
        kind: FileKind,
        offset: u64,
        detail: String,
    },
    #[error("{kind} report's root element is `{found}`, not `testsuites` or `testsuite`")]
    NotJunit { kind: FileKind, found: String },
    #[error("{kind} report has an attribute `{name}` that is not a count: `{value}`")]
    BadCount {
        kind: FileKind,
        name: &'static str,
        value: String,
    },
    #[error("{kind} envelope payload is not valid base64: {detail}")]
    Base64 { kind: FileKind, detail: String },
    #[error("{kind} report lacks {what}")]
    Missing { kind: FileKind, what: &'static str },
    #[error("{kind} report has format version {found}; this receiver reads {supported}")]
    UnsupportedVersion {
        kind: FileKind,
        found: u64,
        supported: u64,
    },
    #[error("{kind} report, line {line}: {source}")]
    Line {
        kind: FileKind,
        line: usize,
        source: Box<EvidenceError>,
    },
}

/// What kind of JSON fault, from serde_json's own classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonFault {
    /// Not JSON at all.
    Syntax,
    /// JSON, but not the shape this format has.
    Shape,
    /// The document ends early.
    Truncated,
}

/// Parses one report file of `kind` into [`Evidence`].
///
/// # Errors
///
/// [`EvidenceError`] when the file breaks a limit or is malformed for its
/// kind. Kinds Sluice does not parse never fail: they yield a note.
pub fn parse(kind: FileKind, bytes: &[u8], limits: &Limits) -> Result<Evidence, EvidenceError> {
    if bytes.len() > limits.max_bytes {
        return Err(EvidenceError::TooLarge {
            kind,
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    json::with_item_budget(limits.max_items, || dispatch(kind, bytes, limits))
}

fn dispatch(kind: FileKind, bytes: &[u8], limits: &Limits) -> Result<Evidence, EvidenceError> {
    match kind {
        FileKind::CycloneDx => cyclonedx::parse(bytes, limits),
        FileKind::Spdx => spdx::parse(bytes, limits),
        FileKind::Trivy => trivy::parse(bytes, limits),
        FileKind::Grype => grype::parse(bytes, limits),
        FileKind::Sarif => sarif::parse(bytes, limits),
        FileKind::Junit => junit::parse(bytes, limits),
        FileKind::InToto | FileKind::Dsse | FileKind::SigstoreBundle => {
            intoto::parse(kind, bytes, limits)
        }
        FileKind::CosignSignature => intoto::parse_cosign_signature(bytes, limits),
        FileKind::SluiceHealth => health::parse(bytes, limits),
        FileKind::Unknown | FileKind::ImageFile => Ok(unread(kind, bytes.len())),
    }
}

fn unread(kind: FileKind, len: usize) -> Evidence {
    let mut evidence = Evidence::new(kind);
    let note = format!("{kind} file of {len} bytes is not a format Sluice reads; kept as is");
    evidence.notes.push(note);
    evidence
}

impl Evidence {
    /// An empty record for a file of `kind`.
    pub fn new(kind: FileKind) -> Self {
        Self {
            kind,
            subjects: Vec::new(),
            components: Vec::new(),
            vulnerabilities: Vec::new(),
            findings: Vec::new(),
            tests: None,
            provenance: None,
            health: None,
            notes: Vec::new(),
        }
    }

    /// Subject digests the report names, whatever their role.
    pub fn subject_digests(&self) -> impl Iterator<Item = &Digest> {
        self.subjects.iter().filter_map(|s| s.digest.as_ref())
    }

    /// How many vulnerabilities have each severity.
    pub fn severity_counts(&self) -> BTreeMap<Severity, usize> {
        let mut counts = BTreeMap::new();
        for vulnerability in &self.vulnerabilities {
            *counts.entry(vulnerability.severity).or_insert(0) += 1;
        }
        counts
    }
}

impl SubjectRef {
    fn new(role: SubjectRole, name: Option<String>, digest: Option<Digest>) -> Self {
        Self { role, name, digest }
    }
}

impl Severity {
    /// Reads a severity word in any case (`CRITICAL`, `High`, `moderate`).
    pub fn from_word(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" => Self::Critical,
            "high" | "important" => Self::High,
            "medium" | "moderate" => Self::Medium,
            "low" => Self::Low,
            "negligible" | "info" | "informational" | "none" => Self::Negligible,
            _ => Self::Unknown,
        }
    }

    /// Maps a CVSS base score to the CVSS v3 qualitative rating.
    pub fn from_cvss(score: f64) -> Self {
        if score >= 9.0 {
            Self::Critical
        } else if score >= 7.0 {
            Self::High
        } else if score >= 4.0 {
            Self::Medium
        } else if score > 0.0 {
            Self::Low
        } else if score == 0.0 {
            Self::Negligible
        } else {
            Self::Unknown
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_items: DEFAULT_MAX_ITEMS,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl std::fmt::Display for JsonFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Syntax => "syntax",
            Self::Shape => "unexpected shape",
            Self::Truncated => "truncated",
        })
    }
}

/// A digest from `algorithm` and `hex` parts, if Sluice can check it.
fn digest_from_parts(algorithm: &str, hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{}:{hex}", algorithm.to_ascii_lowercase())).ok()
}

/// Splits `repo@sha256:...` into its name and digest.
fn split_repo_digest(text: &str) -> (Option<String>, Option<Digest>) {
    match text.rsplit_once('@') {
        Some((name, digest)) => (Some(name.to_owned()), Digest::parse(digest).ok()),
        None => (None, Digest::parse(text).ok()),
    }
}

/// The manifest digest in an OCI package URL (`pkg:oci/name@sha256:...`).
fn oci_purl_digest(purl: &str) -> Option<Digest> {
    let rest = purl.strip_prefix("pkg:oci/")?;
    let version = rest.split_once('@')?.1;
    let version = version.split(['?', '#']).next()?;
    Digest::parse(&version.replacen("%3A", ":", 1).replacen("%3a", ":", 1)).ok()
}

/// Name and version from a package URL (`pkg:type/namespace/name@version`).
// Limitation: percent-escapes in the name and version are kept as written;
// they only label a vulnerability and are never matched against digests.
fn purl_name_version(purl: &str) -> Option<(String, Option<String>)> {
    let rest = purl.strip_prefix("pkg:")?.split(['?', '#']).next()?;
    let (path, version) = match rest.rsplit_once('@') {
        Some((path, version)) => (path, Some(version.to_owned())),
        None => (rest, None),
    };
    let name = path.rsplit('/').next().filter(|n| !n.is_empty())?;
    Some((name.to_owned(), version))
}

/// The part of a text worth echoing in a note: at most 200 characters.
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Root of the shared report fixtures, or `None` (with a message) when the
/// checkout has no `shared/` beside it.
#[cfg(test)]
pub(crate) fn fixture_root() -> Option<std::path::PathBuf> {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/reports");
    if root.exists() {
        Some(root)
    } else {
        eprintln!("skipped: ../shared/fixtures not found");
        None
    }
}

/// Parses the fixture at `rel` (relative to [`fixture_root`]) as `kind`.
#[cfg(test)]
pub(crate) fn parse_fixture(root: &std::path::Path, rel: &str, kind: FileKind) -> Evidence {
    let bytes = std::fs::read(root.join(rel)).unwrap();
    parse(kind, &bytes, &Limits::default()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_KINDS: [FileKind; 13] = [
        FileKind::CycloneDx,
        FileKind::Spdx,
        FileKind::Trivy,
        FileKind::Grype,
        FileKind::Sarif,
        FileKind::Junit,
        FileKind::InToto,
        FileKind::Dsse,
        FileKind::SigstoreBundle,
        FileKind::CosignSignature,
        FileKind::SluiceHealth,
        FileKind::Unknown,
        FileKind::ImageFile,
    ];

    /// Small valid documents of each kind, to corrupt.
    const SEEDS: [(FileKind, &str); 7] = [
        (
            FileKind::CycloneDx,
            r#"{"metadata":{"component":{"name":"a","version":"sha256:00"}},"components":[{"name":"b","licenses":[{"license":{"id":"MIT"}}]}],"vulnerabilities":[{"id":"CVE-1","ratings":[{"severity":"high"}],"affects":[{"ref":"b"}]}]}"#,
        ),
        (
            FileKind::Trivy,
            r#"{"SchemaVersion":2,"ArtifactName":"x","Metadata":{"ImageID":"sha256:00","RepoDigests":["r@sha256:00"]},"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","Severity":"LOW","Status":"fixed"}]}]}"#,
        ),
        (
            FileKind::Sarif,
            r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"rules":[{"id":"CVE-1","properties":{"security-severity":"5"}}]}},"results":[{"ruleId":"CVE-1","ruleIndex":0,"message":{"text":"Package: p"}}]}]}"#,
        ),
        (
            FileKind::Junit,
            r#"<testsuites tests="2"><testsuite><testcase classname="c" name="n"><failure/></testcase><testcase name="m"/></testsuite></testsuites>"#,
        ),
        (
            FileKind::Dsse,
            r#"{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbeyJuYW1lIjoieCJ9XX0=","signatures":[]}"#,
        ),
        (
            FileKind::Spdx,
            r#"{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[{"type":"software_Package","spdxId":"p","name":"n"},{"type":"Relationship","relationshipType":"describes","from":"d","to":["p"]}]}"#,
        ),
        (
            FileKind::SluiceHealth,
            r#"{"sluice_health":1,"host":"h","tools":{"t":"1"},"checks":[{"name":"c","passed":true}]}"#,
        ),
    ];

    fn parse_str(kind: FileKind, text: &str) -> Result<Evidence, EvidenceError> {
        parse(kind, text.as_bytes(), &Limits::default())
    }

    #[test]
    fn fuzz_seeds_are_valid_documents() {
        for (kind, doc) in SEEDS {
            let evidence = parse_str(kind, doc).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let found = evidence.subjects.len()
                + evidence.components.len()
                + evidence.vulnerabilities.len()
                + usize::from(evidence.tests.is_some())
                + usize::from(evidence.health.is_some());
            assert!(found > 0, "{kind} seed says nothing");
        }
    }

    #[test]
    fn unknown_kind_is_kept_with_a_note() {
        let evidence = parse_str(FileKind::Unknown, "sha256:abc\n").unwrap();
        assert_eq!(evidence.kind, FileKind::Unknown);
        assert_eq!(evidence.notes.len(), 1);
        assert!(
            evidence.notes[0].contains("11 bytes"),
            "{:?}",
            evidence.notes
        );
        assert!(evidence.components.is_empty() && evidence.subjects.is_empty());
    }

    #[test]
    fn oversize_file_is_refused_before_parsing() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = parse(FileKind::Unknown, &[0u8; 11], &limits).unwrap_err();
        assert_eq!(
            err,
            EvidenceError::TooLarge {
                kind: FileKind::Unknown,
                len: 11,
                max: 10
            }
        );
    }

    #[test]
    fn empty_input_is_a_typed_error_for_json_kinds() {
        for kind in [FileKind::CycloneDx, FileKind::Trivy, FileKind::SluiceHealth] {
            let err = parse_str(kind, "").unwrap_err();
            assert!(
                matches!(err, EvidenceError::Json { kind: k, fault: JsonFault::Truncated, .. } if k == kind),
                "{err:?}"
            );
        }
    }

    #[test]
    fn malformed_json_names_kind_and_place() {
        let err = parse_str(FileKind::Grype, "{\"matches\" []}").unwrap_err();
        match err {
            EvidenceError::Json {
                kind, fault, line, ..
            } => {
                assert_eq!(kind, FileKind::Grype);
                assert_eq!(fault, JsonFault::Syntax);
                assert_eq!(line, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_shape_is_a_shape_fault() {
        let err = parse_str(FileKind::Trivy, r#"{"Results": "not a list"}"#).unwrap_err();
        assert!(
            matches!(
                err,
                EvidenceError::Json {
                    fault: JsonFault::Shape,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_panic() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for kind in ALL_KINDS {
            let result = parse_str(kind, &deep);
            if matches!(kind, FileKind::Unknown | FileKind::ImageFile) {
                assert!(result.is_ok());
                continue;
            }
            assert!(result.is_err(), "{kind}");
        }
        let err = parse_str(FileKind::CycloneDx, &deep).unwrap_err();
        assert_eq!(
            err,
            EvidenceError::TooDeep {
                kind: FileKind::CycloneDx,
                max: DEFAULT_MAX_DEPTH
            }
        );
    }

    #[test]
    fn a_lower_depth_limit_is_honoured() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let doc = r#"{"bomFormat":"CycloneDX","components":[{"licenses":[{}]}]}"#;
        let err = parse(FileKind::CycloneDx, doc.as_bytes(), &limits).unwrap_err();
        assert_eq!(
            err,
            EvidenceError::TooDeep {
                kind: FileKind::CycloneDx,
                max: 3
            }
        );
    }

    #[test]
    fn item_limit_counts_across_nested_lists() {
        let limits = Limits {
            max_items: 3,
            ..Limits::default()
        };
        let doc = r#"{"components":[{"name":"a","components":[{"name":"b"},{"name":"c"}]},
                      {"name":"d"}]}"#;
        let err = parse(FileKind::CycloneDx, doc.as_bytes(), &limits).unwrap_err();
        assert_eq!(
            err,
            EvidenceError::TooManyItems {
                kind: FileKind::CycloneDx,
                max: 3
            }
        );
        let limits = Limits {
            max_items: 4,
            ..Limits::default()
        };
        let evidence = parse(FileKind::CycloneDx, doc.as_bytes(), &limits).unwrap();
        assert_eq!(evidence.components.len(), 4);
    }

    #[test]
    fn severity_words_and_scores() {
        assert_eq!(Severity::from_word("CRITICAL"), Severity::Critical);
        assert_eq!(Severity::from_word("Moderate"), Severity::Medium);
        assert_eq!(Severity::from_word("whatever"), Severity::Unknown);
        assert_eq!(Severity::from_cvss(9.8), Severity::Critical);
        assert_eq!(Severity::from_cvss(5.3), Severity::Medium);
        assert_eq!(Severity::from_cvss(0.0), Severity::Negligible);
        assert_eq!(Severity::from_cvss(f64::NAN), Severity::Unknown);
        assert!(Severity::Critical > Severity::Low && Severity::Low > Severity::Unknown);
    }

    #[test]
    fn evidence_serialises_for_show_json() {
        let mut evidence = Evidence::new(FileKind::Trivy);
        evidence.vulnerabilities.push(Vulnerability {
            id: "CVE-2019-1549".into(),
            package: Some("openssl".into()),
            installed_version: None,
            purl: None,
            severity: Severity::Medium,
            fix: FixState::Fixed {
                version: Some("1.1.1d".into()),
            },
        });
        let json = serde_json::to_value(&evidence).unwrap();
        assert_eq!(json["kind"], "trivy");
        assert_eq!(json["vulnerabilities"][0]["severity"], "medium");
        assert_eq!(json["vulnerabilities"][0]["fix"]["state"], "fixed");
        assert_eq!(json["vulnerabilities"][0]["fix"]["version"], "1.1.1d");
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(300);
        assert_eq!(clip(&long).chars().count(), 201);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for kind in ALL_KINDS {
                let _ = parse(kind, &bytes, &Limits::default());
            }
        }

        #[test]
        fn corrupted_documents_never_panic(
            seed in 0..SEEDS.len(),
            cut in 0usize..400,
            at in 0usize..400,
            byte in any::<u8>(),
        ) {
            let (kind, doc) = SEEDS[seed];
            let mut bytes = doc.as_bytes().to_vec();
            if let Some(slot) = bytes.get_mut(at) {
                *slot = byte;
            }
            bytes.truncate(cut.max(1));
            let _ = parse(kind, &bytes, &Limits::default());
        }

        #[test]
        fn random_json_like_text_never_panics(text in "[\\[\\]{}\":,a-z0-9 ]{0,256}") {
            for kind in ALL_KINDS {
                let _ = parse(kind, text.as_bytes(), &Limits::default());
            }
        }
    }
}
