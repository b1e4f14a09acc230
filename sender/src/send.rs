//! Sending bundles: read a bundle file, feed it to the transmit core, and
//! put each datagram on the link at the configured rate.
//!
//! ```text
//!  bundle file ──▶ envelope + payload windows ──▶ Transmission ──▶ Pacer ──▶ UdpLink
//! ```
//!
//! Image bundles and report bundles travel on separate streams (ids 1 and
//! 2), so the receiver never mixes their state.

use sluice_hardware::outln;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_hardware::link::{Link, UdpLink};
use sluice_hardware::pace::Pacer;
use sluice_hardware::rate::Rate;
use sluice_hardware::socket::{SocketOptions, connect_sender};
use sluice_protocol::bundle::{ENVELOPE_HEADER_LEN, Envelope, envelope_len};
use sluice_protocol::frame::{FecParams, HEADER_LEN};
use sluice_protocol::heartbeat::{Counters, Heartbeat};
use sluice_protocol::id::{BundleId, StreamId, TransferId};
use sluice_protocol::manifest::{BundleKind, Manifest};
use sluice_protocol::transmit::{Transmission, TransmitConfig};
use tracing::{info, warn};

/// Default UDP port of the receiver.
pub const DEFAULT_PORT: u16 = 7400;
/// The rate `--rate` defaults to.
pub const DEFAULT_RATE: Rate = match Rate::from_bits_per_second(500_000_000) {
    Some(rate) => rate,
    None => unreachable!(),
};

/// `sluice-send send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Where to send: the diode's input, as HOST or HOST:PORT (port 7400 by default).
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub link: LinkArgs,
    /// Bundle files to send, in order.
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
}

/// How datagrams are shaped and paced; shared by `send` and the daemon.
#[derive(Clone, Debug, clap::Args, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkArgs {
    /// Link rate to pace to, in bits per second (e.g. 100M, 800M, 1G).
    #[arg(long, default_value = "500M")]
    #[serde(with = "rate_text")]
    pub rate: Rate,
    /// Path MTU; every datagram fills it exactly.
    #[arg(long, default_value_t = 1500)]
    pub mtu: usize,
    /// Data shards per FEC block.
    #[arg(long, default_value_t = 128)]
    pub data_shards: u16,
    /// Parity shards per FEC block; a block survives losing this many.
    #[arg(long, default_value_t = 32)]
    pub parity_shards: u16,
    /// Blocks interleaved with each other, so a burst of loss is spread thin.
    #[arg(long, default_value_t = 16)]
    pub interleave: u32,
    /// Copies of the signed envelope sent before and after the payload.
    #[arg(long, default_value_t = 3)]
    pub announce_passes: u32,
    /// Send each bundle this many times over (a carousel); the receiver
    /// combines what each pass delivers, so a block lost in one pass is
    /// healed by the next.
    #[arg(long, default_value_t = 1)]
    pub passes: u32,
    /// Keep repeating each bundle until this much time has passed (e.g.
    /// 90s, 10m), with at least `--passes` passes.
    #[arg(long)]
    #[serde(default, with = "window_text")]
    pub window: Option<Window>,
}

/// How long a carousel keeps repeating one bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window(pub Duration);

impl std::str::FromStr for Window {
    type Err = humantime::DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text).map(Window)
    }
}

/// What one bundle's sending did.
#[derive(Clone, Debug)]
pub struct SendReport {
    pub path: PathBuf,
    pub bundle_id: BundleId,
    pub kind: BundleKind,
    pub transfer: TransferId,
    pub payload_len: u64,
    pub bundle_len: u64,
    pub datagrams: u64,
    pub wire_bytes: u64,
    pub elapsed: Duration,
    /// Passes of the carousel made.
    pub passes: u32,
}

/// A paced, one-way connection to the receiver.
#[derive(Debug)]
pub struct Sender {
    link: UdpLink,
    pacer: Pacer,
    settings: LinkArgs,
    fec: FecParams,
    pulse: Pulse,
}

/// How often a heartbeat goes out on a stream that is in use.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// This run's heartbeat state: its boot epoch and per-stream counters.
#[derive(Debug)]
struct Pulse {
    epoch: u64,
    started: Instant,
    sequence: u32,
    last: HashMap<StreamId, Instant>,
    counters: HashMap<StreamId, Counters>,
}

/// `sluice-send send`: sends each bundle in turn, with progress.
pub fn run(args: &SendArgs) -> anyhow::Result<()> {
    let to = resolve(&args.to)?;
    let mut sender = Sender::connect(to, &args.link)?;
    for path in &args.bundles {
        let report = sender.send(path, true)?;
        print_report(&report);
    }
    Ok(())
}

