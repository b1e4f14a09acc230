//! The high side's trust store, and envelope verification against it.
//!
//! A [`TrustStore`] holds the public keys the receiver accepts, each in one
//! role. A key listed in two roles is refused when the store is built, so
//! separation of duties cannot be undone by configuration.
//!
//! Verification follows "verify, then parse": the signature over the raw
//! manifest bytes is checked against every trusted key (stores hold a
//! handful), and only bytes that verified are handed to the CBOR decoder.
//! The signer id inside the manifest is then required to match the key that
//! verified. This module reads no files: callers pass TOML or key file text.
//!
//! ```text
//! [[key]]
//! public_key = "<64 hex>"
//! role = "image"            # or "report"
//! comment = "build pipeline" # optional
//! ```

use serde::Deserialize;

use crate::bundle::{Envelope, EnvelopeError, signed_message};
use crate::cbor::CborError;
use crate::id::KeyId;
use crate::key::{KeyFileError, PublicKey, Role};
use crate::manifest::{BundleKind, FORMAT_VERSION, LimitError, Manifest};

/// The public keys the receiver trusts, each with one role.
#[derive(Clone, Debug)]
pub struct TrustStore {
    keys: Vec<PublicKey>,
}

/// A manifest whose signature verified against a trusted key of the right
/// role, and which passed the format and limit checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedManifest {
    pub manifest: Manifest,
    pub signer: KeyId,
    pub role: Role,
    /// Where the payload starts in the bundle.
    pub envelope_len: usize,
}

/// Why a trust store could not be built. These are configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust store is not valid TOML with `[[key]]` tables: {reason}")]
    Syntax { reason: String },
    #[error("trust store key {index}: {error}")]
    BadKey { index: usize, error: KeyFileError },
    #[error("public key file {name}: {error}")]
    BadKeyFile { name: String, error: KeyFileError },
    #[error("key {key_id} is trusted both as {first} and as {second}; a key may hold one role")]
    KeyInTwoRoles {
        key_id: KeyId,
        first: Role,
        second: Role,
    },
    #[error("trust store holds no keys")]
    Empty,
}

