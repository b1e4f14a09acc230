//! The daemon's status file and `sluice-recv status`: counters, link health
//! per stream, and whether the daemon is alive at all.
//!
//! The daemon rewrites `state/status.json` every second; the command reads
//! it, so it needs no connection to the daemon.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sluice_hardware::outln;

use crate::admin::{StateArgs, timestamp};
use crate::daemon::{DaemonStats, unix_now};
use crate::health::StreamStatus;

/// A status older than this means the daemon is not running.
const STALE_AFTER_SECS: u64 = 5;

/// What `status.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub updated_at: u64,
    pub listen: String,
    pub active_transfers: usize,
    pub counters: DaemonStats,
    pub streams: Vec<StreamStatus>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the daemon keeps its status.
pub fn status_path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// `sluice-recv status`.
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let path = status_path(&args.state.state);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "reading {}; has the receiver run with this --state?",
            path.display()
        )
    })?;
    let status: DaemonStatus = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a status file", path.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

fn print_status(status: &DaemonStatus) {
    let age = unix_now().saturating_sub(status.updated_at);
    if age > STALE_AFTER_SECS {
        outln!(
            "receiver NOT RUNNING: last status {} ({age} s ago)",
            timestamp(status.updated_at)
        );
    } else {
        outln!("receiver running on {}", status.listen);
    }
    let c = &status.counters;
    outln!(
        "transfers   {} active, {} quarantined, {} rejected",
        status.active_transfers,
        c.quarantined,
        c.rejected
    );
    outln!(
        "datagrams   {} received, {} dropped",
        c.datagrams,
        c.dropped
    );
    outln!(
        "repair      {} shards rebuilt in {} blocks",
        c.shards_rebuilt,
        c.blocks_rebuilt
    );
    if status.streams.is_empty() {
        outln!("streams     no heartbeat heard yet");
    }
    for s in &status.streams {
        let state = if s.silent { "SILENT" } else { "alive" };
        outln!(
            "stream {}    {state}, sender epoch {} up {} s, last heartbeat {} s ago; loss {:.2}% \
             ({} of {} datagrams), {} heartbeats missed, {} restarts",
            s.stream,
            s.epoch,
            s.sender_uptime_secs,
            s.seconds_since_heartbeat,
            s.loss * 100.0,
            s.sent.saturating_sub(s.received),
            s.sent,
            s.missed_heartbeats,
            s.restarts
        );
    }
}
