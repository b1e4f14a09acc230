//! Pacing sends to the link rate.
//!
//! A diode cannot say "slow down": whatever the sender pushes beyond the
//! link rate is lost in a switch buffer or the receiving NIC. [`Pacer`] keeps
//! the sender under the rate with a token bucket, expressed as a theoretical
//! finish time (the instant the link would drain everything reserved so far).
//!
//! ```text
//!   reserved bytes ──► finish time advances by bytes / rate (exact, no drift)
//!   now ─────────────► a send may go once finish time - burst <= now
//!   debt <= 1 ms ────► reported as zero: OS sleeps are no finer than that,
//!                      the next send carries the debt and pays it in full
//! ```
//!
//! The arithmetic takes `now` as a parameter and never reads the clock, so
//! tests drive it on a virtual clock; only [`Pacer::pace_blocking`] sleeps.

use std::thread;
use std::time::{Duration, Instant};

use crate::rate::Rate;

/// Waits shorter than this are not worth a sleep: the OS rounds them up.
pub const SLEEP_GRANULARITY: Duration = Duration::from_millis(1);

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A token bucket that holds a byte stream to a [`Rate`].
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: Rate,
    burst_bytes: usize,
    burst: Duration,
    /// When the link finishes everything reserved; `None` before any send.
    finish: Option<Instant>,
    /// The part of `finish` below one nanosecond, in 1/rate nanoseconds.
    remainder: u128,
}

impl Pacer {
    /// A pacer for `rate` that lets `burst_bytes` go ahead of schedule.
    pub fn new(rate: Rate, burst_bytes: usize) -> Pacer {
        let burst = transmit_time(rate, burst_bytes as u128, 0).0;
        Pacer {
            rate,
            burst_bytes,
            burst,
            finish: None,
            remainder: 0,
        }
    }

    /// The rate this pacer holds to.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// How many bytes may go ahead of schedule after an idle period.
    pub fn burst_bytes(&self) -> usize {
        self.burst_bytes
    }

    /// Reserves `bytes` and returns the exact instant they may be sent.
    ///
    /// The reservation always counts, so a caller that sends later than the
    /// returned instant loses nothing, and one that sends earlier is in debt.
    pub fn departure(&mut self, now: Instant, bytes: usize) -> Instant {
        let start = match self.finish {
            Some(finish) if finish > now => finish,
            _ => self.restart(now),
        };
        let (cost, remainder) = transmit_time(self.rate, bytes as u128, self.remainder);
        self.remainder = remainder;
        self.finish = Some(start.checked_add(cost).unwrap_or(start));

        start
            .checked_sub(self.burst)
            .map_or(now, |ready| ready.max(now))
    }

    /// Reserves `bytes` and returns how long the caller must wait before
    /// sending them; zero while the debt is within [`SLEEP_GRANULARITY`].
    pub fn reserve(&mut self, now: Instant, bytes: usize) -> Duration {
        let wait = self.departure(now, bytes).saturating_duration_since(now);
        if wait > SLEEP_GRANULARITY {
            wait
        } else {
            Duration::ZERO
        }
    }

    /// Reserves `bytes` and sleeps until they may be sent.
    pub fn pace_blocking(&mut self, bytes: usize) {
        let wait = self.reserve(Instant::now(), bytes);
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }

    /// The link has been idle: the bucket is full again.
    fn restart(&mut self, now: Instant) -> Instant {
        self.remainder = 0;
        now
    }
}

/// How long `bytes` take at `rate`, carrying a sub-nanosecond `remainder`
/// (in 1/rate nanoseconds) in and out so repeated sends never drift.
fn transmit_time(rate: Rate, bytes: u128, remainder: u128) -> (Duration, u128) {
    let bits_per_second = u128::from(rate.bits_per_second());
    let scaled = bytes
        .saturating_mul(8 * NANOS_PER_SECOND)
        .saturating_add(remainder);
    let nanos = u64::try_from(scaled / bits_per_second).unwrap_or(u64::MAX);
    (Duration::from_nanos(nanos), scaled % bits_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// 8 Mbit/s: one byte per microsecond, 1000 bytes per millisecond.
    fn eight_megabit() -> Rate {
        Rate::from_bits_per_second(8_000_000).unwrap()
    }

    #[test]
    fn small_debts_are_not_worth_a_sleep() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(eight_megabit(), 0);
        assert_eq!(pacer.reserve(t0, 1000), Duration::ZERO);
        assert_eq!(pacer.reserve(t0, 1000), Duration::ZERO, "1 ms of debt");
        assert_eq!(
            pacer.reserve(t0, 1000),
            2 * MS,
            "2 ms of debt is paid in full"
        );
        assert_eq!(pacer.reserve(t0 + 2 * MS, 1000), Duration::ZERO);
        assert_eq!(pacer.reserve(t0 + 2 * MS, 500), 2 * MS);
    }

    #[test]
    fn departures_follow_the_rate_exactly() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(eight_megabit(), 0);
        assert_eq!(pacer.departure(t0, 1500), t0);
        assert_eq!(pacer.departure(t0, 1500), t0 + Duration::from_micros(1500));
        assert_eq!(
            pacer.departure(t0 + MS, 100),
            t0 + Duration::from_micros(3000)
        );
    }

    #[test]
    fn burst_goes_ahead_of_schedule_after_idle() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(eight_megabit(), 3000);
        for _ in 0..4 {
            assert_eq!(pacer.departure(t0, 1000), t0);
        }
        assert_eq!(pacer.departure(t0, 1000), t0 + MS);
        assert_eq!(pacer.reserve(t0, 1000), 2 * MS);

        let later = t0 + Duration::from_secs(1);
        for _ in 0..4 {
            assert_eq!(pacer.departure(later, 1000), later, "the bucket refilled");
        }
        assert_eq!(pacer.departure(later, 1000), later + MS);
    }

    #[test]
    fn sub_nanosecond_costs_do_not_drift() {
        let t0 = Instant::now();
        let three_bits = Rate::from_bits_per_second(3).unwrap();
        let mut pacer = Pacer::new(three_bits, 0);
        for _ in 0..3 {
            pacer.departure(t0, 1);
        }
        assert_eq!(pacer.departure(t0, 1), t0 + Duration::from_secs(8));

        let odd_rate = Rate::from_bits_per_second(7_777_777).unwrap();
        let mut pacer = Pacer::new(odd_rate, 0);
        for _ in 0..7_777_777 {
            pacer.departure(t0, 1);
        }
        assert_eq!(pacer.departure(t0, 1), t0 + Duration::from_secs(8));
    }

    #[test]
    fn a_caller_that_sleeps_as_told_holds_the_long_run_rate() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(eight_megabit(), 4000);
        let mut now = t0;
        for _ in 0..10_000 {
            now += pacer.reserve(now, 1200);
        }
        // 10 000 sends of 1.2 ms each; the last may start 1.2 ms before the
        // end, the burst lets 4 ms go early, and at most 1 ms is left owed.
        let last_departure = t0 + Duration::from_micros(10_000 * 1200 - 1200 - 4000);
        assert!(now <= last_departure, "{:?} early", now - last_departure);
        assert!(
            now + MS >= last_departure,
            "{:?} late",
            last_departure - now
        );
    }

    #[test]
    fn reports_its_settings() {
        let pacer = Pacer::new(eight_megabit(), 64 * 1024);
        assert_eq!(pacer.rate(), eight_megabit());
        assert_eq!(pacer.burst_bytes(), 65_536);
        assert_eq!(pacer.burst, Duration::from_micros(65_536));
    }
}
