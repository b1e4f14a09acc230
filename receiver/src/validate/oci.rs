//! OCI image layouts: `index.json` ─▶ indexes ─▶ manifests ─▶ config and
//! layers (OCI image spec, "Image Layout", "Image Index", "Image Manifest").
//!
//! Two phases. The walk follows every descriptor reachable from
//! `index.json` and checks each one's blob is present with the declared
//! size (content already matched the name in the payload pass); it records
//! images and referrers. Only then are image configs read and layers held
//! against their diff ids, so an integrity fault anywhere (a missing blob,
//! a wrong size) is reported before a content fault in some layer.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use sluice_protocol::digest::Digest;

use super::Limits;
use super::config::{self, ConfigDoc, IMAGE_CONFIG_TYPES, LayerRef, parse_digest};
use super::error::{ValidateError, echo};
use super::payload::{Contents, FileRecord, parse_record};
use super::report::{Platform, PlatformImage, Referrer, ReferrerKind};

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// BuildKit marks attestation manifests in an index with these.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// A descriptor as written in a document, before validation.
#[derive(Debug, Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<Platform>,
}

/// A descriptor whose digest passed strict validation.
#[derive(Clone, Debug)]
pub(super) struct Descriptor {
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
    annotations: BTreeMap<String, String>,
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct IndexDoc {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ManifestDoc {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LayoutDoc {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

/// What the walk found.
#[derive(Debug, Default)]
pub(super) struct Graph {
    /// The descriptors `index.json` lists.
    pub top: Vec<Descriptor>,
    pub images: Vec<ImageNode>,
    pub referrers: Vec<Referrer>,
    /// Every blob reached.
    pub reached: HashSet<Digest>,
}

/// A manifest with an image config, waiting for its layers to be checked.
#[derive(Debug)]
pub(super) struct ImageNode {
    pub manifest: Descriptor,
    pub platform: Option<Platform>,
    pub names: Vec<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// Also listed as a referrer (an attestation with an image config).
    pub referrer: bool,
}

/// Checks `oci-layout`, the version it declares.
pub(super) fn check_layout_file(contents: &Contents, limits: &Limits) -> Result<(), &'static str> {
    let Ok(doc) = contents.document::<LayoutDoc>("oci-layout", limits) else {
        return Err("`oci-layout` is missing or not the expected JSON");
    };
    if !doc.version.starts_with("1.") {
        return Err("`oci-layout` declares an unsupported layout version");
    }
    Ok(())
}

/// Walks everything reachable from `index.json`.
pub(super) fn walk(contents: &Contents, limits: &Limits) -> Result<Graph, ValidateError> {
    let index: IndexDoc = contents.document("index.json", limits)?;
    let raw = index.manifests.unwrap_or_default();
    let top = raw
        .into_iter()
        .map(descriptor)
        .collect::<Result<Vec<_>, _>>()?;
    let mut walker = Walker {
        contents,
        limits,
        graph: Graph::default(),
        images_by_digest: HashMap::new(),
        visited: HashSet::new(),
        descriptors: 0,
    };
    for desc in &top {
        let names: Vec<String> = ref_name(desc).into_iter().collect();
        walker.visit(desc, 0, "index.json", &names)?;
    }
    walker.graph.top = top;
    Ok(walker.graph)
}

/// Reads each image's config and checks its layers. Referrers with an
/// image config are checked too when their config has a `rootfs`, but only
/// runnable images are returned.
pub(super) fn verify_images(
    graph: &Graph,
    contents: &Contents,
    limits: &Limits,
) -> Result<Vec<PlatformImage>, ValidateError> {
    let mut out = Vec::new();
    for node in &graph.images {
        let image = verify_image(node, contents, limits)?;
        if let Some(image) = image.filter(|_| !node.referrer) {
            out.push(image);
        }
    }
    Ok(out)
}

/// Whether `subject` is a descriptor `index.json` lists.
pub(super) fn check_subject(graph: &Graph, subject: &Digest) -> Result<(), ValidateError> {
    if graph.top.iter().any(|d| d.digest == *subject) {
        return Ok(());
    }
    Err(ValidateError::SubjectNotFound {
        subject: subject.clone(),
        expected: "a manifest or index listed in index.json",
    })
}

struct Walker<'a> {
    contents: &'a Contents,
    limits: &'a Limits,
    graph: Graph,
    images_by_digest: HashMap<Digest, usize>,
    visited: HashSet<Digest>,
    descriptors: usize,
}

impl<'a> Walker<'a> {
    fn visit(
        &mut self,
        desc: &Descriptor,
        depth: usize,
        referenced_by: &str,
        names: &[String],
    ) -> Result<(), ValidateError> {
        let record = self.present(desc, referenced_by)?;
        // Limitation: names reach the images below an index only on its
        // first visit; a second tag on the same index is not repeated on
        // them (the blobs are still checked on every visit).
        if let Some(&index) = self.images_by_digest.get(&desc.digest) {
            merge_names(&mut self.graph.images[index].names, names);
            return Ok(());
        }
        if !self.visited.insert(desc.digest.clone()) {
            return Ok(());
        }
        if depth > self.limits.max_depth {
            let (digest, limit) = (desc.digest.clone(), self.limits.max_depth);
            return Err(ValidateError::TooDeep { digest, limit });
        }
        let media_type = effective_media_type(desc, record);
        if INDEX_TYPES.contains(&media_type.as_str()) {
            return self.index(desc, depth, names);
        }
        if MANIFEST_TYPES.contains(&media_type.as_str()) {
            return self.manifest(desc, names);
        }
        Ok(())
    }

    /// The blob exists and has the size its descriptor declares.
    fn present(
        &mut self,
        desc: &Descriptor,
        referenced_by: &str,
    ) -> Result<&'a FileRecord, ValidateError> {
        self.descriptors += 1;
        if self.descriptors > self.limits.max_descriptors {
            let limit = self.limits.max_descriptors;
            return Err(ValidateError::TooManyDescriptors { limit });
        }
        let record =
            self.contents
                .blob(&desc.digest)
                .ok_or_else(|| ValidateError::MissingBlob {
                    digest: desc.digest.clone(),
                    referenced_by: referenced_by.to_owned(),
                })?;
        if record.size != desc.size {
            return Err(ValidateError::BlobSizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: record.size,
                referenced_by: referenced_by.to_owned(),
            });
        }
        self.graph.reached.insert(desc.digest.clone());
        Ok(record)
    }

