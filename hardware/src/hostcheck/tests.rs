//! The checks against made-up hosts: a map of paths to contents and of
//! command lines to output, so every outcome is tested without touching
//! this machine's network settings.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};

use super::*;

/// A host made of files and command outputs; anything else is missing.
#[derive(Debug, Default)]
struct FakeHost {
    files: BTreeMap<PathBuf, String>,
    commands: BTreeMap<String, Result<String, String>>,
}

impl FakeHost {
    fn file(mut self, path: &str, contents: &str) -> FakeHost {
        self.files.insert(path.into(), contents.to_owned());
        self
    }

    fn without(mut self, path: &str) -> FakeHost {
        self.files.remove(Path::new(path));
        self
    }

    fn command(mut self, line: &str, output: &str) -> FakeHost {
        self.commands.insert(line.to_owned(), Ok(output.to_owned()));
        self
    }

    fn failing_command(mut self, line: &str, stderr: &str) -> FakeHost {
        self.commands
            .insert(line.to_owned(), Err(stderr.to_owned()));
        self
    }

    fn not_installed(mut self, line: &str) -> FakeHost {
        self.commands.remove(line);
        self
    }

    fn interface(self, name: &str, operstate: &str, mtu: u32) -> FakeHost {
        self.file(&format!("/sys/class/net/{name}/operstate"), operstate)
            .file(&format!("/sys/class/net/{name}/mtu"), &format!("{mtu}\n"))
    }
}

impl HostView for FakeHost {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|file| file.strip_prefix(path).ok())
            .filter_map(|rest| rest.iter().next())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(names)
    }

    fn run(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let line = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>();
        match self.commands.get(&line.join(" ")) {
            Some(Ok(output)) => Ok(output.clone()),
            Some(Err(stderr)) => Err(io::Error::other(stderr.clone())),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "not installed")),
        }
    }
}

/// An address as procfs prints it on this host's byte order.
fn proc_hex(addr: Ipv4Addr) -> String {
    format!("{:08X}", u32::from_ne_bytes(addr.octets()))
}

/// `/proc/net/route` with the given (interface, destination, prefix,
/// gateway) rows.
fn route_table(rows: &[(&str, &str, u32, Option<&str>)]) -> String {
    let mut text =
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
            .to_owned();
    for (interface, dest, prefix, gateway) in rows {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        let flags = if gateway.is_some() { 3 } else { 1 };
        let gateway = gateway.map_or(Ipv4Addr::UNSPECIFIED, |g| g.parse().unwrap());
        text.push_str(&format!(
            "{interface}\t{}\t{}\t{flags:04X}\t0\t0\t0\t{}\t0\t0\t0\n",
            proc_hex(dest.parse().unwrap()),
            proc_hex(gateway),
            proc_hex(Ipv4Addr::from_bits(mask)),
        ));
    }
    text
}

fn arp_table(rows: &[(&str, &str, &str, &str)]) -> String {
    let mut text =
        "IP address       HW type     Flags       HW address            Mask     Device\n"
            .to_owned();
    for (ip, flags, mac, device) in rows {
        text.push_str(&format!(
            "{ip:<17}0x1         {flags:<12}{mac:<22}*        {device}\n"
        ));
    }
    text
}

fn ethtool_rings(rx: (u32, u32), tx: (u32, u32)) -> String {
    format!(
        "Ring parameters for eth1:\nPre-set maximums:\nRX:\t\t\t{}\nRX Mini:\t\tn/a\n\
         RX Jumbo:\t\tn/a\nTX:\t\t\t{}\nCurrent hardware settings:\nRX:\t\t\t{}\n\
         RX Mini:\t\tn/a\nRX Jumbo:\t\tn/a\nTX:\t\t\t{}\n",
        rx.1, tx.1, rx.0, tx.0
    )
}

const RECEIVER_IP: &str = "192.0.2.10";
const RECEIVER_MAC: &str = "02:00:00:00:00:0a";

