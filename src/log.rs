//! syslog output. Cyrus has already called openlog(), so the lines land in
//! the service's log with its ident.

use crate::counters::{Counter, COUNTERS, DROPS};
use parking_lot::Mutex;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn error(msg: &str) {
    emit(libc::LOG_ERR, msg);
}

pub fn warning(msg: &str) {
    emit(libc::LOG_WARNING, msg);
}

fn emit(prio: libc::c_int, msg: &str) {
    let line = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: "%s" with one valid NUL-terminated string.
    unsafe { libc::syslog(prio, c"%s".as_ptr(), line.as_ptr()) };
}

/// Remembers which event types already logged a given condition, so a
/// misbehaving caller cannot flood syslog.
#[derive(Default)]
pub struct OncePerType(AtomicU32);

impl OncePerType {
    pub const fn new() -> Self {
        OncePerType(AtomicU32::new(0))
    }

    /// True the first time for `bit` (0..32) in this process.
    pub fn first(&self, bit: u32) -> bool {
        let m = 1u32 << (bit & 31);
        self.0.fetch_or(m, Ordering::Relaxed) & m == 0
    }
}

/// At most one drop report per this interval, whatever the drop rate.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

static LAST_REPORT: Mutex<(Option<Instant>, u64)> = Mutex::new((None, 0));

/// Log one line with the drop counters if anything was dropped since the
/// last line and the interval has passed (or `now_anyway`, at flush/exit).
pub fn report_drops(now_anyway: bool) {
    let s = COUNTERS.snapshot();
    let total = s.dropped();
    let mut last = LAST_REPORT.lock();
    let due = match last.0 {
        None => true,
        Some(t) => now_anyway || t.elapsed() >= REPORT_INTERVAL,
    };
    if total <= last.1 || !due {
        return;
    }
    let names = [
        "overflow",
        "expired",
        "too big",
        "dlist timeout",
        "dlist error",
        "send error",
    ];
    let parts: Vec<String> = DROPS
        .iter()
        .zip(names)
        .map(|(c, n)| format!("{n} {}", s.get(*c)))
        .collect();
    error(&format!(
        "mboxevent: {} events dropped since the last report (totals: {}; last errno {})",
        total - last.1,
        parts.join(", "),
        s.get(Counter::LastErrno)
    ));
    *last = (Some(Instant::now()), total);
}
