//! OCI content digests (`sha256:<64 hex>`, `sha512:<128 hex>`).
//!
//! A [`Digest`] can only be built from text that passed strict validation:
//! a known algorithm, exactly the right number of lowercase hex digits, and
//! nothing else. That makes the hex part safe to use as a file name inside a
//! `blobs/<algorithm>/` directory without further checks. Nothing here reads
//! files; [`DigestHasher`] hashes bytes the caller feeds it.
//!
//! See the OCI image spec, "Digests", for the grammar this narrows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A hash algorithm an OCI digest may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

/// A validated OCI digest such as `sha256:e3b0c442…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    text: String,
}

/// Why a digest string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest has no `algorithm:` prefix")]
    MissingAlgorithm,
    #[error("digest algorithm `{algorithm}` is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm { algorithm: String },
    #[error("{algorithm} digest needs {expected} hex digits, got {got}")]
    WrongLength {
        algorithm: Algorithm,
        expected: usize,
        got: usize,
    },
    #[error("digest has a character that is not lowercase hex at offset {offset}")]
    NotLowercaseHex { offset: usize },
}

/// Incremental hashing that ends in a [`Digest`].
#[derive(Clone, Debug)]
pub enum DigestHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Algorithm {
    /// The name used in digest strings and in `blobs/<name>/` directories.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// Number of hex digits in an encoded hash of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Digest {
    /// Parses and validates the `algorithm:hex` text form.
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let (name, hex) = text.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
        let algorithm = Algorithm::from_name(name).ok_or_else(|| unsupported(name))?;
        check_hex(algorithm, hex)?;
        Ok(Self {
            algorithm,
            text: text.to_owned(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        hasher.update(bytes);
        hasher.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.name().len() + 1..]
    }

    /// The full `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where an OCI image layout keeps this blob: `blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.name(), self.hex())
    }
}

impl DigestHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Self::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            algorithm,
            text: format!("{algorithm}:{hex}"),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn unsupported(name: &str) -> DigestError {
    // Keep the echo short: the name came from input.
    let algorithm = name.chars().take(32).collect();
    DigestError::UnsupportedAlgorithm { algorithm }
}

fn check_hex(algorithm: Algorithm, hex: &str) -> Result<(), DigestError> {
    let bad = hex
        .bytes()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if let Some(position) = bad {
        let offset = algorithm.name().len() + 1 + position;
        return Err(DigestError::NotLowercaseHex { offset });
    }
    let expected = algorithm.hex_len();
    if hex.len() != expected {
        return Err(DigestError::WrongLength {
            algorithm,
            expected,
            got: hex.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input_is_the_known_value() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY_SHA256);
    }

    #[test]
    fn valid_digests_round_trip_through_text() {
        let digest = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(digest.to_string(), EMPTY_SHA256);
        assert_eq!(digest.algorithm(), Algorithm::Sha256);
        assert_eq!(digest.hex(), &EMPTY_SHA256[7..]);
        let sha512 = format!("sha512:{}", "0a".repeat(64));
        assert_eq!(
            Digest::parse(&sha512).unwrap().algorithm(),
            Algorithm::Sha512
        );
    }

    #[test]
    fn uppercase_hex_is_refused() {
        let upper = EMPTY_SHA256.replace('e', "E");
        assert_eq!(
            Digest::parse(&upper),
            Err(DigestError::NotLowercaseHex { offset: 7 })
        );
    }

    #[test]
    fn short_and_long_hex_are_refused() {
        let short = &EMPTY_SHA256[..EMPTY_SHA256.len() - 1];
        let err = Digest::parse(short).unwrap_err();
        assert_eq!(
            err,
            DigestError::WrongLength {
                algorithm: Algorithm::Sha256,
                expected: 64,
                got: 63
            }
        );
        let long = format!("{EMPTY_SHA256}0");
        assert!(matches!(
            Digest::parse(&long),
            Err(DigestError::WrongLength { got: 65, .. })
        ));
    }

    #[test]
    fn path_like_digests_are_refused() {
        let err = Digest::parse("sha256:../../x").unwrap_err();
        assert_eq!(err, DigestError::NotLowercaseHex { offset: 7 });
        assert_eq!(
            Digest::parse("../../etc"),
            Err(DigestError::MissingAlgorithm)
        );
    }

    #[test]
    fn unknown_algorithms_are_refused() {
        let err = Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert_eq!(
            err,
            DigestError::UnsupportedAlgorithm {
                algorithm: "md5".into()
            }
        );
    }

    #[test]
    fn blob_path_is_under_the_algorithm_directory() {
        let digest = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(
            digest.blob_path(),
            format!("blobs/sha256/{}", &EMPTY_SHA256[7..])
        );
    }

    #[test]
    fn deserialize_revalidates() {
        let ok: Digest = serde_json::from_str(&format!("\"{EMPTY_SHA256}\"")).unwrap();
        assert_eq!(ok.as_str(), EMPTY_SHA256);
        let bad = serde_json::from_str::<Digest>("\"sha256:abc\"");
        assert!(bad.is_err());
    }

    #[test]
    fn hasher_matches_one_shot() {
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), Digest::sha256_of(b"abc"));
    }
}
