//! The delivery queue: a bounded lock-free queue (`ring`)
//! between the threads calling `notify` and one sender thread per process.
//!
//! The caller's side is a push and, only when the sender sleeps, one futex
//! wake. The sender, started on the first event with every signal blocked,
//! drains the ring into a small pending list, sends datagrams in `sendmmsg`
//! batches on one socket, backs off on EAGAIN/ENOBUFS, keeps events while
//! the receiver is absent until `event_queue_max_age`, and counts every
//! event it gives up on. Memory is bounded by the ring plus the pending list.

use crate::config::{Config, Overflow};
use crate::counters::{bump, Counter, COUNTERS};
use crate::deliver::{classify, drop_send_error, Attempt, Item, Wire};
use crate::event::Body;
use crate::log;
use crate::notify::clock_ms;
use crate::ring::Ring;
use crate::transport::datagram::BATCH_MAX;
use crossbeam_queue::ArrayQueue;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Datagrams per sendmmsg call.
const BATCH: usize = BATCH_MAX;
/// Events the sender holds outside the ring while retrying.
const PENDING_MAX: usize = 1024;
/// Sleep of an idle sender between housekeeping rounds (drop reports).
const IDLE_WAKE: Duration = Duration::from_secs(10);
/// After sending, the sender naps this long and looks again instead of
/// waiting to be woken: while events keep coming (an lmtpd delivering one
/// message per millisecond, a burst of flag changes) the callers make no
/// system call and the sender wakes once per nap, not once per command, for
/// at most this much added latency. Each wake-up costs the sender about
/// 30 µs of cold caches, whatever it then sends: with the batch policy of
/// `be_batch_thread`, a real lmtpd's event overhead per delivery is 31 µs
/// with 10 ms naps, 37 µs with 3 ms and 65 µs with 1 ms, the sender's share
/// 14, 15 and 28 µs (2-core VM, `benches/floor.c`'s modes, 2026-11-29).
const NAP: Duration = Duration::from_millis(10);
/// A napping sender is woken anyway once this many events wait. The
/// caller that finds this backlog pays the futex wake-up (3-10 µs); at two
/// batches that is below one event in a hundred of a stream, where one
/// batch put it on the p99 of the hot path (A/B, MessageNew with jmapEmail
/// in runs of 64: p99 3.3-11.8 -> 1.9-5.2 µs). The bodies kept for reuse
/// still cover the backlog.
const WAKE_BACKLOG: usize = 2 * BATCH;
const _: () = assert!(WAKE_BACKLOG < BODIES_KEPT);
/// Slots of the ring allocated with it (8 KB): what a napping sender lets
/// pile up before a caller wakes it, twice, so that a stream of events
/// allocates nothing to queue them.
const RING_FRONT: usize = 2 * WAKE_BACKLOG;
/// Callers blocked on a full queue (`event_queue_overflow: block`) are
/// woken once this much room is free. Woken for every few slots the
/// sender freed, a caller that outpaces it spent its time in futex calls
/// and context switches on both sides: in the throughput bench the
/// producer's CPU per event fell from 1.0-1.2 to 0.7 µs and the sender's
/// from 2.7-2.9 to 2.2-2.3 (52-55 -> 61-65 % of the limit, A/B); at 512
/// and beyond the caller idled instead (47-59 %).
const ROOM_TO_WAKE: usize = 4 * BATCH;
/// How often a sender held back by its receiver looks for events past
/// their max age (whole seconds), on the clock their ages count on (one
/// read for both): walking up to PENDING_MAX events after every wait for a
/// busy listener was 4 % of the sender's time in the throughput bench.
const EXPIRY_EVERY_MS: u32 = 10;
/// Emptied event bodies kept for reuse: enough for a burst of a few
/// batches, so that building an event allocates nothing in steady state.
const BODIES_KEPT: usize = 256;
/// Bodies or datagram buffers grown beyond this are freed rather than
/// kept: room for a typical event of the `all` profile (jmapEmail, body
/// structure and a small message's content), while the pools together hold
/// at most 9 MB. At 64 KB, 300 events with 30 KB of content each, queued
/// while the listener was away, left the pools holding 10 MB for the rest
/// of the process's life (`test_delivery`).
const KEEP_MAX_BYTES: usize = 16 * 1024;

