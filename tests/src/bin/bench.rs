//! `sluice-bench`: end-to-end figures for the real receiver process.
//!
//! ```text
//!  generated bundle ──▶ Sender (this process) ──▶ loopback UDP ──▶ sluice-recv (child)
//!   envelope + PRNG      paced at --rate                             spool ─▶ quarantine/
//!   payload on disk                                                     ▲
//!                        poll Store::list / rejections, /proc/<pid>/status ┘
//! ```
//!
//! `memory` sends bundles of growing size and reports the receiver's peak
//! resident memory, which must not grow with the bundle. `throughput`
//! compares Sluice's goodput with a plain UDP blast of the same datagrams.
//!
//! The payload is pseudo-random bytes, not a zstd tar: the receiver checks
//! only the signed length and blake3 before quarantine, so the contents do
//! not change what is measured. This prints figures; it asserts nothing.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::fs::{self, File};
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::str::FromStr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, SeedableRng as _};
use sluice_hardware::rate::Rate;
use sluice_protocol::bundle::seal;
use sluice_protocol::digest::Digest;
use sluice_protocol::id::BundleId;
use sluice_protocol::key::{Role, SecretKey};
use sluice_protocol::manifest::{
    Archive, BundleKind, Compression, FORMAT_VERSION, FileEntry, FileKind, ImageFormat, Manifest,
    PayloadInfo, Subject,
};
use sluice_receiver::record::{Record, Rejection};
use sluice_receiver::store::Store;
use sluice_sender::send::{LinkArgs, SendReport, Sender};
use sluice_tests::lab::{self, ChildGuard};
use tempfile::TempDir;

/// Rate `memory` paces to by default. On a two-core machine with
/// net.core.rmem_max at 4 MiB, 1G sometimes lost whole interleave windows
/// on loopback while 600M needed no parity at all.
const MEMORY_RATE: &str = "600M";
/// Bytes generated, hashed and written at a time.
const CHUNK: usize = 1 << 20;
/// How often the receiver's state and memory are sampled.
const POLL: Duration = Duration::from_millis(50);
/// Free space wanted, as a multiple of the largest bundle: the bundle, its
/// spool/quarantine copy, and room to spare.
const SPACE_FACTOR: f64 = 2.5;

/// End-to-end benchmarks of Sluice over loopback, against the real
/// `sluice-recv` process.
#[derive(Debug, Parser)]
#[command(
    name = "sluice-bench",
    about,
    long_about = "End-to-end benchmarks of Sluice over loopback, against the real sluice-recv \
        process (build it first with `cargo build --release --bin sluice-recv`).\n\n\
        Bundles are generated under a temporary directory (set TMPDIR to move it) that is \
        removed at the end; each size needs about 2.5 times its size free, since the \
        receiver keeps its own copy. Progress goes to stderr, figures to stdout.\n\n\
        On loopback the receiver's socket buffer is capped by net.core.rmem_max; if the \
        receiver rejects a bundle as unrecoverable, lower --rate."
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Peak receiver memory (VmHWM) for bundles of each size.
    Memory(MemoryArgs),
    /// Sluice goodput for one bundle beside a raw UDP blast of the same datagrams.
    Throughput(ThroughputArgs),
}

#[derive(Debug, Args)]
struct MemoryArgs {
    /// Payload sizes, comma-separated; K, M, G and T are powers of 1024.
    #[arg(long, value_delimiter = ',', default_value = "100M,2G")]
    sizes: Vec<ByteSize>,
    /// Link rate the sender paces to (decimal bits per second, e.g. 400M, 1G).
    #[arg(long, default_value = MEMORY_RATE)]
    rate: Rate,
    #[command(flatten)]
    receiver: ReceiverArgs,
}

#[derive(Debug, Args)]
struct ThroughputArgs {
    /// Payload size; K, M, G and T are powers of 1024.
    #[arg(long, default_value = "1G")]
    size: ByteSize,
    /// Link rate of the first attempt (decimal bits per second).
    #[arg(long, default_value = "10G")]
    rate: Rate,
    /// Attempts at half the previous rate after an unrecoverable transfer.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    #[command(flatten)]
    receiver: ReceiverArgs,
}

