//! The single pass over the payload: zstd ─▶ tar ─▶ one record per member.
//!
//! ```text
//!  bundle file ─▶ zstd ─▶ cap (Σ signed sizes + slack) ─▶ tarscan
//!                                                          │ each member
//!         path safe? type allowed? in the signed list? size equal?
//!                                                          │ data
//!           blake3 + sha256 (sha512) + JSON kept if small + layer scan
//! ```
//!
//! Every byte is read once. What comes out is [`Contents`]: per file its
//! size, OCI digest, the JSON text if it is a small document, and the
//! layer-scan outcome; the symlinks; the directories. Blob files
//! (`blobs/<alg>/<hex>`) have their name parsed as a digest before anything
//! else, and their content checked against it as soon as the last byte is in.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};

use sluice_protocol::digest::{Algorithm, Digest, DigestHasher};
use sluice_protocol::manifest::is_safe_relative_path;
use sluice_protocol::manifest::{FileEntry, ImageFormat, MAX_PATH_LEN, Manifest};
use tar::EntryType;

use super::Limits;
use super::error::{ValidateError, echo};
use super::layer::{self, Capped, FindingBudget, LayerScan};
use super::tarscan::{self, Member, TarRules};

/// Tar bytes allowed per member beyond its data: header, padding, and long
/// name or PAX headers.
const SLACK_PER_MEMBER: u64 = 16 << 10;
/// Members allowed beyond the signed files (directories), and fixed slack
/// for the end-of-archive blocks and record padding.
const EXTRA_MEMBERS: u64 = 1024;
const SLACK_FIXED: u64 = 64 << 10;
/// Most symlinks followed to resolve one name.
const MAX_LINK_HOPS: usize = 16;

/// Everything the pass learned about the payload's members.
#[derive(Debug, Default)]
pub(super) struct Contents {
    pub files: BTreeMap<String, FileRecord>,
    /// Symlink path → resolved target path (already shown to stay inside).
    pub links: BTreeMap<String, String>,
    pub dirs: BTreeSet<String>,
}

/// One regular file of the payload.
#[derive(Debug)]
pub(super) struct FileRecord {
    pub size: u64,
    /// sha256 of the content (sha512 for `blobs/sha512/*`).
    pub digest: Digest,
    /// The text, when the file is a JSON document within the size limit.
    pub doc: Option<Vec<u8>>,
    pub scan: LayerScan,
}

/// Reads the whole payload once and checks it against the signed list.
pub(super) fn read(
    payload: impl Read,
    manifest: &Manifest,
    format: ImageFormat,
    limits: &Limits,
) -> Result<Contents, ValidateError> {
    let (source_error, decode_error) = (RefCell::new(None), RefCell::new(None));
    let tripped = Cell::new(false);
    let cap = payload_cap(&manifest.files);
    let source = Watched {
        inner: payload,
        error: &source_error,
    };
    let decoder = zstd::Decoder::new(source).map_err(|e| ValidateError::Io {
        reason: e.to_string(),
    })?;
    let decoder = Watched {
        inner: decoder,
        error: &decode_error,
    };
    let capped = Capped::new(decoder, cap, &tripped);
    let mut pass = Pass::new(manifest, format, limits);
    let rules = TarRules {
        max_members: manifest.files.len() as u64 + EXTRA_MEMBERS,
        allow_global_headers: false,
    };
    let walked = tarscan::walk(capped, rules, |member, data| pass.visit(member, data));
    if let Err(error) = walked {
        return Err(blame(error, [&source_error, &decode_error], &tripped, cap));
    }
    pass.finish()
}

/// The decompressed bytes a payload may need: its files plus tar overhead.
fn payload_cap(files: &[FileEntry]) -> u64 {
    let data = files.iter().fold(0u64, |sum, f| sum.saturating_add(f.size));
    let members = files.len() as u64 + EXTRA_MEMBERS;
    data.saturating_add(members.saturating_mul(SLACK_PER_MEMBER))
        .saturating_add(SLACK_FIXED)
}

/// An error from deep in the stream may really be our own read failing,
/// the zstd stream being corrupt, or the cap tripping; say which.
fn blame(
    error: ValidateError,
    [source_error, decode_error]: [&RefCell<Option<String>>; 2],
    tripped: &Cell<bool>,
    cap: u64,
) -> ValidateError {
    if let Some(reason) = source_error.borrow_mut().take() {
        return ValidateError::Io { reason };
    }
    if tripped.get() {
        return ValidateError::PayloadLimit { limit: cap };
    }
    if let Some(reason) = decode_error.borrow_mut().take() {
        return ValidateError::PayloadCorrupt { reason };
    }
    error
}

