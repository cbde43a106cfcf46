//! Process-wide delivery counters, readable through the C ABI. Relaxed
//! atomics: each number is exact, their sum is only consistent at rest.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Index of each counter in `cmev_counters.values`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Notifications produced by notify (after FlagsSet splitting), sent or not.
    Notified = 0,
    /// Notifications accepted for delivery (queued, sent directly in sync
    /// mode, or left for cmev-relay), those taken over from dead processes'
    /// spools included.
    Enqueued,
    /// Notifications the receiver accepted.
    Sent,
    /// Not sent because their group is off in event_groups.
    UnsentGroupOff,
    /// Dropped: the queue was full (event_queue_overflow).
    DroppedOverflow,
    /// Dropped: the receiver stayed absent past event_queue_max_age.
    DroppedExpired,
    /// Dropped: too big for a datagram even without messageContent.
    DroppedTooBig,
    /// Dropped: a dlist listener did not answer within event_dlist_timeout.
    DroppedDlistTimeout,
    /// Dropped: a dlist listener answered garbage, not OK, or closed early.
    DroppedDlistError,
    /// Dropped: the socket refused them for another reason (bad path, permissions...).
    DroppedSendError,
    /// Still queued when a flush deadline (or process exit) passed.
    UnsentAtFlush,
    /// Send attempts repeated after EAGAIN/ENOBUFS or an absent receiver.
    Retried,
    /// Sent with messageContent cut to fit the datagram limit.
    ContentCut,
    /// Sent although an expected parameter was missing (stock aborted).
    Incomplete,
    /// Notifications handed to the IMAP NOTIFY callback.
    CallbackCalls,
    /// Most events ever waiting in the queue at once (a level, not a count).
    QueueHighWater,
    /// errno of the last failed send, 0 if none (a value, not a count).
    LastErrno,
    /// Parameters left out because the caller's JSON value could not be
    /// written (cmev_event_set_json_object).
    JsonLeftOut,
    /// Queued without a copy in the spool (spool refused, unusable or full):
    /// lost if the process dies before sending them.
    Unspooled,
    /// Taken over from the spool of a process that ended without sending
    /// them (also counted in `Enqueued`).
    Adopted,
    /// Found in a dead process's spool but unreadable (half-written when it
    /// died, or the file damaged): lost.
    SpoolLost,
    /// Left in the process's spool ring for cmev-relay (`event_delivery:
    /// relay`), not sent by the process.
    Relayed,
    /// Sent by the process itself although `event_delivery` is `relay`: no
    /// relay read its ring, or the ring was full (then also counted as
    /// queued and sent, or dropped, as any queued event).
    RelayFallback,
}

/// Number of counters.
pub const COUNTER_COUNT: usize = 23;

/// Counters whose sum is what was lost.
pub const DROPS: [Counter; 6] = [
    Counter::DroppedOverflow,
    Counter::DroppedExpired,
    Counter::DroppedTooBig,
    Counter::DroppedDlistTimeout,
    Counter::DroppedDlistError,
    Counter::DroppedSendError,
];

/// All counters at once, indexed by `Counter`.
pub type Values = [u64; COUNTER_COUNT];

/// Events dropped, all causes together.
pub fn dropped(v: &Values) -> u64 {
    DROPS.iter().map(|c| v[*c as usize]).sum()
}

/// One counter per cache line: callers bump some while the sender thread
/// bumps others, and shared lines would bounce between cores.
#[repr(align(64))]
struct Padded(AtomicU64);

pub struct Counters([Padded; COUNTER_COUNT]);

pub static COUNTERS: Counters = Counters([const { Padded(AtomicU64::new(0)) }; COUNTER_COUNT]);

impl Counters {
    pub fn bump(&self, c: Counter) {
        self.0[c as usize].0.fetch_add(1, Relaxed);
    }

    pub fn add(&self, c: Counter, n: u64) {
        self.0[c as usize].0.fetch_add(n, Relaxed);
    }

    pub fn set(&self, c: Counter, v: u64) {
        self.0[c as usize].0.store(v, Relaxed);
    }

    pub fn raise_to(&self, c: Counter, v: u64) {
        self.0[c as usize].0.fetch_max(v, Relaxed);
    }

    /// Start from zero (a forked child counts its own events).
    pub fn reset(&self) {
        self.0.iter().for_each(|c| c.0.store(0, Relaxed));
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize].0.load(Relaxed)
    }

    pub fn values(&self) -> Values {
        std::array::from_fn(|i| self.0[i].0.load(Relaxed))
    }
}

pub fn bump(c: Counter) {
    COUNTERS.bump(c);
}

const _: () = assert!(Counter::RelayFallback as usize + 1 == COUNTER_COUNT);