/// A low-side host set up as docs/DEPLOYMENT.md says: eth0 for the office
/// network, eth1 on the diode with a permanent entry for the receiver.
fn sender_host() -> FakeHost {
    FakeHost::default()
        .interface("lo", "unknown", 65536)
        .interface("eth0", "up", 1500)
        .interface("eth1", "up", 1500)
        .file(
            "/proc/net/route",
            &route_table(&[
                ("eth0", "0.0.0.0", 0, Some("198.51.100.1")),
                ("eth0", "198.51.100.0", 24, None),
                ("eth1", "192.0.2.0", 24, None),
            ]),
        )
        .file("/proc/net/ipv6_route", "")
        .file(
            "/proc/net/arp",
            &arp_table(&[
                ("198.51.100.1", "0x2", "02:00:00:00:00:01", "eth0"),
                (RECEIVER_IP, "0x6", RECEIVER_MAC, "eth1"),
            ]),
        )
        .file("/proc/sys/net/core/wmem_max", "8388608\n")
        .command("ethtool -g eth1", &ethtool_rings((512, 4096), (4096, 4096)))
}

/// A high-side host: eth0 for the admin network, eth1 on the diode.
fn receiver_host() -> FakeHost {
    FakeHost::default()
        .interface("lo", "unknown", 65536)
        .interface("eth0", "up", 1500)
        .interface("eth1", "up", 1500)
        .file(
            "/proc/net/route",
            &route_table(&[
                ("eth0", "0.0.0.0", 0, Some("10.0.0.1")),
                ("eth0", "10.0.0.0", 24, None),
                ("eth1", "192.0.2.0", 24, None),
            ]),
        )
        .file("/proc/net/ipv6_route", "")
        .file("/proc/sys/net/ipv4/conf/all/rp_filter", "0\n")
        .file("/proc/sys/net/ipv4/conf/eth1/rp_filter", "0\n")
        .file("/proc/sys/net/core/rmem_max", "33554432\n")
        .file("/proc/sys/net/core/netdev_max_backlog", "2048\n")
        .file("/proc/sys/net/ipv4/udp_mem", "190000\t253000\t380000\n")
        .file("/proc/sys/net/ipv4/udp_rmem_min", "4096\n")
        .file("/proc/self/smaps", "KernelPageSize:        4 kB\n")
        .command("ethtool -g eth1", &ethtool_rings((4096, 4096), (512, 4096)))
}

fn sender_config() -> LinkCheckConfig {
    LinkCheckConfig {
        side: Side::Sender,
        interface: None,
        peer: Some(RECEIVER_IP.parse().unwrap()),
        mtu: 1500,
        buffers: SocketOptions::default(),
        rate: Some("1G".parse().unwrap()),
    }
}

fn receiver_config() -> LinkCheckConfig {
    LinkCheckConfig {
        side: Side::Receiver,
        interface: Some("eth1".into()),
        peer: None,
        ..sender_config()
    }
}

const SENDER_ROWS: [&str; 7] = [
    "interface",
    "operstate",
    "mtu",
    "ring sizes",
    "route",
    "neighbour",
    "net.core.wmem_max",
];

const RECEIVER_ROWS: [&str; 10] = [
    "interface",
    "operstate",
    "mtu",
    "ring sizes",
    "rp_filter",
    "default route",
    "net.core.rmem_max",
    "net.core.netdev_max_backlog",
    "net.ipv4.udp_mem",
    "net.ipv4.udp_rmem_min",
];

fn names(checks: &[Check]) -> Vec<&'static str> {
    checks.iter().map(|check| check.name).collect()
}

fn row(checks: Vec<Check>, name: &str) -> Check {
    checks
        .into_iter()
        .find(|check| check.name == name)
        .unwrap_or_else(|| panic!("no {name} row"))
}

fn fix(check: &Check) -> &str {
    check
        .fix
        .as_deref()
        .unwrap_or_else(|| panic!("{} has no fix", check.name))
}

#[test]
fn a_sender_set_up_for_the_diode_passes_every_check() {
    let checks = run_checks(&sender_config(), &sender_host());
    assert_eq!(names(&checks), SENDER_ROWS);
    for check in &checks {
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert_eq!(check.fix, None);
    }
    assert_eq!(
        checks[0].detail,
        "eth1, which the route to 192.0.2.10 leaves through"
    );
    assert_eq!(checks[3].detail, "eth1 tx ring 4096 of 4096 descriptors");
    assert_eq!(
        checks[5].detail,
        "192.0.2.10 is 02:00:00:00:00:0a on eth1, permanent"
    );
    assert_eq!(
        checks[6].detail,
        "8 MiB allows the 8 MiB send buffer (67 ms at 1 Gbit/s)"
    );
}

