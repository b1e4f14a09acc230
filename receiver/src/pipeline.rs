//! The receiver's work behind the socket: a writer thread that puts rebuilt
//! blocks into spool files, and a verifier thread that checks whole
//! payloads and files them.
//!
//! ```text
//!  net thread ──Job──▶ [bounded queue] ──▶ writer ──Finished──▶ verifier ──▶ quarantine/
//!   (socket)            Open/Write/         (pwrite)              (fsync,       rejected/
//!                       Finish/Discard                             blake3)
//! ```
//!
//! The net thread only hands work over, so a slow disk or a long hash
//! delays the queue, not the socket. Jobs of one transfer stay in order, so
//! a `Finish` reaches the verifier only after every block is written.

use std::collections::HashMap;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sluice_protocol::id::TransferId;
use sluice_protocol::reassembly::Checkpoint;
use sluice_protocol::trust::VerifiedManifest;
use tracing::{debug, error};

use crate::checkpoint::{self, Pending};
use crate::daemon::{DaemonStats, unix_now};
use crate::finalize::{Finished, Outcome, finalize};
use crate::record::{Rejection, TransferRecord};
use crate::status::{DaemonStatus, status_path};
use crate::store::{SpoolFile, Store, StoreError, write_json_replace};

/// Blocks queued for the writer at most; about 23 MiB with the default
/// 183 KiB blocks. A full queue makes the net thread wait.
const QUEUE_DEPTH: usize = 128;

/// Work for the writer, in the order the net thread decided it.
#[derive(Debug)]
pub enum Job {
    /// A transfer's envelope verified and its spool file exists; the
    /// checkpoint says which blocks the file already holds.
    Open {
        spool: SpoolFile,
        checkpoint: Box<Checkpoint>,
    },
    /// Payload bytes at an offset within the payload.
    Write {
        transfer: TransferId,
        offset: u64,
        data: Vec<u8>,
    },
    /// Every block is written: verify and file the bundle.
    Finish(Box<Finishing>),
    /// The transfer ended without a payload: delete its spool file.
    Discard { transfer: TransferId },
    /// Write down a rejection, off the receive path.
    Reject(Box<Rejection>),
    /// Rewrite the status file.
    Status(Box<DaemonStatus>),
}

/// What the verifier needs besides the spool file.
#[derive(Debug)]
pub struct Finishing {
    pub transfer: TransferId,
    pub verified: VerifiedManifest,
    pub record: TransferRecord,
}

/// The writer and verifier threads.
#[derive(Debug)]
pub struct Pipeline {
    jobs: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts both threads.
    pub fn start(store: Store, stats: Arc<Mutex<DaemonStats>>) -> std::io::Result<Self> {
        let (finished_tx, finished_rx) = mpsc::channel::<Finished>();
        let verifier_store = store.clone();
        let verifier = thread::Builder::new()
            .name("sluice-verify".into())
            .spawn(move || verify_loop(&verifier_store, &finished_rx, &stats))?;
        let (saves_tx, saves_rx) = mpsc::sync_channel::<Pending>(SAVE_QUEUE_DEPTH);
        let saver_store = store.clone();
        let saver = thread::Builder::new()
            .name("sluice-checkpoint".into())
            .spawn(move || save_loop(&saver_store, &saves_rx))?;
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        let writer = thread::Builder::new()
            .name("sluice-write".into())
            .spawn(move || write_loop(&store, &jobs_rx, &finished_tx, &saves_tx))?;
        Ok(Self {
            jobs: Some(jobs_tx),
            threads: vec![writer, verifier, saver],
        })
    }

    /// Queues a job, waiting while the queue is full.
    pub fn submit(&self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            error!("the spool writer has stopped; dropping {job:?}");
        }
    }

    /// Lets queued work finish, then stops both threads.
    pub fn stop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often the writer records progress of spools written to since.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Checkpoints waiting for their fsync; more are skipped and retried, so
/// a slow disk never holds up the writer.
const SAVE_QUEUE_DEPTH: usize = 4;

/// An open spool file, what it holds, and the first write error it met.
struct Open {
    spool: SpoolFile,
    checkpoint: Checkpoint,
    dirty: bool,
    failure: Option<StoreError>,
}

fn write_loop(
    store: &Store,
    jobs: &Receiver<Job>,
    verifier: &Sender<Finished>,
    saver: &SyncSender<Pending>,
) {
    let mut open: HashMap<TransferId, Open> = HashMap::new();
    let mut last_checkpoint = Instant::now();
    loop {
        match jobs.recv_timeout(CHECKPOINT_EVERY) {
            Ok(job) => handle(store, &mut open, job, verifier, saver),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            for entry in open.values_mut() {
                queue_checkpoint(entry, saver, false);
            }
            last_checkpoint = Instant::now();
        }
    }
    // Stopping: what was spooled stays, with its checkpoint, for next time.
    for entry in open.values_mut() {
        queue_checkpoint(entry, saver, true);
    }
}