#[derive(Debug, Args)]
struct ReceiverArgs {
    /// Receiver's --idle-timeout: seconds of silence before a transfer with
    /// missing blocks is rejected.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    idle_timeout: u64,
}

/// A byte count written like `100M` or `2G` (binary multiples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ByteSize(u64);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        BenchCommand::Memory(args) => memory(args),
        BenchCommand::Throughput(args) => throughput(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("sluice-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// memory

/// Runs `memory`; false if any bundle was rejected.
fn memory(args: &MemoryArgs) -> anyhow::Result<bool> {
    let lab = Lab::new(args.receiver.idle_timeout)?;
    let largest = args.sizes.iter().max().copied().unwrap_or(ByteSize(0));
    lab.check_free_space(largest);
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let bundle = lab.make_bundle(size)?;
        let run = lab.transfer(&bundle, args.rate)?;
        bundle.remove()?;
        report_rejection(&run, args.rate);
        rows.push((size, run));
    }
    print_memory_table(&rows, args.rate);
    Ok(rows.iter().all(|(_, run)| run.outcome.is_quarantined()))
}

fn print_memory_table(rows: &[(ByteSize, Run)], rate: Rate) {
    println!("receiver memory, sender paced at {rate}, loopback");
    println!(
        "{:>8} {:>12} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "size",
        "outcome",
        "seconds",
        "goodput",
        "wire",
        "parity",
        "recv idle",
        "recv rss",
        "recv peak",
        "send peak"
    );
    println!(
        "{:>8} {:>12} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "", "", "", "Mbit/s", "Mbit/s", "used", "MiB", "max MiB", "HWM MiB", "HWM MiB"
    );
    for (size, run) in rows {
        println!(
            "{:>8} {:>12} {:>8.2} {:>8} {:>8.0} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            size.to_string(),
            run.outcome.label(),
            run.seconds,
            run.goodput_text(run.send.bundle_len),
            run.wire_mbit(),
            run.outcome.parity_text(),
            kib_to_mib(run.recv_idle_kib),
            kib_to_mib(run.recv_rss_kib),
            kib_to_mib(run.recv_peak_kib),
            kib_to_mib(run.sender_peak_kib),
        );
    }
    println!(
        "goodput: bundle bytes / time to quarantine; wire: the sender's own rate; \
         parity used: most shards rebuilt in one block, of {}; \
         recv rss: largest VmRSS sampled every {} ms",
        LinkArgs::default().parity_shards,
        POLL.as_millis()
    );
}

// ---------------------------------------------------------------------------
// throughput

/// Runs `throughput`; false if no attempt reached quarantine.
fn throughput(args: &ThroughputArgs) -> anyhow::Result<bool> {
    let lab = Lab::new(args.receiver.idle_timeout)?;
    lab.check_free_space(args.size);
    let bundle = lab.make_bundle(args.size)?;
    let attempts = attempt_rates(&lab, &bundle, args.rate, args.retries)?;
    bundle.remove()?;
    let Some(last) = attempts.last() else {
        bail!("no attempt was made");
    };
    let raw = raw_blast(last.send.datagrams, datagram_len(&last.send))?;
    print_throughput(args.size, &attempts, &raw);
    Ok(attempts.iter().any(|run| run.outcome.is_quarantined()))
}

/// Sends at `rate`, halving it after each unrecoverable transfer.
fn attempt_rates(lab: &Lab, bundle: &Bundle, rate: Rate, retries: u32) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut rate = rate;
    for attempt in 0..=retries {
        eprintln!("sluice-bench: attempt {} at {rate}", attempt + 1);
        let run = lab.transfer(bundle, rate)?;
        let retry = run.outcome.is_unrecoverable();
        report_rejection(&run, rate);
        runs.push(run);
        match Rate::from_bits_per_second(rate.bits_per_second() / 2) {
            Some(half) if retry => rate = half,
            _ => break,
        }
    }
    Ok(runs)
}