#[test]
fn a_receiver_set_up_for_the_diode_passes_every_check() {
    let checks = run_checks(&receiver_config(), &receiver_host());
    assert_eq!(names(&checks), RECEIVER_ROWS);
    for check in &checks {
        assert_eq!(check.status, Status::Ok, "{check:?}");
    }
    assert_eq!(checks[4].detail, "off on eth1 (all=0, eth1=0)");
    assert_eq!(
        checks[6].detail,
        "32 MiB allows the 32 MiB receive buffer (268 ms at 1 Gbit/s)"
    );
    assert_eq!(
        checks[7].detail,
        "2048 packets, 24 ms of datagrams at 1 Gbit/s"
    );
    assert_eq!(
        checks[8].detail,
        "UDP may use 1.4 GiB in all, enough for the receive buffer's 64 MiB"
    );
}

#[test]
fn a_capped_receive_buffer_fails_with_the_sysctl_to_raise() {
    let host = receiver_host().file("/proc/sys/net/core/rmem_max", "4194304\n");
    let check = row(run_checks(&receiver_config(), &host), "net.core.rmem_max");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.detail,
        "4 MiB caps the 32 MiB receive buffer at 33 ms of traffic at 1 Gbit/s"
    );
    assert_eq!(fix(&check), "sysctl -w net.core.rmem_max=33554432");
}

#[test]
fn a_capped_send_buffer_is_a_warning_with_the_sysctl_to_raise() {
    let host = sender_host().file("/proc/sys/net/core/wmem_max", "212992\n");
    let check = row(run_checks(&sender_config(), &host), "net.core.wmem_max");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(fix(&check), "sysctl -w net.core.wmem_max=8388608");
}

#[test]
fn buffers_are_checked_against_what_the_daemon_asks_for() {
    let mut config = receiver_config();
    config.buffers.recv_buffer = 4 << 20;
    let host = receiver_host().file("/proc/sys/net/core/rmem_max", "4194304\n");
    let check = row(run_checks(&config, &host), "net.core.rmem_max");
    assert_eq!(check.status, Status::Ok);

    config.buffers.recv_buffer = 0;
    let check = row(run_checks(&config, &host), "net.core.rmem_max");
    assert_eq!(check.status, Status::Ok);
    assert_eq!(
        check.detail,
        "4 MiB; the receive buffer is left at the default"
    );
}

#[test]
fn the_default_backlog_is_short_for_a_gigabit() {
    let host = receiver_host().file("/proc/sys/net/core/netdev_max_backlog", "1000\n");
    let check = row(
        run_checks(&receiver_config(), &host),
        "net.core.netdev_max_backlog",
    );
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "1000 packets, 11 ms of datagrams at 1 Gbit/s; keep 20 ms for softirq delays"
    );
    assert_eq!(fix(&check), "sysctl -w net.core.netdev_max_backlog=2048");

    let ten_gigabit = LinkCheckConfig {
        rate: Some("10G".parse().unwrap()),
        ..receiver_config()
    };
    let check = row(
        run_checks(&ten_gigabit, &host),
        "net.core.netdev_max_backlog",
    );
    assert_eq!(fix(&check), "sysctl -w net.core.netdev_max_backlog=32768");
}

#[test]
fn jumbo_frames_need_a_shorter_backlog() {
    let config = LinkCheckConfig {
        mtu: 9000,
        rate: Some("10G".parse().unwrap()),
        ..receiver_config()
    };
    let host = receiver_host().file("/proc/sys/net/core/netdev_max_backlog", "4096\n");
    let check = row(run_checks(&config, &host), "net.core.netdev_max_backlog");
    assert_eq!(check.status, Status::Ok);
    assert_eq!(
        check.detail,
        "4096 packets, 29 ms of datagrams at 10 Gbit/s"
    );
}

