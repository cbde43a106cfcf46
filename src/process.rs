//! Process lifecycle: the pid without a syscall per event, and the fork and
//! exit hooks the delivery queue needs. Cyrus forks (master, and some
//! services), and leaves through exit() from its shut_down path.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

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

extern "C" fn in_child() {
    PID.store(0, Ordering::Relaxed);
    crate::queue::forget_in_child();
}

extern "C" fn at_exit() {
    crate::queue::flush_at_exit();
}

/// Install the fork and exit hooks, once per process (a forked child
/// inherits them).
pub fn install_hooks() {
    HOOKS.call_once(|| {
        // SAFETY: registering plain extern "C" functions that live as long
        // as the library (a cdylib loaded by imapd is never unloaded).
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
            libc::atexit(at_exit);
        }
    });
}
