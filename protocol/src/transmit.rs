//! The sender's half of the protocol: turns one bundle (envelope and payload)
//! into the sequence of datagrams that carry it, with no I/O.
//!
//! ```text
//!  lead-in        data windows, each `interleave` blocks wide            tail
//!  ┌──────┐ ┌──────────────────────────────────────────────────┐ ┌──────┐
//!  │A0 A1 │ │ b0s0 b1s0 b2s0 … b0s1 b1s1 … A0 … b0s(k+m-1) …    │ │A0 A1 │
//!  └──────┘ └──────────────────────────────────────────────────┘ └──────┘
//!  A = announce fragment (the signed envelope), bNsM = shard M of block N
//! ```
//!
//! Sending shard 0 of every block in a window, then shard 1, and so on,
//! spreads a burst of loss thinly over many blocks instead of wiping out one.
//! The envelope is announced before, during and after the data so that losing
//! any single copy of it costs nothing.
//!
//! The driver asks [`Transmission::wants_payload`] for the next byte range,
//! reads it, hands it to [`Transmission::push_payload`], and drains
//! [`Transmission::next_datagram`] until it returns `None`.

use std::ops::Range;

use thiserror::Error;

use crate::fec::{Encoder, FecError};
use crate::frame::{self, FecParams, HEADER_LEN, Header, Kind};
use crate::id::{ShardIndex, StreamId, TransferId};

/// IPv4 and UDP header bytes inside an MTU.
const IPV4_UDP_OVERHEAD: usize = 28;
/// IPv6 and UDP header bytes inside an MTU.
const IPV6_UDP_OVERHEAD: usize = 48;

/// How one transfer is cut up and ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransmitConfig {
    pub stream: StreamId,
    pub fec: FecParams,
    /// Blocks sent interleaved with each other.
    pub interleave: u32,
    /// One announce fragment is slipped in after this many shards.
    pub announce_every: u32,
    /// Full copies of the envelope sent before the data, and again after it.
    pub announce_passes: u32,
}

/// Refusals of the sender core; all are the caller's sizing mistakes.
#[derive(Debug, Error)]
pub enum TransmitError {
    #[error("MTU {mtu} leaves no room for a shard after {HEADER_LEN} header bytes")]
    MtuTooSmall { mtu: usize },
    #[error("envelope is empty")]
    EmptyEnvelope,
    #[error("payload chunk of {got} bytes, expected {expected}")]
    ChunkSize { expected: u64, got: usize },
    #[error("no payload was requested")]
    Unrequested,
    #[error(transparent)]
    Fec(#[from] FecError),
}

impl TransmitConfig {
    /// The shard size that fills one IP packet of `mtu` bytes.
    pub fn shard_len_for_mtu(mtu: usize, ipv6: bool) -> Result<u16, TransmitError> {
        let overhead = if ipv6 {
            IPV6_UDP_OVERHEAD
        } else {
            IPV4_UDP_OVERHEAD
        };
        let room = mtu.saturating_sub(overhead + HEADER_LEN) & !1;
        let room = room.min(usize::from(u16::MAX - 1));
        match u16::try_from(room) {
            Ok(len) if len >= 2 => Ok(len),
            _ => Err(TransmitError::MtuTooSmall { mtu }),
        }
    }

