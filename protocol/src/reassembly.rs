//! The receiver's half of the protocol: datagrams in, verified-size blocks
//! out, with no I/O and bounded memory.
//!
//! ```text
//!             announce fragments                         shards
//!                    │                                      │
//!   new ──▶ Announcing ──envelope complete──▶ Verifying ──accept──▶ Receiving ──all blocks──▶ Complete
//!               │          (Event::Envelope)      │                    │
//!               └── shards buffered, capped ──────┘──refuse──▶ gone    └──idle──▶ Failed(Incomplete)
//! ```
//!
//! The core never trusts a datagram's claims about sizes: the envelope is
//! bounded by a configured maximum, shards that arrive before the envelope is
//! verified share a small per-transfer budget, and the payload length comes
//! from the signed manifest the driver passes to [`Reassembler::accept`].
//! Completion is decided from that signed length and the block count, never
//! from an end marker.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::blockmap::BlockMap;
use crate::fec::Decoder;
use crate::frame::{self, Datagram, FecParams, FrameError, Header, Kind};
use crate::heartbeat::Heartbeat;
use crate::id::{StreamId, TransferId};
use crate::transmit::fragment_count;

/// Resource limits of the receiver core.
#[derive(Clone, Debug)]
pub struct ReassemblyConfig {
    /// Transfers tracked at once, in any state.
    pub max_transfers: usize,
    /// Of those, transfers whose envelope is not yet verified.
    pub max_unverified: usize,
    /// Largest envelope (header, manifest and signature) accepted.
    pub max_envelope_len: u64,
    /// Shard bytes held for a transfer before its envelope is verified.
    pub max_unverified_bytes: usize,
    /// Incomplete blocks held per transfer; the oldest is given up beyond it.
    pub max_pending_blocks: usize,
    /// Bytes of incomplete blocks held per verified transfer; the oldest
    /// block is given up beyond it.
    pub max_pending_bytes: usize,
    /// Largest data + parity count per block a transfer may use.
    pub max_shards_per_block: u16,
    /// Largest shard (datagram body) a transfer may use.
    pub max_shard_len: u16,
    /// A transfer with no datagram for this long is closed as incomplete.
    pub idle_timeout: Duration,
    /// Finished transfer ids remembered, so their stragglers are ignored.
    pub finished_memory: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        Self {
            max_transfers: 16,
            max_unverified: 8,
            max_envelope_len: (1 << 20) + 76,
            max_unverified_bytes: 4 << 20,
            max_pending_blocks: 64,
            max_pending_bytes: 16 << 20,
            max_shards_per_block: frame::MAX_SHARDS_PER_BLOCK,
            max_shard_len: frame::MAX_SHARD_LEN,
            idle_timeout: Duration::from_secs(30),
            finished_memory: 4096,
        }
    }
}

/// What the driver must act on, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The whole envelope arrived: verify it, then call `accept` or `refuse`.
    Envelope {
        transfer: TransferId,
        stream: StreamId,
        envelope: Vec<u8>,
    },
    /// Payload bytes at `offset`, rebuilt and trimmed to the signed length.
    Block {
        transfer: TransferId,
        offset: u64,
        data: Vec<u8>,
    },
    /// Every block of the signed payload has been delivered.
    Complete {
        transfer: TransferId,
        stats: TransferStats,
    },
    /// A sender's heartbeat arrived; it creates no transfer state.
    Heartbeat(Heartbeat),
    /// The transfer ended without its payload; its state is gone.
    Failed {
        transfer: TransferId,
        reason: FailReason,
        stats: TransferStats,
    },
}

/// Why a transfer ended without a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// Went idle with blocks (or the envelope) still missing: the loss was
    /// more than the parity could repair.
    Incomplete {
        missing_blocks: u64,
        block_count: u64,
        first_missing: Vec<u64>,
        envelope: bool,
    },
    /// Shards announce a payload length other than the signed one.
    LengthMismatch { signed: u64, announced: u64 },
    /// The signed payload needs more blocks than the wire can number.
    TooManyBlocks { payload_len: u64 },
    /// Dropped to make room for newer transfers.
    Evicted,
    /// Its sender restarted: a new boot epoch was heard on its stream while
    /// this transfer had gone quiet.
    Abandoned,
}

