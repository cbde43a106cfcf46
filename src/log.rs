//! syslog output. Cyrus has already called openlog(), so the lines land in
//! the service's log with its ident.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

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
