//! The receiving daemon: a thin driver around the reassembly core.
//!
//! ```text
//!  UDP socket ──▶ net thread ──────────────────────────────▶ finalize thread
//!                 │ Reassembler::handle_datagram                │ fsync, length + blake3
//!                 │ Envelope ─▶ TrustStore::verify ─▶ accept    │ of the payload
//!                 │ Block    ─▶ spool file (pwrite)             ▼
//!                 │ Complete ─────────────────────────────▶ quarantine/ or rejected/
//!                 └ Failed   ─▶ rejected/ (reason only)
//! ```
//!
//! The net thread never waits on a full-payload hash; it keeps draining the
//! socket while earlier bundles are verified.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sluice_hardware::socket::{SocketOptions, bind_receiver};
use sluice_protocol::blockmap::BlockMap;
use sluice_protocol::heartbeat::Heartbeat;
use sluice_protocol::id::{StreamId, TransferId};
use sluice_protocol::reassembly::{Checkpoint, Event, FailReason, Reassembler, TransferStats};
use sluice_protocol::trust::{TrustStore, VerifiedManifest};
use tracing::{debug, error, info, warn};

use crate::checkpoint;
use crate::config::ReceiverConfig;
use crate::gate::{RejectionGate, SUMMARY_EVERY};
use crate::health::{LinkHealth, News};
use crate::pipeline::{Finishing, Job, Pipeline};
use crate::record::{Rejection, TransferRecord};
use crate::status::DaemonStatus;
use crate::store::{SpoolFile, Store};
use crate::trust::load_trust_store;

/// How often the net thread wakes up without traffic to run timers and
/// check for a stop request.
const TICK: Duration = Duration::from_millis(100);
/// How often the status file is rewritten and heartbeats are checked.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Heartbeat silence after which a stream is reported down.
const HEARTBEAT_SILENCE: Duration = Duration::from_secs(10);

/// Counters the daemon keeps for status displays and the demo.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaemonStats {
    pub datagrams: u64,
    pub dropped: u64,
    pub quarantined: u64,
    pub rejected: u64,
    pub shards_rebuilt: u64,
    pub blocks_rebuilt: u64,
}

/// A daemon running on its own threads.
#[derive(Debug)]
pub struct DaemonHandle {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<DaemonStats>>,
    net: Option<thread::JoinHandle<()>>,
}

/// Starts the daemon on background threads. Configuration problems
/// (trust store, state directory, socket) are reported here, before any
/// thread starts.
pub fn spawn(config: &ReceiverConfig) -> anyhow::Result<DaemonHandle> {
    let trust = load_trust_store(&config.trust)?;
    let store = Store::open(&config.state_dir)
        .with_context(|| format!("opening state directory {}", config.state_dir.display()))?;
    let removed = store.clean_leftovers()?;
    if removed > 0 {
        warn!(
            removed,
            "discarded partial transfers left by an earlier run"
        );
    }
    let options = SocketOptions {
        recv_buffer: config.socket.recv_buffer,
        send_buffer: 0,
    };
    let (socket, buffers) = bind_receiver(config.listen, &options)
        .with_context(|| format!("binding UDP {}", config.listen))?;
    if let Some(advice) = buffers.advice() {
        warn!("{advice}");
    }
    socket
        .set_read_timeout(Some(TICK))
        .context("setting the socket read timeout")?;
    let local_addr = socket.local_addr().context("reading the bound address")?;
    info!(listen = %local_addr, keys = trust.keys().len(), state = %store.root().display(),
        "receiver listening");

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(DaemonStats::default()));
    let mut driver = Driver::new(config, trust, store, stats.clone());
    let flag = stop.clone();
    let net = thread::Builder::new()
        .name("sluice-net".into())
        .spawn(move || driver.run(&socket, &flag))
        .context("starting the receive thread")?;
    Ok(DaemonHandle {
        local_addr,
        stop,
        stats,
        net: Some(net),
    })
}

