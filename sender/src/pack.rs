//! Packing: an image or a set of reports becomes one signed bundle file.
//!
//! ```text
//!  input ─▶ tar ─▶ zstd (level 3) ─▶ blake3 + length ─▶ temp payload file
//!                                                            │
//!  manifest (files, payload hash, subject) ─▶ seal ─▶ envelope
//!                                                            ▼
//!                    temp bundle = envelope ‖ payload ─▶ fsync ─▶ rename
//! ```
//!
//! Memory stays bounded whatever the image size: the payload streams
//! through a temporary file in the output's directory. Nothing is left at
//! the output path unless every step succeeded, and temporary files are
//! removed on error. This module does not send bundles.

use sluice_hardware::outln;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sluice_protocol::bundle::{SealError, seal};
use sluice_protocol::digest::Digest;
use sluice_protocol::id::BundleId;
use sluice_protocol::key::{Role, SecretKey};
use sluice_protocol::manifest::{
    Archive, BundleKind, Compression, FORMAT_VERSION, FileEntry, FileKind, ImageFormat, Manifest,
    PayloadInfo, Subject, is_safe_relative_path,
};
use tempfile::NamedTempFile;

use crate::image::{Image, ImageError, ImageOptions};
use crate::keyfile::{self, parent_dir};
use crate::report::detect_kind;

/// zstd level: the design measured level 3 at about 240 MB/s per core.
const ZSTD_LEVEL: i32 = 3;
/// Largest single report file packed.
// Limitation: report files are read whole (to recognise and hash them in
// one read), so each is capped at 256 MiB; images stream with no cap.
pub const MAX_REPORT_LEN: u64 = 256 << 20;

/// `sluice-send pack` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PackCommand {
    /// Pack a docker-archive, OCI layout directory or OCI archive.
    Image(PackImageArgs),
    /// Pack report files (SBOMs, scans, tests, provenance) about one image.
    Report(PackReportArgs),
}

/// Arguments of `sluice-send pack image`.
#[derive(Debug, clap::Args)]
pub struct PackImageArgs {
    /// Secret key file of the image role.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Image to pack: a docker-archive tar, an OCI layout directory or tar.
    pub image: PathBuf,
    /// Bundle file to write.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
    /// Which image to take when the input holds several (OCI ref name,
    /// docker RepoTag, or digest).
    #[arg(long = "ref", value_name = "NAME")]
    pub reference: Option<String>,
}

/// Arguments of `sluice-send pack report`.
#[derive(Debug, clap::Args)]
pub struct PackReportArgs {
    /// Secret key file of the report role.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Digest of the image these reports are about (sha256:...).
    #[arg(long, value_name = "DIGEST")]
    pub subject: Digest,
    /// Report files; stored under their base names.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Bundle file to write.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedBundle {
    pub path: PathBuf,
    pub bundle_id: BundleId,
    pub kind: BundleKind,
    pub subject: Digest,
    pub payload_len: u64,
    pub file_count: usize,
    pub total_len: u64,
}

