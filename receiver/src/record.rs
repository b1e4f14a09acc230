//! What the receiver writes down about each bundle: the record kept beside
//! a quarantined bundle, and the record of a rejection. Both are JSON so an
//! administrator can read them without Sluice.

use serde::{Deserialize, Serialize};
use sluice_protocol::key::Role;
use sluice_protocol::manifest::{BundleKind, FileEntry};
use sluice_protocol::reassembly::TransferStats;
use sluice_protocol::trust::VerifiedManifest;

/// A bundle in quarantine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub bundle_id: String,
    pub kind: BundleKind,
    pub state: String,
    pub subject_name: Option<String>,
    pub subject_digest: String,
    pub image_format: Option<String>,
    pub signer: String,
    pub role: Role,
    /// Unix seconds the packer put in the signed manifest.
    pub created: u64,
    /// Unix seconds the receiver moved it into quarantine.
    pub received_at: u64,
    pub payload_len: u64,
    pub payload_blake3: String,
    pub bundle_len: u64,
    pub files: Vec<FileRecord>,
    pub transfer: TransferRecord,
}

/// One member of a bundle's payload, as the signed manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    pub kind: String,
    pub blake3: String,
}

/// How a bundle crossed the link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferRecord {
    pub id: String,
    pub stream: u16,
    pub datagrams: u64,
    pub duplicates: u64,
    pub blocks: u64,
    pub blocks_rebuilt: u64,
    pub shards_rebuilt: u64,
    pub max_parity_used: u16,
    pub seconds: f64,
}

/// A transfer or bundle the receiver refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Bundle id when the envelope verified, else the transfer id.
    pub id: String,
    pub transfer: String,
    /// Stable machine-readable reason, for counting and auditing.
    pub code: String,
    /// What failed, for a person.
    pub reason: String,
    pub at: u64,
    /// Set only when the signature verified: who signed what was refused.
    pub signer: Option<String>,
    pub kind: Option<BundleKind>,
    pub subject_digest: Option<String>,
}

impl Record {
    /// The record of a bundle whose payload verified.
    pub fn new(verified: &VerifiedManifest, transfer: TransferRecord, received_at: u64) -> Self {
        let manifest = &verified.manifest;
        Self {
            bundle_id: manifest.bundle_id.to_string(),
            kind: manifest.kind,
            state: "quarantined".to_owned(),
            subject_name: manifest.subject.name.clone(),
            subject_digest: manifest.subject.digest.to_string(),
            image_format: manifest.image_format.map(|f| f.to_string()),
            signer: verified.signer.to_string(),
            role: verified.role,
            created: manifest.created,
            received_at,
            payload_len: manifest.payload.length,
            payload_blake3: hex::encode(manifest.payload.blake3),
            bundle_len: verified.envelope_len as u64 + manifest.payload.length,
            files: manifest.files.iter().map(FileRecord::from).collect(),
            transfer,
        }
    }
}

impl From<&FileEntry> for FileRecord {
    fn from(entry: &FileEntry) -> Self {
        Self {
            path: entry.path.clone(),
            size: entry.size,
            kind: entry.kind.to_string(),
            blake3: hex::encode(entry.blake3),
        }
    }
}

impl TransferRecord {
    pub fn new(id: String, stream: u16, stats: &TransferStats, seconds: f64) -> Self {
        Self {
            id,
            stream,
            datagrams: stats.datagrams,
            duplicates: stats.duplicates,
            blocks: stats.blocks,
            blocks_rebuilt: stats.blocks_rebuilt,
            shards_rebuilt: stats.shards_rebuilt,
            max_parity_used: stats.max_parity_used,
            seconds,
        }
    }
}

impl Rejection {
    /// A rejection of a transfer whose envelope never verified.
    pub fn unauthenticated(transfer: String, code: &str, reason: String, at: u64) -> Self {
        Self {
            id: transfer.clone(),
            transfer,
            code: code.to_owned(),
            reason,
            at,
            signer: None,
            kind: None,
            subject_digest: None,
        }
    }

    /// A rejection of a bundle whose signature verified but which failed later.
    pub fn signed(
        verified: &VerifiedManifest,
        transfer: String,
        code: &str,
        reason: String,
        at: u64,
    ) -> Self {
        let manifest = &verified.manifest;
        Self {
            id: manifest.bundle_id.to_string(),
            transfer,
            code: code.to_owned(),
            reason,
            at,
            signer: Some(verified.signer.to_string()),
            kind: Some(manifest.kind),
            subject_digest: Some(manifest.subject.digest.to_string()),
        }
    }
}