impl DaemonHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> DaemonStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// True while the receive thread runs.
    pub fn is_running(&self) -> bool {
        self.net.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks the threads to stop and waits for bundles being verified.
    pub fn stop(mut self) -> DaemonStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(net) = self.net.take() {
            let _ = net.join();
        }
    }
}

impl Drop for DaemonHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A transfer whose envelope verified and whose payload is being spooled.
struct Spooling {
    verified: VerifiedManifest,
    stream: StreamId,
    started: Instant,
    parity: u16,
}

struct Driver {
    core: Reassembler,
    trust: TrustStore,
    store: Store,
    max_bundle_bytes: u64,
    spooling: HashMap<TransferId, Spooling>,
    pipeline: Option<Pipeline>,
    stats: Arc<Mutex<DaemonStats>>,
    next_timer: Option<Instant>,
    gate: RejectionGate,
    next_summary: Instant,
    health: LinkHealth,
    next_status: Instant,
    listen: SocketAddr,
}

impl Driver {
    fn new(
        config: &ReceiverConfig,
        trust: TrustStore,
        store: Store,
        stats: Arc<Mutex<DaemonStats>>,
    ) -> Self {
        Self {
            core: Reassembler::new(config.reassembly()),
            trust,
            store,
            max_bundle_bytes: config.limits.max_bundle_bytes,
            spooling: HashMap::new(),
            pipeline: None,
            stats,
            next_timer: None,
            gate: RejectionGate::new(Instant::now()),
            next_summary: Instant::now() + SUMMARY_EVERY,
            health: LinkHealth::default(),
            next_status: Instant::now(),
            listen: config.listen,
        }
    }

    fn run(&mut self, socket: &UdpSocket, stop: &AtomicBool) {
        match Pipeline::start(self.store.clone(), self.stats.clone()) {
            Ok(pipeline) => self.pipeline = Some(pipeline),
            Err(error) => {
                error!("cannot start the spool writer and verifier: {error}");
                return;
            }
        }
        self.resume_spooled();
        let mut buf = vec![0u8; 65_536];
        let mut errors = RateLimitedErrors::default();
        while !stop.load(Ordering::SeqCst) {
            match socket.recv(&mut buf) {
                Ok(len) => self.on_datagram(buf.get(..len).unwrap_or(&[])),
                Err(e) if is_timeout(&e) => {}
                Err(e) => errors.record(&e),
            }
            self.run_timers();
            self.drain_events();
        }
        // Transfers in flight keep their spool and checkpoint: the next run
        // takes them up again.
        if let Some(mut pipeline) = self.pipeline.take() {
            pipeline.stop();
        }
        info!("receiver stopped");
    }

    /// Takes up the transfers an earlier run left in the spool. Each one's
    /// envelope is verified again against today's trust store.
    fn resume_spooled(&mut self) {
        for found in checkpoint::load_all(&self.store) {
            let (transfer, stream) = (found.checkpoint.transfer, found.checkpoint.stream);
            let verified = match self.check_resumable(&found.checkpoint, &found.envelope) {
                Ok(verified) => verified,
                Err(reason) => {
                    warn!(%transfer, "discarding a spooled transfer: {reason}");
                    found.spool.discard();
                    continue;
                }
            };
            let (done, blocks) = (found.checkpoint.done.count(), found.checkpoint.done.len());
            info!(%transfer, done, blocks, "resuming a transfer from the spool");
            let checkpoint = Box::new(found.checkpoint.clone());
            self.submit(Job::Open {
                spool: found.spool,
                checkpoint,
            });
            let (started, parity) = (Instant::now(), found.checkpoint.fec.parity);
            let entry = Spooling {
                verified,
                stream,
                started,
                parity,
            };
            self.spooling.insert(transfer, entry);
            if let Err(error) = self.core.resume(started, found.checkpoint) {
                warn!(%transfer, "cannot resume: {error}");
                self.spooling.remove(&transfer);
                self.submit(Job::Discard { transfer });
            }
        }
    }

