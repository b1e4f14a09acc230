//! A lab of real processes for the end-to-end tests: keys made by
//! `sluice-send keygen`, a `sluice-recv` daemon and optional `sluice-diode`
//! relays on loopback, all killed when the lab is dropped.

#![allow(dead_code, reason = "each test file uses a different part of the lab")]

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_protocol::bundle::{Envelope, envelope_len, seal};
use sluice_protocol::digest::Digest;
use sluice_protocol::frame::FecParams;
use sluice_protocol::id::{BundleId, KeyId, StreamId};
use sluice_protocol::manifest::{
    Archive, BundleKind, Compression, FileEntry, FileKind, ImageFormat, Manifest, PayloadInfo,
    Subject,
};
use sluice_protocol::transmit::TransmitConfig;
use sluice_receiver::record::{Record, Rejection};
use sluice_receiver::store::Store;
use sluice_sender::keyfile::load_secret_key;
use sluice_tests::lab::{ChildGuard, binary, free_udp_port, samples_dir, wait_for_text};
use tempfile::TempDir;

/// How long a test waits for bundles to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

pub struct Lab {
    pub dir: TempDir,
    idle_secs: u64,
    pub image_key: PathBuf,
    pub report_key: PathBuf,
    pub trust: PathBuf,
    pub state: PathBuf,
    pub receiver_addr: SocketAddr,
    receiver: ChildGuard,
    diodes: Vec<ChildGuard>,
}

impl Lab {
    /// Keys for both roles, a trust directory holding their public halves,
    /// and a receiver closing idle transfers after `idle_secs`.
    pub fn start(idle_secs: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust");
        fs::create_dir(&trust).unwrap();
        let image_key = keygen(dir.path(), "image", Some(&trust));
        let report_key = keygen(dir.path(), "report", Some(&trust));
        let state = dir.path().join("state");
        let listen = format!("127.0.0.1:{}", free_udp_port().unwrap())
            .parse()
            .unwrap();
        let receiver = start_receiver(dir.path(), &trust, &state, listen, idle_secs);
        Self {
            dir,
            idle_secs,
            image_key,
            report_key,
            trust,
            state,
            receiver_addr: listen,
            receiver,
            diodes: Vec::new(),
        }
    }