fn print_throughput(size: ByteSize, attempts: &[Run], raw: &RawBlast) {
    let Some(last) = attempts.last() else { return };
    println!(
        "one {size} bundle ({} bytes), {} datagrams of {} bytes, loopback",
        last.send.bundle_len,
        last.send.datagrams,
        datagram_len(&last.send)
    );
    for run in attempts {
        println!(
            "  attempt at {:>14}: {:<24} {:>7.2} s, sender put {:.0} Mbit/s on the wire, \
             parity used {}",
            run.rate.to_string(),
            run.outcome.label(),
            run.seconds,
            run.wire_mbit(),
            run.outcome.parity_text(),
        );
    }
    print_sluice_goodput(attempts);
    println!(
        "raw UDP        {:.0} Mbit/s received ({:.2}% lost), sent at {:.0} Mbit/s \
         (plain std sockets, default buffers)",
        raw.received_mbit(),
        raw.loss_percent(),
        raw.sent_mbit(),
    );
}

fn print_sluice_goodput(attempts: &[Run]) {
    match attempts.iter().find(|run| run.outcome.is_quarantined()) {
        Some(run) => println!(
            "sluice goodput {} Mbit/s (payload bytes / time to quarantine) at {}",
            run.goodput_text(run.send.payload_len),
            run.rate
        ),
        None => println!(
            "sluice goodput: no attempt reached quarantine (lowest rate tried: {})",
            attempts
                .last()
                .map(|run| run.rate.to_string())
                .unwrap_or_default()
        ),
    }
}

