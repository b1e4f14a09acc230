//! The in-process diode between two real UDP sockets on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers of these tests fail the test by panicking"
)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use sluice_hardware::{Diode, DiodeConfig, DiodeHandle, Impairments, SocketOptions};

const COUNT: u64 = 10_000;
/// Datagrams sent before waiting for the diode to catch up, so no kernel
/// buffer on loopback can overflow and muddy the counts.
const WINDOW: u64 = 100;
const PATIENCE: Duration = Duration::from_secs(20);

fn loopback() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

fn spawn(forward: SocketAddr, impairments: Impairments) -> DiodeHandle {
    let socket = SocketOptions {
        recv_buffer: 1 << 20,
        send_buffer: 1 << 20,
    };
    let listen = (Ipv4Addr::LOCALHOST, 0).into();
    Diode::spawn(DiodeConfig {
        listen,
        forward,
        impairments,
        socket,
    })
    .unwrap()
}

/// Datagram `id`: its number, then a body that depends on it.
fn numbered(id: u64) -> Vec<u8> {
    let mut datagram = id.to_be_bytes().to_vec();
    datagram.extend((0..200u64).map(|i| (id.wrapping_mul(31) + i) as u8));
    datagram
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Receives whatever has arrived, waiting up to `quiet` for each datagram.
fn drain(sink: &UdpSocket, quiet: Duration, into: &mut Vec<Vec<u8>>) {
    sink.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 2048];
    while let Ok(len) = sink.recv(&mut buf) {
        into.push(buf[..len].to_vec());
    }
}

/// Sends `COUNT` numbered datagrams through the diode in windows, and
/// returns what reached the sink.
fn send_through(diode: &DiodeHandle, source: &UdpSocket, sink: &UdpSocket) -> Vec<Vec<u8>> {
    let mut arrived = Vec::new();
    for id in 0..COUNT {
        source.send_to(&numbered(id), diode.local_addr()).unwrap();
        if (id + 1) % WINDOW == 0 {
            wait_until("the diode to receive", || diode.stats().received == id + 1);
            let forwarded = diode.stats().forwarded as usize;
            sink.set_read_timeout(Some(PATIENCE)).unwrap();
            while arrived.len() < forwarded {
                let mut buf = [0u8; 2048];
                let len = sink.recv(&mut buf).unwrap();
                arrived.push(buf[..len].to_vec());
            }
        }
    }
    arrived
}

fn assert_nothing_came_back(source: &UdpSocket) {
    source.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let error = source.recv_from(&mut buf).unwrap_err();
    assert_eq!(
        error.kind(),
        io::ErrorKind::WouldBlock,
        "the diode sent something back"
    );
}

#[test]
fn a_clean_link_delivers_every_datagram_intact_and_in_order() {
    let sink = loopback();
    let diode = spawn(sink.local_addr().unwrap(), Impairments::default());
    assert_ne!(diode.local_addr().port(), 0);
    let source = loopback();

    let mut arrived = send_through(&diode, &source, &sink);
    drain(&sink, Duration::from_millis(100), &mut arrived);
    let expected: Vec<Vec<u8>> = (0..COUNT).map(numbered).collect();
    assert!(
        arrived == expected,
        "{} datagrams arrived, or some differ",
        arrived.len()
    );

    assert_nothing_came_back(&source);
    let stats = diode.stop();
    assert_eq!(
        (stats.received, stats.forwarded, stats.dropped()),
        (COUNT, COUNT, 0)
    );
}

#[test]
fn a_lossy_link_forwards_exactly_what_it_counts() {
    let sink = loopback();
    let impairments = Impairments {
        loss: 0.1,
        seed: 2024,
        ..Impairments::default()
    };
    let diode = spawn(sink.local_addr().unwrap(), impairments);
    let source = loopback();

    let mut arrived = send_through(&diode, &source, &sink);
    let stats = diode.stop();
    drain(&sink, Duration::from_millis(100), &mut arrived);

    assert_eq!(stats.received, COUNT);
    assert_eq!(arrived.len() as u64, stats.forwarded);
    assert_eq!(stats.forwarded + stats.dropped_random, COUNT, "{stats}");
    assert!((800..1200).contains(&stats.dropped_random), "{stats}");

    let ids: Vec<u64> = arrived
        .iter()
        .map(|d| u64::from_be_bytes(d[..8].try_into().unwrap()))
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "loss alone never reorders"
    );
    assert!(
        arrived
            .iter()
            .zip(&ids)
            .all(|(datagram, &id)| *datagram == numbered(id))
    );
    assert_nothing_came_back(&source);
}
