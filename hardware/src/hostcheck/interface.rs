//! Checks on the link interface and the routes and neighbours around it.
//!
//! Sysfs gives each interface's state and MTU but not its ring sizes;
//! those come from `ethtool -g` when it is installed. IPv4 neighbours are
//! in `/proc/net/arp`; IPv6 neighbours are only reachable over netlink, so
//! they come from `ip -6 neigh show`.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::table::{self, Neighbour, NeighbourState};
use super::{Check, HostView, LinkCheckConfig, Probe, Routes, Side, Unreadable};

const INTERFACE: &str = "interface";
const OPERSTATE: &str = "operstate";
const MTU: &str = "mtu";
const RINGS: &str = "ring sizes";
const ROUTE: &str = "route";
const NEIGHBOUR: &str = "neighbour";
const DEFAULT_ROUTE: &str = "default route";

const SYS_CLASS_NET: &str = "/sys/class/net";
const PROC_ARP: &str = "/proc/net/arp";

/// The largest MTU to configure: the receiver refuses shards over 8972
/// bytes, the UDP payload of a 9000-byte jumbo frame.
const MAX_MTU: usize = 9000;

/// Finds the link interface: as given, else the one the route to the peer
/// leaves through, else the only interface that is up.
pub(super) fn resolve(
    config: &LinkCheckConfig,
    host: &dyn HostView,
    routes: &Routes,
) -> (Option<String>, Check) {
    if let Some(name) = &config.interface {
        return given(host, name);
    }
    let Some(peer) = config.peer else {
        return guess(host, "no --peer given");
    };
    match routes.lookup(peer) {
        Ok(Some(route)) => {
            let detail = format!(
                "{}, which the route to {peer} leaves through",
                route.interface
            );
            (Some(route.interface.clone()), Check::ok(INTERFACE, detail))
        }
        Ok(None) => guess(host, &format!("no route reaches {peer}")),
        Err(unreadable) => guess(host, &format!("cannot read {}", unreadable.path.display())),
    }
}

/// Whether the link is up. A NIC without carrier neither sends nor
/// receives, and a one-way fibre gives the sender's NIC no light to see
/// carrier in: the diode hardware must present link on both sides.
pub(super) fn operstate(p: &Probe<'_>) -> Check {
    let Some(link) = &p.link else {
        return Check::skipped(OPERSTATE);
    };
    let state = match p.read_text(&sys(link, "operstate")) {
        Ok(state) => state,
        Err(unreadable) => return unreadable.into_check(OPERSTATE),
    };

    match state.as_str() {
        "up" => Check::ok(OPERSTATE, format!("{link} is up")),
        "unknown" => carrier(p, link),
        _ => {
            let why = match p.config.side {
                Side::Sender => "a NIC without carrier sends nothing; the diode must give it link",
                Side::Receiver => "nothing arrives on an interface that is not up",
            };
            let fix = Some(format!("ip link set dev {link} up"));
            Check::fail(OPERSTATE, format!("{link} is {state}; {why}"), fix)
        }
    }
}

/// Whether the interface's MTU fits the datagrams the link carries.
pub(super) fn mtu(p: &Probe<'_>) -> Check {
    let Some(link) = &p.link else {
        return Check::skipped(MTU);
    };
    let actual = match p.read_number(&sys(link, "mtu")) {
        Ok(mtu) => mtu,
        Err(unreadable) => return unreadable.into_check(MTU),
    };

    let wanted = p.config.mtu;
    if actual < wanted as u64 {
        let why = match p.config.side {
            Side::Sender => "each datagram would be fragmented or refused",
            Side::Receiver => "larger frames are dropped on arrival",
        };
        let detail = format!("{link} MTU is {actual}, below the {wanted} datagrams use; {why}");
        return Check::fail(
            MTU,
            detail,
            Some(format!("ip link set dev {link} mtu {wanted}")),
        );
    }
    if wanted > MAX_MTU {
        let detail = format!(
            "{link} MTU {actual} fits, but {wanted} is above {MAX_MTU}: \
             the receiver refuses shards over 8972 bytes"
        );
        return Check::warn(
            MTU,
            detail,
            Some(format!("use an MTU of {MAX_MTU} or less")),
        );
    }
    Check::ok(
        MTU,
        format!("{link} MTU {actual} fits {wanted}-byte datagrams"),
    )
}

/// The NIC's ring on the side that matters: RX on the receiver, where a
/// full ring drops frames before the kernel sees them; TX on the sender,
/// which the pacer keeps shallow.
pub(super) fn rings(p: &Probe<'_>) -> Check {
    let Some(link) = &p.link else {
        return Check::skipped(RINGS);
    };
    let dir = match p.config.side {
        Side::Sender => "tx",
        Side::Receiver => "rx",
    };
    let text = match p.host.run("ethtool", &["-g", link]) {
        Ok(text) => text,
        Err(error) => return ethtool_missing(link, dir, &error),
    };

    let rings = table::parse_ethtool_rings(&text);
    let ring = match p.config.side {
        Side::Sender => rings.tx,
        Side::Receiver => rings.rx,
    };
    let (Some(current), Some(max)) = (ring.current, ring.max) else {
        let detail = format!("ethtool -g {link} reports no {dir} ring size");
        return Check::warn(RINGS, detail, None);
    };

    let detail = format!("{link} {dir} ring {current} of {max} descriptors");
    if current >= max {
        return Check::ok(RINGS, detail);
    }
    match p.config.side {
        Side::Sender => Check::ok(RINGS, format!("{detail}; the pacer's bursts fit")),
        Side::Receiver => Check::warn(
            RINGS,
            format!("{detail}; a longer ring rides out longer interrupt delays"),
            Some(format!("ethtool -G {link} rx {max}")),
        ),
    }
}