    fn check_resumable(
        &self,
        checkpoint: &Checkpoint,
        envelope: &[u8],
    ) -> Result<VerifiedManifest, String> {
        let verified = self
            .trust
            .verify_envelope(envelope, unix_now())
            .map_err(|e| format!("its envelope no longer verifies: {e}"))?;
        let manifest = &verified.manifest;
        if manifest.payload.length != checkpoint.payload_len {
            return Err("its checkpoint disagrees with its signed length".into());
        }
        if checkpoint.stream != manifest.kind.stream() {
            return Err("its checkpoint names the wrong stream".into());
        }
        if self.store.contains(&manifest.bundle_id) {
            return Err("the bundle is already in quarantine".into());
        }
        Ok(verified)
    }

    fn on_heartbeat(&mut self, beat: &Heartbeat) {
        let now = Instant::now();
        let received = self.core.stream_datagrams(beat.stream);
        let stream = beat.stream;
        let epoch = format!("{:016x}", beat.epoch);
        match self.health.on_heartbeat(beat, received, now) {
            News::NewSender => info!(%stream, %epoch, "heartbeat from a sender"),
            News::Restarted {
                previous_epoch,
                uptime,
            } => {
                let previous = format!("{previous_epoch:016x}");
                warn!(%stream, %epoch, %previous, "sender restarted; closing its earlier transfers");
                let restart = now.checked_sub(uptime).unwrap_or(now);
                self.core.abandon_before(stream, restart);
            }
            News::Gap { missed } => debug!(%stream, missed, "heartbeats missed"),
            News::Normal => {}
        }
    }

    fn check_heartbeats(&mut self, now: Instant) {
        for stream in self.health.newly_silent(now, HEARTBEAT_SILENCE) {
            let secs = HEARTBEAT_SILENCE.as_secs();
            warn!(%stream, "no heartbeat for {secs} s: the sender or the link is down");
        }
    }

    fn publish_status(&self, now: Instant) {
        let status = DaemonStatus {
            updated_at: unix_now(),
            listen: self.listen.to_string(),
            active_transfers: self.core.active(),
            counters: self.stats.lock().map(|s| s.clone()).unwrap_or_default(),
            streams: self.health.snapshot(now),
        };
        self.submit(Job::Status(Box::new(status)));
    }