/// Every datagram of a transfer fills the MTU, so this is exact.
fn datagram_len(send: &SendReport) -> usize {
    usize::try_from(send.wire_bytes / send.datagrams.max(1)).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// the lab: key, trust store, bundles, receiver runs

/// A temporary directory with a signing key and a trust store holding its
/// public half; removed when dropped.
struct Lab {
    dir: TempDir,
    key: SecretKey,
    trust: PathBuf,
    receiver_exe: PathBuf,
    idle_timeout: u64,
    runs: Cell<u32>,
}

/// A generated bundle on disk.
struct Bundle {
    path: PathBuf,
    id: BundleId,
}

/// What one transfer to a fresh receiver did.
struct Run {
    rate: Rate,
    outcome: Outcome,
    /// From the first datagram sent to the bundle showing in quarantine
    /// (or the rejection on record).
    seconds: f64,
    send: SendReport,
    recv_idle_kib: u64,
    /// Largest VmRSS sampled while the bundle was on its way.
    recv_rss_kib: u64,
    /// VmHWM at the end: the true peak, whatever the sampling missed.
    recv_peak_kib: u64,
    sender_peak_kib: u64,
}

enum Outcome {
    Quarantined(Box<Record>),
    Rejected(Rejection),
}

impl Lab {
    fn new(idle_timeout: u64) -> anyhow::Result<Self> {
        let receiver_exe = lab::binary("sluice-recv");
        if !receiver_exe.is_file() {
            bail!(
                "no receiver at {}: build it first with cargo build --release --bin sluice-recv",
                receiver_exe.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("sluice-bench-")
            .tempdir()
            .context("creating a temporary directory (set TMPDIR to choose where)")?;
        let key = sluice_sender::keygen::generate(Role::Image, "sluice-bench image key".into())
            .context("generating a signing key")?;
        let trust = write_trust_dir(dir.path(), &key)?;
        eprintln!("sluice-bench: working in {}", dir.path().display());
        let runs = Cell::new(0);
        Ok(Self {
            dir,
            key,
            trust,
            receiver_exe,
            idle_timeout,
            runs,
        })
    }

    /// Warns if the temporary directory has less room than `largest` needs.
    fn check_free_space(&self, largest: ByteSize) {
        let Some(free) = free_bytes(self.dir.path()) else {
            eprintln!("sluice-bench: cannot tell the free space; set TMPDIR to a roomy disk");
            return;
        };
        let wanted = largest.0 as f64 * SPACE_FACTOR;
        if (free as f64) < wanted {
            eprintln!(
                "sluice-bench: warning: {} free in {}, a {largest} bundle wants about {}; \
                 set TMPDIR to a roomier disk",
                ByteSize(free),
                self.dir.path().display(),
                ByteSize(wanted as u64)
            );
        }
    }

    /// Writes a signed image bundle with a `size`-byte pseudo-random payload.
    fn make_bundle(&self, size: ByteSize) -> anyhow::Result<Bundle> {
        let path = self.dir.path().join(format!("bench-{}.sluice", size.0));
        eprintln!("sluice-bench: generating a {size} bundle");
        let started = Instant::now();
        let id = BundleId(rand::random());
        let placeholder = seal(&self.manifest(id, size.0, [0; 32]), &self.key)?;
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let hash = write_payload(&file, placeholder.len() as u64, size.0)
            .with_context(|| format!("writing {}", path.display()))?;
        let envelope = seal(&self.manifest(id, size.0, hash), &self.key)?;
        anyhow::ensure!(
            envelope.len() == placeholder.len(),
            "envelope length changed on sealing"
        );
        file.write_all_at(&envelope, 0)
            .with_context(|| format!("writing {}", path.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("sluice-bench: bundle {id} written in {seconds:.1} s");
        Ok(Bundle { path, id })
    }

    fn manifest(&self, id: BundleId, length: u64, blake3: [u8; 32]) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            bundle_id: id,
            kind: BundleKind::Image,
            created: unix_now(),
            subject: Subject {
                name: Some("sluice-bench/random:latest".into()),
                digest: Digest::sha256_of(&id.0),
            },
            image_format: Some(ImageFormat::OciArchive),
            payload: PayloadInfo {
                length,
                blake3,
                compression: Compression::Zstd,
                archive: Archive::Tar,
            },
            files: vec![FileEntry {
                path: "random.bin".into(),
                size: length,
                blake3,
                kind: FileKind::ImageFile,
                link_target: None,
            }],
            signer: self.key.id(),
        }
    }

    /// Sends `bundle` at `rate` to a fresh receiver and waits for its verdict.
    fn transfer(&self, bundle: &Bundle, rate: Rate) -> anyhow::Result<Run> {
        let mut receiver = self.start_receiver()?;
        let recv_idle_kib = receiver.status_kib("VmRSS")?;
        reset_own_peak_rss();
        eprintln!("sluice-bench: sending {} at {rate}", bundle.id);
        let started = Instant::now();
        let sending = spawn_sender(receiver.addr, rate, bundle.path.clone());
        let (outcome, recv_rss_kib) =
            receiver.wait_for_verdict(bundle.id, &sending, self.idle_timeout)?;
        let seconds = started.elapsed().as_secs_f64();
        let send = join_sender(sending)?;
        let recv_peak_kib = receiver.status_kib("VmHWM")?;
        let sender_peak_kib = proc_status_kib(Path::new("/proc/self/status"), "VmHWM")?;
        eprintln!("sluice-bench: {} after {seconds:.2} s", outcome.label());
        receiver.finish()?;
        Ok(Run {
            rate,
            outcome,
            seconds,
            send,
            recv_idle_kib,
            recv_rss_kib,
            recv_peak_kib,
            sender_peak_kib,
        })
    }

    fn start_receiver(&self) -> anyhow::Result<Receiver> {
        let run = self.runs.get() + 1;
        self.runs.set(run);
        let state = self.dir.path().join(format!("state-{run}"));
        let log = self.dir.path().join(format!("receiver-{run}.log"));
        let port = lab::free_udp_port().context("finding a free UDP port")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = self.spawn_receiver(addr, &state, &log)?;
        let receiver = Receiver {
            child,
            addr,
            state,
            log,
        };
        receiver.wait_until_listening()?;
        Ok(receiver)
    }

    fn spawn_receiver(
        &self,
        addr: SocketAddr,
        state: &Path,
        log: &Path,
    ) -> anyhow::Result<ChildGuard> {
        let stderr = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&self.receiver_exe)
            .arg("run")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--state")
            .arg(state)
            .arg("--trust")
            .arg(&self.trust)
            .arg("--idle-timeout")
            .arg(self.idle_timeout.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.receiver_exe.display()))?;
        Ok(ChildGuard(child))
    }
}

impl Bundle {
    fn remove(&self) -> anyhow::Result<()> {
        fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}

impl Run {
    fn wire_mbit(&self) -> f64 {
        mbit_per_s(self.send.wire_bytes, self.send.elapsed.as_secs_f64())
    }

    fn goodput_text(&self, bytes: u64) -> String {
        match self.outcome {
            Outcome::Quarantined(_) => format!("{:.0}", mbit_per_s(bytes, self.seconds)),
            Outcome::Rejected(_) => "-".into(),
        }
    }
}

impl Outcome {
    /// Most parity shards one block needed, the margin left against loss.
    fn parity_text(&self) -> String {
        match self {
            Self::Quarantined(record) => record.transfer.max_parity_used.to_string(),
            Self::Rejected(_) => "-".into(),
        }
    }

    fn is_quarantined(&self) -> bool {
        matches!(self, Self::Quarantined(_))
    }

    fn is_unrecoverable(&self) -> bool {
        matches!(self, Self::Rejected(r) if r.code == "unrecoverable")
    }

    fn label(&self) -> String {
        match self {
            Self::Quarantined(_) => "quarantined".into(),
            Self::Rejected(r) => format!("rejected ({})", r.code),
        }
    }
}

/// Explains a rejection on stderr, with advice when loopback loss caused it.
fn report_rejection(run: &Run, rate: Rate) {
    let Outcome::Rejected(rejection) = &run.outcome else {
        return;
    };
    eprintln!(
        "sluice-bench: receiver rejected the bundle: {}",
        rejection.reason
    );
    if run.outcome.is_unrecoverable() {
        let cap = read_sysctl("net/core/rmem_max").unwrap_or_else(|| "unknown".into());
        let half = Rate::from_bits_per_second(rate.bits_per_second() / 2).unwrap_or(rate);
        eprintln!(
            "sluice-bench: loopback dropped more datagrams than the parity could repair at \
             {rate}; the receiver's socket buffer is capped by net.core.rmem_max = {cap} bytes. \
             Lower --rate (try {half})."
        );
    }
}

// ---------------------------------------------------------------------------
// the receiver process

/// A running `sluice-recv`, killed when dropped.
struct Receiver {
    child: ChildGuard,
    addr: SocketAddr,
    state: PathBuf,
    log: PathBuf,
}

impl Receiver {
    fn wait_until_listening(&self) -> anyhow::Result<()> {
        if lab::wait_for_text(&self.log, "receiver listening", Duration::from_secs(10)) {
            self.echo_warnings();
            return Ok(());
        }
        bail!("sluice-recv did not start listening:\n{}", self.log_tail());
    }

    /// Polls until the bundle is quarantined or a rejection is on record,
    /// sampling VmRSS on the way; returns the verdict and the largest sample.
    fn wait_for_verdict(
        &mut self,
        id: BundleId,
        sending: &JoinHandle<anyhow::Result<SendReport>>,
        idle_timeout: u64,
    ) -> anyhow::Result<(Outcome, u64)> {
        let grace = Duration::from_secs(idle_timeout * 2 + 60);
        let mut sent_at: Option<Instant> = None;
        let mut rss_kib = 0;
        loop {
            if let Some(outcome) = self.verdict(id)? {
                return Ok((outcome, rss_kib));
            }
            self.check_alive()?;
            rss_kib = rss_kib.max(self.status_kib("VmRSS")?);
            if sending.is_finished() {
                let since = *sent_at.get_or_insert_with(Instant::now);
                if since.elapsed() > grace {
                    bail!("no verdict {grace:?} after sending:\n{}", self.log_tail());
                }
            }
            thread::sleep(POLL);
        }
    }

    fn verdict(&self, id: BundleId) -> anyhow::Result<Option<Outcome>> {
        let store = Store::open(&self.state)?;
        let wanted = id.to_string();
        let mut records = store.list()?.into_iter();
        if let Some(record) = records.find(|record| record.bundle_id == wanted) {
            return Ok(Some(Outcome::Quarantined(Box::new(record))));
        }
        Ok(store
            .rejections()?
            .into_iter()
            .next()
            .map(Outcome::Rejected))
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.0.try_wait().context("checking on sluice-recv")? {
            None => Ok(()),
            Some(status) => bail!("sluice-recv exited ({status}):\n{}", self.log_tail()),
        }
    }

    /// A field of the receiver's /proc status, in KiB.
    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = PathBuf::from(format!("/proc/{}/status", self.child.id()));
        proc_status_kib(&path, field)
    }

    /// Stops the receiver and removes its state (the quarantined copy).
    fn finish(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        drop(self);
        fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))
    }

    fn echo_warnings(&self) {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        for line in text.lines().filter(|line| line.contains("WARN")) {
            eprintln!("sluice-bench: receiver said: {}", line.trim());
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

fn spawn_sender(
    addr: SocketAddr,
    rate: Rate,
    path: PathBuf,
) -> JoinHandle<anyhow::Result<SendReport>> {
    thread::spawn(move || {
        let link = LinkArgs {
            rate,
            ..LinkArgs::default()
        };
        Sender::connect(addr, &link)?.send(&path, false)
    })
}

fn join_sender(sending: JoinHandle<anyhow::Result<SendReport>>) -> anyhow::Result<SendReport> {
    match sending.join() {
        Ok(result) => result.context("sending the bundle"),
        Err(_) => bail!("the sending thread panicked"),
    }
}

// ---------------------------------------------------------------------------
// raw UDP blast

/// What a plain UDP blast on loopback did.
struct RawBlast {
    datagrams: u64,
    len: usize,
    send_seconds: f64,
    received: u64,
    receive_seconds: f64,
}

/// Sends `count` datagrams of `len` bytes as fast as the socket takes them
/// to a counting thread, which stops after a second of silence.
fn raw_blast(count: u64, len: usize) -> anyhow::Result<RawBlast> {
    eprintln!("sluice-bench: raw UDP blast of {count} datagrams of {len} bytes");
    let inbound = UdpSocket::bind("127.0.0.1:0").context("binding the raw receiving socket")?;
    let to = inbound.local_addr()?;
    let counting = thread::spawn(move || count_datagrams(&inbound));
    let outbound = UdpSocket::bind("127.0.0.1:0").context("binding the raw sending socket")?;
    outbound
        .connect(to)
        .with_context(|| format!("connecting to {to}"))?;
    let send_seconds = blast(&outbound, count, len);
    let (received, receive_seconds) = match counting.join() {
        Ok(result) => result?,
        Err(_) => bail!("the counting thread panicked"),
    };
    Ok(RawBlast {
        datagrams: count,
        len,
        send_seconds,
        received,
        receive_seconds,
    })
}

fn blast(socket: &UdpSocket, count: u64, len: usize) -> f64 {
    let datagram = vec![0x5a; len];
    let started = Instant::now();
    for _ in 0..count {
        // A refused send is a lost datagram; the loss figure counts it.
        let _ = socket.send(&datagram);
    }
    started.elapsed().as_secs_f64()
}

/// Counts datagrams until a second passes without one (or ten without any
/// at all); returns the count and the time from the first to the last.
fn count_datagrams(socket: &UdpSocket) -> anyhow::Result<(u64, f64)> {
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; 65_536];
    let waiting = Instant::now();
    let (mut count, mut first, mut last) = (0u64, None::<Instant>, Instant::now());
    loop {
        match socket.recv(&mut buf) {
            Ok(_) => {
                last = Instant::now();
                first.get_or_insert(last);
                count += 1;
            }
            Err(e) if is_timeout(&e) => {
                let quiet = if first.is_some() {
                    last.elapsed()
                } else {
                    waiting.elapsed() / 10
                };
                if quiet >= Duration::from_secs(1) {
                    break;
                }
            }
            Err(e) => return Err(e).context("receiving raw datagrams"),
        }
    }
    let span = first
        .map(|at| last.duration_since(at).as_secs_f64())
        .unwrap_or(0.0);
    Ok((count, span))
}

impl RawBlast {
    fn sent_mbit(&self) -> f64 {
        mbit_per_s(self.datagrams * self.len as u64, self.send_seconds)
    }

    fn received_mbit(&self) -> f64 {
        mbit_per_s(self.received * self.len as u64, self.receive_seconds)
    }

    fn loss_percent(&self) -> f64 {
        let lost = self.datagrams.saturating_sub(self.received);
        100.0 * lost as f64 / self.datagrams.max(1) as f64
    }
}

// ---------------------------------------------------------------------------
// helpers

/// Writes `len` pseudo-random bytes at `offset`, returning their blake3.
fn write_payload(file: &File, offset: u64, len: u64) -> std::io::Result<[u8; 32]> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(rand::random());
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from((len - done).min(CHUNK as u64)).unwrap_or(CHUNK);
        let bytes = chunk.get_mut(..want).unwrap_or_default();
        rng.fill_bytes(bytes);
        hasher.update(bytes);
        file.write_all_at(bytes, offset + done)?;
        done += want as u64;
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Writes the key pair under `dir/keys` and its public half into
/// `dir/trust`, the directory the receiver trusts.
fn write_trust_dir(dir: &Path, key: &SecretKey) -> anyhow::Result<PathBuf> {
    let keys = dir.join("keys");
    let trust = dir.join("trust");
    for sub in [&keys, &trust] {
        fs::create_dir(sub).with_context(|| format!("creating {}", sub.display()))?;
    }
    let paths = sluice_sender::keyfile::write_key_pair(key, &keys.join("bench-image"), false)?;
    let public = trust.join("bench-image.pub");
    fs::copy(&paths.public, &public).with_context(|| format!("copying to {}", public.display()))?;
    Ok(trust)
}

/// A `kB` field of a /proc status file.
fn proc_status_kib(path: &Path, field: &str) -> anyhow::Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("{} has no {field}", path.display()))?;
    let number = value.trim().trim_end_matches("kB").trim();
    number
        .parse()
        .with_context(|| format!("{field} in {} is {value:?}", path.display()))
}

