//! Signing keys, their roles, and their text file formats.
//!
//! Every key has exactly one [`Role`]: the build pipeline signs image
//! bundles, the reporting service signs report bundles, and no key may do
//! both (separation of duties). Key files are small TOML documents:
//!
//! ```text
//! # public file (PREFIX.pub)          # secret file (PREFIX.key, mode 0600)
//! role = "image"                      role = "image"
//! key_id = "<16 hex>"                 key_id = "<16 hex>"
//! public_key = "<64 hex>"             secret_key = "<64 hex>"
//! comment = "pipeline key"            comment = "pipeline key"
//! ```
//!
//! This module renders and parses those texts; it never touches the file
//! system and never generates randomness (the caller supplies the seed).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::id::KeyId;

/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What a key is allowed to sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs image bundles (the build pipeline).
    Image,
    /// Signs report bundles (the reporting service).
    Report,
}

/// A role name that is neither `image` nor `report`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown key role `{0}` (expected `image` or `report`)")]
pub struct UnknownRole(pub String);

/// An ed25519 signing key bound to one role. Its bytes are wiped on drop
/// and never printed.
pub struct SecretKey {
    signing: SigningKey,
    role: Role,
    id: KeyId,
    comment: String,
}

/// An ed25519 verifying key bound to one role.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    verifying: VerifyingKey,
    role: Role,
    id: KeyId,
    comment: String,
}

/// Why a key file's text was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file is not valid TOML with the expected fields: {reason}")]
    Syntax { reason: String },
    #[error("field `{field}` is not hex")]
    NotHex { field: &'static str },
    #[error("field `{field}` should be {expected} bytes, got {got}")]
    WrongLength {
        field: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("`public_key` is not a valid ed25519 public key")]
    InvalidPublicKey,
    #[error("`key_id` says {stated} but the key's id is {actual}")]
    KeyIdMismatch { stated: String, actual: KeyId },
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Report => "report",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "image" => Ok(Self::Image),
            "report" => Ok(Self::Report),
            other => Err(UnknownRole(other.chars().take(32).collect())),
        }
    }
}

impl SecretKey {
    /// Builds a key from 32 secret seed bytes (from a CSPRNG, or a key file).
    pub fn from_seed(seed: &[u8; 32], role: Role, comment: impl Into<String>) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let id = KeyId::of_public_key(signing.verifying_key().as_bytes());
        Self {
            signing,
            role,
            id,
            comment: comment.into(),
        }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The matching public key, with the same role and comment.
    pub fn public_key(&self) -> PublicKey {
        let verifying = self.signing.verifying_key();
        PublicKey {
            verifying,
            role: self.role,
            id: self.id,
            comment: self.comment.clone(),
        }
    }

    /// Signs `message` as is; callers add their own domain separation prefix.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }

    /// Renders the secret key file. The returned text is wiped on drop.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let secret = Zeroizing::new(hex::encode(self.signing.as_bytes()));
        let mut text = Zeroizing::new(String::new());
        text.push_str("# Sluice SECRET signing key. Keep this file private (mode 0600).\n");
        text.push_str(&format!("role = \"{}\"\n", self.role));
        text.push_str(&format!("key_id = \"{}\"\n", self.id));
        text.push_str("secret_key = \"");
        text.push_str(&secret);
        text.push_str("\"\n");
        text.push_str(&format!("comment = {}\n", toml_string(&self.comment)));
        text
    }

    /// Parses a secret key file and checks its `key_id`.
    pub fn from_file_text(text: &str) -> Result<Self, KeyFileError> {
        let file: SecretFile = toml::from_str(text).map_err(syntax)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        decode_hex_into("secret_key", &file.secret_key, seed.as_mut())?;
        let key = Self::from_seed(&seed, file.role, file.comment.clone());
        check_key_id(&file.key_id, key.id)?;
        Ok(key)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Builds a public key from its 32 raw bytes.
    pub fn from_bytes(
        bytes: &[u8; 32],
        role: Role,
        comment: impl Into<String>,
    ) -> Result<Self, KeyFileError> {
        let verifying =
            VerifyingKey::from_bytes(bytes).map_err(|_| KeyFileError::InvalidPublicKey)?;
        let id = KeyId::of_public_key(bytes);
        Ok(Self {
            verifying,
            role,
            id,
            comment: comment.into(),
        })
    }

    /// Parses `public_key` hex text, as found in key files and trust stores.
    pub fn from_hex(
        hex: &str,
        role: Role,
        comment: impl Into<String>,
    ) -> Result<Self, KeyFileError> {
        let mut bytes = [0u8; 32];
        decode_hex_into("public_key", hex, &mut bytes)?;
        Self::from_bytes(&bytes, role, comment)
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn comment(&self) -> &str {
        &self.comment
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.verifying.to_bytes()
    }

    /// Strict ed25519 verification (rejects small-order keys and
    /// non-canonical signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.verifying.verify_strict(message, &signature).is_ok()
    }

    /// Renders the public key file.
    pub fn to_file_text(&self) -> String {
        format!(
            "# Sluice public key. Give this to the high side's trust store.\n\
             role = \"{}\"\nkey_id = \"{}\"\npublic_key = \"{}\"\ncomment = {}\n",
            self.role,
            self.id,
            hex::encode(self.to_bytes()),
            toml_string(&self.comment),
        )
    }

    /// Parses a public key file and checks its `key_id`.
    pub fn from_file_text(text: &str) -> Result<Self, KeyFileError> {
        let file: PublicFile = toml::from_str(text).map_err(syntax)?;
        let key = Self::from_hex(&file.public_key, file.role, file.comment)?;
        check_key_id(&file.key_id, key.id)?;
        Ok(key)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("comment", &self.comment)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    role: Role,
    key_id: String,
    public_key: String,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    role: Role,
    key_id: String,
    secret_key: String,
    #[serde(default)]
    comment: String,
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        // Limitation: the TOML parser may keep its own transient copies of
        // the hex text; only the copy this module owns is wiped.
        self.secret_key.zeroize();
    }
}

