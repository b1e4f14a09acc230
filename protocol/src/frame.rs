//! The datagram format: one fixed 44-byte header, then a body of equal size
//! for every datagram of a transfer.
//!
//! ```text
//!  0       4    5    6         8                16               24
//!  ┌───────┬────┬────┬─────────┬────────────────┬────────────────┐
//!  │ magic │ver │type│ stream  │  transfer id   │ object length  │
//!  ├───────┴────┴────┴─────────┼────────┬───────┴┬───────┬───┬───┤
//!  │ index (block / fragment)  │ shard  │ data k │ par m │fec│flg│
//!  ├───────────────┬───────────┼────────┴────────┴───────┴───┴───┘
//!  │ body length   │ reserved  │  crc32 (IEEE) over bytes 0..40 and the body
//!  └───────────────┴───────────┴───────────┘
//!  24              28          30 32  34 35 36      38          40      44
//! ```
//!
//! All integers are big-endian. The header is parsed in place, without
//! allocating, by [`Datagram::parse`]; a datagram whose checksum does not
//! match is dropped and so becomes an erasure for the FEC layer.
//! `docs/PROTOCOL.md` is the normative description.

use thiserror::Error;

use crate::id::{BlockIndex, ShardIndex, StreamId, TransferId};

/// First four bytes of every Sluice datagram.
pub const MAGIC: [u8; 4] = *b"SLCE";
/// Wire format version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes of header before the body.
pub const HEADER_LEN: usize = 44;
/// Largest data + parity count per block a Sluice receiver accepts.
pub const MAX_SHARDS_PER_BLOCK: u16 = 1024;
/// Largest shard a Sluice receiver accepts: a 9000-byte jumbo frame less
/// the IPv4, UDP and Sluice headers.
pub const MAX_SHARD_LEN: u16 = 9000 - 28 - HEADER_LEN as u16;
/// Largest block (data shards times shard length) a receiver accepts.
pub const MAX_BLOCK_LEN: u64 = 4 << 20;
/// Most blocks one payload may have, which bounds the receiver's map of
/// delivered blocks to 2 MiB.
pub const MAX_BLOCKS: u64 = 1 << 24;
/// The FEC scheme number for Reed-Solomon over GF(2^16) as implemented by
/// the Leopard-style `reed-solomon-simd` codec.
pub const FEC_REED_SOLOMON_16: u8 = 1;

mod field {
    use std::ops::Range;

    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const STREAM: Range<usize> = 6..8;
    pub const TRANSFER: Range<usize> = 8..16;
    pub const OBJECT_LEN: Range<usize> = 16..24;
    pub const INDEX: Range<usize> = 24..28;
    pub const SHARD: Range<usize> = 28..30;
    pub const DATA_SHARDS: Range<usize> = 30..32;
    pub const PARITY_SHARDS: Range<usize> = 32..34;
    pub const FEC: usize = 34;
    pub const FLAGS: usize = 35;
    pub const BODY_LEN: Range<usize> = 36..38;
    pub const RESERVED: Range<usize> = 38..40;
    pub const CRC: Range<usize> = 40..44;
}

/// What a datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fragment of the signed envelope (bundle header, manifest, signature).
    Announce,
    /// The sender's pulse: its boot epoch, uptime and counters. See
    /// [`crate::heartbeat`].
    Heartbeat,
    /// One FEC shard of one payload block.
    Shard,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Announce),
            2 => Some(Self::Shard),
            3 => Some(Self::Heartbeat),
            _ => None,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            Self::Announce => 1,
            Self::Shard => 2,
            Self::Heartbeat => 3,
        }
    }
}

/// Reed-Solomon parameters of a transfer; the same in every datagram of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FecParams {
    /// Data (original) shards per block.
    pub data: u16,
    /// Parity (recovery) shards per block.
    pub parity: u16,
    /// Bytes per shard, which is also every datagram's body length.
    pub shard_len: u16,
}