/// Resets this process's VmHWM, so it then shows the sender's peak alone.
fn reset_own_peak_rss() {
    // Writing 5 to clear_refs resets the peak resident set (Linux 4.0+).
    // If it fails the figure includes bundle generation, which is still small.
    if let Ok(mut file) = fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
    {
        let _ = file.write_all(b"5");
    }
}

/// Bytes free for an unprivileged user under `dir`, from `df`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let output = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let available = text.lines().nth(1)?.split_whitespace().nth(3)?;
    available.parse::<u64>().ok()?.checked_mul(1024)
}

fn read_sysctl(name: &str) -> Option<String> {
    let text = fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?;
    Some(text.trim().to_owned())
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn mbit_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 * 8.0 / seconds.max(1e-9) / 1e6
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("size {text:?} does not start with a whole number"))?;
        let shift = match unit
            .to_ascii_uppercase()
            .trim_end_matches("IB")
            .trim_end_matches('B')
        {
            "" => 0,
            "K" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => {
                return Err(format!(
                    "size {text:?} has unknown unit {unit:?}; use K, M, G or T"
                ));
            }
        };
        match number.checked_mul(1 << shift) {
            Some(bytes) if bytes > 0 => Ok(Self(bytes)),
            Some(_) => Err(format!("size {text:?} is zero")),
            None => Err(format!("size {text:?} is too large")),
        }
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
        for (shift, unit) in units {
            let scale = 1u64 << shift;
            if self.0 < scale {
                continue;
            }
            if self.0.is_multiple_of(scale) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
            return write!(f, "{:.2} {unit}", self.0 as f64 / scale as f64);
        }
        write!(f, "{} B", self.0)
    }
}
