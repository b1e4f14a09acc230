//! in-toto statements and what carries them: DSSE envelopes, `.intoto.jsonl`
//! files (one envelope per line), Sigstore bundles, Google Cloud Build's
//! provenance wrapper, and cosign "simple signing" signatures.
//!
//! ```text
//!  sigstore bundle ─┐
//!  GCB wrapper ─────┼─▶ DSSE envelope ──base64──▶ in-toto statement ─▶ subjects
//!  .intoto.jsonl ───┘   (payloadType)             (predicateType)   ─▶ SLSA builder, source
//!                                                                   ─▶ CycloneDX / SPDX predicate
//! ```
//!
//! Signatures inside these files are not checked here: Sluice's own report
//! key signed the bundle, and policy decides whether a third-party signature
//! must also be verified.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use sluice_protocol::digest::Digest;

use super::json::{self, Items, StringOr};
use super::{
    Evidence, EvidenceError, FileKind, Limits, Provenance, SourceRef, SubjectRef, SubjectRole,
    cyclonedx, spdx,
};

/// DSSE payload type of an in-toto statement.
const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// Prefix of the containers/image signature file format.
const COSIGN_MAGIC: &[u8] = b"\0sigstore-json\n";

pub(super) fn parse(
    kind: FileKind,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Evidence, EvidenceError> {
    let mut reader = StatementReader {
        kind,
        limits,
        evidence: Evidence::new(kind),
    };
    match json_lines(bytes) {
        Some(lines) => {
            for (index, line) in lines {
                let line_error = |e| EvidenceError::Line {
                    kind,
                    line: index + 1,
                    source: Box::new(e),
                };
                reader.read_document(line.as_bytes()).map_err(line_error)?;
            }
        }
        None => reader.read_document(bytes)?,
    }
    Ok(reader.evidence)
}

/// A cosign signature in the containers/image format: a fixed prefix, then
/// JSON whose base64 payload is a "simple signing" document naming the
/// image by manifest digest.
pub(super) fn parse_cosign_signature(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Evidence, EvidenceError> {
    let kind = FileKind::CosignSignature;
    let missing = EvidenceError::Missing {
        kind,
        what: "the `\\0sigstore-json` prefix",
    };
    let body = bytes.strip_prefix(COSIGN_MAGIC).ok_or(missing)?;
    let signature: CosignSignature = json::from_slice(kind, body, limits)?;
    let payload = decode_base64(kind, &signature.payload)?;
    let simple: SimpleSigning = json::from_slice(kind, &payload, limits)?;

    let mut evidence = Evidence::new(kind);
    let critical = simple.critical;
    let digest = critical
        .image
        .manifest_digest
        .as_deref()
        .and_then(|d| Digest::parse(d).ok());
    let name = critical.identity.docker_reference;
    evidence
        .subjects
        .push(SubjectRef::new(SubjectRole::ImageManifest, name, digest));
    // Limitation: the cosign signature is read for the image it names, not
    // verified; Sluice holds no cosign keys or Fulcio roots.
    evidence
        .notes
        .push("cosign signature not verified by Sluice; read for its subject only".into());
    Ok(evidence)
}

/// Non-empty lines, when `bytes` is JSON Lines rather than one document:
/// more than one line, and the first a complete JSON value on its own.
fn json_lines(bytes: &[u8]) -> Option<Vec<(usize, &str)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let first = lines.first()?.1;
    let complete = serde_json::from_str::<IgnoredAny>(first).is_ok();
    (lines.len() > 1 && complete).then_some(lines)
}

struct StatementReader<'a> {
    kind: FileKind,
    limits: &'a Limits,
    evidence: Evidence,
}

