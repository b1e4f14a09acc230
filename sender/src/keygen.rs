//! `sluice-send keygen`: make a signing key pair for one role.
//!
//! The seed comes from the operating system's CSPRNG; the files are written
//! by `keyfile`. This module does not decide where keys are trusted: the
//! `.pub` file is carried to the high side by hand.

use sluice_hardware::outln;
use std::path::PathBuf;

use anyhow::Context as _;
use sluice_protocol::key::{Role, SecretKey};
use zeroize::Zeroizing;

use crate::keyfile;

/// Arguments of `sluice-send keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The one role this key may sign for.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Path prefix for PREFIX.key and PREFIX.pub [default: ./sluice-ROLE].
    #[arg(long, value_name = "PREFIX")]
    pub out: Option<PathBuf>,
    /// Free text stored in both files, e.g. who holds the key.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

/// The command-line spelling of a key role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Image,
    Report,
}

/// Why a key could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Image => Role::Image,
            RoleArg::Report => Role::Report,
        }
    }
}

/// Runs `sluice-send keygen`.
pub fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let role = Role::from(args.role);
    let comment = args
        .comment
        .clone()
        .unwrap_or_else(|| format!("sluice {role} signing key"));
    let key = generate(role, comment).context("generating a key")?;
    let prefix = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("sluice-{role}")));
    let dir = keyfile::parent_dir(&prefix);
    anyhow::ensure!(
        dir.is_dir(),
        "directory {} does not exist; create it first (mkdir -p {}) or choose another --out",
        dir.display(),
        dir.display()
    );
    let paths = keyfile::write_key_pair(&key, &prefix, args.force)?;
    outln!("key id:      {}", key.id());
    outln!("role:        {role}");
    outln!("secret key:  {}", paths.secret.display());
    outln!("public key:  {}", paths.public.display());
    Ok(())
}

/// Generates a fresh key from 32 bytes of operating-system randomness.
pub fn generate(role: Role, comment: String) -> Result<SecretKey, RandomError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(RandomError)?;
    Ok(SecretKey::from_seed(&seed, role, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_keep_their_role() {
        let a = generate(Role::Report, "a".into()).unwrap();
        let b = generate(Role::Report, "b".into()).unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.role(), Role::Report);
        assert_eq!(b.comment(), "b");
    }
}