    fn on_datagram(&mut self, bytes: &[u8]) {
        let result = self.core.handle_datagram(Instant::now(), bytes);
        self.with_stats(|s| {
            s.datagrams += 1;
            s.dropped += u64::from(result.is_err());
        });
        if let Err(reason) = result {
            debug!(%reason, "datagram dropped");
        }
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_summary {
            self.next_summary = now + SUMMARY_EVERY;
            let suppressed = self.gate.take_suppressed();
            if suppressed > 0 {
                warn!(
                    suppressed,
                    "unverified transfers rejected without a record (rate limit)"
                );
            }
        }
        if now >= self.next_status {
            self.next_status = now + STATUS_EVERY;
            self.check_heartbeats(now);
            self.publish_status(now);
        }
        if self.next_timer.is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
        }
        self.next_timer = self.core.poll_timeout();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Envelope {
                    transfer,
                    stream,
                    envelope,
                } => {
                    self.on_envelope(transfer, stream, &envelope);
                }
                Event::Block {
                    transfer,
                    offset,
                    data,
                } => self.on_block(transfer, offset, data),
                Event::Complete { transfer, stats } => self.on_complete(transfer, &stats),
                Event::Heartbeat(beat) => self.on_heartbeat(&beat),
                Event::Failed {
                    transfer,
                    reason,
                    stats,
                } => self.on_failed(transfer, &reason, &stats),
            }
        }
    }

    fn on_envelope(&mut self, transfer: TransferId, stream: StreamId, envelope: &[u8]) {
        let verified = match self.trust.verify_envelope(envelope, unix_now()) {
            Ok(verified) => verified,
            Err(error) => {
                self.core.refuse(transfer);
                let reason = format!("signature check failed: {error}");
                let id = transfer.to_string();
                self.reject(Rejection::unauthenticated(
                    id,
                    verify_code(&error),
                    reason,
                    unix_now(),
                ));
                return;
            }
        };
        if let Some((code, reason)) = self.refusal(&verified, stream, envelope.len()) {
            self.core.refuse(transfer);
            let at = unix_now();
            self.reject(Rejection::signed(
                &verified,
                transfer.to_string(),
                code,
                reason,
                at,
            ));
            return;
        }
        let manifest = &verified.manifest;
        let (bundle, length) = (manifest.bundle_id, manifest.payload.length);
        if self.store.contains(&bundle) || self.in_flight(&verified) {
            self.core.refuse(transfer);
            debug!(%transfer, %bundle, "bundle already received or in flight; ignoring this copy");
            return;
        }
        match self.store.create_spool(transfer, envelope) {
            Ok(spool) => {
                info!(%transfer, %bundle, kind = %manifest.kind, signer = %verified.signer,
                    subject = %manifest.subject.digest, bytes = length, "manifest verified, receiving");
                self.start_spooling(transfer, stream, verified, spool);
            }
            Err(error) => {
                self.core.refuse(transfer);
                error!(%transfer, %bundle, "cannot spool the bundle: {error}");
            }
        }
    }

    /// Why a verified envelope is still refused, if it is.
    fn refusal(
        &self,
        verified: &VerifiedManifest,
        stream: StreamId,
        received_len: usize,
    ) -> Option<(&'static str, String)> {
        if let Some(problem) = envelope_problem(verified, stream, received_len) {
            return Some(problem);
        }
        let length = verified.manifest.payload.length;
        (length > self.max_bundle_bytes).then(|| {
            let limit = self.max_bundle_bytes;
            let reason = format!("payload of {length} bytes is over max_bundle_bytes ({limit})");
            ("too-large", reason)
        })
    }

    /// True if another transfer is already bringing the same bundle: a
    /// replayed envelope must not claim a second spool and budget.
    fn in_flight(&self, verified: &VerifiedManifest) -> bool {
        let id = verified.manifest.bundle_id;
        self.spooling
            .values()
            .any(|s| s.verified.manifest.bundle_id == id)
    }

    fn start_spooling(
        &mut self,
        transfer: TransferId,
        stream: StreamId,
        verified: VerifiedManifest,
        spool: SpoolFile,
    ) {
        let length = verified.manifest.payload.length;
        let Some(fec) = self.core.fec_params(transfer) else {
            spool.discard();
            return;
        };
        let done = BlockMap::new(fec.block_count(length));
        let checkpoint = Checkpoint {
            transfer,
            stream,
            fec,
            payload_len: length,
            done,
        };
        self.submit(Job::Open {
            spool,
            checkpoint: Box::new(checkpoint),
        });
        let (started, parity) = (Instant::now(), fec.parity);
        let entry = Spooling {
            verified,
            stream,
            started,
            parity,
        };
        self.spooling.insert(transfer, entry);
        self.core.accept(transfer, length);
    }

    fn on_block(&mut self, transfer: TransferId, offset: u64, data: Vec<u8>) {
        if self.spooling.contains_key(&transfer) {
            self.submit(Job::Write {
                transfer,
                offset,
                data,
            });
        }
    }

    fn on_complete(&mut self, transfer: TransferId, stats: &TransferStats) {
        let Some(entry) = self.spooling.remove(&transfer) else {
            return;
        };
        self.with_stats(|s| {
            s.blocks_rebuilt += stats.blocks_rebuilt;
            s.shards_rebuilt += stats.shards_rebuilt;
        });
        warn_if_margin_low(transfer, stats, entry.parity);
        let seconds = entry.started.elapsed().as_secs_f64();
        let record = TransferRecord::new(transfer.to_string(), entry.stream.0, stats, seconds);
        let finishing = Finishing {
            transfer,
            verified: entry.verified,
            record,
        };
        self.submit(Job::Finish(Box::new(finishing)));
    }

    fn on_failed(&mut self, transfer: TransferId, reason: &FailReason, stats: &TransferStats) {
        let (code, at, text) = (fail_code(reason), unix_now(), reason.to_string());
        let id = transfer.to_string();
        let rejection = match self.spooling.remove(&transfer) {
            Some(entry) => {
                self.submit(Job::Discard { transfer });
                Rejection::signed(&entry.verified, id, code, text, at)
            }
            // An evicted stranger is not worth a record: it cost nothing.
            None if matches!(reason, FailReason::Evicted) => {
                debug!(%transfer, datagrams = stats.datagrams, "unverified transfer evicted");
                return;
            }
            None => Rejection::unauthenticated(id, code, text, at),
        };
        self.reject(rejection);
    }

    /// Counts a rejection, and records and logs it if the gate lets it
    /// through; traffic no trusted key signed cannot make the receiver
    /// write or log without bound.
    fn reject(&mut self, rejection: Rejection) {
        self.with_stats(|s| s.rejected += 1);
        let (id, code, reason) = (&rejection.id, &rejection.code, &rejection.reason);
        if !self.gate.admit(&rejection, Instant::now()) {
            debug!(%id, code, "rejected (not recorded): {reason}");
            return;
        }
        match &rejection.signer {
            Some(signer) => error!(%id, code, %signer, "bundle rejected: {reason}"),
            None => warn!(%id, code, "unverified transfer rejected: {reason}"),
        }
        self.submit(Job::Reject(Box::new(rejection)));
    }

    fn submit(&self, job: Job) {
        if let Some(pipeline) = &self.pipeline {
            pipeline.submit(job);
        }
    }

    fn with_stats(&self, update: impl FnOnce(&mut DaemonStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(&mut stats);
        }
    }
}