#[test]
fn without_a_rate_the_backlog_is_sized_for_an_assumed_gigabit() {
    let config = LinkCheckConfig {
        rate: None,
        ..receiver_config()
    };
    let check = row(
        run_checks(&config, &receiver_host()),
        "net.core.netdev_max_backlog",
    );
    assert_eq!(
        check.detail,
        "2048 packets, 24 ms of datagrams at 1 Gbit/s (assumed; pass --rate)"
    );
}

#[test]
fn a_small_udp_memory_limit_is_raised_above_the_receive_buffer() {
    let host = receiver_host().file("/proc/sys/net/ipv4/udp_mem", "4096 8192 12288\n");
    let check = row(run_checks(&receiver_config(), &host), "net.ipv4.udp_mem");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "UDP may use 48 MiB in all, less than the receive buffer's 64 MiB"
    );
    assert_eq!(
        fix(&check),
        "sysctl -w net.ipv4.udp_mem=\"4096 8192 32768\""
    );
}

#[test]
fn udp_memory_is_counted_in_the_kernels_page_size() {
    let host = receiver_host()
        .file("/proc/sys/net/ipv4/udp_mem", "256 512 1024\n")
        .file("/proc/self/smaps", "KernelPageSize:       64 kB\n");
    let check = row(run_checks(&receiver_config(), &host), "net.ipv4.udp_mem");
    assert_eq!(check.status, Status::Ok);

    let host = host.without("/proc/self/smaps");
    let check = row(run_checks(&receiver_config(), &host), "net.ipv4.udp_mem");
    assert_eq!(check.status, Status::Warn);
    assert!(
        check.detail.ends_with(", assuming 4 KiB pages"),
        "{}",
        check.detail
    );
    assert_eq!(fix(&check), "sysctl -w net.ipv4.udp_mem=\"256 512 32768\"");
}

#[test]
fn a_malformed_udp_mem_is_a_warning() {
    let host = receiver_host().file("/proc/sys/net/ipv4/udp_mem", "190000 253000\n");
    let check = row(run_checks(&receiver_config(), &host), "net.ipv4.udp_mem");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "cannot read net.ipv4.udp_mem: expected three numbers, got \"190000 253000\""
    );
}

#[test]
fn udp_rmem_min_must_hold_one_jumbo_datagram() {
    let config = LinkCheckConfig {
        mtu: 9000,
        ..receiver_config()
    };
    let host = receiver_host().interface("eth1", "up", 9000);
    let check = row(run_checks(&config, &host), "net.ipv4.udp_rmem_min");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(fix(&check), "sysctl -w net.ipv4.udp_rmem_min=32768");

    let check = row(
        run_checks(&receiver_config(), &host),
        "net.ipv4.udp_rmem_min",
    );
    assert_eq!(check.status, Status::Ok);
}

#[test]
fn a_sender_without_a_neighbour_entry_fails() {
    let host = sender_host().file("/proc/net/arp", &arp_table(&[]));
    let check = row(run_checks(&sender_config(), &host), "neighbour");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(check.detail, "no neighbour entry for 192.0.2.10 on eth1");
    assert_eq!(
        fix(&check),
        "ip neigh replace 192.0.2.10 lladdr <receiver MAC> dev eth1 nud permanent"
    );
}

#[test]
fn a_learned_or_unanswered_neighbour_entry_fails() {
    for (flags, mac, detail) in [
        (
            "0x2",
            RECEIVER_MAC,
            "192.0.2.10 is 02:00:00:00:00:0a on eth1 but learned: it expires, and no reply renews it",
        ),
        (
            "0x0",
            "00:00:00:00:00:00",
            "192.0.2.10 on eth1 was asked for and never answered, as over a diode",
        ),
    ] {
        let host = sender_host().file(
            "/proc/net/arp",
            &arp_table(&[(RECEIVER_IP, flags, mac, "eth1")]),
        );
        let check = row(run_checks(&sender_config(), &host), "neighbour");
        assert_eq!(check.status, Status::Fail);
        assert_eq!(check.detail, detail);
    }
}

