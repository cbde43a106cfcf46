//! Where each notification goes: into the process's queue, drained by its
//! sender thread (the default); with `event_delivery: sync`, straight onto
//! the socket on the caller's thread as stock does; with `relay`, into the
//! process's spool ring for cmev-relay, or into the queue when no relay
//! reads the ring. Also the flush that waits for the queue to empty.

use crate::config::Delivery;
use crate::counters::{bump, Counter, COUNTERS};
use crate::log;
use crate::outgoing::Outgoing;
use crate::pool;
use crate::process_local::ProcessLocal;
use crate::queue::Queue;
use crate::sender;
use crate::spool;
use crate::wire::{drop_send_error, Attempt, Wire};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Hand one notification to delivery.
pub(crate) fn submit(mut out: Outgoing) {
    bump(Counter::Enqueued);
    match out.cfg.delivery {
        Delivery::Sync => {
            send_sync(out);
            log::report_drops(false);
        }
        Delivery::Queued => {
            spool::keep(&mut out);
            push(out);
        }
        Delivery::Relay => {
            if spool::leave(&mut out) {
                pool::recycle(out.body);
            } else {
                push(out);
            }
        }
    }
}

/// The process's queue, made on the first queued event. A forked child
/// forgets its parent's and makes its own on demand: the parent's queued
/// events stay the parent's to send.
static QUEUE: ProcessLocal<Queue> = ProcessLocal::new();

pub(crate) fn forget_in_child() {
    QUEUE.forget();
    FLUSHED_AT.store(NEVER, Ordering::Relaxed);
}

/// `Enqueued` as the last flush found it: Cyrus flushes from its shutdown
/// path, then exit() runs our own exit hook, which need not wait again for
/// the same events (nor log and count them twice).
static FLUSHED_AT: AtomicU64 = AtomicU64::new(NEVER);
const NEVER: u64 = u64::MAX;

// A sender that could not be started is tried again by the next event; a
// caller blocked meanwhile (`block`) waits out its timeout.
fn push(out: Outgoing) {
    let q = QUEUE.get_or_init(|| Queue::new(out.cfg.queue_size));
    let (policy, timeout) = (out.cfg.overflow, out.cfg.block_timeout);
    q.push(out, policy, timeout);
    // Started after the push, the sender finds the first event waiting,
    // where started before it would park and cost that event a wake-up.
    if q.claim_start() {
        sender::start(q);
    }
    log::pass_relayed();
}

/// Wait up to `timeout` for queued events to go out. What is still queued
/// when it passes is counted and logged (it stays queued and may still go
/// out later); returns how many.
pub(crate) fn flush(timeout: Duration) -> usize {
    FLUSHED_AT.store(COUNTERS.get(Counter::Enqueued), Ordering::Relaxed);
    let Some(q) = QUEUE.get() else { return 0 };
    let left = q.wait_empty(timeout);
    log::pass_relayed();
    if left > 0 {
        COUNTERS.add(Counter::UnsentAtFlush, left as u64);
        let kept = match spool::own_path() {
            Some(p) => format!("; kept in {} for another process to send", p.display()),
            None => String::new(),
        };
        log::error(&format!(
            "mboxevent: {left} events still queued after waiting {} ms to flush{kept}",
            timeout.as_millis()
        ));
    }
    log::report_drops(true);
    left
}

/// The flush of process exit, unless nothing was queued since the last.
pub(crate) fn flush_at_exit(timeout: Duration) {
    if FLUSHED_AT.load(Ordering::Relaxed) != COUNTERS.get(Counter::Enqueued) {
        flush(timeout);
    }
}

/// Events accepted and not yet sent or counted.
pub fn outstanding() -> usize {
    QUEUE.get().map_or(0, Queue::outstanding)
}

/// Stock-like delivery on the caller's thread (`event_delivery: sync`), on
/// one persistent socket; an absent receiver loses the event (counted).
static SYNC_WIRE: Mutex<Option<Wire>> = Mutex::new(None);

/// The sync socket, locked; also held across fork() (see `process`).
pub(crate) fn sync_wire() -> MutexGuard<'static, Option<Wire>> {
    SYNC_WIRE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn send_sync(out: Outgoing) {
    let mut guard = sync_wire();
    let wire = guard.get_or_insert_with(Wire::default);
    let (path, is_dlist) = out.target();
    if is_dlist {
        if wire.send_dlist(&out, &path) == Attempt::Absent {
            bump(Counter::DroppedDlistError);
        }
        return;
    }
    let Some(data) = wire.frame(&out, Vec::new()) else {
        return;
    };
    let sent = wire.socket().map(|(s, _)| s.send_to(&path, &data));
    match sent {
        Ok(Ok(())) => bump(Counter::Sent),
        Ok(Err(e)) | Err(e) => drop_send_error(&e),
    }
}
