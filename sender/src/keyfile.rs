//! Key files on disk: loading, and writing them so that a crash never
//! leaves a half-written or world-readable secret.
//!
//! A secret key file is created with mode 0600 from the first byte (the mode
//! is given to `open`, never applied afterwards), written to a temporary
//! file in the destination directory, synced, and renamed into place. The
//! text formats themselves live in `sluice_protocol::key`; this module only
//! moves them to and from files. It does not generate keys (see `keygen`).

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sluice_protocol::key::{KeyFileError, PublicKey, SecretKey};
use sluice_protocol::trust::{TrustError, TrustStore};

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("key file {path} is not a Sluice key file: {error}")]
    Parse { path: PathBuf, error: KeyFileError },
}

/// Why a key file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Why a trust store could not be loaded from a file or directory.
#[derive(Debug, thiserror::Error)]
pub enum TrustLoadError {
    #[error("cannot read trust store {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("trust store {path}: {error}")]
    Invalid { path: PathBuf, error: TrustError },
}

/// Where `write_key_pair` put the two files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairPaths {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// Loads a secret key file (`PREFIX.key`).
pub fn load_secret_key(path: &Path) -> Result<SecretKey, LoadError> {
    let text = zeroize::Zeroizing::new(read(path)?);
    SecretKey::from_file_text(&text).map_err(|error| LoadError::Parse {
        path: path.to_owned(),
        error,
    })
}

/// Loads a public key file (`PREFIX.pub`).
pub fn load_public_key(path: &Path) -> Result<PublicKey, LoadError> {
    let text = read(path)?;
    PublicKey::from_file_text(&text).map_err(|error| LoadError::Parse {
        path: path.to_owned(),
        error,
    })
}

/// Loads a trust store from a TOML file, one `.pub` file, or every `*.pub`
/// file in a directory.
pub fn load_trust_store(path: &Path) -> Result<TrustStore, TrustLoadError> {
    let read_err = |source| TrustLoadError::Read {
        path: path.to_owned(),
        source,
    };
    let invalid = |error| TrustLoadError::Invalid {
        path: path.to_owned(),
        error,
    };
    let files = if fs::metadata(path).map_err(read_err)?.is_dir() {
        read_pub_files(path).map_err(read_err)?
    } else {
        let text = fs::read_to_string(path).map_err(read_err)?;
        if !is_pub_file(path) {
            return TrustStore::from_toml(&text).map_err(invalid);
        }
        vec![(path.display().to_string(), text)]
    };
    let pairs = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()));
    TrustStore::from_public_key_files(pairs).map_err(invalid)
}

/// Writes `PREFIX.key` (mode 0600) and `PREFIX.pub` (mode 0644). Refuses to
/// replace either unless `force`; checks both before writing either.
pub fn write_key_pair(
    key: &SecretKey,
    prefix: &Path,
    force: bool,
) -> Result<KeyPairPaths, SaveError> {
    let paths = KeyPairPaths {
        secret: with_suffix(prefix, ".key"),
        public: with_suffix(prefix, ".pub"),
    };
    if !force {
        refuse_existing(&paths.secret)?;
        refuse_existing(&paths.public)?;
    }
    write_atomic(&paths.secret, key.to_file_text().as_bytes(), 0o600, force)?;
    write_atomic(
        &paths.public,
        key.public_key().to_file_text().as_bytes(),
        0o644,
        force,
    )?;
    Ok(paths)
}

/// Writes `bytes` to `path` through a temporary file created with `mode`,
/// synced and renamed into place, then syncs the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), SaveError> {
    let write_err = |source| SaveError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = parent_dir(path);
    let mut temp = tempfile::Builder::new()
        .prefix(".sluice-key-")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(write_err)?;
    temp.write_all(bytes).map_err(write_err)?;
    temp.as_file().sync_all().map_err(write_err)?;
    if force {
        temp.persist(path).map_err(|e| write_err(e.error))?;
    } else {
        temp.persist_noclobber(path)
            .map_err(|e| exists_or(path, e.error))?;
    }
    sync_dir(dir).map_err(write_err)
}

/// Syncs a directory so that a rename inside it survives power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_pub_files(dir: &Path) -> io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if is_pub_file(&path) {
            files.push((path.display().to_string(), fs::read_to_string(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

fn is_pub_file(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "pub")
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn refuse_existing(path: &Path) -> Result<(), SaveError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(SaveError::Exists {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SaveError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

fn exists_or(path: &Path, source: io::Error) -> SaveError {
    if source.kind() == io::ErrorKind::AlreadyExists {
        return SaveError::Exists {
            path: path.to_owned(),
        };
    }
    SaveError::Write {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::key::Role;

    fn key() -> SecretKey {
        SecretKey::from_seed(&[42; 32], Role::Image, "unit test")
    }

    #[test]
    fn key_pair_round_trip_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_key_pair(&key(), &dir.path().join("k"), false).unwrap();
        assert_eq!(paths.secret, dir.path().join("k.key"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.secret), 0o600);
        assert_eq!(load_secret_key(&paths.secret).unwrap().id(), key().id());
        assert_eq!(load_public_key(&paths.public).unwrap().id(), key().id());
    }

    #[test]
    fn existing_files_are_kept_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        fs::write(with_suffix(&prefix, ".pub"), "keep me").unwrap();
        let err = write_key_pair(&key(), &prefix, false).unwrap_err();
        assert!(matches!(err, SaveError::Exists { ref path } if path.ends_with("k.pub")));
        assert!(
            !with_suffix(&prefix, ".key").exists(),
            "nothing half-written"
        );
        write_key_pair(&key(), &prefix, true).unwrap();
        assert!(load_public_key(&with_suffix(&prefix, ".pub")).is_ok());
    }

    #[test]
    fn load_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.key");
        fs::write(&path, "not a key").unwrap();
        let err = load_secret_key(&path).unwrap_err();
        assert!(err.to_string().contains("garbage.key"), "{err}");
        let missing = load_secret_key(&dir.path().join("missing.key")).unwrap_err();
        assert!(matches!(missing, LoadError::Read { .. }));
    }

    #[test]
    fn trust_store_from_a_directory_of_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_key_pair(&key(), &dir.path().join("image"), false).unwrap();
        let report = SecretKey::from_seed(&[7; 32], Role::Report, "r");
        write_key_pair(&report, &dir.path().join("report"), false).unwrap();
        let store = load_trust_store(dir.path()).unwrap();
        assert_eq!(store.keys().len(), 2);
        assert_eq!(store.get(report.id()).unwrap().role(), Role::Report);
    }
}
