//! The receiver's state directory: the spool for bundles in flight, the
//! quarantine for verified bundles, and the record of rejections.
//!
//! ```text
//!  state/
//!  ├── spool/<transfer>.part            envelope + payload, written as blocks decode
//!  ├── quarantine/<bundle-id>/
//!  │   ├── bundle.sluice                 byte-identical to what the sender packed
//!  │   └── record.json                   who signed it, what it covers, how it came
//!  └── rejected/<time>-<id>/
//!      ├── record.json                   the reason, and what was known
//!      └── bundle.sluice                 only for bundles whose signature verified
//! ```
//!
//! Every file that matters is written to a temporary name, fsynced, and
//! renamed into place, and the directory is fsynced after; a crash leaves
//! either the old state or the new one, never half a bundle in quarantine.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_protocol::id::{BundleId, TransferId};

use crate::record::{Record, Rejection};

/// Rejection records kept for transfers whose signature never verified;
/// older ones are pruned so unauthenticated traffic cannot fill the disk.
pub const MAX_UNAUTHENTICATED_REJECTIONS: usize = 1000;

/// Failures of the state directory, each naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} holds an unreadable record: {reason}")]
    BadRecord { path: PathBuf, reason: String },
    #[error("no bundle {id} in quarantine")]
    NotFound { id: String },
}

/// Where a bundle ended up in quarantine.
#[derive(Debug, PartialEq, Eq)]
pub enum Filed {
    /// Moved in now.
    New(PathBuf),
    /// An earlier copy was already there; this one was discarded.
    AlreadyThere(PathBuf),
}

impl Filed {
    pub fn path(&self) -> &Path {
        match self {
            Self::New(path) | Self::AlreadyThere(path) => path,
        }
    }
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    unauthenticated_cap: usize,
}

/// A bundle being received: the envelope is written, payload blocks land
/// at their offsets as they are rebuilt.
#[derive(Debug)]
pub struct SpoolFile {
    file: File,
    path: PathBuf,
    envelope_len: u64,
}

