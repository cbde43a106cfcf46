//! The socket inputs: notifyd's datagram socket, as Cyrus's notify() sends
//! to it, and the `dlist:` stream socket, whose `OK` is sent only once the
//! event is fsync'd in the store (a NO when it is not an event or could not
//! be stored, so that Cyrus counts it rather than believing it delivered).

use crate::event::{from_datagram, from_message};
use crate::log;
use crate::stats::{add, STATS};
use crate::store::{NewEvent, Store};
use cyrus_mboxevent::transport::dlist::parse_request;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixDatagram, UnixListener, UnixStream};

/// Datagrams taken from the socket before they go to the store together.
const DATAGRAM_BATCH: usize = 256;
/// The receive buffer asked for: bursts wait in the kernel, not in Cyrus.
const RCVBUF: libc::c_int = 8 << 20;
/// A dlist connection quiet this long is closed.
const DLIST_IDLE: Duration = Duration::from_secs(30);
/// A request still incomplete after this many bytes is not one Cyrus
/// writes: the connection is closed rather than grown without bound.
const MAX_REQUEST: usize = 64 << 20;

const REPLY_OK: &[u8] = b"OK %()\r\n";

/// A socket file left behind by an earlier run would make bind fail;
/// anything else at the path is not ours to remove.
pub fn remove_stale_socket(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Bind at a sibling name, set the mode, then link into place, so that no
/// one connects before the mode is set (Cyrus's user alone by default).
fn publish<S>(
    path: &Path,
    mode: u32,
    bind: impl FnOnce(&Path) -> std::io::Result<S>,
) -> Result<S, String> {
    let staging = PathBuf::from(format!("{}.new", path.display()));
    remove_stale_socket(&staging);
    remove_stale_socket(path);
    let sock = bind(&staging).map_err(|e| format!("{}: {e}", path.display()))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::hard_link(&staging, path));
    let _ = std::fs::remove_file(&staging);
    placed
        .map(|()| sock)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn bind_datagram(path: &Path, mode: u32) -> Result<UnixDatagram, String> {
    let sock = publish(path, mode, |p| UnixDatagram::bind(p))?;
    // SAFETY: an open socket and an int option of its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&RCVBUF as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(sock)
}

pub fn bind_dlist(path: &Path, mode: u32) -> Result<UnixListener, String> {
    publish(path, mode, |p| UnixListener::bind(p))
}

fn rejected(how: &str, why: impl std::fmt::Display) {
    add(&STATS.rejected, 1);
    log::error_limited("rejected", &format!("{how}: not relayed: {why}"));
}

/// Take datagrams until the socket fails; whatever is waiting is stored in
/// one batch, without waiting for the fsync (a datagram's sender hears
/// nothing back either way).
pub async fn serve_datagrams(sock: UnixDatagram, store: Arc<Store>) {
    let mut buf = vec![0u8; 65536 + 1];
    loop {
        let mut batch: Vec<NewEvent> = Vec::new();
        let mut got = sock.recv(&mut buf).await.map(Some);
        while let Ok(Some(n)) = got {
            add(&STATS.received, 1);
            match from_datagram(&buf[..n]) {
                Ok(e) => batch.push(e),
                Err(why) => rejected("datagram", why),
            }
            got = if batch.len() < DATAGRAM_BATCH {
                match sock.try_recv(&mut buf) {
                    Ok(n) => Ok(Some(n)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            } else {
                Ok(None)
            };
        }
        if !batch.is_empty() {
            store.append_detached(batch).await;
        }
        if let Err(e) = got {
            log::error_limited("datagram", &format!("datagram socket: {e}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn serve_dlist(listener: UnixListener, store: Arc<Store>) {
    loop {
        match listener.accept().await {
            Ok((c, _)) => {
                tokio::spawn(dlist_connection(c, Arc::clone(&store)));
            }
            Err(e) => {
                log::error_limited("accept", &format!("dlist socket: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serve one connection: each NOTIFY request answered `OK` once stored.
async fn dlist_connection(mut c: UnixStream, store: Arc<Store>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        match parse_request(&buf) {
            Some(Ok((req, used))) => {
                buf.drain(..used);
                add(&STATS.received, 1);
                let reply = match from_message(req.class.as_bytes(), &req.message) {
                    Ok(e) => match store.append(vec![e]).await {
                        Ok(()) => {
                            add(&STATS.dlist_ok, 1);
                            REPLY_OK.to_vec()
                        }
                        Err(e) => no(&e.0),
                    },
                    Err(why) => {
                        rejected("dlist request", &why);
                        no(&why.to_string())
                    }
                };
                if c.write_all(&reply).await.is_err() {
                    return;
                }
                // Requests end with CRLF; what separates two is skipped.
                let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
                buf.drain(..blank);
            }
            Some(Err(())) => {
                rejected("dlist request", "not a NOTIFY request");
                let _ = c.write_all(&no("not a NOTIFY request")).await;
                return;
            }
            None if buf.len() > MAX_REQUEST => {
                rejected(
                    "dlist request",
                    format!("still incomplete after {} bytes", buf.len()),
                );
                return;
            }
            None => match tokio::time::timeout(DLIST_IDLE, c.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

fn no(why: &str) -> Vec<u8> {
    add(&STATS.dlist_no, 1);
    let quoted = serde_json::to_string(why).expect("a string serialises");
    format!("NO %(ERROR {quoted})\r\n").into_bytes()
}