    /// Bytes of every datagram this configuration produces.
    pub fn datagram_len(&self) -> usize {
        HEADER_LEN + usize::from(self.fec.shard_len)
    }
}

/// One bundle on its way out.
#[derive(Debug)]
pub struct Transmission {
    config: TransmitConfig,
    transfer: TransferId,
    envelope: Vec<u8>,
    payload_len: u64,
    block_count: u64,
    encoder: Encoder,
    window: Window,
    phase: Phase,
    announce: AnnounceCursor,
    shards_since_announce: u32,
    sent: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    LeadIn { remaining: u64 },
    Data,
    Tail { remaining: u64 },
    Done,
}

/// The blocks currently being sent and where in their interleaved order we are.
#[derive(Debug, Default)]
struct Window {
    first_block: u64,
    blocks: u32,
    data: Vec<u8>,
    parity: Vec<u8>,
    /// Position in the shard-major order: `shard * blocks + block`.
    cursor: u64,
    loaded: bool,
}

#[derive(Debug)]
struct AnnounceCursor {
    next: u32,
    fragments: u32,
}

impl Transmission {
    pub fn new(
        config: TransmitConfig,
        transfer: TransferId,
        envelope: Vec<u8>,
        payload_len: u64,
    ) -> Result<Self, TransmitError> {
        if envelope.is_empty() {
            return Err(TransmitError::EmptyEnvelope);
        }
        let fragments = fragment_count(envelope.len(), config.fec.shard_len);
        let passes = u64::from(config.announce_passes.max(1));
        Ok(Self {
            encoder: Encoder::new(config.fec)?,
            block_count: config.fec.block_count(payload_len),
            phase: Phase::LeadIn {
                remaining: passes * u64::from(fragments),
            },
            announce: AnnounceCursor { next: 0, fragments },
            window: Window::default(),
            config,
            transfer,
            envelope,
            payload_len,
            shards_since_announce: 0,
            sent: 0,
        })
    }

    /// The payload byte range the next window needs, if the data phase is
    /// waiting for it.
    pub fn wants_payload(&self) -> Option<Range<u64>> {
        if self.phase != Phase::Data || self.window.loaded {
            return None;
        }
        let block_len = self.config.fec.block_len();
        let start = self.window.first_block * block_len;
        let end = (start + u64::from(self.window_blocks()) * block_len).min(self.payload_len);
        Some(start..end)
    }

    /// Supplies the bytes for the range [`Self::wants_payload`] returned.
    pub fn push_payload(&mut self, bytes: &[u8]) -> Result<(), TransmitError> {
        let range = self.wants_payload().ok_or(TransmitError::Unrequested)?;
        let expected = range.end - range.start;
        if bytes.len() as u64 != expected {
            return Err(TransmitError::ChunkSize {
                expected,
                got: bytes.len(),
            });
        }
        let blocks = self.window_blocks();
        let block_len = self.config.fec.block_len() as usize;
        let window = &mut self.window;
        window.data.clear();
        window.data.extend_from_slice(bytes);
        window.data.resize(blocks as usize * block_len, 0);
        window.parity.clear();
        for block in window.data.chunks_exact(block_len) {
            self.encoder.parity(block, &mut window.parity)?;
        }
        window.blocks = blocks;
        window.cursor = 0;
        window.loaded = true;
        Ok(())
    }

    /// Writes the next datagram into `out` (at least
    /// [`TransmitConfig::datagram_len`] bytes) and returns its length, or
    /// `None` when payload is wanted or the transmission is over.
    pub fn next_datagram(&mut self, out: &mut [u8]) -> Option<usize> {
        let len = match self.phase {
            Phase::LeadIn { remaining } => {
                self.phase = next_lead_in(remaining, self.block_count);
                self.emit_announce(out)
            }
            Phase::Data => self.emit_data(out)?,
            Phase::Tail { remaining } => {
                self.phase = if remaining > 1 {
                    Phase::Tail {
                        remaining: remaining - 1,
                    }
                } else {
                    Phase::Done
                };
                self.emit_announce(out)
            }
            Phase::Done => return None,
        };
        self.sent += 1;
        Some(len)
    }

    /// True once every datagram has been produced.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Datagrams produced so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// How many datagrams the whole transmission takes, for progress bars.
    pub fn total_datagrams(&self) -> u64 {
        let fragments = u64::from(self.announce.fragments);
        let passes = u64::from(self.config.announce_passes.max(1));
        let shards = self.block_count * u64::from(self.config.fec.shards_per_block());
        let every = u64::from(self.config.announce_every.max(1));
        2 * passes * fragments + shards + shards / every
    }

    pub fn transfer(&self) -> TransferId {
        self.transfer
    }

    pub fn block_count(&self) -> u64 {
        self.block_count
    }

    fn window_blocks(&self) -> u32 {
        let left = self.block_count.saturating_sub(self.window.first_block);
        u32::try_from(left.min(u64::from(self.config.interleave.max(1)))).unwrap_or(1)
    }

