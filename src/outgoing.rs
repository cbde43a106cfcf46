//! One notification ready to leave, not yet rendered: what `notify` makes
//! of an event and what travels through the queue to the sender.

use crate::body::Body;
use crate::catalogue::EventType;
use crate::config::Config;
use crate::render::{render, render_limited, Rendered};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// It travels through the queue as it is, in 24 bytes: at that size a
/// block of the queue's overflow is a small request for malloc (see
/// docs/design.md, "A queued item is 24 bytes").
#[derive(Debug)]
pub struct Outgoing {
    pub kind: EventType,
    /// When it was made, on the process's millisecond clock (`clock_ms`):
    /// its age in the queue (`event_queue_max_age`) counts from here.
    pub made_ms: u32,
    /// Filled parameters sorted by number, and the text they refer to.
    pub body: Box<Body>,
    pub cfg: Arc<Config>,
}

/// Milliseconds on a clock of the process's own, wrapping every 49 days
/// (the longest `event_queue_max_age` is a day): four bytes of a
/// notification where an `Instant` takes sixteen.
pub fn clock_ms() -> u32 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u32
}

impl Outgoing {
    pub fn new(kind: EventType, body: Box<Body>, cfg: Arc<Config>) -> Outgoing {
        Outgoing {
            kind,
            made_ms: clock_ms(),
            body,
            cfg,
        }
    }

    /// event_notifier is set and the event's group enabled: it goes to the
    /// notify socket.
    pub fn send(&self) -> bool {
        self.cfg.notifier.is_some() && self.cfg.enabled_types & self.kind.bits() != 0
    }

    pub fn render(&self) -> Rendered {
        render(self.kind, &self.body, self.cfg.timestamp_format)
    }

    /// Rendered after `buf`'s contents (a datagram header), writing at most
    /// `max` bytes of messageContent.
    pub fn render_after(&self, buf: String, max: usize) -> Rendered {
        render_limited(buf, self.kind, &self.body, self.cfg.timestamp_format, max)
    }

    /// The notifysocket path, and whether it is a `dlist:` listener.
    pub fn target(&self) -> (String, bool) {
        self.cfg.target()
    }

    /// The notifyd method (`event_notifier`).
    pub fn method(&self) -> &str {
        self.cfg.notifier.as_deref().unwrap_or("")
    }
}

const _: () = assert!(std::mem::size_of::<Outgoing>() <= 24);
