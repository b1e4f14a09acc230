//! Bundles crossing the link end to end: real `sluice-send`, `sluice-diode`
//! and `sluice-recv` processes over loopback UDP, checked byte for byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_protocol::manifest::BundleKind;
use sluice_sender::image::{Image, ImageError, ImageOptions};
use sluice_tests::lab::{binary, fixtures_dir};
use support::{Lab, id_of, pattern, read_manifest, run_ok, send, write_raw_bundle};

/// Bytes of payload one FEC block carries with the sender's defaults.
const BLOCK: usize = 128 * 1428;

#[test]
fn sample_image_and_reports_arrive_identical_and_linked() {
    let mut lab = Lab::start(10);
    let to = lab.diode(&["--seed", "1"]);
    let (image, report) = lab.pack_samples();
    send(to, &[&image, &report]);

    let ids = [id_of(&image), id_of(&report)];
    let records = lab.wait_quarantined(&ids);
    assert_identical(&lab, &image);
    assert_identical(&lab, &report);
    assert_eq!(records[0].kind, BundleKind::Image);
    assert_eq!(records[1].subject_digest, records[0].subject_digest);

    let list = run_ok(
        Command::new(binary("sluice-recv"))
            .args(["list", "--json", "--state"])
            .arg(&lab.state),
    );
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let image_entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "image")
        .unwrap();
    assert_eq!(image_entry["related"], serde_json::json!([ids[1]]));
    assert_eq!(image_entry["signer"].as_str().unwrap().len(), 16);
}

#[test]
fn fixture_images_arrive_identical_without_loss() {
    let Some(fixtures) = fixtures_dir() else {
        eprintln!("skipped: ../shared/fixtures not found (set SLUICE_FIXTURES to run this)");
        return;
    };
    cross_every_fixture_image(&fixtures, &["--seed", "2"]);
}

#[test]
fn fixture_images_survive_loss_reordering_and_duplication() {
    let Some(fixtures) = fixtures_dir() else {
        eprintln!("skipped: ../shared/fixtures not found (set SLUICE_FIXTURES to run this)");
        return;
    };
    let flags = [
        "--loss",
        "5%",
        "--reorder",
        "2%",
        "--duplicate",
        "2%",
        "--seed",
        "3",
    ];
    cross_every_fixture_image(&fixtures, &flags);
}

#[test]
fn loss_beyond_parity_is_reported_and_the_next_transfer_succeeds() {
    let mut lab = Lab::start(2);
    let lossy = lab.diode(&["--loss", "60%", "--seed", "4"]);
    let clean = lab.diode(&["--seed", "5"]);
    let (image, report) = lab.pack_samples();

    send(lossy, &[&image]);
    let rejected = lab.wait_rejections(1);
    assert_eq!(rejected[0].code, "unrecoverable", "{rejected:#?}");
    assert!(
        rejected[0].reason.contains("unrecoverable"),
        "{}",
        rejected[0].reason
    );
    assert!(lab.quarantined().is_empty());

    send(clean, &[&report]);
    lab.wait_quarantined(&[id_of(&report)]);
    assert_identical(&lab, &report);
    assert!(lab.receiver_alive());
}

#[test]
fn edge_sized_payloads_arrive_intact() {
    let mut lab = Lab::start(10);
    let to = lab.diode(&["--loss", "3%", "--seed", "6"]);
    let sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK];
    let bundles: Vec<PathBuf> = sizes
        .iter()
        .map(|&size| {
            let path = lab.path(&format!("edge-{size}.sluice"));
            write_raw_bundle(&lab.image_key, &pattern(size), &path);
            path
        })
        .collect();
    let refs: Vec<&Path> = bundles.iter().map(PathBuf::as_path).collect();
    send(to, &refs);

    let ids: Vec<String> = bundles.iter().map(|b| id_of(b)).collect();
    let records = lab.wait_quarantined(&ids);
    for (bundle, record) in bundles.iter().zip(&records) {
        assert_identical(&lab, bundle);
        assert_eq!(record.payload_len, read_manifest(bundle).payload.length);
    }
}