/// What a receiver needs to take a verified transfer up again after a
/// restart: its identity, its parameters and the blocks already spooled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub transfer: TransferId,
    pub stream: StreamId,
    pub fec: FecParams,
    pub payload_len: u64,
    pub done: BlockMap,
}

/// Why a checkpoint could not be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("the transfer is already active")]
    AlreadyActive,
    #[error("block map covers {got} blocks but the payload has {expected}")]
    BlockMapSize { expected: u64, got: u64 },
    #[error("no room for another transfer")]
    NoRoom,
}

/// Counters of one transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    pub datagrams: u64,
    pub duplicates: u64,
    pub late: u64,
    pub blocks: u64,
    pub blocks_rebuilt: u64,
    pub shards_rebuilt: u64,
    pub max_parity_used: u16,
    pub unverified_dropped: u64,
    pub blocks_given_up: u64,
    /// Shards whose payload length disagrees with the signed one.
    pub length_mismatches: u64,
}

/// Why a datagram was dropped without touching any transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    Frame(FrameError),
    /// Belongs to a transfer that already finished or was refused.
    Finished,
    /// FEC parameters differ from the ones this transfer started with.
    ParamsMismatch,
    /// Envelope length is zero or over the configured maximum.
    EnvelopeTooLarge {
        len: u64,
    },
    /// FEC parameters beyond the configured maximum block or shard size.
    FecTooLarge,
    /// Announce fragment whose index or length disagrees with the transfer.
    BadFragment,
    /// Shard past the signed payload.
    BlockOutOfRange,
    /// No room for another transfer.
    NoRoom,
    /// A heartbeat too short to hold its counters.
    BadHeartbeat,
}

/// The receiver core. One per listening socket.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    transfers: HashMap<TransferId, Transfer>,
    finished: FinishedSet,
    events: VecDeque<Event>,
    per_stream: HashMap<StreamId, u64>,
}

#[derive(Debug)]
struct Transfer {
    stream: StreamId,
    fec: FecParams,
    first_seen: Instant,
    last_seen: Instant,
    stage: Stage,
    pending: BTreeMap<u32, Block>,
    pending_bytes: usize,
    announced_len: Option<u64>,
    decoder: Option<Decoder>,
    stats: TransferStats,
}

#[derive(Debug)]
enum Stage {
    Announcing(Fragments),
    Verifying,
    Receiving(Progress),
}

#[derive(Debug)]
struct Fragments {
    bytes: Vec<u8>,
    have: Vec<bool>,
    missing: u32,
}

#[derive(Debug)]
struct Progress {
    payload_len: u64,
    block_count: u64,
    done: BlockMap,
}

#[derive(Debug)]
struct Block {
    shards: Vec<Option<Box<[u8]>>>,
    count: u16,
}

#[derive(Debug, Default)]
struct FinishedSet {
    ids: HashSet<TransferId>,
    order: VecDeque<TransferId>,
}

impl Reassembler {
    pub fn new(config: ReassemblyConfig) -> Self {
        Self {
            config,
            transfers: HashMap::new(),
            finished: FinishedSet::default(),
            events: VecDeque::new(),
            per_stream: HashMap::new(),
        }
    }

    /// Feeds one datagram received at `now`.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Drop> {
        let datagram = Datagram::parse(bytes).map_err(Drop::Frame)?;
        let header = *datagram.header();
        *self.per_stream.entry(header.stream).or_default() += 1;
        if header.kind == Kind::Heartbeat {
            let beat = Heartbeat::from_datagram(&header, datagram.body());
            let beat = beat.ok_or(Drop::BadHeartbeat)?;
            self.events.push_back(Event::Heartbeat(beat));
            return Ok(());
        }
        if self.finished.contains(header.transfer) {
            return Err(Drop::Finished);
        }
        self.admit(now, &header)?;
        let Some(transfer) = self.transfers.get_mut(&header.transfer) else {
            return Err(Drop::NoRoom);
        };
        if transfer.fec != header.fec {
            return Err(Drop::ParamsMismatch);
        }
        transfer.last_seen = now;
        transfer.stats.datagrams += 1;

