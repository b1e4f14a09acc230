use std::time::Duration;

use super::*;
use crate::link::VecLink;
use crate::rate::Rate;

fn numbered(id: u64) -> Vec<u8> {
    let mut datagram = id.to_be_bytes().to_vec();
    datagram.extend_from_slice(&[0xa5; 24]);
    datagram
}

fn id_of(datagram: &[u8]) -> u64 {
    u64::from_be_bytes(datagram[..8].try_into().unwrap())
}

fn link(impairments: Impairments) -> ImpairedLink<VecLink> {
    ImpairedLink::new(VecLink::new(), impairments).unwrap()
}

/// Sends `count` numbered datagrams at one instant, then flushes.
fn run_raw(impairments: Impairments, count: u64) -> (Vec<Vec<u8>>, ImpairStats) {
    let mut link = link(impairments);
    let now = Instant::now();
    for id in 0..count {
        link.send_at(now, &numbered(id)).unwrap();
    }
    link.flush().unwrap();
    let stats = link.stats();
    (link.into_inner().into_datagrams(), stats)
}

/// Like [`run_raw`], keeping only the id of each datagram.
fn run(impairments: Impairments, count: u64) -> (Vec<u64>, ImpairStats) {
    let (datagrams, stats) = run_raw(impairments, count);
    (datagrams.iter().map(|d| id_of(d)).collect(), stats)
}

fn lossy(loss: f64, seed: u64) -> Impairments {
    Impairments {
        loss,
        seed,
        ..Impairments::default()
    }
}

fn assert_accounts_for_everything(stats: &ImpairStats) {
    let out = stats.forwarded + stats.dropped() + stats.send_errors;
    assert_eq!(out, stats.received + stats.duplicated, "{stats}");
}

#[test]
fn no_impairments_pass_everything_in_order() {
    let (ids, stats) = run(Impairments::default(), 1000);
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    assert_eq!(
        (stats.received, stats.forwarded, stats.dropped()),
        (1000, 1000, 0)
    );
}

#[test]
fn the_same_seed_drops_the_same_datagrams() {
    let (first, _) = run(lossy(0.3, 7), 2000);
    let (second, _) = run(lossy(0.3, 7), 2000);
    let (other, _) = run(lossy(0.3, 8), 2000);
    assert_eq!(first, second);
    assert_ne!(first, other);
}

#[test]
fn other_stages_do_not_disturb_the_loss_pattern() {
    let (plain, _) = run(lossy(0.2, 11), 2000);
    let (mut doubled, stats) = run(
        Impairments {
            duplicate: 0.1,
            ..lossy(0.2, 11)
        },
        2000,
    );
    assert!(stats.duplicated > 100);
    doubled.dedup();
    assert_eq!(plain, doubled);

    let (plain, _) = run_raw(lossy(0.2, 11), 2000);
    let (noisy, stats) = run_raw(
        Impairments {
            corrupt: 0.5,
            ..lossy(0.2, 11)
        },
        2000,
    );
    assert!(stats.corrupted > 500);
    assert_eq!(plain.len(), noisy.len());
    for (clean, maybe_corrupt) in plain.iter().zip(&noisy) {
        let bits: u32 = clean
            .iter()
            .zip(maybe_corrupt)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert!(
            bits <= 1,
            "the same datagrams survive, give or take one flipped bit"
        );
    }
}

#[test]
fn loss_rate_is_close_to_the_configured_probability() {
    let count = 100_000;
    let (ids, stats) = run(lossy(0.1, 1), count);
    let dropped = stats.dropped_random as f64 / count as f64;
    // One standard deviation is about 0.001; this allows ten.
    assert!((dropped - 0.1).abs() < 0.01, "dropped {dropped}");
    assert_eq!(ids.len() as u64, stats.forwarded);
    assert_eq!(stats.forwarded + stats.dropped_random, count);
}

/// Lengths of the runs of consecutive missing ids.
fn gap_lengths(ids: &[u64], count: u64) -> Vec<u64> {
    let mut gaps = Vec::new();
    let mut expected = 0;
    for &id in ids.iter().chain(std::iter::once(&count)) {
        if id > expected {
            gaps.push(id - expected);
        }
        expected = id + 1;
    }
    gaps
}

