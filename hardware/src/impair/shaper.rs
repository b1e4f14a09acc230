//! The rate cap: a serialising link with a bounded queue in front of it.
//!
//! A datagram that arrives while the link is idle goes out at once. One that
//! arrives while it is busy waits its turn in a FIFO; if the FIFO already
//! holds [`QUEUE_TIME`] worth of bytes at the capped rate, it is tail-dropped,
//! as a switch port feeding a slower link would do.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::pace::Pacer;
use crate::rate::Rate;

/// How much traffic the queue holds, measured in time at the capped rate.
// Limitation: the queue depth is fixed rather than configurable; 50 ms is
// typical of the switch buffers in front of diode hardware.
pub const QUEUE_TIME: Duration = Duration::from_millis(50);

/// The queue never holds less than this, so slow caps still pass a datagram.
pub const MIN_QUEUE_BYTES: usize = 64 * 1024;

/// What the shaper decided for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    SendNow,
    Queued,
    Dropped,
}

#[derive(Debug)]
pub(super) struct Shaper {
    pacer: Pacer,
    queue: VecDeque<(Instant, Vec<u8>)>,
    queued_bytes: usize,
    limit: usize,
}

impl Shaper {
    pub(super) fn new(rate: Rate) -> Shaper {
        Shaper {
            pacer: Pacer::new(rate, 0),
            queue: VecDeque::new(),
            queued_bytes: 0,
            limit: queue_limit(rate),
        }
    }

    /// Decides whether `datagram` goes now, waits, or is dropped. Due
    /// datagrams must have been taken with [`Shaper::pop_due`] first.
    pub(super) fn admit(&mut self, now: Instant, datagram: &[u8]) -> Admission {
        if self.queued_bytes.saturating_add(datagram.len()) > self.limit {
            return Admission::Dropped;
        }

        let departure = self.pacer.departure(now, datagram.len());
        if departure <= now && self.queue.is_empty() {
            return Admission::SendNow;
        }
        self.queued_bytes += datagram.len();
        self.queue.push_back((departure, datagram.to_vec()));
        Admission::Queued
    }

    /// The next queued datagram whose departure time has come.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let (departure, _) = self.queue.front()?;
        if *departure > now {
            return None;
        }
        self.pop()
    }

    /// The next queued datagram, due or not.
    pub(super) fn pop(&mut self) -> Option<Vec<u8>> {
        let (_, datagram) = self.queue.pop_front()?;
        self.queued_bytes -= datagram.len();
        Some(datagram)
    }

    /// When the next queued datagram is due.
    pub(super) fn next_departure(&self) -> Option<Instant> {
        self.queue.front().map(|(departure, _)| *departure)
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

fn queue_limit(rate: Rate) -> usize {
    let millis = u64::try_from(QUEUE_TIME.as_millis()).unwrap_or(u64::MAX);
    let bytes = rate.bits_per_second() / 8 / 1000 * millis;
    usize::try_from(bytes)
        .unwrap_or(usize::MAX)
        .max(MIN_QUEUE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(bits: u64) -> Rate {
        Rate::from_bits_per_second(bits).unwrap()
    }

    #[test]
    fn queue_holds_fifty_milliseconds_of_traffic() {
        assert_eq!(queue_limit(rate(800_000_000)), 5_000_000);
        assert_eq!(queue_limit(rate(1_000_000)), MIN_QUEUE_BYTES);
    }

    #[test]
    fn an_idle_link_sends_at_once_and_a_busy_one_queues_in_order() {
        let t0 = Instant::now();
        let mut shaper = Shaper::new(rate(8_000_000));
        assert_eq!(shaper.admit(t0, &[1; 1000]), Admission::SendNow);
        assert_eq!(shaper.admit(t0, &[2; 1000]), Admission::Queued);
        assert_eq!(shaper.admit(t0, &[3; 500]), Admission::Queued);
        assert_eq!(shaper.len(), 2);

        let one_ms = Duration::from_millis(1);
        assert_eq!(shaper.next_departure(), Some(t0 + one_ms));
        assert_eq!(shaper.pop_due(t0), None);
        assert_eq!(shaper.pop_due(t0 + one_ms), Some(vec![2; 1000]));
        assert_eq!(shaper.next_departure(), Some(t0 + 2 * one_ms));
        assert_eq!(shaper.pop(), Some(vec![3; 500]));
        assert_eq!((shaper.len(), shaper.queued_bytes), (0, 0));
    }

    #[test]
    fn a_full_queue_tail_drops() {
        let t0 = Instant::now();
        let mut shaper = Shaper::new(rate(8_000_000));
        assert_eq!(shaper.admit(t0, &[0; 1000]), Admission::SendNow);
        for _ in 0..65 {
            assert_eq!(shaper.admit(t0, &[0; 1000]), Admission::Queued);
        }
        assert_eq!(shaper.admit(t0, &[0; 1000]), Admission::Dropped);
        assert_eq!(
            shaper.admit(t0, &[0; 536]),
            Admission::Queued,
            "exactly full"
        );
        assert_eq!(shaper.admit(t0, &[0; 1]), Admission::Dropped);
        assert_eq!(shaper.queued_bytes, MIN_QUEUE_BYTES);
    }
}
