//! `sluice-send inspect`: show what a bundle or an image input holds.
//!
//! For a bundle it prints the manifest, recomputes the payload's length and
//! blake3 from the file, and, given a trust store, verifies the signature.
//! For an image input it prints the detected format, the subject digest, the
//! refs on offer and every checked blob. It changes nothing on disk.

use sluice_hardware::outln;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;
use sluice_protocol::bundle::{BUNDLE_MAGIC, ENVELOPE_HEADER_LEN, Envelope, envelope_len};
use sluice_protocol::manifest::{FileEntry, Manifest};

use crate::image::{BlobInfo, Image, ImageOptions};
use crate::keyfile;

/// Arguments of `sluice-send inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A bundle file, or an image input (docker-archive, OCI layout or tar).
    pub path: PathBuf,
    /// Print stable JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Trust store (TOML file, or directory of .pub files) to check the
    /// bundle's signature against.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub trust: Option<PathBuf>,
    /// For an image input holding several images: which one to show.
    #[arg(long = "ref", value_name = "NAME")]
    pub reference: Option<String>,
}

/// What `inspect --json` prints for a bundle.
#[derive(Debug, Serialize)]
pub struct BundleReport {
    pub r#type: &'static str,
    pub path: PathBuf,
    pub bundle_id: String,
    pub kind: String,
    pub created: u64,
    pub subject_name: Option<String>,
    pub subject: String,
    pub image_format: Option<String>,
    pub signer: String,
    /// `verified`, `not verified: <reason>`, or `not checked`.
    pub signature: String,
    pub payload_length: u64,
    pub payload_blake3: String,
    pub payload_matches: bool,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub path: String,
    pub size: u64,
    pub kind: String,
    pub blake3: String,
    pub link_target: Option<String>,
}

/// What `inspect --json` prints for an image input.
#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub r#type: &'static str,
    pub path: PathBuf,
    pub format: String,
    pub subject: String,
    pub name: Option<String>,
    pub refs: Vec<String>,
    pub blobs: Vec<BlobInfo>,
}

/// Runs `sluice-send inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    if is_bundle(&args.path)? {
        return inspect_bundle(args);
    }
    let opts = ImageOptions {
        reference: args.reference.clone(),
    };
    let image = Image::open(&args.path, &opts)
        .with_context(|| format!("inspecting {}", args.path.display()))?;
    let report = image_report(&args.path, &image);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_image(&report);
    }
    Ok(())
}

/// Reads a bundle's manifest and checks its payload against the file.
pub fn bundle_report(path: &Path, trust: Option<&Path>) -> anyhow::Result<BundleReport> {
    let read_ctx = || format!("reading bundle {}", path.display());
    let mut file = BufReader::new(File::open(path).with_context(read_ctx)?);
    let envelope = read_envelope(&mut file).with_context(read_ctx)?;
    let parsed = Envelope::parse(&envelope).with_context(read_ctx)?;
    let signature = check_signature(&envelope, trust)?;
    // The sender inspects its own bundles here; the receiver decodes only
    // after verification. Decoding is bounded by the envelope checks.
    let manifest = Manifest::from_cbor(parsed.manifest_bytes()).with_context(read_ctx)?;
    let (length, blake3) = hash_rest(&mut file).with_context(read_ctx)?;
    let matches = length == manifest.payload.length && blake3 == manifest.payload.blake3;
    Ok(to_report(path, &manifest, signature, matches))
}

fn inspect_bundle(args: &InspectArgs) -> anyhow::Result<()> {
    let report = bundle_report(&args.path, args.trust.as_deref())?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_bundle(&report);
    }
    if !report.payload_matches {
        bail!(
            "payload of {} does not match its manifest",
            args.path.display()
        );
    }
    if args.trust.is_some() && report.signature != "verified" {
        bail!(
            "signature of {} is {}",
            args.path.display(),
            report.signature
        );
    }
    Ok(())
}

fn is_bundle(path: &Path) -> anyhow::Result<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    let mut head = [0u8; 7];
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = file
        .read(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(head[..n] == BUNDLE_MAGIC[..7])
}

