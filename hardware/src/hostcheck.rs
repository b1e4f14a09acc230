//! Checks that a Linux host is set up for one end of a diode link.
//!
//! A diode link has no feedback: the sender cannot learn the receiver's
//! MAC address, the receiver cannot answer anything, and a datagram the
//! receiving kernel drops is gone. Each check below looks for one setting
//! that would lose datagrams silently, and names the command that fixes it.
//!
//! ```text
//!  low host                          diode                         high host
//!  sluice-send ─▶ NIC ═══════════▶ one way ═══════════▶ NIC ─▶ sluice-recv
//!  │ route to the receiver on the link                  │ interface up, MTU, RX ring
//!  │ permanent neighbour entry (no ARP reply comes)     │ rp_filter off (no route back)
//!  │ interface up, MTU                                  │ no default route over the link
//!  └ net.core.wmem_max                                  └ rmem_max, netdev_max_backlog,
//!                                                         udp_mem, udp_rmem_min
//! ```
//!
//! The checks only read: `/proc`, `/sys`, and the output of `ethtool -g`
//! and `ip -6 neigh show`, all through a [`HostView`] so tests can hand
//! them a made-up host. Nothing here changes the host; every finding
//! carries the fix for the operator to apply (see `docs/DEPLOYMENT.md`).
//!
//! Every check yields exactly one row, whatever the host looks like: a
//! file that cannot be read is a warning saying so, never a panic.

mod cli;
mod host;
mod interface;
mod sysctl;
mod table;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::rate::Rate;
use crate::socket::SocketOptions;
use table::Route;

pub use cli::{CheckLinkArgs, run_check_link};
pub use host::{HostView, SystemHost};

/// The rate receive queues are sized for when none is given.
pub const ASSUMED_RATE: Rate = match Rate::from_bits_per_second(1_000_000_000) {
    Some(rate) => rate,
    None => unreachable!(),
};

/// Which end of the link this host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Sender,
    Receiver,
}

/// What to hold the host up against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCheckConfig {
    pub side: Side,
    /// The NIC on the link; when `None`, the one the route to `peer` uses.
    pub interface: Option<String>,
    /// The receiver's address on a sender; the sender's on a receiver.
    pub peer: Option<IpAddr>,
    /// Bytes of every IP packet the sender puts on the link.
    pub mtu: usize,
    /// The socket buffers the daemon asks for; zero keeps the kernel's.
    pub buffers: SocketOptions,
    /// The link rate; `None` sizes queues for [`ASSUMED_RATE`].
    pub rate: Option<Rate>,
}

/// How a check came out, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but loses datagrams or hides a problem in some conditions.
    Warn,
    /// The link will not carry datagrams, or will lose them routinely.
    Fail,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable name: the sysctl, or a short word for the interface checks.
    pub name: &'static str,
    pub status: Status,
    /// One line saying what was found and why it matters.
    pub detail: String,
    /// The command or configuration line that fixes it, when there is one.
    pub fix: Option<String>,
}

/// How many checks came out each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warnings: usize,
    pub failures: usize,
}

/// Runs every check for `config.side` against `host`, in report order.
pub fn run_checks(config: &LinkCheckConfig, host: &dyn HostView) -> Vec<Check> {
    let routes = Routes::load(host);
    let (link, found) = interface::resolve(config, host, &routes);
    let probe = Probe {
        config,
        host,
        routes,
        link,
    };

    let mut checks = vec![found];
    match config.side {
        Side::Sender => checks.extend(sender_checks(&probe)),
        Side::Receiver => checks.extend(receiver_checks(&probe)),
    }
    checks
}

/// The report as an aligned table, fixes beneath their rows, and a
/// summary line.
pub fn render_text(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for check in checks {
        let status = check.status.label();
        text.push_str(&format!(
            "{status:<4}  {:<width$}  {}\n",
            check.name, check.detail
        ));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("{:<4}  {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    text.push_str(&format!("\n{}\n", Summary::of(checks)));
    text
}

/// The report as pretty-printed JSON: `{"checks": [...], "summary": {...}}`.
///
/// # Errors
///
/// Only if serde_json fails to write, which plain strings and numbers
/// do not make it do.
pub fn render_json(checks: &[Check]) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Report<'a> {
        checks: &'a [Check],
        summary: Summary,
        passed: bool,
    }

    let summary = Summary::of(checks);
    let report = Report {
        checks,
        summary,
        passed: summary.passed(),
    };
    serde_json::to_string_pretty(&report)
}

/// Success unless some check failed; warnings do not fail the run.
pub fn exit_status(checks: &[Check]) -> ExitCode {
    if Summary::of(checks).passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

impl Summary {
    pub fn of(checks: &[Check]) -> Summary {
        let count = |status| checks.iter().filter(|c| c.status == status).count();
        Summary {
            ok: count(Status::Ok),
            warnings: count(Status::Warn),
            failures: count(Status::Fail),
        }
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{} ok, {} warning{}, {} failure{}",
            self.ok,
            self.warnings,
            plural(self.warnings),
            self.failures,
            plural(self.failures)
        )
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Sender => "sender",
            Side::Receiver => "receiver",
        })
    }
}

