//! The sender thread, one per process, started on the first queued event
//! with every signal blocked. It drains the queue into a short pending
//! list, renders and frames each event, sends datagrams in `sendmmsg`
//! batches on one socket, backs off while the receiver is busy or absent,
//! keeps events for an absent receiver until `event_queue_max_age`, and
//! counts every event it gives up on. Memory is bounded by the queue plus
//! the pending list.

use crate::adopt::Adopter;
use crate::counters::{bump, Counter, COUNTERS};
use crate::log;
use crate::outgoing::{clock_ms, Outgoing};
use crate::pool::{self, BODIES_KEPT, KEEP_MAX_BYTES};
use crate::queue::{Queue, ASLEEP, NAPPING, WAKE_BACKLOG};
use crate::spool;
use crate::transport::datagram::BATCH_MAX;
use crate::wire::{classify, drop_send_error, Attempt, Wire};
use std::collections::VecDeque;
use std::ptr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Datagrams per sendmmsg call.
const BATCH: usize = BATCH_MAX;
/// Events the sender holds outside the queue while retrying.
const PENDING_MAX: usize = 1024;
/// Sleep of an idle sender between housekeeping rounds (drop reports).
const IDLE_WAKE: Duration = Duration::from_secs(10);
/// After sending, the sender naps this long and looks again instead of
/// waiting to be woken: while events keep coming the callers make no system
/// call and the sender wakes once per nap, not once per command, for at
/// most this much added latency.
const NAP: Duration = Duration::from_millis(10);
/// How often a sender held back by its receiver looks for events past their
/// max age: walking the pending list after every wait was too costly.
const EXPIRY_EVERY_MS: u32 = 10;
// The bodies kept for reuse cover what piles up while the sender naps.
const _: () = assert!(WAKE_BACKLOG < BODIES_KEPT);

/// An event on its way and, once framed, its datagram.
type Pending = VecDeque<(Outgoing, Option<Vec<u8>>)>;

/// Start the sender of `queue`; on failure it is logged and the next
/// caller tries again.
pub fn start(queue: &'static Queue) {
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
        .spawn(move || run(queue));
    // SAFETY: restores the caller's own mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    if let Err(err) = spawned {
        log::error(&format!("mboxevent: cannot start the sender thread: {err}"));
        queue.start_failed();
    }
}

