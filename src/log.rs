//! syslog output. Cyrus has already called openlog(), so the lines land in
//! the service's log with its ident.

use crate::counters::{Counter, COUNTERS, DROPS};
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::LazyLock;
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

/// Drops already reported, and when (ms since `EPOCH`, 0 = never). Atomics,
/// not a lock: a fork must never leave a child waiting on a stale lock.
static REPORTED: AtomicU64 = AtomicU64::new(0);
static REPORTED_AT: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Log one line with the drop counters if anything was dropped since the
/// last line and the interval has passed (or `now_anyway`, at flush/exit).
pub fn report_drops(now_anyway: bool) {
    let s = COUNTERS.snapshot();
    let total = s.dropped();
    let last = REPORTED.load(Ordering::Acquire);
    if total <= last {
        return;
    }
    let now = EPOCH.elapsed().as_millis() as u64 + 1;
    let at = REPORTED_AT.load(Ordering::Acquire);
    let due = at == 0 || now_anyway || now - at >= REPORT_INTERVAL.as_millis() as u64;
    if !due
        || REPORTED_AT
            .compare_exchange(at, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    REPORTED.store(total, Ordering::Release);
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
        total - last,
        parts.join(", "),
        s.get(Counter::LastErrno)
    ));
}

/// A forked child reports its own drops from zero.
pub fn reset_reports() {
    REPORTED.store(0, Ordering::Release);
    REPORTED_AT.store(0, Ordering::Release);
}
