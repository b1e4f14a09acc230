//! Checkpoints of spooled transfers, so a restarted receiver takes a
//! transfer up where it stopped instead of starting from zero.
//!
//! ```text
//!  spool/<transfer>.part    envelope + payload blocks at their offsets
//!  spool/<transfer>.state   parameters and the map of blocks in .part
//! ```
//!
//! The `.state` file is replaced by rename, so it is always whole; it lists
//! blocks written before the snapshot was taken. A block written after the
//! last checkpoint is simply received again from the sender's next pass,
//! and every resumed payload is checked against its signed length and
//! blake3 before it reaches quarantine.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_protocol::blockmap::BlockMap;
use sluice_protocol::bundle::{ENVELOPE_HEADER_LEN, envelope_len};
use sluice_protocol::frame::{FecParams, check_fec_params};
use sluice_protocol::id::{StreamId, TransferId};
use sluice_protocol::reassembly::Checkpoint;

use crate::store::{SpoolFile, Store, StoreError, write_json_replace};

/// The `.state` file beside a spool file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub transfer: String,
    pub stream: u16,
    pub data_shards: u16,
    pub parity_shards: u16,
    pub shard_len: u16,
    pub payload_len: u64,
    /// Delivered blocks, 64 to a word, lowest block in the lowest bit.
    pub done: Vec<u64>,
}

/// A spool file found at start-up with a usable checkpoint.
#[derive(Debug)]
pub struct Resumable {
    pub checkpoint: Checkpoint,
    pub spool: SpoolFile,
    pub envelope: Vec<u8>,
}

impl StateFile {
    pub fn new(checkpoint: &Checkpoint) -> Self {
        Self {
            transfer: checkpoint.transfer.to_string(),
            stream: checkpoint.stream.0,
            data_shards: checkpoint.fec.data,
            parity_shards: checkpoint.fec.parity,
            shard_len: checkpoint.fec.shard_len,
            payload_len: checkpoint.payload_len,
            done: checkpoint.done.words().to_vec(),
        }
    }

    /// The checkpoint this file describes, if it is consistent.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let transfer = TransferId(u64::from_str_radix(&self.transfer, 16).ok()?);
        let fec = FecParams {
            data: self.data_shards,
            parity: self.parity_shards,
            shard_len: self.shard_len,
        };
        let fec = check_fec_params(fec).ok()?;
        let done = BlockMap::from_words(fec.block_count(self.payload_len), self.done.clone())?;
        let (stream, payload_len) = (StreamId(self.stream), self.payload_len);
        Some(Checkpoint {
            transfer,
            stream,
            fec,
            payload_len,
            done,
        })
    }
}

/// Path of the checkpoint of `transfer`.
pub fn state_path(store: &Store, transfer: TransferId) -> PathBuf {
    store.root().join("spool").join(format!("{transfer}.state"))
}

/// A spool file's progress to make durable: a second handle on the file
/// and the blocks written through the first before the snapshot was taken.
#[derive(Debug)]
pub struct Pending {
    pub file: File,
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
}

impl Pending {
    /// Snapshots a spool's progress.
    pub fn of(spool: &SpoolFile, checkpoint: &Checkpoint) -> std::io::Result<Self> {
        let file = spool.file().try_clone()?;
        let (path, checkpoint) = (spool.path().to_owned(), checkpoint.clone());
        Ok(Self {
            file,
            path,
            checkpoint,
        })
    }
}

/// Records the blocks a spool holds.
// Limitation: checkpoints are not fsynced, because forcing a multi-gigabyte
// spool to disk every few seconds stalls the writer and costs datagrams.
// After a power loss a checkpoint may claim blocks the disk lost; the
// resumed transfer then fails its final length and blake3 check and is
// rejected (the sender's next pass must start over), but a damaged bundle
// never reaches quarantine. A process crash loses nothing: the page cache
// survives it.
pub fn save(store: &Store, pending: &Pending) -> Result<(), StoreError> {
    let Pending { checkpoint, .. } = pending;
    write_json_replace(
        &state_path(store, checkpoint.transfer),
        &StateFile::new(checkpoint),
    )
}

/// Deletes a transfer's checkpoint, if any.
pub fn remove(store: &Store, transfer: TransferId) {
    let _ = fs::remove_file(state_path(store, transfer));
}

/// Every spool file with a consistent checkpoint. Spool files without one,
/// and checkpoints that do not parse, are removed.
pub fn load_all(store: &Store) -> Vec<Resumable> {
    let spool_dir = store.root().join("spool");
    let Ok(entries) = fs::read_dir(&spool_dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_some_and(|e| e == "part") {
            match load_one(&path) {
                Some(resumable) => found.push(resumable),
                None => discard_pair(&path),
            }
        }
    }
    remove_orphan_states(&spool_dir);
    found
}

fn load_one(part: &Path) -> Option<Resumable> {
    let text = fs::read(part.with_extension("state")).ok()?;
    let state: StateFile = serde_json::from_slice(&text).ok()?;
    let checkpoint = state.checkpoint()?;
    let name = part.file_stem()?.to_str()?;
    if name != checkpoint.transfer.to_string() {
        return None;
    }
    let file = OpenOptions::new().read(true).write(true).open(part).ok()?;
    let envelope = read_envelope(&file)?;
    let spool = SpoolFile::reopen(file, part.to_owned(), envelope.len() as u64);
    Some(Resumable {
        checkpoint,
        spool,
        envelope,
    })
}

fn read_envelope(file: &File) -> Option<Vec<u8>> {
    let mut header = [0u8; ENVELOPE_HEADER_LEN];
    file.read_exact_at(&mut header, 0).ok()?;
    let len = envelope_len(&header).ok()?;
    let mut envelope = vec![0u8; len];
    file.read_exact_at(&mut envelope, 0).ok()?;
    Some(envelope)
}

fn discard_pair(part: &Path) {
    let _ = fs::remove_file(part);
    let _ = fs::remove_file(part.with_extension("state"));
}

fn remove_orphan_states(spool_dir: &Path) {
    let Ok(entries) = fs::read_dir(spool_dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let is_state = path.extension().is_some_and(|e| e == "state" || e == "tmp");
        if is_state && !path.with_extension("part").exists() {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        let fec = FecParams {
            data: 4,
            parity: 2,
            shard_len: 8,
        };
        let mut done = BlockMap::new(fec.block_count(100));
        done.insert(1);
        let (transfer, stream) = (TransferId(0xabc), StreamId(1));
        Checkpoint {
            transfer,
            stream,
            fec,
            payload_len: 100,
            done,
        }
    }

    #[test]
    fn state_files_round_trip() {
        let state = StateFile::new(&checkpoint());
        assert_eq!(state.checkpoint(), Some(checkpoint()));
    }

    #[test]
    fn inconsistent_state_files_are_refused() {
        let mut state = StateFile::new(&checkpoint());
        state.done.push(0);
        assert_eq!(state.checkpoint(), None);
        let mut state = StateFile::new(&checkpoint());
        state.shard_len = 7;
        assert_eq!(state.checkpoint(), None);
    }

    #[test]
    fn spool_files_without_a_checkpoint_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let envelope = b"SLUICEB\x01\x00\x00\x00\x01xsignature";
        let spool = store.create_spool(TransferId(7), envelope).unwrap();
        drop(spool);
        assert!(load_all(&store).is_empty());
        assert_eq!(fs::read_dir(dir.path().join("spool")).unwrap().count(), 0);
    }
}