impl FecParams {
    /// Payload bytes one block carries.
    pub fn block_len(&self) -> u64 {
        u64::from(self.data) * u64::from(self.shard_len)
    }

    /// Total shards (data and parity) per block.
    pub fn shards_per_block(&self) -> u16 {
        self.data.saturating_add(self.parity)
    }

    /// Number of blocks needed for `payload_len` bytes.
    pub fn block_count(&self, payload_len: u64) -> u64 {
        payload_len.div_ceil(self.block_len().max(1))
    }
}

/// The header fields of a datagram, owned and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub stream: StreamId,
    pub transfer: TransferId,
    /// Announce: length of the whole envelope. Shard: length of the payload.
    pub object_len: u64,
    /// Announce: fragment number. Shard: block number.
    pub index: u32,
    /// Shard: position in the block (data first, then parity). Announce: 0.
    pub shard: ShardIndex,
    pub fec: FecParams,
}

impl Header {
    /// The block this shard belongs to.
    pub fn block(&self) -> BlockIndex {
        BlockIndex(self.index)
    }
}

/// Why a datagram was dropped before it reached any transfer state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("datagram of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported wire version {got}")]
    UnsupportedVersion { got: u8 },
    #[error("unknown datagram type {got}")]
    UnknownKind { got: u8 },
    #[error("unknown FEC scheme {got}")]
    UnknownFec { got: u8 },
    #[error("reserved bits set")]
    ReservedSet,
    #[error("body length {declared} does not match the {actual} bytes present")]
    BodyLength { declared: usize, actual: usize },
    #[error("checksum mismatch")]
    Checksum,
    #[error("FEC parameters out of range (data {data}, parity {parity}, shard {shard_len})")]
    BadFecParams {
        data: u16,
        parity: u16,
        shard_len: u16,
    },
    #[error("shard index {shard} is past the {total} shards of a block")]
    ShardOutOfRange { shard: u16, total: u16 },
}

/// A checked view over a received datagram. It can only be built by
/// [`Datagram::parse`], so every accessor is in bounds.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    header: Header,
    body: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// Checks length, magic, version, checksum and field ranges.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (head, body) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(FrameError::TooShort { len: bytes.len() })?;
        check_fixed_fields(head)?;
        check_checksum(head, body)?;
        let header = read_header(head)?;

        let declared = usize::from(be_u16(head, field::BODY_LEN));
        if declared != body.len() || declared != usize::from(header.fec.shard_len) {
            return Err(FrameError::BodyLength {
                declared,
                actual: body.len(),
            });
        }
        Ok(Self { header, body })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// Writes a datagram (header, checksum, body) into `out`, returning its
/// length. `out` must hold `HEADER_LEN + body.len()` bytes.
///
/// # Panics
/// If `out` is too small or the body is longer than `u16::MAX`; both are
/// the sender's own sizing, never input.
pub fn emit(header: &Header, body: &[u8], out: &mut [u8]) -> usize {
    let total = HEADER_LEN + body.len();
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    head.fill(0);
    head[field::MAGIC].copy_from_slice(&MAGIC);
    head[field::VERSION] = VERSION;
    head[field::KIND] = header.kind.to_byte();
    head[field::STREAM].copy_from_slice(&header.stream.0.to_be_bytes());
    head[field::TRANSFER].copy_from_slice(&header.transfer.0.to_be_bytes());
    head[field::OBJECT_LEN].copy_from_slice(&header.object_len.to_be_bytes());
    head[field::INDEX].copy_from_slice(&header.index.to_be_bytes());
    head[field::SHARD].copy_from_slice(&header.shard.0.to_be_bytes());
    head[field::DATA_SHARDS].copy_from_slice(&header.fec.data.to_be_bytes());
    head[field::PARITY_SHARDS].copy_from_slice(&header.fec.parity.to_be_bytes());
    head[field::FEC] = FEC_REED_SOLOMON_16;
    let body_len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    head[field::BODY_LEN].copy_from_slice(&body_len.to_be_bytes());
    rest[..body.len()].copy_from_slice(body);

    let crc = checksum(&head[..field::CRC.start], body);
    head[field::CRC].copy_from_slice(&crc.to_be_bytes());
    total
}

