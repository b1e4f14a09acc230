//! Forward error correction: systematic Reed-Solomon over GF(2^16), using the
//! `reed-solomon-simd` codec (wire scheme number 1).
//!
//! A block is `data` shards of `shard_len` bytes; the encoder adds `parity`
//! shards, and any `data` of the `data + parity` shards rebuild the block.
//! Data shards are the payload bytes themselves, so a block that lost no
//! data shard needs no decoding at all.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use thiserror::Error;

use crate::frame::FecParams;

/// FEC failures. Every one of them is a sizing bug on our side or too few
/// shards; none is reachable from a single malformed datagram.
#[derive(Debug, Error)]
pub enum FecError {
    #[error("FEC parameters not supported: {data} data and {parity} parity shards")]
    Unsupported { data: u16, parity: u16 },
    #[error("block of {got} bytes, expected {expected}")]
    BlockSize { expected: usize, got: usize },
    #[error("only {have} of the {need} shards needed to rebuild the block")]
    TooFewShards { have: usize, need: usize },
    #[error("codec failed: {0}")]
    Codec(#[from] reed_solomon_simd::Error),
}

/// Whether the codec handles this data/parity combination.
pub fn supports(data: u16, parity: u16) -> bool {
    data >= 1 && parity >= 1 && ReedSolomonEncoder::supports(data.into(), parity.into())
}

/// Makes parity shards for blocks of one transfer, reusing its work space.
pub struct Encoder {
    params: FecParams,
    codec: ReedSolomonEncoder,
}

impl Encoder {
    pub fn new(params: FecParams) -> Result<Self, FecError> {
        let codec = new_codec(params, ReedSolomonEncoder::new)?;
        Ok(Self { params, codec })
    }

    /// Appends the parity shards of `block` (exactly one block of data
    /// shards, concatenated) to `out`.
    pub fn parity(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), FecError> {
        let expected = block_len(self.params);
        if block.len() != expected {
            return Err(FecError::BlockSize {
                expected,
                got: block.len(),
            });
        }
        let FecParams {
            data,
            parity,
            shard_len,
        } = self.params;
        self.codec
            .reset(data.into(), parity.into(), shard_len.into())?;
        for shard in block.chunks_exact(usize::from(shard_len)) {
            self.codec.add_original_shard(shard)?;
        }
        let result = self.codec.encode()?;
        for shard in result.recovery_iter() {
            out.extend_from_slice(shard);
        }
        Ok(())
    }
}

/// Rebuilds blocks from any sufficient subset of their shards.
pub struct Decoder {
    params: FecParams,
    codec: ReedSolomonDecoder,
}

impl Decoder {
    pub fn new(params: FecParams) -> Result<Self, FecError> {
        let codec = new_codec(params, ReedSolomonDecoder::new)?;
        Ok(Self { params, codec })
    }

    /// Writes the block's data into `out` from `shards`, indexed by shard
    /// number (data first, then parity). Returns how many parity shards the
    /// rebuild needed.
    pub fn rebuild(&mut self, shards: &[Option<&[u8]>], out: &mut [u8]) -> Result<u16, FecError> {
        let data = usize::from(self.params.data);
        let len = usize::from(self.params.shard_len);
        let expected = block_len(self.params);
        if out.len() != expected {
            return Err(FecError::BlockSize {
                expected,
                got: out.len(),
            });
        }
        // A codec call that failed part-way leaves shards behind; start clean.
        let FecParams {
            data: d,
            parity: p,
            shard_len: s,
        } = self.params;
        self.codec.reset(d.into(), p.into(), s.into())?;
        let have = shards.iter().flatten().count();
        if have < data {
            return Err(FecError::TooFewShards { have, need: data });
        }

        let (originals, recovery) = shards.split_at(data.min(shards.len()));
        let missing = originals.iter().filter(|s| s.is_none()).count();
        copy_present(originals, out, len);
        if missing == 0 {
            return Ok(0);
        }
        for (index, shard) in originals.iter().enumerate() {
            if let Some(shard) = shard {
                self.codec.add_original_shard(index, shard)?;
            }
        }
        for (index, shard) in recovery
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, (*s)?)))
            .take(missing)
        {
            self.codec.add_recovery_shard(index, shard)?;
        }
        let result = self.codec.decode()?;
        for (index, shard) in result.restored_original_iter() {
            let start = index * len;
            if let Some(slot) = out.get_mut(start..start + len) {
                slot.copy_from_slice(shard);
            }
        }
        Ok(u16::try_from(missing).unwrap_or(u16::MAX))
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("params", &self.params)
            .finish()
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("params", &self.params)
            .finish()
    }
}

