//! Forged and replayed traffic beside a genuine transfer: the genuine one
//! completes, and what the flood costs the receiver stays bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod support;

use std::fs;
use std::net::UdpSocket;
use std::time::Duration;

use sluice_protocol::bundle::seal;
use sluice_protocol::id::TransferId;
use sluice_protocol::manifest::BundleKind;
use sluice_protocol::transmit::{TransmitConfig, all_datagrams};
use sluice_sender::keyfile::load_secret_key;
use support::{Lab, id_of, pattern, raw_manifest, send, small_blocks, write_raw_bundle};

#[test]
fn junk_with_fresh_transfer_ids_neither_stalls_nor_fills_the_disk() {
    let lab = Lab::start(2);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = load_secret_key(&lab.image_key).unwrap();
    let forged = seal(&raw_manifest(key.id(), BundleKind::Image, b"x"), &key).unwrap();
    let mut envelope = forged.clone();
    let last = envelope.len() - 1;
    envelope[last] ^= 1;
    for id in 0..3000u64 {
        let junk = all_datagrams(config(), TransferId(1 << 40 | id), &envelope, b"x").unwrap();
        socket.send_to(&junk[0], lab.receiver_addr).unwrap();
        if id % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    let bundle = lab.path("genuine.sluice");
    write_raw_bundle(&lab.image_key, &pattern(500_000), &bundle);
    send(lab.receiver_addr, &[&bundle]);
    lab.wait_quarantined(&[id_of(&bundle)]);

    let records = fs::read_dir(lab.state.join("rejected")).unwrap().count();
    assert!(
        records <= 40,
        "{records} rejection records for forged traffic"
    );
}

#[test]
fn a_replayed_envelope_claims_one_spool_however_many_copies() {
    let lab = Lab::start(3);
    let key = load_secret_key(&lab.image_key).unwrap();
    let payload = pattern(2_000_000);
    let envelope = seal(&raw_manifest(key.id(), BundleKind::Image, &payload), &key).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for copy in 0..20u64 {
        // Only the announce and a few shards of each copy: they stay open.
        let datagrams = all_datagrams(config(), TransferId(7 << 32 | copy), &envelope, &payload);
        for d in datagrams.unwrap().iter().take(12) {
            socket.send_to(d, lab.receiver_addr).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let spooled = spool_files(&lab);
    assert_eq!(spooled, 1, "one bundle, one spool file");

    let bundle = lab.path("other.sluice");
    write_raw_bundle(&lab.image_key, &pattern(300_000), &bundle);
    send(lab.receiver_addr, &[&bundle]);
    lab.wait_quarantined(&[id_of(&bundle)]);
}

fn spool_files(lab: &Lab) -> usize {
    fs::read_dir(lab.state.join("spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "part")
        })
        .count()
}

fn config() -> TransmitConfig {
    small_blocks(1)
}
