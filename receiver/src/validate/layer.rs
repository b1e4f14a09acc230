//! Layer scanning: decompress one blob as a stream, hash what comes out,
//! and list the tar inside, noting what a policy may want to know.
//!
//! ```text
//!  blob bytes ─▶ sniff magic ─▶ gzip | zstd | as is ─▶ cap ─▶ sha256 (diff id)
//!                                                            │
//!                                             tarscan ─▶ findings, counts
//! ```
//!
//! The payload pass cannot know which blobs are layers until it has read
//! the manifests, and it reads the payload only once, so every blob is
//! scanned as if it were one; the outcome is kept and only matters if a
//! manifest later names the blob as a layer. A blob that is not a tar
//! simply gets a [`LayerFault`]. Findings never reject an image here; the
//! policy judges them.

use std::cell::Cell;
use std::io::{self, Read};

use serde::Serialize;
use sluice_protocol::digest::{Algorithm, Digest, DigestHasher};
use tar::EntryType;

use super::Limits;
use super::report::{Finding, FindingKind};
use super::tarscan::{self, Member, TarFault, TarRules};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Longest path kept in a finding; longer ones are cut with a marker.
const MAX_FINDING_PATH: usize = 512;

/// How a blob's bytes are compressed, judged from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "uncompressed",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        })
    }
}

/// What scanning one blob as a layer found.
#[derive(Clone, Debug)]
pub(super) struct LayerScan {
    pub compression: Compression,
    pub outcome: Result<LayerStats, LayerFault>,
}

/// A blob that read as a well-formed (possibly compressed) tar.
#[derive(Clone, Debug)]
pub(super) struct LayerStats {
    /// sha256 of the uncompressed stream: the layer's diff id.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub entries: u64,
    /// Findings kept, without the layer digest (added once it is known).
    pub findings: Vec<(String, FindingKind)>,
    pub findings_total: u64,
}

/// Why a blob did not read as a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LayerFault {
    /// Decompressed past this many bytes.
    Limit(u64),
    Malformed(String),
}

/// How many findings may still be kept across the whole payload.
#[derive(Debug)]
pub(super) struct FindingBudget {
    pub remaining: usize,
}

impl LayerStats {
    /// The kept findings, tagged with the layer they came from.
    pub fn findings_for(&self, layer: &Digest) -> Vec<Finding> {
        let tag = |(path, kind): &(String, FindingKind)| Finding {
            layer: layer.clone(),
            path: path.clone(),
            kind: kind.clone(),
        };
        self.findings.iter().map(tag).collect()
    }
}

/// Scans `raw` (a blob of `size` bytes) as a layer. Reads as much of `raw`
/// as the scan needs; the caller drains the rest.
pub(super) fn scan(
    raw: &mut dyn Read,
    size: u64,
    limits: &Limits,
    budget: &mut FindingBudget,
) -> LayerScan {
    let mut head = [0u8; 4];
    let filled = match fill(raw, &mut head) {
        Ok(n) => n,
        Err(e) => return failed(Compression::None, LayerFault::Malformed(e.to_string())),
    };
    let compression = sniff(&head[..filled]);
    let stream = io::Cursor::new(head[..filled].to_vec()).chain(raw);
    let cap = limits.layer_cap(size);
    let outcome = match compression {
        Compression::None => list(stream, cap, limits, budget),
        Compression::Gzip => list(
            flate2::read::MultiGzDecoder::new(stream),
            cap,
            limits,
            budget,
        ),
        // Limitation: zstd frames needing a window above 128 MiB (the
        // library's default ceiling, e.g. `zstd --long=31`) are refused, which
        // keeps each decoder's memory bounded.
        Compression::Zstd => match zstd::Decoder::new(stream) {
            Ok(decoder) => list(decoder, cap, limits, budget),
            Err(e) => Err(LayerFault::Malformed(e.to_string())),
        },
    };
    LayerScan {
        compression,
        outcome,
    }
}

/// Which decompressor the first bytes call for.
pub(super) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn failed(compression: Compression, fault: LayerFault) -> LayerScan {
    LayerScan {
        compression,
        outcome: Err(fault),
    }
}

fn list<R: Read>(
    decoded: R,
    cap: u64,
    limits: &Limits,
    budget: &mut FindingBudget,
) -> Result<LayerStats, LayerFault> {
    let tripped = Cell::new(false);
    let capped = Capped::new(decoded, cap, &tripped);
    let mut hashed = Hashed::new(capped);
    let rules = TarRules {
        max_members: limits.max_layer_entries,
        allow_global_headers: true,
    };
    let mut notes = Notes::new(budget);
    let walked = tarscan::walk(&mut hashed, rules, |member, data| {
        notes.observe(member, data)
    });
    match walked {
        Err(_) if tripped.get() => return Err(LayerFault::Limit(cap)),
        Err(TarFault(reason)) => return Err(LayerFault::Malformed(reason)),
        Ok(_) => {}
    }
    let (diff_id, uncompressed_size) = hashed.finish();
    Ok(LayerStats {
        diff_id,
        uncompressed_size,
        entries: notes.entries,
        findings: notes.kept,
        findings_total: notes.total,
    })
}

