//! Image validation: proves a quarantined image bundle's payload is the
//! image its signed manifest claims, reading it once as a stream.
//!
//! ```text
//!  payload (zstd tar) ──▶ payload pass ─────────────────▶ Contents
//!   │  every member: safe path, allowed type, in the signed list with
//!   │  the same size and blake3; blob names parsed as digests first and
//!   │  content hashed against them; each blob also scanned as a layer
//!   ▼
//!  format ─┬─ oci-layout / oci-archive: index.json ─▶ indexes ─▶ manifests
//!          │                             (present, sizes) ─▶ configs ─▶ diff ids
//!          └─ docker-archive: manifest.json ─▶ configs ─▶ layers ─▶ diff ids
//!                              (+ index.json when Docker 25 wrote one: must agree)
//!  ──▶ subject check ──▶ ImageReport (images, referrers, findings)
//! ```
//!
//! It runs after the bundle's signature and the payload's blake3 were
//! verified, and trusts neither the sender's code nor anything the payload
//! says about itself: every size it acts on comes from the signed list or
//! is capped by [`Limits`], nothing is extracted to the filesystem, and no
//! layer is ever held in memory. Findings (setuid files, whiteouts, links
//! leaving the root...) are recorded for the policy, not judged here.

mod config;
mod docker;
mod error;
mod layer;
mod oci;
mod payload;
mod report;
mod tarscan;

use std::collections::BTreeSet;
use std::io::Read;

use sluice_protocol::digest::Digest;
use sluice_protocol::manifest::{BundleKind, ImageFormat, Manifest};

pub use error::ValidateError;
pub use layer::Compression;
pub use report::{
    Finding, FindingKind, ImageReport, LayerReport, Platform, PlatformImage, Referrer, ReferrerKind,
};

use payload::Contents;

/// Bounds on what validation will read, hold and follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON document (index, manifest, config) held in memory.
    pub max_document: u64,
    /// Total of all JSON documents held at once.
    pub max_documents_total: u64,
    /// Most bytes one layer may decompress to, whatever its ratio.
    pub max_layer_bytes: u64,
    /// Most uncompressed bytes per compressed byte of a layer ...
    pub max_layer_ratio: u64,
    /// ... once past this many uncompressed bytes.
    pub layer_ratio_floor: u64,
    /// Most members in one layer tar.
    pub max_layer_entries: u64,
    /// Deepest nesting of indexes followed.
    pub max_depth: usize,
    /// Most descriptors followed in all.
    pub max_descriptors: usize,
    /// Most findings kept over the whole payload (the rest are counted).
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document: 4 << 20,
            max_documents_total: 64 << 20,
            max_layer_bytes: 64 << 30,
            max_layer_ratio: 1024,
            layer_ratio_floor: 64 << 20,
            max_layer_entries: 1_000_000,
            max_depth: 8,
            max_descriptors: 100_000,
            max_findings: 1000,
        }
    }
}

impl Limits {
    /// The decompressed size allowed for a blob of `compressed` bytes.
    // Limitation: a legitimate layer that compresses better than
    // `max_layer_ratio` (a large file of zeros, say) and is bigger than
    // `layer_ratio_floor` is refused until an administrator raises a limit.
    pub fn layer_cap(&self, compressed: u64) -> u64 {
        let by_ratio = compressed.saturating_mul(self.max_layer_ratio);
        by_ratio
            .max(self.layer_ratio_floor)
            .min(self.max_layer_bytes)
    }
}

/// Reads the payload (the zstd-compressed tar after the envelope) once and
/// proves it is the image `manifest` claims.
///
/// # Errors
///
/// The first fault found, naming the member, blob or layer at fault;
/// [`ValidateError::code`] gives a stable name for it.
pub fn validate_image(
    payload: impl Read,
    manifest: &Manifest,
    limits: &Limits,
) -> Result<ImageReport, ValidateError> {
    let format = match (manifest.kind, manifest.image_format) {
        (BundleKind::Image, Some(format)) => format,
        _ => return Err(ValidateError::NotAnImageBundle),
    };
    // The pass keys the file list by path; a repeated path would let one
    // entry hide another, so the list's own rules are checked again here.
    manifest.check().map_err(|e| ValidateError::BadFileList {
        reason: e.to_string(),
    })?;
    let contents = payload::read(payload, manifest, format, limits)?;
    let subject = &manifest.subject.digest;
    let verified = match format {
        ImageFormat::DockerArchive => verify_docker(&contents, limits, subject)?,
        ImageFormat::OciLayout | ImageFormat::OciArchive => {
            verify_oci(&contents, format, limits, subject)?
        }
    };
    Ok(report(format, subject, &contents, verified))
}