    fn emit_data(&mut self, out: &mut [u8]) -> Option<usize> {
        if !self.window.loaded {
            return None;
        }
        if self.config.announce_every > 0
            && self.shards_since_announce >= self.config.announce_every
        {
            self.shards_since_announce = 0;
            return Some(self.emit_announce(out));
        }
        let len = self.emit_shard(out);
        self.shards_since_announce += 1;
        self.advance_window();
        Some(len)
    }

    fn emit_shard(&mut self, out: &mut [u8]) -> usize {
        let window = &self.window;
        let blocks = u64::from(window.blocks);
        let shard = (window.cursor / blocks) as u16;
        let block_in_window = (window.cursor % blocks) as usize;
        let body = shard_body(&self.config.fec, window, block_in_window, shard);
        let header = Header {
            kind: Kind::Shard,
            stream: self.config.stream,
            transfer: self.transfer,
            object_len: self.payload_len,
            index: u32::try_from(window.first_block + block_in_window as u64).unwrap_or(u32::MAX),
            shard: ShardIndex(shard),
            fec: self.config.fec,
        };
        frame::emit(&header, body, out)
    }

    fn advance_window(&mut self) {
        let window = &mut self.window;
        window.cursor += 1;
        let total = u64::from(window.blocks) * u64::from(self.config.fec.shards_per_block());
        if window.cursor < total {
            return;
        }
        window.first_block += u64::from(window.blocks);
        window.loaded = false;
        if window.first_block >= self.block_count {
            self.phase = self.tail_phase();
        }
    }

    fn tail_phase(&self) -> Phase {
        let passes = u64::from(self.config.announce_passes.max(1));
        Phase::Tail {
            remaining: passes * u64::from(self.announce.fragments),
        }
    }

