//! The signed manifest: what a bundle claims to contain.
//!
//! A manifest names the bundle, its kind, the image digest it is about, the
//! payload's length and blake3 hash, and every file in the payload tar with
//! its own size and hash. It travels as CBOR (see [`crate::cbor`]) inside the
//! bundle envelope (see [`crate::bundle`]) and is only decoded after its
//! signature verified.
//!
//! This module defines the data and its bounds ([`Manifest::check`]); it does
//! not sign, verify, or look at payload bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::digest::Digest;
use crate::id::{BundleId, KeyId, StreamId};
use crate::key::Role;

/// The manifest format this code writes and accepts.
pub const FORMAT_VERSION: u16 = 1;
/// Largest encoded manifest accepted.
pub const MAX_MANIFEST_LEN: usize = 1 << 20;
/// Most files one bundle may list.
pub const MAX_FILES: usize = 100_000;
/// Longest path (in bytes) a file entry may have.
pub const MAX_PATH_LEN: usize = 4096;

/// The signed description of one bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u16,
    pub bundle_id: BundleId,
    pub kind: BundleKind,
    /// Unix seconds at packing time, as the packer's clock saw it.
    pub created: u64,
    pub subject: Subject,
    /// Set for image bundles only.
    pub image_format: Option<ImageFormat>,
    pub payload: PayloadInfo,
    pub files: Vec<FileEntry>,
    pub signer: KeyId,
}

/// Whether a bundle carries an image or reports about one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    Image,
    Report,
}

/// The image a bundle is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// A human name (tag or ref) if the packer knew one; not trusted for
    /// matching, the digest is.
    pub name: Option<String>,
    pub digest: Digest,
}

/// How the image was laid out when it was packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// `docker save` output.
    DockerArchive,
    /// An OCI image layout directory, packed as a deterministic tar.
    OciLayout,
    /// An OCI image layout as a single tar.
    OciArchive,
}

/// The compressed payload that follows the envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadInfo {
    pub length: u64,
    #[serde(with = "serde_bytes")]
    pub blake3: [u8; 32],
    pub compression: Compression,
    pub archive: Archive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Archive {
    Tar,
}

/// One member of the payload tar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path inside the payload tar, `/`-separated.
    pub path: String,
    pub size: u64,
    /// blake3 of the member's contents (all zeros for a symlink).
    #[serde(with = "serde_bytes")]
    pub blake3: [u8; 32],
    pub kind: FileKind,
    /// Set for symbolic links: the target as stored in the tar.
    pub link_target: Option<String>,
}

/// What a payload file is. Reports are recognised by content at packing
/// time; the receiver's policy decides what each kind means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FileKind {
    #[serde(rename = "cyclonedx")]
    CycloneDx,
    #[serde(rename = "spdx")]
    Spdx,
    #[serde(rename = "trivy")]
    Trivy,
    #[serde(rename = "grype")]
    Grype,
    #[serde(rename = "sarif")]
    Sarif,
    #[serde(rename = "junit")]
    Junit,
    #[serde(rename = "in-toto")]
    InToto,
    #[serde(rename = "dsse")]
    Dsse,
    #[serde(rename = "sigstore-bundle")]
    SigstoreBundle,
    /// A cosign "simple signing" signature in the containers/image format.
    #[serde(rename = "cosign-signature")]
    CosignSignature,
    #[serde(rename = "sluice-health")]
    SluiceHealth,
    #[serde(rename = "unknown")]
    Unknown,
    /// Any member of an image bundle's payload.
    #[serde(rename = "image-file")]
    ImageFile,
}

/// A manifest that breaks a bound or a structural rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("manifest lists {count} files, more than {MAX_FILES}")]
    TooManyFiles { count: usize },
    #[error("file {index} has a {len}-byte path, longer than {MAX_PATH_LEN}")]
    PathTooLong { index: usize, len: usize },
    #[error("file {index} has an unsafe path (absolute, `..`, empty part or NUL)")]
    UnsafePath { index: usize },
    #[error("file {index} repeats the path of an earlier file")]
    DuplicatePath { index: usize },
    #[error("{kind} bundle {what}")]
    KindMismatch {
        kind: BundleKind,
        what: &'static str,
    },
}

impl BundleKind {
    /// The stream bundles of this kind travel on: image and report bundles
    /// never share one, so whoever can disturb one stream does not thereby
    /// reach the other.
    pub fn stream(self) -> StreamId {
        match self {
            Self::Image => StreamId(1),
            Self::Report => StreamId(2),
        }
    }

    /// The key role allowed to sign bundles of this kind.
    pub fn required_role(self) -> Role {
        match self {
            Self::Image => Role::Image,
            Self::Report => Role::Report,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Report => "report",
        }
    }
}

