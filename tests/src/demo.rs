//! The demo: packs the shipped busybox image and scanner reports with two
//! throwaway keys, sends both bundles through a software diode that drops 2%
//! of datagrams, and shows them verified in the receiver's quarantine.
//!
//! ```text
//!  keygen ─▶ pack image (image key) ─┐                                 ┌─▶ quarantine/
//!         └▶ pack report (report key) ┴▶ sender ─▶ diode (2% loss) ─▶ receiver
//! ```
//!
//! Everything runs in this one process on loopback, with the same code the
//! `sluice-send`, `sluice-diode` and `sluice-recv` binaries run.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use sluice_hardware::diode::{Diode, DiodeConfig, DiodeHandle};
use sluice_hardware::impair::Impairments;
use sluice_hardware::socket::SocketOptions;
use sluice_protocol::key::{Role, SecretKey};
use sluice_receiver::admin::human_bytes;
use sluice_receiver::config::ReceiverConfig;
use sluice_receiver::daemon::{self, DaemonHandle};
use sluice_receiver::record::Record;
use sluice_receiver::store::Store;
use sluice_sender::image::ImageOptions;
use sluice_sender::keyfile::write_key_pair;
use sluice_sender::keygen::generate;
use sluice_sender::pack::{PackedBundle, pack_image, pack_report};
use sluice_sender::send::{LinkArgs, SendReport, Sender};

use crate::lab::{samples_dir, workspace_root};

/// Loss the demo's diode applies.
const LOSS: f64 = 0.02;
/// How long to wait for both bundles to reach quarantine.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the demo end to end, printing what happens.
pub fn run() -> anyhow::Result<()> {
    let work = workspace_root().join("target").join("sluice-demo");
    prepare_dir(&work)?;
    println!(
        "Sluice demo: low side -> software diode ({:.0}% loss) -> high side",
        LOSS * 100.0
    );
    println!("working directory: {}\n", work.display());

    let (image_key, report_key) = make_keys(&work)?;
    let (image, report) = pack_samples(&work, &image_key, &report_key)?;

    let receiver = start_receiver(&work)?;
    let diode = start_diode(receiver.local_addr())?;
    let started = Instant::now();
    let sent = send_both(diode.local_addr(), &[&image.path, &report.path])?;
    let records = wait_for_quarantine(&work.join("state"), &[&image, &report], &receiver)?;
    let elapsed = started.elapsed();

    let diode_stats = diode.stop();
    let receiver_stats = receiver.stop();
    print_arrivals(&records);
    print_figures(&sent, elapsed, &diode_stats, &receiver_stats);
    print_next_steps(&work, &image);
    Ok(())
}

fn prepare_dir(work: &Path) -> anyhow::Result<()> {
    if work.exists() {
        fs::remove_dir_all(work).with_context(|| format!("clearing {}", work.display()))?;
    }
    for sub in ["keys", "trust", "bundles", "state"] {
        let dir = work.join(sub);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn make_keys(work: &Path) -> anyhow::Result<(SecretKey, SecretKey)> {
    let mut keys = Vec::new();
    for role in [Role::Image, Role::Report] {
        let key = generate(role, format!("demo {role} key"))?;
        let paths = write_key_pair(&key, &work.join("keys").join(role.as_str()), true)?;
        let public = work.join("trust").join(format!("{role}.pub"));
        fs::copy(&paths.public, &public)
            .with_context(|| format!("copying {}", public.display()))?;
        println!(
            "[keys]    {role:<6} key {} -> {}",
            key.id(),
            paths.secret.display()
        );
        keys.push(key);
    }
    let report = keys.pop().context("report key")?;
    let image = keys.pop().context("image key")?;
    Ok((image, report))
}

fn pack_samples(
    work: &Path,
    image_key: &SecretKey,
    report_key: &SecretKey,
) -> anyhow::Result<(PackedBundle, PackedBundle)> {
    let samples = samples_dir();
    let input = samples.join("images").join("busybox-1.35.0.docker.tar");
    let out = work.join("bundles").join("busybox.image.sluice");
    let image = pack_image(
        &input,
        image_key,
        &ImageOptions::default(),
        &out,
        unix_now(),
    )
    .with_context(|| format!("packing {}", input.display()))?;
    println!(
        "[pack]    image  bundle {} for {} ({})",
        image.bundle_id,
        image.subject,
        human_bytes(image.total_len)
    );

    let reports = report_files(&samples.join("reports"))?;
    let out = work.join("bundles").join("busybox.reports.sluice");
    let report = pack_report(&image.subject, &reports, report_key, &out, unix_now())
        .context("packing the sample reports")?;
    println!(
        "[pack]    report bundle {} with {} reports ({})",
        report.bundle_id,
        report.file_count,
        human_bytes(report.total_len)
    );
    Ok((image, report))
}

fn report_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

fn start_receiver(work: &Path) -> anyhow::Result<DaemonHandle> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = ReceiverConfig::new(listen, work.join("state"), work.join("trust"));
    config.limits.idle_timeout_secs = 10;
    let handle = daemon::spawn(&config)?;
    println!("[recv]    listening on {}", handle.local_addr());
    Ok(handle)
}

fn start_diode(forward: SocketAddr) -> anyhow::Result<DiodeHandle> {
    let impairments = Impairments {
        loss: LOSS,
        seed: 2026,
        ..Impairments::default()
    };
    let config = DiodeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        forward,
        impairments,
        socket: SocketOptions::default(),
    };
    let diode = Diode::spawn(config)?;
    println!(
        "[diode]   {} -> {} dropping {:.0}% at random",
        diode.local_addr(),
        forward,
        LOSS * 100.0
    );
    Ok(diode)
}