/// On the sender: the route to the receiver leaves through the link
/// interface, and directly rather than through a gateway.
pub(super) fn route(p: &Probe<'_>) -> Check {
    let Some(peer) = p.config.peer else {
        return no_peer(ROUTE);
    };
    let route = match p.routes.lookup(peer) {
        Ok(route) => route,
        Err(unreadable) => return unreadable.clone().into_check(ROUTE),
    };
    let link = p.link.as_deref().unwrap_or("<link interface>");
    let fix = Some(format!("ip route add {peer} dev {link}"));

    let Some(route) = route else {
        return Check::fail(ROUTE, format!("no route reaches {peer}"), fix);
    };
    if route.interface != link {
        let detail = format!(
            "the route to {peer} leaves through {}, not {link}",
            route.interface
        );
        return Check::fail(ROUTE, detail, fix);
    }
    if peer.is_loopback() {
        let detail = format!("{peer} is loopback: this checks a lab, not a diode link");
        return Check::warn(ROUTE, detail, None);
    }
    match route.gateway {
        Some(gateway) => Check::warn(
            ROUTE,
            format!("{peer} is reached through gateway {gateway}, so it needs the static entry"),
            None,
        ),
        None => Check::ok(ROUTE, format!("{peer} is on-link through {link}")),
    }
}

/// On the sender: a permanent neighbour entry for the next hop. No ARP or
/// neighbour reply ever crosses the diode, so without one the kernel asks,
/// waits, and drops every datagram.
pub(super) fn neighbour(p: &Probe<'_>) -> Check {
    let Some(peer) = p.config.peer else {
        return no_peer(NEIGHBOUR);
    };
    let Some(link) = &p.link else {
        return Check::skipped(NEIGHBOUR);
    };
    if peer.is_loopback() {
        return Check::ok(NEIGHBOUR, format!("{peer} is loopback and needs no entry"));
    }
    let gateway = p.routes.lookup(peer).ok().flatten().and_then(|r| r.gateway);
    let (target, whose) = match gateway {
        Some(gateway) => (gateway, "gateway"),
        None => (peer, "receiver"),
    };

    let entries = match neighbours(p.host, target) {
        Ok(entries) => entries,
        Err(unreadable) => return unreadable.into_check(NEIGHBOUR),
    };
    let fix = format!("ip neigh replace {target} lladdr <{whose} MAC> dev {link} nud permanent");
    judge_neighbour(&entries, target, link, fix)
}

/// On the receiver: no default route leaves through the link. The high
/// side cannot send anything over it, so such a route only blackholes
/// whatever the host tries to reach.
pub(super) fn default_route(p: &Probe<'_>) -> Check {
    let Some(link) = &p.link else {
        return Check::skipped(DEFAULT_ROUTE);
    };
    let v4 = match &p.routes.v4 {
        Ok(routes) => routes.as_slice(),
        Err(unreadable) => return unreadable.clone().into_check(DEFAULT_ROUTE),
    };
    let v6 = p.routes.v6.as_deref().unwrap_or_default();

    let on_link = |route: &&table::Route| route.is_default() && route.interface == *link;
    if let Some(route) = v4.iter().find(on_link) {
        return default_via_link(route, link, "ip route del default dev");
    }
    if let Some(route) = v6.iter().find(on_link) {
        return default_via_link(route, link, "ip -6 route del default dev");
    }
    Check::ok(
        DEFAULT_ROUTE,
        format!("no default route leaves through {link}"),
    )
}

fn given(host: &dyn HostView, name: &str) -> (Option<String>, Check) {
    let known = match host.list_dir(Path::new(SYS_CLASS_NET)) {
        Ok(known) => known,
        Err(error) => {
            let check = Unreadable::io(Path::new(SYS_CLASS_NET), &error).into_check(INTERFACE);
            return (Some(name.to_owned()), check);
        }
    };
    if known.iter().any(|known| known == name) {
        return (
            Some(name.to_owned()),
            Check::ok(INTERFACE, format!("{name}, as given")),
        );
    }

    let detail = format!(
        "no interface {name} on this host; it has {}",
        known.join(", ")
    );
    (None, Check::fail(INTERFACE, detail, None))
}

