//! The boundary between building events and moving bytes. `notify` hands
//! each rendered notification to the process's `Sink`; the sink frames,
//! sizes and sends it. The synchronous sink below sends on the caller's
//! thread over one persistent socket; a queued sink plugs in behind the same
//! trait without touching the event code.

use crate::config::Config;
use crate::counters::{bump, Counter};
use crate::frame::{fit_datagram, limit_for_buffer, Fitted};
use crate::json::Rendered;
use crate::log;
use crate::transport::datagram::DatagramSocket;
use parking_lot::Mutex;
use std::time::Duration;

pub trait Sink: Send + Sync {
    /// Deliver one notification according to `cfg` (method, socket, limits).
    fn submit(&self, cfg: &Config, r: Rendered);
}

/// How long a full receiver queue may hold a synchronous send.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// Sends on the caller's thread, keeping its socket between events.
#[derive(Default)]
pub struct DirectSink {
    socket: Mutex<Option<(DatagramSocket, usize)>>,
}

impl DirectSink {
    fn limit(cfg: &Config, derived: usize) -> usize {
        if cfg.max_datagram > 0 {
            cfg.max_datagram
        } else {
            derived
        }
    }
}

impl Sink for DirectSink {
    fn submit(&self, cfg: &Config, r: Rendered) {
        let Some(method) = cfg.notifier.as_deref() else {
            return;
        };
        let path = cfg.socket_path();
        if path.starts_with("dlist:") {
            bump(Counter::DroppedSendError);
            log::error("mboxevent: the dlist: transport needs the delivery engine; event dropped");
            return;
        }
        let mut guard = self.socket.lock();
        if guard.is_none() {
            let opened = DatagramSocket::new(SEND_TIMEOUT)
                .and_then(|s| s.send_buffer().map(|b| (s, limit_for_buffer(b))));
            match opened {
                Ok(s) => *guard = Some(s),
                Err(e) => {
                    bump(Counter::DroppedSendError);
                    log::error(&format!("mboxevent: cannot create notify socket: {e}"));
                    return;
                }
            }
        }
        let Some((sock, derived)) = guard.as_ref() else {
            return;
        };
        let data = match fit_datagram(method, &r, Self::limit(cfg, *derived)) {
            Fitted::Whole(d) => d,
            Fitted::ContentCut(d) => {
                bump(Counter::ContentCut);
                d
            }
            Fitted::TooBig => {
                bump(Counter::DroppedTooBig);
                log::error(&format!(
                    "mboxevent: event of {} bytes does not fit a {}-byte datagram even without messageContent; dropped",
                    r.json.len(),
                    Self::limit(cfg, *derived)
                ));
                return;
            }
        };
        match sock.send_to(&path, &data) {
            Ok(()) => bump(Counter::Sent),
            Err(e) => {
                bump(Counter::DroppedSendError);
                log::error(&format!("mboxevent: unable to send to {path}: {e}"));
            }
        }
    }
}