    fn index(
        &mut self,
        desc: &Descriptor,
        depth: usize,
        names: &[String],
    ) -> Result<(), ValidateError> {
        let doc: IndexDoc = self.document(desc)?;
        check_media_type(desc, doc.media_type.as_deref())?;
        let children = doc.manifests.unwrap_or_default();
        let children = children.into_iter().map(descriptor);
        let children = children.collect::<Result<Vec<_>, _>>()?;
        if let Some(subject) = doc.subject {
            let subject = descriptor(subject)?;
            let blobs = children.len();
            self.refer(
                desc,
                ReferrerKind::Subject,
                doc.artifact_type,
                Some(subject.digest),
                blobs,
            );
        }
        let parent = desc.digest.to_string();
        for child in &children {
            self.visit(child, depth + 1, &parent, names)?;
        }
        Ok(())
    }

    fn manifest(&mut self, desc: &Descriptor, names: &[String]) -> Result<(), ValidateError> {
        let doc: ManifestDoc = self.document(desc)?;
        check_media_type(desc, doc.media_type.as_deref())?;
        let parent = desc.digest.to_string();
        let config = doc.config.ok_or_else(|| ValidateError::BadJson {
            path: desc.digest.blob_path(),
            reason: "an image manifest without a config".into(),
        })?;
        let config = descriptor(config)?;
        self.present(&config, &parent)?;
        let layers = doc.layers.unwrap_or_default();
        let layers = layers
            .into_iter()
            .map(descriptor)
            .collect::<Result<Vec<_>, _>>()?;
        for layer in &layers {
            self.present(layer, &parent)?;
        }
        let subject = doc.subject.map(descriptor).transpose()?.map(|s| s.digest);
        let is_image = IMAGE_CONFIG_TYPES.contains(&config.media_type.as_deref().unwrap_or(""));
        // An image config over no filesystem layer (cosign signatures and
        // attestations, OCI 1.1 artifacts using the empty config) describes
        // something else rather than being something to run.
        let has_fs = layers
            .iter()
            .any(|l| config::is_filesystem_layer(l.media_type.as_deref()));
        let kind = referrer_kind(
            desc,
            subject.is_some(),
            is_image && has_fs,
            doc.artifact_type.is_some(),
        );
        if let Some(kind) = kind {
            let subject = match subject {
                Some(subject) => Some(subject),
                None => attestation_subject(desc)?,
            };
            let artifact_type = doc.artifact_type.or_else(|| config.media_type.clone());
            self.refer(desc, kind, artifact_type, subject, layers.len() + 1);
        }
        if is_image {
            self.images_by_digest
                .insert(desc.digest.clone(), self.graph.images.len());
            self.graph.images.push(ImageNode {
                manifest: desc.clone(),
                platform: desc.platform.clone(),
                names: names.to_vec(),
                config,
                layers,
                referrer: kind.is_some(),
            });
        }
        Ok(())
    }