impl Sender {
    /// Opens the socket towards `to` and checks the link settings.
    pub fn connect(to: SocketAddr, settings: &LinkArgs) -> anyhow::Result<Self> {
        let fec = settings.fec_params(to.is_ipv6())?;
        let (socket, buffers) = connect_sender(to, None, &SocketOptions::default())
            .with_context(|| format!("opening a UDP socket towards {to}"))?;
        if let Some(advice) = buffers.advice() {
            warn!("{advice}");
        }
        let burst = 64 * settings.mtu;
        Ok(Self {
            link: UdpLink::new(socket),
            pacer: Pacer::new(settings.rate, burst),
            settings: settings.clone(),
            fec,
            pulse: Pulse::new(random_u64()?),
        })
    }

    /// Sends a heartbeat on `stream` if one is due; the daemon calls this
    /// while idle so the receiver can tell a quiet link from a dead sender.
    pub fn heartbeat_if_due(&mut self, stream: StreamId) -> anyhow::Result<()> {
        if self
            .pulse
            .last
            .get(&stream)
            .is_some_and(|at| at.elapsed() < HEARTBEAT_EVERY)
        {
            return Ok(());
        }
        let mut datagram = vec![0u8; HEADER_LEN + usize::from(self.fec.shard_len)];
        let len = self.pulse.beat(stream, self.fec, &mut datagram);
        self.put_on_wire(stream, datagram.get(..len).unwrap_or_default())
    }

    /// Paces and sends one datagram, counting it for the heartbeats.
    fn put_on_wire(&mut self, stream: StreamId, datagram: &[u8]) -> anyhow::Result<()> {
        self.pacer.pace_blocking(datagram.len());
        self.link.send(datagram).context("sending a datagram")?;
        let counters = self.pulse.counters.entry(stream).or_default();
        counters.datagrams += 1;
        counters.bytes += datagram.len() as u64;
        Ok(())
    }

    /// Sends one bundle file; `progress` shows a bar on a terminal.
    pub fn send(&mut self, path: &Path, progress: bool) -> anyhow::Result<SendReport> {
        let mut bundle = BundleFile::open(path)?;
        let config = self.transmit_config(bundle.manifest.kind.stream());
        let transfer = TransferId(random_u64()?);
        let payload_len = bundle.manifest.payload.length;
        info!(bundle = %bundle.manifest.bundle_id, %transfer, kind = %bundle.manifest.kind,
            bytes = payload_len, "sending");

        let started = Instant::now();
        let deadline = self.settings.window.map(|w| started + w.0);
        let (mut passes, mut datagrams, mut wire_bytes) = (0u32, 0u64, 0u64);
        loop {
            let mut tx = Transmission::new(config, transfer, bundle.envelope.clone(), payload_len)?;
            let bar = progress_bar(progress, tx.total_datagrams());
            wire_bytes += self.pump(&mut tx, &mut bundle, &bar)?;
            bar.finish_and_clear();
            datagrams += tx.sent();
            passes += 1;
            let more_passes = passes < self.settings.passes.max(1);
            let window_open = deadline.is_some_and(|end| Instant::now() < end);
            if !(more_passes || window_open) {
                break;
            }
            info!(%transfer, pass = passes + 1, "repeating");
        }
        Ok(SendReport {
            path: path.to_owned(),
            bundle_id: bundle.manifest.bundle_id,
            kind: bundle.manifest.kind,
            transfer,
            payload_len,
            bundle_len: bundle.envelope.len() as u64 + payload_len,
            datagrams,
            wire_bytes,
            elapsed: started.elapsed(),
            passes,
        })
    }

    fn transmit_config(&self, stream: StreamId) -> TransmitConfig {
        TransmitConfig {
            stream,
            fec: self.fec,
            interleave: self.settings.interleave.max(1),
            announce_every: 256,
            announce_passes: self.settings.announce_passes.max(1),
        }
    }

    /// Drives the transmission to its end; returns the bytes put on the wire.
    fn pump(
        &mut self,
        tx: &mut Transmission,
        bundle: &mut BundleFile,
        bar: &ProgressBar,
    ) -> anyhow::Result<u64> {
        let mut datagram = vec![0u8; HEADER_LEN + usize::from(self.fec.shard_len)];
        let mut window = Vec::new();
        let mut wire = 0u64;
        let stream = bundle.manifest.kind.stream();
        self.pulse.start_transfer(stream, tx.transfer());
        while !tx.is_done() {
            self.heartbeat_if_due(stream)?;
            if let Some(range) = tx.wants_payload() {
                bundle.read_payload(range.start, range.end - range.start, &mut window)?;
                tx.push_payload(&window)?;
            }
            let Some(len) = tx.next_datagram(&mut datagram) else {
                continue;
            };
            self.put_on_wire(stream, datagram.get(..len).unwrap_or_default())?;
            wire += len as u64;
            if tx.sent().is_multiple_of(1024) {
                bar.set_position(tx.sent());
            }
        }
        self.pulse.end_transfer(stream);
        Ok(wire)
    }
}