/// Why an envelope was rejected. Each variant is a stable, countable reason.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("envelope is malformed: {0}")]
    Malformed(#[from] EnvelopeError),
    /// No trusted key verifies the signature: the signer is unknown or the
    /// bytes were altered (the two cannot be told apart).
    #[error("no trusted key verifies the manifest signature")]
    NoTrustedKeyVerifies,
    #[error("signed manifest does not decode: {0}")]
    ManifestDecode(CborError),
    #[error("manifest names signer {manifest_signer} but it was signed by {signed_by}")]
    SignerMismatch {
        manifest_signer: KeyId,
        signed_by: KeyId,
    },
    #[error("key {key_id} holds the {key_role} role and may not sign a {bundle_kind} bundle")]
    WrongRole {
        key_id: KeyId,
        key_role: Role,
        bundle_kind: BundleKind,
    },
    #[error(
        "manifest format version {version} is not supported (this build reads {FORMAT_VERSION})"
    )]
    UnsupportedVersion { version: u16 },
    #[error("manifest breaks a limit: {0}")]
    Limits(LimitError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    #[serde(default)]
    key: Vec<StoreEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreEntry {
    public_key: String,
    role: Role,
    #[serde(default)]
    comment: String,
    key_id: Option<String>,
}

impl TrustStore {
    /// Builds a store from keys, refusing one key in two roles. The same key
    /// listed twice in the same role is kept once.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Result<Self, TrustError> {
        let mut unique: Vec<PublicKey> = Vec::new();
        for key in keys {
            match unique.iter().find(|k| k.id() == key.id()) {
                Some(known) if known.role() != key.role() => return Err(two_roles(known, &key)),
                Some(_) => {}
                None => unique.push(key),
            }
        }
        if unique.is_empty() {
            return Err(TrustError::Empty);
        }
        Ok(Self { keys: unique })
    }

    /// Parses a TOML trust store (`[[key]]` tables).
    pub fn from_toml(text: &str) -> Result<Self, TrustError> {
        let file: StoreFile = toml::from_str(text).map_err(|e| TrustError::Syntax {
            reason: e.message().to_owned(),
        })?;
        let keys = file.key.into_iter().enumerate().map(|(index, entry)| {
            entry
                .into_key()
                .map_err(|error| TrustError::BadKey { index, error })
        });
        Self::new(keys.collect::<Result<Vec<_>, _>>()?)
    }

    /// Builds a store from public key files, given as `(name, text)` pairs;
    /// the name only labels errors.
    pub fn from_public_key_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, TrustError> {
        let keys = files.into_iter().map(|(name, text)| {
            PublicKey::from_file_text(text).map_err(|error| TrustError::BadKeyFile {
                name: name.to_owned(),
                error,
            })
        });
        Self::new(keys.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id() == id)
    }

    /// Verifies the envelope at the start of `bundle` and decodes its
    /// manifest. Bytes after the envelope (the payload) are not looked at.
    ///
    /// `now` (unix seconds) is accepted so that key validity windows can be
    /// added without changing callers; no check uses it yet.
    pub fn verify_envelope(
        &self,
        bundle: &[u8],
        now: u64,
    ) -> Result<VerifiedManifest, VerifyError> {
        let _ = now;
        let envelope = Envelope::parse(bundle)?;
        let key = self.find_verifying_key(&envelope)?;
        let manifest =
            Manifest::from_cbor(envelope.manifest_bytes()).map_err(VerifyError::ManifestDecode)?;
        check_manifest(&manifest, key)?;
        let (signer, role, envelope_len) = (key.id(), key.role(), envelope.len());
        Ok(VerifiedManifest {
            manifest,
            signer,
            role,
            envelope_len,
        })
    }

    fn find_verifying_key(&self, envelope: &Envelope<'_>) -> Result<&PublicKey, VerifyError> {
        let message = signed_message(envelope.manifest_bytes());
        self.keys
            .iter()
            .find(|key| key.verify(&message, envelope.signature()))
            .ok_or(VerifyError::NoTrustedKeyVerifies)
    }
}

impl StoreEntry {
    fn into_key(self) -> Result<PublicKey, KeyFileError> {
        let key = PublicKey::from_hex(&self.public_key, self.role, self.comment)?;
        match self.key_id {
            Some(stated) if KeyId::parse(&stated) != Some(key.id()) => {
                Err(KeyFileError::KeyIdMismatch {
                    stated,
                    actual: key.id(),
                })
            }
            _ => Ok(key),
        }
    }
}

fn two_roles(first: &PublicKey, second: &PublicKey) -> TrustError {
    TrustError::KeyInTwoRoles {
        key_id: first.id(),
        first: first.role(),
        second: second.role(),
    }
}