impl Status {
    /// Problems in capitals, so they stand out in a column of "ok".
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl Check {
    fn ok(name: &'static str, detail: String) -> Check {
        Check::new(name, Status::Ok, detail, None)
    }

    fn warn(name: &'static str, detail: String, fix: Option<String>) -> Check {
        Check::new(name, Status::Warn, detail, fix)
    }

    fn fail(name: &'static str, detail: String, fix: Option<String>) -> Check {
        Check::new(name, Status::Fail, detail, fix)
    }

    fn new(name: &'static str, status: Status, detail: String, fix: Option<String>) -> Check {
        Check {
            name,
            status,
            detail,
            fix,
        }
    }

    /// The row for a check that needs the link interface when none is known.
    fn skipped(name: &'static str) -> Check {
        let detail = "skipped: no link interface to check (see the interface row)";
        Check::warn(name, detail.to_owned(), None)
    }
}

/// The checks a sender needs, after the interface row.
fn sender_checks(p: &Probe<'_>) -> Vec<Check> {
    vec![
        interface::operstate(p),
        interface::mtu(p),
        interface::rings(p),
        interface::route(p),
        interface::neighbour(p),
        sysctl::wmem_max(p),
    ]
}

/// The checks a receiver needs, after the interface row.
fn receiver_checks(p: &Probe<'_>) -> Vec<Check> {
    vec![
        interface::operstate(p),
        interface::mtu(p),
        interface::rings(p),
        sysctl::rp_filter(p),
        interface::default_route(p),
        sysctl::rmem_max(p),
        sysctl::netdev_max_backlog(p),
        sysctl::udp_mem(p),
        sysctl::udp_rmem_min(p),
    ]
}

/// What every check reads from, with what was learned once up front.
struct Probe<'a> {
    config: &'a LinkCheckConfig,
    host: &'a dyn HostView,
    routes: Routes,
    /// The link interface, when one was given or found.
    link: Option<String>,
}

impl Probe<'_> {
    /// The link rate, and whether it was assumed rather than given.
    fn rate(&self) -> (Rate, bool) {
        match self.config.rate {
            Some(rate) => (rate, false),
            None => (ASSUMED_RATE, true),
        }
    }

    fn read_text(&self, path: &Path) -> Result<String, Unreadable> {
        match self.host.read_file(path) {
            Ok(text) => Ok(text.trim().to_owned()),
            Err(error) => Err(Unreadable::io(path, &error)),
        }
    }

    /// Reads a file holding one number: a sysctl or a sysfs attribute.
    fn read_number(&self, path: &Path) -> Result<u64, Unreadable> {
        let text = self.read_text(path)?;
        text.parse().map_err(|_| Unreadable::contents(path, &text))
    }
}

/// A file that could not be read or held something unexpected.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unreadable {
    path: PathBuf,
    reason: String,
}

impl Unreadable {
    fn io(path: &Path, error: &io::Error) -> Unreadable {
        Unreadable {
            path: path.to_owned(),
            reason: error.to_string(),
        }
    }

    fn contents(path: &Path, text: &str) -> Unreadable {
        Unreadable {
            path: path.to_owned(),
            reason: format!("unexpected contents {text:?}"),
        }
    }

    fn into_check(self, name: &'static str) -> Check {
        let detail = format!("cannot read {}: {}", self.path.display(), self.reason);
        Check::warn(name, detail, None)
    }
}

/// The kernel's IPv4 and IPv6 route tables, read once.
struct Routes {
    v4: Result<Vec<Route>, Unreadable>,
    v6: Result<Vec<Route>, Unreadable>,
    /// Routes to `127.0.0.0/8` and `::1` through `lo`. They live in the
    /// kernel's local table, which procfs does not show.
    loopback: [Route; 2],
}

impl Routes {
    const V4_PATH: &'static str = "/proc/net/route";
    const V6_PATH: &'static str = "/proc/net/ipv6_route";

    fn load(host: &dyn HostView) -> Routes {
        let read = |path: &str, parse: fn(&str) -> Vec<Route>| {
            let path = Path::new(path);
            match host.read_file(path) {
                Ok(text) => Ok(parse(&text)),
                Err(error) => Err(Unreadable::io(path, &error)),
            }
        };
        Routes {
            v4: read(Self::V4_PATH, table::parse_ipv4_routes),
            v6: read(Self::V6_PATH, table::parse_ipv6_routes),
            loopback: [
                Route::through_lo(Ipv4Addr::LOCALHOST.into(), 8),
                Route::through_lo(Ipv6Addr::LOCALHOST.into(), 128),
            ],
        }
    }

    fn family(&self, ip: IpAddr) -> Result<&[Route], &Unreadable> {
        let table = match ip {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        };
        table.as_deref()
    }

    /// The route the kernel would use to reach `ip`.
    fn lookup(&self, ip: IpAddr) -> Result<Option<&Route>, &Unreadable> {
        if ip.is_loopback() {
            return Ok(table::best_route(&self.loopback, ip));
        }
        Ok(table::best_route(self.family(ip)?, ip))
    }
}