/// Why a bundle could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("a {key_role} key may not sign a {bundle_kind} bundle; use the {} key", .bundle_kind.required_role())]
    WrongRole {
        key_role: Role,
        bundle_kind: BundleKind,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot read report {path}: {source}")]
    ReadReport { path: PathBuf, source: io::Error },
    #[error("report {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("report {path} is {size} bytes, more than the {MAX_REPORT_LEN}-byte limit")]
    ReportTooLarge { path: PathBuf, size: u64 },
    #[error("report {path} has a file name that cannot be stored (not UTF-8 or unsafe)")]
    BadName { path: PathBuf },
    #[error("two reports are both named `{name}`; rename one")]
    DuplicateName { name: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} already exists; choose another output name")]
    OutputExists { path: PathBuf },
    #[error("cannot sign the manifest: {0}")]
    Seal(#[from] SealError),
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Opens, checks and packs an image input into a bundle at `out`.
pub fn pack_image(
    input: &Path,
    key: &SecretKey,
    opts: &ImageOptions,
    out: &Path,
    created: u64,
) -> Result<PackedBundle, PackError> {
    check_role(key, BundleKind::Image)?;
    let image = Image::open(input, opts)?;
    pack_opened_image(&image, key, out, created, &mut |_| {})
}

/// Packs an image that was already opened, reporting input bytes consumed.
pub fn pack_opened_image(
    image: &Image,
    key: &SecretKey,
    out: &Path,
    created: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<PackedBundle, PackError> {
    check_role(key, BundleKind::Image)?;
    let mut payload = PayloadFile::create(out)?;
    let sink = payload.compressor()?;
    let sink = image.write_payload_tar(sink, progress)?;
    let info = payload.finish(sink)?;
    let subject = Subject {
        name: image.name.clone(),
        digest: image.subject.clone(),
    };
    let files = image.files();
    let format = Some(image.format);
    let manifest = manifest(
        BundleKind::Image,
        format,
        subject,
        info,
        files,
        key,
        created,
    )?;
    write_bundle(&manifest, key, payload, out)
}

/// Packs report files about the image `subject` into a bundle at `out`.
pub fn pack_report(
    subject: &Digest,
    files: &[PathBuf],
    key: &SecretKey,
    out: &Path,
    created: u64,
) -> Result<PackedBundle, PackError> {
    check_role(key, BundleKind::Report)?;
    let reports = read_reports(files)?;
    let mut payload = PayloadFile::create(out)?;
    let mut builder = tar::Builder::new(payload.compressor()?);
    for report in &reports {
        append_report(&mut builder, report).map_err(|e| payload.write_err(e))?;
    }
    let sink = builder.into_inner().map_err(|e| payload.write_err(e))?;
    let info = payload.finish(sink)?;
    let entries = reports.iter().map(Report::entry).collect();
    let subject = Subject {
        name: None,
        digest: subject.clone(),
    };
    let manifest = manifest(
        BundleKind::Report,
        None,
        subject,
        info,
        entries,
        key,
        created,
    )?;
    write_bundle(&manifest, key, payload, out)
}

/// Runs `sluice-send pack`.
pub fn run(command: &PackCommand) -> anyhow::Result<()> {
    let packed = match command {
        PackCommand::Image(args) => run_image(args)?,
        PackCommand::Report(args) => run_report(args)?,
    };
    outln!(
        "packed {} bundle {} for {} -> {} ({} files, {} bytes)",
        packed.kind,
        packed.bundle_id,
        packed.subject,
        packed.path.display(),
        packed.file_count,
        packed.total_len,
    );
    Ok(())
}

fn run_image(args: &PackImageArgs) -> anyhow::Result<PackedBundle> {
    let key = keyfile::load_secret_key(&args.key)?;
    check_role(&key, BundleKind::Image)?;
    let opts = ImageOptions {
        reference: args.reference.clone(),
    };
    let image = Image::open(&args.image, &opts)
        .with_context(|| format!("checking image {}", args.image.display()))?;
    let bar = progress_bar(image.input_len());
    let packed = pack_opened_image(&image, &key, &args.out, now(), &mut |n| bar.inc(n));
    bar.finish_and_clear();
    packed.with_context(|| {
        format!(
            "packing {} into {}",
            args.image.display(),
            args.out.display()
        )
    })
}

fn run_report(args: &PackReportArgs) -> anyhow::Result<PackedBundle> {
    let key = keyfile::load_secret_key(&args.key)?;
    pack_report(&args.subject, &args.files, &key, &args.out, now())
        .with_context(|| format!("packing reports into {}", args.out.display()))
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} eta {eta}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn check_role(key: &SecretKey, bundle_kind: BundleKind) -> Result<(), PackError> {
    if key.role() == bundle_kind.required_role() {
        return Ok(());
    }
    Err(PackError::WrongRole {
        key_role: key.role(),
        bundle_kind,
    })
}

fn manifest(
    kind: BundleKind,
    image_format: Option<ImageFormat>,
    subject: Subject,
    payload: PayloadInfo,
    files: Vec<FileEntry>,
    key: &SecretKey,
    created: u64,
) -> Result<Manifest, PackError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(PackError::Random)?;
    Ok(Manifest {
        format_version: FORMAT_VERSION,
        bundle_id: BundleId(id),
        kind,
        created,
        subject,
        image_format,
        payload,
        files,
        signer: key.id(),
    })
}

/// Seals the manifest and writes envelope ‖ payload atomically to `out`.
fn write_bundle(
    manifest: &Manifest,
    key: &SecretKey,
    payload: PayloadFile,
    out: &Path,
) -> Result<PackedBundle, PackError> {
    let envelope = seal(manifest, key)?;
    let mut payload_file = payload.temp;
    let write_err = |source| PackError::Write {
        path: out.to_owned(),
        source,
    };
    let mut bundle = temp_in(out, ".sluice-bundle-")?;
    bundle.write_all(&envelope).map_err(write_err)?;
    payload_file.seek(SeekFrom::Start(0)).map_err(write_err)?;
    io::copy(payload_file.as_file_mut(), bundle.as_file_mut()).map_err(write_err)?;
    bundle.as_file().sync_all().map_err(write_err)?;
    bundle
        .persist_noclobber(out)
        .map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => PackError::OutputExists {
                path: out.to_owned(),
            },
            _ => write_err(e.error),
        })?;
    keyfile::sync_dir(parent_dir(out)).map_err(write_err)?;
    Ok(packed(manifest, out, envelope.len() as u64))
}