fn new_codec<C>(
    params: FecParams,
    make: fn(usize, usize, usize) -> Result<C, reed_solomon_simd::Error>,
) -> Result<C, FecError> {
    let FecParams {
        data,
        parity,
        shard_len,
    } = params;
    if !supports(data, parity) {
        return Err(FecError::Unsupported { data, parity });
    }
    Ok(make(data.into(), parity.into(), shard_len.into())?)
}

fn block_len(params: FecParams) -> usize {
    usize::from(params.data) * usize::from(params.shard_len)
}

fn copy_present(originals: &[Option<&[u8]>], out: &mut [u8], len: usize) {
    for (shard, slot) in originals.iter().zip(out.chunks_exact_mut(len)) {
        if let Some(shard) = shard {
            slot.copy_from_slice(shard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PARAMS: FecParams = FecParams {
        data: 8,
        parity: 4,
        shard_len: 16,
    };

    fn block() -> Vec<u8> {
        (0..128u32).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn shards_of(block: &[u8]) -> Vec<Vec<u8>> {
        let mut parity = Vec::new();
        Encoder::new(PARAMS)
            .unwrap()
            .parity(block, &mut parity)
            .unwrap();
        block
            .chunks(16)
            .chain(parity.chunks(16))
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn rebuild_without(lost: &[usize]) -> Result<(Vec<u8>, u16), FecError> {
        let shards = shards_of(&block());
        let view: Vec<Option<&[u8]>> = shards
            .iter()
            .enumerate()
            .map(|(i, s)| (!lost.contains(&i)).then_some(&s[..]))
            .collect();
        let mut out = vec![0u8; 128];
        let used = Decoder::new(PARAMS).unwrap().rebuild(&view, &mut out)?;
        Ok((out, used))
    }

    #[test]
    fn no_loss_needs_no_parity() {
        let (out, used) = rebuild_without(&[]).unwrap();
        assert_eq!(out, block());
        assert_eq!(used, 0);
    }

    #[test]
    fn rebuilds_lost_data_shards() {
        let (out, used) = rebuild_without(&[0, 3, 7, 9]).unwrap();
        assert_eq!(out, block());
        assert_eq!(used, 3);
    }

    #[test]
    fn reports_too_few_shards() {
        let err = rebuild_without(&[0, 1, 2, 3, 4]).unwrap_err();
        assert!(matches!(err, FecError::TooFewShards { have: 7, need: 8 }));
    }

    #[test]
    fn refuses_wrong_block_size() {
        let mut out = Vec::new();
        let err = Encoder::new(PARAMS)
            .unwrap()
            .parity(&[0; 10], &mut out)
            .unwrap_err();
        assert!(matches!(
            err,
            FecError::BlockSize {
                expected: 128,
                got: 10
            }
        ));
    }

    #[test]
    fn zero_parity_is_unsupported() {
        assert!(!supports(8, 0));
        assert!(supports(128, 32));
    }

    proptest! {
        #[test]
        fn any_erasure_pattern_up_to_parity_is_recovered(
            lost in proptest::sample::subsequence((0..12usize).collect::<Vec<_>>(), 0..=4)
        ) {
            let (out, _) = rebuild_without(&lost).unwrap();
            prop_assert_eq!(out, block());
        }

        #[test]
        fn more_erasures_than_parity_fail(
            lost in proptest::sample::subsequence((0..12usize).collect::<Vec<_>>(), 5..=12)
        ) {
            let failed = matches!(rebuild_without(&lost), Err(FecError::TooFewShards { .. }));
            prop_assert!(failed);
        }
    }
}