/// Quotes `text` as a TOML basic string.
pub(crate) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn syntax(error: toml::de::Error) -> KeyFileError {
    KeyFileError::Syntax {
        reason: error.message().to_owned(),
    }
}

fn decode_hex_into(field: &'static str, text: &str, out: &mut [u8]) -> Result<(), KeyFileError> {
    let expected = out.len();
    if text.len() != expected * 2 {
        return Err(KeyFileError::WrongLength {
            field,
            expected,
            got: text.len() / 2,
        });
    }
    hex::decode_to_slice(text, out).map_err(|_| KeyFileError::NotHex { field })
}

fn check_key_id(stated: &str, actual: KeyId) -> Result<(), KeyFileError> {
    if KeyId::parse(stated) == Some(actual) {
        return Ok(());
    }
    Err(KeyFileError::KeyIdMismatch {
        stated: stated.chars().take(32).collect(),
        actual,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn test_key(seed: u8, role: Role) -> SecretKey {
        SecretKey::from_seed(&[seed; 32], role, format!("test {role} key {seed}"))
    }

    #[test]
    fn secret_file_round_trip() {
        let key = test_key(1, Role::Image);
        let text = key.to_file_text();
        let back = SecretKey::from_file_text(&text).unwrap();
        assert_eq!(back.id(), key.id());
        assert_eq!(back.role(), Role::Image);
        assert_eq!(back.comment(), "test image key 1");
        assert_eq!(back.sign(b"m"), key.sign(b"m"));
    }

    #[test]
    fn public_file_round_trip() {
        let public = test_key(2, Role::Report).public_key();
        let back = PublicKey::from_file_text(&public.to_file_text()).unwrap();
        assert_eq!(back, public);
        assert_eq!(back.role(), Role::Report);
    }

    #[test]
    fn comments_with_quotes_survive() {
        let key = SecretKey::from_seed(&[3; 32], Role::Image, "say \"hi\"\nnext line \\");
        let back = PublicKey::from_file_text(&key.public_key().to_file_text()).unwrap();
        assert_eq!(back.comment(), "say \"hi\"\nnext line \\");
    }

    #[test]
    fn wrong_key_id_is_refused() {
        let public = test_key(4, Role::Image).public_key();
        let other = test_key(5, Role::Image).id().to_string();
        let text = public
            .to_file_text()
            .replace(&public.id().to_string(), &other);
        let err = PublicKey::from_file_text(&text).unwrap_err();
        assert!(matches!(err, KeyFileError::KeyIdMismatch { actual, .. } if actual == public.id()));
    }

    #[test]
    fn secret_file_is_not_a_public_file() {
        let key = test_key(6, Role::Image);
        let err = PublicKey::from_file_text(&key.to_file_text()).unwrap_err();
        assert!(matches!(err, KeyFileError::Syntax { .. }));
    }

    #[test]
    fn short_hex_is_refused() {
        let text = "role = \"image\"\nkey_id = \"00\"\npublic_key = \"abcd\"\n";
        let err = PublicKey::from_file_text(text).unwrap_err();
        assert!(matches!(
            err,
            KeyFileError::WrongLength {
                field: "public_key",
                expected: 32,
                got: 2
            }
        ));
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let key = test_key(7, Role::Image);
        let secret_hex = hex::encode([7u8; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&secret_hex));
        assert!(shown.contains(&key.id().to_string()));
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message() {
        let key = test_key(8, Role::Report);
        let signature = key.sign(b"message");
        assert!(key.public_key().verify(b"message", &signature));
        assert!(!key.public_key().verify(b"messagf", &signature));
        assert!(
            !test_key(9, Role::Report)
                .public_key()
                .verify(b"message", &signature)
        );
    }

    #[test]
    fn roles_parse_and_print() {
        assert_eq!("image".parse::<Role>(), Ok(Role::Image));
        assert_eq!(Role::Report.to_string(), "report");
        assert!("Image".parse::<Role>().is_err());
    }
}
