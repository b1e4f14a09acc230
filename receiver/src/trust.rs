//! Loads the trust store from disk: one TOML file of `[[key]]` tables, or a
//! directory of public key files (`*.pub`) as `sluice-send keygen` writes them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sluice_protocol::trust::TrustStore;

/// Reads the trust store at `path`; a key in two roles is an error here.
pub fn load_trust_store(path: &Path) -> anyhow::Result<TrustStore> {
    let store = if path.is_dir() {
        load_dir(path)?
    } else {
        load_file(path)?
    };
    Ok(store)
}

fn load_file(path: &Path) -> anyhow::Result<TrustStore> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading trust store {}", path.display()))?;
    TrustStore::from_toml(&text).with_context(|| format!("trust store {}", path.display()))
}

fn load_dir(dir: &Path) -> anyhow::Result<TrustStore> {
    let mut files: Vec<(String, String)> = Vec::new();
    for path in public_key_files(dir)? {
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading public key {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    if files.is_empty() {
        bail!(
            "trust store directory {} holds no *.pub files",
            dir.display()
        );
    }
    let pairs = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()));
    TrustStore::from_public_key_files(pairs)
        .with_context(|| format!("trust store {}", dir.display()))
}

fn public_key_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("listing trust store {}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "pub") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