        let outcome = match header.kind {
            Kind::Announce => {
                let max = self.config.max_envelope_len;
                transfer.on_announce(&header, datagram.body(), max, &mut self.events)
            }
            Kind::Shard => transfer.on_shard(&header, datagram.body(), &self.config),
            Kind::Heartbeat => Outcome::Continue,
        };
        self.settle(header.transfer, outcome)
    }

    /// The driver verified the envelope; `payload_len` is the signed length.
    pub fn accept(&mut self, transfer: TransferId, payload_len: u64) {
        let Some(state) = self.transfers.get_mut(&transfer) else {
            return;
        };
        let outcome = state.accept(payload_len);
        let _ = self.settle(transfer, outcome);
    }

    /// Takes up a verified transfer again after a restart, with the blocks
    /// a checkpoint says are already in the spool. The rest come from the
    /// sender's next pass.
    pub fn resume(&mut self, now: Instant, checkpoint: Checkpoint) -> Result<(), ResumeError> {
        let Checkpoint {
            transfer,
            stream,
            fec,
            payload_len,
            done,
        } = checkpoint;
        if self.transfers.contains_key(&transfer) {
            return Err(ResumeError::AlreadyActive);
        }
        let block_count = fec.block_count(payload_len);
        if done.len() != block_count {
            return Err(ResumeError::BlockMapSize {
                expected: block_count,
                got: done.len(),
            });
        }
        if self.transfers.len() >= self.config.max_transfers {
            return Err(ResumeError::NoRoom);
        }
        let complete = done.is_full();
        let progress = Progress {
            payload_len,
            block_count,
            done,
        };
        let resumed = Transfer::resumed(stream, fec, now, progress);
        self.transfers.insert(transfer, resumed);
        if complete {
            // Every block reached the spool before the restart.
            self.complete(transfer);
        }
        Ok(())
    }

    /// The FEC parameters a transfer uses, fixed by its first datagram.
    pub fn fec_params(&self, transfer: TransferId) -> Option<FecParams> {
        self.transfers.get(&transfer).map(|t| t.fec)
    }

    /// A checkpoint of a verified transfer: what a restarted receiver
    /// needs to resume it.
    pub fn checkpoint(&self, transfer: TransferId) -> Option<Checkpoint> {
        let state = self.transfers.get(&transfer)?;
        let Stage::Receiving(progress) = &state.stage else {
            return None;
        };
        Some(Checkpoint {
            transfer,
            stream: state.stream,
            fec: state.fec,
            payload_len: progress.payload_len,
            done: progress.done.clone(),
        })
    }

    /// The driver rejected the envelope: forget the transfer and ignore the
    /// rest of it.
    pub fn refuse(&mut self, transfer: TransferId) {
        self.transfers.remove(&transfer);
        self.finished.insert(transfer, self.config.finished_memory);
    }

    /// Closes transfers that have been idle for the configured timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let expired: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.last_seen) >= idle)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(transfer) = self.transfers.get(&id) {
                let reason = transfer.incomplete_reason();
                self.fail(id, reason);
            }
        }
    }

    /// When [`Self::handle_timeout`] next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let oldest = self.transfers.values().map(|t| t.last_seen).min()?;
        Some(oldest + self.config.idle_timeout)
    }

    /// The next event for the driver, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Transfers currently tracked.
    pub fn active(&self) -> usize {
        self.transfers.len()
    }

    /// Well-formed datagrams heard on each stream, heartbeats included.
    pub fn stream_datagrams(&self, stream: StreamId) -> u64 {
        self.per_stream.get(&stream).copied().unwrap_or(0)
    }

    /// A sender restarted on `stream` at `restart` (by this clock): closes
    /// that stream's transfers first heard before then, as abandoned. The
    /// new run's transfers began after it and stay.
    pub fn abandon_before(&mut self, stream: StreamId, restart: Instant) {
        let stale: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.stream == stream && t.first_seen < restart)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.fail(id, FailReason::Abandoned);
        }
    }

    /// Makes room for and creates the transfer a datagram names, if new.
    fn admit(&mut self, now: Instant, header: &Header) -> Result<(), Drop> {
        if self.transfers.contains_key(&header.transfer) {
            return Ok(());
        }
        let fec = header.fec;
        if fec.shards_per_block() > self.config.max_shards_per_block
            || fec.shard_len > self.config.max_shard_len
            || fec.block_len() > frame::MAX_BLOCK_LEN
        {
            return Err(Drop::FecTooLarge);
        }
        let stage = match header.kind {
            Kind::Announce => Stage::Announcing(self.new_fragments(header)?),
            Kind::Shard | Kind::Heartbeat => Stage::Announcing(Fragments::unknown()),
        };
        self.make_room()?;
        let transfer = Transfer::new(header, now, stage);
        self.transfers.insert(header.transfer, transfer);
        Ok(())
    }

    fn new_fragments(&self, header: &Header) -> Result<Fragments, Drop> {
        let len = header.object_len;
        if len == 0 || len > self.config.max_envelope_len {
            return Err(Drop::EnvelopeTooLarge { len });
        }
        let len = usize::try_from(len).map_err(|_| Drop::EnvelopeTooLarge { len })?;
        Ok(Fragments::new(len, header.fec.shard_len))
    }

    // Limitation: when the table of unverified transfers is full, the one
    // heard from least recently is evicted. A flood of datagrams with fresh
    // transfer ids can therefore push out a genuine transfer that is still
    // waiting for its envelope; per-source budgets would be stronger.
    fn make_room(&mut self) -> Result<(), Drop> {
        let unverified = self.transfers.values().filter(|t| !t.is_verified()).count();
        let over_total = self.transfers.len() >= self.config.max_transfers;
        if unverified < self.config.max_unverified && !over_total {
            return Ok(());
        }
        let victim = self
            .transfers
            .iter()
            .filter(|(_, t)| !t.is_verified())
            .min_by_key(|(_, t)| t.last_seen)
            .map(|(id, _)| *id)
            .ok_or(Drop::NoRoom)?;
        // Not remembered as finished: a genuine transfer pushed out by a
        // flood may still come back with its next announce.
        if let Some(transfer) = self.transfers.remove(&victim) {
            let (reason, stats) = (FailReason::Evicted, transfer.stats);
            self.events.push_back(Event::Failed {
                transfer: victim,
                reason,
                stats,
            });
        }
        Ok(())
    }

    /// Applies what a transfer step produced: blocks become events, a
    /// finished or failed transfer is removed.
    fn settle(&mut self, id: TransferId, outcome: Outcome) -> Result<(), Drop> {
        let Some(transfer) = self.transfers.get_mut(&id) else {
            return Ok(());
        };
        for (offset, data) in transfer.take_ready_blocks() {
            self.events.push_back(Event::Block {
                transfer: id,
                offset,
                data,
            });
        }
        let complete = transfer.is_complete();
        let result = match outcome {
            Outcome::Continue => Ok(()),
            Outcome::Dropped(drop) => Err(drop),
            Outcome::Failed(reason) => {
                self.fail(id, reason);
                return Ok(());
            }
        };
        if complete {
            self.complete(id);
        }
        result
    }

    fn complete(&mut self, id: TransferId) {
        if let Some(transfer) = self.transfers.remove(&id) {
            self.finished.insert(id, self.config.finished_memory);
            let stats = transfer.stats;
            self.events.push_back(Event::Complete {
                transfer: id,
                stats,
            });
        }
    }

    fn fail(&mut self, id: TransferId, reason: FailReason) {
        if let Some(transfer) = self.transfers.remove(&id) {
            self.finished.insert(id, self.config.finished_memory);
            let stats = transfer.stats;
            self.events.push_back(Event::Failed {
                transfer: id,
                reason,
                stats,
            });
        }
    }
}