/// Falls back to the one interface besides loopback that is up. A guess
/// is a warning even when it is right: the link NIC may be the one that
/// is down.
fn guess(host: &dyn HostView, why: &str) -> (Option<String>, Check) {
    let fix = Some("rerun with --interface <link interface>".to_owned());
    let names = match host.list_dir(Path::new(SYS_CLASS_NET)) {
        Ok(names) => names,
        Err(error) => {
            let detail = format!("{why}, and cannot read {SYS_CLASS_NET}: {error}");
            return (None, Check::warn(INTERFACE, detail, fix));
        }
    };
    let up: Vec<String> = names
        .into_iter()
        .filter(|name| name != "lo" && is_up(host, name))
        .collect();

    match up.as_slice() {
        [only] => {
            let detail = format!("{only}, a guess: {why}, and it is the only interface up");
            (Some(only.clone()), Check::warn(INTERFACE, detail, fix))
        }
        [] => (
            None,
            Check::warn(INTERFACE, format!("{why}, and no interface is up"), fix),
        ),
        several => {
            let detail = format!(
                "{why}, and several interfaces are up: {}",
                several.join(", ")
            );
            (None, Check::warn(INTERFACE, detail, fix))
        }
    }
}

fn is_up(host: &dyn HostView, name: &str) -> bool {
    host.read_file(&sys(name, "operstate"))
        .is_ok_and(|state| state.trim() == "up")
}

/// Some drivers (tun, some virtual NICs) report no operstate; carrier
/// then tells whether the link is there.
fn carrier(p: &Probe<'_>, link: &str) -> Check {
    match p.read_number(&sys(link, "carrier")) {
        Ok(1) => Check::ok(
            OPERSTATE,
            format!("{link} has carrier (its driver reports no state)"),
        ),
        _ => Check::warn(
            OPERSTATE,
            format!("{link} reports neither a state nor carrier"),
            Some(format!("ip link set dev {link} up")),
        ),
    }
}

fn ethtool_missing(link: &str, dir: &str, error: &io::Error) -> Check {
    if error.kind() == io::ErrorKind::NotFound {
        return Check::warn(
            RINGS,
            "cannot read ring sizes: sysfs does not show them and ethtool is not installed"
                .to_owned(),
            Some(format!(
                "install ethtool, then: ethtool -G {link} {dir} <max from ethtool -g>"
            )),
        );
    }
    let detail = format!("cannot read ring sizes: ethtool -g {link} failed ({error})");
    Check::warn(RINGS, detail, None)
}

fn no_peer(name: &'static str) -> Check {
    Check::warn(
        name,
        "skipped: no --peer given".to_owned(),
        Some("rerun with --peer <receiver IP>".to_owned()),
    )
}

/// The neighbour entries for `target`, from procfs for IPv4 and from
/// `ip` for IPv6.
fn neighbours(host: &dyn HostView, target: IpAddr) -> Result<Vec<Neighbour>, Unreadable> {
    match target {
        IpAddr::V4(_) => {
            let path = Path::new(PROC_ARP);
            let text = host
                .read_file(path)
                .map_err(|error| Unreadable::io(path, &error))?;
            Ok(table::parse_arp(&text))
        }
        IpAddr::V6(_) => {
            let target = target.to_string();
            let text = host
                .run("ip", &["-6", "neigh", "show", &target])
                .map_err(|error| Unreadable::io(Path::new("ip -6 neigh show"), &error))?;
            Ok(table::parse_ip_neigh(&text))
        }
    }
}

fn judge_neighbour(entries: &[Neighbour], target: IpAddr, link: &str, fix: String) -> Check {
    let for_target = || entries.iter().filter(|entry| entry.ip == target);
    let Some(entry) = for_target().find(|entry| entry.interface == link) else {
        let elsewhere: Vec<&str> = for_target().map(|e| e.interface.as_str()).collect();
        let detail = match elsewhere.as_slice() {
            [] => format!("no neighbour entry for {target} on {link}"),
            other => format!(
                "no neighbour entry for {target} on {link}, only on {}",
                other.join(", ")
            ),
        };
        return Check::fail(NEIGHBOUR, detail, Some(fix));
    };

    let mac = entry.lladdr.as_deref().unwrap_or("no address");
    match entry.state {
        NeighbourState::Permanent => {
            Check::ok(NEIGHBOUR, format!("{target} is {mac} on {link}, permanent"))
        }
        NeighbourState::Dynamic => Check::fail(
            NEIGHBOUR,
            format!("{target} is {mac} on {link} but learned: it expires, and no reply renews it"),
            Some(fix),
        ),
        NeighbourState::Incomplete => Check::fail(
            NEIGHBOUR,
            format!("{target} on {link} was asked for and never answered, as over a diode"),
            Some(fix),
        ),
    }
}

fn default_via_link(route: &table::Route, link: &str, command: &str) -> Check {
    let via = route
        .gateway
        .map(|gateway| format!(" via {gateway}"))
        .unwrap_or_default();
    Check::warn(
        DEFAULT_ROUTE,
        format!("the default route leaves through {link}{via}, into a link that answers nothing"),
        Some(format!("{command} {link}")),
    )
}

fn sys(interface: &str, attribute: &str) -> PathBuf {
    Path::new(SYS_CLASS_NET).join(interface).join(attribute)
}
