//! A bounded lock-free queue whose memory follows what it holds.
//!
//! Every imapd and lmtpd process has a queue of `event_queue_size` slots,
//! sized for a listener that is away for seconds, and most of them never
//! hold more than a command's few events: a ring allocated whole would
//! write every slot in every process. So the first slots (as many as the
//! owner expects to hold at once) are an `ArrayQueue`, allocated with the
//! ring, and the rest a `SegQueue` (blocks allocated as it fills and freed
//! as it drains) taken only while the front is full, so that a stream of
//! events never waits on malloc's arena lock for a block.

use crossbeam_queue::{ArrayQueue, SegQueue};

pub struct Ring<T> {
    front: ArrayQueue<T>,
    /// Values that found the front full, and every value after them until
    /// they are all taken: all of the front's values are older than any of
    /// these, so taking from the front first keeps the order.
    overflow: SegQueue<T>,
    cap: usize,
}

impl<T> Ring<T> {
    /// `cap` values at most, the first `front` of them in slots allocated now.
    pub fn new(cap: usize, front: usize) -> Ring<T> {
        let cap = cap.max(1);
        Ring {
            front: ArrayQueue::new(front.min(cap)),
            overflow: SegQueue::new(),
            cap,
        }
    }

    /// Append unless full; a full ring hands the value back. Callers that
    /// push at the same moment may each find room for one more: the bound
    /// can be passed by their number less one, never more.
    pub fn push(&self, value: T) -> Result<(), T> {
        if self.is_full() {
            return Err(value);
        }
        self.append(value);
        Ok(())
    }

    /// Append, first dropping the oldest values while the ring is full;
    /// returns how many were dropped.
    pub fn force_push(&self, value: T) -> usize {
        let mut dropped = 0;
        while self.is_full() && self.pop().is_some() {
            dropped += 1;
        }
        self.append(value);
        dropped
    }

    fn append(&self, value: T) {
        let value = if self.overflow.is_empty() {
            match self.front.push(value) {
                Ok(()) => return,
                Err(back) => back,
            }
        } else {
            value
        };
        self.overflow.push(value);
    }

    pub fn pop(&self) -> Option<T> {
        self.front.pop().or_else(|| self.overflow.pop())
    }

    pub fn len(&self) -> usize {
        self.front.len() + self.overflow.len()
    }

    pub fn is_empty(&self) -> bool {
        self.front.is_empty() && self.overflow.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn first_in_first_out_up_to_the_bound() {
        let r = Ring::new(40, 8);
        assert!(r.is_empty() && !r.is_full() && r.capacity() == 40);
        for i in 0..40 {
            r.push(i).unwrap();
        }
        assert!(r.is_full());
        assert_eq!(r.push(40), Err(40));
        assert_eq!(r.len(), 40);
        for i in 0..40 {
            assert_eq!(r.pop(), Some(i));
        }
        assert_eq!(r.pop(), None);
        assert!(r.is_empty());
    }

    /// A value pushed while earlier ones wait past the front waits behind
    /// them, though the front has room again.
    #[test]
    fn values_past_the_front_keep_their_turn() {
        let r = Ring::new(100, 4);
        for i in 0..6 {
            r.push(i).unwrap();
        }
        assert_eq!(r.pop(), Some(0));
        r.push(6).unwrap();
        assert_eq!(r.len(), 6);
        for i in 1..7 {
            assert_eq!(r.pop(), Some(i));
        }
        r.push(7).unwrap();
        assert_eq!((r.pop(), r.pop()), (Some(7), None));
    }

    #[test]
    fn force_push_drops_the_oldest() {
        let r = Ring::new(3, 2);
        for i in 0..3 {
            assert_eq!(r.force_push(i), 0);
        }
        assert_eq!(r.force_push(3), 1);
        assert_eq!(r.force_push(4), 1);
        assert_eq!(
            (r.pop(), r.pop(), r.pop(), r.pop()),
            (Some(2), Some(3), Some(4), None)
        );
    }

    #[test]
    fn a_zero_bound_holds_one() {
        let r = Ring::new(0, 4);
        r.push('a').unwrap();
        assert_eq!(r.push('b'), Err('b'));
    }

    /// Values dropped with the ring (never popped) are dropped once.
    #[test]
    fn drops_what_it_still_holds() {
        let v = Arc::new(());
        let r = Ring::new(100, 16);
        for _ in 0..70 {
            r.push(Arc::clone(&v)).unwrap();
        }
        r.pop();
        drop(r);
        assert_eq!(Arc::strong_count(&v), 1);
    }

    /// Two producers and a consumer: everything pushed is popped once, in
    /// each producer's order, and the ring never held more than its bound
    /// plus one (two pushers).
    #[test]
    fn concurrent_producers_keep_order_and_bound() {
        const N: u32 = 50_000;
        let r = Arc::new(Ring::new(64, 8));
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    for i in 0..N {
                        let mut v = (p, i);
                        while let Err(back) = r.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u32; 2];
        let mut most = 0;
        while next != [N, N] {
            most = most.max(r.len());
            match r.pop() {
                Some((p, i)) => {
                    assert_eq!(i, next[p as usize]);
                    next[p as usize] += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert!(most <= 65, "held {most}");
    }
}
