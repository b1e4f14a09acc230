//! Identifiers that travel on the wire or in signed manifests.
//!
//! Each is a newtype so that a block index cannot be passed where a shard
//! index is expected, and so that the text form is defined in one place.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Random 64-bit id the sender picks for one transmission of one bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// Which logical stream a datagram belongs to (image or report, per sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u16);

/// Index of an FEC block inside a transfer's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockIndex(pub u32);

/// Index of a shard inside a block: data shards first, then parity shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardIndex(pub u16);

/// Random 128-bit id a bundle gets when it is packed; signed in its manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BundleId(pub [u8; 16]);

/// Short fingerprint of an ed25519 public key: the first 8 bytes of its
/// blake3 hash, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for BlockIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ShardIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl BundleId {
    /// Parses the 32-hex-digit text form.
    pub fn parse(text: &str) -> Option<Self> {
        parse_hex_array(text).map(Self)
    }
}

impl KeyId {
    /// The id of a raw ed25519 public key.
    pub fn of_public_key(public: &[u8; 32]) -> Self {
        let hash = blake3::hash(public);
        let mut id = [0u8; 8];
        id.copy_from_slice(&hash.as_bytes()[..8]);
        Self(id)
    }

    /// Parses the 16-hex-digit text form.
    pub fn parse(text: &str) -> Option<Self> {
        parse_hex_array(text).map(Self)
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BundleId({self})")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

fn parse_hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_id_text_round_trip() {
        let id = BundleId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(BundleId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn malformed_ids_are_refused() {
        assert_eq!(BundleId::parse("abc"), None);
        assert_eq!(KeyId::parse("+0123456789abcde"), None);
        assert_eq!(KeyId::parse(&"g".repeat(16)), None);
    }

    #[test]
    fn key_id_is_stable() {
        let id = KeyId::of_public_key(&[7u8; 32]);
        assert_eq!(id, KeyId::of_public_key(&[7u8; 32]));
        assert_ne!(id, KeyId::of_public_key(&[8u8; 32]));
    }
}
