//! syslog output. Cyrus has already called openlog(), so the lines land in
//! the service's log with its ident.
//!
//! The sender thread has a file table of its own (see `sender`), where
//! syslog's descriptor, a number in the process's table, means nothing, and
//! syslog would replace it for every thread. Its lines are relayed: kept
//! here and written by the next thread that queues an event or flushes.

use crate::counters::{self, Counter, COUNTERS, DROPS};
use crossbeam_queue::ArrayQueue;
use std::cell::Cell;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Relayed lines waiting; beyond this many, lines are counted, not kept.
const RELAY_MAX: usize = 64;

static RELAY: LazyLock<ArrayQueue<(libc::c_int, CString)>> =
    LazyLock::new(|| ArrayQueue::new(RELAY_MAX));
static RELAY_LOST: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static RELAYED: Cell<bool> = const { Cell::new(false) };
}

/// From now on this thread's lines are relayed, not written.
pub fn relay_this_thread() {
    RELAYED.with(|r| r.set(true));
}

/// Write the lines relayed so far (on a thread that may use syslog).
pub fn pass_relayed() {
    drain_relayed(syslog);
}

fn drain_relayed(mut write: impl FnMut(libc::c_int, &CString)) {
    if RELAY.is_empty() && RELAY_LOST.load(Ordering::Relaxed) == 0 {
        return;
    }
    while let Some((prio, line)) = RELAY.pop() {
        write(prio, &line);
    }
    let lost = RELAY_LOST.swap(0, Ordering::Relaxed);
    if lost > 0 {
        let line =
            format!("mboxevent: {lost} log lines of the sender thread lost (too many at once)");
        write(libc::LOG_ERR, &CString::new(line).unwrap_or_default());
    }
}

/// A forked child logs its own lines only: its parent's go out there.
pub fn forget_relayed() {
    while RELAY.pop().is_some() {}
    RELAY_LOST.store(0, Ordering::Relaxed);
}

pub fn error(msg: &str) {
    emit(libc::LOG_ERR, msg);
}

pub fn warning(msg: &str) {
    emit(libc::LOG_WARNING, msg);
}

fn emit(prio: libc::c_int, msg: &str) {
    let line = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    if RELAYED.with(Cell::get) {
        if RELAY.push((prio, line)).is_err() {
            RELAY_LOST.fetch_add(1, Ordering::Relaxed);
        }
    } else {
        syslog(prio, &line);
    }
}

fn syslog(prio: libc::c_int, line: &CString) {
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
    let s = COUNTERS.values();
    let total = counters::dropped(&s);
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
        .map(|(c, n)| format!("{n} {}", s[*c as usize]))
        .collect();
    error(&format!(
        "mboxevent: {} events dropped since the last report (totals: {}; last errno {})",
        total - last,
        parts.join(", "),
        s[Counter::LastErrno as usize]
    ));
}

/// A forked child reports its own drops from zero.
pub fn reset_reports() {
    REPORTED.store(0, Ordering::Release);
    REPORTED_AT.store(0, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_lines_are_kept_in_order_and_the_excess_counted() {
        std::thread::spawn(|| {
            relay_this_thread();
            for i in 0..RELAY_MAX + 6 {
                warning(&format!("relay-test {i}"));
            }
        })
        .join()
        .unwrap();
        let mut lines = Vec::new();
        drain_relayed(|prio, l| lines.push((prio, l.to_string_lossy().into_owned())));
        let ours: Vec<_> = lines
            .iter()
            .filter(|(_, l)| l.starts_with("relay-test"))
            .collect();
        assert_eq!(ours.len(), RELAY_MAX);
        assert!(ours
            .iter()
            .enumerate()
            .all(|(i, (p, l))| *p == libc::LOG_WARNING && *l == format!("relay-test {i}")));
        assert_eq!(
            lines.last().unwrap().1,
            "mboxevent: 6 log lines of the sender thread lost (too many at once)"
        );
    }
}
