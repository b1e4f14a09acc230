//! Heartbeats: the sender's pulse on each stream, so the receiver can tell
//! a quiet link from a dead sender, measure loss, and notice a restart.
//!
//! A heartbeat is a datagram of type 3 with the same size as every other
//! datagram of the stream (constant shape on the wire). Header fields:
//!
//! ```text
//!  transfer id   the sender's boot epoch: random, new each time it starts
//!  object length milliseconds since that start
//!  index         heartbeat sequence number, from 0 at each start
//!  shard, k, m   0, and the stream's FEC parameters (unused)
//! ```
//!
//! The body starts with four big-endian u64 counters, then zero padding:
//!
//! ```text
//!  0  datagrams sent on this stream since the start (heartbeats included)
//!  8  bytes sent on this stream since the start
//! 16  transfers started on this stream since the start
//! 24  the transfer being sent now, or 0
//! ```
//!
//! Like every header field, heartbeats are unauthenticated: they inform
//! status and logs, and decide nothing about what is accepted.

use crate::frame::{self, FecParams, Header, Kind};
use crate::id::{ShardIndex, StreamId, TransferId};

/// Bytes of counters at the start of a heartbeat body.
pub const BODY_LEN: usize = 32;

/// One heartbeat, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub stream: StreamId,
    /// Random id of this run of the sender.
    pub epoch: u64,
    pub sequence: u32,
    pub uptime_ms: u64,
    pub counters: Counters,
}

/// What the sender has put on one stream since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub datagrams: u64,
    pub bytes: u64,
    pub transfers: u64,
    pub current_transfer: u64,
}

impl Heartbeat {
    /// Reads a heartbeat from a parsed header and body; `None` if the body
    /// is too short to hold the counters.
    pub fn from_datagram(header: &Header, body: &[u8]) -> Option<Self> {
        let words: [u8; BODY_LEN] = body.get(..BODY_LEN)?.try_into().ok()?;
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&words[i * 8..i * 8 + 8]);
            u64::from_be_bytes(bytes)
        };
        Some(Self {
            stream: header.stream,
            epoch: header.transfer.0,
            sequence: header.index,
            uptime_ms: header.object_len,
            counters: Counters {
                datagrams: word(0),
                bytes: word(1),
                transfers: word(2),
                current_transfer: word(3),
            },
        })
    }

    /// Writes the heartbeat as a datagram of `fec.shard_len` body bytes into
    /// `out`, returning its length. The shard length must be at least
    /// [`BODY_LEN`]; every shard length a receiver accepts for real data is.
    pub fn emit(&self, fec: FecParams, out: &mut [u8]) -> usize {
        let mut body = vec![0u8; usize::from(fec.shard_len).max(BODY_LEN)];
        let counters = [
            self.counters.datagrams,
            self.counters.bytes,
            self.counters.transfers,
            self.counters.current_transfer,
        ];
        for (slot, value) in body.chunks_exact_mut(8).zip(counters) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
        body.truncate(usize::from(fec.shard_len));
        let header = Header {
            kind: Kind::Heartbeat,
            stream: self.stream,
            transfer: TransferId(self.epoch),
            object_len: self.uptime_ms,
            index: self.sequence,
            shard: ShardIndex(0),
            fec,
        };
        frame::emit(&header, &body, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Datagram, HEADER_LEN};

    #[test]
    fn emit_then_parse_round_trips() {
        let beat = Heartbeat {
            stream: StreamId(2),
            epoch: 0xfeed,
            sequence: 41,
            uptime_ms: 123_456,
            counters: Counters {
                datagrams: 9,
                bytes: 13_000,
                transfers: 2,
                current_transfer: 77,
            },
        };
        let fec = FecParams {
            data: 128,
            parity: 32,
            shard_len: 1428,
        };
        let mut out = vec![0u8; HEADER_LEN + 1428];
        let len = beat.emit(fec, &mut out);
        assert_eq!(len, HEADER_LEN + 1428, "a heartbeat is as big as a shard");
        let datagram = Datagram::parse(&out[..len]).unwrap();
        assert_eq!(datagram.header().kind, Kind::Heartbeat);
        assert_eq!(
            Heartbeat::from_datagram(datagram.header(), datagram.body()),
            Some(beat)
        );
    }

    #[test]
    fn a_short_body_is_not_a_heartbeat() {
        let fec = FecParams {
            data: 1,
            parity: 1,
            shard_len: 16,
        };
        let beat = Heartbeat {
            stream: StreamId(1),
            epoch: 1,
            sequence: 0,
            uptime_ms: 0,
            counters: Counters::default(),
        };
        let mut out = vec![0u8; HEADER_LEN + 16];
        let len = beat.emit(fec, &mut out);
        let datagram = Datagram::parse(&out[..len]).unwrap();
        assert_eq!(
            Heartbeat::from_datagram(datagram.header(), datagram.body()),
            None
        );
    }
}