fn read_envelope<R: Read>(reader: &mut R) -> anyhow::Result<Vec<u8>> {
    let mut envelope = vec![0u8; ENVELOPE_HEADER_LEN];
    reader
        .read_exact(&mut envelope)
        .context("bundle is shorter than its header")?;
    let len = envelope_len(&envelope)?;
    envelope.resize(len, 0);
    reader
        .read_exact(&mut envelope[ENVELOPE_HEADER_LEN..])
        .context("bundle ends inside its envelope")?;
    Ok(envelope)
}

fn check_signature(envelope: &[u8], trust: Option<&Path>) -> anyhow::Result<String> {
    let Some(trust) = trust else {
        return Ok("not checked".to_owned());
    };
    let store = keyfile::load_trust_store(trust)?;
    Ok(match store.verify_envelope(envelope, 0) {
        Ok(_) => "verified".to_owned(),
        Err(error) => format!("not verified: {error}"),
    })
}

fn hash_rest<R: Read>(reader: &mut R) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = blake3::Hasher::new();
    let length = io::copy(reader, &mut hasher)?;
    Ok((length, *hasher.finalize().as_bytes()))
}

fn to_report(path: &Path, m: &Manifest, signature: String, matches: bool) -> BundleReport {
    BundleReport {
        r#type: "bundle",
        path: path.to_owned(),
        bundle_id: m.bundle_id.to_string(),
        kind: m.kind.to_string(),
        created: m.created,
        subject_name: m.subject.name.clone(),
        subject: m.subject.digest.to_string(),
        image_format: m.image_format.map(|f| f.to_string()),
        signer: m.signer.to_string(),
        signature,
        payload_length: m.payload.length,
        payload_blake3: hex::encode(m.payload.blake3),
        payload_matches: matches,
        files: m.files.iter().map(file_report).collect(),
    }
}

fn file_report(file: &FileEntry) -> FileReport {
    FileReport {
        path: file.path.clone(),
        size: file.size,
        kind: file.kind.to_string(),
        blake3: hex::encode(file.blake3),
        link_target: file.link_target.clone(),
    }
}

fn image_report(path: &Path, image: &Image) -> ImageReport {
    ImageReport {
        r#type: "image",
        path: path.to_owned(),
        format: image.format.to_string(),
        subject: image.subject.to_string(),
        name: image.name.clone(),
        refs: image.refs.clone(),
        blobs: image.blobs.clone(),
    }
}

fn print_bundle(r: &BundleReport) {
    outln!("bundle     {}", r.bundle_id);
    outln!("kind       {}", r.kind);
    outln!("created    {}", r.created);
    outln!(
        "subject    {}{}",
        r.subject,
        name_suffix(r.subject_name.as_deref())
    );
    if let Some(format) = &r.image_format {
        outln!("format     {format}");
    }
    outln!("signer     {}", r.signer);
    outln!("signature  {}", r.signature);
    let state = if r.payload_matches {
        "matches the file"
    } else {
        "DOES NOT MATCH the file"
    };
    outln!(
        "payload    {} bytes, blake3 {} ({state})",
        r.payload_length,
        r.payload_blake3
    );
    outln!("files      {}", r.files.len());
    for f in &r.files {
        let link = f
            .link_target
            .as_deref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        outln!(
            "  {:>12}  {:<16} {}  {}{link}",
            f.size,
            f.kind,
            &f.blake3[..16],
            f.path
        );
    }
}

fn print_image(r: &ImageReport) {
    outln!("format     {}", r.format);
    outln!("subject    {}{}", r.subject, name_suffix(r.name.as_deref()));
    if !r.refs.is_empty() {
        outln!("refs       {}", r.refs.join(", "));
    }
    outln!("blobs      {}", r.blobs.len());
    for blob in &r.blobs {
        let media = blob.media_type.as_deref().unwrap_or("-");
        outln!("  {:>12}  {}  {media}", blob.size, blob.digest);
    }
}

fn name_suffix(name: Option<&str>) -> String {
    name.map(|n| format!(" ({n})")).unwrap_or_default()
}
