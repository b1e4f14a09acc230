//! The bundle file layout, which is also what goes on the wire.
//!
//! ```text
//! offset  size  field
//! 0       8     magic b"SLUICEB\x01" (last byte: bundle format version)
//! 8       4     manifest length M, u32 big-endian, 1 <= M <= 1 MiB
//! 12      M     manifest, CBOR
//! 12+M    64    ed25519 signature over SIGNING_CONTEXT || manifest
//! 76+M    ...   payload: zstd-compressed tar, manifest.payload.length bytes
//! ```
//!
//! Everything before the payload is the *envelope*. This module builds a
//! signed envelope ([`seal`]) and splits one into its parts without decoding
//! the CBOR ([`Envelope::parse`]); [`crate::trust`] verifies it. It does not
//! read or write payloads.

use crate::cbor::CborError;
use crate::id::KeyId;
use crate::key::{Role, SIGNATURE_LEN, SecretKey};
use crate::manifest::{BundleKind, LimitError, MAX_MANIFEST_LEN, Manifest};

/// The first eight bytes of every bundle; the last byte is the format version.
pub const BUNDLE_MAGIC: [u8; 8] = *b"SLUICEB\x01";
/// Magic plus the manifest length field.
pub const ENVELOPE_HEADER_LEN: usize = 12;
/// Prepended to the manifest bytes before signing, so a manifest signature
/// can never be confused with a signature made for another purpose.
pub const SIGNING_CONTEXT: &[u8] = b"sluice bundle manifest v1\0";

const MAGIC_STEM: &[u8] = b"SLUICEB";

/// A borrowed, split (but not yet verified) envelope.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    manifest: &'a [u8],
    signature: &'a [u8; SIGNATURE_LEN],
}

/// Why bytes are not a well-formed envelope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope needs at least {needed} bytes, got {got}")]
    TooShort { needed: usize, got: usize },
    #[error("not a Sluice bundle (magic is {found:02x?})")]
    BadMagic { found: [u8; 8] },
    #[error("bundle format version {version} is not supported (this build reads 1)")]
    UnsupportedVersion { version: u8 },
    #[error("manifest length {len} is outside 1..={MAX_MANIFEST_LEN}")]
    ManifestLength { len: u32 },
}

/// Why a manifest could not be sealed with a key.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("manifest names signer {manifest_signer} but the key is {key_id}")]
    SignerMismatch {
        manifest_signer: KeyId,
        key_id: KeyId,
    },
    #[error("a {key_role} key may not sign a {bundle_kind} bundle")]
    WrongRole {
        key_role: Role,
        bundle_kind: BundleKind,
    },
    #[error("manifest breaks a limit: {0}")]
    Limits(#[from] LimitError),
    #[error("manifest could not be encoded: {0}")]
    Encode(#[from] CborError),
    #[error("encoded manifest is {len} bytes, more than {MAX_MANIFEST_LEN}")]
    TooLarge { len: usize },
}

/// Length of the envelope that `prefix` starts, from its first 12 bytes.
pub fn envelope_len(prefix: &[u8]) -> Result<usize, EnvelopeError> {
    let header = prefix
        .get(..ENVELOPE_HEADER_LEN)
        .ok_or(EnvelopeError::TooShort {
            needed: ENVELOPE_HEADER_LEN,
            got: prefix.len(),
        })?;
    check_magic(&header[..8])?;
    let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if len == 0 || len as usize > MAX_MANIFEST_LEN {
        return Err(EnvelopeError::ManifestLength { len });
    }
    Ok(ENVELOPE_HEADER_LEN + len as usize + SIGNATURE_LEN)
}

/// Encodes and signs `manifest`, returning the envelope bytes.
pub fn seal(manifest: &Manifest, key: &SecretKey) -> Result<Vec<u8>, SealError> {
    check_signer(manifest, key)?;
    manifest.check()?;
    let body = manifest.to_cbor()?;
    if body.len() > MAX_MANIFEST_LEN {
        return Err(SealError::TooLarge { len: body.len() });
    }
    let signature = key.sign(&signed_message(&body));
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + body.len() + SIGNATURE_LEN);
    out.extend_from_slice(&BUNDLE_MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&signature);
    Ok(out)
}

/// The exact bytes a manifest signature covers.
pub fn signed_message(manifest: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + manifest.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(manifest);
    message
}

impl<'a> Envelope<'a> {
    /// Splits the envelope at the start of `bytes`; bytes after it (the
    /// payload) are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let len = envelope_len(bytes)?;
        let envelope = bytes.get(..len).ok_or(EnvelopeError::TooShort {
            needed: len,
            got: bytes.len(),
        })?;
        let manifest_len = len - ENVELOPE_HEADER_LEN - SIGNATURE_LEN;
        let (manifest, signature) = envelope[ENVELOPE_HEADER_LEN..].split_at(manifest_len);
        let signature = signature.try_into().map_err(|_| EnvelopeError::TooShort {
            needed: len,
            got: bytes.len(),
        })?;
        Ok(Self {
            manifest,
            signature,
        })
    }

    /// The CBOR manifest bytes, unverified.
    pub fn manifest_bytes(&self) -> &'a [u8] {
        self.manifest
    }

    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        self.signature
    }

    /// Total envelope length; the payload starts here.
    pub fn len(&self) -> usize {
        ENVELOPE_HEADER_LEN + self.manifest.len() + SIGNATURE_LEN
    }

    /// Always false: an envelope holds at least a header and a signature.
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn check_magic(magic: &[u8]) -> Result<(), EnvelopeError> {
    if magic == BUNDLE_MAGIC {
        return Ok(());
    }
    if magic.starts_with(MAGIC_STEM) {
        return Err(EnvelopeError::UnsupportedVersion { version: magic[7] });
    }
    let mut found = [0u8; 8];
    found.copy_from_slice(magic);
    Err(EnvelopeError::BadMagic { found })
}

