//! Image configs and the layers they vouch for: each layer, uncompressed,
//! must hash to the config's `rootfs.diff_ids` entry at the same position
//! (OCI image spec, "Image Configuration", `rootfs`).

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::error::{ValidateError, echo};
use super::layer::{Compression, LayerFault};
use super::payload::FileRecord;
use super::report::{LayerReport, Platform};

/// Config media types that describe a runnable image.
pub(super) const IMAGE_CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The parts of an image config that validation needs.
#[derive(Debug, Deserialize)]
pub(super) struct ConfigDoc {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

/// One layer to check: where it is, what it claims to be.
#[derive(Debug)]
pub(super) struct LayerRef<'a> {
    pub digest: &'a Digest,
    pub media_type: Option<&'a str>,
    pub record: &'a FileRecord,
}

/// How a layer's media type says to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LayerKind {
    /// A filesystem tar; `Some` when the media type names the compression.
    Tar(Option<Compression>),
    /// Not a tar (an in-toto statement, a DSSE envelope): its diff id is
    /// its own digest.
    Opaque,
}

impl ConfigDoc {
    /// The diff ids, each validated as a digest before any use.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ValidateError> {
        let raw = self.rootfs.as_ref().and_then(|r| r.diff_ids.as_deref());
        raw.unwrap_or_default()
            .iter()
            .map(|t| parse_digest(t))
            .collect()
    }

    /// Whether the config has a `rootfs` at all (artifact configs such as
    /// the empty `{}` do not).
    pub fn has_rootfs(&self) -> bool {
        self.rootfs.is_some()
    }

    /// The platform the config declares, if it names both OS and CPU.
    pub fn platform(&self) -> Option<Platform> {
        let (os, architecture) = (self.os.clone()?, self.architecture.clone()?);
        if os.is_empty() || architecture.is_empty() {
            return None;
        }
        Some(Platform {
            os,
            architecture,
            variant: self.variant.clone(),
        })
    }
}

/// Whether a layer of this media type is a filesystem tar.
pub(super) fn is_filesystem_layer(media_type: Option<&str>) -> bool {
    matches!(layer_kind(media_type), LayerKind::Tar(_))
}

