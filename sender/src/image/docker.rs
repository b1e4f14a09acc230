//! Legacy docker-archives (`docker save` before Docker 25): `manifest.json`
//! lists each image's config file and layer files.
//!
//! Such an archive has no manifest digest. The subject digest is the image
//! ID: the sha256 of the config JSON that `manifest.json` names (the config
//! file name is not trusted to be that digest; some tools write others).
//! Each layer file must exist (symlinks inside the archive are followed) and,
//! when uncompressed, hash to the matching `rootfs.diff_ids` entry of the
//! config.

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::listing::Listing;
use super::oci::{MAX_DOCUMENT, parse};
use super::{BlobInfo, ImageError};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

#[derive(Clone, Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// The chosen image of a legacy docker-archive, checked.
#[derive(Debug)]
pub(crate) struct Chosen {
    pub subject: Digest,
    pub name: Option<String>,
    pub refs: Vec<String>,
    pub blobs: Vec<BlobInfo>,
}

/// Picks an image from `manifest.json` and checks its config and layers.
pub(crate) fn choose(listing: &Listing, reference: Option<&str>) -> Result<Chosen, ImageError> {
    let entries: Option<Vec<Entry>> = parse(listing, "manifest.json")?;
    let entries = entries.ok_or(ImageError::ManifestJsonNull)?;
    let refs = repo_tags(&entries);
    let entry = select(listing, &entries, reference, &refs)?;
    let (subject, config_blob, diff_ids) = check_config(listing, &entry.config)?;
    let mut blobs = vec![config_blob];
    for (index, layer) in entry.layers.iter().enumerate() {
        blobs.push(check_layer(listing, layer, diff_ids.get(index))?);
    }
    let name = reference.map(str::to_owned).or_else(|| first_tag(entry));
    Ok(Chosen {
        subject,
        name,
        refs,
        blobs,
    })
}

fn select<'a>(
    listing: &Listing,
    entries: &'a [Entry],
    reference: Option<&str>,
    refs: &[String],
) -> Result<&'a Entry, ImageError> {
    let Some(reference) = reference else {
        return match entries {
            [] => Err(ImageError::NoImages),
            [only] => Ok(only),
            _ => Err(ImageError::ChooseRef {
                available: choices(entries, refs),
            }),
        };
    };
    let wanted = Digest::parse(reference).ok();
    for entry in entries {
        let tagged = entry.repo_tags.iter().flatten().any(|t| t == reference);
        if tagged || wanted.is_some() && wanted == listing.digest_of(&entry.config) {
            return Ok(entry);
        }
    }
    let available = choices(entries, refs);
    Err(ImageError::RefNotFound {
        reference: reference.to_owned(),
        available,
    })
}

fn check_config(
    listing: &Listing,
    name: &str,
) -> Result<(Digest, BlobInfo, Vec<Digest>), ImageError> {
    let bytes = listing.read(name, MAX_DOCUMENT)?;
    let config: Config = serde_json::from_slice(&bytes).map_err(|e| ImageError::BadJson {
        member: name.to_owned(),
        reason: e.to_string(),
    })?;
    let digest = Digest::sha256_of(&bytes);
    let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    let blob = BlobInfo {
        digest: digest.clone(),
        size: bytes.len() as u64,
        media_type: Some("application/vnd.docker.container.image.v1+json".to_owned()),
        path: name.to_owned(),
    };
    Ok((digest, blob, diff_ids))
}

fn check_layer(
    listing: &Listing,
    name: &str,
    diff_id: Option<&Digest>,
) -> Result<BlobInfo, ImageError> {
    let (_, member) = listing.resolve(name)?;
    let digest = listing.digest(name, sluice_protocol::digest::Algorithm::Sha256)?;
    if let Some(expected) = diff_id.filter(|d| **d != digest) {
        // Limitation: a compressed layer's diff id is the hash of its
        // decompressed bytes; it is not checked here, only its presence.
        if !is_compressed(listing, name)? {
            let (layer, expected) = (name.to_owned(), expected.clone());
            return Err(ImageError::LayerMismatch {
                layer,
                expected,
                actual: digest,
            });
        }
    }
    let path = name.to_owned();
    Ok(BlobInfo {
        digest,
        size: member.size,
        media_type: None,
        path,
    })
}

fn is_compressed(listing: &Listing, name: &str) -> Result<bool, ImageError> {
    let (resolved, member) = listing.resolve(name)?;
    let mut head = [0u8; 4];
    let mut reader = listing.open(&resolved, member)?;
    let n = std::io::Read::read(&mut reader, &mut head).unwrap_or(0);
    Ok(head[..n].starts_with(GZIP_MAGIC) || head[..n].starts_with(ZSTD_MAGIC))
}

fn repo_tags(entries: &[Entry]) -> Vec<String> {
    let tags = entries
        .iter()
        .flat_map(|e| e.repo_tags.iter().flatten().cloned());
    tags.collect()
}

/// What an operator can pass to `--ref`: the tags, or config file names
/// when nothing is tagged (a config's sha256 digest also works).
fn choices(entries: &[Entry], refs: &[String]) -> Vec<String> {
    if !refs.is_empty() {
        return refs.to_vec();
    }
    entries.iter().map(|e| e.config.clone()).collect()
}

fn first_tag(entry: &Entry) -> Option<String> {
    entry.repo_tags.as_ref()?.first().cloned()
}

impl Listing {
    /// The sha256 of a member, or `None` if it cannot be read.
    fn digest_of(&self, name: &str) -> Option<Digest> {
        self.digest(name, sluice_protocol::digest::Algorithm::Sha256)
            .ok()
    }
}
