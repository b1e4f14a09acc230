//! Bundles the receiver must refuse, each with a clear reason and nothing
//! in quarantine, while the daemon keeps serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod support;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use std::process::Command;

use sluice_protocol::bundle::{BUNDLE_MAGIC, envelope_len, seal, signed_message};
use sluice_protocol::id::TransferId;
use sluice_protocol::manifest::BundleKind;
use sluice_protocol::transmit::all_datagrams;
use sluice_receiver::record::Rejection;
use sluice_receiver::store::rejection_dir_name;
use sluice_sender::keyfile::load_secret_key;
use sluice_tests::lab::binary;
use support::{Lab, id_of, keygen, pattern, raw_manifest, send, small_blocks, write_raw_bundle};

#[test]
fn bundle_signed_by_an_unknown_key_is_rejected() {
    let mut lab = Lab::start(5);
    let stranger = keygen(lab.dir.path(), "image", None);
    let bundle = lab.path("stranger.sluice");
    write_raw_bundle(&stranger, &pattern(5000), &bundle);
    send(lab.receiver_addr, &[&bundle]);

    let rejection = only_rejection(&mut lab);
    assert_eq!(rejection.code, "bad-signature");
    assert!(
        rejection.reason.contains("no trusted key"),
        "{}",
        rejection.reason
    );
    assert_eq!(rejection.signer, None);
}

#[test]
fn image_bundle_signed_with_a_report_key_is_rejected() {
    let mut lab = Lab::start(5);
    let key = load_secret_key(&lab.report_key).unwrap();
    let payload = pattern(3000);
    let manifest = raw_manifest(key.id(), BundleKind::Image, &payload);
    let body = manifest.to_cbor().unwrap();
    let mut bytes = BUNDLE_MAGIC.to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&key.sign(&signed_message(&body)));
    bytes.extend_from_slice(&payload);
    let bundle = lab.path("wrong-role.sluice");
    fs::write(&bundle, bytes).unwrap();
    send(lab.receiver_addr, &[&bundle]);

    let rejection = only_rejection(&mut lab);
    assert_eq!(rejection.code, "wrong-role");
    assert!(
        rejection.reason.contains("report role"),
        "{}",
        rejection.reason
    );
}

#[test]
fn payload_byte_flipped_after_signing_is_rejected() {
    let mut lab = Lab::start(5);
    let bundle = lab.path("flipped.sluice");
    write_raw_bundle(&lab.image_key, &pattern(400_000), &bundle);
    let mut bytes = fs::read(&bundle).unwrap();
    let last = bytes.len() - 1000;
    bytes[last] ^= 0x01;
    fs::write(&bundle, &bytes).unwrap();

    // The sender checks the hash before using the link and refuses...
    let refused = Command::new(binary("sluice-send"))
        .args(["send", "--to", &lab.receiver_addr.to_string()])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not match the hash"));

    // ...so put the damaged bundle on the wire by hand.
    let split = envelope_len(&bytes).unwrap();
    let (envelope, payload) = bytes.split_at(split);
    blast(lab.receiver_addr, &[(TransferId(13), envelope, payload)]);

    let rejection = only_rejection(&mut lab);
    assert_eq!(rejection.code, "payload-hash");
    assert_eq!(rejection.id, id_of(&bundle));
    assert!(rejection.signer.is_some(), "the signature itself was good");
    let kept = lab
        .state
        .join("rejected")
        .join(rejection_dir_name(&rejection));
    assert!(
        kept.join("bundle.sluice").is_file(),
        "signed bytes are kept for forensics"
    );
}

#[test]
fn manifest_claiming_another_length_than_arrives_is_rejected() {
    let mut lab = Lab::start(5);
    let key = load_secret_key(&lab.image_key).unwrap();
    let signed = pattern(200_000);
    let envelope = seal(&raw_manifest(key.id(), BundleKind::Image, &signed), &key).unwrap();
    let mut longer = signed.clone();
    longer.extend_from_slice(&[7u8; 1000]);
    blast(lab.receiver_addr, &[(TransferId(11), &envelope, &longer)]);

    let rejection = only_rejection(&mut lab);
    assert_eq!(rejection.code, "length-mismatch");
    assert!(rejection.reason.contains("200000"), "{}", rejection.reason);
}

#[test]
fn datagrams_of_two_transfers_spliced_together_are_rejected() {
    let mut lab = Lab::start(3);
    let key = load_secret_key(&lab.image_key).unwrap();
    let (a, b) = (
        pattern(300_000),
        pattern(300_000).iter().map(|x| !x).collect::<Vec<_>>(),
    );
    let envelope_a = seal(&raw_manifest(key.id(), BundleKind::Image, &a), &key).unwrap();
    let envelope_b = seal(&raw_manifest(key.id(), BundleKind::Image, &b), &key).unwrap();
    let spliced = TransferId(12);
    blast(
        lab.receiver_addr,
        &[(spliced, &envelope_a, &a), (spliced, &envelope_b, &b)],
    );

    let rejection = only_rejection(&mut lab);
    assert!(
        ["payload-hash", "bad-signature"].contains(&rejection.code.as_str()),
        "{rejection:#?}"
    );
}

/// Waits for exactly one rejection and checks nothing reached quarantine
/// and the daemon is still up.
fn only_rejection(lab: &mut Lab) -> Rejection {
    let mut rejected = lab.wait_rejections(1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.quarantined().is_empty(), "{:#?}", lab.quarantined());
    assert!(lab.receiver_alive(), "{}", lab.receiver_log());
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_no_stray_files(&lab.state);
    rejected.remove(0)
}

/// The spool holds nothing once a transfer is settled.
fn assert_no_stray_files(state: &Path) {
    let spool: Vec<_> = fs::read_dir(state.join("spool")).unwrap().collect();
    assert!(spool.is_empty(), "{spool:?}");
}

/// Sends transfers straight from the protocol core over a plain socket,
/// interleaving their datagrams one by one and alternating which goes
/// first, so a test can put on the wire what the sender itself refuses to.
fn blast(to: SocketAddr, transfers: &[(TransferId, &[u8], &[u8])]) {
    let config = small_blocks(2);
    let mut all: Vec<Vec<Vec<u8>>> = transfers
        .iter()
        .map(|(id, envelope, payload)| all_datagrams(config, *id, envelope, payload).unwrap())
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let longest = all.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for datagrams in &all {
            if let Some(d) = datagrams.get(i) {
                socket.send_to(d, to).unwrap();
            }
        }
        all.reverse();
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
