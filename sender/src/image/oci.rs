//! OCI layouts: choosing the subject in `index.json` and checking every blob
//! reachable from it.
//!
//! Indexes (OCI image index, Docker manifest list) and manifests (OCI image
//! manifest, Docker schema 2) are followed; any other media type is a leaf
//! blob whose size and digest are checked but whose content is not read.
//! See the OCI image spec, "Image Layout" and "Image Index".

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::listing::Listing;
use super::{BlobInfo, ImageError};

/// Largest index or manifest document read into memory.
pub(crate) const MAX_DOCUMENT: u64 = 4 << 20;
/// Deepest nesting of indexes followed.
const MAX_DEPTH: usize = 8;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A content descriptor, as found in indexes and manifests.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct IndexDoc {
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    config: Descriptor,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// The chosen top-level descriptor and every name index.json offers.
#[derive(Debug)]
pub(crate) struct Selection {
    pub subject: Descriptor,
    pub name: Option<String>,
    pub refs: Vec<String>,
}

/// Reads `index.json`; `None` when its `manifests` is null or empty (as in
/// some Docker 25 archives).
pub(crate) fn top_descriptors(listing: &Listing) -> Result<Option<Vec<Descriptor>>, ImageError> {
    let index: IndexDoc = parse(listing, "index.json")?;
    Ok(index.manifests.filter(|m| !m.is_empty()))
}

/// Picks the subject: the only descriptor, or the one `reference` names
/// (by ref-name annotation or by digest).
pub(crate) fn select(
    descriptors: &[Descriptor],
    reference: Option<&str>,
) -> Result<Selection, ImageError> {
    let refs = available_refs(descriptors);
    let chosen = match reference {
        Some(reference) => by_reference(descriptors, reference, &refs)?,
        None => only_one(descriptors, &refs)?,
    };
    let name = ref_name(chosen)
        .map(str::to_owned)
        .or(reference.map(str::to_owned));
    Ok(Selection {
        subject: chosen.clone(),
        name,
        refs,
    })
}

/// Checks every blob reachable from `root`, returning them in walk order.
pub(crate) fn walk(listing: &Listing, root: &Descriptor) -> Result<Vec<BlobInfo>, ImageError> {
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((descriptor, depth)) = stack.pop() {
        if !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        if depth > MAX_DEPTH {
            return Err(ImageError::TooDeep {
                digest: descriptor.digest,
            });
        }
        blobs.push(check_blob(listing, &descriptor)?);
        for child in children(listing, &descriptor)?.into_iter().rev() {
            stack.push((child, depth + 1));
        }
    }
    Ok(blobs)
}

/// Checks that a blob exists with the size and digest its descriptor states.
// Limitation: non-distributable ("foreign") layers that a layout leaves out
// on purpose are refused as missing; the high side could not fetch them.
pub(crate) fn check_blob(listing: &Listing, desc: &Descriptor) -> Result<BlobInfo, ImageError> {
    let path = desc.digest.blob_path();
    let (_, member) = listing.resolve(&path).map_err(|e| match e {
        ImageError::Missing { .. } => ImageError::MissingBlob {
            digest: desc.digest.clone(),
        },
        other => other,
    })?;
    if member.size != desc.size {
        let (digest, expected, actual) = (desc.digest.clone(), desc.size, member.size);
        return Err(ImageError::SizeMismatch {
            digest,
            expected,
            actual,
        });
    }
    let actual = listing.digest(&path, desc.digest.algorithm())?;
    if actual != desc.digest {
        return Err(ImageError::DigestMismatch {
            digest: desc.digest.clone(),
            actual,
        });
    }
    let media_type = desc.media_type.clone();
    Ok(BlobInfo {
        digest: desc.digest.clone(),
        size: desc.size,
        media_type,
        path,
    })
}

fn children(listing: &Listing, desc: &Descriptor) -> Result<Vec<Descriptor>, ImageError> {
    let media_type = desc.media_type.as_deref().unwrap_or_default();
    let path = desc.digest.blob_path();
    if INDEX_TYPES.contains(&media_type) {
        let index: IndexDoc = parse(listing, &path)?;
        return Ok(index.manifests.unwrap_or_default());
    }
    if MANIFEST_TYPES.contains(&media_type) {
        let manifest: ManifestDoc = parse(listing, &path)?;
        let mut out = vec![manifest.config];
        out.extend(manifest.layers.unwrap_or_default());
        return Ok(out);
    }
    Ok(Vec::new())
}

/// Reads and parses a JSON document from the input.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    listing: &Listing,
    name: &str,
) -> Result<T, ImageError> {
    let bytes = listing.read(name, MAX_DOCUMENT)?;
    serde_json::from_slice(&bytes).map_err(|e| ImageError::BadJson {
        member: name.to_owned(),
        reason: e.to_string(),
    })
}

