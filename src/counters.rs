//! Process-wide delivery counters, readable through the C ABI. Relaxed
//! atomics: each number is exact, their sum is only consistent at rest.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Index of each counter in `cmev_counters.values`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Notifications produced by notify (after FlagsSet splitting), sent or not.
    Notified = 0,
    /// Notifications handed to the notify socket.
    Sent,
    /// Not sent because their group is off in event_groups.
    UnsentGroupOff,
    /// Dropped: too big for a datagram even without messageContent.
    DroppedTooBig,
    /// Dropped: the socket refused them (receiver absent, bad path, ...).
    DroppedSendError,
    /// Sent with messageContent cut to fit the datagram limit.
    ContentCut,
    /// Sent although an expected parameter was missing (stock aborted).
    Incomplete,
    /// Notifications handed to the IMAP NOTIFY callback.
    CallbackCalls,
}

/// Number of counters.
pub const COUNTER_COUNT: usize = 8;

/// A snapshot of all counters, indexed by `cmev_counter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub values: [u64; COUNTER_COUNT],
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }
}

pub struct Counters([AtomicU64; COUNTER_COUNT]);

pub static COUNTERS: Counters = Counters([const { AtomicU64::new(0) }; COUNTER_COUNT]);

impl Counters {
    pub fn bump(&self, c: Counter) {
        self.0[c as usize].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: std::array::from_fn(|i| self.0[i].load(Relaxed)),
        }
    }
}

pub fn bump(c: Counter) {
    COUNTERS.bump(c);
}