/// Checks FEC parameters against what the codec supports: at least one data
/// and one parity shard, a combination the codec handles, and an even,
/// non-zero shard size.
pub fn check_fec_params(fec: FecParams) -> Result<FecParams, FrameError> {
    let FecParams {
        data,
        parity,
        shard_len,
    } = fec;
    let codec_ok = crate::fec::supports(data, parity);
    let shard_ok = shard_len >= 2 && shard_len % 2 == 0;
    if codec_ok && shard_ok {
        Ok(fec)
    } else {
        Err(FrameError::BadFecParams {
            data,
            parity,
            shard_len,
        })
    }
}

fn check_fixed_fields(head: &[u8; HEADER_LEN]) -> Result<(), FrameError> {
    if head[field::MAGIC] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if head[field::VERSION] != VERSION {
        return Err(FrameError::UnsupportedVersion {
            got: head[field::VERSION],
        });
    }
    if head[field::FEC] != FEC_REED_SOLOMON_16 {
        return Err(FrameError::UnknownFec {
            got: head[field::FEC],
        });
    }
    if head[field::FLAGS] != 0 || head[field::RESERVED] != [0, 0] {
        return Err(FrameError::ReservedSet);
    }
    Ok(())
}

fn check_checksum(head: &[u8; HEADER_LEN], body: &[u8]) -> Result<(), FrameError> {
    let stored = u32::from_be_bytes([head[40], head[41], head[42], head[43]]);
    if checksum(&head[..field::CRC.start], body) == stored {
        Ok(())
    } else {
        Err(FrameError::Checksum)
    }
}

fn read_header(head: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
    let kind_byte = head[field::KIND];
    let kind = Kind::from_byte(kind_byte).ok_or(FrameError::UnknownKind { got: kind_byte })?;
    let fec = check_fec_params(FecParams {
        data: be_u16(head, field::DATA_SHARDS),
        parity: be_u16(head, field::PARITY_SHARDS),
        shard_len: be_u16(head, field::BODY_LEN),
    })?;
    let shard = be_u16(head, field::SHARD);
    if kind == Kind::Shard && shard >= fec.shards_per_block() {
        let total = fec.shards_per_block();
        return Err(FrameError::ShardOutOfRange { shard, total });
    }

    Ok(Header {
        kind,
        stream: StreamId(be_u16(head, field::STREAM)),
        transfer: TransferId(u64::from_be_bytes(array(head, field::TRANSFER))),
        object_len: u64::from_be_bytes(array(head, field::OBJECT_LEN)),
        index: u32::from_be_bytes(array(head, field::INDEX)),
        shard: ShardIndex(shard),
        fec,
    })
}

fn checksum(head: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(body);
    hasher.finalize()
}

fn be_u16(head: &[u8; HEADER_LEN], range: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes(array(head, range))
}

