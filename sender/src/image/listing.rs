//! One pass over an image input that records every member's size and hashes.
//!
//! The same [`Listing`] serves a tar (docker-archive, oci-archive) and an OCI
//! layout directory: names are normalised, `/`-separated and checked to stay
//! inside the input; symlinks inside an archive can be followed without ever
//! pointing outside it. Later steps read small documents (index.json,
//! manifests, configs) back by name. This module does not interpret them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sluice_protocol::digest::{Algorithm, Digest, DigestHasher};
use sluice_protocol::manifest::{MAX_FILES, MAX_PATH_LEN, is_safe_relative_path};

use super::ImageError;

/// Most symlinks followed while resolving one name.
const MAX_LINK_HOPS: usize = 16;

/// Where the listed members live.
#[derive(Clone, Debug)]
pub(crate) enum Root {
    Tar(PathBuf),
    Dir(PathBuf),
}

/// One regular file or symlink of the input.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub size: u64,
    pub sha256: Option<Digest>,
    pub blake3: [u8; 32],
    pub link: Option<String>,
    /// Byte offset of the data inside the tar (tar inputs only).
    pub offset: u64,
}

/// Every member of an image input, by normalised name.
#[derive(Debug)]
pub(crate) struct Listing {
    pub root: Root,
    pub members: BTreeMap<String, Member>,
    pub dirs: BTreeSet<String>,
    /// blake3 of the whole input file (tar inputs only).
    pub whole_blake3: Option<[u8; 32]>,
    /// Bytes of input that packing will read.
    pub input_len: u64,
}

impl Listing {
    /// Lists a tar file, hashing each member and the file as a whole.
    pub fn of_tar(path: &Path) -> Result<Self, ImageError> {
        let file = File::open(path).map_err(|source| read_err(path, source))?;
        let mut reader = HashingReader::new(BufReader::with_capacity(1 << 20, file));
        let (members, dirs) = scan_tar(path, &mut reader)?;
        io::copy(&mut reader, &mut io::sink()).map_err(|source| read_err(path, source))?;
        let (whole_blake3, input_len) = reader.finish();
        let root = Root::Tar(path.to_owned());
        Ok(Self {
            root,
            members,
            dirs,
            whole_blake3: Some(whole_blake3),
            input_len,
        })
    }

    /// Lists an OCI layout directory: `oci-layout`, `index.json`, `blobs/**`.
    pub fn of_layout(dir: &Path) -> Result<Self, ImageError> {
        let mut listing = Self {
            root: Root::Dir(dir.to_owned()),
            members: BTreeMap::new(),
            dirs: BTreeSet::new(),
            whole_blake3: None,
            input_len: 0,
        };
        for name in ["oci-layout", "index.json"] {
            listing.add_dir_file(dir, name)?;
        }
        listing.add_dir_tree(dir, "blobs")?;
        Ok(listing)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Follows symlinks from `name` to a regular member.
    pub fn resolve<'a>(&'a self, name: &str) -> Result<(String, &'a Member), ImageError> {
        let mut current = normalize_name(name).unwrap_or_default();
        for _ in 0..MAX_LINK_HOPS {
            let member = self
                .members
                .get(&current)
                .ok_or_else(|| ImageError::Missing {
                    member: current.clone(),
                })?;
            let Some(target) = &member.link else {
                return Ok((current, member));
            };
            current = join_link(&current, target)?;
        }
        Err(ImageError::LinkLoop {
            member: name.to_owned(),
        })
    }