/// What the sender is doing, for callers deciding whether to wake it.
const AWAKE: u8 = 0;
const NAPPING: u8 = 1;
const ASLEEP: u8 = 2;

pub struct Engine {
    ring: Ring<Item>,
    /// Emptied bodies of freed events, for new events: on the callers'
    /// side, so a new event mostly gets the one just freed, warm in this
    /// core's cache. Boxed, so that taking and keeping one moves a pointer:
    /// kept by value, each 256-byte body was copied in and out of the
    /// pool's slots, and the pool allocated an 8 KB block every 31 events.
    /// The pools are allocated whole (4 KB each): as queues of blocks, a
    /// caller allocated a block every 31 events with `calloc`, which glibc
    /// serves from the arena under its lock and never from the thread's
    /// cache, there to wait while the sender released events' jmapEmail
    /// objects (hot path, MessageNew with a new jmapEmail per event: half
    /// of the caller's samples in malloc). Hot path p50 15-25 ns lower
    /// (FlagsSet 510-524 ns against 527-536, builds alternated).
    bodies: ArrayQueue<Box<Body>>,
    /// Emptied bodies of sent events, left to the events that hand theirs
    /// to the ring. One pool for both made new events take bodies last
    /// written by the sender's core (throughput bench: 64 % of the limit
    /// against 66-67 %).
    boxes: ArrayQueue<Box<Body>>,
    /// Events accepted and neither sent nor dropped yet.
    outstanding: AtomicUsize,
    state: AtomicU8,
    started: AtomicBool,
    sender: OnceLock<Thread>,
    space: (Mutex<()>, Condvar),
    space_waiters: AtomicUsize,
}

impl Engine {
    fn new(queue_size: usize, bodies_kept: usize) -> Engine {
        Engine {
            ring: Ring::new(queue_size, RING_FRONT),
            bodies: ArrayQueue::new(bodies_kept),
            boxes: ArrayQueue::new(bodies_kept),
            outstanding: AtomicUsize::new(0),
            state: AtomicU8::new(AWAKE),
            started: AtomicBool::new(false),
            sender: OnceLock::new(),
            space: (Mutex::new(()), Condvar::new()),
            space_waiters: AtomicUsize::new(0),
        }
    }
}

/// The process's engine, made on the first queued event. A forked child
/// forgets its parent's (without touching it: a thread of the parent may
/// have been halfway through a push) and makes its own on demand.
static ENGINE: AtomicPtr<Engine> = AtomicPtr::new(ptr::null_mut());

