//! The last checks before quarantine: the spooled payload has exactly the
//! signed length and blake3 hash. Runs off the receive path.

use std::os::unix::fs::FileExt;

use sluice_protocol::trust::VerifiedManifest;
use tracing::{error, info};

use crate::daemon::unix_now;
use crate::record::{Record, Rejection, TransferRecord};
use crate::store::{Filed, SpoolFile, Store};

/// Bytes read at a time while hashing a payload.
const HASH_CHUNK: usize = 1 << 20;

/// A transfer whose every block has been written to the spool.
#[derive(Debug)]
pub struct Finished {
    pub verified: VerifiedManifest,
    pub spool: SpoolFile,
    pub transfer: TransferRecord,
}

/// Why a complete payload was still refused.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is {got} bytes but the signed manifest says {expected}")]
    Length { expected: u64, got: u64 },
    #[error("payload blake3 is {got} but the signed manifest says {expected}")]
    Hash { expected: String, got: String },
    #[error("cannot read the spooled payload: {0}")]
    Io(#[from] std::io::Error),
}

impl PayloadError {
    fn code(&self) -> &'static str {
        match self {
            Self::Length { .. } => "length-mismatch",
            Self::Hash { .. } => "payload-hash",
            Self::Io(_) => "spool-io",
        }
    }
}

/// What became of a finished transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Quarantined,
    /// Verified, but an earlier copy was already in quarantine.
    Duplicate,
    Rejected,
}

/// Verifies and files one bundle.
pub fn finalize(store: &Store, job: Finished) -> Outcome {
    let bundle = job.verified.manifest.bundle_id;
    let transfer = job.transfer.id.clone();
    if let Err(problem) = check_payload(&job.verified, &job.spool) {
        let reason = problem.to_string();
        error!(%transfer, %bundle, code = problem.code(), "bundle rejected: {reason}");
        let rejection =
            Rejection::signed(&job.verified, transfer, problem.code(), reason, unix_now());
        if let Err(e) = store.reject(&rejection, Some(job.spool)) {
            error!(%bundle, "cannot record the rejection: {e}");
        }
        return Outcome::Rejected;
    }
    let record = Record::new(&job.verified, job.transfer, unix_now());
    match store.quarantine(job.spool, &record) {
        Ok(Filed::New(path)) => {
            info!(%transfer, %bundle, kind = %record.kind, subject = %record.subject_digest,
                path = %path.display(), "bundle verified and quarantined");
            Outcome::Quarantined
        }
        Ok(Filed::AlreadyThere(_)) => {
            info!(%transfer, %bundle, "bundle verified; an earlier copy is already in quarantine");
            Outcome::Duplicate
        }
        Err(e) => {
            error!(%transfer, %bundle, "cannot move the bundle into quarantine: {e}");
            Outcome::Rejected
        }
    }
}

/// Checks the spooled payload's length and blake3 against the manifest.
pub fn check_payload(verified: &VerifiedManifest, spool: &SpoolFile) -> Result<(), PayloadError> {
    let expected_len = verified.manifest.payload.length;
    let file_len = spool.file().metadata()?.len();
    let got = file_len.saturating_sub(spool.envelope_len());
    if got != expected_len || file_len < spool.envelope_len() {
        return Err(PayloadError::Length {
            expected: expected_len,
            got,
        });
    }
    let hash = hash_range(spool.file(), spool.envelope_len(), expected_len)?;
    let expected = verified.manifest.payload.blake3;
    if hash != expected {
        return Err(PayloadError::Hash {
            expected: hex::encode(expected),
            got: hex::encode(hash),
        });
    }
    Ok(())
}

/// blake3 of `len` bytes of `file` starting at `start`.
pub fn hash_range(file: &std::fs::File, start: u64, len: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from((len - done).min(HASH_CHUNK as u64)).unwrap_or(HASH_CHUNK);
        let chunk = buf.get_mut(..want).unwrap_or_default();
        file.read_exact_at(chunk, start + done)?;
        hasher.update(chunk);
        done += want as u64;
    }
    Ok(*hasher.finalize().as_bytes())
}
