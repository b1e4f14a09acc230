//! Image inputs: detecting the format, finding the subject digest, checking
//! every blob, and writing the payload tar.
//!
//! ```text
//!  input ─▶ detect ─▶ Listing (one pass: names, sizes, sha256, blake3)
//!                        │
//!        docker-archive ─┼─ manifest.json ─▶ config + layers   (docker)
//!   oci-layout / -archive┴─ index.json ─▶ indexes ─▶ manifests ─▶ blobs (oci)
//!                        │
//!                        ▼
//!              payload tar: the input tar verbatim, or for a layout
//!              directory a deterministic tar of oci-layout, index.json,
//!              blobs/** (sorted, mtime 0, uid/gid 0, 0644/0755)
//! ```
//!
//! This module reads the operator's input; it does not compress, sign or
//! write bundles (see `pack`).

mod docker;
mod listing;
mod oci;

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sluice_protocol::digest::Digest;
use sluice_protocol::manifest::{FileEntry, FileKind, ImageFormat};

use listing::{Listing, Root};

/// Operator choices when opening an image.
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    /// Which image to take when the input holds several: an OCI ref name, a
    /// docker RepoTag, or a manifest/config digest.
    pub reference: Option<String>,
}

/// One blob that was checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub media_type: Option<String>,
    /// Where it sits in the input.
    pub path: String,
}

/// An image input that passed every check, ready to be packed.
#[derive(Debug)]
pub struct Image {
    pub format: ImageFormat,
    pub subject: Digest,
    /// The chosen ref or tag, if any.
    pub name: Option<String>,
    /// Every ref or tag the input offers.
    pub refs: Vec<String>,
    pub blobs: Vec<BlobInfo>,
    listing: Listing,
}

/// Why an image input was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not an image: {reason}")]
    NotAnImage { path: PathBuf, reason: &'static str },
    #[error("{path} is not a readable tar archive: {reason}")]
    NotATar { path: PathBuf, reason: String },
    #[error("member `{member}` has an unsafe path (absolute, `..` or not UTF-8)")]
    UnsafePath { member: String },
    #[error("member `{member}` is a {kind}, which images may not contain")]
    UnsupportedEntry { member: String, kind: &'static str },
    #[error("member `{member}` appears twice in the archive")]
    DuplicateEntry { member: String },
    #[error("input has more than {max} files")]
    TooManyFiles { max: usize },
    #[error("symlink `{member}` -> `{target}` points outside the archive")]
    LinkEscapes { member: String, target: String },
    #[error("symlink `{member}` does not end at a file (loop or too many hops)")]
    LinkLoop { member: String },
    #[error("`{member}` is missing from the input")]
    Missing { member: String },
    #[error("blob {digest} is missing from the input")]
    MissingBlob { digest: Digest },
    #[error("blob {digest} is {actual} bytes but its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} has the wrong content: it hashes to {actual}")]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error("layer `{layer}` hashes to {actual} but the config's diff id is {expected}")]
    LayerMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("`{member}` is not the JSON expected: {reason}")]
    BadJson { member: String, reason: String },
    #[error("`{member}` is {size} bytes, more than the {max} allowed for a document")]
    DocumentTooLarge { member: String, size: u64, max: u64 },
    #[error("manifest.json is `null`: the archive lists no image")]
    ManifestJsonNull,
    #[error("the input lists no image")]
    NoImages,
    #[error("the input holds several images; choose one with --ref: {}", .available.join(", "))]
    ChooseRef { available: Vec<String> },
    #[error("no image is called `{reference}`; available: {}", .available.join(", "))]
    RefNotFound {
        reference: String,
        available: Vec<String>,
    },
    #[error("`{reference}` names {} different images; choose one by digest", .digests.len())]
    AmbiguousRef {
        reference: String,
        digests: Vec<Digest>,
    },
    #[error("index nesting below {digest} is too deep")]
    TooDeep { digest: Digest },
    #[error("`{member}` changed while it was being read; try again")]
    InputChanged { member: String },
}

impl Image {
    /// Opens and fully checks an image input.
    pub fn open(path: &Path, options: &ImageOptions) -> Result<Self, ImageError> {
        let (format, listing) = detect(path)?;
        let reference = options.reference.as_deref();
        match oci_descriptors(format, &listing)? {
            Some(descriptors) => Self::from_oci(format, listing, &descriptors, reference),
            None => Self::from_docker(listing, reference),
        }
    }