#[test]
fn a_permanent_entry_on_another_interface_does_not_count() {
    let arp = arp_table(&[(RECEIVER_IP, "0x6", RECEIVER_MAC, "eth0")]);
    let host = sender_host().file("/proc/net/arp", &arp);
    let check = row(run_checks(&sender_config(), &host), "neighbour");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.detail,
        "no neighbour entry for 192.0.2.10 on eth1, only on eth0"
    );
}

#[test]
fn an_ipv6_receiver_needs_a_permanent_ndp_entry() {
    let ipv6_route = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
                      00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth1\n";
    let host = sender_host()
        .file("/proc/net/ipv6_route", ipv6_route)
        .command(
            "ip -6 neigh show fd00::10",
            "fd00::10 dev eth1 lladdr 02:00:00:00:00:0a PERMANENT\n",
        );
    let config = LinkCheckConfig {
        peer: Some("fd00::10".parse().unwrap()),
        ..sender_config()
    };
    let checks = run_checks(&config, &host);
    assert_eq!(
        checks[0].detail,
        "eth1, which the route to fd00::10 leaves through"
    );
    let check = row(checks, "neighbour");
    assert_eq!(check.status, Status::Ok);
    assert_eq!(
        check.detail,
        "fd00::10 is 02:00:00:00:00:0a on eth1, permanent"
    );

    let host = host.command(
        "ip -6 neigh show fd00::10",
        "fd00::10 dev eth1 lladdr 02:00:00:00:00:0a STALE\n",
    );
    assert_eq!(
        row(run_checks(&config, &host), "neighbour").status,
        Status::Fail
    );
}

#[test]
fn a_routed_receiver_needs_the_gateways_entry() {
    let host = sender_host()
        .file(
            "/proc/net/route",
            &route_table(&[("eth1", "203.0.113.0", 24, Some("192.0.2.1"))]),
        )
        .file("/proc/net/arp", &arp_table(&[]));
    let config = LinkCheckConfig {
        peer: Some("203.0.113.9".parse().unwrap()),
        ..sender_config()
    };
    let checks = run_checks(&config, &host);
    assert_eq!(checks[4].status, Status::Warn);
    assert_eq!(
        checks[4].detail,
        "203.0.113.9 is reached through gateway 192.0.2.1, so it needs the static entry"
    );
    assert_eq!(
        fix(&checks[5]),
        "ip neigh replace 192.0.2.1 lladdr <gateway MAC> dev eth1 nud permanent"
    );
}

#[test]
fn a_peer_without_a_route_fails_the_route_check() {
    let config = LinkCheckConfig {
        interface: Some("eth1".into()),
        peer: Some("203.0.113.9".parse().unwrap()),
        ..sender_config()
    };
    let host = sender_host().file(
        "/proc/net/route",
        &route_table(&[("eth1", "192.0.2.0", 24, None)]),
    );
    let check = row(run_checks(&config, &host), "route");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(check.detail, "no route reaches 203.0.113.9");
    assert_eq!(fix(&check), "ip route add 203.0.113.9 dev eth1");

    let config = LinkCheckConfig {
        interface: Some("eth0".into()),
        ..sender_config()
    };
    let check = row(run_checks(&config, &sender_host()), "route");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.detail,
        "the route to 192.0.2.10 leaves through eth1, not eth0"
    );
}

#[test]
fn a_loopback_peer_is_a_lab_through_lo() {
    let host = sender_host().interface("lo", "unknown", 65536);
    let config = LinkCheckConfig {
        peer: Some(IpAddr::from([127, 0, 0, 1])),
        ..sender_config()
    };
    let checks = run_checks(&config, &host);
    assert_eq!(
        checks[0].detail,
        "lo, which the route to 127.0.0.1 leaves through"
    );
    assert_eq!(checks[4].status, Status::Warn);
    assert_eq!(
        checks[4].detail,
        "127.0.0.1 is loopback: this checks a lab, not a diode link"
    );
    assert_eq!(checks[5].status, Status::Ok);
    assert_eq!(checks[5].detail, "127.0.0.1 is loopback and needs no entry");
}