/// State of the pass.
struct Pass<'m> {
    expected: HashMap<&'m str, &'m FileEntry>,
    format: ImageFormat,
    limits: &'m Limits,
    seen: BTreeSet<String>,
    contents: Contents,
    budget: FindingBudget,
    docs_total: u64,
}

impl<'m> Pass<'m> {
    fn new(manifest: &'m Manifest, format: ImageFormat, limits: &'m Limits) -> Self {
        let expected = manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), f))
            .collect();
        Self {
            expected,
            format,
            limits,
            seen: BTreeSet::new(),
            contents: Contents::default(),
            budget: FindingBudget {
                remaining: limits.max_findings,
            },
            docs_total: 0,
        }
    }

    fn visit(&mut self, member: &Member, data: &mut dyn Read) -> Result<(), ValidateError> {
        let Some(path) = member_path(&member.path)? else {
            return self.root(member);
        };
        if !self.seen.insert(path.clone()) {
            return Err(ValidateError::DuplicateEntry { path });
        }
        match member.kind {
            EntryType::Directory => self.directory(path, member),
            EntryType::Symlink => self.symlink(path, member),
            EntryType::Regular | EntryType::Continuous => self.file(path, member, data),
            other => Err(ValidateError::UnsupportedEntry {
                path,
                kind: describe(other),
                format: self.format,
            }),
        }
    }

    /// A `.` or `./` member: allowed as a directory, nothing else.
    fn root(&mut self, member: &Member) -> Result<(), ValidateError> {
        if member.kind != EntryType::Directory || member.size != 0 {
            let path = ".".to_owned();
            return Err(ValidateError::UnsafePath { path });
        }
        Ok(())
    }

    fn directory(&mut self, path: String, member: &Member) -> Result<(), ValidateError> {
        if member.size != 0 {
            return Err(tarscan::fault("a directory member carries data").into());
        }
        if self.expected.contains_key(path.as_str()) {
            return Err(ValidateError::KindMismatch { path });
        }
        self.contents.dirs.insert(path);
        Ok(())
    }

    fn symlink(&mut self, path: String, member: &Member) -> Result<(), ValidateError> {
        if self.format != ImageFormat::DockerArchive {
            let (kind, format) = ("symbolic link", self.format);
            return Err(ValidateError::UnsupportedEntry { path, kind, format });
        }
        let raw = member.link.as_deref().unwrap_or_default();
        let target = String::from_utf8(raw.to_vec())
            .map_err(|_| ValidateError::UnsafePath { path: path.clone() })?;
        let resolved = join_link(&path, &target)?;
        let entry = self.listed(&path)?;
        let matches = entry.link_target.as_deref() == Some(target.as_str())
            && entry.size == 0
            && entry.blake3 == [0; 32]
            && member.size == 0;
        if !matches {
            return Err(ValidateError::KindMismatch { path });
        }
        self.contents.links.insert(path, resolved);
        Ok(())
    }

    fn file(
        &mut self,
        path: String,
        member: &Member,
        data: &mut dyn Read,
    ) -> Result<(), ValidateError> {
        let entry = self.listed(&path)?;
        if entry.link_target.is_some() {
            return Err(ValidateError::KindMismatch { path });
        }
        if entry.size != member.size {
            let (expected, actual) = (entry.size, member.size);
            return Err(ValidateError::FileSizeMismatch {
                path,
                expected,
                actual,
            });
        }
        let named = blob_name(&path, self.format)?;
        let algorithm = named.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
        let keep = member.size <= self.limits.max_document;
        let mut tee = Tee::new(data, algorithm, keep);
        let scan = layer::scan(&mut tee, member.size, self.limits, &mut self.budget);
        io::copy(&mut tee, &mut io::sink()).map_err(tarscan::io_fault)?;
        if tee.failed.is_some() || tee.count != member.size {
            let reason = tee.failed.unwrap_or_else(|| "a member is cut short".into());
            return Err(ValidateError::TarMalformed { reason });
        }
        let (digest, blake3, doc) = tee.finish();
        if blake3 != entry.blake3 {
            return Err(ValidateError::FileHashMismatch { path });
        }
        if let Some(named) = named.filter(|n| *n != digest) {
            return Err(ValidateError::BlobDigestMismatch {
                digest: named,
                actual: digest,
            });
        }
        let doc = self.keep_doc(doc)?;
        let record = FileRecord {
            size: member.size,
            digest,
            doc,
            scan,
        };
        self.contents.files.insert(path, record);
        Ok(())
    }

    fn listed(&self, path: &str) -> Result<&'m FileEntry, ValidateError> {
        let path = path.to_owned();
        self.expected
            .get(path.as_str())
            .copied()
            .ok_or(ValidateError::NotInManifest { path })
    }

    /// Keeps a small document if it looks like JSON, within the total budget.
    fn keep_doc(&mut self, doc: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, ValidateError> {
        let Some(doc) = doc.filter(|d| looks_like_json(d)) else {
            return Ok(None);
        };
        self.docs_total += doc.len() as u64;
        if self.docs_total > self.limits.max_documents_total {
            let limit = self.limits.max_documents_total;
            return Err(ValidateError::DocumentBudget { limit });
        }
        Ok(Some(doc))
    }

    fn finish(self) -> Result<Contents, ValidateError> {
        let mut missing: Vec<&str> = self
            .expected
            .keys()
            .copied()
            .filter(|p| !self.seen.contains(*p))
            .collect();
        missing.sort_unstable();
        if let Some(path) = missing.first() {
            let path = (*path).to_owned();
            return Err(ValidateError::MissingFromPayload { path });
        }
        for link in self.contents.links.keys() {
            self.contents.resolve(link)?;
        }
        Ok(self.contents)
    }
}

