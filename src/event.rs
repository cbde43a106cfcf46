//! The event the adapter fills between `cmev_event_new` and `cmev_notify`:
//! its type, the configuration in force when it was made, and its body.

use crate::body::{Body, Value};
use crate::catalogue::{EventType, Param};
use crate::config::Config;
use std::sync::Arc;
use std::time::SystemTime;

/// An event being built: opaque to C, made by `cmev_event_new` and released
/// by `cmev_event_free`.
#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    /// The configuration in force when the event was created.
    pub cfg: Arc<Config>,
    pub body: Box<Body>,
    /// UIDs moved into the uri of a MessageNew/MessageAppend; they still count
    /// for the "modseq only with exactly one message" rule.
    pub uids_in_uri: u64,
    pub created: SystemTime,
}

impl Event {
    #[cfg(test)]
    pub fn new(kind: EventType, cfg: Arc<Config>) -> Event {
        Event::with_body(kind, cfg, Box::default())
    }

    /// An event reusing an emptied body's buffers.
    pub fn with_body(kind: EventType, cfg: Arc<Config>, body: Box<Body>) -> Event {
        Event {
            kind,
            cfg,
            body,
            uids_in_uri: 0,
            created: SystemTime::now(),
        }
    }

    pub fn get(&self, p: Param) -> Option<&Value> {
        self.body.get(p)
    }

    pub fn has(&self, p: Param) -> bool {
        self.get(p).is_some()
    }

    #[inline(always)] // for Body::set's reason
    pub fn set(&mut self, p: Param, v: Value) {
        self.body.set(p, v);
    }

    pub fn unset(&mut self, p: Param) {
        self.body.unset(p);
    }

    /// The filled parameters as a bitmask by number.
    pub fn filled_mask(&self) -> u128 {
        self.body.filled_mask()
    }

    /// How many messages the event refers to.
    pub fn message_count(&self) -> u64 {
        self.body.uids.count() + self.uids_in_uri
    }
}
