//! Checks on the kernel's network sysctls, read from `/proc/sys`.
//!
//! The receive side carries the risk: a datagram the kernel has no room
//! for is dropped without a trace, and nothing asks for it again. So the
//! receiver's buffers and queues are sized against stalls at line rate,
//! while the sender only needs its send buffer not to be capped.

use std::path::{Path, PathBuf};

use super::table;
use super::{Check, Probe, Side, Status};

const RMEM_MAX: &str = "net.core.rmem_max";
const WMEM_MAX: &str = "net.core.wmem_max";
const NETDEV_MAX_BACKLOG: &str = "net.core.netdev_max_backlog";
const UDP_MEM: &str = "net.ipv4.udp_mem";
const UDP_RMEM_MIN: &str = "net.ipv4.udp_rmem_min";
const RP_FILTER: &str = "rp_filter";

/// How long the per-CPU input queue should cover at line rate: a softirq
/// pushed to ksoftirqd on a busy CPU waits a few scheduler ticks.
const BACKLOG_MILLIS: u64 = 20;

/// The kernel's default `netdev_max_backlog`; never advise less.
const DEFAULT_BACKLOG: u64 = 1000;

/// The kernel charges a socket the size of each buffer it holds, not the
/// payload, which for a full-MTU datagram is about twice the bytes. That
/// is also why it doubles every SO_RCVBUF request.
const CHARGE_FACTOR: u64 = 2;

/// Page size when `/proc/self/smaps` cannot tell.
const FALLBACK_PAGE: u64 = 4096;

/// On the receiver: `rmem_max` lets the socket have the buffer it asks for.
pub(super) fn rmem_max(p: &Probe<'_>) -> Check {
    let requested = p.config.buffers.recv_buffer as u64;
    buffer_max(p, RMEM_MAX, requested, Status::Fail)
}

/// On the sender: `wmem_max` lets the socket have the buffer it asks for.
/// Pacing keeps the send buffer shallow, so a cap is only a warning.
pub(super) fn wmem_max(p: &Probe<'_>) -> Check {
    let requested = p.config.buffers.send_buffer as u64;
    buffer_max(p, WMEM_MAX, requested, Status::Warn)
}

/// On the receiver: the per-CPU input queue holds `BACKLOG_MILLIS` of
/// datagrams at the link rate.
pub(super) fn netdev_max_backlog(p: &Probe<'_>) -> Check {
    let backlog = match p.read_number(&proc_sys(NETDEV_MAX_BACKLOG)) {
        Ok(backlog) => backlog,
        Err(unreadable) => return unreadable.into_check(NETDEV_MAX_BACKLOG),
    };
    let per_second = packets_per_second(p);
    let needed = per_second.saturating_mul(BACKLOG_MILLIS).div_ceil(1000);
    let held = backlog.saturating_mul(1000) / per_second.max(1);

    let detail = format!(
        "{backlog} packets, {held} ms of datagrams at {}",
        rate_text(p)
    );
    if backlog >= needed {
        return Check::ok(NETDEV_MAX_BACKLOG, detail);
    }
    let advised = needed.next_power_of_two().max(DEFAULT_BACKLOG);
    Check::warn(
        NETDEV_MAX_BACKLOG,
        format!("{detail}; keep {BACKLOG_MILLIS} ms for softirq delays"),
        Some(format!("sysctl -w {NETDEV_MAX_BACKLOG}={advised}")),
    )
}

