//! Where the checks read the host from.
//!
//! Every probe goes through [`HostView`]: reading a file under `/proc` or
//! `/sys`, listing a directory, or running a read-only tool (`ethtool -g`,
//! `ip neigh show`). [`SystemHost`] does that on the real machine; tests
//! hand the checks a map of paths to contents instead.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

/// Read-only access to the host's network state.
pub trait HostView {
    /// The whole text of a file.
    fn read_file(&self, path: &Path) -> io::Result<String>;

    /// The names of the entries in a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// What `program` prints to stdout when run with `args`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] when the program is not installed, and
    /// an error carrying its stderr when it exits non-zero.
    fn run(&self, program: &str, args: &[&str]) -> io::Result<String>;
}

/// The machine this process runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemHost;

/// Where administration tools live when they are not on a user's `PATH`:
/// Debian keeps `ethtool` and `ip` in the sbin directories, which a
/// non-root login often lacks.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

impl HostView for SystemHost {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn run(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let output = match spawn(program, args) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => run_from_sbin(program, args)?,
            other => other?,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = stderr.lines().next().unwrap_or("no message").trim();
            return Err(io::Error::other(format!(
                "{program} exited with {}: {reason}",
                output.status
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn run_from_sbin(program: &str, args: &[&str]) -> io::Result<std::process::Output> {
    let installed = SBIN_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file());
    match installed {
        Some(path) => spawn(&path.to_string_lossy(), args),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{program} is not installed"),
        )),
    }
}

/// Runs with the C locale so the output parses the same on every host.
fn spawn(program: &str, args: &[&str]) -> io::Result<std::process::Output> {
    Command::new(program).args(args).env("LC_ALL", "C").output()
}
