//! The sender daemon: for each configured stream, pack what lands in its
//! inbox with that stream's key, send what is in its outbox, and archive.
//!
//! ```text
//!  <stream dir>/
//!  ├── inbox/    images (image stream) or report sets (report stream):
//!  │             a directory named sha256-<hex> holding the reports on it
//!  ├── outbox/   bundles to send: packed here, or packed elsewhere and dropped in
//!  ├── sent/     inputs and bundles that went out
//!  └── failed/   inputs that could not be packed, each with a .reason.txt
//! ```
//!
//! An entry is taken only when it has looked the same on two scans in a
//! row, and never while its name starts with `.` or ends in `.part` or
//! `.tmp`; writers should copy under such a name and rename when done.
//!
//! Separation of duties: a production deployment runs one daemon per stream
//! on separate hosts, each configured with only its own key. A configuration
//! holding both roles' keys is accepted for labs but warned about.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use sluice_protocol::digest::Digest;
use sluice_protocol::key::{Role, SecretKey};
use sluice_protocol::manifest::BundleKind;
use tracing::{error, info, warn};

use crate::image::ImageOptions;
use crate::keyfile::load_secret_key;
use crate::pack::{pack_image, pack_report};
use crate::send::{LinkArgs, Sender, resolve};

/// `sluice-send run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Daemon configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Process what is waiting once, then exit, instead of watching.
    #[arg(long)]
    pub once: bool,
}

/// The daemon's configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The diode's input address, HOST or HOST:PORT.
    pub to: String,
    /// Seconds between scans of the inboxes and outboxes.
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    #[serde(default)]
    pub link: LinkArgs,
    #[serde(rename = "stream")]
    pub streams: Vec<StreamConfig>,
}

/// One stream: its role, key and directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// `image` or `report`.
    pub kind: Role,
    /// The stream's secret key; its role must match `kind`.
    pub key: PathBuf,
    /// Directory holding inbox/, outbox/, sent/ and failed/.
    pub dir: PathBuf,
}

/// A stream ready to work: key loaded, directories present.
struct Stream {
    kind: Role,
    key: SecretKey,
    dirs: StreamDirs,
    seen: HashMap<PathBuf, Fingerprint>,
}

#[derive(Clone, Debug)]
struct StreamDirs {
    inbox: PathBuf,
    outbox: PathBuf,
    sent: PathBuf,
    failed: PathBuf,
}

/// Size and modification time of a file or of a whole directory tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    bytes: u64,
    files: u64,
    newest: SystemTime,
}

/// `sluice-send run`: loads the configuration and works until interrupted.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    if !args.once {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the signal handler")?;
    }
    run_daemon(&config, &stop, args.once)
}

/// Reads and checks a daemon configuration file.
pub fn load_config(path: &Path) -> anyhow::Result<DaemonConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: DaemonConfig = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid sender configuration", path.display()))?;
    if config.streams.is_empty() {
        bail!("{} configures no [[stream]]", path.display());
    }
    Ok(config)
}

/// Runs the daemon loop; with `once`, scans until nothing is left waiting
/// (every input packed and every bundle sent) and returns.
pub fn run_daemon(config: &DaemonConfig, stop: &AtomicBool, once: bool) -> anyhow::Result<()> {
    let mut streams = config
        .streams
        .iter()
        .map(Stream::open)
        .collect::<anyhow::Result<Vec<_>>>()?;
    warn_on_shared_duties(&streams);
    let to = resolve(&config.to)?;
    let mut sender = Sender::connect(to, &config.link)?;
    info!(%to, streams = streams.len(), "sender daemon started");

    let poll = Duration::from_secs(config.poll_secs.max(1));
    while !stop.load(Ordering::SeqCst) {
        let mut busy = false;
        for stream in &mut streams {
            busy |= stream.scan(&mut sender);
        }
        if once && !busy {
            break;
        }
        let wait = if once {
            Duration::from_millis(200)
        } else {
            poll
        };
        idle(wait, stop, &mut sender, &streams);
    }
    info!("sender daemon stopped");
    Ok(())
}