impl fmt::Display for BundleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DockerArchive => "docker-archive",
            Self::OciLayout => "oci-layout",
            Self::OciArchive => "oci-archive",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CycloneDx => "cyclonedx",
            Self::Spdx => "spdx",
            Self::Trivy => "trivy",
            Self::Grype => "grype",
            Self::Sarif => "sarif",
            Self::Junit => "junit",
            Self::InToto => "in-toto",
            Self::Dsse => "dsse",
            Self::SigstoreBundle => "sigstore-bundle",
            Self::CosignSignature => "cosign-signature",
            Self::SluiceHealth => "sluice-health",
            Self::Unknown => "unknown",
            Self::ImageFile => "image-file",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Manifest {
    /// Encodes the manifest as CBOR, the form that gets signed.
    pub fn to_cbor(&self) -> Result<Vec<u8>, CborError> {
        cbor::encode(self)
    }

    /// Decodes CBOR manifest bytes. Only call this on verified bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode(bytes, MAX_MANIFEST_LEN)
    }

    /// Checks the bounds and structural rules a well-formed manifest obeys.
    pub fn check(&self) -> Result<(), LimitError> {
        if self.files.len() > MAX_FILES {
            return Err(LimitError::TooManyFiles {
                count: self.files.len(),
            });
        }
        self.check_kind()?;
        check_paths(&self.files)
    }

    fn check_kind(&self) -> Result<(), LimitError> {
        let kind = self.kind;
        let mismatch = |what| Err(LimitError::KindMismatch { kind, what });
        match (kind, self.image_format.is_some()) {
            (BundleKind::Image, false) => return mismatch("has no image format"),
            (BundleKind::Report, true) => return mismatch("has an image format"),
            _ => {}
        }
        let image_files = self
            .files
            .iter()
            .filter(|f| f.kind == FileKind::ImageFile)
            .count();
        match kind {
            BundleKind::Image if image_files != self.files.len() => mismatch("lists a report file"),
            BundleKind::Report if image_files != 0 => mismatch("lists an image file"),
            _ => Ok(()),
        }
    }
}

/// Whether `path` is a relative, `/`-separated path with no `..`, `.` or
/// empty components and no NUL or backslash, so it cannot leave a directory.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\0', '\\'])
        && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

fn check_paths(files: &[FileEntry]) -> Result<(), LimitError> {
    let mut seen = std::collections::HashSet::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        if file.path.len() > MAX_PATH_LEN {
            return Err(LimitError::PathTooLong {
                index,
                len: file.path.len(),
            });
        }
        if !is_safe_relative_path(&file.path) {
            return Err(LimitError::UnsafePath { index });
        }
        if !seen.insert(file.path.as_str()) {
            return Err(LimitError::DuplicatePath { index });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_manifest(kind: BundleKind, signer: KeyId) -> Manifest {
        let file_kind = match kind {
            BundleKind::Image => FileKind::ImageFile,
            BundleKind::Report => FileKind::CycloneDx,
        };
        Manifest {
            format_version: FORMAT_VERSION,
            bundle_id: BundleId([9; 16]),
            kind,
            created: 1_700_000_000,
            subject: Subject {
                name: Some("app:1.0".into()),
                digest: Digest::sha256_of(b"x"),
            },
            image_format: (kind == BundleKind::Image).then_some(ImageFormat::OciArchive),
            payload: PayloadInfo {
                length: 1234,
                blake3: [5; 32],
                compression: Compression::Zstd,
                archive: Archive::Tar,
            },
            files: vec![FileEntry {
                path: "index.json".into(),
                size: 10,
                blake3: [6; 32],
                kind: file_kind,
                link_target: None,
            }],
            signer,
        }
    }

    #[test]
    fn cbor_round_trip() {
        let manifest = sample_manifest(BundleKind::Image, KeyId([1; 8]));
        let bytes = manifest.to_cbor().unwrap();
        assert_eq!(Manifest::from_cbor(&bytes).unwrap(), manifest);
    }

    #[test]
    fn roles_follow_kinds() {
        assert_eq!(BundleKind::Image.required_role(), Role::Image);
        assert_eq!(BundleKind::Report.required_role(), Role::Report);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "",
            "a\\b",
            "a\0",
        ] {
            let mut manifest = sample_manifest(BundleKind::Image, KeyId([1; 8]));
            manifest.files[0].path = bad.into();
            assert_eq!(
                manifest.check(),
                Err(LimitError::UnsafePath { index: 0 }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn long_paths_and_duplicates_are_refused() {
        let mut manifest = sample_manifest(BundleKind::Image, KeyId([1; 8]));
        manifest.files[0].path = "a".repeat(MAX_PATH_LEN + 1);
        let len = MAX_PATH_LEN + 1;
        assert_eq!(
            manifest.check(),
            Err(LimitError::PathTooLong { index: 0, len })
        );
        manifest.files[0].path = "a".into();
        manifest.files.push(manifest.files[0].clone());
        assert_eq!(
            manifest.check(),
            Err(LimitError::DuplicatePath { index: 1 })
        );
    }

    #[test]
    fn report_bundles_may_not_carry_image_files() {
        let mut manifest = sample_manifest(BundleKind::Report, KeyId([1; 8]));
        assert_eq!(manifest.check(), Ok(()));
        manifest.files[0].kind = FileKind::ImageFile;
        let err = manifest.check().unwrap_err();
        assert!(matches!(
            err,
            LimitError::KindMismatch {
                kind: BundleKind::Report,
                ..
            }
        ));
    }

    fn arb_file() -> impl Strategy<Value = FileEntry> {
        let kind = prop_oneof![
            Just(FileKind::Spdx),
            Just(FileKind::Unknown),
            Just(FileKind::Junit)
        ];
        (
            "[a-z]{1,12}(/[a-z0-9.]{1,12}){0,3}",
            any::<u64>(),
            any::<[u8; 32]>(),
            kind,
        )
            .prop_map(|(path, size, blake3, kind)| FileEntry {
                path,
                size,
                blake3,
                kind,
                link_target: None,
            })
    }

    proptest! {
        #[test]
        fn any_manifest_round_trips(
            id in any::<[u8; 16]>(),
            created in any::<u64>(),
            name in proptest::option::of(".{0,40}"),
            files in proptest::collection::vec(arb_file(), 0..20),
            signer in any::<[u8; 8]>(),
        ) {
            let mut manifest = sample_manifest(BundleKind::Report, KeyId(signer));
            manifest.bundle_id = BundleId(id);
            manifest.created = created;
            manifest.subject.name = name;
            manifest.files = files;
            let bytes = manifest.to_cbor().unwrap();
            prop_assert_eq!(Manifest::from_cbor(&bytes).unwrap(), manifest);
        }
    }
}
