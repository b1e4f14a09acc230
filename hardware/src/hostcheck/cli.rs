//! The `check-link` subcommand both daemons share.

use std::io::{self, Write as _};
use std::net::IpAddr;

use anyhow::Context as _;

use super::{LinkCheckConfig, Side, Summary, SystemHost, render_json, render_text, run_checks};
use crate::rate::Rate;
use crate::socket::SocketOptions;

/// `check-link`: check this host's setup for its end of the diode link.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CheckLinkArgs {
    /// The network interface on the link [default: the one the route to
    /// --peer leaves through].
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// The other end's IP address: on the sender, the receiver's (the
    /// datagrams' destination); on the receiver, the sender's.
    #[arg(long, value_name = "IP")]
    pub peer: Option<IpAddr>,
    /// The MTU datagrams are sized for; use the sender's `mtu` setting.
    #[arg(long, default_value_t = 1500)]
    pub mtu: usize,
    /// The link rate, for sizing receive queues (e.g. 1G, 10G)
    /// [default: assume 1 Gbit/s].
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl CheckLinkArgs {
    /// What to check a `side` host against, given the socket buffers its
    /// daemon asks for.
    pub fn config(&self, side: Side, buffers: SocketOptions) -> LinkCheckConfig {
        LinkCheckConfig {
            side,
            interface: self.interface.clone(),
            peer: self.peer,
            mtu: self.mtu,
            buffers,
            rate: self.rate,
        }
    }
}

/// Checks this host and prints the report to stdout, as a table or as
/// JSON. Returns whether every check passed (warnings pass); a binary
/// should exit non-zero when it did not.
///
/// # Errors
///
/// Fails only if the report cannot be written to stdout.
pub fn run_check_link(
    side: Side,
    args: &CheckLinkArgs,
    buffers: &SocketOptions,
) -> anyhow::Result<bool> {
    let checks = run_checks(&args.config(side, *buffers), &SystemHost);
    let report = if args.json {
        render_json(&checks).context("formatting the report as JSON")? + "\n"
    } else {
        format!(
            "Link checks for the {side} side of a diode:\n\n{}",
            render_text(&checks)
        )
    };

    io::stdout()
        .lock()
        .write_all(report.as_bytes())
        .context("writing the report to stdout")?;
    Ok(Summary::of(&checks).passed())
}