fn check_manifest(manifest: &Manifest, key: &PublicKey) -> Result<(), VerifyError> {
    if manifest.signer != key.id() {
        let (manifest_signer, signed_by) = (manifest.signer, key.id());
        return Err(VerifyError::SignerMismatch {
            manifest_signer,
            signed_by,
        });
    }
    if manifest.kind.required_role() != key.role() {
        let (key_id, key_role, bundle_kind) = (key.id(), key.role(), manifest.kind);
        return Err(VerifyError::WrongRole {
            key_id,
            key_role,
            bundle_kind,
        });
    }
    if manifest.format_version != FORMAT_VERSION {
        return Err(VerifyError::UnsupportedVersion {
            version: manifest.format_version,
        });
    }
    manifest.check().map_err(VerifyError::Limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{ENVELOPE_HEADER_LEN, SIGNING_CONTEXT, seal};
    use crate::key::SecretKey;
    use crate::key::tests::test_key;
    use crate::manifest::tests::sample_manifest;
    use proptest::prelude::*;

    fn store(keys: &[&SecretKey]) -> TrustStore {
        TrustStore::new(keys.iter().map(|k| k.public_key())).unwrap()
    }

    /// Signs arbitrary manifest bytes the way `seal` would, bypassing its checks.
    fn raw_envelope(body: &[u8], key: &SecretKey) -> Vec<u8> {
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(body);
        let mut out = crate::bundle::BUNDLE_MAGIC.to_vec();
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&key.sign(&message));
        out
    }

    #[test]
    fn a_sealed_image_bundle_verifies() {
        let image = test_key(1, Role::Image);
        let report = test_key(2, Role::Report);
        let manifest = sample_manifest(BundleKind::Image, image.id());
        let mut bundle = seal(&manifest, &image).unwrap();
        let len = bundle.len();
        bundle.extend_from_slice(b"payload");
        let verified = store(&[&report, &image])
            .verify_envelope(&bundle, 0)
            .unwrap();
        assert_eq!(verified.manifest, manifest);
        assert_eq!(verified.signer, image.id());
        assert_eq!(verified.role, Role::Image);
        assert_eq!(verified.envelope_len, len);
    }

    #[test]
    fn an_unknown_signer_is_refused() {
        let image = test_key(1, Role::Image);
        let stranger = test_key(3, Role::Image);
        let bundle = seal(
            &sample_manifest(BundleKind::Image, stranger.id()),
            &stranger,
        )
        .unwrap();
        let err = store(&[&image]).verify_envelope(&bundle, 0).unwrap_err();
        assert!(matches!(err, VerifyError::NoTrustedKeyVerifies));
    }

    #[test]
    fn a_report_key_signing_an_image_bundle_is_refused() {
        let report = test_key(2, Role::Report);
        let mut manifest = sample_manifest(BundleKind::Image, report.id());
        manifest.kind = BundleKind::Image;
        let body = manifest.to_cbor().unwrap();
        let bundle = raw_envelope(&body, &report);
        let err = store(&[&report]).verify_envelope(&bundle, 0).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::WrongRole {
                key_role: Role::Report,
                bundle_kind: BundleKind::Image,
                ..
            }
        ));
    }

    #[test]
    fn a_manifest_naming_another_signer_is_refused() {
        let image = test_key(1, Role::Image);
        let other = test_key(4, Role::Image);
        let body = sample_manifest(BundleKind::Image, other.id())
            .to_cbor()
            .unwrap();
        let bundle = raw_envelope(&body, &image);
        let err = store(&[&image, &other])
            .verify_envelope(&bundle, 0)
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::SignerMismatch { signed_by, .. } if signed_by == image.id())
        );
    }

    #[test]
    fn signed_garbage_fails_to_decode_rather_than_panicking() {
        let image = test_key(1, Role::Image);
        let bundle = raw_envelope(&[0xff, 0x00, 0x13], &image);
        let err = store(&[&image]).verify_envelope(&bundle, 0).unwrap_err();
        assert!(matches!(err, VerifyError::ManifestDecode(_)));
    }

    #[test]
    fn unsupported_format_versions_are_refused() {
        let image = test_key(1, Role::Image);
        let mut manifest = sample_manifest(BundleKind::Image, image.id());
        manifest.format_version = 2;
        let bundle = raw_envelope(&manifest.to_cbor().unwrap(), &image);
        let err = store(&[&image]).verify_envelope(&bundle, 0).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::UnsupportedVersion { version: 2 }
        ));
    }

    #[test]
    fn limits_are_checked_after_verification() {
        let image = test_key(1, Role::Image);
        let mut manifest = sample_manifest(BundleKind::Image, image.id());
        manifest.files[0].path = "../escape".into();
        let bundle = raw_envelope(&manifest.to_cbor().unwrap(), &image);
        let err = store(&[&image]).verify_envelope(&bundle, 0).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Limits(LimitError::UnsafePath { index: 0 })
        ));
    }

    #[test]
    fn one_key_in_two_roles_is_refused() {
        let key = test_key(5, Role::Image);
        let as_report =
            PublicKey::from_bytes(&key.public_key().to_bytes(), Role::Report, "").unwrap();
        let err = TrustStore::new([key.public_key(), as_report]).unwrap_err();
        assert!(matches!(
            err,
            TrustError::KeyInTwoRoles { key_id, first: Role::Image, second: Role::Report }
                if key_id == key.id()
        ));
    }

    #[test]
    fn toml_store_round_trip() {
        let image = test_key(1, Role::Image).public_key();
        let report = test_key(2, Role::Report).public_key();
        let text = format!(
            "[[key]]\npublic_key = \"{}\"\nrole = \"image\"\ncomment = \"ci\"\n\n\
             [[key]]\npublic_key = \"{}\"\nrole = \"report\"\nkey_id = \"{}\"\n",
            hex::encode(image.to_bytes()),
            hex::encode(report.to_bytes()),
            report.id(),
        );
        let store = TrustStore::from_toml(&text).unwrap();
        assert_eq!(store.keys().len(), 2);
        assert_eq!(store.get(image.id()).unwrap().comment(), "ci");
        assert_eq!(store.get(report.id()).unwrap().role(), Role::Report);
    }

    #[test]
    fn toml_store_with_one_key_in_two_roles_is_refused() {
        let hex = hex::encode(test_key(1, Role::Image).public_key().to_bytes());
        let text = format!(
            "[[key]]\npublic_key = \"{hex}\"\nrole = \"image\"\n\
             [[key]]\npublic_key = \"{hex}\"\nrole = \"report\"\n"
        );
        let err = TrustStore::from_toml(&text).unwrap_err();
        assert!(matches!(err, TrustError::KeyInTwoRoles { .. }));
    }

    #[test]
    fn key_files_build_a_store() {
        let image = test_key(1, Role::Image).public_key().to_file_text();
        let report = test_key(2, Role::Report).public_key().to_file_text();
        let store =
            TrustStore::from_public_key_files([("a.pub", &*image), ("b.pub", &*report)]).unwrap();
        assert_eq!(store.keys().len(), 2);
        let err = TrustStore::from_public_key_files([("bad.pub", "role = 1")]).unwrap_err();
        assert!(matches!(err, TrustError::BadKeyFile { ref name, .. } if name == "bad.pub"));
    }

    #[test]
    fn an_empty_store_is_refused() {
        assert!(matches!(TrustStore::from_toml(""), Err(TrustError::Empty)));
    }

    #[test]
    fn every_single_bit_flip_in_the_envelope_fails() {
        let image = test_key(1, Role::Image);
        let bundle = seal(&sample_manifest(BundleKind::Image, image.id()), &image).unwrap();
        let store = store(&[&image]);
        for bit in 0..bundle.len() * 8 {
            let mut flipped = bundle.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                store.verify_envelope(&flipped, 0).is_err(),
                "bit {bit} went unnoticed"
            );
        }
    }

    proptest! {
        #[test]
        fn a_flipped_signature_or_manifest_bit_is_no_trusted_key(bit in 0usize..4096) {
            let image = test_key(1, Role::Image);
            let bundle = seal(&sample_manifest(BundleKind::Image, image.id()), &image).unwrap();
            let covered = bundle.len() - ENVELOPE_HEADER_LEN;
            let bit = bit % (covered * 8);
            let mut flipped = bundle.clone();
            flipped[ENVELOPE_HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
            let err = store(&[&image]).verify_envelope(&flipped, 0).unwrap_err();
            prop_assert!(matches!(err, VerifyError::NoTrustedKeyVerifies));
        }
    }
}