    fn emit_announce(&mut self, out: &mut [u8]) -> usize {
        let shard_len = usize::from(self.config.fec.shard_len);
        let index = self.announce.next;
        self.announce.next = (index + 1) % self.announce.fragments.max(1);

        let start = (index as usize) * shard_len;
        let end = (start + shard_len).min(self.envelope.len());
        let mut body = vec![0u8; shard_len];
        if let (Some(src), Some(dst)) = (self.envelope.get(start..end), body.get_mut(..end - start))
        {
            dst.copy_from_slice(src);
        }
        let header = Header {
            kind: Kind::Announce,
            stream: self.config.stream,
            transfer: self.transfer,
            object_len: self.envelope.len() as u64,
            index,
            shard: ShardIndex(0),
            fec: self.config.fec,
        };
        frame::emit(&header, &body, out)
    }
}

/// Every datagram of a whole transmission, in order, for payloads that fit
/// in memory: simulations, tests and fuzzing seeds. The sender streams.
pub fn all_datagrams(
    config: TransmitConfig,
    transfer: TransferId,
    envelope: &[u8],
    payload: &[u8],
) -> Result<Vec<Vec<u8>>, TransmitError> {
    let len = payload.len() as u64;
    let mut tx = Transmission::new(config, transfer, envelope.to_vec(), len)?;
    let mut out = vec![0u8; config.datagram_len()];
    let mut all = Vec::new();
    while !tx.is_done() {
        if let Some(range) = tx.wants_payload() {
            let chunk = usize::try_from(range.start)
                .ok()
                .zip(usize::try_from(range.end).ok());
            let bytes = chunk
                .and_then(|(start, end)| payload.get(start..end))
                .unwrap_or(&[]);
            tx.push_payload(bytes)?;
        }
        if let Some(n) = tx.next_datagram(&mut out) {
            all.push(out.get(..n).unwrap_or_default().to_vec());
        }
    }
    Ok(all)
}

/// Number of shard-sized fragments an envelope of `len` bytes takes.
pub fn fragment_count(len: usize, shard_len: u16) -> u32 {
    u32::try_from(len.div_ceil(usize::from(shard_len.max(1)))).unwrap_or(u32::MAX)
}

fn next_lead_in(remaining: u64, block_count: u64) -> Phase {
    if remaining > 1 {
        Phase::LeadIn {
            remaining: remaining - 1,
        }
    } else if block_count == 0 {
        Phase::Done
    } else {
        Phase::Data
    }
}

fn shard_body<'w>(fec: &FecParams, window: &'w Window, block: usize, shard: u16) -> &'w [u8] {
    let len = usize::from(fec.shard_len);
    let (source, index) = if shard < fec.data {
        (
            &window.data,
            block * usize::from(fec.data) + usize::from(shard),
        )
    } else {
        let parity = usize::from(shard - fec.data);
        (&window.parity, block * usize::from(fec.parity) + parity)
    };
    source.get(index * len..(index + 1) * len).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Datagram;

    fn config() -> TransmitConfig {
        TransmitConfig {
            stream: StreamId(1),
            fec: FecParams {
                data: 4,
                parity: 2,
                shard_len: 8,
            },
            interleave: 3,
            announce_every: 5,
            announce_passes: 2,
        }
    }

    /// Runs a transmission to the end, returning every datagram.
    fn run(envelope: &[u8], payload: &[u8]) -> Vec<Vec<u8>> {
        all_datagrams(config(), TransferId(9), envelope, payload).unwrap()
    }

    fn headers(datagrams: &[Vec<u8>]) -> Vec<Header> {
        datagrams
            .iter()
            .map(|d| *Datagram::parse(d).unwrap().header())
            .collect()
    }

    #[test]
    fn shard_len_fills_an_ethernet_frame() {
        assert_eq!(
            TransmitConfig::shard_len_for_mtu(1500, false).unwrap(),
            1428
        );
        assert_eq!(TransmitConfig::shard_len_for_mtu(1500, true).unwrap(), 1408);
        assert!(TransmitConfig::shard_len_for_mtu(60, false).is_err());
    }

    #[test]
    fn every_datagram_has_the_same_size() {
        let all = run(b"envelope bytes!!!", &[5u8; 100]);
        assert!(all.iter().all(|d| d.len() == config().datagram_len()));
    }

    #[test]
    fn empty_payload_sends_only_announces() {
        let all = run(b"0123456789", &[]);
        let kinds: Vec<Kind> = headers(&all).iter().map(|h| h.kind).collect();
        assert_eq!(kinds, vec![Kind::Announce; 4]);
    }

    #[test]
    fn shards_are_interleaved_across_blocks() {
        // 100 bytes = 4 blocks of 32; the first window holds blocks 0..3.
        let all = run(b"env", &[1u8; 100]);
        let shards: Vec<(u32, u16)> = headers(&all)
            .iter()
            .filter(|h| h.kind == Kind::Shard)
            .map(|h| (h.index, h.shard.0))
            .collect();
        assert_eq!(&shards[..4], &[(0, 0), (1, 0), (2, 0), (0, 1)]);
        assert_eq!(shards.len(), 4 * 6);
        assert_eq!(shards[18], (3, 0));
    }

    #[test]
    fn announces_are_slipped_between_shards() {
        let all = run(b"env", &[1u8; 100]);
        let kinds: Vec<Kind> = headers(&all).iter().map(|h| h.kind).collect();
        assert_eq!(kinds[..2], [Kind::Announce, Kind::Announce]);
        assert_eq!(kinds[2..7], [Kind::Shard; 5]);
        assert_eq!(kinds[7], Kind::Announce);
        assert_eq!(kinds.last(), Some(&Kind::Announce));
    }

    #[test]
    fn total_is_an_upper_estimate_of_what_is_sent() {
        let payload = [3u8; 1000];
        let tx = Transmission::new(config(), TransferId(1), b"e".to_vec(), 1000).unwrap();
        let sent = run(b"e", &payload).len() as u64;
        assert!(tx.total_datagrams() >= sent && tx.total_datagrams() <= sent + 2);
    }

    #[test]
    fn rejects_a_chunk_of_the_wrong_size() {
        let mut tx = Transmission::new(config(), TransferId(1), b"e".to_vec(), 10).unwrap();
        let mut out = vec![0u8; 64];
        while tx.wants_payload().is_none() {
            tx.next_datagram(&mut out).unwrap();
        }
        assert!(matches!(
            tx.push_payload(&[0; 3]),
            Err(TransmitError::ChunkSize {
                expected: 10,
                got: 3
            })
        ));
    }
}