fn handle(
    store: &Store,
    open: &mut HashMap<TransferId, Open>,
    job: Job,
    verifier: &Sender<Finished>,
    saver: &SyncSender<Pending>,
) {
    match job {
        Job::Open { spool, checkpoint } => {
            // Checkpointed at once, so even a crash in the first second
            // leaves a spool the next run can take up.
            let mut entry = Open {
                spool,
                checkpoint: *checkpoint,
                dirty: true,
                failure: None,
            };
            queue_checkpoint(&mut entry, saver, false);
            open.insert(entry.checkpoint.transfer, entry);
        }
        Job::Write {
            transfer,
            offset,
            data,
        } => write(open, transfer, offset, &data),
        Job::Finish(finishing) => finish(store, open, *finishing, verifier),
        Job::Discard { transfer } => {
            if let Some(entry) = open.remove(&transfer) {
                entry.spool.discard();
            }
        }
        Job::Status(status) => {
            let path = status_path(store.root());
            if let Err(error) = write_json_replace(&path, &status) {
                debug!("cannot write the status file: {error}");
            }
        }
        Job::Reject(rejection) => {
            if let Err(error) = store.reject(&rejection, None) {
                error!(id = %rejection.id, "cannot record the rejection: {error}");
            }
        }
    }
}

/// Hands a snapshot of a dirty spool's progress to the checkpoint thread.
/// If that thread is busy the spool stays dirty and is tried next time,
/// unless `wait` (when stopping) says to wait for it.
fn queue_checkpoint(entry: &mut Open, saver: &SyncSender<Pending>, wait: bool) {
    if !entry.dirty || entry.failure.is_some() {
        return;
    }
    let pending = match Pending::of(&entry.spool, &entry.checkpoint) {
        Ok(pending) => pending,
        Err(error) => {
            error!(transfer = %entry.checkpoint.transfer, "cannot checkpoint: {error}");
            return;
        }
    };
    let queued = if wait {
        saver.send(pending).is_ok()
    } else {
        saver.try_send(pending).is_ok()
    };
    if queued {
        entry.dirty = false;
    }
}

/// Makes checkpoints durable, one at a time, off the writer's path.
fn save_loop(store: &Store, saves: &Receiver<Pending>) {
    for pending in saves {
        if let Err(error) = checkpoint::save(store, &pending) {
            error!(transfer = %pending.checkpoint.transfer, "cannot checkpoint: {error}");
        }
    }
}

fn write(open: &mut HashMap<TransferId, Open>, transfer: TransferId, offset: u64, data: &[u8]) {
    let Some(entry) = open.get_mut(&transfer) else {
        return;
    };
    if entry.failure.is_some() {
        return;
    }
    if let Err(failure) = entry.spool.write_payload(offset, data) {
        error!(%transfer, "spool write failed; the bundle will be rejected: {failure}");
        entry.failure = Some(failure);
        return;
    }
    let block_len = entry.checkpoint.fec.block_len().max(1);
    entry.checkpoint.done.insert(offset / block_len);
    entry.dirty = true;
}

fn finish(
    store: &Store,
    open: &mut HashMap<TransferId, Open>,
    finishing: Finishing,
    verifier: &Sender<Finished>,
) {
    let Finishing {
        transfer,
        verified,
        record,
    } = finishing;
    let Some(entry) = open.remove(&transfer) else {
        return;
    };
    checkpoint::remove(store, transfer);
    if let Some(failure) = entry.failure {
        entry.spool.discard();
        let reason = format!("could not write the spool: {failure}");
        let rejection = Rejection::signed(
            &verified,
            transfer.to_string(),
            "spool-io",
            reason,
            unix_now(),
        );
        if let Err(e) = store.reject(&rejection, None) {
            error!(%transfer, "cannot record the rejection: {e}");
        }
        return;
    }
    let job = Finished {
        verified,
        spool: entry.spool,
        transfer: record,
    };
    if let Err(mpsc::SendError(job)) = verifier.send(job) {
        error!(%transfer, "the verifier has stopped; discarding the bundle");
        job.spool.discard();
    }
}

fn verify_loop(store: &Store, finished: &Receiver<Finished>, stats: &Mutex<DaemonStats>) {
    for job in finished {
        let outcome = finalize(store, job);
        if let Ok(mut s) = stats.lock() {
            s.quarantined += u64::from(outcome == Outcome::Quarantined);
            s.rejected += u64::from(outcome == Outcome::Rejected);
        }
    }
}
