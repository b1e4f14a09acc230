//! The real `sluice-diode` binary, as an operator would run it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers of these tests fail the test by panicking"
)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const DIODE: &str = env!("CARGO_BIN_EXE_sluice-diode");
const PATIENCE: Duration = Duration::from_secs(20);

fn run(args: &[&str]) -> Output {
    Command::new(DIODE)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Kills the child when dropped, so a failed test leaves no diode behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_describes_every_impairment() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for flag in [
        "--listen",
        "--forward",
        "--loss",
        "--burst-enter",
        "--burst-len",
        "--reorder",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for flag in [
        "--reorder-depth",
        "--duplicate",
        "--corrupt",
        "--rate",
        "--seed",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        help.contains("fractions (0.02) or percentages (2%)"),
        "{help}"
    );
}

#[test]
fn a_bad_loss_value_is_refused_clearly() {
    let output = run(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        "127.0.0.1:9",
        "--loss",
        "150%",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("invalid value '150%' for '--loss <P>'"),
        "{stderr}"
    );
    assert!(stderr.contains("outside 0 to 1"), "{stderr}");

    let output = run(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        "127.0.0.1:9",
        "--loss",
        "lots",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("is not a probability"));
}

#[test]
fn an_address_in_use_is_refused_clearly() {
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let output = run(&["--listen", &listen, "--forward", "127.0.0.1:9"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}

/// Starts the binary and reads the address it listens on from its log.
fn start(forward: SocketAddr, extra: &[&str]) -> (KillOnDrop, SocketAddr) {
    let mut child = Command::new(DIODE)
        .args(["--listen", "127.0.0.1:0", "--forward", &forward.to_string()])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = KillOnDrop(child);

    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .iter()
        .find(|line| line.contains("diode relaying"))
        .expect("the diode logs where it listens");
    let listen = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("listen="));
    (guard, listen.unwrap().parse().unwrap())
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the diode did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn relays_datagrams_and_reports_on_sigterm() {
    let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sink.set_read_timeout(Some(PATIENCE)).unwrap();
    let (mut diode, listen) = start(sink.local_addr().unwrap(), &["--seed", "1"]);
    let source = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();

    let mut buf = [0u8; 64];
    for window in 0..20u32 {
        for i in 0..50u32 {
            source
                .send_to(&(window * 50 + i).to_be_bytes(), listen)
                .unwrap();
        }
        for i in 0..50u32 {
            let len = sink.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], (window * 50 + i).to_be_bytes());
        }
    }

    let pid = diode.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert!(wait_for_exit(&mut diode.0).success());

    let mut summary = String::new();
    diode
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(
        summary.starts_with("received 1000, forwarded 1000, dropped 0 "),
        "{summary}"
    );
}