impl StatementReader<'_> {
    /// Reads one JSON document, whichever carrier it is.
    fn read_document(&mut self, bytes: &[u8]) -> Result<(), EvidenceError> {
        let probe: Probe = json::from_slice(self.kind, bytes, self.limits)?;
        if probe.payload_type.is_some() {
            let envelope: Envelope = self.read_json(bytes)?;
            self.read_envelope(&envelope)
        } else if probe.provenance_summary.is_some() {
            let wrapper: GcbWrapper = self.read_json(bytes)?;
            self.read_gcb(&wrapper)
        } else if probe.dsse_envelope.is_some() || probe.message_signature.is_some() {
            let bundle: SigstoreBundle = self.read_json(bytes)?;
            self.read_bundle(&bundle)
        } else if probe.statement_type.is_some() {
            self.read_statement(bytes, None)
        } else {
            let what = "an in-toto statement, DSSE envelope or Sigstore bundle";
            Err(EvidenceError::Missing {
                kind: self.kind,
                what,
            })
        }
    }

    fn read_json<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, EvidenceError> {
        json::from_slice(self.kind, bytes, self.limits)
    }

    fn read_envelope(&mut self, envelope: &Envelope) -> Result<(), EvidenceError> {
        if envelope.payload_type != IN_TOTO_PAYLOAD {
            let payload_type = super::clip(&envelope.payload_type);
            let note =
                format!("DSSE payload type `{payload_type}` is not an in-toto statement; not read");
            self.evidence.notes.push(note);
            return Ok(());
        }
        let payload = decode_base64(self.kind, &envelope.payload)?;
        self.read_statement(&payload, Some(envelope.payload_type.clone()))
    }

    fn read_gcb(&mut self, wrapper: &GcbWrapper) -> Result<(), EvidenceError> {
        let provenance = &wrapper.provenance_summary.provenance;
        if provenance.is_empty() {
            let what = "a provenance entry in `provenance_summary`";
            return Err(EvidenceError::Missing {
                kind: self.kind,
                what,
            });
        }
        for entry in provenance {
            self.read_envelope(&entry.envelope)?;
        }
        Ok(())
    }

    fn read_bundle(&mut self, bundle: &SigstoreBundle) -> Result<(), EvidenceError> {
        if let Some(envelope) = &bundle.dsse_envelope {
            return self.read_envelope(envelope);
        }
        let Some(signature) = &bundle.message_signature else {
            return Ok(());
        };
        let digest = &signature.message_digest;
        let raw = decode_base64(self.kind, &digest.digest)?;
        let algorithm = match digest.algorithm.as_str() {
            "SHA2_256" => "sha256",
            "SHA2_512" => "sha512",
            _ => "",
        };
        let digest = super::digest_from_parts(algorithm, &hex::encode(raw));
        self.evidence
            .subjects
            .push(SubjectRef::new(SubjectRole::Artifact, None, digest));
        Ok(())
    }

    /// Reads a statement's header, then its predicate in the shape its
    /// predicate type names.
    fn read_statement(
        &mut self,
        bytes: &[u8],
        payload_type: Option<String>,
    ) -> Result<(), EvidenceError> {
        let head: Statement<IgnoredAny> = self.read_json(bytes)?;
        let subjects = statement_subjects(&head.subject);
        self.evidence.subjects.extend(subjects.iter().cloned());
        let mut provenance = Provenance {
            statement_type: head.statement_type,
            predicate_type: head.predicate_type,
            payload_type,
            builder_id: None,
            build_type: None,
            source: None,
            subjects,
        };
        self.read_predicate(bytes, &mut provenance)?;
        self.keep(provenance);
        Ok(())
    }

    fn read_predicate(
        &mut self,
        bytes: &[u8],
        provenance: &mut Provenance,
    ) -> Result<(), EvidenceError> {
        let predicate_type = provenance.predicate_type.as_str();
        if predicate_type.starts_with("https://slsa.dev/provenance/") {
            let statement: Statement<SlsaPredicate> = self.read_json(bytes)?;
            read_slsa(&statement.predicate, provenance);
        } else if predicate_type.starts_with("https://cyclonedx.org/bom") {
            let statement: Statement<cyclonedx::Bom> = self.read_json(bytes)?;
            cyclonedx::read_bom(&statement.predicate, &mut self.evidence);
        } else if predicate_type.starts_with("https://spdx.dev/Document") {
            let statement: Statement<spdx::SpdxDocument> = self.read_json(bytes)?;
            spdx::read_document(&statement.predicate, &mut self.evidence);
        }
        Ok(())
    }

    /// The first statement is the file's provenance; later ones are noted.
    fn keep(&mut self, provenance: Provenance) {
        if self.evidence.provenance.is_none() {
            self.evidence.provenance = Some(provenance);
            return;
        }
        let predicate = super::clip(&provenance.predicate_type);
        let count = provenance.subjects.len();
        let note = format!(
            "a further statement ({predicate}) about {count} subjects; its subjects are listed"
        );
        self.evidence.notes.push(note);
    }
}