/// Logs socket errors at most once a second, with the count suppressed.
#[derive(Default)]
struct RateLimitedErrors {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedErrors {
    fn record(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        warn!(suppressed = self.suppressed, "receive error: {error}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A verified envelope that still cannot be accepted: bytes trailing the
/// signature, or a bundle on the other kind's stream.
fn envelope_problem(
    verified: &VerifiedManifest,
    stream: StreamId,
    received_len: usize,
) -> Option<(&'static str, String)> {
    if verified.envelope_len != received_len {
        let reason = format!(
            "announced envelope is {received_len} bytes but the signed one is {}",
            verified.envelope_len
        );
        return Some(("malformed-envelope", reason));
    }
    let kind = verified.manifest.kind;
    if stream != kind.stream() {
        let reason = format!(
            "{kind} bundle arrived on stream {stream}, not {}",
            kind.stream()
        );
        return Some(("wrong-stream", reason));
    }
    None
}

/// Warns when a block needed most of its parity: a little more loss and
/// it would have been lost.
fn warn_if_margin_low(transfer: TransferId, stats: &TransferStats, parity: u16) {
    let used = stats.max_parity_used;
    if u32::from(used) * 4 > u32::from(parity) * 3 {
        warn!(%transfer, used, parity, "repair margin low: a block needed {used} of its {parity} \
            parity shards; raise --parity-shards or lower the rate");
    }
}

fn verify_code(error: &sluice_protocol::trust::VerifyError) -> &'static str {
    use sluice_protocol::trust::VerifyError as E;
    match error {
        E::Malformed(_) => "malformed-envelope",
        E::NoTrustedKeyVerifies => "bad-signature",
        E::ManifestDecode(_) => "malformed-manifest",
        E::SignerMismatch { .. } => "signer-mismatch",
        E::WrongRole { .. } => "wrong-role",
        E::UnsupportedVersion { .. } => "unsupported-version",
        E::Limits(_) => "manifest-limits",
    }
}

fn fail_code(reason: &FailReason) -> &'static str {
    match reason {
        FailReason::Incomplete { .. } => "unrecoverable",
        FailReason::LengthMismatch { .. } => "length-mismatch",
        FailReason::TooManyBlocks { .. } => "too-large",
        FailReason::Evicted => "evicted",
        FailReason::Abandoned => "abandoned",
    }
}

/// Seconds since the Unix epoch by the receiver's clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
