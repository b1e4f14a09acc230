//! Test helpers: build image payloads and the signed file list the sender
//! would write for them, in memory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};
use sluice_protocol::digest::Digest;
use sluice_protocol::id::{BundleId, KeyId};
use sluice_protocol::manifest::{
    Archive, BundleKind, Compression, FORMAT_VERSION, FileEntry, FileKind, ImageFormat, Manifest,
    PayloadInfo, Subject,
};

use super::layer::tests::{gzip, tar_of};

pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(super) const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A payload and the manifest that signs it.
pub(super) struct Bundle {
    pub payload: Vec<u8>,
    pub manifest: Manifest,
}

/// zstd(tar) and a manifest listing every file and symlink in `tar`.
pub(super) fn bundle(tar: &[u8], format: ImageFormat, subject: &Digest) -> Bundle {
    let payload = zstd::encode_all(tar, 3).unwrap();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        bundle_id: BundleId([1; 16]),
        kind: BundleKind::Image,
        created: 0,
        subject: Subject {
            name: None,
            digest: subject.clone(),
        },
        image_format: Some(format),
        payload: PayloadInfo {
            length: payload.len() as u64,
            blake3: *blake3::hash(&payload).as_bytes(),
            compression: Compression::Zstd,
            archive: Archive::Tar,
        },
        files: file_list(tar),
        signer: KeyId([2; 8]),
    };
    Bundle { payload, manifest }
}

fn file_list(tar: &[u8]) -> Vec<FileEntry> {
    let mut archive = tar::Archive::new(tar);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let raw = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let path = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let kind = entry.header().entry_type();
        let (size, blake3, link_target) = match kind {
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap().into_owned();
                (0, [0; 32], Some(String::from_utf8(target).unwrap()))
            }
            _ => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                (data.len() as u64, *blake3::hash(&data).as_bytes(), None)
            }
        };
        files.push(FileEntry {
            path,
            size,
            blake3,
            kind: FileKind::ImageFile,
            link_target,
        });
    }
    files
}

/// A tar with directory entries for every parent, members sorted, fixed
/// metadata (like the sender's layout tar).
pub(super) fn tar_of_files(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut dirs = std::collections::BTreeSet::new();
    for path in files.keys() {
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        for end in 1..=parts.len() {
            dirs.insert(parts[..end].join("/"));
        }
    }
    let mut names: Vec<(String, Option<&Vec<u8>>)> = dirs.into_iter().map(|d| (d, None)).collect();
    names.extend(files.iter().map(|(p, d)| (p.clone(), Some(d))));
    names.sort();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in names {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match data {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{name}/"), std::io::empty())
                    .unwrap();
            }
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, &name, data.as_slice())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// The files of an OCI layout directory (`oci-layout`, `index.json`,
/// `blobs/**`), by relative path.
pub(super) fn layout_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for name in ["oci-layout", "index.json"] {
        files.insert(name.to_owned(), std::fs::read(dir.join(name)).unwrap());
    }
    let mut stack = vec![dir.join("blobs")];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
            files.insert(rel, std::fs::read(&path).unwrap());
        }
    }
    files
}

/// An OCI layout built in memory.
pub(super) struct Layout {
    pub files: BTreeMap<String, Vec<u8>>,
}

/// What [`Layout::image`] wrote.
pub(super) struct BuiltImage {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub descriptor: Value,
}

impl Layout {
    pub fn new() -> Self {
        let mut files = BTreeMap::new();
        files.insert(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        );
        Self { files }
    }

    pub fn blob(&mut self, bytes: Vec<u8>) -> Digest {
        let digest = Digest::sha256_of(&bytes);
        self.files.insert(digest.blob_path(), bytes);
        digest
    }

    pub fn json_blob(&mut self, value: &Value) -> (Digest, u64) {
        let bytes = serde_json::to_vec(value).unwrap();
        let size = bytes.len() as u64;
        (self.blob(bytes), size)
    }

    /// An image of gzip layers made from `layer_tars`, with `diff_ids`
    /// written into its config as given.
    pub fn image_with(&mut self, layer_tars: &[Vec<u8>], diff_ids: &[Digest]) -> BuiltImage {
        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        for tar in layer_tars {
            let packed = gzip(tar);
            let size = packed.len();
            let digest = self.blob(packed);
            descriptors.push(json!({"mediaType": GZIP_LAYER, "digest": digest, "size": size}));
            layers.push(digest);
        }
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (config, config_size) = self.json_blob(&config);
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": config_size},
            "layers": descriptors,
        });
        let (manifest, size) = self.json_blob(&manifest);
        let descriptor = json!({"mediaType": OCI_MANIFEST, "digest": manifest, "size": size});
        BuiltImage {
            manifest,
            config,
            layers,
            descriptor,
        }
    }

    /// A consistent image of one layer holding `files`.
    pub fn image(&mut self, files: &[(&str, &[u8])]) -> BuiltImage {
        let tar = tar_of(files);
        let diff_id = Digest::sha256_of(&tar);
        self.image_with(&[tar], &[diff_id])
    }

    pub fn index(&mut self, manifests: &[Value]) {
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        self.files
            .insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    }

    pub fn tar(&self) -> Vec<u8> {
        tar_of_files(&self.files)
    }

    pub fn bundle(&self, subject: &Digest) -> Bundle {
        bundle(&self.tar(), ImageFormat::OciLayout, subject)
    }
}