impl Pulse {
    fn new(epoch: u64) -> Self {
        let started = Instant::now();
        Self {
            epoch,
            started,
            sequence: 0,
            last: HashMap::new(),
            counters: HashMap::new(),
        }
    }

    /// Writes the next heartbeat for `stream` into `out`.
    fn beat(&mut self, stream: StreamId, fec: FecParams, out: &mut [u8]) -> usize {
        let uptime_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let counters = self.counters.get(&stream).copied().unwrap_or_default();
        let beat = Heartbeat {
            stream,
            epoch: self.epoch,
            sequence: self.sequence,
            uptime_ms,
            counters,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.last.insert(stream, Instant::now());
        beat.emit(fec, out)
    }

    fn start_transfer(&mut self, stream: StreamId, transfer: TransferId) {
        let counters = self.counters.entry(stream).or_default();
        counters.transfers += 1;
        counters.current_transfer = transfer.0;
        // The first heartbeat of a transfer goes out before its first datagram.
        self.last.remove(&stream);
    }

    fn end_transfer(&mut self, stream: StreamId) {
        self.counters.entry(stream).or_default().current_transfer = 0;
    }
}

impl LinkArgs {
    /// The FEC parameters these settings give, checked.
    pub fn fec_params(&self, ipv6: bool) -> anyhow::Result<FecParams> {
        let shard_len = TransmitConfig::shard_len_for_mtu(self.mtu, ipv6)?;
        check_receiver_limits(self.mtu, shard_len, self.data_shards, self.parity_shards)?;
        let fec = FecParams {
            data: self.data_shards,
            parity: self.parity_shards,
            shard_len,
        };
        sluice_protocol::frame::check_fec_params(fec).map_err(|_| {
            anyhow::anyhow!(
                "{} data and {} parity shards per block is not a combination the Reed-Solomon \
                 codec supports (need at least 1 of each; 128 and 32 are the defaults)",
                self.data_shards,
                self.parity_shards
            )
        })
    }
}

impl Default for LinkArgs {
    fn default() -> Self {
        Self {
            rate: DEFAULT_RATE,
            mtu: 1500,
            data_shards: 128,
            parity_shards: 32,
            interleave: 16,
            announce_passes: 3,
            passes: 1,
            window: None,
        }
    }
}

/// Refuses settings every Sluice receiver would drop, before the link is used.
fn check_receiver_limits(mtu: usize, shard_len: u16, data: u16, parity: u16) -> anyhow::Result<()> {
    use sluice_protocol::frame::{MAX_BLOCK_LEN, MAX_SHARD_LEN, MAX_SHARDS_PER_BLOCK};
    anyhow::ensure!(
        shard_len <= MAX_SHARD_LEN,
        "--mtu {mtu} is larger than a receiver accepts; use at most 9000 (a jumbo frame)"
    );
    let shards = u32::from(data) + u32::from(parity);
    anyhow::ensure!(
        shards <= u32::from(MAX_SHARDS_PER_BLOCK),
        "{data} data + {parity} parity shards is more than the {MAX_SHARDS_PER_BLOCK} per block \
         a receiver accepts"
    );
    let block = u64::from(data) * u64::from(shard_len);
    anyhow::ensure!(
        block <= MAX_BLOCK_LEN,
        "a block of {data} shards of {shard_len} bytes is {block} bytes, more than the \
         {MAX_BLOCK_LEN} a receiver accepts; use fewer data shards"
    );
    Ok(())
}

/// An open bundle file: its envelope read and its manifest decoded.
struct BundleFile {
    file: File,
    path: PathBuf,
    envelope: Vec<u8>,
    manifest: Manifest,
}

impl BundleFile {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file =
            File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
        let envelope = read_envelope(&mut file)
            .with_context(|| format!("{} is not a Sluice bundle", path.display()))?;
        let parsed = Envelope::parse(&envelope)?;
        let manifest = Manifest::from_cbor(parsed.manifest_bytes())
            .with_context(|| format!("{}: manifest does not decode", path.display()))?;
        let actual = file.metadata()?.len();
        let expected = envelope.len() as u64 + manifest.payload.length;
        anyhow::ensure!(
            actual == expected,
            "{} is {actual} bytes but its manifest says {expected}; the bundle is truncated or \
             has trailing bytes, pack it again",
            path.display()
        );
        check_payload_hash(&mut file, envelope.len() as u64, &manifest.payload.blake3)
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            envelope,
            manifest,
        })
    }

    fn read_payload(&mut self, offset: u64, len: u64, out: &mut Vec<u8>) -> anyhow::Result<()> {
        let start = self.envelope.len() as u64 + offset;
        out.resize(usize::try_from(len)?, 0);
        self.file.seek(SeekFrom::Start(start))?;
        self.file
            .read_exact(out)
            .with_context(|| format!("reading {} at byte {start}", self.path.display()))
    }
}