impl Stream {
    fn open(config: &StreamConfig) -> anyhow::Result<Self> {
        let key = load_secret_key(&config.key)
            .with_context(|| format!("loading the {} stream key", config.kind))?;
        if key.role() != config.kind {
            bail!(
                "{} holds a {} key but is configured for the {} stream",
                config.key.display(),
                key.role(),
                config.kind
            );
        }
        let dirs = StreamDirs::create(&config.dir)?;
        Ok(Self {
            kind: config.kind,
            key,
            dirs,
            seen: HashMap::new(),
        })
    }

    /// One pass: pack stable inbox entries, then send stable outbox
    /// bundles. Returns true if anything is still waiting.
    fn scan(&mut self, sender: &mut Sender) -> bool {
        for entry in self.stable_entries(&self.dirs.inbox.clone()) {
            self.pack(&entry);
        }
        for bundle in self.stable_entries(&self.dirs.outbox.clone()) {
            self.send(sender, &bundle);
        }
        !(candidates(&self.dirs.inbox).is_empty() && candidates(&self.dirs.outbox).is_empty())
    }

    /// Entries of `dir` that looked the same on the previous scan.
    fn stable_entries(&mut self, dir: &Path) -> Vec<PathBuf> {
        let mut stable = Vec::new();
        for path in candidates(dir) {
            let Some(now) = fingerprint(&path) else {
                continue;
            };
            if self.seen.insert(path.clone(), now) == Some(now) {
                stable.push(path);
            }
        }
        stable
    }

    fn pack(&mut self, input: &Path) {
        self.seen.remove(input);
        let name = file_name(input);
        let out = self.dirs.outbox.join(format!("{name}.sluice"));
        let result = match self.kind {
            Role::Image => pack_image(input, &self.key, &ImageOptions::default(), &out, unix_now())
                .map_err(anyhow::Error::from),
            Role::Report => report_subject(input).and_then(|subject| {
                Ok(pack_report(
                    &subject,
                    &report_files(input)?,
                    &self.key,
                    &out,
                    unix_now(),
                )?)
            }),
        };
        match result {
            Ok(packed) => {
                info!(input = %input.display(), bundle = %packed.bundle_id, subject = %packed.subject,
                    "packed");
                archive(input, &self.dirs.sent);
            }
            Err(error) => {
                error!(input = %input.display(), "cannot pack: {error:#}");
                fail(input, &self.dirs.failed, &format!("{error:#}"));
            }
        }
    }

    fn send(&mut self, sender: &mut Sender, bundle: &Path) {
        self.seen.remove(bundle);
        match sender.send(bundle, false) {
            Ok(report) => {
                let seconds = report.elapsed.as_secs_f64();
                info!(bundle = %report.bundle_id, transfer = %report.transfer,
                    datagrams = report.datagrams, seconds, "sent");
                archive(bundle, &self.dirs.sent);
            }
            Err(error) => {
                error!(bundle = %bundle.display(), "cannot send: {error:#}");
                fail(bundle, &self.dirs.failed, &format!("{error:#}"));
            }
        }
    }
}

impl Stream {
    /// The wire stream this stream's bundles travel on.
    fn kind_stream(&self) -> sluice_protocol::id::StreamId {
        match self.kind {
            Role::Image => BundleKind::Image.stream(),
            Role::Report => BundleKind::Report.stream(),
        }
    }
}

impl StreamDirs {
    fn create(root: &Path) -> anyhow::Result<Self> {
        let dirs = Self {
            inbox: root.join("inbox"),
            outbox: root.join("outbox"),
            sent: root.join("sent"),
            failed: root.join("failed"),
        };
        for dir in [&dirs.inbox, &dirs.outbox, &dirs.sent, &dirs.failed] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(dirs)
    }
}

fn warn_on_shared_duties(streams: &[Stream]) {
    let image = streams.iter().any(|s| s.kind == Role::Image);
    let report = streams.iter().any(|s| s.kind == Role::Report);
    if image && report {
        warn!(
            "this daemon holds both the image and the report key; for separation of duties run \
             one daemon per stream on separate hosts"
        );
    }
}

