//! Deterministic simulation of the sender core, a lossy link and the
//! receiver core on a virtual clock.

use super::*;
use crate::transmit::{TransmitConfig, all_datagrams};

const FEC: FecParams = FecParams {
    data: 8,
    parity: 4,
    shard_len: 64,
};
const BLOCK: usize = 8 * 64;

fn tx_config() -> TransmitConfig {
    TransmitConfig {
        stream: StreamId(1),
        fec: FEC,
        interleave: 4,
        announce_every: 16,
        announce_passes: 2,
    }
}

/// Small seeded generator so the link's choices repeat exactly.
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Default)]
struct Link {
    loss: f64,
    duplicate: f64,
    reorder: f64,
    seed: u64,
}

fn datagrams(id: u64, envelope: &[u8], payload: &[u8]) -> Vec<Vec<u8>> {
    all_datagrams(tx_config(), TransferId(id), envelope, payload).unwrap()
}

fn impair(input: Vec<Vec<u8>>, link: Link) -> Vec<Vec<u8>> {
    let mut rng = Lcg(link.seed);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for d in input {
        if rng.next_f64() < link.loss {
            continue;
        }
        if rng.next_f64() < link.duplicate {
            out.push(d.clone());
        }
        if rng.next_f64() < link.reorder && !out.is_empty() {
            let at = out.len() - 1 - (rng.next_f64() * 5.0) as usize % out.len();
            out.insert(at, d);
        } else {
            out.push(d);
        }
    }
    out
}

struct Outcome {
    payload: Vec<u8>,
    envelope: Option<Vec<u8>>,
    complete: Option<TransferStats>,
    failed: Option<FailReason>,
}

/// Feeds datagrams one virtual millisecond apart, accepting every envelope
/// with the given signed length, then lets the idle timer run out.
fn receive(datagrams: &[Vec<u8>], signed_len: u64) -> Outcome {
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    let start = Instant::now();
    let mut result = Outcome {
        payload: vec![0xEE; signed_len as usize],
        envelope: None,
        complete: None,
        failed: None,
    };
    for (i, d) in datagrams.iter().enumerate() {
        let _ = rx.handle_datagram(start + Duration::from_millis(i as u64), d);
        drain(&mut rx, signed_len, &mut result);
    }
    rx.handle_timeout(start + Duration::from_secs(3600));
    drain(&mut rx, signed_len, &mut result);
    assert_eq!(rx.active(), 0, "every transfer ends one way or the other");
    result
}