fn packed(manifest: &Manifest, out: &Path, envelope_len: u64) -> PackedBundle {
    PackedBundle {
        path: out.to_owned(),
        bundle_id: manifest.bundle_id,
        kind: manifest.kind,
        subject: manifest.subject.digest.clone(),
        payload_len: manifest.payload.length,
        file_count: manifest.files.len(),
        total_len: envelope_len + manifest.payload.length,
    }
}

fn temp_in(out: &Path, prefix: &str) -> Result<NamedTempFile, PackError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(parent_dir(out))
        .map_err(|source| PackError::Write {
            path: out.to_owned(),
            source,
        })
}

/// The compressed payload, streamed into a temporary file beside the output.
struct PayloadFile {
    temp: NamedTempFile,
    out: PathBuf,
}

type Compressor = zstd::Encoder<'static, HashingWriter<BufWriter<File>>>;

impl PayloadFile {
    fn create(out: &Path) -> Result<Self, PackError> {
        Ok(Self {
            temp: temp_in(out, ".sluice-payload-")?,
            out: out.to_owned(),
        })
    }

    fn compressor(&mut self) -> Result<Compressor, PackError> {
        let file = self.temp.reopen().map_err(|e| self.write_err(e))?;
        let writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let mut encoder = zstd::Encoder::new(writer, ZSTD_LEVEL).map_err(|e| self.write_err(e))?;
        encoder
            .include_checksum(true)
            .map_err(|e| self.write_err(e))?;
        Ok(encoder)
    }

    fn finish(&mut self, encoder: Compressor) -> Result<PayloadInfo, PackError> {
        let mut writer = encoder.finish().map_err(|e| self.write_err(e))?;
        writer.inner.flush().map_err(|e| self.write_err(e))?;
        Ok(PayloadInfo {
            length: writer.len,
            blake3: *writer.hasher.finalize().as_bytes(),
            compression: Compression::Zstd,
            archive: Archive::Tar,
        })
    }

    fn write_err(&self, source: io::Error) -> PackError {
        PackError::Write {
            path: self.out.clone(),
            source,
        }
    }
}

/// Counts and hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One report file, read whole.
struct Report {
    name: String,
    bytes: Vec<u8>,
    kind: FileKind,
}

impl Report {
    fn entry(&self) -> FileEntry {
        FileEntry {
            path: self.name.clone(),
            size: self.bytes.len() as u64,
            blake3: *blake3::hash(&self.bytes).as_bytes(),
            kind: self.kind,
            link_target: None,
        }
    }
}