/// The subject digest a report set's directory name gives: `sha256-<hex>`
/// (or `sha256:<hex>` where the filesystem allows it).
fn report_subject(dir: &Path) -> anyhow::Result<Digest> {
    let name = file_name(dir);
    let text = name.replacen('-', ":", 1);
    if !dir.is_dir() {
        bail!("a report set must be a directory named sha256-<hex>, not a file");
    }
    Digest::parse(&text).with_context(|| {
        format!("report set directory `{name}` does not name an image digest (sha256-<64 hex>)")
    })
}

fn report_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = candidates(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("report set {} holds no files", dir.display());
    }
    Ok(files)
}

/// Entries of `dir` that are not hidden or marked as still being written.
fn candidates(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = file_name(p);
            !(name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp"))
        })
        .collect();
    paths.sort();
    paths
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mut print = Fingerprint {
        bytes: meta.len(),
        files: 1,
        newest: meta.modified().ok()?,
    };
    if meta.is_dir() {
        for entry in fs::read_dir(path).ok()? {
            let child = fingerprint(&entry.ok()?.path())?;
            print.bytes += child.bytes;
            print.files += child.files;
            print.newest = print.newest.max(child.newest);
        }
    }
    Some(print)
}

/// Moves `path` into `dir`, adding a time prefix if the name is taken.
fn archive(path: &Path, dir: &Path) {
    let name = file_name(path);
    let mut target = dir.join(&name);
    if target.exists() {
        target = dir.join(format!("{}-{name}", unix_now()));
    }
    if let Err(error) = fs::rename(path, &target) {
        error!(from = %path.display(), to = %target.display(), "cannot archive: {error}");
    }
}

fn fail(path: &Path, dir: &Path, reason: &str) {
    archive(path, dir);
    let note = dir.join(format!("{}.reason.txt", file_name(path)));
    if let Err(error) = fs::write(&note, format!("{reason}\n")) {
        error!(path = %note.display(), "cannot write the failure reason: {error}");
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Waits between scans, keeping each stream's heartbeat going so the
/// receiver can tell an idle sender from a dead one.
fn idle(total: Duration, stop: &AtomicBool, sender: &mut Sender, streams: &[Stream]) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        for stream in streams {
            if let Err(error) = sender.heartbeat_if_due(stream.kind_stream()) {
                warn!("cannot send a heartbeat: {error:#}");
            }
        }
        std::thread::sleep(step);
        slept += step;
    }
}

fn default_poll() -> u64 {
    2
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_set_names_give_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "a".repeat(64);
        let set = dir.path().join(format!("sha256-{hex}"));
        fs::create_dir(&set).unwrap();
        assert_eq!(
            report_subject(&set).unwrap().to_string(),
            format!("sha256:{hex}")
        );
        let bad = dir.path().join("sha256-xyz");
        fs::create_dir(&bad).unwrap();
        assert!(report_subject(&bad).is_err());
    }

    #[test]
    fn half_written_names_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.tar", ".hidden", "b.tar.part", "c.tmp"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let names: Vec<String> = candidates(dir.path())
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(names, vec!["a.tar"]);
    }

    #[test]
    fn shipped_examples_keep_one_role_per_daemon() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for (file, role) in [
            ("sender-image.toml", Role::Image),
            ("sender-report.toml", Role::Report),
        ] {
            let config = load_config(&examples.join(file)).unwrap();
            assert_eq!(config.streams.len(), 1, "{file}");
            assert_eq!(config.streams[0].kind, role, "{file}");
        }
    }

    #[test]
    fn config_parses_streams_and_link() {
        let text = r#"
            to = "127.0.0.1:7400"
            [link]
            rate = "100M"
            parity_shards = 48
            [[stream]]
            kind = "image"
            key = "/k/image.key"
            dir = "/s/image"
        "#;
        let config: DaemonConfig = toml::from_str(text).unwrap();
        assert_eq!(config.streams.len(), 1);
        assert_eq!(config.streams[0].kind, Role::Image);
        assert_eq!(config.link.parity_shards, 48);
        assert_eq!(config.link.rate.bits_per_second(), 100_000_000);
        assert_eq!(config.link.data_shards, 128);
    }
}