    /// Reads a whole member (after following links), refusing more than `max`.
    pub fn read(&self, name: &str, max: u64) -> Result<Vec<u8>, ImageError> {
        let (resolved, member) = self.resolve(name)?;
        if member.size > max {
            return Err(ImageError::DocumentTooLarge {
                member: resolved,
                size: member.size,
                max,
            });
        }
        let mut reader = self.open(&resolved, member)?;
        let mut bytes = Vec::with_capacity(member.size as usize);
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| self.member_err(&resolved, source))?;
        if bytes.len() as u64 != member.size {
            return Err(ImageError::InputChanged { member: resolved });
        }
        Ok(bytes)
    }

    /// Streams a member's bytes through a hasher of `algorithm`.
    pub fn digest(&self, name: &str, algorithm: Algorithm) -> Result<Digest, ImageError> {
        let (resolved, member) = self.resolve(name)?;
        if let (Algorithm::Sha256, Some(sha256)) = (algorithm, &member.sha256) {
            return Ok(sha256.clone());
        }
        let mut reader = self.open(&resolved, member)?;
        let mut hashes = Hashes::new(algorithm);
        copy_into(&mut reader, &mut hashes).map_err(|source| self.member_err(&resolved, source))?;
        Ok(hashes.digest.finish())
    }

    /// Opens a member for reading: a seek into the tar, or a file in the dir.
    pub fn open(&self, name: &str, member: &Member) -> Result<Box<dyn Read>, ImageError> {
        match &self.root {
            Root::Tar(path) => {
                let mut file = File::open(path).map_err(|source| read_err(path, source))?;
                file.seek(SeekFrom::Start(member.offset))
                    .map_err(|source| read_err(path, source))?;
                Ok(Box::new(file.take(member.size)))
            }
            Root::Dir(dir) => {
                let path = dir.join(name);
                let file = File::open(&path).map_err(|source| read_err(&path, source))?;
                Ok(Box::new(file.take(member.size.saturating_add(1))))
            }
        }
    }

    fn member_err(&self, name: &str, source: io::Error) -> ImageError {
        let path = match &self.root {
            Root::Tar(path) => path.clone(),
            Root::Dir(dir) => dir.join(name),
        };
        read_err(&path, source)
    }

    fn add_dir_tree(&mut self, root: &Path, name: &str) -> Result<(), ImageError> {
        let path = root.join(name);
        let meta = fs::symlink_metadata(&path).map_err(|source| read_err(&path, source))?;
        if !meta.is_dir() {
            return Err(unsupported(name, &meta));
        }
        self.dirs.insert(name.to_owned());
        let mut children = Vec::new();
        for entry in fs::read_dir(&path).map_err(|source| read_err(&path, source))? {
            let entry = entry.map_err(|source| read_err(&path, source))?;
            let child = entry
                .file_name()
                .into_string()
                .map_err(|_| unsafe_name(&path))?;
            children.push(format!("{name}/{child}"));
        }
        children.sort();
        for child in children {
            self.add_dir_entry(root, &child)?;
        }
        Ok(())
    }

    fn add_dir_entry(&mut self, root: &Path, name: &str) -> Result<(), ImageError> {
        let path = root.join(name);
        let meta = fs::symlink_metadata(&path).map_err(|source| read_err(&path, source))?;
        if meta.is_dir() {
            return self.add_dir_tree(root, name);
        }
        self.add_dir_file(root, name)
    }

    fn add_dir_file(&mut self, root: &Path, name: &str) -> Result<(), ImageError> {
        check_name(name)?;
        let path = root.join(name);
        let meta = fs::symlink_metadata(&path).map_err(|source| read_err(&path, source))?;
        if !meta.is_file() {
            return Err(unsupported(name, &meta));
        }
        let file = File::open(&path).map_err(|source| read_err(&path, source))?;
        let mut hashes = Hashes::new(Algorithm::Sha256);
        let size = copy_into(&mut BufReader::new(file), &mut hashes)
            .map_err(|source| read_err(&path, source))?;
        self.input_len += size;
        self.insert(name.to_owned(), hashes.member(size, 0))
    }

    fn insert(&mut self, name: String, member: Member) -> Result<(), ImageError> {
        if self.members.len() >= MAX_FILES {
            return Err(ImageError::TooManyFiles { max: MAX_FILES });
        }
        self.members.insert(name, member);
        Ok(())
    }
}

/// Normalises a member name: drops a leading `./` and a trailing `/`.
pub(crate) fn normalize_name(raw: &str) -> Option<String> {
    let trimmed = raw.trim_start_matches("./").trim_end_matches('/');
    is_safe_relative_path(trimmed).then(|| trimmed.to_owned())
}

/// blake3 and one OCI digest over the same bytes.
pub(crate) struct Hashes {
    pub blake3: blake3::Hasher,
    pub digest: DigestHasher,
}

impl Hashes {
    pub fn new(algorithm: Algorithm) -> Self {
        Self {
            blake3: blake3::Hasher::new(),
            digest: DigestHasher::new(algorithm),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        self.digest.update(bytes);
    }

    fn member(self, size: u64, offset: u64) -> Member {
        let blake3 = *self.blake3.finalize().as_bytes();
        Member {
            size,
            sha256: Some(self.digest.finish()),
            blake3,
            link: None,
            offset,
        }
    }
}

/// Copies everything from `reader` into `hashes`, returning the byte count.
pub(crate) fn copy_into(reader: &mut dyn Read, hashes: &mut Hashes) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hashes.update(&buf[..n]);
        total += n as u64;
    }
}