fn engine(cfg: &Config) -> &'static Engine {
    let e = ENGINE.load(Ordering::Acquire);
    if !e.is_null() {
        // SAFETY: engines are leaked, never freed.
        return unsafe { &*e };
    }
    crate::process::install_hooks();
    let fresh = Box::into_raw(Box::new(Engine::new(cfg.queue_size, BODIES_KEPT)));
    match ENGINE.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just published; leaked for the life of the process.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` was never shared; `winner` is leaked forever.
            drop(unsafe { Box::from_raw(fresh) });
            unsafe { &*winner }
        }
    }
}

fn current() -> Option<&'static Engine> {
    // SAFETY: engines are leaked, never freed.
    unsafe { ENGINE.load(Ordering::Acquire).as_ref() }
}

/// An empty body for a new event: one a freed event left, when kept.
pub fn take_body() -> Box<Body> {
    current().map_or_else(sized_like_recent, Engine::take_body)
}

/// Empty a body for reuse; false if it grew too large to keep.
fn emptied(body: &mut Body) -> bool {
    body.clear();
    body.capacity_bytes() <= KEEP_MAX_BYTES
}

/// Keep a freed event's body, emptied, for the next event.
pub fn give_body(body: Box<Body>) {
    if let Some(e) = current() {
        e.give_body(body);
    }
}

/// Take an event's body to travel in the ring, leaving it an emptied one.
pub fn boxed(body: &mut Box<Body>) -> Box<Body> {
    match current() {
        Some(e) => e.boxed(body),
        None => std::mem::replace(body, sized_like_recent()),
    }
}

fn sized_like_recent() -> Box<Body> {
    Box::new(Body::sized_like_recent())
}

impl Engine {
    fn take_body(&self) -> Box<Body> {
        self.bodies.pop().unwrap_or_else(sized_like_recent)
    }

    fn give_body(&self, mut body: Box<Body>) {
        if emptied(&mut body) {
            let _ = self.bodies.push(body);
        }
    }

    /// The event is left with a body the sender emptied, which it gives
    /// back when it is freed: in the steady state nothing is allocated.
    /// When none has come back (a burst, the sender behind), the new one
    /// is sized like recent events, since it becomes the next event's
    /// body: left empty, it grew step by step as that event was filled
    /// (burst of 20,000 FlagsSet: p50 0.95 -> 0.80 µs, p99 3.3 -> 2.3).
    fn boxed(&self, body: &mut Box<Body>) -> Box<Body> {
        let emptied = self.boxes.pop().unwrap_or_else(sized_like_recent);
        std::mem::replace(body, emptied)
    }
}

/// In a forked child: the parent's queued events stay the parent's to send.
pub fn forget_in_child() {
    ENGINE.store(ptr::null_mut(), Ordering::Release);
}

/// Queue one item under the overflow policy; never blocks unless the
/// policy is `block`, and then at most `event_queue_block_timeout`.
pub fn push(item: Item) {
    let e = engine(item.cfg());
    let (policy, block) = (item.cfg().overflow, item.cfg().block_timeout);
    e.outstanding.fetch_add(1, Ordering::AcqRel);
    let accepted = match policy {
        Overflow::DropOldest => {
            let dropped = e.ring.force_push(item);
            if dropped > 0 {
                e.finished(dropped);
                COUNTERS.add(Counter::DroppedOverflow, dropped as u64);
            }
            true
        }
        Overflow::DropNewest => e.ring.push(item).is_ok(),
        Overflow::Block => e.push_blocking(item, block),
    };
    if !accepted {
        e.finished(1);
        bump(Counter::DroppedOverflow);
    }
    COUNTERS.raise_to(Counter::QueueHighWater, e.ring.len() as u64);
    e.wake();
    log::pass_relayed();
}

impl Engine {
    fn push_blocking(&'static self, mut item: Item, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ring.push(item) {
                Ok(()) => return true,
                Err(back) => item = back,
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wake();
            let mut g = self.space.0.lock();
            self.space_waiters.fetch_add(1, Ordering::AcqRel);
            if self.ring.is_full() {
                // Short slices: a pop between the check and the wait must
                // not cost the whole timeout.
                self.space
                    .1
                    .wait_for(&mut g, (deadline - now).min(Duration::from_millis(5)));
            }
            self.space_waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// `n` events, or half the ring if it is smaller: a queue of 16
    /// (the least event_queue_size) must not wait for 128.
    fn at_most_half(&self, n: usize) -> usize {
        n.min(self.ring.capacity() / 2).max(1)
    }

    fn room_to_wake(&self) -> bool {
        self.ring.capacity() - self.ring.len() >= self.at_most_half(ROOM_TO_WAKE)
    }

    fn finished(&self, n: usize) {
        self.outstanding.fetch_sub(n, Ordering::AcqRel);
    }

    fn wake(&'static self) {
        if !self.started.load(Ordering::Acquire) && !self.started.swap(true, Ordering::AcqRel) {
            self.start();
        }
        let wake = match self.state.load(Ordering::SeqCst) {
            ASLEEP => true,
            NAPPING => self.ring.len() >= self.at_most_half(WAKE_BACKLOG),
            _ => false,
        };
        if wake {
            self.rouse();
        }
    }

    /// Unpark the sender if it is parked, and only then: a wake-up token
    /// left while it was sending ended its next nap at once with nothing to
    /// take, so it went to sleep and the next event had to wake it (a
    /// futex call, 17-19 µs on the hot path's first event after a flush).
    fn rouse(&self) {
        if self.state.swap(AWAKE, Ordering::SeqCst) != AWAKE {
            if let Some(t) = self.sender.get() {
                t.unpark();
            }
        }
    }

    fn start(&'static self) {
        // The sender inherits this mask: Cyrus's signals stay with Cyrus's threads.
        // SAFETY: sigset operations on local, initialised sets.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        let spawned = thread::Builder::new()
            .name("mboxevent-send".into())
            .spawn(move || self.run());
        // SAFETY: restores the caller's own mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
        match spawned {
            Ok(h) => {
                let _ = self.sender.set(h.thread().clone());
            }
            Err(err) => {
                log::error(&format!("mboxevent: cannot start the sender thread: {err}"));
                self.started.store(false, Ordering::Release);
            }
        }
    }

    fn run(&self) {
        be_batch_thread();
        own_file_table();
        log::relay_this_thread();
        let mut wire = Wire::default();
        let mut pending: VecDeque<(Item, Option<Vec<u8>>)> = VecDeque::new();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut backoff = Duration::ZERO;
        let mut last_expiry = clock_ms();
        // Events are coming in a stream: nap after sending, to take the
        // next ones without being woken for each.
        let mut stream = false;
        // When the sender last ran out of events; None while it has some.
        let mut idle_since: Option<Instant> = None;
        loop {
            while pending.len() < PENDING_MAX {
                match self.ring.pop() {
                    Some(i) => pending.push_back((i, None)),
                    None => break,
                }
            }
            if self.space_waiters.load(Ordering::Acquire) > 0 && self.room_to_wake() {
                let _g = self.space.0.lock();
                self.space.1.notify_all();
            }
            // Only a receiver that is absent or busy lets events grow old.
            if !backoff.is_zero() {
                let now = clock_ms();
                if now.wrapping_sub(last_expiry) >= EXPIRY_EVERY_MS {
                    self.expire(&mut pending, now);
                    last_expiry = now;
                }
            }
            if pending.is_empty() {
                log::report_drops(false);
                let (state, wait) = if stream {
                    (NAPPING, NAP)
                } else {
                    (ASLEEP, IDLE_WAKE)
                };
                let idle = *idle_since.get_or_insert_with(Instant::now);
                self.state.store(state, Ordering::SeqCst);
                if self.ring.is_empty() {
                    thread::park_timeout(wait);
                }
                self.state.store(AWAKE, Ordering::SeqCst);
                stream = !self.ring.is_empty() && streams(state == NAPPING, idle.elapsed());
                continue;
            }
            idle_since = None;
            match self.send_front(&mut wire, &mut pending, &mut spare) {
                Attempt::Done => backoff = Duration::ZERO,
                retry => {
                    bump(Counter::Retried);
                    let (first, max) = match retry {
                        Attempt::Busy => (Duration::from_micros(200), Duration::from_millis(20)),
                        _ => (Duration::from_millis(10), Duration::from_secs(1)),
                    };
                    backoff = (backoff * 2).clamp(first, max);
                    // A busy listener wakes us as soon as it has read.
                    if retry == Attempt::Busy {
                        wire.wait_writable(backoff);
                    } else {
                        thread::sleep(backoff);
                    }
                }
            }
            log::report_drops(false);
        }
    }

    /// Drop events that waited longer than their max age.
    fn expire(&self, pending: &mut VecDeque<(Item, Option<Vec<u8>>)>, now_ms: u32) {
        let before = pending.len();
        pending.retain(|(i, _)| {
            let age = Duration::from_millis(now_ms.wrapping_sub(i.out.made_ms).into());
            age <= i.cfg().max_age
        });
        let gone = before - pending.len();
        if gone > 0 {
            COUNTERS.add(Counter::DroppedExpired, gone as u64);
            self.finished(gone);
        }
    }

    /// Send what is at the front: one dlist exchange, or a batch of
    /// datagrams for the same path.
    fn send_front(
        &self,
        wire: &mut Wire,
        pending: &mut VecDeque<(Item, Option<Vec<u8>>)>,
        spare: &mut Vec<Vec<u8>>,
    ) -> Attempt {
        let (path, is_dlist) = pending[0].0.target();
        let first_cfg = Arc::clone(pending[0].0.cfg());
        let same_target =
            |i: &Item| Arc::ptr_eq(i.cfg(), &first_cfg) || i.target() == (path.clone(), false);
        if is_dlist {
            let r = wire.send_dlist(&pending[0].0, &path);
            if r == Attempt::Done {
                pending.pop_front();
                self.finished(1);
            }
            return r;
        }
        // Frame once; an event that cannot fit is dropped here (counted).
        let mut n = 0;
        while n < pending.len() && n < BATCH && same_target(&pending[n].0) {
            // Two steps ahead: the next body's buffers (its header came
            // in the step before), the header of the one after.
            if let Some((next, _)) = pending.get(n + 1) {
                next.out.body.prefetch();
            }
            if let Some((after, _)) = pending.get(n + 2) {
                after.out.body.prefetch_header();
            }
            if pending[n].1.is_none() {
                match wire.frame(&pending[n].0, spare.pop().unwrap_or_default()) {
                    Some(d) => pending[n].1 = Some(d),
                    None => {
                        pending.remove(n);
                        self.finished(1);
                        continue;
                    }
                }
            }
            n += 1;
        }
        if n == 0 {
            return Attempt::Done;
        }
        // On the stack, as send_batch's headers, for the same reason.
        let mut datagrams: [&[u8]; BATCH] = [&[]; BATCH];
        let mut k = 0;
        for d in pending.iter().take(n).filter_map(|(_, d)| d.as_deref()) {
            datagrams[k] = d;
            k += 1;
        }
        // Non-blocking, then a poll when the listener is full. Blocking in
        // sendmmsg instead (woken for every slot the listener frees) saved
        // the sender CPU in the throughput bench (3.1 -> 2.4 us per event)
        // but ran it in many small slices beside the caller: the hot path's
        // MessageNew with jmapEmail went from 0.8 to 1.1 us at p50 (A/B).
        let (sent, err) = match wire.socket() {
            Ok((s, _)) => s.send_batch(&path, &datagrams[..k], true),
            Err(e) => (0, Some(e)),
        };
        for (item, datagram) in pending.drain(..sent) {
            self.recycle(item.out.body, datagram, spare);
        }
        self.finished(sent);
        COUNTERS.add(Counter::Sent, sent as u64);
        match err {
            None => Attempt::Done,
            Some(e) => match classify(&e) {
                Some(retry) if sent == 0 => retry,
                Some(_) => Attempt::Done,
                None => {
                    drop_send_error(&e);
                    pending.pop_front();
                    self.finished(1);
                    Attempt::Done
                }
            },
        }
    }

    /// Keep a sent event's buffers for reuse, unless grown large.
    fn recycle(&self, mut body: Box<Body>, datagram: Option<Vec<u8>>, spare: &mut Vec<Vec<u8>>) {
        if emptied(&mut body) {
            let _ = self.boxes.push(body);
        }
        if let Some(d) = datagram.filter(|d| d.capacity() <= KEEP_MAX_BYTES) {
            if spare.len() < BATCH {
                spare.push(d);
            }
        }
    }

    /// Wait until everything accepted so far is sent or dropped, or the
    /// deadline passes; returns how many are still outstanding. Polls with
    /// short sleeps so it also works from exit handlers.
    fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.outstanding.load(Ordering::Acquire);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            self.rouse();
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Whether a sender that finds events on waking should nap after sending
/// them: while naps find events, or when these came less than a nap after
/// it ran out of events before (a nap would have caught them). Events
/// further apart are each sent and the sender sleeps again at once: a nap
/// after them was a second wake-up that found nothing and cost as much as
/// the send (a STORE every 30 ms: 85 -> 42 µs of sender CPU per command,
/// benches/lowrate.py). Counted from its last event, not from when it fell
/// asleep after an empty nap: events 10-20 ms apart each had their nap.
fn streams(woken_from_nap: bool, idle_for: Duration) -> bool {
    woken_from_nap || idle_for < NAP
}

/// A woken sender must not preempt the Cyrus thread that woke it, as a
/// normal thread does on the same core: as a batch thread it runs when
/// imapd or lmtpd waits for its client, or on an idle core, and sends the
/// events of a whole command at once. It keeps its fair share of the CPU, so
/// a busy machine does not starve it. Failing to switch costs only speed.
fn be_batch_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the calling thread's own handle and an initialised parameter.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_BATCH, &param) };
}

/// The sender keeps its descriptors in a file table of its own: while a
/// thread shares the process's table, the kernel counts references and takes
/// the file position lock on every read, write, fstat and fcntl of every
/// thread, which it skips for a table with one user. A shared table made
/// imapd's and lmtpd's own calls 35-200 ns slower each (fstat, read, lock;
/// benches/fdtable.c) and an LMTP delivery 16-34 µs slower with the thread
/// idle (benches/threadtax.py; with a table of its own, within the noise of
/// two identical processes). The new table starts empty, so the sender
/// holds none of the process's files (a client connection closed by lmtpd
/// stays closed); 0-2 are /dev/null, so that a stray write to stderr lands
/// nowhere rather than on one of the sender's sockets. Without close_range
/// (Linux before 5.9) the table stays shared: slower, not wrong.
fn own_file_table() {
    // SAFETY: acts on this thread's file table only; the range is all of it.
    if unsafe { libc::close_range(0, u32::MAX, libc::CLOSE_RANGE_UNSHARE as libc::c_int) } == 0 {
        for _ in 0..3 {
            // SAFETY: a NUL-terminated path; the descriptor is this thread's.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Flush with a deadline. What is still queued when it passes is counted
/// and logged (it stays queued and may still go out later).
pub fn flush(timeout: Duration) -> usize {
    let Some(e) = current() else { return 0 };
    let left = e.flush(timeout);
    log::pass_relayed();
    if left > 0 {
        COUNTERS.add(Counter::UnsentAtFlush, left as u64);
        log::error(&format!(
            "mboxevent: {left} events still queued after waiting {} ms to flush",
            timeout.as_millis()
        ));
    }
    log::report_drops(true);
    left
}

/// atexit: give queued events `event_flush_timeout` to leave.
pub fn flush_at_exit() {
    flush(crate::api::config().flush_timeout);
}

/// Events accepted and not yet sent or dropped.
pub fn outstanding() -> usize {
    current().map_or(0, |e| e.outstanding.load(Ordering::Acquire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use crate::notify::Outgoing;

    #[test]
    fn send_errors_are_classified() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        assert_eq!(classify(&e(libc::EAGAIN)), Some(Attempt::Busy));
        assert_eq!(classify(&e(libc::ENOBUFS)), Some(Attempt::Busy));
        assert_eq!(classify(&e(libc::ENOENT)), Some(Attempt::Absent));
        assert_eq!(classify(&e(libc::ECONNREFUSED)), Some(Attempt::Absent));
        assert_eq!(classify(&e(libc::EACCES)), None);
    }

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
    /// callers' side); an event handing its own to the ring takes one the
    /// sender emptied; with none kept, a new one sized like recent events.
    #[test]
    fn bodies_go_round_through_their_pools() {
        let at = |b: &Body| b as *const Body;
        let e = Engine::new(4, 4);
        let sent = Box::<Body>::default();
        let s = at(&sent);
        e.recycle(sent, None, &mut Vec::new());
        let freed = Box::<Body>::default();
        let f = at(&freed);
        e.give_body(freed);
        let mut event = e.take_body();
        assert_eq!(at(&event), f);
        let travelling = e.boxed(&mut event);
        assert_eq!((at(&travelling), at(&event)), (f, s));
        let fresh = e.take_body();
        assert!(fresh.text.capacity() >= 256);
        let mut other = Box::<Body>::default();
        e.boxed(&mut other);
        assert!(other.text.capacity() >= 256);
    }

    #[test]
    fn naps_only_for_events_a_nap_apart() {
        assert!(streams(true, Duration::from_secs(60)));
        assert!(streams(false, NAP / 2));
        assert!(!streams(false, NAP));
        assert!(!streams(false, NAP + NAP / 2));
    }

    /// A sender that is sending is left without a wake-up token; a parked
    /// one is woken and marked awake.
    #[test]
    fn only_a_parked_sender_is_roused() {
        let e = Engine::new(4, 1);
        e.sender.set(thread::current()).unwrap();
        e.rouse();
        let t = Instant::now();
        thread::park_timeout(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(50));
        e.state.store(NAPPING, Ordering::SeqCst);
        e.rouse();
        assert_eq!(e.state.load(Ordering::SeqCst), AWAKE);
        let t = Instant::now();
        thread::park_timeout(Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn expiry_drops_only_old_items() {
        let mut cfg = Config::default();
        cfg.set("event_queue_max_age", "1").unwrap();
        let cfg = Arc::new(cfg);
        let e = Engine::new(4, 1);
        e.outstanding.store(2, Ordering::Relaxed);
        let item = || {
            Item::new(Outgoing::new(
                EventType::MailboxCreate,
                Default::default(),
                Arc::clone(&cfg),
            ))
        };
        let mut old = item();
        old.out.made_ms = old.out.made_ms.wrapping_sub(5000);
        let mut pending = VecDeque::from([(old, None), (item(), None)]);
        e.expire(&mut pending, clock_ms());
        assert_eq!(pending.len(), 1);
        assert_eq!(e.outstanding.load(Ordering::Relaxed), 1);
    }
}
