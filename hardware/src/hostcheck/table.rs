//! Parsers for the kernel's tables and the tools that print the rest:
//! `/proc/net/route`, `/proc/net/ipv6_route`, `/proc/net/arp`,
//! `ip -6 neigh show` and `ethtool -g`.
//!
//! A line that does not parse is skipped, never a panic: the tables come
//! from the kernel, but a different kernel may add columns or rows.

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Route flags shared by both procfs route tables (`linux/route.h`).
const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_REJECT: u32 = 0x0200;

/// ARP entry flags in `/proc/net/arp` (`linux/if_arp.h`).
const ATF_COM: u32 = 0x02;
const ATF_PERM: u32 = 0x04;

/// One usable route: up, and not a reject route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub interface: String,
    pub metric: u32,
}

impl Route {
    /// Whether `ip` falls inside this route's destination prefix.
    pub fn covers(&self, ip: IpAddr) -> bool {
        match (self.dest, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let shift = 32 - u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(shift).unwrap_or(0);
                net.to_bits() & mask == ip.to_bits() & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let shift = 128 - u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(shift).unwrap_or(0);
                net.to_bits() & mask == ip.to_bits() & mask
            }
            _ => false,
        }
    }

    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }

    /// A direct route through the loopback interface.
    pub fn through_lo(dest: IpAddr, prefix: u8) -> Route {
        Route {
            dest,
            prefix,
            gateway: None,
            interface: "lo".to_owned(),
            metric: 0,
        }
    }
}

/// The route the kernel would pick for `ip`: the longest prefix, then the
/// lowest metric.
pub fn best_route(routes: &[Route], ip: IpAddr) -> Option<&Route> {
    routes
        .iter()
        .filter(|route| route.covers(ip))
        .max_by_key(|route| (route.prefix, Reverse(route.metric)))
}

/// Parses `/proc/net/route`: a header, then
/// `Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT`.
pub fn parse_ipv4_routes(text: &str) -> Vec<Route> {
    text.lines().skip(1).filter_map(ipv4_route).collect()
}

/// Parses `/proc/net/ipv6_route`: no header, rows of
/// `dest plen src plen next_hop metric refcnt use flags iface`.
pub fn parse_ipv6_routes(text: &str) -> Vec<Route> {
    text.lines().filter_map(ipv6_route).collect()
}

/// How settled a neighbour entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourState {
    /// Set by the operator; never expires and is never probed.
    Permanent,
    /// Learned from a reply; it goes stale and the kernel asks again.
    Dynamic,
    /// Asked for and never answered.
    Incomplete,
}

/// One neighbour (ARP or NDP) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub lladdr: Option<String>,
    pub interface: String,
    pub state: NeighbourState,
}

/// Parses `/proc/net/arp`: a header, then
/// `IP-address HW-type Flags HW-address Mask Device`.
pub fn parse_arp(text: &str) -> Vec<Neighbour> {
    text.lines().skip(1).filter_map(arp_entry).collect()
}

/// Parses `ip -6 neigh show`: `ADDR [dev IF] [lladdr MAC] [router] STATE`.
pub fn parse_ip_neigh(text: &str) -> Vec<Neighbour> {
    text.lines().filter_map(ip_neigh_entry).collect()
}

/// A NIC ring's size as the driver reports it; `None` where it says n/a.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ring {
    pub current: Option<u32>,
    pub max: Option<u32>,
}

/// The receive and transmit rings from `ethtool -g`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rings {
    pub rx: Ring,
    pub tx: Ring,
}

/// Parses `ethtool -g`: a "Pre-set maximums:" block, then a "Current
/// hardware settings:" block, each with `RX:` and `TX:` lines.
pub fn parse_ethtool_rings(text: &str) -> Rings {
    let mut rings = Rings::default();
    let mut in_current = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Pre-set maximums") {
            in_current = Some(false);
            continue;
        }
        if line.starts_with("Current hardware settings") {
            in_current = Some(true);
            continue;
        }
        let (Some(current), Some((key, value))) = (in_current, line.split_once(':')) else {
            continue;
        };
        let ring = match key.trim() {
            "RX" => &mut rings.rx,
            "TX" => &mut rings.tx,
            _ => continue,
        };
        let slot = if current {
            &mut ring.current
        } else {
            &mut ring.max
        };
        *slot = value.trim().parse().ok();
    }
    rings
}

