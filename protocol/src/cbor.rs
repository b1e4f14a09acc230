//! The one door to the CBOR codec.
//!
//! `serde_cbor` is unmaintained (RUSTSEC-2021-0127). It is kept because it
//! refuses deep nesting and absurd length prefixes cleanly, and because
//! Sluice only decodes CBOR whose signature has already been verified, so
//! unauthenticated bytes never reach it. Every other module goes through
//! [`encode`] and [`decode`], so the codec can be swapped in one place.
//!
//! This module does not decide what is trusted; callers verify first.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why bytes could not be turned into CBOR or back.
#[derive(Debug, thiserror::Error)]
pub enum CborError {
    #[error("CBOR input is {len} bytes, more than the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("CBOR input is not a valid document at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
    #[error("CBOR input has {extra} trailing bytes after the document")]
    TrailingBytes { extra: usize },
    #[error("value could not be encoded as CBOR: {reason}")]
    Encode { reason: String },
}

/// Encodes `value` as one CBOR document.
///
/// # Errors
/// Only if the value's `Serialize` implementation itself fails.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CborError> {
    serde_cbor::to_vec(value).map_err(|e| CborError::Encode {
        reason: e.to_string(),
    })
}

/// Decodes exactly one CBOR document of at most `max_len` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, CborError> {
    if bytes.len() > max_len {
        return Err(CborError::TooLong {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut reader = serde_cbor::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut reader).map_err(invalid)?;
    let used = reader.byte_offset();
    if used != bytes.len() {
        return Err(CborError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

fn invalid(error: serde_cbor::Error) -> CborError {
    CborError::Invalid {
        offset: error.offset(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trip() {
        let value: BTreeMap<String, u32> = [("a".to_owned(), 1), ("b".to_owned(), 2)].into();
        let bytes = encode(&value).unwrap();
        let back: BTreeMap<String, u32> = decode(&bytes, 1024).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn input_over_the_limit_is_refused_before_parsing() {
        let bytes = encode(&vec![0u8; 100]).unwrap();
        let err = decode::<Vec<u8>>(&bytes, 10).unwrap_err();
        assert!(matches!(err, CborError::TooLong { len, max: 10 } if len == bytes.len()));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.extend_from_slice(&[0x01, 0x02]);
        let err = decode::<u32>(&bytes, 1024).unwrap_err();
        assert!(matches!(err, CborError::TrailingBytes { extra: 2 }));
    }

    #[test]
    fn truncated_input_is_refused() {
        let bytes = encode(&"hello".to_owned()).unwrap();
        let err = decode::<String>(&bytes[..3], 1024).unwrap_err();
        assert!(matches!(err, CborError::Invalid { .. }));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        // 100,000 nested one-element arrays: 0x81 repeated, then a zero.
        let mut bytes = vec![0x81u8; 100_000];
        bytes.push(0x00);
        let err = decode::<serde_cbor::Value>(&bytes, 1 << 20).unwrap_err();
        assert!(matches!(err, CborError::Invalid { .. }));
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // A byte string claiming 2^64 - 1 bytes, followed by nothing.
        let bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let err = decode::<serde_cbor::Value>(&bytes, 1024).unwrap_err();
        assert!(matches!(err, CborError::Invalid { .. }));
    }
}