fn statement_subjects(subjects: &Items<InTotoSubject>) -> Vec<SubjectRef> {
    let mut refs = Vec::new();
    for subject in subjects {
        let digests = subject.digest.digests();
        if digests.is_empty() {
            refs.push(SubjectRef::new(
                SubjectRole::Artifact,
                subject.name.clone(),
                None,
            ));
        }
        for digest in digests {
            refs.push(SubjectRef::new(
                SubjectRole::Artifact,
                subject.name.clone(),
                Some(digest),
            ));
        }
    }
    refs
}

fn read_slsa(predicate: &SlsaPredicate, provenance: &mut Provenance) {
    let v1 = &predicate.run_details.builder.id;
    provenance.builder_id = v1.clone().or(predicate.builder.id.clone());
    let v1_type = &predicate.build_definition.build_type;
    provenance.build_type = v1_type.clone().or(predicate.build_type.clone());
    provenance.source = v1_source(predicate)
        .or_else(|| config_source(&predicate.invocation.config_source))
        .or_else(|| material_source(&predicate.materials));
}

/// SLSA v1: GitHub workflow parameters or a `source` parameter, with the
/// commit from the first git dependency.
fn v1_source(predicate: &SlsaPredicate) -> Option<SourceRef> {
    let definition = &predicate.build_definition;
    let parameters = &definition.external_parameters;
    let git_dependency = definition
        .resolved_dependencies
        .iter()
        .find(|d| d.uri.as_deref().is_some_and(|u| u.starts_with("git+")));
    let commit = git_dependency.and_then(|d| d.digest.commit());
    if let Some(repository) = &parameters.workflow.repository {
        let git_ref = parameters.workflow.git_ref.clone();
        return Some(SourceRef {
            uri: repository.clone(),
            git_ref,
            commit,
        });
    }
    match &parameters.source {
        StringOr::String(uri) => Some(split_git_uri(uri, commit)),
        StringOr::Value(resource) => {
            let commit = resource.digest.commit().or(commit);
            Some(split_git_uri(resource.uri.as_deref()?, commit))
        }
        StringOr::Absent => None,
    }
}

/// SLSA v0.2: `invocation.configSource`.
fn config_source(source: &ConfigSource) -> Option<SourceRef> {
    let uri = source.uri.as_deref()?;
    Some(split_git_uri(uri, source.digest.commit()))
}

/// SLSA v0.1 and Cloud Build: the first material with a URI, whose commit
/// is in its digest or, for Cloud Build v0.2, in a `/commit/<sha>` path.
fn material_source(materials: &Items<Material>) -> Option<SourceRef> {
    let material = materials.iter().find(|m| m.uri.is_some())?;
    let uri = material.uri.as_deref()?;
    if let Some((repository, commit)) = uri.rsplit_once("/commit/") {
        let commit = Some(commit.to_owned()).filter(|c| !c.is_empty());
        return Some(SourceRef {
            uri: repository.to_owned(),
            git_ref: None,
            commit,
        });
    }
    Some(split_git_uri(uri, material.digest.commit()))
}

/// Splits `git+https://host/repo@refs/heads/main` into repository and ref.
fn split_git_uri(uri: &str, commit: Option<String>) -> SourceRef {
    match uri.rsplit_once('@') {
        Some((repository, git_ref)) if git_ref.starts_with("refs/") => SourceRef {
            uri: repository.to_owned(),
            git_ref: Some(git_ref.to_owned()),
            commit,
        },
        _ => SourceRef {
            uri: uri.to_owned(),
            git_ref: None,
            commit,
        },
    }
}

