//! Counters kept by an impaired link.

use std::fmt;

/// What an impaired link did with the datagrams it was given.
///
/// Once the link is flushed, `forwarded + dropped() + send_errors` equals
/// `received + duplicated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Datagrams handed to the link.
    pub received: u64,
    /// Datagrams the inner link accepted, duplicates included.
    pub forwarded: u64,
    pub dropped_random: u64,
    pub dropped_burst: u64,
    pub duplicated: u64,
    /// Datagrams held back to be released out of order.
    pub reordered: u64,
    pub corrupted: u64,
    /// Datagrams tail-dropped because the rate-cap queue was full.
    pub dropped_rate: u64,
    /// Datagrams the inner link refused; they are lost.
    pub send_errors: u64,
}

impl ImpairStats {
    /// Datagrams dropped on purpose, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_burst + self.dropped_rate
    }
}

impl fmt::Display for ImpairStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, forwarded {}, dropped {} (random {}, burst {}, rate {}), \
             duplicated {}, reordered {}, corrupted {}, send errors {}",
            self.received,
            self.forwarded,
            self.dropped(),
            self.dropped_random,
            self.dropped_burst,
            self.dropped_rate,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.send_errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_every_counter() {
        let stats = ImpairStats {
            received: 100,
            forwarded: 91,
            dropped_random: 5,
            dropped_burst: 3,
            duplicated: 2,
            reordered: 4,
            corrupted: 1,
            dropped_rate: 2,
            send_errors: 1,
        };
        assert_eq!(stats.dropped(), 10);
        assert_eq!(
            stats.to_string(),
            "received 100, forwarded 91, dropped 10 (random 5, burst 3, rate 2), \
             duplicated 2, reordered 4, corrupted 1, send errors 1"
        );
    }
}