/// Findings gathered while listing one layer.
struct Notes<'b> {
    budget: &'b mut FindingBudget,
    kept: Vec<(String, FindingKind)>,
    total: u64,
    entries: u64,
}

impl<'b> Notes<'b> {
    fn new(budget: &'b mut FindingBudget) -> Self {
        Self {
            budget,
            kept: Vec::new(),
            total: 0,
            entries: 0,
        }
    }

    fn observe(&mut self, member: &Member, _data: &mut dyn Read) -> Result<(), TarFault> {
        check_kind(member.kind)?;
        self.entries += 1;
        let path = String::from_utf8_lossy(&member.path);
        for kind in classify(&path, member) {
            self.note(&path, kind);
        }
        Ok(())
    }

    fn note(&mut self, path: &str, kind: FindingKind) {
        self.total += 1;
        if self.budget.remaining == 0 {
            return;
        }
        self.budget.remaining -= 1;
        self.kept.push((shorten(path), kind));
    }
}

/// Member types a layer may hold; the rest make the layer unreadable.
fn check_kind(kind: EntryType) -> Result<(), TarFault> {
    use EntryType as T;
    match kind {
        T::Regular | T::Continuous | T::Directory | T::Symlink | T::Link => Ok(()),
        T::Char | T::Block | T::Fifo => Ok(()),
        // Limitation: GNU sparse members are refused rather than expanded;
        // image builders do not write them.
        T::GNUSparse => Err(tarscan::fault("a GNU sparse member")),
        _ => Err(tarscan::fault("a member of an unsupported type")),
    }
}

/// Everything worth a finding about one member.
fn classify(path: &str, member: &Member) -> Vec<FindingKind> {
    let mut out = Vec::new();
    let name = path.trim_start_matches("./");
    if name.starts_with('/') {
        out.push(FindingKind::AbsolutePath);
    }
    if name.split('/').any(|part| part == "..") {
        out.push(FindingKind::ParentTraversal);
    }
    if let Some(kind) = whiteout(name) {
        out.push(kind);
    }
    out.extend(link_finding(name, member));
    out.extend(mode_findings(member));
    out
}

fn whiteout(name: &str) -> Option<FindingKind> {
    let base = name
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(name);
    match base {
        ".wh..wh..opq" => Some(FindingKind::OpaqueWhiteout),
        _ if base.starts_with(".wh.") => Some(FindingKind::Whiteout),
        _ => None,
    }
}

fn link_finding(name: &str, member: &Member) -> Option<FindingKind> {
    let target = String::from_utf8_lossy(member.link.as_deref()?).into_owned();
    match member.kind {
        EntryType::Symlink if target.starts_with('/') => Some(FindingKind::AbsoluteSymlink {
            target: shorten(&target),
        }),
        EntryType::Symlink if climbs_out(parent(name), &target) => {
            Some(FindingKind::LinkOutsideRoot {
                target: shorten(&target),
            })
        }
        // A hard link names another member from the archive root.
        EntryType::Link if target.starts_with('/') || climbs_out("", &target) => {
            Some(FindingKind::LinkOutsideRoot {
                target: shorten(&target),
            })
        }
        _ => None,
    }
}

fn mode_findings(member: &Member) -> Vec<FindingKind> {
    let mode = member.mode;
    let mut out = Vec::new();
    match member.kind {
        EntryType::Char | EntryType::Block => {
            let (major, minor) = member.device.unwrap_or_default();
            out.push(FindingKind::DeviceNode { major, minor });
        }
        EntryType::Regular | EntryType::Continuous => {
            if mode & 0o4000 != 0 {
                out.push(FindingKind::Setuid { mode });
            }
            if mode & 0o2000 != 0 {
                out.push(FindingKind::Setgid { mode });
            }
            if mode & 0o002 != 0 {
                out.push(FindingKind::WorldWritable { mode });
            }
        }
        // A sticky world-writable directory (like /tmp) is the norm.
        EntryType::Directory if mode & 0o002 != 0 && mode & 0o1000 == 0 => {
            out.push(FindingKind::WorldWritable { mode });
        }
        _ => {}
    }
    out
}

fn parent(name: &str) -> &str {
    name.trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir)
}

