//! IMAP sequence sets as stock builds `uidset` and `vnd.cmu.oldUidset`: ranges
//! in insertion order, a UID one above the last one extends the last range,
//! anything else starts a new range. Never re-sorted, so the string shows the
//! order in which Cyrus touched the messages.

use std::fmt::Write;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    ranges: Vec<(u32, u32)>,
}

impl SeqSet {
    pub fn add(&mut self, uid: u32) {
        match self.ranges.last_mut() {
            // The same UID again right away is a no-op, as in stock.
            Some((_, high)) if *high == uid => {}
            Some((_, high)) if high.checked_add(1) == Some(uid) => *high = uid,
            _ => self.ranges.push((uid, uid)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The first UID added (stock's `seqset_first`).
    pub fn first(&self) -> Option<u32> {
        self.ranges.first().map(|r| r.0)
    }

    /// Number of UIDs held, counting repeats in separate ranges.
    pub fn count(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(lo, hi)| u64::from(hi - lo) + 1)
            .sum()
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Memory held, for deciding whether a cleared set is worth keeping.
    pub fn capacity_bytes(&self) -> usize {
        self.ranges.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    /// Append the sequence-set string (nothing when empty). `u32::MAX`
    /// prints as `*`.
    pub fn write_imap(&self, s: &mut String) {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_num(s, lo);
            if lo != hi {
                s.push(':');
                push_num(s, hi);
            }
        }
    }
}

fn push_num(s: &mut String, n: u32) {
    if n == u32::MAX {
        s.push('*');
    } else {
        let _ = write!(s, "{n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(uids: &[u32]) -> Option<String> {
        let mut s = SeqSet::default();
        uids.iter().for_each(|u| s.add(*u));
        imap(&s)
    }

    fn imap(s: &SeqSet) -> Option<String> {
        let mut out = String::new();
        s.write_imap(&mut out);
        (!out.is_empty()).then_some(out)
    }

    #[test]
    fn ascending_runs_collapse() {
        assert_eq!(set(&[1, 2, 3, 5]).as_deref(), Some("1:3,5"));
        assert_eq!(set(&[4, 5, 6]).as_deref(), Some("4:6"));
        assert_eq!(set(&[1, 3, 5]).as_deref(), Some("1,3,5"));
        assert_eq!(set(&[7]).as_deref(), Some("7"));
        assert_eq!(set(&[]), None);
    }

    #[test]
    fn insertion_order_is_kept() {
        assert_eq!(set(&[5, 3, 4, 1]).as_deref(), Some("5,3:4,1"));
        assert_eq!(set(&[2, 2, 3]).as_deref(), Some("2:3"));
        assert_eq!(set(&[2, 3, 2]).as_deref(), Some("2:3,2"));
    }

    #[test]
    fn extremes() {
        assert_eq!(
            set(&[u32::MAX - 1, u32::MAX]).as_deref(),
            Some("4294967294:*")
        );
        assert_eq!(set(&[u32::MAX, 0]).as_deref(), Some("*,0"));
        let mut s = SeqSet::default();
        (1..=100_000).for_each(|u| s.add(u));
        assert_eq!(s.count(), 100_000);
        assert_eq!(imap(&s).as_deref(), Some("1:100000"));
    }
}