/// Decodes standard or URL-safe base64, padded or not (DSSE names standard
/// base64, but URL-safe envelopes exist in the wild).
fn decode_base64(kind: FileKind, text: &str) -> Result<Vec<u8>, EvidenceError> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&alphabet::URL_SAFE, config);
    standard.decode(text).or_else(|first| {
        url_safe.decode(text).map_err(|_| EvidenceError::Base64 {
            kind,
            detail: first.to_string(),
        })
    })
}

/// Just enough of a document to tell which carrier it is.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Probe {
    #[serde(rename = "_type")]
    statement_type: Option<IgnoredAny>,
    #[serde(rename = "payloadType")]
    payload_type: Option<IgnoredAny>,
    provenance_summary: Option<IgnoredAny>,
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: Option<IgnoredAny>,
    #[serde(rename = "messageSignature")]
    message_signature: Option<IgnoredAny>,
}

/// A DSSE envelope (signatures are not read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GcbWrapper {
    provenance_summary: GcbSummary,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GcbSummary {
    provenance: Items<GcbProvenance>,
}

#[derive(Debug, Deserialize)]
struct GcbProvenance {
    envelope: Envelope,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SigstoreBundle {
    dsse_envelope: Option<Envelope>,
    message_signature: Option<MessageSignature>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Debug, Deserialize)]