#[test]
fn bursts_drop_runs_of_datagrams() {
    let burst = Some(Burst {
        enter: 0.01,
        mean_len: 8.0,
    });
    let count = 100_000;
    let (ids, stats) = run(
        Impairments {
            burst,
            seed: 3,
            ..Impairments::default()
        },
        count,
    );
    let gaps = gap_lengths(&ids, count);
    let mean_gap = stats.dropped_burst as f64 / gaps.len() as f64;

    assert_eq!(gaps.iter().sum::<u64>(), stats.dropped_burst);
    assert!((6.0..10.0).contains(&mean_gap), "mean burst {mean_gap}");
    assert!(
        gaps.iter().any(|&gap| gap >= 20),
        "longest {:?}",
        gaps.iter().max()
    );
    let fraction = stats.dropped_burst as f64 / count as f64;
    assert!((0.05..0.10).contains(&fraction), "dropped {fraction}");
}

#[test]
fn independent_loss_rarely_drops_runs() {
    let count = 100_000;
    let (ids, stats) = run(lossy(0.074, 3), count);
    let gaps = gap_lengths(&ids, count);
    let mean_gap = stats.dropped_random as f64 / gaps.len() as f64;
    assert!(mean_gap < 1.2, "mean run {mean_gap}");
}

#[test]
fn duplicates_follow_their_original() {
    let (ids, stats) = run(
        Impairments {
            duplicate: 1.0,
            ..Impairments::default()
        },
        100,
    );
    let expected: Vec<u64> = (0..100).flat_map(|id| [id, id]).collect();
    assert_eq!(ids, expected);
    assert_eq!((stats.duplicated, stats.forwarded), (100, 200));
    assert_accounts_for_everything(&stats);
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let mut link = link(Impairments {
        corrupt: 1.0,
        seed: 5,
        ..Impairments::default()
    });
    let now = Instant::now();
    for id in 0..500 {
        link.send_at(now, &numbered(id)).unwrap();
    }
    link.send_at(now, &[]).unwrap();
    assert_eq!(
        link.stats().corrupted,
        500,
        "an empty datagram has no bit to flip"
    );

    let out = link.into_inner().into_datagrams();
    assert_eq!(out.last(), Some(&Vec::new()));
    let mut flipped_positions = std::collections::BTreeSet::new();
    for (id, datagram) in (0..500).zip(&out) {
        let original = numbered(id);
        let flipped: Vec<usize> = (0..original.len())
            .filter(|&i| original[i] != datagram[i])
            .collect();
        assert_eq!(flipped.len(), 1, "datagram {id}");
        assert_eq!(
            (original[flipped[0]] ^ datagram[flipped[0]]).count_ones(),
            1
        );
        flipped_positions.insert(flipped[0]);
    }
    assert!(
        flipped_positions.len() > 20,
        "bytes hit: {flipped_positions:?}"
    );
}

/// For each datagram, how many higher-numbered ones went out before it.
fn lateness(ids: &[u64]) -> Vec<usize> {
    (0..ids.len())
        .map(|at| {
            ids[..at]
                .iter()
                .filter(|&&earlier| earlier > ids[at])
                .count()
        })
        .collect()
}

#[test]
fn reordered_datagrams_are_passed_by_exactly_depth_others() {
    let depth = 3;
    let mut link = link(Impairments {
        reorder: 0.2,
        reorder_depth: depth,
        seed: 9,
        ..Impairments::default()
    });
    let now = Instant::now();
    for id in 0..1000 {
        link.send_at(now, &numbered(id)).unwrap();
    }
    let ids: Vec<u64> = link.inner().datagrams().iter().map(|d| id_of(d)).collect();
    let late = lateness(&ids);
    let late_count = late.iter().filter(|&&l| l > 0).count();

    assert!(late.iter().all(|&l| l == 0 || l == depth), "{late:?}");
    assert_eq!((late_count + link.held()) as u64, link.stats().reordered);
    assert!(late_count > 100, "only {late_count} reordered");

    link.flush().unwrap();
    let mut all: Vec<u64> = link.inner().datagrams().iter().map(|d| id_of(d)).collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

#[test]
fn held_datagrams_wait_for_flush_or_idle() {
    let always = Impairments {
        reorder: 1.0,
        reorder_depth: 2,
        ..Impairments::default()
    };
    let mut link = link(always.clone());
    let now = Instant::now();
    for id in 0..5 {
        link.send_at(now, &numbered(id)).unwrap();
    }
    assert_eq!((link.inner().datagrams().len(), link.held()), (0, 5));
    link.flush().unwrap();
    let ids: Vec<u64> = link.inner().datagrams().iter().map(|d| id_of(d)).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);

    let mut idle = ImpairedLink::new(VecLink::new(), always).unwrap();
    idle.send_at(now, b"late").unwrap();
    idle.release_held(now).unwrap();
    assert_eq!(idle.inner().datagrams(), [b"late".to_vec()]);
    assert_eq!(idle.held(), 0);
}