/// What one step did to a transfer.
enum Outcome {
    Continue,
    Dropped(Drop),
    Failed(FailReason),
}

impl Transfer {
    fn resumed(stream: StreamId, fec: FecParams, now: Instant, progress: Progress) -> Self {
        Self {
            stream,
            fec,
            first_seen: now,
            last_seen: now,
            stage: Stage::Receiving(progress),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            announced_len: None,
            decoder: None,
            stats: TransferStats::default(),
        }
    }

    fn new(header: &Header, now: Instant, stage: Stage) -> Self {
        Self {
            stream: header.stream,
            fec: header.fec,
            first_seen: now,
            last_seen: now,
            stage,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            announced_len: None,
            decoder: None,
            stats: TransferStats::default(),
        }
    }

    fn is_verified(&self) -> bool {
        matches!(self.stage, Stage::Receiving(_))
    }

    fn is_complete(&self) -> bool {
        matches!(&self.stage, Stage::Receiving(p) if p.done.is_full())
    }

    fn on_announce(
        &mut self,
        header: &Header,
        body: &[u8],
        max_len: u64,
        events: &mut VecDeque<Event>,
    ) -> Outcome {
        let Stage::Announcing(fragments) = &mut self.stage else {
            return Outcome::Continue;
        };
        if fragments.bytes.is_empty() {
            // The transfer began with shards; its envelope size is known now.
            let len = header.object_len;
            match usize::try_from(len) {
                Ok(size) if len > 0 && len <= max_len => {
                    *fragments = Fragments::new(size, header.fec.shard_len);
                }
                _ => return Outcome::Dropped(Drop::EnvelopeTooLarge { len }),
            }
        }
        match fragments.insert(header, body) {
            Ok(true) => self.stats.duplicates += 1,
            Ok(false) => {}
            Err(drop) => return Outcome::Dropped(drop),
        }
        if fragments.missing == 0 {
            let envelope = std::mem::take(&mut fragments.bytes);
            self.stage = Stage::Verifying;
            let (transfer, stream) = (header.transfer, self.stream);
            events.push_back(Event::Envelope {
                transfer,
                stream,
                envelope,
            });
        }
        Outcome::Continue
    }

