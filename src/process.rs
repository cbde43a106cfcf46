//! Process lifecycle: the pid without a system call per event, and the fork
//! and exit hooks. Cyrus forks (master, and some services), and leaves
//! through exit() from its shut_down path.

use crate::wire::Wire;
use crate::{counters, deliver, log, pool, settings, spool};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{MutexGuard, Once};

static PID: AtomicU32 = AtomicU32::new(0);
static HOOKS: Once = Once::new();

/// This process's id; cached, and forgotten in a forked child.
pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let p = std::process::id();
            PID.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

thread_local! {
    /// The locks taken before fork(), until released on both sides of it
    /// (the child's only thread is a copy of the one that took them).
    static HELD: RefCell<Option<(settings::ForkHold, MutexGuard<'static, Option<Wire>>)>> =
        const { RefCell::new(None) };
}

// Locks another thread might hold at fork() are taken first and released
// on both sides, so the child never inherits one held by a thread it lacks.
extern "C" fn before_fork() {
    let held = (settings::lock_for_fork(), deliver::sync_wire());
    HELD.with(|h| *h.borrow_mut() = Some(held));
}

fn release() {
    HELD.with(|h| h.borrow_mut().take());
}

extern "C" fn in_parent() {
    release();
}

extern "C" fn in_child() {
    release();
    PID.store(0, Ordering::Relaxed);
    counters::COUNTERS.reset();
    log::reset_reports();
    log::forget_relayed();
    deliver::forget_in_child();
    pool::forget_in_child();
    spool::forget_in_child();
}

/// Queued events get `event_flush_timeout` to leave, unless Cyrus's own
/// shutdown already flushed and nothing was queued since; what is left
/// stays in the spool.
extern "C" fn at_exit() {
    deliver::flush_at_exit(settings::config().flush_timeout);
    spool::close_at_exit();
}

/// Install the fork and exit hooks, once per process (a forked child
/// inherits them).
pub fn install_hooks() {
    HOOKS.call_once(|| {
        // SAFETY: registering plain extern "C" functions that live as long
        // as the library (a cdylib loaded by imapd is never unloaded).
        unsafe {
            libc::pthread_atfork(Some(before_fork), Some(in_parent), Some(in_child));
            libc::atexit(at_exit);
        }
    });
}
