//! Link health from the senders' heartbeats: per stream, which run of the
//! sender is talking (its boot epoch), how much of what it sent arrived,
//! heartbeats missed, restarts, and silence.
//!
//! ```text
//!  heartbeat n   (epoch E, sent S_n) ──┐
//!                                      ├─▶ loss = 1 − received / sent
//!  datagrams heard on the stream R_n ──┘      (both counted from E's first heartbeat)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_protocol::heartbeat::Heartbeat;
use sluice_protocol::id::StreamId;

/// What one heartbeat told about its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum News {
    /// The first heartbeat heard on this stream.
    NewSender,
    /// A new boot epoch: the sender restarted `uptime` ago.
    Restarted {
        previous_epoch: u64,
        uptime: Duration,
    },
    /// Heartbeats went missing in between.
    Gap {
        missed: u32,
    },
    Normal,
}

/// Health of every stream heard.
#[derive(Debug, Default)]
pub struct LinkHealth {
    streams: BTreeMap<u16, Tracker>,
}

#[derive(Debug)]
struct Tracker {
    status: StreamStatus,
    last_heard: Instant,
    baseline_sent: u64,
    baseline_received: u64,
}

/// A stream's health as `sluice-recv status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub stream: u16,
    pub epoch: String,
    pub sender_uptime_secs: u64,
    pub heartbeats: u64,
    pub missed_heartbeats: u64,
    pub restarts: u64,
    pub sent: u64,
    pub received: u64,
    /// Share of the sender's datagrams that did not arrive, this run.
    pub loss: f64,
    pub silent: bool,
    pub seconds_since_heartbeat: u64,
}

impl LinkHealth {
    /// Takes in a heartbeat; `received` is how many datagrams this stream
    /// has delivered so far, the heartbeat included.
    pub fn on_heartbeat(&mut self, beat: &Heartbeat, received: u64, now: Instant) -> News {
        let stream = beat.stream.0;
        let Some(tracker) = self.streams.get_mut(&stream) else {
            self.streams
                .insert(stream, Tracker::start(beat, received, now, 0));
            return News::NewSender;
        };
        let epoch = format!("{:016x}", beat.epoch);
        if tracker.status.epoch != epoch {
            let previous_epoch = u64::from_str_radix(&tracker.status.epoch, 16).unwrap_or(0);
            let restarts = tracker.status.restarts + 1;
            *tracker = Tracker::start(beat, received, now, restarts);
            let uptime = Duration::from_millis(beat.uptime_ms);
            return News::Restarted {
                previous_epoch,
                uptime,
            };
        }
        tracker.update(beat, received, now)
    }

    /// Streams whose heartbeats stopped more than `timeout` ago and were
    /// not already known to be silent.
    pub fn newly_silent(&mut self, now: Instant, timeout: Duration) -> Vec<StreamId> {
        let mut silent = Vec::new();
        for (stream, tracker) in &mut self.streams {
            let quiet = now.saturating_duration_since(tracker.last_heard) > timeout;
            if quiet && !tracker.status.silent {
                tracker.status.silent = true;
                silent.push(StreamId(*stream));
            }
        }
        silent
    }

    /// Every stream's status, as of `now`.
    pub fn snapshot(&self, now: Instant) -> Vec<StreamStatus> {
        self.streams
            .values()
            .map(|t| {
                let since = now.saturating_duration_since(t.last_heard).as_secs();
                StreamStatus {
                    seconds_since_heartbeat: since,
                    ..t.status.clone()
                }
            })
            .collect()
    }
}

impl Tracker {
    fn start(beat: &Heartbeat, received: u64, now: Instant, restarts: u64) -> Self {
        let status = StreamStatus {
            stream: beat.stream.0,
            epoch: format!("{:016x}", beat.epoch),
            sender_uptime_secs: beat.uptime_ms / 1000,
            heartbeats: 1,
            restarts,
            ..StreamStatus::default()
        };
        Self {
            status,
            last_heard: now,
            baseline_sent: beat.counters.datagrams,
            baseline_received: received,
        }
    }

    fn update(&mut self, beat: &Heartbeat, received: u64, now: Instant) -> News {
        let status = &mut self.status;
        let expected = status.heartbeats;
        status.heartbeats += 1;
        status.sender_uptime_secs = beat.uptime_ms / 1000;
        status.silent = false;
        self.last_heard = now;

        // Heartbeats count themselves in the next one's counters; the
        // receiver has counted this one already.
        status.sent = beat.counters.datagrams.saturating_sub(self.baseline_sent);
        status.received = received
            .saturating_sub(self.baseline_received)
            .saturating_sub(1);
        status.loss = loss(status.sent, status.received);

        let missed = u64::from(beat.sequence).saturating_sub(expected);
        status.missed_heartbeats += missed;
        match u32::try_from(missed) {
            Ok(0) => News::Normal,
            Ok(missed) => News::Gap { missed },
            Err(_) => News::Gap { missed: u32::MAX },
        }
    }
}

fn loss(sent: u64, received: u64) -> f64 {
    if sent == 0 {
        return 0.0;
    }
    (1.0 - received as f64 / sent as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::heartbeat::Counters;

    fn beat(epoch: u64, sequence: u32, sent: u64) -> Heartbeat {
        Heartbeat {
            stream: StreamId(1),
            epoch,
            sequence,
            uptime_ms: u64::from(sequence) * 1000,
            counters: Counters {
                datagrams: sent,
                ..Counters::default()
            },
        }
    }

    #[test]
    fn loss_is_measured_from_the_counters() {
        let mut health = LinkHealth::default();
        let now = Instant::now();
        assert_eq!(health.on_heartbeat(&beat(7, 0, 0), 1, now), News::NewSender);
        // 1000 sent since; 900 arrived besides the two heartbeats.
        assert_eq!(
            health.on_heartbeat(&beat(7, 1, 1000), 1 + 900 + 1, now),
            News::Normal
        );
        let status = &health.snapshot(now)[0];
        assert_eq!((status.sent, status.received), (1000, 900));
        assert!((status.loss - 0.1).abs() < 1e-9, "{}", status.loss);
    }

    #[test]
    fn gaps_and_restarts_are_named() {
        let mut health = LinkHealth::default();
        let now = Instant::now();
        health.on_heartbeat(&beat(7, 0, 0), 1, now);
        assert_eq!(
            health.on_heartbeat(&beat(7, 3, 10), 5, now),
            News::Gap { missed: 2 }
        );
        let news = health.on_heartbeat(&beat(9, 2, 5), 8, now);
        assert_eq!(
            news,
            News::Restarted {
                previous_epoch: 7,
                uptime: Duration::from_secs(2)
            }
        );
        assert_eq!(health.snapshot(now)[0].restarts, 1);
    }

    #[test]
    fn silence_is_reported_once() {
        let mut health = LinkHealth::default();
        let now = Instant::now();
        health.on_heartbeat(&beat(7, 0, 0), 1, now);
        let later = now + Duration::from_secs(30);
        assert_eq!(
            health.newly_silent(later, Duration::from_secs(10)),
            vec![StreamId(1)]
        );
        assert!(
            health
                .newly_silent(later, Duration::from_secs(10))
                .is_empty()
        );
        assert!(health.snapshot(later)[0].silent);
    }
}