fn send_both(to: SocketAddr, bundles: &[&Path]) -> anyhow::Result<Vec<SendReport>> {
    let link = LinkArgs {
        rate: "200M".parse()?,
        ..LinkArgs::default()
    };
    let mut sender = Sender::connect(to, &link)?;
    let mut reports = Vec::new();
    for path in bundles {
        let report = sender.send(path, true)?;
        println!(
            "[send]    {} bundle: {} datagrams in {:.2} s",
            report.kind,
            report.datagrams,
            report.elapsed.as_secs_f64()
        );
        reports.push(report);
    }
    Ok(reports)
}

fn wait_for_quarantine(
    state: &Path,
    bundles: &[&PackedBundle],
    receiver: &DaemonHandle,
) -> anyhow::Result<Vec<Record>> {
    let store = Store::open(state)?;
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let records = store.list()?;
        let arrived: Vec<Record> = bundles
            .iter()
            .filter_map(|b| {
                records
                    .iter()
                    .find(|r| r.bundle_id == b.bundle_id.to_string())
                    .cloned()
            })
            .collect();
        if arrived.len() == bundles.len() {
            return Ok(arrived);
        }
        if let Some(rejection) = store.rejections()?.first() {
            bail!(
                "the receiver rejected {}: {} ({})",
                rejection.id,
                rejection.reason,
                rejection.code
            );
        }
        if Instant::now() > deadline || !receiver.is_running() {
            bail!(
                "bundles did not reach quarantine within {} s",
                ARRIVAL_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_arrivals(records: &[Record]) {
    println!("\nIn quarantine, signatures and hashes verified:");
    for r in records {
        println!(
            "  {} {:<6} {} signed by {} ({} key), {} files, payload blake3 {}…",
            r.bundle_id,
            r.kind,
            r.subject_digest,
            r.signer,
            r.role,
            r.files.len(),
            r.payload_blake3.get(..16).unwrap_or_default()
        );
    }
}

fn print_figures(
    sent: &[SendReport],
    elapsed: Duration,
    diode: &sluice_hardware::impair::ImpairStats,
    receiver: &daemon::DaemonStats,
) {
    let bytes: u64 = sent.iter().map(|r| r.bundle_len).sum();
    let datagrams: u64 = sent.iter().map(|r| r.datagrams).sum();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    println!("\nFigures of this run:");
    println!("  bundles       {} ({} bytes)", human_bytes(bytes), bytes);
    println!("  time          {seconds:.2} s from first datagram to both in quarantine");
    println!(
        "  goodput       {:.1} Mbit/s of bundle bytes",
        bytes as f64 * 8.0 / seconds / 1e6
    );
    println!(
        "  datagrams     {datagrams} sent, {} dropped by the diode",
        diode.dropped()
    );
    println!(
        "  recovered     {} lost data shards rebuilt from parity in {} blocks",
        receiver.shards_rebuilt, receiver.blocks_rebuilt
    );
}

fn print_next_steps(work: &Path, image: &PackedBundle) {
    let state = work.join("state");
    let recv = "cargo run -q --release --bin sluice-recv --";
    let send = "cargo run -q --release --bin sluice-send --";
    println!("\nThe quarantine is {}", state.join("quarantine").display());
    println!("Try next:");
    println!("  {recv} list --state {}", state.display());
    println!(
        "  {recv} show {} --state {}",
        image.bundle_id,
        state.display()
    );
    println!("  {send} inspect {}", image.path.display());
    println!("  {send} --help");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