#[test]
fn an_interface_smaller_than_the_mtu_fails() {
    let config = LinkCheckConfig {
        mtu: 9000,
        ..sender_config()
    };
    let check = row(run_checks(&config, &sender_host()), "mtu");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.detail,
        "eth1 MTU is 1500, below the 9000 datagrams use; each datagram would be fragmented or refused"
    );
    assert_eq!(fix(&check), "ip link set dev eth1 mtu 9000");

    let check = row(
        run_checks(
            &receiver_config(),
            &receiver_host().interface("eth1", "up", 1400),
        ),
        "mtu",
    );
    assert_eq!(check.status, Status::Fail);
    assert_eq!(fix(&check), "ip link set dev eth1 mtu 1500");
}

#[test]
fn an_mtu_above_jumbo_is_a_warning() {
    let config = LinkCheckConfig {
        mtu: 9216,
        ..receiver_config()
    };
    let host = receiver_host().interface("eth1", "up", 9216);
    let check = row(run_checks(&config, &host), "mtu");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(fix(&check), "use an MTU of 9000 or less");
}

#[test]
fn a_down_interface_fails() {
    let host = receiver_host().interface("eth1", "down", 1500);
    let check = row(run_checks(&receiver_config(), &host), "operstate");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.detail,
        "eth1 is down; nothing arrives on an interface that is not up"
    );
    assert_eq!(fix(&check), "ip link set dev eth1 up");

    let host = sender_host().interface("eth1", "lowerlayerdown", 1500);
    let check = row(run_checks(&sender_config(), &host), "operstate");
    assert_eq!(check.status, Status::Fail);
    assert_eq!(
        check.detail,
        "eth1 is lowerlayerdown; a NIC without carrier sends nothing; the diode must give it link"
    );
}

#[test]
fn an_unknown_operstate_falls_back_to_carrier() {
    let host = receiver_host()
        .interface("eth1", "unknown", 1500)
        .file("/sys/class/net/eth1/carrier", "1\n");
    let check = row(run_checks(&receiver_config(), &host), "operstate");
    assert_eq!(check.status, Status::Ok);

    let host = host.file("/sys/class/net/eth1/carrier", "0\n");
    let check = row(run_checks(&receiver_config(), &host), "operstate");
    assert_eq!(check.status, Status::Warn);
}

#[test]
fn a_named_interface_that_does_not_exist_fails() {
    let config = LinkCheckConfig {
        interface: Some("eth9".into()),
        ..receiver_config()
    };
    let checks = run_checks(&config, &receiver_host());
    assert_eq!(names(&checks), RECEIVER_ROWS);
    assert_eq!(checks[0].status, Status::Fail);
    assert_eq!(
        checks[0].detail,
        "no interface eth9 on this host; it has eth0, eth1, lo"
    );
    assert_eq!(
        checks[1].detail,
        "skipped: no link interface to check (see the interface row)"
    );
}

#[test]
fn without_interface_or_peer_the_only_interface_up_is_a_guess() {
    let config = LinkCheckConfig {
        interface: None,
        ..receiver_config()
    };
    let host = receiver_host().interface("eth0", "down", 1500);
    let checks = run_checks(&config, &host);
    assert_eq!(checks[0].status, Status::Warn);
    assert_eq!(
        checks[0].detail,
        "eth1, a guess: no --peer given, and it is the only interface up"
    );
    assert_eq!(fix(&checks[0]), "rerun with --interface <link interface>");
    assert_eq!(checks[1].status, Status::Ok);

    let checks = run_checks(&config, &receiver_host());
    assert_eq!(
        checks[0].detail,
        "no --peer given, and several interfaces are up: eth0, eth1"
    );
    assert!(checks[1].detail.starts_with("skipped"));
}

#[test]
fn ring_sizes_come_from_ethtool_when_it_is_installed() {
    let host = receiver_host().command("ethtool -g eth1", &ethtool_rings((512, 4096), (512, 4096)));
    let check = row(run_checks(&receiver_config(), &host), "ring sizes");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "eth1 rx ring 512 of 4096 descriptors; a longer ring rides out longer interrupt delays"
    );
    assert_eq!(fix(&check), "ethtool -G eth1 rx 4096");

    let check = row(
        run_checks(
            &sender_config(),
            &sender_host().command("ethtool -g eth1", &ethtool_rings((512, 4096), (512, 4096))),
        ),
        "ring sizes",
    );
    assert_eq!(check.status, Status::Ok);
    assert_eq!(
        check.detail,
        "eth1 tx ring 512 of 4096 descriptors; the pacer's bursts fit"
    );
}

