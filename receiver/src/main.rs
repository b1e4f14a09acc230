//! `sluice-recv`: the high-side daemon and the administrator's commands.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_hardware::hostcheck::{self, Side};
use sluice_hardware::socket::SocketOptions;
use sluice_receiver::admin::{self, ListArgs, ShowArgs};
use sluice_receiver::config::{ReceiverConfig, SocketSettings};
use sluice_receiver::daemon;
use tracing::info;

/// Sluice high side: receive bundles from the one-way link, verify every
/// signature and hash, and hold them in quarantine.
#[derive(Debug, Parser)]
#[command(name = "sluice-recv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the receiving daemon until interrupted.
    Run(RunArgs),
    /// List the bundles in quarantine (or, with --rejected, the rejections).
    List(ListArgs),
    /// Show one quarantined bundle in full.
    Show(ShowArgs),
    /// Show the daemon's counters and the link's health, per stream.
    Status(sluice_receiver::status::StatusArgs),
    /// Check this host's settings for receiving from a diode link.
    CheckLink(hostcheck::CheckLinkArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Configuration file (TOML). Flags below override its values.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// UDP address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// State directory holding spool, quarantine and rejected bundles.
    #[arg(long, env = "SLUICE_STATE_DIR")]
    state: Option<PathBuf>,
    /// Trust store: a TOML file of `[[key]]` tables, or a directory of `*.pub` files.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Seconds of silence after which an unfinished transfer is closed.
    #[arg(long)]
    idle_timeout: Option<u64>,
}

fn main() -> ExitCode {
    sluice_hardware::console::init_logging();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run(args),
        Command::List(args) => admin::list(args),
        Command::Show(args) => admin::show(args),
        Command::Status(args) => sluice_receiver::status::run(args),
        Command::CheckLink(args) => check_link(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = build_config(args)?;
    let handle = daemon::spawn(&config)?;
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("installing the signal handler")?;
    let _ = rx.recv();
    info!("stopping");
    let stats = handle.stop();
    info!(
        quarantined = stats.quarantined,
        rejected = stats.rejected,
        datagrams = stats.datagrams,
        "receiver exiting"
    );
    Ok(())
}

fn build_config(args: &RunArgs) -> anyhow::Result<ReceiverConfig> {
    let mut config = match &args.config {
        Some(path) => ReceiverConfig::load(path)?,
        None => {
            let (Some(state), Some(trust)) = (&args.state, &args.trust) else {
                anyhow::bail!("give --config FILE, or both --state DIR and --trust PATH");
            };
            let listen = SocketAddr::from(([0, 0, 0, 0], sluice_receiver::config::DEFAULT_PORT));
            ReceiverConfig::new(listen, state.clone(), trust.clone())
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(state) = &args.state {
        config.state_dir = state.clone();
    }
    if let Some(trust) = &args.trust {
        config.trust = trust.clone();
    }
    if let Some(secs) = args.idle_timeout {
        anyhow::ensure!(secs > 0, "--idle-timeout must be at least 1 second");
        config.limits.idle_timeout_secs = secs;
    }
    Ok(config)
}

fn check_link(args: &hostcheck::CheckLinkArgs) -> anyhow::Result<()> {
    let buffers = SocketOptions {
        recv_buffer: SocketSettings::default().recv_buffer,
        send_buffer: 0,
    };
    let passed = hostcheck::run_check_link(Side::Receiver, args, &buffers)?;
    anyhow::ensure!(
        passed,
        "this host is not ready to receive from a diode; see the fixes above"
    );
    Ok(())
}
