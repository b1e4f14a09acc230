//! docker-archives (`docker save`, `skopeo copy docker-archive:`):
//! `manifest.json` lists images as a config file and layer files by path.
//!
//! Paths may be legacy (`<id>/layer.tar`, often a symlink to a shared
//! `<diffid>.tar`), skopeo's (`<hex>.tar`, `<hex>.json`) or Docker 25's
//! (`blobs/sha256/<hex>`). An image is named by the sha256 of its config
//! bytes (its image ID), which is also what the sender signs as the subject
//! unless `index.json` lists manifests. Docker 25 and later write both
//! views; when `index.json` lists manifests, each `manifest.json` image must
//! be one of them, config and layers alike.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::Limits;
use super::config::{self, ConfigDoc, LayerRef};
use super::error::{ValidateError, echo};
use super::payload::{Contents, FileRecord, parse_record};
use super::report::PlatformImage;

const MANIFEST_JSON: &str = "manifest.json";
const REPOSITORIES: &str = "repositories";

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
}

/// Checks every image `manifest.json` lists.
pub(super) fn verify_images(
    contents: &Contents,
    limits: &Limits,
) -> Result<Vec<PlatformImage>, ValidateError> {
    let entries: Option<Vec<Entry>> = contents
        .document(MANIFEST_JSON, limits)
        .map_err(|e| referenced(e, MANIFEST_JSON))?;
    let entries = entries.ok_or(ValidateError::ManifestJsonNull)?;
    if entries.is_empty() {
        return Err(ValidateError::NoImages);
    }
    entries
        .iter()
        .map(|e| verify_image(contents, limits, e))
        .collect()
}

/// Checks `repositories`, if present: every layer id it names is in the
/// archive.
pub(super) fn check_repositories(
    contents: &Contents,
    limits: &Limits,
) -> Result<(), ValidateError> {
    if !contents.files.contains_key(REPOSITORIES) {
        return Ok(());
    }
    let repositories: BTreeMap<String, BTreeMap<String, String>> =
        contents.document(REPOSITORIES, limits)?;
    for id in repositories.values().flat_map(BTreeMap::values) {
        let hex = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex || contents.resolve(&format!("{id}/layer.tar")).is_err() {
            return Err(ValidateError::DanglingRepository { id: echo(id) });
        }
    }
    Ok(())
}

/// The sender's subject for a docker-archive whose `index.json` lists no
/// manifests: the config digest of one of the images.
pub(super) fn check_subject(
    images: &[PlatformImage],
    subject: &Digest,
) -> Result<(), ValidateError> {
    if images.iter().any(|image| image.config == *subject) {
        return Ok(());
    }
    Err(ValidateError::SubjectNotFound {
        subject: subject.clone(),
        expected: "the config digest of an image in manifest.json",
    })
}

/// Each `manifest.json` image must also be an image `index.json` reaches.
pub(super) fn check_agreement(
    docker: &[PlatformImage],
    oci: &[PlatformImage],
) -> Result<(), ValidateError> {
    let layers = |image: &PlatformImage| -> Vec<Digest> {
        image.layers.iter().map(|l| l.diff_id.clone()).collect()
    };
    for image in docker {
        let same =
            |other: &&PlatformImage| other.config == image.config && layers(other) == layers(image);
        if !oci.iter().any(|o| same(&o)) {
            let config = image.config.clone();
            return Err(ValidateError::ArchiveViewsDisagree { config });
        }
    }
    Ok(())
}

fn verify_image(
    contents: &Contents,
    limits: &Limits,
    entry: &Entry,
) -> Result<PlatformImage, ValidateError> {
    let (name, record) = contents
        .resolve(&entry.config)
        .map_err(|e| referenced(e, MANIFEST_JSON))?;
    let config: ConfigDoc = parse_record(name, record, limits)?;
    let config_digest = image_id(record);
    let diff_ids = config.diff_ids()?;
    let paths = entry.layers.as_deref().unwrap_or_default();
    let mut resolved: Vec<(Digest, &FileRecord)> = Vec::with_capacity(paths.len());
    for path in paths {
        let (_, record) = contents
            .resolve(path)
            .map_err(|e| referenced(e, MANIFEST_JSON))?;
        resolved.push((layer_digest(record), record));
    }
    let refs: Vec<LayerRef<'_>> = resolved
        .iter()
        .map(|(digest, record)| LayerRef {
            digest,
            media_type: None,
            record,
        })
        .collect();
    let layers = config::check_layers(config_digest.as_str(), &refs, &diff_ids)?;
    Ok(PlatformImage {
        platform: config.platform(),
        manifest: None,
        config: config_digest,
        names: entry.repo_tags.clone().unwrap_or_default(),
        layers,
    })
}

/// The image ID: sha256 of the config bytes, whatever the file is called.
fn image_id(record: &FileRecord) -> Digest {
    match &record.doc {
        Some(bytes) => Digest::sha256_of(bytes),
        None => record.digest.clone(),
    }
}

/// A layer is named by the digest of the file as stored.
fn layer_digest(record: &FileRecord) -> Digest {
    record.digest.clone()
}

/// Adds what referenced a missing file to the error.
fn referenced(error: ValidateError, by: &str) -> ValidateError {
    match error {
        ValidateError::MissingFile { path, .. } => ValidateError::MissingFile {
            path,
            referenced_by: by.to_owned(),
        },
        other => other,
    }
}
