//! A fault-injecting wrapper around any [`Link`].
//!
//! Every datagram passes the stages in this order:
//!
//! ```text
//!  send ─► burst ─► loss ─► corrupt ─► duplicate ─► reorder ─► rate cap ─► inner link
//!            │        │                                │           │
//!            ▼        ▼                                ▼           ▼
//!         dropped  dropped                    held back until   queued, or
//!                                             `reorder_depth`   tail-dropped
//!                                             later datagrams   when full
//!                                             have gone out
//! ```
//!
//! Each stage draws from its own random stream derived from the seed, so a
//! given seed yields the same loss pattern whether or not, say, corruption
//! is switched on. The same seed and the same input always give the same
//! output; only the rate cap looks at the clock, and tests pass their own.

mod config;
mod shaper;
mod stats;

use std::borrow::Cow;
use std::io;
use std::time::Instant;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::link::Link;
use shaper::{Admission, Shaper};

pub use config::{Burst, ImpairmentError, Impairments, ProbabilityParseError, parse_probability};
pub use shaper::{MIN_QUEUE_BYTES, QUEUE_TIME};
pub use stats::ImpairStats;

/// A [`Link`] that applies [`Impairments`] before handing datagrams on.
#[derive(Debug)]
pub struct ImpairedLink<L> {
    inner: L,
    impairments: Impairments,
    random: Streams,
    in_burst: bool,
    held: Vec<Held>,
    shaper: Option<Shaper>,
    stats: ImpairStats,
}

impl<L: Link> ImpairedLink<L> {
    /// Wraps `inner`.
    ///
    /// # Errors
    ///
    /// Refuses impairments with a probability outside 0 to 1, a burst
    /// shorter than one datagram, or reordering with a depth of zero.
    pub fn new(inner: L, impairments: Impairments) -> Result<Self, ImpairmentError> {
        impairments.validate()?;
        Ok(ImpairedLink {
            inner,
            random: Streams::new(impairments.seed),
            in_burst: false,
            held: Vec::new(),
            shaper: impairments.rate.map(Shaper::new),
            stats: ImpairStats::default(),
            impairments,
        })
    }

    /// Applies the impairments to one datagram arriving at `now`.
    ///
    /// # Errors
    ///
    /// Returns the first error of the inner link while sending this datagram
    /// or any it released; the rest are still sent.
    pub fn send_at(&mut self, now: Instant, datagram: &[u8]) -> io::Result<()> {
        self.stats.received += 1;
        let mut result = self.release_due(now);
        if self.lost() {
            return result;
        }

        let datagram = self.maybe_corrupt(datagram);
        let copies = if self.duplicated() { 2 } else { 1 };
        for _ in 0..copies {
            keep_first_error(&mut result, self.reorder(now, &datagram));
        }
        result
    }

    /// Sends queued datagrams whose time has come under the rate cap.
    // Limitation: nothing wakes the link by itself. Used as a plain `Link`
    // with a rate cap, queued datagrams leave on the next send; a caller
    // that falls silent must call `poll` at `next_departure` (the diode does).
    ///
    /// # Errors
    ///
    /// Returns the first error of the inner link; the rest are still sent.
    pub fn poll(&mut self, now: Instant) -> io::Result<()> {
        self.release_due(now)
    }

    /// When the next datagram queued under the rate cap is due, if any.
    pub fn next_departure(&self) -> Option<Instant> {
        self.shaper.as_ref().and_then(Shaper::next_departure)
    }

    /// Lets every held-back datagram go, as if its turn had come, through
    /// the rate cap. The diode calls this when the link falls idle.
    ///
    /// # Errors
    ///
    /// Returns the first error of the inner link; the rest are still sent.
    pub fn release_held(&mut self, now: Instant) -> io::Result<()> {
        let mut result = Ok(());
        for held in std::mem::take(&mut self.held) {
            keep_first_error(&mut result, self.shape(now, &held.datagram));
        }
        result
    }

