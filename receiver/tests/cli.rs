//! The real `sluice-recv` binary: help, start-up refusals and the
//! administrator's views of an empty or missing state directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::fs;
use std::process::{Command, Output};

fn recv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-recv"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_names_every_command() {
    let output = recv(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["run", "list", "show"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn run_without_state_or_config_explains_itself() {
    let output = recv(&["run"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--config FILE, or both --state DIR and --trust PATH"));
}

#[test]
fn a_key_trusted_in_two_roles_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let public = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    let store = format!(
        "[[key]]\npublic_key = \"{public}\"\nrole = \"image\"\n\n\
         [[key]]\npublic_key = \"{public}\"\nrole = \"report\"\n"
    );
    let trust = dir.path().join("trust.toml");
    fs::write(&trust, store).unwrap();
    let state = dir.path().join("state");
    let output = recv(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
        "--trust",
        trust.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("both as image and as report"), "{message}");
}

#[test]
fn list_of_a_missing_state_directory_says_how_to_fix_it() {
    let output = recv(&["list", "--state", "/nonexistent/sluice-state"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("pass --state or set SLUICE_STATE_DIR"));
}

#[test]
fn empty_quarantine_lists_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let output = recv(&["list", "--state", state]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("quarantine is empty"));

    let json = recv(&["list", "--json", "--state", state]);
    assert_eq!(String::from_utf8_lossy(&json.stdout).trim(), "[]");
}

#[test]
fn show_of_an_unknown_id_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let output = recv(&["show", "abcdef", "--state", dir.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no bundle abcdef in quarantine"));
}