/// Whether `target`, followed from directory `dir`, climbs above the root.
fn climbs_out(dir: &str, target: &str) -> bool {
    let mut depth: i64 = 0;
    let parts = dir.split('/').chain(target.split('/'));
    for part in parts {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

fn shorten(text: &str) -> String {
    if text.len() <= MAX_FINDING_PATH {
        return text.to_owned();
    }
    let mut end = MAX_FINDING_PATH;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Fails a read once more than `limit` bytes came through, and says so in
/// `tripped` (the error itself may be rewrapped by readers above).
pub(super) struct Capped<'t, R> {
    inner: R,
    remaining: u64,
    tripped: &'t Cell<bool>,
}

impl<'t, R: Read> Capped<'t, R> {
    pub fn new(inner: R, limit: u64, tripped: &'t Cell<bool>) -> Self {
        Self {
            inner,
            remaining: limit,
            tripped,
        }
    }
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Allow one more byte through only to learn whether there is one.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.tripped.set(true);
            return Err(io::Error::other("decompressed size limit reached"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// sha256 of everything read through it.
struct Hashed<R> {
    inner: R,
    hasher: DigestHasher,
    count: u64,
}

impl<R> Hashed<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: DigestHasher::new(Algorithm::Sha256),
            count: 0,
        }
    }

    fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    /// A tar of `(path, data)` files, plus extra raw members, as a builder.
    pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn scan_bytes(bytes: &[u8], limits: &Limits) -> LayerScan {
        let mut budget = FindingBudget { remaining: 10 };
        scan(&mut &bytes[..], bytes.len() as u64, limits, &mut budget)
    }

    fn member(builder: &mut tar::Builder<Vec<u8>>, kind: EntryType, path: &str, mode: u32) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(0);
        builder.append_data(&mut header, path, io::empty()).unwrap();
    }

    #[test]
    fn diff_id_is_the_sha256_of_the_uncompressed_tar() {
        let tar = tar_of(&[("etc/hostname", b"sluice\n")]);
        for bytes in [
            tar.clone(),
            gzip(&tar),
            zstd::encode_all(&tar[..], 3).unwrap(),
        ] {
            let scan = scan_bytes(&bytes, &Limits::default());
            let stats = scan.outcome.unwrap();
            assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
            assert_eq!(stats.uncompressed_size, tar.len() as u64);
            assert_eq!(stats.entries, 1);
        }
    }

    #[test]
    fn policy_findings_are_recorded_not_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        member(&mut builder, EntryType::Regular, "usr/bin/su", 0o4755);
        member(&mut builder, EntryType::Regular, "var/open", 0o666);
        member(&mut builder, EntryType::Directory, "tmp/", 0o1777);
        member(&mut builder, EntryType::Regular, "etc/.wh.motd", 0o644);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        builder
            .append_link(&mut header, "a/escape", "../../etc/shadow")
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let stats = scan_bytes(&tar, &Limits::default()).outcome.unwrap();
        let kinds: Vec<_> = stats
            .findings
            .iter()
            .map(|(p, k)| (p.as_str(), k))
            .collect();
        assert_eq!(
            kinds,
            [
                ("usr/bin/su", &FindingKind::Setuid { mode: 0o4755 }),
                ("var/open", &FindingKind::WorldWritable { mode: 0o666 }),
                ("etc/.wh.motd", &FindingKind::Whiteout),
                (
                    "a/escape",
                    &FindingKind::LinkOutsideRoot {
                        target: "../../etc/shadow".into()
                    }
                ),
            ]
        );
        assert_eq!(stats.findings_total, 4);
    }

    #[test]
    fn the_finding_budget_caps_what_is_kept_but_not_what_is_counted() {
        let mut builder = tar::Builder::new(Vec::new());
        for i in 0..5 {
            member(&mut builder, EntryType::Regular, &format!("f{i}"), 0o777);
        }
        let tar = builder.into_inner().unwrap();
        let mut budget = FindingBudget { remaining: 2 };
        let scan = scan(
            &mut &tar[..],
            tar.len() as u64,
            &Limits::default(),
            &mut budget,
        );
        let stats = scan.outcome.unwrap();
        assert_eq!((stats.findings.len(), stats.findings_total), (2, 5));
        assert_eq!(budget.remaining, 0);
    }

    #[test]
    fn a_blob_that_is_not_a_tar_is_a_fault_not_a_panic() {
        let scan = scan_bytes(b"{\"schemaVersion\":2}", &Limits::default());
        assert_eq!(scan.compression, Compression::None);
        assert!(matches!(scan.outcome, Err(LayerFault::Malformed(_))));
        let scan = scan_bytes(&[0x1f, 0x8b, 0, 0], &Limits::default());
        assert_eq!(scan.compression, Compression::Gzip);
        assert!(scan.outcome.is_err());
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        let zeros = vec![0u8; 1 << 20];
        let tar = tar_of(&[("zeros", &zeros)]);
        let packed = zstd::encode_all(&tar[..], 3).unwrap();
        let limits = Limits {
            layer_ratio_floor: 4096,
            max_layer_ratio: 1,
            ..Limits::default()
        };
        let scan = scan_bytes(&packed, &limits);
        assert_eq!(scan.outcome.unwrap_err(), LayerFault::Limit(4096));
    }

    #[test]
    fn climbing_is_measured_from_the_link_directory() {
        assert!(!climbs_out("usr/bin", "../lib/x"));
        assert!(climbs_out("usr", "../../x"));
        assert!(climbs_out("", "../x"));
        assert!(!climbs_out("", "a/../b"));
    }
}
