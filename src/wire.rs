//! One notification onto a socket: the datagram socket opened on first use
//! with stock's size limit, the framing and cutting of an event to that
//! limit, one `dlist:` exchange, and what a failed send means (retry, or
//! drop and count). Shared by the sender thread and `event_delivery: sync`.

use crate::counters::{bump, Counter, COUNTERS};
use crate::frame::{fit_datagram, limit_for_buffer, Fitted};
use crate::outgoing::Outgoing;
use crate::transport::datagram::DatagramSocket;
use crate::transport::dlist::{self, DlistError};
use std::io;
use std::time::Duration;

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

/// The retry a send error asks for; `None`: the event cannot be sent.
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

/// An event that cannot be sent: counted, with the errno kept.
pub fn drop_send_error(e: &io::Error) {
    record_error(e);
    bump(Counter::DroppedSendError);
}

/// How long a full receiver queue may hold a blocking send.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// A persistent datagram socket, opened on first use, and its stock size limit.
#[derive(Default)]
pub struct Wire {
    socket: Option<(DatagramSocket, usize)>,
}

impl Wire {
    pub fn socket(&mut self) -> io::Result<(&DatagramSocket, usize)> {
        if self.socket.is_none() {
            let s = DatagramSocket::new(SEND_TIMEOUT)?;
            let limit = limit_for_buffer(s.send_buffer()?);
            self.socket = Some((s, limit));
        }
        let (s, l) = self.socket.as_ref().expect("opened above");
        Ok((s, *l))
    }

    /// The datagram for a notification, cut to the size limit, written into
    /// `buf`; `None` when it cannot fit (dropped and counted) or no socket
    /// can be had.
    pub fn frame(&mut self, out: &Outgoing, buf: Vec<u8>) -> Option<Vec<u8>> {
        let derived = match self.socket() {
            Ok((_, l)) => l,
            Err(e) => {
                drop_send_error(&e);
                return None;
            }
        };
        let max = if out.cfg.max_datagram > 0 {
            out.cfg.max_datagram
        } else {
            derived
        };
        match fit_datagram(out.method(), out, max, buf) {
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

    /// One `dlist:` exchange, bounded by the notification's dlist timeout.
    pub fn send_dlist(&mut self, out: &Outgoing, path: &str) -> Attempt {
        let req = dlist::frame(out.method(), &out.render().json);
        match dlist::send(path, &req, out.cfg.dlist_timeout) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_errors_are_classified() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(classify(&e(libc::EAGAIN)), Some(Attempt::Busy));
        assert_eq!(classify(&e(libc::ENOBUFS)), Some(Attempt::Busy));
        assert_eq!(classify(&e(libc::ENOENT)), Some(Attempt::Absent));
        assert_eq!(classify(&e(libc::ECONNREFUSED)), Some(Attempt::Absent));
        assert_eq!(classify(&e(libc::EACCES)), None);
    }
}
