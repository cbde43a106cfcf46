//! The relay's counters: what came in, what was stored, delivered, retried,
//! dropped. Written as one JSON object to `stats_file` every second and
//! logged at exit, so that every event is accounted for:
//! `stored = nats_acked (or webhook_delivered + webhook_dead_lettered) +
//! dropped_* + what the store still holds`.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        #[derive(Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Stats {
            pub fn json(&self) -> String {
                let fields: Vec<String> = vec![
                    $(format!("\"{}\":{}", stringify!($name), self.$name.load(Ordering::Relaxed)),)*
                ];
                format!("{{{}}}", fields.join(","))
            }
        }
    };
}

counters! {
    received: "Events taken from an input (datagram, dlist or spool).",
    rejected: "Input that is not an event (malformed, not class EVENT, no event name).",
    stored: "Events written and fsync'd into the store.",
    store_errors: "Events the store could not write (disk full, directory unwritable).",
    dropped_size: "Events removed undelivered because the store reached max_bytes.",
    dropped_age: "Events removed undelivered because they reached max_age.",
    dlist_ok: "dlist requests answered OK (after the event was stored).",
    dlist_no: "dlist requests answered NO (not an event, or not stored).",
    spool_rings: "Spool rings of dead processes taken over.",
    spool_live_rings: "Spool rings of living processes read (event_delivery: relay).",
    spool_lost: "Spool records that could not be read (counted by the library too).",
    nats_published: "Publishes sent to JetStream (repeats included).",
    nats_acked: "Events JetStream acknowledged as stored.",
    nats_duplicates: "Acknowledgements JetStream marked duplicate (a repeat absorbed).",
    nats_errors: "Failed connects, publishes or acknowledgements (each retried).",
    webhook_delivered: "Events in batches the webhook answered 2xx.",
    webhook_errors: "Failed webhook attempts (status, timeout, connection).",
    webhook_dead_lettered: "Events written to the dead-letter file after discard_after.",
}

pub static STATS: std::sync::LazyLock<Stats> = std::sync::LazyLock::new(Stats::default);

/// Add `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
