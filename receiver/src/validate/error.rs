//! Why an image bundle failed validation.
//!
//! Every variant but [`ValidateError::Io`] means the payload itself is bad:
//! count it, record it, reject the bundle. `Io` means this host could not
//! read its own quarantine file, which is an alert, not a verdict.

use sluice_protocol::digest::Digest;
use sluice_protocol::manifest::ImageFormat;

use super::tarscan::TarFault;

/// Why an image bundle is not what its signed manifest says it is.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot read the payload from quarantine: {reason}")]
    Io { reason: String },
    #[error("the bundle is not an image bundle (no image format in its manifest)")]
    NotAnImageBundle,
    #[error("the signed file list breaks a rule: {reason}")]
    BadFileList { reason: String },
    #[error("the payload is not a valid zstd stream: {reason}")]
    PayloadCorrupt { reason: String },
    #[error("the payload decompresses past {limit} bytes, more than its file list accounts for")]
    PayloadLimit { limit: u64 },
    #[error("the payload tar is malformed: {reason}")]
    TarMalformed { reason: String },
    #[error("payload member `{path}` has an unsafe path")]
    UnsafePath { path: String },
    #[error("payload member `{path}` is a {kind}, which a {format} may not contain")]
    UnsupportedEntry {
        path: String,
        kind: &'static str,
        format: ImageFormat,
    },
    #[error("payload member `{path}` appears twice")]
    DuplicateEntry { path: String },
    #[error("payload member `{path}` is not in the signed file list")]
    NotInManifest { path: String },
    #[error("`{path}` is in the signed file list but not in the payload")]
    MissingFromPayload { path: String },
    #[error("`{path}` is {actual} bytes but the signed file list says {expected}")]
    FileSizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("`{path}` does not match its blake3 hash in the signed file list")]
    FileHashMismatch { path: String },
    #[error("`{path}` is not the kind of member (file, link) the signed file list says")]
    KindMismatch { path: String },
    #[error("symlink `{path}` -> `{target}` points outside the archive")]
    SymlinkEscape { path: String, target: String },
    #[error("symlink `{path}` does not lead to a file (missing target, loop or too many hops)")]
    DanglingSymlink { path: String },
    #[error("`{path}` is not expected in a {format}")]
    UnexpectedFile { path: String, format: ImageFormat },
    #[error("`{text}` is not a valid digest: {reason}")]
    BadDigestString { text: String, reason: String },
    #[error("blob {digest} has the wrong content: it hashes to {actual}")]
    BlobDigestMismatch { digest: Digest, actual: Digest },
    #[error("blob {digest} is {actual} bytes but {referenced_by} declares {expected}")]
    BlobSizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
        referenced_by: String,
    },
    #[error("blob {digest}, referenced by {referenced_by}, is not in the payload")]
    MissingBlob {
        digest: Digest,
        referenced_by: String,
    },
    #[error("`{path}`, named by {referenced_by}, is not in the payload")]
    MissingFile { path: String, referenced_by: String },
    #[error("`{path}` is {size} bytes, more than the {limit} allowed for a JSON document")]
    DocumentTooLarge { path: String, size: u64, limit: u64 },
    #[error("the JSON documents in the payload exceed {limit} bytes in total")]
    DocumentBudget { limit: u64 },
    #[error("`{path}` is not the JSON expected: {reason}")]
    BadJson { path: String, reason: String },
    #[error("manifest.json is `null`: the archive lists no image")]
    ManifestJsonNull,
    #[error("the payload lists no image")]
    NoImages,
    #[error("the payload is not a valid {format}: {reason}")]
    BadLayout {
        format: ImageFormat,
        reason: &'static str,
    },
    #[error("{digest} is described as `{declared}` but says it is `{found}`")]
    MediaTypeMismatch {
        digest: Digest,
        declared: String,
        found: String,
    },
    #[error("index nesting below {digest} is deeper than {limit}")]
    TooDeep { digest: Digest, limit: usize },
    #[error("the payload has more than {limit} descriptors")]
    TooManyDescriptors { limit: usize },
    #[error("image {image} has {layers} layers but its config lists {diff_ids} diff ids")]
    DiffIdCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {layer} uncompresses to {actual} but the config's diff id is {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer} is not a readable tar: {reason}")]
    LayerUnreadable { layer: Digest, reason: String },
    #[error("layer {layer} decompresses past {limit} bytes")]
    DecompressionLimit { layer: Digest, limit: u64 },
    #[error("layer {layer} is declared `{media_type}` but its bytes are {found}")]
    CompressionMismatch {
        layer: Digest,
        media_type: String,
        found: super::Compression,
    },
    #[error("the signed subject {subject} is not {expected} in the payload")]
    SubjectNotFound {
        subject: Digest,
        expected: &'static str,
    },
    #[error("manifest.json and index.json disagree about the image with config {config}")]
    ArchiveViewsDisagree { config: Digest },
    #[error("`repositories` names layer id `{id}`, which the archive lacks")]
    DanglingRepository { id: String },
}

