//! `sluice-send`: the low-side operator's command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_hardware::hostcheck::{self, Side};
use sluice_hardware::socket::SocketOptions;
use sluice_sender::{daemon, inspect, keygen, pack, send};

/// Sluice low side: pack signed image and report bundles and send them
/// one way over a data diode.
#[derive(Debug, Parser)]
#[command(name = "sluice-send", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an ed25519 key pair for the image or the report role.
    Keygen(keygen::KeygenArgs),
    /// Pack an image or a set of reports into a signed bundle.
    #[command(subcommand)]
    Pack(pack::PackCommand),
    /// Show what is inside a bundle or an image, with its digests.
    Inspect(inspect::InspectArgs),
    /// Send bundles over the one-way link.
    Send(send::SendArgs),
    /// Run the sender daemon: watch inboxes, pack, send, archive.
    Run(daemon::RunArgs),
    /// Check this host's settings for sending over a diode link.
    CheckLink(hostcheck::CheckLinkArgs),
}

fn main() -> ExitCode {
    sluice_hardware::console::init_logging();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Pack(command) => pack::run(command),
        Command::Inspect(args) => inspect::run(args),
        Command::Send(args) => send::run(args),
        Command::Run(args) => daemon::run(args),
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

fn check_link(args: &hostcheck::CheckLinkArgs) -> anyhow::Result<()> {
    let passed = hostcheck::run_check_link(Side::Sender, args, &SocketOptions::default())?;
    anyhow::ensure!(
        passed,
        "this host is not ready to send over a diode; see the fixes above"
    );
    Ok(())
}
