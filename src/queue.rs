//! The queue between the threads calling `notify` and the process's sender
//! thread: a bounded lock-free ring, the overflow policy, the count of
//! events not yet done with, and the handshake by which the sender sleeps
//! and callers wake it.
//!
//! # Every queued event is sent or counted
//!
//! `outstanding` goes up by one before an event enters the ring and down
//! by one exactly once, when the event leaves our hands: sent, or dropped
//! with the drop's counter bumped (overflow here; expiry, too big or a send
//! error in the sender). So `outstanding` is the number of events that are
//! neither sent nor counted, and a flush that finds it above zero when its
//! deadline passes counts those too (`Counter::UnsentAtFlush`).
//!
//! # The sender is always woken
//!
//! The sender announces that it will park by storing `NAPPING` or `ASLEEP`
//! in `state`, then looks at the ring once more and parks only if it is
//! empty. A caller pushes, then loads `state`. All four operations are
//! `SeqCst` (crossbeam-queue 0.3's `ArrayQueue` and `SegQueue` push with a
//! `SeqCst` compare-and-swap of the tail and test emptiness with `SeqCst`
//! loads, in the version Cargo.lock holds), so
//! in their single order either the sender's look comes after the push and
//! it does not park, or its store comes before the caller's load and the
//! caller sees it. A caller that sees `ASLEEP` rouses the sender; one that
//! sees `NAPPING` leaves it to the nap's end unless a backlog has built up
//! (the nap bounds the delay). `rouse` swaps `state` back to `AWAKE` and
//! unparks only when the swap took it from a parked state, so exactly one
//! caller unparks per announced park; an unpark that lands before the
//! `park` call leaves a token and the park returns at once. The sender
//! registers its handle before its first store of a parked state, so a
//! caller that sees one always finds the handle.
//!
//! # A caller blocked on a full queue is woken within a slice
//!
//! With `event_queue_overflow: block` a caller registers in `space_waiters`
//! under the `space` lock, then waits only if the ring is still full; the
//! sender pops, then loads `space_waiters` and, once a batch's worth of
//! room is free, notifies under the same lock. Both pairs are `SeqCst`, so
//! either the caller sees the room or the sender sees the waiter; holding
//! the lock from the check to the wait means the notification cannot fall
//! in between. Less room than that wakes no one: each wait is cut into
//! slices of `BLOCK_SLICE`, after which the caller looks again, and no
//! caller waits past `event_queue_block_timeout`.

use crate::config::Overflow;
use crate::counters::{bump, Counter, COUNTERS};
use crate::outgoing::Outgoing;
use crate::ring::Ring;
use crate::transport::datagram::BATCH_MAX;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A napping sender is woken anyway once this many events wait: two
/// batches, so that the caller who pays the wake-up is rare in a stream.
pub(crate) const WAKE_BACKLOG: usize = 2 * BATCH_MAX;
/// Slots of the ring allocated with it: what a napping sender lets pile up
/// before a caller wakes it, twice, so that a stream of events allocates
/// nothing to queue them.
const RING_FRONT: usize = 2 * WAKE_BACKLOG;
/// Callers blocked on a full queue are woken once this much room is free,
/// not for every few slots, which cost both sides futex calls.
const ROOM_TO_WAKE: usize = 4 * BATCH_MAX;
/// Longest single wait of a blocked caller before it looks again.
const BLOCK_SLICE: Duration = Duration::from_millis(5);

/// What the sender is doing, for callers deciding whether to wake it.
const AWAKE: u8 = 0;
pub(crate) const NAPPING: u8 = 1;
pub(crate) const ASLEEP: u8 = 2;

pub struct Queue {
    ring: Ring<Outgoing>,
    /// Events accepted and neither sent nor counted as dropped.
    outstanding: AtomicUsize,
    state: AtomicU8,
    /// Set by the first caller, who starts the sender.
    started: AtomicBool,
    /// The sender's handle, registered by the sender itself.
    sender: OnceLock<Thread>,
    space: (Mutex<()>, Condvar),
    space_waiters: AtomicUsize,
}

impl Queue {
    pub fn new(queue_size: usize) -> Queue {
        Queue {
            ring: Ring::new(queue_size, RING_FRONT),
            outstanding: AtomicUsize::new(0),
            state: AtomicU8::new(AWAKE),
            started: AtomicBool::new(false),
            sender: OnceLock::new(),
            space: (Mutex::new(()), Condvar::new()),
            space_waiters: AtomicUsize::new(0),
        }
    }

    /// True for the one caller that must start the sender.
    pub fn claim_start(&self) -> bool {
        !self.started.load(Ordering::Acquire) && !self.started.swap(true, Ordering::AcqRel)
    }

