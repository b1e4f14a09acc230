//! What validation proved about an image bundle, for `show --json` and for
//! the policy: the images and their layers, the referrers (signatures,
//! attestations, artifacts) that travelled with them, and findings.

use serde::Serialize;
use sluice_protocol::digest::Digest;
use sluice_protocol::manifest::ImageFormat;

use super::layer::Compression;

/// The outcome of a successful validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    pub format: ImageFormat,
    /// The signed subject digest, now shown to be present and referenced.
    pub subject: Digest,
    /// Every runnable image in the payload, in the order it was reached.
    pub images: Vec<PlatformImage>,
    /// Manifests that describe another image rather than being one.
    pub referrers: Vec<Referrer>,
    /// Blobs whose content matched their name but that nothing references.
    pub unreferenced: Vec<Digest>,
    /// Regular files in the payload tar and their total size.
    pub files: u64,
    pub bytes: u64,
    /// Findings over all distinct layers, and how many of them were kept.
    pub findings_total: u64,
    pub findings_kept: u64,
}

/// One runnable image: a config and its layers, for one platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformImage {
    pub platform: Option<Platform>,
    /// The image manifest, if the format has one (legacy docker-archives do
    /// not; their image is named by its config digest).
    pub manifest: Option<Digest>,
    pub config: Digest,
    /// Tags or ref names pointing at this image.
    pub names: Vec<String>,
    pub layers: Vec<LayerReport>,
}

/// An OS and CPU an image runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One filesystem layer of an image, as verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    /// Digest of the blob as stored (compressed, if it is).
    pub digest: Digest,
    pub media_type: Option<String>,
    pub size: u64,
    pub compression: Compression,
    /// sha256 of the uncompressed tar, equal to the config's diff id.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    /// Members listed in the layer tar.
    pub entries: u64,
    pub findings: Vec<Finding>,
    pub findings_total: u64,
}

/// A manifest about another image: an attestation, signature, SBOM or
/// other artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: Option<String>,
    pub kind: ReferrerKind,
    /// The artifact type, or the config media type when none is set.
    pub artifact_type: Option<String>,
    /// The image this one refers to, when it names one.
    pub subject: Option<Digest>,
    /// Whether that subject is in the payload.
    pub subject_present: bool,
    /// Blobs besides the manifest itself (config and layers).
    pub blobs: usize,
}

/// How a referrer names what it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrerKind {
    /// OCI 1.1: a manifest or index with a `subject` field.
    Subject,
    /// A BuildKit attestation manifest inside an index.
    Attestation,
    /// A manifest whose config is not an image config (Helm chart, cosign
    /// bundle) with no subject.
    Artifact,
}

/// Something in a layer a policy may care about. Findings never reject an
/// image on their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub layer: Digest,
    /// The member path as stored in the layer (lossy UTF-8, cut at 512
    /// bytes).
    pub path: String,
    pub kind: FindingKind,
}

/// The kinds of [`Finding`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FindingKind {
    /// The member path starts with `/`.
    AbsolutePath,
    /// The member path has a `..` component.
    ParentTraversal,
    /// A symlink whose relative target climbs above the root, or a hard
    /// link naming a member outside the archive root.
    LinkOutsideRoot {
        target: String,
    },
    /// A symlink with an absolute target: harmless inside a container,
    /// dangerous to anything that extracts the layer onto a host.
    AbsoluteSymlink {
        target: String,
    },
    DeviceNode {
        major: u32,
        minor: u32,
    },
    Setuid {
        mode: u32,
    },
    Setgid {
        mode: u32,
    },
    /// A world-writable file, or directory without the sticky bit.
    WorldWritable {
        mode: u32,
    },
    /// A `.wh.<name>` file deleting `<name>` from a lower layer.
    Whiteout,
    /// `.wh..wh..opq`: hides everything below its directory.
    OpaqueWhiteout,
}