/// On the receiver: the hard limit on memory for all UDP sockets (the
/// third value of `udp_mem`, in pages) covers the receive buffer. Past
/// it, every UDP socket drops. The pressure threshold does nothing for
/// UDP, so only the limit is checked.
pub(super) fn udp_mem(p: &Probe<'_>) -> Check {
    let text = match p.read_text(&proc_sys(UDP_MEM)) {
        Ok(text) => text,
        Err(unreadable) => return unreadable.into_check(UDP_MEM),
    };
    let values: Vec<u64> = text
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [min, pressure, limit] = values[..] else {
        let detail = format!(
            "cannot read {}: expected three numbers, got {text:?}",
            UDP_MEM
        );
        return Check::warn(UDP_MEM, detail, None);
    };

    let (page, assumed) = page_size(p);
    let needed = (p.config.buffers.recv_buffer as u64).saturating_mul(CHARGE_FACTOR);
    let limit_bytes = limit.saturating_mul(page);
    let page_note = if assumed {
        ", assuming 4 KiB pages"
    } else {
        ""
    };
    if limit_bytes >= needed {
        let detail = format!(
            "UDP may use {} in all, enough for the receive buffer's {}{page_note}",
            size(limit_bytes),
            size(needed)
        );
        return Check::ok(UDP_MEM, detail);
    }

    let raised = needed.saturating_mul(2).div_ceil(page);
    Check::warn(
        UDP_MEM,
        format!(
            "UDP may use {} in all, less than the receive buffer's {}{page_note}",
            size(limit_bytes),
            size(needed)
        ),
        Some(format!(
            "sysctl -w {UDP_MEM}=\"{min} {} {raised}\"",
            pressure.min(raised)
        )),
    )
}

/// On the receiver: `udp_rmem_min` is what each UDP socket may still queue
/// once `udp_mem` is exhausted; it should hold at least one datagram.
pub(super) fn udp_rmem_min(p: &Probe<'_>) -> Check {
    let value = match p.read_number(&proc_sys(UDP_RMEM_MIN)) {
        Ok(value) => value,
        Err(unreadable) => return unreadable.into_check(UDP_RMEM_MIN),
    };
    let mtu = p.config.mtu as u64;
    let needed = mtu.saturating_mul(CHARGE_FACTOR);
    if value >= needed {
        let detail =
            format!("{value} bytes, room for a {mtu}-byte datagram when UDP memory is short");
        return Check::ok(UDP_RMEM_MIN, detail);
    }

    Check::warn(
        UDP_RMEM_MIN,
        format!(
            "{value} bytes, less than one {mtu}-byte datagram as the kernel counts it ({needed})"
        ),
        Some(format!(
            "sysctl -w {UDP_RMEM_MIN}={}",
            needed.next_power_of_two()
        )),
    )
}

/// On the receiver: reverse-path filtering is off, or loose. In strict
/// mode the kernel drops a datagram unless the route back to its source
/// leaves through the interface it came in on, and the high side usually
/// has no route to the low side at all. The kernel uses the larger of the
/// `all` and the interface's value.
pub(super) fn rp_filter(p: &Probe<'_>) -> Check {
    let Some(link) = &p.link else {
        return Check::skipped(RP_FILTER);
    };
    let all = match p.read_number(&rp_filter_path("all")) {
        Ok(value) => value,
        Err(unreadable) => return unreadable.into_check(RP_FILTER),
    };
    let own = match p.read_number(&rp_filter_path(link)) {
        Ok(value) => value,
        Err(unreadable) => return unreadable.into_check(RP_FILTER),
    };

    let values = format!("all={all}, {link}={own}");
    match all.max(own) {
        0 => Check::ok(RP_FILTER, format!("off on {link} ({values})")),
        2 => loose(p, link, &values, rp_filter_fix(link, all, own)),
        _ => Check::warn(
            RP_FILTER,
            format!("strict on {link} ({values}): datagrams with no route back are dropped"),
            Some(rp_filter_fix(link, all, own)),
        ),
    }
}

fn buffer_max(p: &Probe<'_>, sysctl: &'static str, requested: u64, capped: Status) -> Check {
    let max = match p.read_number(&proc_sys(sysctl)) {
        Ok(max) => max,
        Err(unreadable) => return unreadable.into_check(sysctl),
    };
    let which = match p.config.side {
        Side::Sender => "send",
        Side::Receiver => "receive",
    };
    if requested == 0 {
        return Check::ok(
            sysctl,
            format!("{}; the {which} buffer is left at the default", size(max)),
        );
    }

    if max >= requested {
        let detail = format!(
            "{} allows the {} {which} buffer ({} ms at {})",
            size(max),
            size(requested),
            millis_at_rate(p, requested),
            rate_text(p)
        );
        return Check::ok(sysctl, detail);
    }
    let detail = format!(
        "{} caps the {} {which} buffer at {} ms of traffic at {}",
        size(max),
        size(requested),
        millis_at_rate(p, max),
        rate_text(p)
    );
    let fix = Some(format!("sysctl -w {sysctl}={requested}"));
    Check::new(sysctl, capped, detail, fix)
}