fn drain(rx: &mut Reassembler, signed_len: u64, out: &mut Outcome) {
    while let Some(event) = rx.poll_event() {
        match event {
            Event::Envelope {
                transfer, envelope, ..
            } => {
                out.envelope = Some(envelope);
                rx.accept(transfer, signed_len);
            }
            Event::Block { offset, data, .. } => {
                let start = offset as usize;
                out.payload[start..start + data.len()].copy_from_slice(&data);
            }
            Event::Complete { stats, .. } => out.complete = Some(stats),
            Event::Failed { reason, .. } => out.failed = Some(reason),
            Event::Heartbeat(_) => {}
        }
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn round_trip(len: usize, link: Link) -> Outcome {
    let envelope: Vec<u8> = (0..150u8).collect();
    let data = payload(len);
    let out = receive(&impair(datagrams(7, &envelope, &data), link), len as u64);
    if out.complete.is_some() {
        assert_eq!(out.payload, data, "payload of {len} bytes differs");
        assert_eq!(out.envelope.as_deref(), Some(&envelope[..]));
    }
    out
}

#[test]
fn edge_sizes_arrive_intact_without_loss() {
    for len in [
        0,
        1,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        3 * BLOCK,
        10 * BLOCK + 17,
    ] {
        let out = round_trip(len, Link::default());
        assert!(
            out.complete.is_some(),
            "{len} bytes did not complete: {:?}",
            out.failed
        );
    }
}

#[test]
fn loss_reordering_and_duplication_are_repaired() {
    let link = Link {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        seed: 1,
    };
    for seed in 0..20 {
        let out = round_trip(40 * BLOCK + 5, Link { seed, ..link });
        let stats = out
            .complete
            .unwrap_or_else(|| panic!("seed {seed}: {:?}", out.failed));
        assert!(stats.duplicates > 0 || stats.late > 0);
    }
}

#[test]
fn loss_is_repaired_with_parity() {
    let out = round_trip(
        40 * BLOCK,
        Link {
            loss: 0.05,
            seed: 3,
            ..Link::default()
        },
    );
    let stats = out.complete.expect("5% loss is well within 4 of 12 parity");
    assert!(stats.blocks_rebuilt > 0);
    assert!(stats.max_parity_used <= 4);
}

#[test]
fn loss_beyond_parity_is_reported_unrecoverable() {
    let out = round_trip(
        40 * BLOCK,
        Link {
            loss: 0.6,
            seed: 5,
            ..Link::default()
        },
    );
    assert!(out.complete.is_none());
    match out.failed {
        Some(FailReason::Incomplete {
            missing_blocks,
            block_count,
            ..
        }) => {
            assert!(missing_blocks > 0);
            assert!(block_count == 40 || block_count == 0);
        }
        other => panic!("expected an incomplete transfer, got {other:?}"),
    }
}

#[test]
fn a_signed_length_other_than_the_announced_one_fails() {
    let data = payload(3 * BLOCK);
    let out = receive(&datagrams(7, b"envelope", &data), 3 * BLOCK as u64 + 1);
    assert_eq!(
        out.failed,
        Some(FailReason::LengthMismatch {
            signed: 3 * BLOCK as u64 + 1,
            announced: 3 * BLOCK as u64
        })
    );
    assert!(out.complete.is_none());
}

#[test]
fn two_transfers_interleaved_both_complete() {
    let (a, b) = (payload(5 * BLOCK), payload(7 * BLOCK + 3));
    let mut mixed = Vec::new();
    let (da, db) = (datagrams(1, b"aaaa", &a), datagrams(2, b"bbbb", &b));
    for i in 0..da.len().max(db.len()) {
        mixed.extend(da.get(i).cloned());
        mixed.extend(db.get(i).cloned());
    }
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    let now = Instant::now();
    let mut done = Vec::new();
    let mut buffers: HashMap<TransferId, Vec<u8>> = HashMap::new();
    for d in &mixed {
        let _ = rx.handle_datagram(now, d);
        while let Some(event) = rx.poll_event() {
            match event {
                Event::Envelope { transfer, .. } => {
                    let len = if transfer == TransferId(1) {
                        a.len()
                    } else {
                        b.len()
                    };
                    buffers.insert(transfer, vec![0; len]);
                    rx.accept(transfer, len as u64);
                }
                Event::Block {
                    transfer,
                    offset,
                    data,
                } => {
                    let buf = buffers.get_mut(&transfer).unwrap();
                    buf[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
                }
                Event::Complete { transfer, .. } => done.push(transfer),
                Event::Failed { reason, .. } => panic!("{reason}"),
                Event::Heartbeat(_) => {}
            }
        }
    }
    done.sort();
    assert_eq!(done, vec![TransferId(1), TransferId(2)]);
    assert_eq!(buffers[&TransferId(1)], a);
    assert_eq!(buffers[&TransferId(2)], b);
}

#[test]
fn shards_before_the_envelope_are_kept() {
    let data = payload(6 * BLOCK);
    let mut all = datagrams(4, b"late envelope", &data);
    // Move every announce fragment to the very end.
    all.sort_by_key(|d| Datagram::parse(d).unwrap().header().kind == Kind::Announce);
    let out = receive(&all, data.len() as u64);
    assert!(out.complete.is_some(), "{:?}", out.failed);
    assert_eq!(out.payload, data);
}

#[test]
fn refused_transfer_is_ignored_afterwards() {
    let all = datagrams(5, b"envelope", &payload(BLOCK));
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    let now = Instant::now();
    rx.handle_datagram(now, &all[0]).unwrap();
    let Some(Event::Envelope { transfer, .. }) = rx.poll_event() else {
        panic!("no envelope")
    };
    rx.refuse(transfer);
    assert_eq!(rx.handle_datagram(now, &all[5]), Err(Drop::Finished));
    assert_eq!(rx.active(), 0);
}

#[test]
fn oversized_fec_parameters_are_refused_before_any_state() {
    let all = datagrams(6, b"envelope", &payload(BLOCK));
    let config = ReassemblyConfig {
        max_shards_per_block: 8,
        ..Default::default()
    };
    let mut rx = Reassembler::new(config);
    assert_eq!(
        rx.handle_datagram(Instant::now(), &all[0]),
        Err(Drop::FecTooLarge)
    );
    assert_eq!(rx.active(), 0);
}

#[test]
fn verified_transfer_holds_at_most_its_byte_budget() {
    let data = payload(40 * BLOCK);
    let config = ReassemblyConfig {
        max_pending_bytes: 3 * 1024,
        ..Default::default()
    };
    let mut rx = Reassembler::new(config);
    let now = Instant::now();
    let mut peak = 0;
    for d in datagrams(9, b"e", &data).iter().filter(|d| {
        let h = *Datagram::parse(d).unwrap().header();
        h.kind == Kind::Announce || h.shard.0 != 0
    }) {
        let _ = rx.handle_datagram(now, d);
        while let Some(event) = rx.poll_event() {
            if let Event::Envelope { transfer, .. } = event {
                rx.accept(transfer, data.len() as u64);
            }
        }
        if let Some(t) = rx.transfers.get(&TransferId(9)) {
            peak = peak.max(t.pending_bytes);
        }
    }
    assert!(peak > 0 && peak <= 3 * 1024, "peak {peak}");
}

#[test]
fn oversized_envelope_claims_allocate_nothing() {
    let all = datagrams(6, b"envelope", &[]);
    let mut forged = all[0].clone();
    forged[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    fix_crc(&mut forged);
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    let err = rx.handle_datagram(Instant::now(), &forged).unwrap_err();
    assert_eq!(err, Drop::EnvelopeTooLarge { len: u64::MAX });
    assert_eq!(rx.active(), 0);
}

#[test]
fn flood_of_unknown_transfers_stays_bounded() {
    let config = ReassemblyConfig::default();
    let mut rx = Reassembler::new(config.clone());
    let now = Instant::now();
    for id in 0..200u64 {
        for d in datagrams(1000 + id, b"x", &payload(BLOCK)).iter().skip(1) {
            let _ = rx.handle_datagram(now, d);
        }
    }
    assert!(rx.active() <= config.max_unverified);
}

#[test]
fn unverified_shards_share_a_fixed_budget() {
    // Room for exactly ten shards and the slot tables of the four blocks
    // their interleaved order opens first.
    let slots = 4 * 12 * std::mem::size_of::<Option<Box<[u8]>>>();
    let config = ReassemblyConfig {
        max_unverified_bytes: slots + 10 * 64,
        ..Default::default()
    };
    let mut rx = Reassembler::new(config);
    let data = payload(4 * BLOCK);
    let shards: Vec<_> = datagrams(8, b"e", &data)
        .into_iter()
        .filter(|d| Datagram::parse(d).unwrap().header().kind == Kind::Shard)
        .collect();
    for d in &shards {
        let _ = rx.handle_datagram(Instant::now(), d);
    }
    let transfer = &rx.transfers[&TransferId(8)];
    assert_eq!(transfer.pending_bytes, slots + 10 * 64);
    assert_eq!(transfer.stats.unverified_dropped, shards.len() as u64 - 10);
}

fn fix_crc(datagram: &mut [u8]) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&datagram[..40]);
    hasher.update(&datagram[44..]);
    let crc = hasher.finalize();
    datagram[40..44].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn a_burst_that_kills_blocks_in_one_pass_is_healed_by_the_next() {
    let data = payload(12 * BLOCK);
    let envelope = b"carousel envelope".to_vec();
    let pass = datagrams(21, &envelope, &data);
    let mut first = pass.clone();
    first.drain(10..110);
    let alone = receive(&first, data.len() as u64);
    assert!(
        alone.complete.is_none(),
        "the burst must be fatal to a single pass"
    );

    let mut both = first;
    both.extend(pass);
    let healed = receive(&both, data.len() as u64);
    assert!(healed.complete.is_some(), "{:?}", healed.failed);
    assert_eq!(healed.payload, data);
}

#[test]
fn passes_too_lossy_alone_complete_together() {
    let data = payload(30 * BLOCK);
    let envelope = b"three lossy passes".to_vec();
    let lossy = |seed| {
        let link = Link {
            loss: 0.4,
            seed,
            ..Link::default()
        };
        impair(datagrams(22, &envelope, &data), link)
    };
    assert!(receive(&lossy(1), data.len() as u64).complete.is_none());

    let mut three = lossy(1);
    three.extend(lossy(2));
    three.extend(lossy(3));
    let out = receive(&three, data.len() as u64);
    assert!(out.complete.is_some(), "{:?}", out.failed);
    assert_eq!(out.payload, data);
}

#[test]
fn a_restarted_receiver_resumes_from_its_checkpoint() {
    let data = payload(20 * BLOCK);
    let len = data.len() as u64;
    let all = datagrams(23, b"resumable", &data);
    let mut out = vec![0u8; data.len()];
    let now = Instant::now();

    // First life: the receiver hears the first half of the pass, then dies.
    let mut first = Reassembler::new(ReassemblyConfig::default());
    for d in &all[..all.len() / 2] {
        let _ = first.handle_datagram(now, d);
        drain_into(&mut first, len, &mut out);
    }
    let done = first.checkpoint(TransferId(23)).unwrap().done;
    assert!(done.count() > 0 && !done.is_full(), "{done:?}");

    // Second life: resume, then a pass that carries only the blocks the
    // checkpoint lacks; it can complete only by trusting the spool.
    let lacking: Vec<&Vec<u8>> = all
        .iter()
        .filter(|d| {
            let h = *Datagram::parse(d).unwrap().header();
            h.kind == Kind::Shard && !done.contains(u64::from(h.index))
        })
        .collect();
    let mut second = Reassembler::new(ReassemblyConfig::default());
    let checkpoint = Checkpoint {
        transfer: TransferId(23),
        stream: StreamId(1),
        fec: FEC,
        payload_len: len,
        done: done.clone(),
    };
    second.resume(now, checkpoint).unwrap();
    let mut complete = false;
    for d in lacking {
        let _ = second.handle_datagram(now, d);
        complete |= drain_into(&mut second, len, &mut out);
    }
    assert!(complete);
    assert_eq!(out, data);
}

#[test]
fn a_checkpoint_of_the_wrong_size_is_refused() {
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    let checkpoint = Checkpoint {
        transfer: TransferId(1),
        stream: StreamId(1),
        fec: FEC,
        payload_len: 10 * BLOCK as u64,
        done: crate::blockmap::BlockMap::new(3),
    };
    assert_eq!(
        rx.resume(Instant::now(), checkpoint),
        Err(ResumeError::BlockMapSize {
            expected: 10,
            got: 3
        })
    );
}

/// Applies events to `out`; true once the transfer completed.
fn drain_into(rx: &mut Reassembler, len: u64, out: &mut [u8]) -> bool {
    let mut complete = false;
    while let Some(event) = rx.poll_event() {
        match event {
            Event::Envelope { transfer, .. } => rx.accept(transfer, len),
            Event::Block { offset, data, .. } => {
                out[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
            }
            Event::Complete { .. } => complete = true,
            Event::Failed { reason, .. } => panic!("{reason}"),
            Event::Heartbeat(_) => {}
        }
    }
    complete
}

#[test]
fn heartbeats_are_reported_and_hold_no_state() {
    use crate::heartbeat::{Counters, Heartbeat};
    let beat = Heartbeat {
        stream: StreamId(1),
        epoch: 99,
        sequence: 3,
        uptime_ms: 4000,
        counters: Counters {
            datagrams: 10,
            bytes: 14_720,
            transfers: 1,
            current_transfer: 0,
        },
    };
    let mut out = vec![0u8; tx_config().datagram_len()];
    let len = beat.emit(FEC, &mut out);
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    rx.handle_datagram(Instant::now(), &out[..len]).unwrap();
    assert_eq!(rx.poll_event(), Some(Event::Heartbeat(beat)));
    assert_eq!(rx.active(), 0);
    assert_eq!(rx.stream_datagrams(StreamId(1)), 1);
}

#[test]
fn a_sender_restart_abandons_only_its_quiet_transfers() {
    let mut rx = Reassembler::new(ReassemblyConfig::default());
    let start = Instant::now();
    let old = datagrams(31, b"old run", &payload(BLOCK));
    let new = datagrams(32, b"new run", &payload(BLOCK));
    rx.handle_datagram(start, &old[2]).unwrap();
    rx.handle_datagram(start + Duration::from_secs(5), &new[2])
        .unwrap();
    rx.abandon_before(StreamId(1), start + Duration::from_secs(4));
    match rx.poll_event() {
        Some(Event::Failed {
            transfer,
            reason: FailReason::Abandoned,
            ..
        }) => {
            assert_eq!(transfer, TransferId(31));
        }
        other => panic!("expected the old run abandoned, got {other:?}"),
    }
    assert_eq!(rx.active(), 1, "the new run's transfer stays");
}