impl Contents {
    /// Follows symlinks from `path` to a regular file.
    pub fn resolve(&self, path: &str) -> Result<(&str, &FileRecord), ValidateError> {
        let mut current = path;
        for _ in 0..MAX_LINK_HOPS {
            if let Some((name, record)) = self.files.get_key_value(current) {
                return Ok((name.as_str(), record));
            }
            match self.links.get(current) {
                Some(next) => current = next,
                None if current == path => break,
                None => return Err(dangling(path)),
            }
        }
        if self.links.contains_key(path) {
            return Err(dangling(path));
        }
        Err(ValidateError::MissingFile {
            path: echo(path),
            referenced_by: String::new(),
        })
    }

    /// The blob file for `digest`, if present.
    pub fn blob(&self, digest: &Digest) -> Option<&FileRecord> {
        self.files.get(&digest.blob_path())
    }

    /// Parses the JSON document at `path` (after following links).
    pub fn document<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        limits: &Limits,
    ) -> Result<T, ValidateError> {
        let (name, record) = self.resolve(path)?;
        parse_record(name, record, limits)
    }
}

/// Parses a file kept as a document; a file too large to keep, or that did
/// not look like JSON, is refused with the reason.
pub(super) fn parse_record<T: serde::de::DeserializeOwned>(
    name: &str,
    record: &FileRecord,
    limits: &Limits,
) -> Result<T, ValidateError> {
    let Some(bytes) = record.doc.as_deref() else {
        if record.size > limits.max_document {
            return Err(ValidateError::DocumentTooLarge {
                path: echo(name),
                size: record.size,
                limit: limits.max_document,
            });
        }
        let reason = "it does not start like a JSON document".to_owned();
        return Err(ValidateError::BadJson {
            path: echo(name),
            reason,
        });
    };
    serde_json::from_slice(bytes).map_err(|e| ValidateError::BadJson {
        path: echo(name),
        reason: e.to_string(),
    })
}

fn dangling(path: &str) -> ValidateError {
    ValidateError::DanglingSymlink { path: echo(path) }
}

/// The member's name, normalised as the sender normalises it (leading `./`
/// and trailing `/` dropped); `None` for the archive root.
fn member_path(raw: &[u8]) -> Result<Option<String>, ValidateError> {
    let unsafe_path = || ValidateError::UnsafePath {
        path: echo(&String::from_utf8_lossy(raw)),
    };
    let text = std::str::from_utf8(raw).map_err(|_| unsafe_path())?;
    let trimmed = text.trim_start_matches("./").trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return if text.starts_with('/') {
            Err(unsafe_path())
        } else {
            Ok(None)
        };
    }
    if trimmed.len() > MAX_PATH_LEN || !is_safe_relative_path(trimmed) {
        return Err(unsafe_path());
    }
    Ok(Some(trimmed.to_owned()))
}

/// For `blobs/<alg>/<hex>`, the digest the name claims, validated before
/// the content is read. Other paths under `blobs/`, and in an OCI layout
/// anything besides `oci-layout` and `index.json`, are refused.
fn blob_name(path: &str, format: ImageFormat) -> Result<Option<Digest>, ValidateError> {
    let unexpected = || ValidateError::UnexpectedFile {
        path: echo(path),
        format,
    };
    let Some(rest) = path.strip_prefix("blobs/") else {
        let top_level = matches!(path, "oci-layout" | "index.json");
        if format == ImageFormat::DockerArchive || top_level {
            return Ok(None);
        }
        return Err(unexpected());
    };
    let (algorithm, hex) = rest.split_once('/').ok_or_else(unexpected)?;
    let text = format!("{algorithm}:{hex}");
    match Digest::parse(&text) {
        Ok(digest) => Ok(Some(digest)),
        Err(e) => Err(ValidateError::BadDigestString {
            text: echo(&text),
            reason: e.to_string(),
        }),
    }
}