fn read_reports(paths: &[PathBuf]) -> Result<Vec<Report>, PackError> {
    let mut reports: Vec<Report> = Vec::with_capacity(paths.len());
    for path in paths {
        let report = read_report(path)?;
        if reports.iter().any(|r| r.name == report.name) {
            return Err(PackError::DuplicateName { name: report.name });
        }
        reports.push(report);
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(reports)
}

fn read_report(path: &Path) -> Result<Report, PackError> {
    let read_err = |source| PackError::ReadReport {
        path: path.to_owned(),
        source,
    };
    let name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
    let name = name.filter(|n| is_safe_relative_path(n));
    let name = name.ok_or_else(|| PackError::BadName {
        path: path.to_owned(),
    })?;
    let meta = fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(PackError::NotAFile {
            path: path.to_owned(),
        });
    }
    if meta.len() > MAX_REPORT_LEN {
        return Err(PackError::ReportTooLarge {
            path: path.to_owned(),
            size: meta.len(),
        });
    }
    let bytes = fs::read(path).map_err(read_err)?;
    let kind = detect_kind(&bytes);
    Ok(Report { name, bytes, kind })
}

fn append_report<W: Write>(builder: &mut tar::Builder<W>, report: &Report) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(report.bytes.len() as u64);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder.append_data(&mut header, &report.name, report.bytes.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::bundle::Envelope;
    use sluice_protocol::trust::TrustStore;
    use std::io::Read;

    fn key(role: Role) -> SecretKey {
        SecretKey::from_seed(&[3; 32], role, "pack test")
    }

    fn reports(dir: &Path) -> Vec<PathBuf> {
        let sbom = dir.join("sbom.json");
        fs::write(&sbom, r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#).unwrap();
        let notes = dir.join("notes.txt");
        fs::write(&notes, "reviewed").unwrap();
        vec![sbom, notes]
    }

    #[test]
    fn a_report_bundle_verifies_and_its_payload_matches() {
        let dir = tempfile::tempdir().unwrap();
        let key = key(Role::Report);
        let out = dir.path().join("r.bundle");
        let subject = Digest::sha256_of(b"image");
        let packed = pack_report(&subject, &reports(dir.path()), &key, &out, 77).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(packed.total_len, bytes.len() as u64);
        let store = TrustStore::new([key.public_key()]).unwrap();
        let verified = store.verify_envelope(&bytes, 0).unwrap();
        let manifest = verified.manifest;
        assert_eq!(manifest.created, 77);
        assert_eq!(manifest.subject.digest, subject);
        let kinds: Vec<_> = manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("notes.txt", FileKind::Unknown),
                ("sbom.json", FileKind::CycloneDx)
            ]
        );
        let payload = &bytes[verified.envelope_len..];
        assert_eq!(payload.len() as u64, manifest.payload.length);
        assert_eq!(*blake3::hash(payload).as_bytes(), manifest.payload.blake3);
        let mut tar = Vec::new();
        zstd::Decoder::new(payload)
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        assert!(tar.windows(8).any(|w| w == b"reviewed"));
    }

    #[test]
    fn an_image_key_cannot_pack_reports() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.bundle");
        let subject = Digest::sha256_of(b"image");
        let err =
            pack_report(&subject, &reports(dir.path()), &key(Role::Image), &out, 0).unwrap_err();
        assert!(matches!(
            err,
            PackError::WrongRole {
                key_role: Role::Image,
                ..
            }
        ));
        assert!(!out.exists());
    }

    #[test]
    fn duplicate_report_names_are_refused_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let mut files = reports(dir.path());
        fs::write(sub.join("sbom.json"), "{}").unwrap();
        files.push(sub.join("sbom.json"));
        let out = dir.path().join("r.bundle");
        let err = pack_report(
            &Digest::sha256_of(b"i"),
            &files,
            &key(Role::Report),
            &out,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, PackError::DuplicateName { ref name } if name == "sbom.json"));
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "only the inputs remain: {left:?}");
    }

    #[test]
    fn an_existing_output_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.bundle");
        fs::write(&out, "keep").unwrap();
        let err = pack_report(
            &Digest::sha256_of(b"i"),
            &reports(dir.path()),
            &key(Role::Report),
            &out,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, PackError::OutputExists { .. }));
        assert_eq!(fs::read_to_string(&out).unwrap(), "keep");
        let bytes = fs::read(&out).unwrap();
        assert!(Envelope::parse(&bytes).is_err());
    }
}
