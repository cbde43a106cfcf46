//! Log lines on standard error, one per line with a level (systemd's
//! journal keeps them); repeated failures are logged at most once every
//! `EVERY` per kind, with how many were not logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(10);

pub fn info(msg: &str) {
    eprintln!("cmev-relay: info: {msg}");
}

pub fn warn(msg: &str) {
    eprintln!("cmev-relay: warning: {msg}");
}

pub fn error(msg: &str) {
    eprintln!("cmev-relay: error: {msg}");
}

/// (when last logged, how many since) per kind of failure.
static LAST: Mutex<Option<HashMap<&'static str, (Instant, u64)>>> = Mutex::new(None);

/// Log an error of `kind` unless one was logged within `EVERY`.
pub fn error_limited(kind: &'static str, msg: &str) {
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let map = last.get_or_insert_with(HashMap::new);
    match map.get_mut(kind) {
        Some((at, quiet)) if at.elapsed() < EVERY => *quiet += 1,
        Some((at, quiet)) => {
            error(&format!("{msg} ({quiet} more like it not logged)"));
            *at = Instant::now();
            *quiet = 0;
        }
        None => {
            error(msg);
            map.insert(kind, (Instant::now(), 0));
        }
    }
}