/// Resolves a symlink target relative to the link's directory, refusing
/// absolute targets and any that climb above the archive root.
fn join_link(link: &str, target: &str) -> Result<String, ValidateError> {
    let escapes = || ValidateError::SymlinkEscape {
        path: echo(link),
        target: echo(target),
    };
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(escapes());
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(escapes)?;
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(escapes());
    }
    Ok(parts.join("/"))
}

fn looks_like_json(bytes: &[u8]) -> bool {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    matches!(first, Some(b'{' | b'[' | b'n'))
}

fn describe(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Link => "hard link",
        EntryType::Char | EntryType::Block => "device node",
        EntryType::Fifo => "FIFO",
        EntryType::GNUSparse => "sparse file",
        EntryType::XGlobalHeader => "PAX global header",
        _ => "special tar member",
    }
}

/// Hashes a member's bytes (blake3 for the signed list, an OCI digest for
/// blobs) and keeps a copy if it may be a document.
struct Tee<'d> {
    inner: &'d mut dyn Read,
    blake3: blake3::Hasher,
    digest: DigestHasher,
    doc: Option<Vec<u8>>,
    count: u64,
    failed: Option<String>,
}

impl<'d> Tee<'d> {
    fn new(inner: &'d mut dyn Read, algorithm: Algorithm, keep: bool) -> Self {
        Self {
            inner,
            blake3: blake3::Hasher::new(),
            digest: DigestHasher::new(algorithm),
            doc: keep.then(Vec::new),
            count: 0,
            failed: None,
        }
    }

    fn finish(self) -> (Digest, [u8; 32], Option<Vec<u8>>) {
        (
            self.digest.finish(),
            *self.blake3.finalize().as_bytes(),
            self.doc,
        )
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(e.to_string());
        })?;
        let bytes = &buf[..n];
        self.blake3.update(bytes);
        self.digest.update(bytes);
        if let Some(doc) = &mut self.doc {
            doc.extend_from_slice(bytes);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Records the first failure of the reader it wraps, so that a failure
/// surfacing later as a tar error can be blamed on the right layer.
struct Watched<'e, R> {
    inner: R,
    error: &'e RefCell<Option<String>>,
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut slot = self.error.borrow_mut();
            if e.kind() != io::ErrorKind::Interrupted && slot.is_none() {
                *slot = Some(e.to_string());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_normalised_like_the_sender() {
        let path = |raw: &str| member_path(raw.as_bytes());
        assert_eq!(
            path("./blobs/sha256/").unwrap().as_deref(),
            Some("blobs/sha256")
        );
        assert_eq!(path("./").unwrap(), None);
        for bad in ["/etc/passwd", "../x", "a/../b", "a/./b", "/"] {
            assert!(
                matches!(path(bad), Err(ValidateError::UnsafePath { .. })),
                "{bad}"
            );
        }
        let not_utf8 = member_path(b"a\xff");
        assert!(matches!(not_utf8, Err(ValidateError::UnsafePath { .. })));
    }

    #[test]
    fn blob_names_are_parsed_as_digests_first() {
        let hex = "ab".repeat(32);
        let digest = blob_name(&format!("blobs/sha256/{hex}"), ImageFormat::OciLayout);
        assert_eq!(digest.unwrap().unwrap().hex(), hex);
        for bad in [
            format!("blobs/sha256/{}", hex.to_uppercase()),
            format!("blobs/sha256/{}", &hex[1..]),
            "blobs/md5/d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        ] {
            let err = blob_name(&bad, ImageFormat::OciLayout).unwrap_err();
            assert_eq!(err.code(), "bad-digest-string", "{bad}");
        }
        let err = blob_name("extra.txt", ImageFormat::OciArchive).unwrap_err();
        assert_eq!(err.code(), "unexpected-file");
        assert!(
            blob_name("extra.txt", ImageFormat::DockerArchive)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert_eq!(
            join_link("a/layer.tar", "../b/layer.tar").unwrap(),
            "b/layer.tar"
        );
        for target in ["/etc/passwd", "../x", "a/../../x", "", "."] {
            let err = join_link("top", target).unwrap_err();
            assert_eq!(err.code(), "symlink-escape", "{target}");
        }
    }

    #[test]
    fn the_cap_grows_with_the_signed_sizes() {
        let entry = |size| FileEntry {
            path: "x".into(),
            size,
            blake3: [0; 32],
            kind: sluice_protocol::manifest::FileKind::ImageFile,
            link_target: None,
        };
        let base = payload_cap(&[]);
        assert_eq!(base, EXTRA_MEMBERS * SLACK_PER_MEMBER + SLACK_FIXED);
        assert_eq!(payload_cap(&[entry(1000)]), base + 1000 + SLACK_PER_MEMBER);
        assert_eq!(payload_cap(&[entry(u64::MAX)]), u64::MAX);
    }
}