/// Copies a fixed field out of the header. The ranges are constants inside
/// the header, so the fallback of zeros is never taken.
fn array<const N: usize>(head: &[u8; HEADER_LEN], range: std::ops::Range<usize>) -> [u8; N] {
    head.get(range)
        .and_then(|slice| <[u8; N]>::try_from(slice).ok())
        .unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_header() -> Header {
        Header {
            kind: Kind::Shard,
            stream: StreamId(2),
            transfer: TransferId(0x0102_0304_0506_0708),
            object_len: 1_000_000,
            index: 7,
            shard: ShardIndex(3),
            fec: FecParams {
                data: 4,
                parity: 2,
                shard_len: 8,
            },
        }
    }

    /// A known-good datagram, byte for byte, so that an accidental change
    /// to the layout breaks this test and not a deployed receiver.
    const VECTOR: [u8; 52] = [
        b'S', b'L', b'C', b'E', 1, 2, 0, 2, // magic, version, type, stream
        1, 2, 3, 4, 5, 6, 7, 8, // transfer id
        0, 0, 0, 0, 0, 0x0f, 0x42, 0x40, // object length 1_000_000
        0, 0, 0, 7, 0, 3, 0, 4, // block 7, shard 3, data 4
        0, 2, 1, 0, 0, 8, 0, 0, // parity 2, fec 1, flags, body 8, reserved
        0x76, 0x28, 0x11, 0x9c, // crc32 (IEEE), computed independently
        b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h',
    ];

    #[test]
    fn emits_the_test_vector() {
        let mut out = [0u8; 52];
        let len = emit(&sample_header(), b"abcdefgh", &mut out);
        assert_eq!(len, 52);
        assert_eq!(out, VECTOR);
    }

    #[test]
    fn parses_the_test_vector() {
        let datagram = Datagram::parse(&VECTOR).unwrap();
        assert_eq!(*datagram.header(), sample_header());
        assert_eq!(datagram.body(), b"abcdefgh");
    }

    #[test]
    fn refuses_short_input() {
        assert_eq!(
            Datagram::parse(&VECTOR[..43]).unwrap_err(),
            FrameError::TooShort { len: 43 }
        );
        assert_eq!(
            Datagram::parse(&[]).unwrap_err(),
            FrameError::TooShort { len: 0 }
        );
    }

    #[test]
    fn refuses_a_truncated_body() {
        let err = Datagram::parse(&VECTOR[..50]).unwrap_err();
        assert_eq!(err, FrameError::Checksum);
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        for bit in 0..VECTOR.len() * 8 {
            let mut bytes = VECTOR;
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Datagram::parse(&bytes).is_err(),
                "bit {bit} flip went unnoticed"
            );
        }
    }

    #[test]
    fn refuses_shard_past_the_block() {
        let mut header = sample_header();
        header.shard = ShardIndex(6);
        let mut out = [0u8; 52];
        emit(&header, b"abcdefgh", &mut out);
        let err = Datagram::parse(&out).unwrap_err();
        assert_eq!(err, FrameError::ShardOutOfRange { shard: 6, total: 6 });
    }

    #[test]
    fn refuses_odd_shard_length() {
        let mut header = sample_header();
        header.fec.shard_len = 7;
        let mut out = [0u8; 51];
        emit(&header, b"abcdefg", &mut out);
        let err = Datagram::parse(&out).unwrap_err();
        assert!(matches!(err, FrameError::BadFecParams { shard_len: 7, .. }));
    }

    #[test]
    fn block_count_rounds_up() {
        let fec = FecParams {
            data: 4,
            parity: 2,
            shard_len: 8,
        };
        assert_eq!(fec.block_count(0), 0);
        assert_eq!(fec.block_count(1), 1);
        assert_eq!(fec.block_count(32), 1);
        assert_eq!(fec.block_count(33), 2);
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(
            announce in any::<bool>(),
            stream in any::<u16>(),
            transfer in any::<u64>(),
            object_len in any::<u64>(),
            index in any::<u32>(),
            data in 1u16..300,
            parity in 1u16..300,
            half_len in 1u16..700,
            shard_seed in any::<u16>(),
        ) {
            let fec = FecParams { data, parity, shard_len: half_len * 2 };
            let kind = if announce { Kind::Announce } else { Kind::Shard };
            let shard = if announce { 0 } else { shard_seed % fec.shards_per_block() };
            let header = Header {
                kind, stream: StreamId(stream), transfer: TransferId(transfer),
                object_len, index, shard: ShardIndex(shard), fec,
            };
            let body: Vec<u8> = (0..fec.shard_len).map(|i| i as u8).collect();
            let mut out = vec![0u8; HEADER_LEN + body.len()];
            emit(&header, &body, &mut out);
            let parsed = Datagram::parse(&out).unwrap();
            prop_assert_eq!(*parsed.header(), header);
            prop_assert_eq!(parsed.body(), &body[..]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Datagram::parse(&bytes);
        }
    }
}
