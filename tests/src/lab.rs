//! Paths and process helpers shared by the demo and the end-to-end tests.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Child;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The sample image and reports shipped in the repository.
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