impl Store {
    /// Opens (creating if needed) a state directory.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in ["spool", "quarantine", "rejected"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        }
        Ok(Self {
            root: root.to_owned(),
            unauthenticated_cap: MAX_UNAUTHENTICATED_REJECTIONS,
        })
    }

    /// Changes how many unauthenticated rejection records are kept.
    pub fn with_unauthenticated_cap(mut self, cap: usize) -> Self {
        self.unauthenticated_cap = cap;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Removes unfinished quarantine entries a crash may have left.
    /// Spool files are the checkpoint module's: they may be resumed.
    /// Returns how many were removed.
    pub fn clean_leftovers(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let staging = [self.quarantine_dir(), self.root.join("rejected")];
        for entry in staging
            .iter()
            .map(|dir| read_dir(dir))
            .collect::<Result<Vec<_>, _>>()?
            .concat()
        {
            if is_temporary(&entry) {
                fs::remove_dir_all(&entry).map_err(io_err("remove", &entry))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Starts the spool file of a transfer whose envelope verified.
    pub fn create_spool(
        &self,
        transfer: TransferId,
        envelope: &[u8],
    ) -> Result<SpoolFile, StoreError> {
        let path = self.root.join("spool").join(format!("{transfer}.part"));
        // Owner-only, like the bundles the sender writes: a spool holds
        // bytes no administrator has released yet.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("create", &path))?;
        file.write_all_at(envelope, 0)
            .map_err(io_err("write", &path))?;
        Ok(SpoolFile {
            file,
            path,
            envelope_len: envelope.len() as u64,
        })
    }

    /// True if a bundle with this id is already in quarantine.
    pub fn contains(&self, id: &BundleId) -> bool {
        self.quarantine_dir().join(id.to_string()).is_dir()
    }

    /// Moves a verified bundle into quarantine with its record. A bundle
    /// already there (a second copy that raced the first) is left as it is
    /// and the copy discarded.
    pub fn quarantine(&self, spool: SpoolFile, record: &Record) -> Result<Filed, StoreError> {
        let id = record.bundle_id.clone();
        let staging = self.quarantine_dir().join(format!(".tmp-{id}"));
        let target = self.quarantine_dir().join(&id);
        if target.exists() {
            spool.discard();
            return Ok(Filed::AlreadyThere(target));
        }
        let result = self.commit_dir(&staging, &target, Some(spool), record);
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result.map(|()| Filed::New(target))
    }

    /// Records a rejection; keeps the bytes only if their signer was trusted.
    pub fn reject(
        &self,
        rejection: &Rejection,
        spool: Option<SpoolFile>,
    ) -> Result<PathBuf, StoreError> {
        let rejected = self.root.join("rejected");
        let authenticated = rejection.signer.is_some();
        let name = rejection_dir_name(rejection);
        let staging = rejected.join(format!(".tmp-{name}"));
        let target = rejected.join(&name);
        let spool = if authenticated { spool } else { discard(spool) };
        if let Err(error) = self.commit_dir(&staging, &target, spool, rejection) {
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
        if !authenticated {
            self.prune_unauthenticated()?;
        }
        Ok(target)
    }

    /// Every bundle in quarantine, oldest first.
    pub fn list(&self) -> Result<Vec<Record>, StoreError> {
        let mut records = self.read_records::<Record>(&self.quarantine_dir())?;
        records.sort_by(|a, b| (a.received_at, &a.bundle_id).cmp(&(b.received_at, &b.bundle_id)));
        Ok(records)
    }

    /// Every rejection on record, oldest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        let mut records = self.read_records::<Rejection>(&self.root.join("rejected"))?;
        records.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(records)
    }

    /// One quarantined bundle's record, by full id or unique prefix.
    pub fn get(&self, id: &str) -> Result<Record, StoreError> {
        let mut found = self
            .list()?
            .into_iter()
            .filter(|r| r.bundle_id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(record), None) if !id.is_empty() => Ok(record),
            _ => Err(StoreError::NotFound { id: id.to_owned() }),
        }
    }

    /// Path of a quarantined bundle file.
    pub fn bundle_path(&self, record: &Record) -> PathBuf {
        self.quarantine_dir()
            .join(&record.bundle_id)
            .join("bundle.sluice")
    }

    fn commit_dir<T: Serialize>(
        &self,
        staging: &Path,
        target: &Path,
        spool: Option<SpoolFile>,
        record: &T,
    ) -> Result<(), StoreError> {
        if staging.exists() {
            fs::remove_dir_all(staging).map_err(io_err("remove", staging))?;
        }
        fs::create_dir(staging).map_err(io_err("create", staging))?;
        if let Some(spool) = spool {
            let bundle = staging.join("bundle.sluice");
            spool.file.sync_all().map_err(io_err("sync", &spool.path))?;
            fs::rename(&spool.path, &bundle).map_err(io_err("move", &spool.path))?;
        }
        write_json_atomic(&staging.join("record.json"), record)?;
        sync_dir(staging)?;
        fs::rename(staging, target).map_err(io_err("rename", staging))?;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    }

    /// Keeps the newest unauthenticated rejections; their directory names
    /// sort by time and say whether the signer was known, so no record
    /// needs reading.
    fn prune_unauthenticated(&self) -> Result<(), StoreError> {
        let rejected = self.root.join("rejected");
        let unauthenticated: Vec<PathBuf> = read_dir(&rejected)?
            .into_iter()
            .filter(|p| !is_temporary(p) && file_name(p).contains(UNAUTHENTICATED_MARK))
            .collect();
        let excess = unauthenticated
            .len()
            .saturating_sub(self.unauthenticated_cap);
        for dir in unauthenticated.into_iter().take(excess) {
            fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        }
        Ok(())
    }

    fn read_records<T: for<'de> Deserialize<'de>>(&self, dir: &Path) -> Result<Vec<T>, StoreError> {
        read_dir(dir)?
            .into_iter()
            .filter(|p| !is_temporary(p) && p.is_dir())
            .map(|p| read_json(&p.join("record.json")))
            .collect()
    }
}

impl SpoolFile {
    /// Writes payload bytes at their offset within the payload.
    pub fn write_payload(&self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let at = self.envelope_len + offset;
        self.file
            .write_all_at(data, at)
            .map_err(io_err("write", &self.path))
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn envelope_len(&self) -> u64 {
        self.envelope_len
    }

    /// A spool file found again after a restart.
    pub fn reopen(file: File, path: PathBuf, envelope_len: u64) -> Self {
        Self {
            file,
            path,
            envelope_len,
        }
    }

    /// Deletes the spool file and its checkpoint.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(self.path.with_extension("state"));
    }
}

fn discard(spool: Option<SpoolFile>) -> Option<SpoolFile> {
    if let Some(spool) = spool {
        spool.discard();
    }
    None
}

/// Writes JSON to `path` with write, fsync, rename.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    let text = serde_json::to_vec_pretty(value).map_err(|e| StoreError::BadRecord {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    file.write_all(&text).map_err(io_err("write", &tmp))?;
    file.write_all(b"\n").map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", &tmp))
}

/// Writes JSON to `path` by rename, without fsync: for files that are
/// rewritten often and whose loss in a power failure costs nothing but time
/// (checkpoints, the status file).
pub fn write_json_replace<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|e| StoreError::BadRecord {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", &tmp))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    let text = fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&text).map_err(|e| StoreError::BadRecord {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = fs::read_dir(dir).map_err(io_err("list", dir))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(io_err("list", dir))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Marks rejection directories of transfers whose signature never verified.
const UNAUTHENTICATED_MARK: &str = "-unverified-";

/// `<time, zero-padded>-<signed|unverified>-<id>[-<transfer>]`: sorts
/// oldest first, and two transfers of one bundle never share a name.
pub fn rejection_dir_name(rejection: &Rejection) -> String {
    let (at, id, transfer) = (rejection.at, &rejection.id, &rejection.transfer);
    let mark = if rejection.signer.is_some() {
        "-signed-"
    } else {
        UNAUTHENTICATED_MARK
    };
    if id == transfer {
        format!("{at:020}{mark}{id}")
    } else {
        format!("{at:020}{mark}{id}-{transfer}")
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".tmp-"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TransferRecord;
    use sluice_protocol::key::Role;
    use sluice_protocol::manifest::BundleKind;

    fn record(id: &str) -> Record {
        Record {
            bundle_id: id.to_owned(),
            kind: BundleKind::Image,
            state: "quarantined".into(),
            subject_name: None,
            subject_digest: format!("sha256:{}", "a".repeat(64)),
            image_format: None,
            signer: "0011223344556677".into(),
            role: Role::Image,
            created: 1,
            received_at: 2,
            payload_len: 3,
            payload_blake3: String::new(),
            bundle_len: 10,
            files: Vec::new(),
            transfer: TransferRecord::default(),
        }
    }

    fn spool(store: &Store, id: u64, bytes: &[u8]) -> SpoolFile {
        let spool = store.create_spool(TransferId(id), b"envelope").unwrap();
        spool.write_payload(0, bytes).unwrap();
        spool
    }

    #[test]
    fn quarantine_moves_the_spool_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let filed = store
            .quarantine(spool(&store, 1, b"abc"), &record("b1"))
            .unwrap();
        assert!(matches!(filed, Filed::New(_)));
        assert_eq!(
            fs::read(filed.path().join("bundle.sluice")).unwrap(),
            b"envelopeabc"
        );
        assert_eq!(store.list().unwrap(), vec![record("b1")]);
        assert_eq!(
            read_dir(&dir.path().join("spool")).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn a_second_copy_of_a_quarantined_bundle_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .quarantine(spool(&store, 1, b"first"), &record("b1"))
            .unwrap();
        let again = store
            .quarantine(spool(&store, 2, b"other"), &record("b1"))
            .unwrap();
        assert!(matches!(again, Filed::AlreadyThere(_)));
        let kept = fs::read(store.quarantine_dir().join("b1/bundle.sluice")).unwrap();
        assert_eq!(kept, b"envelopefirst");
        assert_eq!(read_dir(&store.quarantine_dir()).unwrap().len(), 1);
        assert!(read_dir(&dir.path().join("spool")).unwrap().is_empty());
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::create_dir(store.quarantine_dir().join(".tmp-b9")).unwrap();
        store
            .quarantine(spool(&store, 8, b"whole"), &record("b8"))
            .unwrap();
        assert_eq!(store.clean_leftovers().unwrap(), 1);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn unauthenticated_rejections_are_pruned_and_keep_no_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path())
            .unwrap()
            .with_unauthenticated_cap(20);
        for n in 0..25 {
            let rejection =
                Rejection::unauthenticated(format!("t{n}"), "bad-signature", "x".into(), n);
            let path = store
                .reject(&rejection, Some(spool(&store, n, b"junk")))
                .unwrap();
            assert!(!path.join("bundle.sluice").exists());
        }
        let kept = store.rejections().unwrap();
        assert_eq!(kept.len(), 20);
        assert_eq!(kept[0].at, 5, "the oldest were pruned");
        assert!(read_dir(&dir.path().join("spool")).unwrap().is_empty());
    }

    #[test]
    fn get_accepts_a_unique_prefix_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .quarantine(spool(&store, 1, b"a"), &record("abc1"))
            .unwrap();
        store
            .quarantine(spool(&store, 2, b"b"), &record("abc2"))
            .unwrap();
        assert_eq!(store.get("abc1").unwrap().bundle_id, "abc1");
        assert!(store.get("abc").is_err());
        assert!(store.get("").is_err());
    }
}