/// What a format's checks produced.
struct Verified {
    images: Vec<PlatformImage>,
    referrers: Vec<Referrer>,
    reached: BTreeSet<Digest>,
}

fn verify_oci(
    contents: &Contents,
    format: ImageFormat,
    limits: &Limits,
    subject: &Digest,
) -> Result<Verified, ValidateError> {
    let bad_layout = |reason| ValidateError::BadLayout { format, reason };
    if !contents.files.contains_key("index.json") {
        return Err(bad_layout("there is no index.json"));
    }
    oci::check_layout_file(contents, limits).map_err(bad_layout)?;
    let graph = oci::walk(contents, limits)?;
    if graph.top.is_empty() {
        return Err(ValidateError::NoImages);
    }
    let images = oci::verify_images(&graph, contents, limits)?;
    oci::check_subject(&graph, subject)?;
    Ok(Verified {
        images,
        referrers: graph.referrers,
        reached: graph.reached.into_iter().collect(),
    })
}

/// A docker-archive; with an `index.json` (Docker 25 and later) the OCI
/// view is walked too, and when it lists manifests, both views must agree
/// and the subject is one of its descriptors, as the sender chooses it.
fn verify_docker(
    contents: &Contents,
    limits: &Limits,
    subject: &Digest,
) -> Result<Verified, ValidateError> {
    let format = ImageFormat::DockerArchive;
    if !contents.files.contains_key("manifest.json") {
        let reason = "there is no manifest.json";
        return Err(ValidateError::BadLayout { format, reason });
    }
    let docker_images = docker::verify_images(contents, limits)?;
    docker::check_repositories(contents, limits)?;
    if !contents.files.contains_key("index.json") {
        docker::check_subject(&docker_images, subject)?;
        return Ok(docker_only(docker_images));
    }
    let graph = oci::walk(contents, limits)?;
    if graph.top.is_empty() {
        docker::check_subject(&docker_images, subject)?;
        return Ok(docker_only(docker_images));
    }
    let images = oci::verify_images(&graph, contents, limits)?;
    docker::check_agreement(&docker_images, &images)?;
    oci::check_subject(&graph, subject)?;
    Ok(Verified {
        images,
        referrers: graph.referrers,
        reached: graph.reached.into_iter().collect(),
    })
}

fn docker_only(images: Vec<PlatformImage>) -> Verified {
    Verified {
        images,
        referrers: Vec::new(),
        reached: BTreeSet::new(),
    }
}

fn report(
    format: ImageFormat,
    subject: &Digest,
    contents: &Contents,
    verified: Verified,
) -> ImageReport {
    let mut counted = BTreeSet::new();
    let (mut findings_total, mut findings_kept) = (0, 0);
    for layer in verified.images.iter().flat_map(|i| &i.layers) {
        if counted.insert(&layer.digest) {
            findings_total += layer.findings_total;
            findings_kept += layer.findings.len() as u64;
        }
    }
    let unreferenced = contents
        .files
        .iter()
        .filter(|(path, _)| path.starts_with("blobs/"))
        .filter(|(_, record)| !verified.reached.contains(&record.digest))
        .map(|(_, record)| record.digest.clone())
        .collect();
    let unreferenced = match format {
        // Legacy docker-archives reach files by path, not digest.
        ImageFormat::DockerArchive if verified.reached.is_empty() => Vec::new(),
        _ => unreferenced,
    };
    ImageReport {
        format,
        subject: subject.clone(),
        images: verified.images,
        referrers: verified.referrers,
        unreferenced,
        files: contents.files.len() as u64,
        bytes: contents.files.values().map(|f| f.size).sum(),
        findings_total,
        findings_kept,
    }
}