    /// Starts a `sluice-diode` in front of the receiver with the given
    /// impairment flags; returns the address to send to.
    pub fn diode(&mut self, flags: &[&str]) -> SocketAddr {
        let port = free_udp_port().unwrap();
        let listen = format!("127.0.0.1:{port}");
        let log = self.dir.path().join(format!("diode-{port}.log"));
        let child = Command::new(binary("sluice-diode"))
            .args([
                "--listen",
                &listen,
                "--forward",
                &self.receiver_addr.to_string(),
            ])
            .args(flags)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice-diode runs (build with cargo test --workspace)");
        let guard = ChildGuard(child);
        assert!(
            wait_for_text(&log, "diode relaying", Duration::from_secs(10)),
            "{}",
            read(&log)
        );
        self.diodes.push(guard);
        listen.parse().unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sluice-send pack image`, returning the bundle's manifest.
    pub fn pack_image(&self, image: &Path, reference: Option<&str>, out: &Path) -> Manifest {
        let mut cmd = Command::new(binary("sluice-send"));
        cmd.args(["pack", "image", "--key"])
            .arg(&self.image_key)
            .arg(image)
            .arg("-o")
            .arg(out);
        if let Some(reference) = reference {
            cmd.args(["--ref", reference]);
        }
        run_ok(&mut cmd);
        read_manifest(out)
    }

    /// `sluice-send pack report` about `subject`.
    pub fn pack_report(&self, subject: &str, files: &[PathBuf], out: &Path) -> Manifest {
        let mut cmd = Command::new(binary("sluice-send"));
        cmd.args(["pack", "report", "--key"]).arg(&self.report_key);
        cmd.args(["--subject", subject])
            .args(files)
            .arg("-o")
            .arg(out);
        run_ok(&mut cmd);
        read_manifest(out)
    }

    /// Packs the shipped busybox image and the shipped reports about it.
    pub fn pack_samples(&self) -> (PathBuf, PathBuf) {
        let samples = samples_dir();
        let image = self.path("sample.image.sluice");
        let input = samples.join("images/busybox-1.35.0.docker.tar");
        let manifest = self.pack_image(&input, None, &image);
        let mut reports: Vec<PathBuf> = fs::read_dir(samples.join("reports"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        reports.sort();
        let report = self.path("sample.report.sluice");
        self.pack_report(&manifest.subject.digest.to_string(), &reports, &report);
        (image, report)
    }

    /// Waits until every id is in quarantine; panics on a rejection of one.
    pub fn wait_quarantined(&self, ids: &[String]) -> Vec<Record> {
        let store = Store::open(&self.state).unwrap();
        let deadline = Instant::now() + SETTLE;
        loop {
            let records = store.list().unwrap();
            let found: Vec<Record> = ids
                .iter()
                .filter_map(|id| records.iter().find(|r| &r.bundle_id == id).cloned())
                .collect();
            if found.len() == ids.len() {
                return found;
            }
            let rejected: Vec<Rejection> = store.rejections().unwrap();
            // An abandoned transfer is not the bundle's end: a restarted
            // sender sends it again.
            let ours: Vec<&Rejection> = rejected
                .iter()
                .filter(|r| ids.contains(&r.id) && r.code != "abandoned")
                .collect();
            assert!(
                ours.is_empty(),
                "rejected: {ours:#?}\n{}",
                self.receiver_log()
            );
            assert!(
                Instant::now() < deadline,
                "timed out; have {found:#?}\n{}",
                self.receiver_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the `n`th rejection and returns all so far.
    pub fn wait_rejections(&self, n: usize) -> Vec<Rejection> {
        let store = Store::open(&self.state).unwrap();
        let deadline = Instant::now() + SETTLE;
        loop {
            let rejected = store.rejections().unwrap();
            if rejected.len() >= n {
                return rejected;
            }
            assert!(
                Instant::now() < deadline,
                "no rejection came\n{}",
                self.receiver_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn quarantined(&self) -> Vec<Record> {
        Store::open(&self.state).unwrap().list().unwrap()
    }

    /// The quarantined copy of a bundle, byte for byte.
    pub fn quarantined_bytes(&self, id: &str) -> Vec<u8> {
        fs::read(self.state.join("quarantine").join(id).join("bundle.sluice")).unwrap()
    }

    pub fn receiver_log(&self) -> String {
        read(&self.dir.path().join("recv.log"))
    }

    /// Kills the receiver without warning, as a crash would, and starts it
    /// again on the same state directory and port.
    pub fn crash_and_restart_receiver(&mut self) {
        self.receiver.0.kill().unwrap();
        self.receiver.0.wait().unwrap();
        let (dir, trust, state) = (self.dir.path(), &self.trust, &self.state);
        self.receiver = start_receiver(dir, trust, state, self.receiver_addr, self.idle_secs);
    }

    /// Stops the receiver as an administrator would (SIGTERM), waits for it
    /// to exit, and starts it again on the same state directory and port.
    pub fn stop_and_restart_receiver(&mut self) {
        let pid = self.receiver.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        assert!(
            self.receiver.0.wait().unwrap().success(),
            "{}",
            self.receiver_log()
        );
        let (dir, trust, state) = (self.dir.path(), &self.trust, &self.state);
        self.receiver = start_receiver(dir, trust, state, self.receiver_addr, self.idle_secs);
    }

    /// True while the receiver process is alive.
    pub fn receiver_alive(&mut self) -> bool {
        self.receiver.0.try_wait().unwrap().is_none()
    }
}

/// `sluice-send keygen`; copies the public key into `trust` if given.
pub fn keygen(dir: &Path, role: &str, trust: Option<&Path>) -> PathBuf {
    let prefix = dir.join(format!("{role}-{}", fs::read_dir(dir).unwrap().count()));
    let mut cmd = Command::new(binary("sluice-send"));
    cmd.args(["keygen", "--role", role, "--out"]).arg(&prefix);
    run_ok(&mut cmd);
    let public = prefix.with_extension("pub");
    if let Some(trust) = trust {
        fs::copy(&public, trust.join(public.file_name().unwrap())).unwrap();
    }
    prefix.with_extension("key")
}

/// `sluice-send send` of the bundles to `to`.
pub fn send(to: SocketAddr, bundles: &[&Path]) {
    let mut cmd = Command::new(binary("sluice-send"));
    cmd.args(["send", "--to", &to.to_string(), "--rate", "200M"])
        .args(bundles);
    run_ok(&mut cmd);
}

/// Runs a command, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .expect("the command starts (build with cargo test --workspace)");
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The manifest of a bundle file, read without verifying it.
pub fn read_manifest(path: &Path) -> Manifest {
    let bytes = fs::read(path).unwrap();
    let len = envelope_len(&bytes).unwrap();
    let envelope = Envelope::parse(&bytes[..len]).unwrap();
    Manifest::from_cbor(envelope.manifest_bytes()).unwrap()
}

fn start_receiver(
    dir: &Path,
    trust: &Path,
    state: &Path,
    listen: SocketAddr,
    idle_secs: u64,
) -> ChildGuard {
    let log = dir.join("recv.log");
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let already = fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("receiver listening")
        .count();
    let child = Command::new(binary("sluice-recv"))
        .args([
            "run",
            "--listen",
            &listen.to_string(),
            "--idle-timeout",
            &idle_secs.to_string(),
        ])
        .arg("--state")
        .arg(state)
        .arg("--trust")
        .arg(trust)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("sluice-recv runs (build with cargo test --workspace)");
    let guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&log).matches("receiver listening").count() <= already {
        assert!(Instant::now() < deadline, "{}", read(&log));
        std::thread::sleep(Duration::from_millis(20));
    }
    guard
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// A signed image bundle whose payload is exactly `payload`. The receiver
/// checks length and hash only at this layer, so any bytes do.
pub fn write_raw_bundle(key_path: &Path, payload: &[u8], out: &Path) {
    let key = load_secret_key(key_path).unwrap();
    let manifest = raw_manifest(key.id(), BundleKind::Image, payload);
    let mut bytes = seal(&manifest, &key).unwrap();
    bytes.extend_from_slice(payload);
    fs::write(out, bytes).unwrap();
}

pub fn raw_manifest(signer: KeyId, kind: BundleKind, payload: &[u8]) -> Manifest {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).unwrap();
    let blake3 = *blake3::hash(payload).as_bytes();
    Manifest {
        format_version: 1,
        bundle_id: BundleId(id),
        kind,
        created: 1_700_000_000,
        subject: Subject {
            name: None,
            digest: Digest::sha256_of(payload),
        },
        image_format: (kind == BundleKind::Image).then_some(ImageFormat::DockerArchive),
        payload: PayloadInfo {
            length: payload.len() as u64,
            blake3,
            compression: Compression::Zstd,
            archive: Archive::Tar,
        },
        files: vec![FileEntry {
            path: "payload.bin".into(),
            size: payload.len() as u64,
            blake3,
            kind: if kind == BundleKind::Image {
                FileKind::ImageFile
            } else {
                FileKind::Unknown
            },
            link_target: None,
        }],
        signer,
    }
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

/// The bundle id of a bundle file.
pub fn id_of(bundle: &Path) -> String {
    read_manifest(bundle).bundle_id.to_string()
}

/// Transmit settings with small blocks, for tests that put datagrams on the
/// wire straight from the protocol core.
pub fn small_blocks(announce_passes: u32) -> TransmitConfig {
    TransmitConfig {
        stream: StreamId(1),
        fec: FecParams {
            data: 32,
            parity: 8,
            shard_len: 1428,
        },
        interleave: 4,
        announce_every: 64,
        announce_passes,
    }
}
