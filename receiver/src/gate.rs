//! Decides which rejections are written down. Traffic that no trusted key
//! signed is cheap to forge, so its records are rate-limited and the rest
//! only counted; a signed bundle is recorded once per reason, however often
//! it is replayed.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::record::Rejection;

/// Unauthenticated rejection records allowed per second, on average.
const RECORDS_PER_SECOND: f64 = 1.0;
/// How many may be written in a burst.
const BURST: f64 = 20.0;
/// Signed (bundle, reason) pairs remembered.
const SIGNED_MEMORY: usize = 4096;

/// The record gate of one receiver.
#[derive(Debug)]
pub struct RejectionGate {
    tokens: f64,
    refilled: Instant,
    suppressed: u64,
    signed: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl RejectionGate {
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: BURST,
            refilled: now,
            suppressed: 0,
            signed: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// True if this rejection should be recorded (and logged loudly).
    pub fn admit(&mut self, rejection: &Rejection, now: Instant) -> bool {
        if rejection.signer.is_some() {
            return self.first_time(rejection);
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Rejections not recorded since the last call.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }

    fn first_time(&mut self, rejection: &Rejection) -> bool {
        let key = (rejection.id.clone(), rejection.code.clone());
        if !self.signed.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > SIGNED_MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.signed.remove(&old);
        }
        true
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * RECORDS_PER_SECOND).min(BURST);
        self.refilled = now;
    }
}

/// How often a summary of suppressed rejections is logged.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(n: u64) -> Rejection {
        Rejection::unauthenticated(format!("t{n}"), "bad-signature", "x".into(), n)
    }

    fn signed(id: &str, code: &str) -> Rejection {
        Rejection {
            signer: Some("k".into()),
            ..Rejection::unauthenticated(id.into(), code, "x".into(), 0)
        }
    }

    #[test]
    fn a_flood_of_unsigned_rejections_is_mostly_counted() {
        let start = Instant::now();
        let mut gate = RejectionGate::new(start);
        let admitted = (0..1000)
            .filter(|n| gate.admit(&unsigned(*n), start))
            .count();
        assert_eq!(admitted, 20);
        assert_eq!(gate.take_suppressed(), 980);
        assert_eq!(gate.take_suppressed(), 0);
        assert!(gate.admit(&unsigned(1), start + Duration::from_secs(2)));
    }

    #[test]
    fn a_signed_bundle_is_recorded_once_per_reason() {
        let mut gate = RejectionGate::new(Instant::now());
        let now = Instant::now();
        assert!(gate.admit(&signed("b1", "wrong-stream"), now));
        assert!(!gate.admit(&signed("b1", "wrong-stream"), now));
        assert!(gate.admit(&signed("b1", "payload-hash"), now));
        assert!(gate.admit(&signed("b2", "wrong-stream"), now));
    }
}