    fn on_shard(&mut self, header: &Header, body: &[u8], config: &ReassemblyConfig) -> Outcome {
        match &self.stage {
            Stage::Receiving(progress) => {
                if header.object_len != progress.payload_len {
                    self.stats.length_mismatches += 1;
                    self.announced_len = Some(header.object_len);
                    return Outcome::Dropped(Drop::ParamsMismatch);
                }
                if u64::from(header.index) >= progress.block_count {
                    return Outcome::Dropped(Drop::BlockOutOfRange);
                }
                if progress.is_done(header.index) {
                    self.stats.late += 1;
                    return Outcome::Continue;
                }
                self.store_shard(header, body, config);
                Outcome::Continue
            }
            Stage::Announcing(_) | Stage::Verifying => self.buffer_unverified(header, body, config),
        }
    }

    fn buffer_unverified(
        &mut self,
        header: &Header,
        body: &[u8],
        config: &ReassemblyConfig,
    ) -> Outcome {
        if let Some(announced) = self.announced_len
            && announced != header.object_len
        {
            return Outcome::Dropped(Drop::ParamsMismatch);
        }
        self.announced_len = Some(header.object_len);
        if self.pending_bytes + self.cost_of(header, body) > config.max_unverified_bytes {
            self.stats.unverified_dropped += 1;
            return Outcome::Continue;
        }
        self.store_shard(header, body, config);
        Outcome::Continue
    }

    /// True if storing this shard would break the block or byte budget
    /// and there is an older block to give up.
    fn over_budget(&self, header: &Header, body: &[u8], config: &ReassemblyConfig) -> bool {
        let is_new = !self.pending.contains_key(&header.index);
        let over_count = is_new && self.pending.len() >= config.max_pending_blocks;
        let over_bytes = self.pending_bytes + self.cost_of(header, body) > config.max_pending_bytes;
        !self.pending.is_empty() && (over_count || over_bytes)
    }

    /// Bytes storing this shard would add, counting a new block's slots.
    fn cost_of(&self, header: &Header, body: &[u8]) -> usize {
        let slots = if self.pending.contains_key(&header.index) {
            0
        } else {
            Block::slots_cost(usize::from(self.fec.shards_per_block()))
        };
        slots + body.len()
    }