/// The base page size from `/proc/self/smaps` (`KernelPageSize: 4 kB`).
pub fn parse_page_size(smaps: &str) -> Option<u64> {
    let line = smaps
        .lines()
        .find(|line| line.starts_with("KernelPageSize:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kib * 1024)
}

fn ipv4_route(line: &str) -> Option<Route> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [
        interface,
        dest,
        gateway,
        flags,
        _refcnt,
        _use,
        metric,
        mask,
        ..,
    ] = fields[..]
    else {
        return None;
    };
    let flags = u32::from_str_radix(flags, 16).ok()?;
    if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
        return None;
    }

    let mask = proc_ipv4(mask)?.to_bits();
    Some(Route {
        dest: IpAddr::V4(proc_ipv4(dest)?),
        prefix: u8::try_from(mask.count_ones()).ok()?,
        gateway: (flags & RTF_GATEWAY != 0)
            .then(|| proc_ipv4(gateway).map(IpAddr::V4))
            .flatten(),
        interface: interface.to_owned(),
        metric: metric.parse().ok()?,
    })
}

fn ipv6_route(line: &str) -> Option<Route> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [
        dest,
        prefix,
        _src,
        _src_prefix,
        next_hop,
        metric,
        _refcnt,
        _use,
        flags,
        interface,
    ] = fields[..]
    else {
        return None;
    };
    let flags = u32::from_str_radix(flags, 16).ok()?;
    if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
        return None;
    }

    Some(Route {
        dest: IpAddr::V6(proc_ipv6(dest)?),
        prefix: u8::from_str_radix(prefix, 16).ok()?,
        gateway: (flags & RTF_GATEWAY != 0)
            .then(|| proc_ipv6(next_hop).map(IpAddr::V6))
            .flatten(),
        interface: interface.to_owned(),
        metric: u32::from_str_radix(metric, 16).ok()?,
    })
}

fn arp_entry(line: &str) -> Option<Neighbour> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [ip, _hw_type, flags, lladdr, _mask, interface] = fields[..] else {
        return None;
    };
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
    let state = if flags & ATF_COM == 0 {
        NeighbourState::Incomplete
    } else if flags & ATF_PERM != 0 {
        NeighbourState::Permanent
    } else {
        NeighbourState::Dynamic
    };

    Some(Neighbour {
        ip: ip.parse().ok()?,
        lladdr: (lladdr != "00:00:00:00:00:00").then(|| lladdr.to_owned()),
        interface: interface.to_owned(),
        state,
    })
}

fn ip_neigh_entry(line: &str) -> Option<Neighbour> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        let at = words.iter().position(|word| *word == key)?;
        words.get(at + 1).map(|word| (*word).to_owned())
    };
    let lladdr = after("lladdr");
    let state = match words.last() {
        Some(&"PERMANENT") => NeighbourState::Permanent,
        _ if lladdr.is_some() => NeighbourState::Dynamic,
        _ => NeighbourState::Incomplete,
    };

    Some(Neighbour {
        ip: words.first()?.parse().ok()?,
        interface: after("dev").unwrap_or_default(),
        lladdr,
        state,
    })
}

/// An IPv4 address as procfs prints it: the 32-bit word holding the
/// address in network byte order, printed as a native-endian number.
fn proc_ipv4(hex: &str) -> Option<Ipv4Addr> {
    let raw = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(raw.to_ne_bytes()))
}