fn capped(bits_per_second: u64) -> Impairments {
    let rate = Rate::from_bits_per_second(bits_per_second);
    Impairments {
        rate,
        ..Impairments::default()
    }
}

#[test]
fn rate_cap_queues_then_tail_drops() {
    // 8 Mbit/s moves 1000 bytes per millisecond; the queue holds 64 KiB.
    let mut link = link(capped(8_000_000));
    let t0 = Instant::now();
    for id in 0..100 {
        let mut datagram = numbered(id);
        datagram.resize(1000, 0);
        link.send_at(t0, &datagram).unwrap();
    }
    let stats = link.stats();
    assert_eq!(
        (stats.forwarded, link.queued(), stats.dropped_rate),
        (1, 65, 34)
    );

    let ms = Duration::from_millis(1);
    assert_eq!(link.next_departure(), Some(t0 + ms));
    link.poll(t0 + 10 * ms).unwrap();
    assert_eq!(link.next_departure(), Some(t0 + 11 * ms));
    assert_eq!(link.stats().forwarded, 11);
    link.poll(t0 + 65 * ms).unwrap();
    assert_eq!(link.next_departure(), None);
    assert_eq!(link.stats().forwarded, 66);

    let ids: Vec<u64> = link.inner().datagrams().iter().map(|d| id_of(d)).collect();
    assert_eq!(ids, (0..66).collect::<Vec<_>>());
    assert_accounts_for_everything(&link.stats());
}

#[test]
fn rate_cap_passes_traffic_below_the_rate_untouched() {
    let mut link = link(capped(8_000_000));
    let t0 = Instant::now();
    for id in 0..100 {
        let at = t0 + Duration::from_millis(2 * id);
        link.send_at(at, &numbered(id)).unwrap();
        assert_eq!(link.queued(), 0);
    }
    assert_eq!(link.stats().forwarded, 100);
}

#[test]
fn flush_sends_queued_datagrams_at_once() {
    let mut link = link(capped(8_000_000));
    let now = Instant::now();
    for id in 0..10 {
        link.send_at(now, &[id as u8; 1000]).unwrap();
    }
    assert_eq!(link.queued(), 9);
    link.flush().unwrap();
    assert_eq!((link.queued(), link.stats().forwarded), (0, 10));
}

/// A link that refuses every other datagram.
#[derive(Debug, Default)]
struct Flaky {
    calls: u32,
    accepted: Vec<Vec<u8>>,
}

impl Link for Flaky {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        self.accepted.push(datagram.to_vec());
        Ok(())
    }
}

#[test]
fn inner_errors_are_counted_and_reported() {
    let twice = Impairments {
        duplicate: 1.0,
        ..Impairments::default()
    };
    let mut link = ImpairedLink::new(Flaky::default(), twice).unwrap();
    let error = link.send(b"x").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
    let stats = link.stats();
    assert_eq!((stats.forwarded, stats.send_errors), (1, 1));
    assert_accounts_for_everything(&stats);
    assert_eq!(link.into_inner().accepted, [b"x".to_vec()]);
}

#[test]
fn every_datagram_is_accounted_for() {
    let everything = Impairments {
        loss: 0.05,
        burst: Some(Burst {
            enter: 0.005,
            mean_len: 4.0,
        }),
        reorder: 0.05,
        reorder_depth: 4,
        duplicate: 0.05,
        corrupt: 0.05,
        rate: Rate::from_bits_per_second(1_000_000_000),
        seed: 42,
    };
    let (ids, stats) = run(everything.clone(), 20_000);
    assert_eq!(ids.len() as u64, stats.forwarded);
    assert_accounts_for_everything(&stats);
    assert!(stats.dropped_random > 0 && stats.dropped_burst > 0 && stats.reordered > 0);
    assert_eq!(run(everything, 20_000).1, stats, "deterministic");
}

#[test]
fn bad_impairments_are_refused() {
    let error = ImpairedLink::new(VecLink::new(), lossy(1.5, 0)).unwrap_err();
    assert_eq!(
        error,
        ImpairmentError::Probability {
            name: "loss",
            value: 1.5
        }
    );
}