#[test]
fn without_ethtool_ring_sizes_are_a_warning() {
    let host = receiver_host().not_installed("ethtool -g eth1");
    let check = row(run_checks(&receiver_config(), &host), "ring sizes");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "cannot read ring sizes: sysfs does not show them and ethtool is not installed"
    );
    assert_eq!(
        fix(&check),
        "install ethtool, then: ethtool -G eth1 rx <max from ethtool -g>"
    );

    let host = receiver_host()
        .failing_command("ethtool -g eth1", "netlink error: Operation not supported");
    let check = row(run_checks(&receiver_config(), &host), "ring sizes");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "cannot read ring sizes: ethtool -g eth1 failed (netlink error: Operation not supported)"
    );
    assert_eq!(check.fix, None);
}

#[test]
fn strict_reverse_path_filtering_is_a_warning() {
    let host = receiver_host().file("/proc/sys/net/ipv4/conf/all/rp_filter", "1\n");
    let check = row(run_checks(&receiver_config(), &host), "rp_filter");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "strict on eth1 (all=1, eth1=0): datagrams with no route back are dropped"
    );
    assert_eq!(fix(&check), "sysctl -w net.ipv4.conf.all.rp_filter=0");
}

#[test]
fn loose_reverse_path_filtering_needs_a_route_to_the_sender() {
    let host = receiver_host()
        .file("/proc/sys/net/ipv4/conf/eth1/rp_filter", "2\n")
        .file(
            "/proc/net/route",
            &route_table(&[("eth1", "192.0.2.0", 24, None)]),
        );
    let check = row(run_checks(&receiver_config(), &host), "rp_filter");
    assert_eq!(check.status, Status::Ok);

    let config = LinkCheckConfig {
        peer: Some("198.51.100.7".parse().unwrap()),
        ..receiver_config()
    };
    let check = row(run_checks(&config, &host), "rp_filter");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "loose on eth1 (all=0, eth1=2), and no route covers 198.51.100.7: it is dropped"
    );
    assert_eq!(fix(&check), "sysctl -w net.ipv4.conf.eth1.rp_filter=0");
}

#[test]
fn a_default_route_over_the_link_is_a_warning() {
    let host = receiver_host().file(
        "/proc/net/route",
        &route_table(&[
            ("eth1", "0.0.0.0", 0, Some("192.0.2.1")),
            ("eth1", "192.0.2.0", 24, None),
        ]),
    );
    let check = row(run_checks(&receiver_config(), &host), "default route");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "the default route leaves through eth1 via 192.0.2.1, into a link that answers nothing"
    );
    assert_eq!(fix(&check), "ip route del default dev eth1");

    let check = row(
        run_checks(&receiver_config(), &receiver_host()),
        "default route",
    );
    assert_eq!(check.detail, "no default route leaves through eth1");
}

#[test]
fn a_host_with_nothing_readable_warns_on_every_row() {
    for (config, rows) in [
        (sender_config(), &SENDER_ROWS[..]),
        (receiver_config(), &RECEIVER_ROWS[..]),
    ] {
        let checks = run_checks(&config, &FakeHost::default());
        assert_eq!(names(&checks), rows);
        for check in &checks {
            assert_eq!(check.status, Status::Warn, "{check:?}");
        }
    }
}

#[test]
fn an_unreadable_sysctl_is_a_warning_naming_the_file() {
    let host = receiver_host().without("/proc/sys/net/core/rmem_max");
    let check = row(run_checks(&receiver_config(), &host), "net.core.rmem_max");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        format!(
            "cannot read /proc/sys/net/core/rmem_max: {}",
            io::Error::from(io::ErrorKind::NotFound)
        )
    );

    let host = receiver_host().file("/proc/sys/net/core/rmem_max", "lots\n");
    let check = row(run_checks(&receiver_config(), &host), "net.core.rmem_max");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(
        check.detail,
        "cannot read /proc/sys/net/core/rmem_max: unexpected contents \"lots\""
    );
}