fn ref_name(desc: &Descriptor) -> Option<&str> {
    let annotations = desc.annotations.as_ref()?;
    annotations
        .get(REF_NAME)
        .or_else(|| annotations.get(CONTAINERD_NAME))
        .map(String::as_str)
}

fn available_refs(descriptors: &[Descriptor]) -> Vec<String> {
    descriptors
        .iter()
        .map(|d| ref_name(d).map_or_else(|| d.digest.to_string(), str::to_owned))
        .collect()
}

fn by_reference<'a>(
    descriptors: &'a [Descriptor],
    reference: &str,
    refs: &[String],
) -> Result<&'a Descriptor, ImageError> {
    let wanted = Digest::parse(reference).ok();
    let matches: Vec<&Descriptor> = descriptors
        .iter()
        .filter(|d| ref_name(d) == Some(reference) || wanted.as_ref() == Some(&d.digest))
        .collect();
    let first = matches
        .first()
        .copied()
        .ok_or_else(|| ImageError::RefNotFound {
            reference: reference.to_owned(),
            available: refs.to_vec(),
        })?;
    if matches.iter().any(|d| d.digest != first.digest) {
        let digests = matches.iter().map(|d| d.digest.clone()).collect();
        return Err(ImageError::AmbiguousRef {
            reference: reference.to_owned(),
            digests,
        });
    }
    Ok(first)
}

fn only_one<'a>(
    descriptors: &'a [Descriptor],
    refs: &[String],
) -> Result<&'a Descriptor, ImageError> {
    let first = descriptors.first().ok_or(ImageError::NoImages)?;
    if descriptors.iter().any(|d| d.digest != first.digest) {
        return Err(ImageError::ChooseRef {
            available: refs.to_vec(),
        });
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(digest_seed: &[u8], name: Option<&str>) -> Descriptor {
        let annotations = name.map(|n| [(REF_NAME.to_owned(), n.to_owned())].into_iter().collect());
        Descriptor {
            media_type: Some(MANIFEST_TYPES[0].to_owned()),
            digest: Digest::sha256_of(digest_seed),
            size: 1,
            annotations,
        }
    }

    #[test]
    fn a_single_descriptor_needs_no_reference() {
        let list = [desc(b"a", Some("1.0"))];
        let chosen = select(&list, None).unwrap();
        assert_eq!(chosen.subject.digest, Digest::sha256_of(b"a"));
        assert_eq!(chosen.name.as_deref(), Some("1.0"));
    }

    #[test]
    fn several_descriptors_need_a_reference() {
        let list = [desc(b"a", Some("1.0")), desc(b"b", Some("2.0"))];
        let err = select(&list, None).unwrap_err();
        assert!(
            matches!(err, ImageError::ChooseRef { ref available } if available == &["1.0", "2.0"])
        );
        assert_eq!(
            select(&list, Some("2.0")).unwrap().subject.digest,
            Digest::sha256_of(b"b")
        );
        let by_digest = Digest::sha256_of(b"a").to_string();
        assert_eq!(
            select(&list, Some(&by_digest)).unwrap().name.as_deref(),
            Some("1.0")
        );
    }

    #[test]
    fn a_name_on_two_different_manifests_is_ambiguous() {
        let list = [desc(b"a", Some("1.0")), desc(b"b", Some("1.0"))];
        let err = select(&list, Some("1.0")).unwrap_err();
        assert!(matches!(err, ImageError::AmbiguousRef { ref digests, .. } if digests.len() == 2));
    }

    #[test]
    fn an_unknown_reference_lists_the_choices() {
        let list = [desc(b"a", Some("1.0"))];
        let err = select(&list, Some("nope")).unwrap_err();
        assert!(err.to_string().contains("1.0"), "{err}");
    }
}