struct CosignSignature {
    payload: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Critical {
    identity: Identity,
    image: Image,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    manifest_digest: Option<String>,
}

/// An in-toto statement (v0.1 and v1), its predicate read as `P`.
#[derive(Debug, Deserialize)]
struct Statement<P> {
    #[serde(rename = "_type")]
    statement_type: String,
    #[serde(default)]
    subject: Items<InTotoSubject>,
    #[serde(rename = "predicateType", default)]
    predicate_type: String,
    #[serde(default)]
    predicate: P,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InTotoSubject {
    name: Option<String>,
    digest: DigestSet,
}

/// An in-toto digest set, keeping only the algorithms Sluice uses. Other
/// keys are skipped without being stored.
#[derive(Debug, Default)]
struct DigestSet {
    sha256: Option<String>,
    sha512: Option<String>,
    commit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SlsaPredicate {
    builder: Builder,
    build_type: Option<String>,
    invocation: Invocation,
    materials: Items<Material>,
    build_definition: BuildDefinition,
    run_details: RunDetails,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Builder {
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Invocation {
    config_source: ConfigSource,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfigSource {
    uri: Option<String>,
    digest: DigestSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Material {
    uri: Option<String>,
    digest: DigestSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct BuildDefinition {
    build_type: Option<String>,
    external_parameters: ExternalParameters,
    resolved_dependencies: Items<Material>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExternalParameters {
    workflow: Workflow,
    #[serde(deserialize_with = "json::string_or")]
    source: StringOr<Material>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Workflow {
    repository: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RunDetails {
    builder: Builder,
}

impl DigestSet {
    /// Checkable digests, sha256 first.
    fn digests(&self) -> Vec<Digest> {
        let sha256 = self
            .sha256
            .as_deref()
            .and_then(|h| super::digest_from_parts("sha256", h));
        let sha512 = self
            .sha512
            .as_deref()
            .and_then(|h| super::digest_from_parts("sha512", h));
        sha256.into_iter().chain(sha512).collect()
    }

    fn commit(&self) -> Option<String> {
        self.commit.clone()
    }
}

impl<'de> Deserialize<'de> for DigestSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DigestSetVisitor)
    }
}

struct DigestSetVisitor;

impl<'de> Visitor<'de> for DigestSetVisitor {
    type Value = DigestSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of algorithm to hex digest")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut set = DigestSet::default();
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "sha256" => &mut set.sha256,
                "sha512" => &mut set.sha512,
                "gitCommit" | "sha1" => &mut set.commit,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value: String = map.next_value()?;
            slot.get_or_insert(value);
        }
        Ok(set)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(DigestSet::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};
    use base64::engine::general_purpose::STANDARD;

    fn digest(text: &str) -> Option<Digest> {
        Some(Digest::parse(text).unwrap())
    }

    fn envelope_of(statement: &str) -> String {
        let payload = STANDARD.encode(statement);
        format!(r#"{{"payloadType":"{IN_TOTO_PAYLOAD}","payload":"{payload}","signatures":[]}}"#)
    }

    fn provenance(evidence: &Evidence) -> &Provenance {
        evidence.provenance.as_ref().unwrap()
    }

    #[test]
    fn fixture_slsa_provenance_subjects_and_builders() {
        let Some(root) = fixture_root() else { return };
        let expected = [
            (
                "intoto-slsa/slsa-gha-generic-v1.10.0.intoto.jsonl",
                FileKind::Dsse,
                "sha256:2892146b063a94cb4a4318c0e98d38af12dcf2b1e29237486b58463b59607bbd",
                "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.10.0",
            ),
            (
                "intoto-slsa/gcb-v0.2-container-provenance.json",
                FileKind::InToto,
                "sha256:1a033b002f89ed2b8ea733162497fb70f1a4049a7f8602d6a33682b4ad9921fd",
                "https://cloudbuild.googleapis.com/GoogleHostedWorker@v0.2",
            ),
            (
                "intoto-slsa/gcb-v0.3-container-provenance.json",
                FileKind::InToto,
                "sha256:f472ca4b68898c951ac3b476cba919d0d56fca4ced631fabcead51e4b2b690e7",
                "https://cloudbuild.googleapis.com/GoogleHostedWorker@v0.3",
            ),
            (
                "sigstore/sigstore-go-bundle-provenance.sigstore.json",
                FileKind::SigstoreBundle,
                "sha512:76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751",
                "https://github.com/actions/runner",
            ),
            (
                "sigstore/sigstore-go-dsse.sigstore.json",
                FileKind::SigstoreBundle,
                "sha512:bbfd372fc9beeb777fe35d05bb10c0c70a9733d366a75fed7dd18866c7391de3ee7e88ba74dd47abf3e15c845e547fcf0e5c3da80854c751554224d3a6d4e55f",
                "https://github.com/npm/slsa-provenance@0.0.1",
            ),
        ];
        for (rel, kind, subject, builder) in expected {
            let evidence = parse_fixture(&root, rel, kind);
            let p = provenance(&evidence);
            assert_eq!(p.subjects.len(), 1, "{rel}");
            assert_eq!(p.subjects[0].digest, digest(subject), "{rel}");
            assert_eq!(p.builder_id.as_deref(), Some(builder), "{rel}");
            assert!(
                p.predicate_type
                    .starts_with("https://slsa.dev/provenance/v0."),
                "{rel}"
            );
            assert_eq!(p.payload_type.as_deref(), Some(IN_TOTO_PAYLOAD), "{rel}");
            assert_eq!(evidence.subjects, p.subjects, "{rel}");
            assert!(evidence.notes.is_empty(), "{rel}: {:?}", evidence.notes);
        }
    }

    #[test]
    fn gcb_subjects_match_their_digest_files() {
        let Some(root) = fixture_root() else { return };
        for version in ["v0.2", "v0.3"] {
            let rel = format!("intoto-slsa/gcb-{version}-container-provenance.json");
            let evidence = parse_fixture(&root, &rel, FileKind::InToto);
            let digest_file = root.join(format!(
                "intoto-slsa/gcb-{version}-container-provenance.digest"
            ));
            let expected = std::fs::read_to_string(digest_file).unwrap();
            let found = evidence.subject_digests().next().unwrap();
            assert_eq!(found.as_str(), expected.trim(), "{rel}");
        }
    }

    #[test]
    fn fixture_sources() {
        let Some(root) = fixture_root() else { return };
        let source = |rel: &str, kind| {
            provenance(&parse_fixture(&root, rel, kind))
                .source
                .clone()
                .unwrap()
        };

        let gha = source(
            "intoto-slsa/slsa-gha-generic-v1.10.0.intoto.jsonl",
            FileKind::Dsse,
        );
        assert_eq!(
            gha.uri,
            "git+https://github.com/slsa-framework/example-package"
        );
        assert_eq!(gha.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(
            gha.commit.as_deref(),
            Some("d37a7f740ee7404914456f24dcd90e865a0509e8")
        );

        let gcb2 = source(
            "intoto-slsa/gcb-v0.2-container-provenance.json",
            FileKind::InToto,
        );
        assert_eq!(gcb2.uri, "https://github.com/laurentsimon/gcb-tests");
        assert_eq!(
            gcb2.commit.as_deref(),
            Some("fbbb98765e85ad464302dc5977968104d36e455e")
        );

        let gcb3 = source(
            "intoto-slsa/gcb-v0.3-container-provenance.json",
            FileKind::InToto,
        );
        assert_eq!(gcb3.uri, "https://github.com/laurentsimon/gcb-tests");
        assert_eq!(
            gcb3.commit.as_deref(),
            Some("01ce393d04eb6df2a7b2b3e95d4126e687afb7ae")
        );

        let npm = source(
            "sigstore/sigstore-go-dsse.sigstore.json",
            FileKind::SigstoreBundle,
        );
        assert_eq!(npm.uri, "git+https://github.com/github/slsa-provenance");
        assert_eq!(npm.git_ref.as_deref(), Some("refs/heads/demo"));
        assert_eq!(
            npm.commit.as_deref(),
            Some("29cff3dd65f780c3601bd457acb6fe4e5931c825")
        );
    }

    #[test]
    fn fixture_attestations_with_sbom_predicates() {
        let Some(root) = fixture_root() else { return };
        let rel = "intoto-slsa/trivy-centos-7-cyclonedx.intoto.jsonl";
        let centos = parse_fixture(&root, rel, FileKind::Dsse);
        assert_eq!(
            provenance(&centos).predicate_type,
            "https://cyclonedx.org/bom"
        );
        assert_eq!(centos.components.len(), 3);
        let statement_subject = &provenance(&centos).subjects[0];
        assert_eq!(
            statement_subject.name.as_deref(),
            Some("index.docker.io/library/centos")
        );
        assert_eq!(
            statement_subject.digest,
            digest("sha256:be65f488b7764ad3638f236b7b515b3678369a5124c47b8d32916d6487418ea4")
        );
        // The statement subject, then the SBOM's own: name, image ID, one layer.
        assert_eq!(centos.subjects.len(), 4);

        let rel = "sigstore/trivy-cyclonedx-attestation.sigstore.json";
        let demo = parse_fixture(&root, rel, FileKind::SigstoreBundle);
        assert_eq!(demo.components.len(), 2);
        assert_eq!(
            demo.subjects[0].digest,
            digest("sha256:ea9c657ca44371fadd027510f2a1a68b799003294bf6a4827827971cc4390ad4")
        );
        let manifest = demo
            .subjects
            .iter()
            .find(|s| s.role == SubjectRole::ImageManifest)
            .unwrap();
        assert_eq!(
            manifest.digest,
            digest("sha256:e76a13475c6b4a713a0e4a7a8574ce450274d340357a2c40b8221cfcfedf8b19")
        );

        let rel = "intoto-slsa/trivy-attestation.json";
        let cosign = parse_fixture(&root, rel, FileKind::Dsse);
        let p = provenance(&cosign);
        assert_eq!(p.predicate_type, "cosign.sigstore.dev/attestation/v1");
        assert_eq!(p.builder_id, None);
        assert_eq!(
            cosign.subjects[0].digest,
            digest("sha256:72c42ed48c3a2db31b7dafe17d275b634664a708d901ec9fd57b1529280f01fb")
        );
    }

    #[test]
    fn fixture_cosign_signatures() {
        let Some(root) = fixture_root() else { return };
        let manifest = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a";
        for (dir, name) in [
            ("cosign-key-rekor", "key-1"),
            ("cosign-fulcio-rekor", "fulcio-rekor-1"),
        ] {
            let rel = format!("sigstore/{dir}/signature-1");
            let evidence = parse_fixture(&root, &rel, FileKind::CosignSignature);
            let reference = format!("192.168.64.2:5000/cosign-signed/{name}");
            assert_eq!(
                evidence.subjects,
                [SubjectRef::new(
                    SubjectRole::ImageManifest,
                    Some(reference),
                    digest(manifest)
                )]
            );
            // The signed manifest beside the signature is the one named.
            let bytes = std::fs::read(root.join(format!("sigstore/{dir}/manifest.json"))).unwrap();
            assert_eq!(Digest::sha256_of(&bytes).as_str(), manifest);
        }
    }

    #[test]
    fn slsa_v1_builder_and_workflow_source() {
        let statement = r#"{"_type":"https://in-toto.io/Statement/v1",
            "subject":[{"name":"img","digest":{"sha256":"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd","md5":"x"}}],
            "predicateType":"https://slsa.dev/provenance/v1",
            "predicate":{"buildDefinition":{"buildType":"https://example.test/bt",
                "externalParameters":{"workflow":{"ref":"refs/heads/main","repository":"https://example.test/repo","path":"ci.yml"}},
                "resolvedDependencies":[{"uri":"git+https://example.test/repo@refs/heads/main","digest":{"gitCommit":"abc123"}}]},
              "runDetails":{"builder":{"id":"https://example.test/builder@v1"}}}}"#;
        let bytes = envelope_of(statement);
        let evidence =
            super::super::parse(FileKind::Dsse, bytes.as_bytes(), &Limits::default()).unwrap();
        let p = provenance(&evidence);
        assert_eq!(
            p.builder_id.as_deref(),
            Some("https://example.test/builder@v1")
        );
        assert_eq!(p.build_type.as_deref(), Some("https://example.test/bt"));
        let source = p.source.as_ref().unwrap();
        assert_eq!(source.uri, "https://example.test/repo");
        assert_eq!(source.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(source.commit.as_deref(), Some("abc123"));
        assert_eq!(evidence.subjects.len(), 1, "md5 is not a checkable digest");
    }

    #[test]
    fn several_lines_several_statements() {
        let one = envelope_of(
            r#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"a","subject":[{"name":"x"}]}"#,
        );
        let two = envelope_of(
            r#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"b","subject":[{"name":"y"}]}"#,
        );
        let file = format!("{one}\n\n{two}\n");
        let evidence =
            super::super::parse(FileKind::Dsse, file.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(provenance(&evidence).predicate_type, "a");
        assert_eq!(evidence.subjects.len(), 2);
        assert_eq!(evidence.notes.len(), 1);
    }

    #[test]
    fn bad_base64_is_a_typed_error() {
        let file = format!(
            r#"{{"payloadType":"{IN_TOTO_PAYLOAD}","payload":"not*base64!","signatures":[]}}"#
        );
        let err =
            super::super::parse(FileKind::Dsse, file.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                EvidenceError::Base64 {
                    kind: FileKind::Dsse,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn bad_line_is_named() {
        let good = envelope_of(r#"{"_type":"https://in-toto.io/Statement/v1"}"#);
        let file = format!("{good}\n{{\"payloadType\":\"x\"}}\n");
        let err =
            super::super::parse(FileKind::Dsse, file.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            matches!(err, EvidenceError::Line { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn payload_that_is_not_a_statement_is_an_error() {
        let file = envelope_of("[1, 2, 3]");
        let err =
            super::super::parse(FileKind::Dsse, file.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                EvidenceError::Json {
                    kind: FileKind::Dsse,
                    ..
                }
            ),
            "{err:?}"
        );
        let other = r#"{"payloadType":"text/plain","payload":"aGk=","signatures":[]}"#;
        let evidence =
            super::super::parse(FileKind::Dsse, other.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(evidence.provenance, None);
        assert_eq!(evidence.notes.len(), 1);
    }

    #[test]
    fn message_signature_bundle_names_the_blob_digest() {
        let raw = [0xabu8; 32];
        let bundle = format!(
            r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
                "messageSignature":{{"messageDigest":{{"algorithm":"SHA2_256","digest":"{}"}}}}}}"#,
            STANDARD.encode(raw)
        );
        let evidence = super::super::parse(
            FileKind::SigstoreBundle,
            bundle.as_bytes(),
            &Limits::default(),
        )
        .unwrap();
        let expected = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(evidence.subjects[0].digest, digest(&expected));
    }

    #[test]
    fn cosign_signature_without_prefix_is_refused() {
        let err =
            super::super::parse(FileKind::CosignSignature, b"{}", &Limits::default()).unwrap_err();
        assert!(matches!(
            err,
            EvidenceError::Missing {
                kind: FileKind::CosignSignature,
                ..
            }
        ));
    }
}