fn cross_every_fixture_image(fixtures: &Path, diode_flags: &[&str]) {
    let mut lab = Lab::start(10);
    let to = lab.diode(diode_flags);
    let reports = fixture_reports(fixtures);
    let mut bundles = Vec::new();
    for (n, (input, reference)) in well_formed_images(fixtures).iter().enumerate() {
        let image = lab.path(&format!("image-{n}.sluice"));
        let manifest = lab.pack_image(input, reference.as_deref(), &image);
        let report = lab.path(&format!("report-{n}.sluice"));
        lab.pack_report(&manifest.subject.digest.to_string(), &reports, &report);
        bundles.push(image);
        bundles.push(report);
    }
    assert!(
        bundles.len() >= 24,
        "expected every fixture image, found {}",
        bundles.len() / 2
    );
    let refs: Vec<&Path> = bundles.iter().map(PathBuf::as_path).collect();
    send(to, &refs);

    let ids: Vec<String> = bundles.iter().map(|b| id_of(b)).collect();
    lab.wait_quarantined(&ids);
    for bundle in &bundles {
        assert_identical(&lab, bundle);
    }
}

/// Every image fixture a user could produce, with a ref where the input
/// holds several images. The one malformed archive is left out.
fn well_formed_images(fixtures: &Path) -> Vec<(PathBuf, Option<String>)> {
    let images = fixtures.join("images");
    let mut inputs: Vec<PathBuf> = Vec::new();
    for kind in ["docker-archive", "oci-layout", "oci-archive"] {
        for entry in fs::read_dir(images.join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let is_image = path.is_dir() || name.ends_with(".tar");
            if is_image && name != "gcr-null-manifest.tar" {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    inputs.into_iter().filter_map(with_reference).collect()
}

/// The input with the ref to pack it by, or nothing if the input is one of
/// the fixtures that is deliberately inconsistent.
fn with_reference(path: PathBuf) -> Option<(PathBuf, Option<String>)> {
    match Image::open(&path, &ImageOptions::default()) {
        Ok(_) => Some((path, None)),
        Err(ImageError::ChooseRef { available }) => {
            let usable = available.iter().find(|r| {
                let options = ImageOptions {
                    reference: Some((*r).clone()),
                };
                Image::open(&path, &options).is_ok()
            });
            usable.map(|r| (path, Some(r.clone())))
        }
        Err(error) => panic!("{} should pack: {error}", path.display()),
    }
}

fn fixture_reports(fixtures: &Path) -> Vec<PathBuf> {
    let reports = fixtures.join("reports");
    [
        "cyclonedx/trivy-centos-7.cdx.json",
        "spdx/trivy-centos-7.spdx.json",
        "trivy/trivy-centos-7.json",
        "grype/grype-image.json",
        "sarif/trivy-alpine-310.sarif",
        "junit/pytest-xunit.xml",
        "intoto-slsa/gcb-v0.3-container-provenance.json",
    ]
    .iter()
    .map(|p| reports.join(p))
    .collect()
}

fn assert_identical(lab: &Lab, bundle: &Path) {
    let original = fs::read(bundle).unwrap();
    let received = lab.quarantined_bytes(&id_of(bundle));
    assert!(
        original == received,
        "{} differs after crossing the link",
        bundle.display()
    );
}

#[test]
fn sender_daemon_packs_and_sends_what_lands_in_its_inboxes() {
    let mut lab = Lab::start(10);
    let to = lab.diode(&["--loss", "2%", "--seed", "7"]);
    let root = lab.path("spool");
    let samples = sluice_tests::lab::samples_dir();
    let image_inbox = root.join("image/inbox");
    fs::create_dir_all(&image_inbox).unwrap();
    fs::copy(
        samples.join("images/busybox-1.35.0.docker.tar"),
        image_inbox.join("busybox.tar"),
    )
    .unwrap();
    let subject = "d656793d4df48fc01586efc1ac319a4b6e87d0ae6e26013f53f776fc997d4d04";
    let report_set = root.join("report/inbox").join(format!("sha256-{subject}"));
    fs::create_dir_all(&report_set).unwrap();
    for entry in fs::read_dir(samples.join("reports")).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, report_set.join(path.file_name().unwrap())).unwrap();
    }
    let config = lab.path("sender.toml");
    fs::write(&config, daemon_config(to, &lab, &root)).unwrap();

    run_ok(
        Command::new(binary("sluice-send"))
            .args(["run", "--once", "--config"])
            .arg(&config),
    );

    let sent: Vec<PathBuf> = ["image", "report"]
        .iter()
        .flat_map(|s| fs::read_dir(root.join(s).join("sent")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sluice"))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let ids: Vec<String> = sent.iter().map(|p| id_of(p)).collect();
    let records = lab.wait_quarantined(&ids);
    assert!(
        records
            .iter()
            .all(|r| r.subject_digest == format!("sha256:{subject}"))
    );
    assert!(
        fs::read_dir(&image_inbox).unwrap().next().is_none(),
        "the inbox is emptied"
    );
}

fn daemon_config(to: std::net::SocketAddr, lab: &Lab, root: &Path) -> String {
    format!(
        "to = \"{to}\"\n[link]\nrate = \"200M\"\n\n\
         [[stream]]\nkind = \"image\"\nkey = \"{}\"\ndir = \"{}\"\n\n\
         [[stream]]\nkind = \"report\"\nkey = \"{}\"\ndir = \"{}\"\n",
        lab.image_key.display(),
        root.join("image").display(),
        lab.report_key.display(),
        root.join("report").display()
    )
}

#[test]
fn a_carousel_completes_what_no_single_pass_could() {
    let mut lab = Lab::start(10);
    let to = lab.diode(&["--loss", "30%", "--seed", "8"]);
    let (image, _) = lab.pack_samples();
    let mut cmd = Command::new(binary("sluice-send"));
    cmd.args([
        "send",
        "--to",
        &to.to_string(),
        "--rate",
        "200M",
        "--passes",
        "3",
    ])
    .arg(&image);
    let output = run_ok(&mut cmd);
    assert!(String::from_utf8_lossy(&output.stdout).contains("in 3 passes"));

    let records = lab.wait_quarantined(&[id_of(&image)]);
    assert_identical(&lab, &image);
    assert!(
        records[0].transfer.blocks_rebuilt > 0,
        "{:?}",
        records[0].transfer
    );
}

#[test]
fn a_receiver_killed_mid_transfer_resumes_from_its_spool() {
    let mut lab = Lab::start(20);
    let bundle = lab.path("big.sluice");
    write_raw_bundle(&lab.image_key, &pattern(40 * BLOCK), &bundle);
    let mut sender = slow_carousel(&lab, &bundle);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    lab.crash_and_restart_receiver();
    assert!(sender.0.wait().unwrap().success());
    lab.wait_quarantined(&[id_of(&bundle)]);
    assert_identical(&lab, &bundle);
    let log = lab.receiver_log();
    assert!(log.contains("resuming a transfer from the spool"), "{log}");
}

#[test]
fn a_restarted_sender_abandons_its_old_transfer_and_the_new_one_completes() {
    let lab = Lab::start(30);
    let bundle = lab.path("restart.sluice");
    write_raw_bundle(&lab.image_key, &pattern(40 * BLOCK), &bundle);
    let to = lab.receiver_addr.to_string();
    let first = Command::new(binary("sluice-send"))
        .args(["send", "--to", &to, "--rate", "20M"])
        .arg(&bundle)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = sluice_tests::lab::ChildGuard(first);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    send(lab.receiver_addr, &[&bundle]);
    lab.wait_quarantined(&[id_of(&bundle)]);
    assert_identical(&lab, &bundle);
    let rejected = lab.wait_rejections(1);
    assert_eq!(rejected[0].code, "abandoned", "{rejected:#?}");
    assert_eq!(rejected[0].id, id_of(&bundle));

    std::thread::sleep(std::time::Duration::from_millis(1200));
    let status = run_ok(
        Command::new(binary("sluice-recv"))
            .args(["status", "--json", "--state"])
            .arg(&lab.state),
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let stream = &status["streams"][0];
    assert_eq!(stream["stream"], 1);
    assert_eq!(stream["restarts"], 1, "{status:#}");
    assert_eq!(status["counters"]["quarantined"], 1);
}

#[test]
fn a_receiver_stopped_cleanly_keeps_its_spool_for_the_next_run() {
    let mut lab = Lab::start(20);
    let bundle = lab.path("stopped.sluice");
    write_raw_bundle(&lab.image_key, &pattern(40 * BLOCK), &bundle);
    let mut sender = slow_carousel(&lab, &bundle);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    lab.stop_and_restart_receiver();
    assert!(sender.0.wait().unwrap().success());
    lab.wait_quarantined(&[id_of(&bundle)]);
    assert_identical(&lab, &bundle);
    assert!(
        lab.receiver_log()
            .contains("resuming a transfer from the spool")
    );
}

/// Starts `sluice-send` repeating `bundle` three times at 40 Mbit/s, slow
/// enough for a test to interrupt the receiver in the middle.
fn slow_carousel(lab: &Lab, bundle: &Path) -> sluice_tests::lab::ChildGuard {
    let to = lab.receiver_addr.to_string();
    let sender = Command::new(binary("sluice-send"))
        .args(["send", "--to", &to, "--rate", "40M", "--passes", "3"])
        .arg(bundle)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sluice_tests::lab::ChildGuard(sender)
}