#[test]
fn the_text_report_aligns_rows_and_counts_outcomes() {
    let checks = [
        Check::ok("mtu", "eth1 MTU 1500 fits 1500-byte datagrams".into()),
        Check::fail(
            "net.core.rmem_max",
            "4 MiB caps it".into(),
            Some("sysctl -w net.core.rmem_max=33554432".into()),
        ),
        Check::warn("rp_filter", "strict".into(), None),
    ];
    let expected = "\
ok    mtu                eth1 MTU 1500 fits 1500-byte datagrams
FAIL  net.core.rmem_max  4 MiB caps it
                         fix: sysctl -w net.core.rmem_max=33554432
WARN  rp_filter          strict

1 ok, 1 warning, 1 failure
";
    assert_eq!(render_text(&checks), expected);
    assert_eq!(
        Summary::of(&checks),
        Summary {
            ok: 1,
            warnings: 1,
            failures: 1
        }
    );
    assert_eq!(exit_status(&checks), ExitCode::FAILURE);
    assert_eq!(exit_status(&checks[..1]), ExitCode::SUCCESS);
    assert_eq!(exit_status(&checks[2..]), ExitCode::SUCCESS);
}

#[test]
fn the_json_report_carries_every_row_and_the_summary() {
    let checks = run_checks(
        &receiver_config(),
        &receiver_host().file("/proc/sys/net/core/rmem_max", "4194304\n"),
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&checks).unwrap()).unwrap();
    assert_eq!(
        json["checks"].as_array().unwrap().len(),
        RECEIVER_ROWS.len()
    );
    assert_eq!(json["checks"][0]["name"], "interface");
    assert_eq!(json["checks"][0]["status"], "ok");
    assert_eq!(json["checks"][0]["fix"], serde_json::Value::Null);
    assert_eq!(json["checks"][6]["status"], "fail");
    assert_eq!(
        json["checks"][6]["fix"],
        "sysctl -w net.core.rmem_max=33554432"
    );
    assert_eq!(json["summary"]["ok"], 9);
    assert_eq!(json["summary"]["failures"], 1);
    assert_eq!(json["passed"], false);
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    check: CheckLinkArgs,
}

#[test]
fn check_link_args_flatten_into_a_command() {
    Cli::command().debug_assert();

    let cli = Cli::parse_from([
        "check-link",
        "--peer",
        "192.0.2.10",
        "--rate",
        "10G",
        "--json",
    ]);
    assert_eq!(
        cli.check,
        CheckLinkArgs {
            interface: None,
            peer: Some(IpAddr::from([192, 0, 2, 10])),
            mtu: 1500,
            rate: Some("10G".parse().unwrap()),
            json: true,
        }
    );
    let config = cli.check.config(Side::Sender, SocketOptions::default());
    assert_eq!(config.side, Side::Sender);
    assert_eq!(config.buffers.send_buffer, 8 << 20);

    assert!(Cli::try_parse_from(["check-link", "--peer", "receiver"]).is_err());
    assert!(Cli::try_parse_from(["check-link", "--rate", "8MB"]).is_err());
}

/// This machine, whatever it looks like: every row is there and nothing
/// panics. Its statuses depend on the host, so they are not asserted.
#[test]
fn this_host_yields_a_row_for_every_check() {
    for (side, rows) in [
        (Side::Sender, &SENDER_ROWS[..]),
        (Side::Receiver, &RECEIVER_ROWS[..]),
    ] {
        for peer in [None, Some(IpAddr::from([127, 0, 0, 1]))] {
            let config = LinkCheckConfig {
                side,
                interface: None,
                peer,
                mtu: 1500,
                buffers: SocketOptions::default(),
                rate: None,
            };
            let checks = run_checks(&config, &SystemHost);
            assert_eq!(names(&checks), rows);
            assert!(checks.iter().all(|check| !check.detail.is_empty()));
            let text = render_text(&checks);
            assert!(text.ends_with(&format!("{}\n", Summary::of(&checks))));
            println!("{side}, peer {peer:?}:\n{text}");
        }
    }
}
