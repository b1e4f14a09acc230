//! The administrator's read-only views of the state directory: `list` and
//! `show`. They read the records the daemon wrote and need no daemon.

use sluice_hardware::outln;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;
use sluice_protocol::manifest::BundleKind;

use crate::record::{Record, Rejection};
use crate::store::Store;

/// Where the state directory is, for commands that only read it.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The receiver's state directory.
    #[arg(long, env = "SLUICE_STATE_DIR", default_value = "/var/lib/sluice")]
    pub state: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Show rejected transfers and bundles instead of the quarantine.
    #[arg(long)]
    pub rejected: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Bundle id, or a unique prefix of one.
    pub id: String,
    #[command(flatten)]
    pub state: StateArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A quarantined bundle with the bundles that relate to it.
#[derive(Debug, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub record: Record,
    /// For an image: report bundles naming its digest. For a report: image
    /// bundles with the digest it names.
    pub related: Vec<String>,
}

pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let store = open(&args.state)?;
    if args.rejected {
        return list_rejected(&store, args.json);
    }
    let entries = entries(&store)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        outln!("quarantine is empty ({})", store.quarantine_dir().display());
        return Ok(());
    }
    outln!(
        "{:<32}  {:<6}  {:<20}  {:<16}  {:>10}  {:<20}  RELATED",
        "ID",
        "KIND",
        "SUBJECT",
        "SIGNER",
        "SIZE",
        "RECEIVED"
    );
    for entry in &entries {
        let r = &entry.record;
        outln!(
            "{:<32}  {:<6}  {:<20}  {:<16}  {:>10}  {:<20}  {}",
            r.bundle_id,
            r.kind.to_string(),
            short_digest(&r.subject_digest),
            r.signer,
            human_bytes(r.bundle_len),
            timestamp(r.received_at),
            entry.related.len()
        );
    }
    Ok(())
}

pub fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let store = open(&args.state)?;
    let record = store.get(&args.id)?;
    let all = store.list()?;
    let entry = Entry {
        related: related(&record, &all),
        record,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        print_entry(&store, &entry);
    }
    Ok(())
}

/// Every quarantined bundle with its related bundles.
pub fn entries(store: &Store) -> anyhow::Result<Vec<Entry>> {
    let all = store.list()?;
    let entries = all
        .iter()
        .map(|r| Entry {
            related: related(r, &all),
            record: r.clone(),
        })
        .collect();
    Ok(entries)
}

fn related(record: &Record, all: &[Record]) -> Vec<String> {
    let other = match record.kind {
        BundleKind::Image => BundleKind::Report,
        BundleKind::Report => BundleKind::Image,
    };
    all.iter()
        .filter(|r| r.kind == other && r.subject_digest == record.subject_digest)
        .map(|r| r.bundle_id.clone())
        .collect()
}

fn print_entry(store: &Store, entry: &Entry) {
    let r = &entry.record;
    outln!("bundle      {}", r.bundle_id);
    outln!("state       {}", r.state);
    outln!("kind        {}", r.kind);
    outln!(
        "subject     {}{}",
        r.subject_digest,
        r.subject_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    if let Some(format) = &r.image_format {
        outln!("format      {format}");
    }
    outln!("signer      {} (role {})", r.signer, r.role);
    outln!("created     {}", timestamp(r.created));
    outln!("received    {}", timestamp(r.received_at));
    outln!(
        "size        {} ({} bytes payload, blake3 {})",
        human_bytes(r.bundle_len),
        r.payload_len,
        r.payload_blake3
    );
    outln!("path        {}", store.bundle_path(r).display());
    let t = &r.transfer;
    outln!(
        "transfer    {} on stream {}: {} datagrams, {} duplicates, {} of {} blocks rebuilt with parity ({} shards)",
        t.id,
        t.stream,
        t.datagrams,
        t.duplicates,
        t.blocks_rebuilt,
        t.blocks,
        t.shards_rebuilt
    );
    outln!("files       {}", r.files.len());
    for file in &r.files {
        outln!("  {:>10}  {:<16}  {}", file.size, file.kind, file.path);
    }
    let label = match r.kind {
        BundleKind::Image => "reports naming this image",
        BundleKind::Report => "image bundles with this subject",
    };
    outln!(
        "{label}: {}",
        if entry.related.is_empty() {
            "none yet".to_owned()
        } else {
            entry.related.join(", ")
        }
    );
}

fn list_rejected(store: &Store, json: bool) -> anyhow::Result<()> {
    let rejections: Vec<Rejection> = store.rejections()?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&rejections)?);
        return Ok(());
    }
    if rejections.is_empty() {
        outln!("nothing rejected");
    }
    for r in &rejections {
        let signer = r.signer.as_deref().unwrap_or("unverified");
        outln!(
            "{}  {:<32}  {:<18}  signer {signer}\n    {}",
            timestamp(r.at),
            r.id,
            r.code,
            r.reason
        );
    }
    Ok(())
}

fn open(state: &StateArgs) -> anyhow::Result<Store> {
    if !state.state.is_dir() {
        anyhow::bail!(
            "state directory {} does not exist; pass --state or set SLUICE_STATE_DIR",
            state.state.display()
        );
    }
    Store::open(&state.state).with_context(|| format!("opening {}", state.state.display()))
}

fn short_digest(digest: &str) -> String {
    digest
        .get(..19)
        .map(|d| format!("{d}…"))
        .unwrap_or_else(|| digest.to_owned())
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub fn timestamp(seconds: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string()
}

/// A byte count with a binary unit.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"B"))
    }
}