fn loose(p: &Probe<'_>, link: &str, values: &str, fix: String) -> Check {
    let unrouted = p
        .config
        .peer
        .filter(|peer| matches!(p.routes.lookup(*peer), Ok(None)));
    let Some(peer) = unrouted else {
        let detail = format!("loose on {link} ({values}): passes while a route covers the sender");
        return Check::ok(RP_FILTER, detail);
    };

    let detail = format!("loose on {link} ({values}), and no route covers {peer}: it is dropped");
    Check::warn(RP_FILTER, detail, Some(fix))
}

/// Sets to 0 each of `all` and the interface's value that is not 0
/// already. Sysctl names write an interface's dots as slashes.
fn rp_filter_fix(link: &str, all: u64, own: u64) -> String {
    let mut assignments = Vec::new();
    if all != 0 {
        assignments.push("net.ipv4.conf.all.rp_filter=0".to_owned());
    }
    if own != 0 {
        let key = link.replace('.', "/");
        assignments.push(format!("net.ipv4.conf.{key}.rp_filter=0"));
    }
    format!("sysctl -w {}", assignments.join(" "))
}

fn rp_filter_path(interface: &str) -> PathBuf {
    Path::new("/proc/sys/net/ipv4/conf")
        .join(interface)
        .join("rp_filter")
}

/// `/proc/sys` path of a dotted sysctl name.
fn proc_sys(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

fn page_size(p: &Probe<'_>) -> (u64, bool) {
    let smaps = p.host.read_file(Path::new("/proc/self/smaps"));
    match smaps.ok().as_deref().and_then(table::parse_page_size) {
        Some(page) => (page, false),
        None => (FALLBACK_PAGE, true),
    }
}

/// Datagrams per second at the link rate, each a full MTU.
fn packets_per_second(p: &Probe<'_>) -> u64 {
    let (rate, _) = p.rate();
    let bits_per_packet = (p.config.mtu as u64).max(1).saturating_mul(8);
    rate.bits_per_second().div_ceil(bits_per_packet)
}

/// How long `bytes` of buffer lasts at the link rate, in milliseconds.
fn millis_at_rate(p: &Probe<'_>, bytes: u64) -> u64 {
    let (rate, _) = p.rate();
    let millis = u128::from(bytes) * 8 * 1000 / u128::from(rate.bits_per_second());
    u64::try_from(millis).unwrap_or(u64::MAX)
}

fn rate_text(p: &Probe<'_>) -> String {
    match p.rate() {
        (rate, false) => rate.to_string(),
        (rate, true) => format!("{rate} (assumed; pass --rate)"),
    }
}

/// A byte count the way an operator reads it: "32 MiB", "4.4 GiB".
fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    let Some((unit, name)) = UNITS.into_iter().find(|(unit, _)| bytes >= *unit) else {
        return format!("{bytes} bytes");
    };
    let tenths = u128::from(bytes) * 10 / u128::from(unit);
    match tenths % 10 {
        0 => format!("{} {name}", tenths / 10),
        rest => format!("{}.{rest} {name}", tenths / 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_an_operator_writes_them() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(212_992), "208 KiB");
        assert_eq!(size(32 << 20), "32 MiB");
        assert_eq!(size(1_151_562 * 4096), "4.3 GiB");
    }

    #[test]
    fn rp_filter_fix_names_only_what_is_set() {
        assert_eq!(
            rp_filter_fix("eth1", 1, 1),
            "sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0"
        );
        assert_eq!(
            rp_filter_fix("eth1.100", 0, 1),
            "sysctl -w net.ipv4.conf.eth1/100.rp_filter=0"
        );
    }
}