    fn refer(
        &mut self,
        desc: &Descriptor,
        kind: ReferrerKind,
        artifact_type: Option<String>,
        subject: Option<Digest>,
        blobs: usize,
    ) {
        let subject_present = subject
            .as_ref()
            .is_some_and(|s| self.contents.blob(s).is_some());
        self.graph.referrers.push(Referrer {
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            kind,
            artifact_type,
            subject,
            subject_present,
            blobs,
        });
    }

    fn document<T: serde::de::DeserializeOwned>(
        &self,
        desc: &Descriptor,
    ) -> Result<T, ValidateError> {
        let path = desc.digest.blob_path();
        let record =
            self.contents
                .blob(&desc.digest)
                .ok_or_else(|| ValidateError::MissingBlob {
                    digest: desc.digest.clone(),
                    referenced_by: String::new(),
                })?;
        parse_record(&path, record, self.limits)
    }
}

fn verify_image(
    node: &ImageNode,
    contents: &Contents,
    limits: &Limits,
) -> Result<Option<PlatformImage>, ValidateError> {
    let config_record = blob(contents, &node.config)?;
    let config: ConfigDoc = parse_record(&node.config.digest.blob_path(), config_record, limits)?;
    if node.referrer && !config.has_rootfs() {
        return Ok(None);
    }
    let diff_ids = config.diff_ids()?;
    let mut refs = Vec::with_capacity(node.layers.len());
    for layer in &node.layers {
        refs.push(LayerRef {
            digest: &layer.digest,
            media_type: layer.media_type.as_deref(),
            record: blob(contents, layer)?,
        });
    }
    let layers = config::check_layers(node.manifest.digest.as_str(), &refs, &diff_ids)?;
    Ok(Some(PlatformImage {
        platform: node.platform.clone().or_else(|| config.platform()),
        manifest: Some(node.manifest.digest.clone()),
        config: node.config.digest.clone(),
        names: node.names.clone(),
        layers,
    }))
}

fn blob<'c>(contents: &'c Contents, desc: &Descriptor) -> Result<&'c FileRecord, ValidateError> {
    contents
        .blob(&desc.digest)
        .ok_or_else(|| ValidateError::MissingBlob {
            digest: desc.digest.clone(),
            referenced_by: String::new(),
        })
}

fn descriptor(raw: RawDescriptor) -> Result<Descriptor, ValidateError> {
    Ok(Descriptor {
        digest: parse_digest(&raw.digest)?,
        media_type: raw.media_type,
        size: raw.size,
        annotations: raw.annotations.unwrap_or_default(),
        platform: raw.platform,
    })
}

/// The descriptor's media type, or when it has none, the one the document
/// itself declares (so such a document is still followed and checked).
fn effective_media_type(desc: &Descriptor, record: &FileRecord) -> String {
    if let Some(media_type) = &desc.media_type {
        return media_type.clone();
    }
    #[derive(Deserialize)]
    struct Sniff {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let sniffed = record
        .doc
        .as_deref()
        .and_then(|bytes| serde_json::from_slice::<Sniff>(bytes).ok());
    sniffed.and_then(|s| s.media_type).unwrap_or_default()
}

/// A document that names its own media type must agree with its descriptor.
fn check_media_type(desc: &Descriptor, found: Option<&str>) -> Result<(), ValidateError> {
    match (desc.media_type.as_deref(), found) {
        (Some(declared), Some(found)) if declared != found => {
            Err(ValidateError::MediaTypeMismatch {
                digest: desc.digest.clone(),
                declared: echo(declared),
                found: echo(found),
            })
        }
        _ => Ok(()),
    }
}

fn referrer_kind(
    desc: &Descriptor,
    has_subject: bool,
    runnable: bool,
    has_artifact_type: bool,
) -> Option<ReferrerKind> {
    if has_subject {
        Some(ReferrerKind::Subject)
    } else if is_attestation(desc) {
        Some(ReferrerKind::Attestation)
    } else if !runnable || has_artifact_type {
        Some(ReferrerKind::Artifact)
    } else {
        None
    }
}

fn is_attestation(desc: &Descriptor) -> bool {
    desc.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some("attestation-manifest")
}

/// The image a BuildKit attestation is about, validated as a digest.
fn attestation_subject(desc: &Descriptor) -> Result<Option<Digest>, ValidateError> {
    if !is_attestation(desc) {
        return Ok(None);
    }
    desc.annotations
        .get(REFERENCE_DIGEST)
        .map(|d| parse_digest(d))
        .transpose()
}

fn ref_name(desc: &Descriptor) -> Option<String> {
    let annotations = &desc.annotations;
    annotations
        .get(REF_NAME)
        .or_else(|| annotations.get(CONTAINERD_NAME))
        .cloned()
}

fn merge_names(into: &mut Vec<String>, names: &[String]) {
    for name in names {
        if !into.contains(name) {
            into.push(name.clone());
        }
    }
}