    fn store_shard(&mut self, header: &Header, body: &[u8], config: &ReassemblyConfig) {
        let total = usize::from(self.fec.shards_per_block());
        while self.over_budget(header, body, config) {
            self.give_up_oldest_block();
        }
        if !self.pending.contains_key(&header.index) {
            self.pending_bytes += Block::slots_cost(total);
        }
        let block = self
            .pending
            .entry(header.index)
            .or_insert_with(|| Block::new(total));
        let Some(slot) = block.shards.get_mut(usize::from(header.shard.0)) else {
            return;
        };
        if slot.is_some() {
            self.stats.duplicates += 1;
            return;
        }
        *slot = Some(body.into());
        block.count += 1;
        self.pending_bytes += body.len();
    }

    fn give_up_oldest_block(&mut self) {
        if let Some((_, block)) = self.pending.pop_first() {
            self.pending_bytes -= block.bytes();
            self.stats.blocks_given_up += 1;
        }
    }

    fn accept(&mut self, payload_len: u64) -> Outcome {
        if !matches!(self.stage, Stage::Verifying) {
            return Outcome::Continue;
        }
        if self.announced_len.is_some_and(|len| len != payload_len) {
            // What was buffered claims another length than the signed one:
            // none of it can belong to this payload.
            let dropped: u64 = self.pending.values().map(|b| u64::from(b.count)).sum();
            self.stats.length_mismatches += dropped;
            self.pending.clear();
            self.pending_bytes = 0;
        }
        let block_count = self.fec.block_count(payload_len);
        if block_count > frame::MAX_BLOCKS {
            return Outcome::Failed(FailReason::TooManyBlocks { payload_len });
        }
        self.stage = Stage::Receiving(Progress {
            payload_len,
            block_count,
            done: BlockMap::new(block_count),
        });
        self.pending
            .retain(|index, _| u64::from(*index) < block_count);
        self.pending_bytes = self.pending.values().map(Block::bytes).sum();
        Outcome::Continue
    }

    /// Rebuilds every pending block that has enough shards, in block order.
    fn take_ready_blocks(&mut self) -> Vec<(u64, Vec<u8>)> {
        let Stage::Receiving(progress) = &mut self.stage else {
            return Vec::new();
        };
        let need = self.fec.data;
        let ready: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, b)| b.count >= need)
            .map(|(i, _)| *i)
            .collect();
        let mut out = Vec::with_capacity(ready.len());
        for index in ready {
            let Some(block) = self.pending.remove(&index) else {
                continue;
            };
            self.pending_bytes -= block.bytes();
            if let Some(data) = rebuild(&mut self.decoder, self.fec, &block, &mut self.stats) {
                let offset = u64::from(index) * self.fec.block_len();
                let keep = progress
                    .payload_len
                    .saturating_sub(offset)
                    .min(data.len() as u64);
                let mut data = data;
                data.truncate(usize::try_from(keep).unwrap_or(0));
                progress.mark_done(index);
                self.stats.blocks += 1;
                out.push((offset, data));
            }
        }
        out
    }

    fn incomplete_reason(&self) -> FailReason {
        match &self.stage {
            Stage::Receiving(progress) => {
                let signed = progress.payload_len;
                if let Some(announced) = self.announced_len.filter(|len| *len != signed) {
                    return FailReason::LengthMismatch { signed, announced };
                }
                let missing = progress.block_count - progress.done.count();
                FailReason::Incomplete {
                    missing_blocks: missing,
                    block_count: progress.block_count,
                    first_missing: progress.done.missing(16),
                    envelope: true,
                }
            }
            Stage::Announcing(_) | Stage::Verifying => FailReason::Incomplete {
                missing_blocks: 0,
                block_count: 0,
                first_missing: Vec::new(),
                envelope: false,
            },
        }
    }
}

fn rebuild(
    decoder: &mut Option<Decoder>,
    fec: FecParams,
    block: &Block,
    stats: &mut TransferStats,
) -> Option<Vec<u8>> {
    let decoder = match decoder {
        Some(decoder) => decoder,
        None => decoder.insert(Decoder::new(fec).ok()?),
    };
    let view: Vec<Option<&[u8]>> = block.shards.iter().map(|s| s.as_deref()).collect();
    let mut out = vec![0u8; usize::try_from(fec.block_len()).ok()?];
    let used = decoder.rebuild(&view, &mut out).ok()?;
    if used > 0 {
        stats.blocks_rebuilt += 1;
        stats.shards_rebuilt += u64::from(used);
        stats.max_parity_used = stats.max_parity_used.max(used);
    }
    Some(out)
}