#[cfg(test)]
mod testkit;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::testkit::{self, Layout, OCI_MANIFEST};
    use super::*;

    fn validate(bundle: &testkit::Bundle) -> Result<ImageReport, ValidateError> {
        validate_image(
            bundle.payload.as_slice(),
            &bundle.manifest,
            &Limits::default(),
        )
    }

    fn one_image() -> (Layout, testkit::BuiltImage) {
        let mut layout = Layout::new();
        let image = layout.image(&[("bin/tool", b"#!/bin/sh\n"), ("etc/.wh.motd", b"")]);
        layout.index(std::slice::from_ref(&image.descriptor));
        (layout, image)
    }

    #[test]
    fn a_consistent_image_verifies() {
        let (layout, image) = one_image();
        let report = validate(&layout.bundle(&image.manifest)).unwrap();
        assert_eq!(report.format, ImageFormat::OciLayout);
        assert_eq!(report.subject, image.manifest);
        assert_eq!(report.images.len(), 1);
        let found = &report.images[0];
        assert_eq!(found.manifest.as_ref(), Some(&image.manifest));
        assert_eq!(found.config, image.config);
        assert_eq!(found.platform.as_ref().unwrap().architecture, "amd64");
        let layer = &found.layers[0];
        assert_eq!(layer.digest, image.layers[0]);
        assert_eq!(layer.compression, Compression::Gzip);
        assert_eq!(layer.entries, 2);
        assert_eq!(layer.findings[0].kind, FindingKind::Whiteout);
        assert_eq!(layer.findings[0].path, "etc/.wh.motd");
        assert_eq!(layer.findings[0].layer, image.layers[0]);
        assert_eq!((report.findings_total, report.findings_kept), (1, 1));
        assert!(report.unreferenced.is_empty());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["images"][0]["layers"][0]["findings"][0]["kind"]["kind"],
            "whiteout"
        );
    }

    #[test]
    fn a_flipped_diff_id_is_refused_naming_the_layer() {
        let mut layout = Layout::new();
        let tar = testkit_layer();
        let right = Digest::sha256_of(&tar);
        let mut text = right.to_string();
        let last = if text.ends_with('0') { "1" } else { "0" };
        text.replace_range(text.len() - 1.., last);
        let wrong = Digest::parse(&text).unwrap();
        let image = layout.image_with(&[tar], std::slice::from_ref(&wrong));
        layout.index(std::slice::from_ref(&image.descriptor));
        let err = validate(&layout.bundle(&image.manifest)).unwrap_err();
        match err {
            ValidateError::DiffIdMismatch {
                layer,
                expected,
                actual,
            } => {
                assert_eq!(layer, image.layers[0]);
                assert_eq!(expected, wrong);
                assert_eq!(actual, right);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn testkit_layer() -> Vec<u8> {
        super::layer::tests::tar_of(&[("app/data", b"payload bytes")])
    }

    #[test]
    fn a_blob_swapped_for_another_valid_blob_is_refused() {
        let (mut layout, image) = one_image();
        let other = layout.image(&[("other", b"other layer")]);
        let swapped = layout.files[&other.layers[0].blob_path()].clone();
        layout.files.insert(image.layers[0].blob_path(), swapped);
        let err = validate(&layout.bundle(&image.manifest)).unwrap_err();
        match err {
            ValidateError::BlobDigestMismatch { digest, actual } => {
                assert_eq!(digest, image.layers[0]);
                assert_eq!(actual, other.layers[0]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_digest_strings_are_refused_before_use() {
        let (layout, image) = one_image();
        let good = image.manifest.to_string();
        let bad_texts = [
            "sha256:../../../../etc/passwd".to_owned(),
            good.to_uppercase().replace("SHA256", "sha256"),
            good[..good.len() - 2].to_owned(),
        ];
        for text in bad_texts {
            let mut layout = Layout {
                files: layout.files.clone(),
            };
            let mut descriptor = image.descriptor.clone();
            descriptor["digest"] = Value::String(text.clone());
            layout.index(&[descriptor]);
            let err = validate(&layout.bundle(&image.manifest)).unwrap_err();
            assert!(
                matches!(&err, ValidateError::BadDigestString { text: t, .. } if *t == text),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn a_blob_file_with_a_bad_name_is_refused_before_it_is_read() {
        let (mut layout, image) = one_image();
        let name = format!("blobs/sha256/{}", image.layers[0].hex().to_uppercase());
        layout.files.insert(name, b"anything".to_vec());
        let err = validate(&layout.bundle(&image.manifest)).unwrap_err();
        assert_eq!(err.code(), "bad-digest-string");
    }

    #[test]
    fn a_missing_blob_is_named() {
        let (mut layout, image) = one_image();
        layout.files.remove(&image.layers[0].blob_path());
        let err = validate(&layout.bundle(&image.manifest)).unwrap_err();
        match err {
            ValidateError::MissingBlob {
                digest,
                referenced_by,
            } => {
                assert_eq!(digest, image.layers[0]);
                assert_eq!(referenced_by, image.manifest.to_string());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_dangling_reference_in_index_json_is_refused() {
        let (mut layout, image) = one_image();
        let ghost = Digest::sha256_of(b"not in the layout");
        let dangling = json!({"mediaType": OCI_MANIFEST, "digest": ghost, "size": 10});
        layout.index(&[image.descriptor.clone(), dangling]);
        let err = validate(&layout.bundle(&image.manifest)).unwrap_err();
        match err {
            ValidateError::MissingBlob {
                digest,
                referenced_by,
            } => {
                assert_eq!(digest, ghost);
                assert_eq!(referenced_by, "index.json");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_subject_must_be_listed_in_index_json() {
        let (layout, image) = one_image();
        let err = validate(&layout.bundle(&image.config)).unwrap_err();
        assert!(
            matches!(err, ValidateError::SubjectNotFound { subject, .. } if subject == image.config)
        );
    }

    #[test]
    fn the_payload_must_match_the_signed_file_list() {
        let (layout, image) = one_image();
        let mut bundle = layout.bundle(&image.manifest);
        let dropped = bundle.manifest.files.remove(0);
        let err = validate(&bundle).unwrap_err();
        assert!(matches!(err, ValidateError::NotInManifest { ref path } if *path == dropped.path));

        let mut bundle = layout.bundle(&image.manifest);
        bundle.manifest.files.push(dropped_entry("blobs/extra"));
        let err = validate(&bundle).unwrap_err();
        assert!(
            matches!(err, ValidateError::MissingFromPayload { ref path } if path == "blobs/extra")
        );

        let mut bundle = layout.bundle(&image.manifest);
        bundle.manifest.files[0].blake3[0] ^= 1;
        assert_eq!(validate(&bundle).unwrap_err().code(), "file-hash-mismatch");

        let mut bundle = layout.bundle(&image.manifest);
        bundle.manifest.files[0].size += 1;
        assert_eq!(validate(&bundle).unwrap_err().code(), "file-size-mismatch");
    }

    fn dropped_entry(path: &str) -> sluice_protocol::manifest::FileEntry {
        sluice_protocol::manifest::FileEntry {
            path: path.into(),
            size: 1,
            blake3: [0; 32],
            kind: sluice_protocol::manifest::FileKind::ImageFile,
            link_target: None,
        }
    }

    #[test]
    fn a_payload_that_decompresses_past_its_file_list_stops_at_the_cap() {
        let (layout, image) = one_image();
        let mut tar = layout.tar();
        tar.resize(tar.len() + (256 << 20), 0);
        let bundle = testkit::bundle(&tar, ImageFormat::OciLayout, &image.manifest);
        let err = validate(&bundle).unwrap_err();
        assert_eq!(err.code(), "payload-limit", "{err:?}");
    }

    #[test]
    fn a_corrupt_zstd_payload_is_refused() {
        let (layout, image) = one_image();
        let mut bundle = layout.bundle(&image.manifest);
        let middle = bundle.payload.len() / 2;
        bundle.payload.truncate(middle);
        let err = validate(&bundle).unwrap_err();
        assert_eq!(err.code(), "payload-corrupt", "{err:?}");
    }

    /// A docker-archive tar from `(path, data)` files and `(path, target)`
    /// symlinks.
    fn docker_tar(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        for (path, target) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn docker_image(link_target: &str) -> (Vec<u8>, Digest) {
        let layer = testkit_layer();
        let config = serde_json::to_vec(&json!({
            "os": "linux", "architecture": "arm64",
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(&layer)]},
        }))
        .unwrap();
        let manifest =
            json!([{"Config": "c.json", "RepoTags": ["app:1"], "Layers": ["abc/layer.tar"]}]);
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let files: &[(&str, &[u8])] = &[
            ("shared.tar", &layer),
            ("c.json", &config),
            ("manifest.json", &manifest),
        ];
        let tar = docker_tar(files, &[("abc/layer.tar", link_target)]);
        (tar, Digest::sha256_of(&config))
    }

    #[test]
    fn a_docker_archive_layer_deduplicated_by_symlink_verifies() {
        let (tar, subject) = docker_image("../shared.tar");
        let bundle = testkit::bundle(&tar, ImageFormat::DockerArchive, &subject);
        let report = validate(&bundle).unwrap();
        assert_eq!(report.images[0].config, subject);
        assert_eq!(report.images[0].manifest, None);
        assert_eq!(report.images[0].names, ["app:1"]);
        assert_eq!(
            report.images[0].layers[0].digest,
            Digest::sha256_of(&testkit_layer())
        );
    }

    #[test]
    fn a_docker_archive_symlink_escape_is_refused() {
        let (tar, subject) = docker_image("../../etc/passwd");
        let bundle = testkit::bundle(&tar, ImageFormat::DockerArchive, &subject);
        let err = validate(&bundle).unwrap_err();
        match err {
            ValidateError::SymlinkEscape { path, target } => {
                assert_eq!(path, "abc/layer.tar");
                assert_eq!(target, "../../etc/passwd");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn symlinks_are_refused_in_an_oci_layout() {
        let (layout, image) = one_image();
        let mut tar = layout.tar();
        tar.truncate(tar.len() - 1024);
        let mut builder = tar::Builder::new(tar);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        builder
            .append_link(&mut header, "blobs/link", "index.json")
            .unwrap();
        let bundle = testkit::bundle(
            &builder.into_inner().unwrap(),
            ImageFormat::OciLayout,
            &image.manifest,
        );
        let err = validate(&bundle).unwrap_err();
        assert_eq!(err.code(), "unsupported-entry", "{err:?}");
    }

    fn fixtures() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
        if dir.exists() {
            return Some(dir);
        }
        eprintln!("skipped: ../shared/fixtures not found");
        None
    }

    #[test]
    fn a_zstd_bomb_layer_stops_at_the_cap() {
        let Some(dir) = fixtures() else { return };
        let bomb = std::fs::read(dir.join("hostile/zstd/layer-bomb-1GiB.tar.zst")).unwrap();
        let mut layout = Layout::new();
        let size = bomb.len();
        let layer = layout.blob(bomb);
        let config = json!({"os": "linux", "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(b"unknown")]}});
        let (config, config_size) = layout.json_blob(&config);
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": testkit::OCI_CONFIG, "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                        "digest": layer, "size": size}]});
        let (manifest, manifest_size) = layout.json_blob(&manifest);
        layout.index(&[
            json!({"mediaType": OCI_MANIFEST, "digest": manifest, "size": manifest_size}),
        ]);
        let started = Instant::now();
        let err = validate(&layout.bundle(&manifest)).unwrap_err();
        eprintln!("bomb refused in {:?}", started.elapsed());
        match err {
            ValidateError::DecompressionLimit {
                layer: named,
                limit,
            } => {
                assert_eq!(named, layer);
                assert_eq!(limit, Limits::default().layer_ratio_floor);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hostile_tars_as_payloads_are_refused_without_panic() {
        let Some(dir) = fixtures() else { return };
        let subject = Digest::sha256_of(b"x");
        for sub in ["hostile/tar-edge", "hostile/tar-traversal"] {
            for file in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = file.unwrap().path();
                let tar = std::fs::read(&path).unwrap();
                for format in [ImageFormat::DockerArchive, ImageFormat::OciArchive] {
                    let bundle = testkit::Bundle {
                        payload: zstd::encode_all(tar.as_slice(), 3).unwrap(),
                        manifest: testkit::bundle(&[0; 1024], format, &subject).manifest,
                    };
                    let result = validate(&bundle);
                    assert!(result.is_err(), "{}", path.display());
                }
            }
        }
    }

    /// The subject the sender would sign for a fixture: the first
    /// descriptor of index.json, else the first config's digest.
    fn sender_subject(files: &BTreeMap<String, Vec<u8>>) -> Digest {
        if let Some(index) = files.get("index.json") {
            let index: Value = serde_json::from_slice(index).unwrap();
            if let Some(first) = index["manifests"].as_array().and_then(|m| m.first()) {
                return Digest::parse(first["digest"].as_str().unwrap()).unwrap();
            }
        }
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let config = manifest[0]["Config"].as_str().unwrap();
        Digest::sha256_of(&files[config])
    }

    fn tar_files(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(path.trim_start_matches("./").to_owned(), data);
        }
        files
    }

    fn fixture_bundle(path: &Path, format: ImageFormat) -> testkit::Bundle {
        let tar = match format {
            ImageFormat::OciLayout => testkit::tar_of_files(&testkit::layout_dir_files(path)),
            _ => std::fs::read(path).unwrap(),
        };
        let files = tar_files(&tar);
        let subject = match files.get("manifest.json").map(|m| m.as_slice()) {
            Some(b"null") => Digest::sha256_of(b"none"),
            _ => sender_subject(&files),
        };
        testkit::bundle(&tar, format, &subject)
    }

    fn fixture_inputs(dir: &Path) -> Vec<(PathBuf, ImageFormat)> {
        let mut inputs = Vec::new();
        let kinds = [
            ("docker-archive", ImageFormat::DockerArchive),
            ("oci-layout", ImageFormat::OciLayout),
            ("oci-archive", ImageFormat::OciArchive),
        ];
        for (sub, format) in kinds {
            for entry in std::fs::read_dir(dir.join("images").join(sub)).unwrap() {
                let path = entry.unwrap().path();
                let is_input = match format {
                    ImageFormat::OciLayout => path.is_dir(),
                    _ => path.extension().is_some_and(|e| e == "tar"),
                };
                if is_input {
                    inputs.push((path, format));
                }
            }
        }
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        inputs
    }

    #[test]
    fn every_fixture_image_verifies_or_is_refused_for_its_known_fault() {
        let Some(dir) = fixtures() else { return };
        let mut outcomes = Vec::new();
        for (path, format) in fixture_inputs(&dir) {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let bundle = fixture_bundle(&path, format);
            let started = Instant::now();
            let result = validate(&bundle);
            let elapsed = started.elapsed();
            match &result {
                Ok(report) => eprintln!(
                    "{name}: verified in {elapsed:?}: {} images, {} referrers, {} findings",
                    report.images.len(),
                    report.referrers.len(),
                    report.findings_total
                ),
                Err(err) => eprintln!("{name}: refused in {elapsed:?}: [{}] {err}", err.code()),
            }
            outcomes.push((name, result));
        }
        for (name, result) in outcomes {
            check_fixture(&name, result);
        }
    }

    fn check_fixture(name: &str, result: Result<ImageReport, ValidateError>) {
        match name {
            "gcr-null-manifest.tar" => {
                assert!(
                    matches!(result, Err(ValidateError::ManifestJsonNull)),
                    "{result:?}"
                );
            }
            "cimage-two-identical-references" => {
                // Its layers are placeholder text, not the gzip they claim.
                let err = result.unwrap_err();
                assert!(
                    matches!(err, ValidateError::CompressionMismatch { ref layer, .. }
                    if layer.hex().starts_with("0c8b2636")),
                    "{err:?}"
                );
            }
            "gcr-test-index" | "gcr-test-gc-index" => {
                // Manifest eebff607 calls itself Docker schema 2 while every
                // descriptor of it says OCI manifest.
                let err = result.unwrap_err();
                assert!(
                    matches!(err, ValidateError::MediaTypeMismatch { ref digest, .. }
                    if digest.hex().starts_with("eebff607")),
                    "{err:?}"
                );
            }
            "cimage-multi-arch-multi-tag" => {
                let err = result.unwrap_err();
                let digest =
                    "sha256:913cf3a39d377faf89ed388ad913a318a390488c9f34c46e43424795cdabffe8";
                let by = "sha256:0dc27f36a618c110ae851662c13283e9fbc1b5a5de003befc4bcefa5a05d2eef";
                match err {
                    ValidateError::BlobSizeMismatch {
                        digest: d,
                        expected: 585,
                        actual: 584,
                        referenced_by,
                    } => {
                        assert_eq!(d.as_str(), digest);
                        assert_eq!(referenced_by, by);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            _ => {
                let report = result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert!(
                    !report.images.is_empty() || !report.referrers.is_empty(),
                    "{name}"
                );
            }
        }
    }
}