fn check_signer(manifest: &Manifest, key: &SecretKey) -> Result<(), SealError> {
    if manifest.signer != key.id() {
        let (manifest_signer, key_id) = (manifest.signer, key.id());
        return Err(SealError::SignerMismatch {
            manifest_signer,
            key_id,
        });
    }
    if manifest.kind.required_role() != key.role() {
        let (key_role, bundle_kind) = (key.role(), manifest.kind);
        return Err(SealError::WrongRole {
            key_role,
            bundle_kind,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::test_key;
    use crate::manifest::tests::sample_manifest;
    use proptest::prelude::*;

    fn sealed(kind: BundleKind, role: Role) -> Vec<u8> {
        let key = test_key(1, role);
        seal(&sample_manifest(kind, key.id()), &key).unwrap()
    }

    #[test]
    fn sealed_envelope_has_the_documented_layout() {
        let envelope = sealed(BundleKind::Image, Role::Image);
        assert_eq!(&envelope[..8], b"SLUICEB\x01");
        let m = u32::from_be_bytes(envelope[8..12].try_into().unwrap()) as usize;
        assert_eq!(envelope.len(), 76 + m);
        assert_eq!(envelope_len(&envelope[..12]), Ok(76 + m));
        let parsed = Envelope::parse(&envelope).unwrap();
        assert_eq!(parsed.manifest_bytes(), &envelope[12..12 + m]);
        assert_eq!(parsed.signature().as_slice(), &envelope[12 + m..]);
        assert_eq!(parsed.len(), envelope.len());
    }

    #[test]
    fn the_signature_covers_the_context_and_the_manifest() {
        let key = test_key(1, Role::Report);
        let envelope = seal(&sample_manifest(BundleKind::Report, key.id()), &key).unwrap();
        let parsed = Envelope::parse(&envelope).unwrap();
        let message = signed_message(parsed.manifest_bytes());
        assert!(key.public_key().verify(&message, parsed.signature()));
        assert!(
            !key.public_key()
                .verify(parsed.manifest_bytes(), parsed.signature())
        );
    }

    #[test]
    fn parse_ignores_the_payload_after_the_envelope() {
        let mut bytes = sealed(BundleKind::Image, Role::Image);
        let len = bytes.len();
        bytes.extend_from_slice(b"payload bytes");
        assert_eq!(Envelope::parse(&bytes).unwrap().len(), len);
    }

    #[test]
    fn truncated_envelopes_are_refused() {
        let envelope = sealed(BundleKind::Image, Role::Image);
        let cut = &envelope[..envelope.len() - 1];
        let err = Envelope::parse(cut).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::TooShort {
                needed: envelope.len(),
                got: cut.len()
            }
        );
        assert_eq!(
            envelope_len(&envelope[..11]),
            Err(EnvelopeError::TooShort {
                needed: 12,
                got: 11
            })
        );
    }

    #[test]
    fn bad_magic_and_versions_are_told_apart() {
        let mut envelope = sealed(BundleKind::Image, Role::Image);
        envelope[7] = 2;
        assert_eq!(
            envelope_len(&envelope),
            Err(EnvelopeError::UnsupportedVersion { version: 2 })
        );
        envelope[0] = b'X';
        assert!(matches!(
            envelope_len(&envelope),
            Err(EnvelopeError::BadMagic { .. })
        ));
    }

    #[test]
    fn manifest_length_bounds() {
        let mut header = BUNDLE_MAGIC.to_vec();
        header.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            envelope_len(&header),
            Err(EnvelopeError::ManifestLength { len: 0 })
        );
        let max = MAX_MANIFEST_LEN as u32;
        header[8..].copy_from_slice(&max.to_be_bytes());
        assert_eq!(envelope_len(&header), Ok(76 + MAX_MANIFEST_LEN));
        header[8..].copy_from_slice(&(max + 1).to_be_bytes());
        assert_eq!(
            envelope_len(&header),
            Err(EnvelopeError::ManifestLength { len: max + 1 })
        );
    }

    #[test]
    fn seal_refuses_a_key_of_the_wrong_role() {
        let key = test_key(2, Role::Report);
        let err = seal(&sample_manifest(BundleKind::Image, key.id()), &key).unwrap_err();
        assert!(matches!(
            err,
            SealError::WrongRole {
                key_role: Role::Report,
                bundle_kind: BundleKind::Image
            }
        ));
    }

    #[test]
    fn seal_refuses_a_manifest_naming_another_signer() {
        let key = test_key(3, Role::Image);
        let other = test_key(4, Role::Image).id();
        let err = seal(&sample_manifest(BundleKind::Image, other), &key).unwrap_err();
        assert!(
            matches!(err, SealError::SignerMismatch { manifest_signer, .. } if manifest_signer == other)
        );
    }

    proptest! {
        #[test]
        fn envelope_len_is_bounded_for_any_prefix(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(len) = envelope_len(&bytes) {
                prop_assert!(bytes.starts_with(&BUNDLE_MAGIC));
                prop_assert!((77..=76 + MAX_MANIFEST_LEN).contains(&len));
            }
        }

        #[test]
        fn envelope_len_accepts_every_length_in_range(m in 1u32..=MAX_MANIFEST_LEN as u32) {
            let mut header = BUNDLE_MAGIC.to_vec();
            header.extend_from_slice(&m.to_be_bytes());
            prop_assert_eq!(envelope_len(&header), Ok(76 + m as usize));
        }
    }
}