impl Fragments {
    fn new(len: usize, shard_len: u16) -> Self {
        let count = fragment_count(len, shard_len);
        Self {
            bytes: vec![0; len],
            have: vec![false; count as usize],
            missing: count,
        }
    }

    /// Envelope size not yet known: only shards have been seen.
    fn unknown() -> Self {
        Self {
            bytes: Vec::new(),
            have: Vec::new(),
            missing: u32::MAX,
        }
    }

    /// Stores a fragment; `Ok(true)` if it was a duplicate.
    fn insert(&mut self, header: &Header, body: &[u8]) -> Result<bool, Drop> {
        if header.object_len != self.bytes.len() as u64 {
            return Err(Drop::BadFragment);
        }
        let index = usize::try_from(header.index).map_err(|_| Drop::BadFragment)?;
        let seen = self.have.get_mut(index).ok_or(Drop::BadFragment)?;
        if *seen {
            return Ok(true);
        }
        let start = index * body.len();
        let end = (start + body.len()).min(self.bytes.len());
        let (Some(dst), Some(src)) = (self.bytes.get_mut(start..end), body.get(..end - start))
        else {
            return Err(Drop::BadFragment);
        };
        dst.copy_from_slice(src);
        *seen = true;
        self.missing -= 1;
        Ok(false)
    }
}

impl Progress {
    fn is_done(&self, block: u32) -> bool {
        self.done.contains(u64::from(block))
    }

    fn mark_done(&mut self, block: u32) {
        self.done.insert(u64::from(block));
    }
}

impl Block {
    fn new(total: usize) -> Self {
        Self {
            shards: vec![None; total],
            count: 0,
        }
    }

    /// Memory the block holds: its slot table and the shards in it.
    fn bytes(&self) -> usize {
        let shards: usize = self.shards.iter().flatten().map(|s| s.len()).sum();
        Self::slots_cost(self.shards.len()) + shards
    }

    fn slots_cost(total: usize) -> usize {
        total * std::mem::size_of::<Option<Box<[u8]>>>()
    }
}

impl FinishedSet {
    fn contains(&self, id: TransferId) -> bool {
        self.ids.contains(&id)
    }

    fn insert(&mut self, id: TransferId, capacity: usize) {
        if !self.ids.insert(id) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > capacity.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete {
                envelope: false, ..
            } => {
                write!(
                    f,
                    "unrecoverable: the signed envelope never arrived complete"
                )
            }
            Self::Incomplete {
                missing_blocks,
                block_count,
                first_missing,
                ..
            } => write!(
                f,
                "unrecoverable: {missing_blocks} of {block_count} blocks lost more shards \
                 than their parity covers (first missing: {first_missing:?})"
            ),
            Self::LengthMismatch { signed, announced } => write!(
                f,
                "payload length mismatch: the signed manifest says {signed} bytes, \
                 the datagrams carry {announced}"
            ),
            Self::TooManyBlocks { payload_len } => {
                write!(
                    f,
                    "payload of {payload_len} bytes needs more blocks than the wire allows"
                )
            }
            Self::Evicted => write!(f, "evicted to make room for newer transfers"),
            Self::Abandoned => write!(f, "abandoned: its sender restarted"),
        }
    }
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(error) => write!(f, "malformed datagram: {error}"),
            Self::Finished => write!(f, "transfer already finished"),
            Self::ParamsMismatch => write!(f, "parameters differ from the transfer's"),
            Self::EnvelopeTooLarge { len } => write!(f, "envelope length {len} out of bounds"),
            Self::FecTooLarge => write!(f, "FEC block or shard larger than allowed"),
            Self::BadFragment => write!(f, "announce fragment out of range"),
            Self::BlockOutOfRange => write!(f, "block past the signed payload"),
            Self::NoRoom => write!(f, "no room for another transfer"),
            Self::BadHeartbeat => write!(f, "heartbeat too short"),
        }
    }
}

#[cfg(test)]
mod tests;