/// Refuses a bundle whose payload no longer matches its signed hash, before
/// a single datagram of it uses the link.
fn check_payload_hash(file: &mut File, start: u64, expected: &[u8; 32]) -> anyhow::Result<()> {
    file.seek(SeekFrom::Start(start))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(file, &mut hasher)?;
    anyhow::ensure!(
        hasher.finalize().as_bytes() == expected,
        "the payload does not match the hash its manifest signs; the bundle was damaged after \
         packing, pack it again"
    );
    Ok(())
}

fn read_envelope(file: &mut File) -> anyhow::Result<Vec<u8>> {
    let mut envelope = vec![0u8; ENVELOPE_HEADER_LEN];
    file.read_exact(&mut envelope)?;
    let len = envelope_len(&envelope)?;
    envelope.resize(len, 0);
    file.read_exact(envelope.get_mut(ENVELOPE_HEADER_LEN..).unwrap_or_default())?;
    Ok(envelope)
}

/// Parses HOST or HOST:PORT, defaulting the port.
pub fn resolve(text: &str) -> anyhow::Result<SocketAddr> {
    let with_port = if text.parse::<SocketAddr>().is_ok() || has_port(text) {
        text.to_owned()
    } else {
        format!("{text}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {text}"))?
        .next()
        .with_context(|| format!("{text} resolves to no address"))
}

fn has_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.contains(':') && port.parse::<u16>().is_ok(),
        None => false,
    }
}

fn random_u64() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} datagrams, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn print_report(report: &SendReport) {
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    let mbit = report.wire_bytes as f64 * 8.0 / seconds / 1e6;
    let passes = match report.passes {
        1 => String::new(),
        n => format!(" in {n} passes"),
    };
    outln!(
        "sent {} bundle {} ({} bytes) as transfer {}{passes}: {} datagrams, {:.2} s, {:.1} Mbit/s on the wire",
        report.kind,
        report.bundle_id,
        report.bundle_len,
        report.transfer,
        report.datagrams,
        seconds,
        mbit
    );
}

mod window_text {
    use serde::Deserialize as _;

    use super::Window;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Window>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod rate_text {
    use serde::Deserialize as _;
    use sluice_hardware::rate::Rate;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_defaults_the_port() {
        assert_eq!(resolve("127.0.0.1").unwrap().port(), DEFAULT_PORT);
        assert_eq!(resolve("127.0.0.1:9").unwrap().port(), 9);
        assert_eq!(resolve("[::1]:9").unwrap().port(), 9);
    }

    #[test]
    fn default_link_fills_an_ethernet_frame() {
        let fec = LinkArgs::default().fec_params(false).unwrap();
        assert_eq!(fec.shard_len, 1428);
        assert_eq!((fec.data, fec.parity), (128, 32));
    }

    #[test]
    fn settings_a_receiver_would_drop_are_refused() {
        let jumbo = LinkArgs {
            mtu: 9000,
            ..LinkArgs::default()
        };
        assert!(jumbo.fec_params(false).is_ok());
        let too_big = LinkArgs {
            mtu: 9100,
            ..LinkArgs::default()
        };
        assert!(
            too_big
                .fec_params(false)
                .unwrap_err()
                .to_string()
                .contains("--mtu 9100")
        );
        let many = LinkArgs {
            data_shards: 1000,
            parity_shards: 200,
            ..LinkArgs::default()
        };
        assert!(
            many.fec_params(false)
                .unwrap_err()
                .to_string()
                .contains("1024")
        );
    }

    #[test]
    fn unsupported_fec_is_refused() {
        let args = LinkArgs {
            parity_shards: 0,
            ..LinkArgs::default()
        };
        assert!(args.fec_params(false).is_err());
    }
}