impl ValidateError {
    /// A short, stable name for counting and auditing rejections.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::NotAnImageBundle => "not-an-image-bundle",
            Self::BadFileList { .. } => "bad-file-list",
            Self::PayloadCorrupt { .. } => "payload-corrupt",
            Self::PayloadLimit { .. } => "payload-limit",
            Self::TarMalformed { .. } => "tar-malformed",
            Self::UnsafePath { .. } => "unsafe-path",
            Self::UnsupportedEntry { .. } => "unsupported-entry",
            Self::DuplicateEntry { .. } => "duplicate-entry",
            Self::NotInManifest { .. } => "not-in-manifest",
            Self::MissingFromPayload { .. } => "missing-from-payload",
            Self::FileSizeMismatch { .. } => "file-size-mismatch",
            Self::FileHashMismatch { .. } => "file-hash-mismatch",
            Self::KindMismatch { .. } => "kind-mismatch",
            Self::SymlinkEscape { .. } => "symlink-escape",
            Self::DanglingSymlink { .. } => "dangling-symlink",
            Self::UnexpectedFile { .. } => "unexpected-file",
            Self::BadDigestString { .. } => "bad-digest-string",
            Self::BlobDigestMismatch { .. } => "blob-digest-mismatch",
            Self::BlobSizeMismatch { .. } => "blob-size-mismatch",
            Self::MissingBlob { .. } => "missing-blob",
            Self::MissingFile { .. } => "missing-file",
            Self::DocumentTooLarge { .. } => "document-too-large",
            Self::DocumentBudget { .. } => "document-budget",
            Self::BadJson { .. } => "bad-json",
            Self::ManifestJsonNull => "manifest-json-null",
            Self::NoImages => "no-images",
            Self::BadLayout { .. } => "bad-layout",
            Self::MediaTypeMismatch { .. } => "media-type-mismatch",
            Self::TooDeep { .. } => "too-deep",
            Self::TooManyDescriptors { .. } => "too-many-descriptors",
            Self::DiffIdCount { .. } => "diff-id-count",
            Self::DiffIdMismatch { .. } => "diff-id-mismatch",
            Self::LayerUnreadable { .. } => "layer-unreadable",
            Self::DecompressionLimit { .. } => "decompression-limit",
            Self::CompressionMismatch { .. } => "compression-mismatch",
            Self::SubjectNotFound { .. } => "subject-not-found",
            Self::ArchiveViewsDisagree { .. } => "archive-views-disagree",
            Self::DanglingRepository { .. } => "dangling-repository",
        }
    }

    /// Whether the fault lies with this host rather than the bundle.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

impl From<TarFault> for ValidateError {
    fn from(fault: TarFault) -> Self {
        Self::TarMalformed { reason: fault.0 }
    }
}

/// Input text echoed in an error, cut short so a hostile name cannot flood
/// logs.
pub(super) fn echo(text: &str) -> String {
    text.chars().take(200).collect()
}