    /// Sends everything queued or held back, now, ignoring the rate cap.
    ///
    /// # Errors
    ///
    /// Returns the first error of the inner link; the rest are still sent.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        while let Some(datagram) = self.shaper.as_mut().and_then(Shaper::pop) {
            keep_first_error(&mut result, self.deliver(&datagram));
        }
        for held in std::mem::take(&mut self.held) {
            keep_first_error(&mut result, self.deliver(&held.datagram));
        }
        result
    }

    /// What the link has done so far.
    pub fn stats(&self) -> ImpairStats {
        self.stats
    }

    /// The impairments being applied.
    pub fn impairments(&self) -> &Impairments {
        &self.impairments
    }

    /// How many datagrams are held back for reordering.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// How many datagrams wait in the rate-cap queue.
    pub fn queued(&self) -> usize {
        self.shaper.as_ref().map_or(0, Shaper::len)
    }

    /// The wrapped link.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Unwraps the link; anything still queued or held is discarded.
    pub fn into_inner(self) -> L {
        self.inner
    }

    /// The burst and random-loss stages; true if the datagram is dropped.
    fn lost(&mut self) -> bool {
        if let Some(burst) = self.impairments.burst {
            if !self.in_burst && happens(&mut self.random.burst, burst.enter) {
                self.in_burst = true;
            }
            if self.in_burst {
                self.in_burst = !happens(&mut self.random.burst, 1.0 / burst.mean_len);
                self.stats.dropped_burst += 1;
                return true;
            }
        }
        if happens(&mut self.random.loss, self.impairments.loss) {
            self.stats.dropped_random += 1;
            return true;
        }
        false
    }

    fn maybe_corrupt<'a>(&mut self, datagram: &'a [u8]) -> Cow<'a, [u8]> {
        if datagram.is_empty() || !happens(&mut self.random.corrupt, self.impairments.corrupt) {
            return Cow::Borrowed(datagram);
        }
        let mut corrupted = datagram.to_vec();
        let byte = self.random.corrupt.random_range(0..corrupted.len());
        corrupted[byte] ^= 1 << self.random.corrupt.random_range(0..8u32);
        self.stats.corrupted += 1;
        Cow::Owned(corrupted)
    }

    fn duplicated(&mut self) -> bool {
        let twice = happens(&mut self.random.duplicate, self.impairments.duplicate);
        self.stats.duplicated += u64::from(twice);
        twice
    }

    /// Holds the datagram back, or sends it and counts down the held ones.
    fn reorder(&mut self, now: Instant, datagram: &[u8]) -> io::Result<()> {
        if happens(&mut self.random.reorder, self.impairments.reorder) {
            let remaining = self.impairments.reorder_depth;
            self.held.push(Held {
                datagram: datagram.to_vec(),
                remaining,
            });
            self.stats.reordered += 1;
            return Ok(());
        }

        let mut result = self.shape(now, datagram);
        for datagram in self.count_down_held() {
            keep_first_error(&mut result, self.shape(now, &datagram));
        }
        result
    }

    /// One more datagram has gone out; returns the held ones now due.
    fn count_down_held(&mut self) -> Vec<Vec<u8>> {
        if self.held.is_empty() {
            return Vec::new();
        }
        self.held.iter_mut().for_each(|held| held.remaining -= 1);
        let (due, waiting) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|held| held.remaining == 0);
        self.held = waiting;
        due.into_iter().map(|held: Held| held.datagram).collect()
    }

    /// The rate-cap stage.
    fn shape(&mut self, now: Instant, datagram: &[u8]) -> io::Result<()> {
        let Some(shaper) = self.shaper.as_mut() else {
            return self.deliver(datagram);
        };
        match shaper.admit(now, datagram) {
            Admission::SendNow => self.deliver(datagram),
            Admission::Queued => Ok(()),
            Admission::Dropped => {
                self.stats.dropped_rate += 1;
                Ok(())
            }
        }
    }

    fn release_due(&mut self, now: Instant) -> io::Result<()> {
        let mut result = Ok(());
        while let Some(datagram) = self.shaper.as_mut().and_then(|s| s.pop_due(now)) {
            keep_first_error(&mut result, self.deliver(&datagram));
        }
        result
    }

    fn deliver(&mut self, datagram: &[u8]) -> io::Result<()> {
        tracing::trace!(len = datagram.len(), "forwarding datagram");
        match self.inner.send(datagram) {
            Ok(()) => self.stats.forwarded += 1,
            Err(error) => {
                self.stats.send_errors += 1;
                return Err(error);
            }
        }
        Ok(())
    }
}

impl<L: Link> Link for ImpairedLink<L> {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.send_at(Instant::now(), datagram)
    }
}

/// A datagram held back by the reorder stage.
#[derive(Debug)]
struct Held {
    datagram: Vec<u8>,
    /// Datagrams still to go out before this one is released.
    remaining: usize,
}

/// One random stream per stage.
#[derive(Debug)]
struct Streams {
    burst: Xoshiro256PlusPlus,
    loss: Xoshiro256PlusPlus,
    corrupt: Xoshiro256PlusPlus,
    duplicate: Xoshiro256PlusPlus,
    reorder: Xoshiro256PlusPlus,
}

impl Streams {
    fn new(seed: u64) -> Streams {
        let stream =
            |tag: &[u8; 8]| Xoshiro256PlusPlus::seed_from_u64(seed ^ u64::from_le_bytes(*tag));
        Streams {
            burst: stream(b"burst\0\0\0"),
            loss: stream(b"loss\0\0\0\0"),
            corrupt: stream(b"corrupt\0"),
            duplicate: stream(b"dup\0\0\0\0\0"),
            reorder: stream(b"reorder\0"),
        }
    }
}

/// True with probability `p`; draws nothing when `p` is zero.
fn happens(rng: &mut Xoshiro256PlusPlus, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

fn keep_first_error(result: &mut io::Result<()>, next: io::Result<()>) {
    if result.is_ok() {
        *result = next;
    }
}

#[cfg(test)]
mod tests;
