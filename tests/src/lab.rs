//! Paths and process helpers shared by the demo and the end-to-end tests.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Child;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The sample image and reports shipped in the repository.
///
/// ```
/// let samples = sluice_tests::lab::samples_dir();
/// assert!(samples.join("images/busybox-1.35.0.docker.tar").is_file());
/// assert!(samples.join("SOURCES.md").is_file());
/// ```
pub fn samples_dir() -> PathBuf {
    workspace_root().join("samples")
}

/// The wider fixture corpus beside the repository, if this checkout has it
/// (`SLUICE_FIXTURES` overrides where to look).
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SLUICE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/fixtures"));
    dir.is_dir().then_some(dir)
}

/// A free UDP port on loopback, found by binding port 0 and letting go.
pub fn free_udp_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process that is killed and reaped when dropped, so a failing
/// test never leaves a daemon running.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Process id, for reading its /proc entries.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A built Sluice binary beside the running test or tool (cargo puts
/// integration-test binaries in `target/<profile>/deps/`, the programs one
/// level up).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// Waits until `path` contains `needle`, polling; false on timeout.
pub fn wait_for_text(path: &Path, needle: &str, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}
