//! The boundary between building events and moving bytes. `notify` hands
//! each rendered notification here; it goes to the queue (default) or, with
//! `event_delivery: sync`, straight out on the caller's thread. `Wire` turns
//! an item into bytes on a socket and is shared by both paths.

use crate::config::{Config, Delivery};
use crate::counters::{bump, Counter, COUNTERS};
use crate::frame::{fit_datagram, limit_for_buffer, Fitted};
use crate::log;
use crate::notify::Outgoing;
use crate::transport::datagram::DatagramSocket;
use crate::transport::dlist::{self, DlistError};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One notification on its way, rendered only when it is sent.
pub struct Item {
    pub out: Outgoing,
}

/// Past its first 256 slots the queue allocates blocks of 31 (`ring`). At
/// 24 bytes an item, a block is a small request (1,000 bytes) for glibc's
/// malloc, and the first slots take 8 KB; at 72 bytes a block was a large
/// request, and every large request first merges the freed chunks in the
/// arena's fast bins: those of the jmapEmail objects the sender had
/// released, 100-160 µs for one caller in 31 (hot path, MessageNew with a
/// new jmapEmail per event, p99).
const _: () = assert!(std::mem::size_of::<Item>() <= 24);

impl Item {
    pub fn new(out: Outgoing) -> Item {
        Item { out }
    }

    pub fn cfg(&self) -> &Arc<Config> {
        &self.out.cfg
    }

    /// The notifysocket path, and whether it is a `dlist:` listener.
    pub fn target(&self) -> (String, bool) {
        self.cfg().target()
    }

    fn method(&self) -> &str {
        self.cfg().notifier.as_deref().unwrap_or("")
    }
}

/// What became of one attempt to deliver.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Sent, or dropped and counted: done with it.
    Done,
    /// The receiver is busy (EAGAIN, ENOBUFS): try again shortly.
    Busy,
    /// Nobody listens at the path (ENOENT, ECONNREFUSED): keep and retry.
    Absent,
}

pub fn classify(e: &io::Error) -> Option<Attempt> {
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::ENOBUFS) => Some(Attempt::Busy),
        Some(libc::ENOENT | libc::ECONNREFUSED) => Some(Attempt::Absent),
        _ => None,
    }
}

fn record_error(e: &io::Error) {
    if let Some(errno) = e.raw_os_error() {
        COUNTERS.set(Counter::LastErrno, errno as u64);
    }
}

/// How long a full receiver queue may hold a synchronous send.
const SYNC_SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// A persistent datagram socket, opened on first use, and its stock size limit.
#[derive(Default)]
pub struct Wire {
    socket: Option<(DatagramSocket, usize)>,
}

impl Wire {
    pub fn socket(&mut self) -> io::Result<(&DatagramSocket, usize)> {
        if self.socket.is_none() {
            let s = DatagramSocket::new(SYNC_SEND_TIMEOUT)?;
            let limit = limit_for_buffer(s.send_buffer()?);
            self.socket = Some((s, limit));
        }
        let (s, l) = self.socket.as_ref().expect("opened above");
        Ok((s, *l))
    }

    /// The datagram for an item, cut to the size limit, written into `buf`;
    /// `None` when it cannot fit (dropped and counted) or no socket can be had.
    pub fn frame(&mut self, item: &Item, buf: Vec<u8>) -> Option<Vec<u8>> {
        let derived = match self.socket() {
            Ok((_, l)) => l,
            Err(e) => {
                drop_send_error(&e);
                return None;
            }
        };
        let max = if item.cfg().max_datagram > 0 {
            item.cfg().max_datagram
        } else {
            derived
        };
        match fit_datagram(item.method(), &item.out, max, buf) {
            Fitted::Whole(d) => Some(d),
            Fitted::ContentCut(d) => {
                bump(Counter::ContentCut);
                Some(d)
            }
            Fitted::TooBig => {
                bump(Counter::DroppedTooBig);
                None
            }
        }
    }

    /// Wait up to `timeout` for a busy listener to make room; true if it did.
    pub fn wait_writable(&self, timeout: Duration) -> bool {
        self.socket
            .as_ref()
            .is_some_and(|(s, _)| s.wait_writable(timeout))
    }

    /// One `dlist:` exchange, bounded by the item's dlist timeout.
    pub fn send_dlist(&mut self, item: &Item, path: &str) -> Attempt {
        let req = dlist::frame(item.method(), &item.out.render().json);
        match dlist::send(path, &req, item.cfg().dlist_timeout) {
            Ok(()) => bump(Counter::Sent),
            Err(DlistError::Io(e)) => match classify(&e) {
                Some(Attempt::Absent) => return Attempt::Absent,
                _ => {
                    record_error(&e);
                    bump(Counter::DroppedDlistError);
                }
            },
            Err(DlistError::Timeout) => bump(Counter::DroppedDlistTimeout),
            Err(DlistError::Garbage | DlistError::NotOk(_)) => bump(Counter::DroppedDlistError),
        }
        Attempt::Done
    }
}

pub fn drop_send_error(e: &io::Error) {
    record_error(e);
    bump(Counter::DroppedSendError);
}

/// Stock-like delivery on the caller's thread (`event_delivery: sync`), on
/// one persistent socket; an absent receiver loses the event (counted).
static SYNC_WIRE: Mutex<Option<Wire>> = Mutex::new(None);

/// The sync socket, locked; also held across fork() (see `process` and the
/// note on locks in `api`).
pub fn sync_wire() -> MutexGuard<'static, Option<Wire>> {
    SYNC_WIRE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn send_sync(item: Item) {
    let mut guard = sync_wire();
    let wire = guard.get_or_insert_with(Wire::default);
    let (path, is_dlist) = item.target();
    if is_dlist {
        if wire.send_dlist(&item, &path) == Attempt::Absent {
            bump(Counter::DroppedDlistError);
        }
        return;
    }
    let Some(data) = wire.frame(&item, Vec::new()) else {
        return;
    };
    let sent = wire.socket().map(|(s, _)| s.send_to(&path, &data));
    match sent {
        Ok(Ok(())) => bump(Counter::Sent),
        Ok(Err(e)) | Err(e) => drop_send_error(&e),
    }
}

/// Hand one notification to delivery.
pub fn submit(out: Outgoing) {
    bump(Counter::Enqueued);
    let delivery = out.cfg.delivery;
    let item = Item::new(out);
    match delivery {
        Delivery::Sync => {
            send_sync(item);
            log::report_drops(false);
        }
        Delivery::Queued => crate::queue::push(item),
    }
}