/// Checks `layers` against `diff_ids`, position by position.
pub(super) fn check_layers(
    image: &str,
    layers: &[LayerRef<'_>],
    diff_ids: &[Digest],
) -> Result<Vec<LayerReport>, ValidateError> {
    if layers.len() != diff_ids.len() {
        return Err(ValidateError::DiffIdCount {
            image: echo(image),
            layers: layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let pairs = layers.iter().zip(diff_ids);
    pairs
        .map(|(layer, diff_id)| check_layer(layer, diff_id))
        .collect()
}

fn check_layer(layer: &LayerRef<'_>, expected: &Digest) -> Result<LayerReport, ValidateError> {
    match layer_kind(layer.media_type) {
        LayerKind::Opaque => opaque_layer(layer, expected),
        LayerKind::Tar(declared) => tar_layer(layer, declared, expected),
    }
}

fn opaque_layer(layer: &LayerRef<'_>, expected: &Digest) -> Result<LayerReport, ValidateError> {
    let actual = &layer.record.digest;
    if actual != expected {
        return Err(diff_id_mismatch(layer, expected, actual));
    }
    Ok(LayerReport {
        digest: layer.digest.clone(),
        media_type: layer.media_type.map(str::to_owned),
        size: layer.record.size,
        compression: Compression::None,
        diff_id: actual.clone(),
        uncompressed_size: layer.record.size,
        entries: 0,
        findings: Vec::new(),
        findings_total: 0,
    })
}

fn tar_layer(
    layer: &LayerRef<'_>,
    declared: Option<Compression>,
    expected: &Digest,
) -> Result<LayerReport, ValidateError> {
    let scan = &layer.record.scan;
    if declared.is_some_and(|d| d != scan.compression) {
        return Err(ValidateError::CompressionMismatch {
            layer: layer.digest.clone(),
            media_type: layer.media_type.map(echo).unwrap_or_default(),
            found: scan.compression,
        });
    }
    let stats = match &scan.outcome {
        Ok(stats) => stats,
        Err(fault) => return Err(unreadable(layer.digest, fault)),
    };
    if stats.diff_id != *expected {
        return Err(diff_id_mismatch(layer, expected, &stats.diff_id));
    }
    Ok(LayerReport {
        digest: layer.digest.clone(),
        media_type: layer.media_type.map(str::to_owned),
        size: layer.record.size,
        compression: scan.compression,
        diff_id: stats.diff_id.clone(),
        uncompressed_size: stats.uncompressed_size,
        entries: stats.entries,
        findings: stats.findings_for(layer.digest),
        findings_total: stats.findings_total,
    })
}

fn unreadable(layer: &Digest, fault: &LayerFault) -> ValidateError {
    let layer = layer.clone();
    match fault {
        LayerFault::Limit(limit) => ValidateError::DecompressionLimit {
            layer,
            limit: *limit,
        },
        LayerFault::Malformed(reason) => ValidateError::LayerUnreadable {
            layer,
            reason: reason.clone(),
        },
    }
}

fn diff_id_mismatch(layer: &LayerRef<'_>, expected: &Digest, actual: &Digest) -> ValidateError {
    ValidateError::DiffIdMismatch {
        layer: layer.digest.clone(),
        expected: expected.clone(),
        actual: actual.clone(),
    }
}

/// Layer media types: OCI `...layer.v1.tar[+gzip|+zstd]` (and the
/// non-distributable variants), Docker `...rootfs.diff.tar[.gzip]` (and
/// `foreign`). No media type (legacy docker-archive) means a tar whose
/// compression the bytes decide.
fn layer_kind(media_type: Option<&str>) -> LayerKind {
    let Some(media_type) = media_type else {
        return LayerKind::Tar(None);
    };
    if media_type.ends_with(".tar+gzip") || media_type.ends_with(".tar.gzip") {
        LayerKind::Tar(Some(Compression::Gzip))
    } else if media_type.ends_with(".tar+zstd") {
        LayerKind::Tar(Some(Compression::Zstd))
    } else if media_type.ends_with(".tar") {
        LayerKind::Tar(Some(Compression::None))
    } else {
        LayerKind::Opaque
    }
}

/// Validates a digest taken from a document.
pub(super) fn parse_digest(text: &str) -> Result<Digest, ValidateError> {
    Digest::parse(text).map_err(|e| ValidateError::BadDigestString {
        text: echo(text),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_layer_kinds() {
        let kind = |t| layer_kind(Some(t));
        let gzip = LayerKind::Tar(Some(Compression::Gzip));
        assert_eq!(kind("application/vnd.oci.image.layer.v1.tar+gzip"), gzip);
        assert_eq!(
            kind("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            gzip
        );
        assert_eq!(
            kind("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            gzip
        );
        assert_eq!(
            kind("application/vnd.oci.image.layer.v1.tar+zstd"),
            LayerKind::Tar(Some(Compression::Zstd))
        );
        assert_eq!(
            kind("application/vnd.oci.image.layer.v1.tar"),
            LayerKind::Tar(Some(Compression::None))
        );
        assert_eq!(kind("application/vnd.in-toto+json"), LayerKind::Opaque);
        assert_eq!(layer_kind(None), LayerKind::Tar(None));
    }

    #[test]
    fn diff_ids_are_validated_as_digests() {
        let doc: ConfigDoc =
            serde_json::from_str(r#"{"rootfs":{"diff_ids":["sha256:../../etc"]}}"#).unwrap();
        let err = doc.diff_ids().unwrap_err();
        let text = match err {
            ValidateError::BadDigestString { text, .. } => text,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(text, "sha256:../../etc");
    }
}