/// A reader that hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    fn finish(self) -> ([u8; 32], u64) {
        (*self.hasher.finalize().as_bytes(), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

type Scanned = (BTreeMap<String, Member>, BTreeSet<String>);

fn scan_tar<R: Read>(path: &Path, reader: &mut R) -> Result<Scanned, ImageError> {
    let not_tar = |e: io::Error| ImageError::NotATar {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut members = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let Some(name) = entry_name(&entry)? else {
            continue;
        };
        if let Some(member) = scan_entry(path, &name, &mut entry)? {
            if members.len() >= MAX_FILES {
                return Err(ImageError::TooManyFiles { max: MAX_FILES });
            }
            if members.insert(name.clone(), member).is_some() || dirs.contains(&name) {
                return Err(ImageError::DuplicateEntry { member: name });
            }
        } else if members.contains_key(&name) {
            return Err(ImageError::DuplicateEntry { member: name });
        } else {
            dirs.insert(name);
        }
    }
    Ok((members, dirs))
}

/// The entry's checked name, or `None` for the archive's root directory.
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Option<String>, ImageError> {
    let raw = entry.path_bytes();
    let text = String::from_utf8_lossy(&raw);
    let trimmed = text.trim_start_matches("./").trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Ok(None);
    }
    check_name(trimmed)?;
    Ok(Some(trimmed.to_owned()))
}

/// A member for files and symlinks, `None` for directories.
fn scan_entry<R: Read>(
    path: &Path,
    name: &str,
    entry: &mut tar::Entry<'_, R>,
) -> Result<Option<Member>, ImageError> {
    use tar::EntryType as T;
    match entry.header().entry_type() {
        T::Regular | T::Continuous => {
            let offset = entry.raw_file_position();
            let mut hashes = Hashes::new(Algorithm::Sha256);
            let size = copy_into(entry, &mut hashes).map_err(|source| read_err(path, source))?;
            Ok(Some(hashes.member(size, offset)))
        }
        T::Symlink => Ok(Some(symlink_member(name, entry)?)),
        T::Directory => Ok(None),
        T::Link => Err(unsupported_kind(name, "hard link")),
        T::Char | T::Block => Err(unsupported_kind(name, "device node")),
        T::Fifo => Err(unsupported_kind(name, "FIFO")),
        T::GNUSparse => Err(unsupported_kind(name, "sparse file")),
        _ => Err(unsupported_kind(name, "special tar entry")),
    }
}

fn symlink_member<R: Read>(name: &str, entry: &tar::Entry<'_, R>) -> Result<Member, ImageError> {
    let target = entry.link_name_bytes().unwrap_or_default();
    let target = String::from_utf8(target.into_owned()).map_err(|_| unsafe_member(name))?;
    // Validate now so that a link leaving the archive is refused even if
    // nothing ever follows it: the receiver would see it too.
    join_link(name, &target)?;
    let blake3 = [0u8; 32];
    Ok(Member {
        size: 0,
        sha256: None,
        blake3,
        link: Some(target),
        offset: 0,
    })
}

/// Resolves a symlink target relative to the link's directory, refusing
/// absolute targets and any that climb above the archive root.
fn join_link(link: &str, target: &str) -> Result<String, ImageError> {
    let escapes = || ImageError::LinkEscapes {
        member: link.to_owned(),
        target: target.to_owned(),
    };
    if target.starts_with('/') || target.is_empty() {
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
    Ok(parts.join("/"))
}

fn check_name(name: &str) -> Result<(), ImageError> {
    if name.len() > MAX_PATH_LEN || !is_safe_relative_path(name) {
        return Err(unsafe_member(name));
    }
    Ok(())
}

fn unsafe_member(name: &str) -> ImageError {
    ImageError::UnsafePath {
        member: name.chars().take(200).collect(),
    }
}

fn unsafe_name(path: &Path) -> ImageError {
    ImageError::UnsafePath {
        member: path.display().to_string(),
    }
}

fn unsupported(name: &str, meta: &fs::Metadata) -> ImageError {
    let kind = if meta.is_symlink() {
        "symbolic link"
    } else if meta.is_dir() {
        "directory"
    } else {
        "special file"
    };
    unsupported_kind(name, kind)
}

fn unsupported_kind(name: &str, kind: &'static str) -> ImageError {
    ImageError::UnsupportedEntry {
        member: name.to_owned(),
        kind,
    }
}

pub(crate) fn read_err(path: &Path, source: io::Error) -> ImageError {
    ImageError::Read {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_to_their_directory() {
        assert_eq!(
            join_link("a/b/layer.tar", "../c/layer.tar").unwrap(),
            "a/c/layer.tar"
        );
        assert_eq!(join_link("x", "./y").unwrap(), "y");
    }

    #[test]
    fn links_that_leave_the_archive_are_refused() {
        for target in ["/etc/passwd", "../x", "a/../../x", ""] {
            let err = join_link("top", target).unwrap_err();
            assert!(matches!(err, ImageError::LinkEscapes { .. }), "{target}");
        }
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(
            normalize_name("./blobs/sha256/").as_deref(),
            Some("blobs/sha256")
        );
        assert_eq!(normalize_name("../x"), None);
    }
}