    /// Bytes of input the payload tar is made from (for progress bars).
    pub fn input_len(&self) -> u64 {
        self.listing.input_len
    }

    /// The manifest's file list: every file and symlink of the payload tar.
    pub fn files(&self) -> Vec<FileEntry> {
        let entries = self.listing.members.iter().map(|(path, member)| FileEntry {
            path: path.clone(),
            size: member.size,
            blake3: member.blake3,
            kind: FileKind::ImageFile,
            link_target: member.link.clone(),
        });
        entries.collect()
    }

    /// Writes the payload tar to `out`, calling `progress` with input bytes
    /// read. Fails if the input changed since it was checked.
    pub fn write_payload_tar<W: Write>(
        &self,
        out: W,
        progress: &mut dyn FnMut(u64),
    ) -> Result<W, ImageError> {
        match &self.listing.root {
            Root::Tar(path) => copy_verbatim(path, &self.listing, out, progress),
            Root::Dir(dir) => build_layout_tar(dir, &self.listing, out, progress),
        }
    }

    fn from_oci(
        format: ImageFormat,
        listing: Listing,
        descriptors: &[oci::Descriptor],
        reference: Option<&str>,
    ) -> Result<Self, ImageError> {
        let selection = oci::select(descriptors, reference)?;
        let blobs = oci::walk(&listing, &selection.subject)?;
        let (subject, name, refs) = (selection.subject.digest, selection.name, selection.refs);
        Ok(Self {
            format,
            subject,
            name,
            refs,
            blobs,
            listing,
        })
    }

    fn from_docker(listing: Listing, reference: Option<&str>) -> Result<Self, ImageError> {
        let chosen = docker::choose(&listing, reference)?;
        let format = ImageFormat::DockerArchive;
        let (subject, name, refs, blobs) = (chosen.subject, chosen.name, chosen.refs, chosen.blobs);
        Ok(Self {
            format,
            subject,
            name,
            refs,
            blobs,
            listing,
        })
    }
}

/// Recognises the input format and lists its members.
fn detect(path: &Path) -> Result<(ImageFormat, Listing), ImageError> {
    let meta = fs::metadata(path).map_err(|source| listing::read_err(path, source))?;
    if meta.is_dir() {
        return detect_layout(path);
    }
    refuse_compressed(path)?;
    let listing = Listing::of_tar(path)?;
    let not_image = |reason| ImageError::NotAnImage {
        path: path.to_owned(),
        reason,
    };
    if listing.contains("manifest.json") {
        Ok((ImageFormat::DockerArchive, listing))
    } else if listing.contains("index.json") && listing.contains("oci-layout") {
        Ok((ImageFormat::OciArchive, listing))
    } else {
        Err(not_image(
            "a tar with neither manifest.json nor oci-layout and index.json",
        ))
    }
}

fn detect_layout(dir: &Path) -> Result<(ImageFormat, Listing), ImageError> {
    if !dir.join("oci-layout").is_file() || !dir.join("index.json").is_file() {
        let reason = "a directory without oci-layout and index.json";
        return Err(ImageError::NotAnImage {
            path: dir.to_owned(),
            reason,
        });
    }
    Ok((ImageFormat::OciLayout, Listing::of_layout(dir)?))
}

/// Compressed tars are refused with a hint rather than a tar parse error.
// Limitation: `docker save | gzip` output must be decompressed first; the
// payload is the input tar verbatim, and a gzip stream would hide it.
fn refuse_compressed(path: &Path) -> Result<(), ImageError> {
    let mut head = [0u8; 4];
    let mut file = fs::File::open(path).map_err(|source| listing::read_err(path, source))?;
    let n = file
        .read(&mut head)
        .map_err(|source| listing::read_err(path, source))?;
    let reason = match &head[..n] {
        [0x1f, 0x8b, ..] => "gzip-compressed; decompress it first (gunzip)",
        [0x28, 0xb5, 0x2f, 0xfd] => "zstd-compressed; decompress it first (unzstd)",
        _ => return Ok(()),
    };
    Err(ImageError::NotAnImage {
        path: path.to_owned(),
        reason,
    })
}

/// The descriptors to walk, or `None` for a legacy docker-archive (including
/// a Docker 25 archive whose index.json lists no manifests).
fn oci_descriptors(
    format: ImageFormat,
    listing: &Listing,
) -> Result<Option<Vec<oci::Descriptor>>, ImageError> {
    match format {
        ImageFormat::DockerArchive if !listing.contains("index.json") => Ok(None),
        ImageFormat::DockerArchive => oci::top_descriptors(listing),
        _ => oci::top_descriptors(listing)?
            .map(Some)
            .ok_or(ImageError::NoImages),
    }
}