fn run(queue: &Queue) {
    queue.register_sender();
    be_batch_thread();
    own_file_table();
    log::relay_this_thread();
    let mut wire = Wire::default();
    let mut pending = Pending::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut backoff = Duration::ZERO;
    let mut last_expiry = clock_ms();
    // Events are coming in a stream: nap after sending, to take the next
    // ones without being woken for each.
    let mut stream = false;
    // When the sender last ran out of events; None while it has some.
    let mut idle_since: Option<Instant> = None;
    let mut adopter = Adopter::default();
    loop {
        adopter.run(queue);
        while pending.len() < PENDING_MAX {
            match queue.pop() {
                Some(mut o) => {
                    spool::complete(&mut o);
                    pending.push_back((o, None));
                }
                None => break,
            }
        }
        queue.wake_space_waiters();
        // Only a receiver that is absent or busy lets events grow old.
        if !backoff.is_zero() {
            let now = clock_ms();
            if now.wrapping_sub(last_expiry) >= EXPIRY_EVERY_MS {
                expire(queue, &mut pending, now);
                last_expiry = now;
            }
        }
        spool::advance();
        if pending.is_empty() {
            log::report_drops(false);
            let (state, wait) = if stream {
                (NAPPING, NAP)
            } else {
                (ASLEEP, IDLE_WAKE)
            };
            let idle = *idle_since.get_or_insert_with(Instant::now);
            queue.park(state, wait);
            stream = !queue.is_empty() && streams(state == NAPPING, idle.elapsed());
            continue;
        }
        idle_since = None;
        match send_front(queue, &mut wire, &mut pending, &mut spare) {
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

/// Drop events that waited longer than their max age (counted).
fn expire(queue: &Queue, pending: &mut Pending, now_ms: u32) {
    let before = pending.len();
    pending.retain(|(o, _)| {
        let age = Duration::from_millis(now_ms.wrapping_sub(o.made_ms).into());
        age <= o.cfg.max_age
    });
    let gone = before - pending.len();
    if gone > 0 {
        COUNTERS.add(Counter::DroppedExpired, gone as u64);
        queue.finished(gone);
    }
}

/// Send what is at the front: one dlist exchange, or a batch of datagrams
/// for the same path.
fn send_front(
    queue: &Queue,
    wire: &mut Wire,
    pending: &mut Pending,
    spare: &mut Vec<Vec<u8>>,
) -> Attempt {
    let (path, is_dlist) = pending[0].0.target();
    let first_cfg = Arc::clone(&pending[0].0.cfg);
    let same_target =
        |o: &Outgoing| Arc::ptr_eq(&o.cfg, &first_cfg) || o.target() == (path.clone(), false);
    if is_dlist {
        let r = wire.send_dlist(&pending[0].0, &path);
        if r == Attempt::Done {
            pending.pop_front();
            queue.finished(1);
        }
        return r;
    }
    // Frame once; an event that cannot fit is dropped here (counted).
    let mut n = 0;
    while n < pending.len() && n < BATCH && same_target(&pending[n].0) {
        // Two steps ahead: the next body's buffers (its header came in the
        // step before), the header of the one after.
        if let Some((next, _)) = pending.get(n + 1) {
            next.body.prefetch();
        }
        if let Some((after, _)) = pending.get(n + 2) {
            after.body.prefetch_header();
        }
        if pending[n].1.is_none() {
            match wire.frame(&pending[n].0, spare.pop().unwrap_or_default()) {
                Some(d) => pending[n].1 = Some(d),
                None => {
                    pending.remove(n);
                    queue.finished(1);
                    continue;
                }
            }
        }
        n += 1;
    }
    if n == 0 {
        return Attempt::Done;
    }
    // On the stack, as send_batch's headers: no allocation per batch.
    let mut datagrams: [&[u8]; BATCH] = [&[]; BATCH];
    let mut k = 0;
    for d in pending.iter().take(n).filter_map(|(_, d)| d.as_deref()) {
        datagrams[k] = d;
        k += 1;
    }
    // Non-blocking, then a poll when the listener is full: blocking in
    // sendmmsg ran the sender in many small slices beside the caller.
    let (sent, err) = match wire.socket() {
        Ok((s, _)) => s.send_batch(&path, &datagrams[..k], true),
        Err(e) => (0, Some(e)),
    };
    for (out, datagram) in pending.drain(..sent) {
        recycle(out, datagram, spare);
    }
    queue.finished(sent);
    COUNTERS.add(Counter::Sent, sent as u64);
    match err {
        None => Attempt::Done,
        Some(e) => match classify(&e) {
            Some(retry) if sent == 0 => retry,
            Some(_) => Attempt::Done,
            None => {
                drop_send_error(&e);
                pending.pop_front();
                queue.finished(1);
                Attempt::Done
            }
        },
    }
}

/// Keep a sent event's buffers for reuse, unless grown large.
fn recycle(out: Outgoing, datagram: Option<Vec<u8>>, spare: &mut Vec<Vec<u8>>) {
    pool::recycle(out.body);
    if let Some(d) = datagram.filter(|d| d.capacity() <= KEEP_MAX_BYTES) {
        if spare.len() < BATCH {
            spare.push(d);
        }
    }
}

/// Whether a sender that finds events on waking should nap after sending
/// them: while naps find events, or when these came less than a nap after
/// it last ran out of events (a nap would have caught them). Events further
/// apart are each sent and the sender sleeps again at once, since a nap
/// after them is a second wake-up that finds nothing.
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
/// thread, which it skips for a table with one user. The new table starts
/// empty, so the sender holds none of the process's files (a client
/// connection closed by lmtpd stays closed); 0-2 are /dev/null, so that a
/// stray write to stderr lands nowhere rather than on one of the sender's
/// sockets. Without close_range (Linux before 5.9) the table stays shared:
/// slower, not wrong.
fn own_file_table() {
    // SAFETY: acts on this thread's file table only; the range is all of it.
    if unsafe { libc::close_range(0, u32::MAX, libc::CLOSE_RANGE_UNSHARE as libc::c_int) } == 0 {
        for _ in 0..3 {
            // SAFETY: a NUL-terminated path; the descriptor is this thread's.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::EventType;
    use crate::config::Config;

    #[test]
    fn naps_only_for_events_a_nap_apart() {
        assert!(streams(true, Duration::from_secs(60)));
        assert!(streams(false, NAP / 2));
        assert!(!streams(false, NAP));
        assert!(!streams(false, NAP + NAP / 2));
    }

    #[test]
    fn expiry_drops_only_old_items() {
        let mut cfg = Config::default();
        cfg.set("event_queue_max_age", "1").unwrap();
        let cfg = Arc::new(cfg);
        let q = Queue::new(4);
        let out = || {
            Outgoing::new(
                EventType::MailboxCreate,
                Default::default(),
                Arc::clone(&cfg),
            )
        };
        for _ in 0..2 {
            q.push(out(), cfg.overflow, cfg.block_timeout);
        }
        let mut pending: Pending = std::iter::from_fn(|| q.pop()).map(|o| (o, None)).collect();
        pending[0].0.made_ms = pending[0].0.made_ms.wrapping_sub(5000);
        expire(&q, &mut pending, clock_ms());
        assert_eq!(pending.len(), 1);
        assert_eq!(q.outstanding(), 1);
    }
}
