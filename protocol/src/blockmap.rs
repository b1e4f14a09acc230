//! Which blocks of a payload have been delivered: one bit per block.

/// A fixed-size set of block numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMap {
    words: Vec<u64>,
    len: u64,
    count: u64,
}

impl BlockMap {
    /// An empty map for `len` blocks.
    pub fn new(len: u64) -> Self {
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(0);
        Self {
            words: vec![0; words],
            len,
            count: 0,
        }
    }

    /// A map restored from its words; `None` if they do not fit `len` blocks.
    pub fn from_words(len: u64, words: Vec<u64>) -> Option<Self> {
        let expected = usize::try_from(len.div_ceil(64)).ok()?;
        if words.len() != expected {
            return None;
        }
        let mut map = Self {
            words,
            len,
            count: 0,
        };
        map.clear_past_end();
        map.count = map.words.iter().map(|w| u64::from(w.count_ones())).sum();
        Some(map)
    }

    /// Marks `block`; returns true if it was not marked before.
    pub fn insert(&mut self, block: u64) -> bool {
        if block >= self.len {
            return false;
        }
        let (word, bit) = split(block);
        let Some(w) = self.words.get_mut(word) else {
            return false;
        };
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.count += 1;
        true
    }

    pub fn contains(&self, block: u64) -> bool {
        let (word, bit) = split(block);
        block < self.len && self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Blocks marked.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Blocks the map covers.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// The first `limit` blocks not marked.
    pub fn missing(&self, limit: usize) -> Vec<u64> {
        (0..self.len)
            .filter(|b| !self.contains(*b))
            .take(limit)
            .collect()
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    fn clear_past_end(&mut self) {
        let tail = self.len % 64;
        if let (Some(last), true) = (self.words.last_mut(), tail != 0) {
            *last &= (1u64 << tail) - 1;
        }
    }
}

fn split(block: u64) -> (usize, u64) {
    (
        usize::try_from(block / 64).unwrap_or(usize::MAX),
        1u64 << (block % 64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_counts_and_lists_missing() {
        let mut map = BlockMap::new(130);
        assert!(map.insert(0));
        assert!(map.insert(129));
        assert!(!map.insert(129));
        assert!(!map.insert(130));
        assert_eq!(map.count(), 2);
        assert_eq!(map.missing(3), vec![1, 2, 3]);
        assert!(map.contains(129) && !map.contains(128));
    }

    #[test]
    fn round_trips_through_words() {
        let mut map = BlockMap::new(70);
        for b in [3, 64, 69] {
            map.insert(b);
        }
        let back = BlockMap::from_words(70, map.words().to_vec()).unwrap();
        assert_eq!(back, map);
        assert_eq!(BlockMap::from_words(70, vec![0]), None);
    }

    #[test]
    fn bits_past_the_end_are_ignored() {
        let map = BlockMap::from_words(3, vec![u64::MAX]).unwrap();
        assert_eq!(map.count(), 3);
        assert!(map.is_full());
    }
}