/// An IPv6 address as procfs prints it: 32 hex digits in network order.
fn proc_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// An address as procfs prints it on this host's byte order.
    fn proc_hex(addr: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(addr.octets()))
    }

    #[test]
    fn ipv4_routes_parse_on_any_byte_order() {
        let table = format!(
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
             eth0\t{any}\t{gw}\t0003\t0\t0\t100\t{any}\t0\t0\t0\n\
             eth1\t{net}\t{any}\t0001\t0\t0\t0\t{mask}\t0\t0\t0\n",
            any = proc_hex(Ipv4Addr::UNSPECIFIED),
            gw = proc_hex(Ipv4Addr::new(198, 51, 100, 1)),
            net = proc_hex(Ipv4Addr::new(192, 0, 2, 0)),
            mask = proc_hex(Ipv4Addr::new(255, 255, 255, 0)),
        );
        let routes = parse_ipv4_routes(&table);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].gateway, Some(ip("198.51.100.1")));
        assert_eq!(routes[0].metric, 100);
        assert!(routes[0].is_default());
        assert_eq!(routes[1].dest, ip("192.0.2.0"));
        assert_eq!(routes[1].prefix, 24);
        assert_eq!(routes[1].gateway, None);

        let chosen = best_route(&routes, ip("192.0.2.10")).unwrap();
        assert_eq!(chosen.interface, "eth1");
        let chosen = best_route(&routes, ip("203.0.113.7")).unwrap();
        assert_eq!(chosen.interface, "eth0");
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_routes_parse_as_a_little_endian_kernel_prints_them() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = parse_ipv4_routes(table);
        assert_eq!(routes[0].gateway, Some(ip("192.0.2.1")));
        assert_eq!(routes[1].dest, ip("192.0.2.0"));
        assert_eq!(routes[1].prefix, 24);
    }

    #[test]
    fn routes_that_are_down_or_reject_are_ignored() {
        let any = proc_hex(Ipv4Addr::UNSPECIFIED);
        let table = format!(
            "header\neth0\t{any}\t{any}\t0000\t0\t0\t0\t{any}\t0\t0\t0\n\
             eth0\t{any}\t{any}\t0201\t0\t0\t0\t{any}\t0\t0\t0\nshort line\n"
        );
        assert_eq!(parse_ipv4_routes(&table), Vec::new());
    }

    #[test]
    fn ipv6_routes_skip_the_reject_default_on_lo() {
        let table = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";
        let routes = parse_ipv6_routes(table);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].dest, ip("fd00::"));
        assert_eq!(routes[0].prefix, 64);
        assert_eq!(routes[0].metric, 256);
        assert_eq!(routes[1].gateway, Some(ip("fd00::1")));

        assert_eq!(best_route(&routes, ip("fd00::5")).unwrap().prefix, 64);
        assert!(best_route(&routes, ip("2001:db8::1")).unwrap().is_default());
        assert_eq!(best_route(&routes, ip("192.0.2.1")), None);
    }

    #[test]
    fn arp_flags_tell_permanent_from_learned() {
        let table = "\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.10       0x1         0x6         02:00:00:00:00:0a     *        eth1
192.0.2.11       0x1         0x2         02:00:00:00:00:0b     *        eth1
192.0.2.12       0x1         0x0         00:00:00:00:00:00     *        eth1
";
        let entries = parse_arp(table);
        assert_eq!(
            entries[0],
            Neighbour {
                ip: ip("192.0.2.10"),
                lladdr: Some("02:00:00:00:00:0a".into()),
                interface: "eth1".into(),
                state: NeighbourState::Permanent,
            }
        );
        assert_eq!(entries[1].state, NeighbourState::Dynamic);
        assert_eq!(entries[2].state, NeighbourState::Incomplete);
        assert_eq!(entries[2].lladdr, None);
    }

    #[test]
    fn ip_neigh_lines_parse() {
        let text = "\
fd00::10 dev eth1 lladdr 02:00:00:00:00:0a PERMANENT
fd00::11 dev eth1 lladdr 02:00:00:00:00:0b router STALE
fd00::12 dev eth1 FAILED
";
        let entries = parse_ip_neigh(text);
        assert_eq!(entries[0].state, NeighbourState::Permanent);
        assert_eq!(entries[0].interface, "eth1");
        assert_eq!(entries[1].state, NeighbourState::Dynamic);
        assert_eq!(entries[1].lladdr.as_deref(), Some("02:00:00:00:00:0b"));
        assert_eq!(entries[2].state, NeighbourState::Incomplete);
    }

    #[test]
    fn ethtool_rings_read_current_and_maximum() {
        let text = "\
Ring parameters for eth1:
Pre-set maximums:
RX:\t\t\t4096
RX Mini:\t\tn/a
RX Jumbo:\t\tn/a
TX:\t\t\t2048
TX push buff len:\tn/a
Current hardware settings:
RX:\t\t\t512
RX Mini:\t\tn/a
RX Jumbo:\t\tn/a
TX:\t\t\tn/a
RX Buf Len:\t\tn/a
TCP data split:\t\tn/a
";
        let rings = parse_ethtool_rings(text);
        assert_eq!(
            rings.rx,
            Ring {
                current: Some(512),
                max: Some(4096)
            }
        );
        assert_eq!(
            rings.tx,
            Ring {
                current: None,
                max: Some(2048)
            }
        );
    }

    #[test]
    fn page_size_comes_from_smaps() {
        let smaps = "55d0c0000000-55d0c0001000 r--p 00000000 00:1f 42 /usr/bin/x\n\
                     Size:                  4 kB\nKernelPageSize:        4 kB\n";
        assert_eq!(parse_page_size(smaps), Some(4096));
        assert_eq!(parse_page_size("KernelPageSize: 64 kB"), Some(65536));
        assert_eq!(parse_page_size("Size: 4 kB"), None);
    }
}