    /// The sender could not be started: the next caller tries again.
    pub fn start_failed(&self) {
        self.started.store(false, Ordering::Release);
    }

    /// Queue one event under the overflow policy; never blocks unless the
    /// policy is `block`, and then at most `timeout`.
    pub fn push(&self, out: Outgoing, policy: Overflow, timeout: Duration) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        let accepted = match policy {
            Overflow::DropOldest => {
                let dropped = self.ring.force_push(out);
                if dropped > 0 {
                    self.finished(dropped);
                    COUNTERS.add(Counter::DroppedOverflow, dropped as u64);
                }
                true
            }
            Overflow::DropNewest => self.ring.push(out).is_ok(),
            Overflow::Block => self.push_blocking(out, timeout),
        };
        if !accepted {
            self.finished(1);
            bump(Counter::DroppedOverflow);
        }
        COUNTERS.raise_to(Counter::QueueHighWater, self.ring.len() as u64);
        self.wake();
    }

    fn push_blocking(&self, mut out: Outgoing, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ring.push(out) {
                Ok(()) => return true,
                Err(back) => out = back,
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wake();
            let mut g = self.space.0.lock();
            self.space_waiters.fetch_add(1, Ordering::SeqCst);
            if self.ring.is_full() {
                self.space
                    .1
                    .wait_for(&mut g, (deadline - now).min(BLOCK_SLICE));
            }
            self.space_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// `n` events, or half the ring if it is smaller: a queue of 16 (the
    /// least event_queue_size) must not wait for 128.
    fn at_most_half(&self, n: usize) -> usize {
        n.min(self.ring.capacity() / 2).max(1)
    }

    fn wake(&self) {
        let wake = match self.state.load(Ordering::SeqCst) {
            ASLEEP => true,
            NAPPING => self.ring.len() >= self.at_most_half(WAKE_BACKLOG),
            _ => false,
        };
        if wake {
            self.rouse();
        }
    }

    /// Unpark the sender if it is parked, and only then: a token left while
    /// it was sending would end its next nap at once with nothing to take.
    fn rouse(&self) {
        if self.state.swap(AWAKE, Ordering::SeqCst) != AWAKE {
            if let Some(t) = self.sender.get() {
                t.unpark();
            }
        }
    }

    /// Events accepted and not yet sent or counted.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Wait until every event accepted so far is sent or counted, or the
    /// deadline passes; returns how many are still outstanding. Polls with
    /// short sleeps, so it also works from exit handlers.
    pub fn wait_empty(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.outstanding();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            self.rouse();
            thread::sleep(Duration::from_millis(1));
        }
    }

    // ---- the sender's side

    /// Called by the sender thread before anything else.
    pub fn register_sender(&self) {
        let _ = self.sender.set(thread::current());
    }

    /// Queue an event another process left in its spool, if less than half
    /// of the queue is in use: this process's own events keep the rest.
    /// Handed back otherwise, uncounted: it stays where it was.
    pub fn offer(&self, out: Outgoing) -> Result<(), Outgoing> {
        if self.ring.len() >= self.ring.capacity() / 2 {
            return Err(out);
        }
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        self.ring.push(out).inspect_err(|_| self.finished(1))
    }

    pub fn pop(&self) -> Option<Outgoing> {
        self.ring.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// `n` events left our hands, sent or counted.
    pub fn finished(&self, n: usize) {
        self.outstanding.fetch_sub(n, Ordering::AcqRel);
    }

    /// Wake blocked callers once there is room enough for them.
    pub fn wake_space_waiters(&self) {
        if self.space_waiters.load(Ordering::SeqCst) > 0
            && self.ring.capacity() - self.ring.len() >= self.at_most_half(ROOM_TO_WAKE)
        {
            let _g = self.space.0.lock();
            self.space.1.notify_all();
        }
    }

    /// Park for up to `wait` as `state` (`NAPPING` or `ASLEEP`), unless an
    /// event is already there (see the module's argument).
    pub fn park(&self, state: u8, wait: Duration) {
        self.state.store(state, Ordering::SeqCst);
        if self.ring.is_empty() {
            thread::park_timeout(wait);
        }
        self.state.store(AWAKE, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender that is sending is left without a wake-up token; a parked
    /// one is woken and marked awake.
    #[test]
    fn only_a_parked_sender_is_roused() {
        let q = Queue::new(4);
        q.register_sender();
        q.rouse();
        let t = Instant::now();
        thread::park_timeout(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(50));
        q.state.store(NAPPING, Ordering::SeqCst);
        q.rouse();
        assert_eq!(q.state.load(Ordering::SeqCst), AWAKE);
        let t = Instant::now();
        thread::park_timeout(Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
