//! Emptied event bodies kept for reuse, so that building an event allocates
//! nothing in the steady state. Two pools: bodies of freed events, taken by
//! new events on the callers' side (the one just freed is warm in this
//! core's cache), and bodies of sent events, left to the events that hand
//! theirs to the queue. One pool for both made new events take bodies last
//! written by the sender's core.

use crate::body::Body;
use crate::process_local::ProcessLocal;
use crossbeam_queue::ArrayQueue;

/// Bodies each pool keeps: enough for a burst of a few batches.
pub(crate) const BODIES_KEPT: usize = 256;
/// Bodies or datagram buffers grown beyond this are freed rather than
/// kept: room for a typical event of the `all` profile (jmapEmail, body
/// structure and a small message's content), so that a burst of large
/// events does not leave the pools holding megabytes for the rest of the
/// process's life.
pub(crate) const KEEP_MAX_BYTES: usize = 16 * 1024;

/// Boxed, so that taking and keeping a body moves a pointer; each pool is
/// allocated whole, so that keeping a body never calls malloc.
pub struct Pools {
    freed: ArrayQueue<Box<Body>>,
    sent: ArrayQueue<Box<Body>>,
}

/// The process's pools, made on first use.
static POOLS: ProcessLocal<Pools> = ProcessLocal::new();

fn pools() -> &'static Pools {
    POOLS.get_or_init(|| Pools::new(BODIES_KEPT))
}

/// In a forked child: the parent's pools stay the parent's.
pub fn forget_in_child() {
    POOLS.forget();
}

/// An empty body for a new event: one a freed event left, when kept.
pub fn take_body() -> Box<Body> {
    pools().take_body()
}

/// Keep a freed event's body, emptied, for the next event.
pub fn give_body(body: Box<Body>) {
    pools().give_body(body);
}

/// Take an event's body to travel in the queue, leaving it an emptied one.
pub fn boxed(body: &mut Box<Body>) -> Box<Body> {
    pools().boxed(body)
}

/// Keep a sent event's body for the events that hand theirs to the queue.
pub fn recycle(body: Box<Body>) {
    pools().recycle(body);
}

/// Empty a body for reuse; false if it grew too large to keep.
fn emptied(body: &mut Body) -> bool {
    body.clear();
    body.capacity_bytes() <= KEEP_MAX_BYTES
}

fn sized_like_recent() -> Box<Body> {
    Box::new(Body::sized_like_recent())
}

impl Pools {
    fn new(kept: usize) -> Pools {
        Pools {
            freed: ArrayQueue::new(kept),
            sent: ArrayQueue::new(kept),
        }
    }

    fn take_body(&self) -> Box<Body> {
        self.freed.pop().unwrap_or_else(sized_like_recent)
    }

    fn give_body(&self, mut body: Box<Body>) {
        if emptied(&mut body) {
            let _ = self.freed.push(body);
        }
    }

    /// The event is left with a body the sender emptied, which it gives
    /// back when it is freed: in the steady state nothing is allocated.
    /// When none has come back (a burst, the sender behind), the new one is
    /// sized like recent events, since it becomes the next event's body:
    /// left empty, it would grow step by step as that event is filled.
    fn boxed(&self, body: &mut Box<Body>) -> Box<Body> {
        let emptied = self.sent.pop().unwrap_or_else(sized_like_recent);
        std::mem::replace(body, emptied)
    }

    fn recycle(&self, mut body: Box<Body>) {
        if emptied(&mut body) {
            let _ = self.sent.push(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only bodies of a typical size are kept; the UIDs a body grew to
    /// hold count as much as its text.
    #[test]
    fn only_typical_bodies_are_kept() {
        let mut b = Body::default();
        b.text.reserve(KEEP_MAX_BYTES / 2);
        assert!(emptied(&mut b));
        b.text.reserve(KEEP_MAX_BYTES + 1);
        assert!(!emptied(&mut b));
        let mut b = Body::default();
        for uid in (1..10_000).step_by(2) {
            b.uids.add(uid);
        }
        assert!(!emptied(&mut b));
    }

    /// New events take the body a freed event left (last written on the
    /// callers' side); an event handing its own to the queue takes one the
    /// sender emptied; with none kept, a new one sized like recent events.
    #[test]
    fn bodies_go_round_through_their_pools() {
        let at = |b: &Body| b as *const Body;
        let p = Pools::new(4);
        let sent = Box::<Body>::default();
        let s = at(&sent);
        p.recycle(sent);
        let freed = Box::<Body>::default();
        let f = at(&freed);
        p.give_body(freed);
        let mut event = p.take_body();
        assert_eq!(at(&event), f);
        let travelling = p.boxed(&mut event);
        assert_eq!((at(&travelling), at(&event)), (f, s));
        let fresh = p.take_body();
        assert!(fresh.text.capacity() >= 256);
        let mut other = Box::<Body>::default();
        p.boxed(&mut other);
        assert!(other.text.capacity() >= 256);
    }
}