fn copy_verbatim<W: Write>(
    path: &Path,
    listing: &Listing,
    mut out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<W, ImageError> {
    let file = fs::File::open(path).map_err(|source| listing::read_err(path, source))?;
    let mut hasher = blake3::Hasher::new();
    let copied = copy_hashing(file, &mut out, &mut hasher, progress)
        .map_err(|source| listing::read_err(path, source))?;
    let unchanged = listing.whole_blake3 == Some(*hasher.finalize().as_bytes());
    if copied != listing.input_len || !unchanged {
        return Err(ImageError::InputChanged {
            member: path.display().to_string(),
        });
    }
    Ok(out)
}

fn build_layout_tar<W: Write>(
    dir: &Path,
    listing: &Listing,
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<W, ImageError> {
    let write_err = |source| listing::read_err(dir, source);
    let mut names: Vec<(&str, Option<&listing::Member>)> =
        listing.dirs.iter().map(|d| (d.as_str(), None)).collect();
    names.extend(listing.members.iter().map(|(n, m)| (n.as_str(), Some(m))));
    names.sort_by(|a, b| a.0.cmp(b.0));
    let mut builder = tar::Builder::new(out);
    for (name, member) in names {
        match member {
            None => append_dir(&mut builder, name).map_err(write_err)?,
            Some(member) => append_file(&mut builder, dir, name, member, progress)?,
        }
    }
    builder.into_inner().map_err(write_err)
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut header = fixed_header(tar::EntryType::Directory, 0o755, 0);
    builder.append_data(&mut header, format!("{name}/"), io::empty())
}

fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
    member: &listing::Member,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ImageError> {
    let path = dir.join(name);
    let file = fs::File::open(&path).map_err(|source| listing::read_err(&path, source))?;
    let mut reader = HashingTake::new(file.take(member.size), progress);
    let mut header = fixed_header(tar::EntryType::Regular, 0o644, member.size);
    builder
        .append_data(&mut header, name, &mut reader)
        .map_err(|source| listing::read_err(&path, source))?;
    if reader.len != member.size || *reader.hasher.finalize().as_bytes() != member.blake3 {
        return Err(ImageError::InputChanged {
            member: name.to_owned(),
        });
    }
    Ok(())
}

/// A header with everything that would make the tar non-deterministic fixed.
fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn copy_hashing<R: Read, W: Write>(
    mut reader: R,
    out: &mut W,
    hasher: &mut blake3::Hasher,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
        progress(n as u64);
    }
}

/// Reads through a hasher, counting bytes and reporting progress.
struct HashingTake<'p, R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<'p, R: Read> HashingTake<'p, R> {
    fn new(inner: R, progress: &'p mut dyn FnMut(u64)) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
            progress,
        }
    }
}

impl<R: Read> Read for HashingTake<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures")
            .join(rel);
        path.exists().then_some(path)
    }

    #[test]
    fn a_layout_tar_is_deterministic() {
        let Some(dir) = fixture("images/oci-layout/gcr-test-index-media-type") else {
            eprintln!("skipped: ../shared/fixtures not found");
            return;
        };
        let image = Image::open(&dir, &ImageOptions::default()).unwrap();
        let first = image.write_payload_tar(Vec::new(), &mut |_| {}).unwrap();
        let second = image.write_payload_tar(Vec::new(), &mut |_| {}).unwrap();
        assert_eq!(first, second);
        let mut archive = tar::Archive::new(first.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.first().map(String::as_str), Some("blobs/"));
        assert!(names.contains(&"index.json".to_owned()));
    }

    #[test]
    fn a_docker_archive_subject_is_the_config_digest() {
        let Some(path) = fixture("images/docker-archive/cimage-almostempty.tar") else {
            eprintln!("skipped: ../shared/fixtures not found");
            return;
        };
        let image = Image::open(&path, &ImageOptions::default()).unwrap();
        assert_eq!(image.format, ImageFormat::DockerArchive);
        assert_eq!(image.subject.hex()[..12], *"9d7f147c0d0c");
        assert_eq!(image.name.as_deref(), Some("emptyimage:latest"));
        let payload = image.write_payload_tar(Vec::new(), &mut |_| {}).unwrap();
        assert_eq!(payload, fs::read(&path).unwrap());
    }
}
