//! cmev-tap: listen where Cyrus sends its events and print one JSON line per
//! event, as it arrives. For operators (what is my server sending?), the
//! demo and the end-to-end tests.
//!
//! ```text
//! cmev-tap [--dlist] [--envelope] [--mode OCTAL] [--count N] PATH
//! ```
//! Binds a datagram socket at PATH as notifyd does (or, with `--dlist`, a
//! stream socket answering `OK` as Cassandane's listener does), then prints
//! each event's JSON. `--envelope` prints the whole notification instead:
//! method, class, priority, user, mailbox, options, message, fname.
//! `--mode` sets the socket file's permissions (Cyrus runs as its own
//! user); `--count` exits after N events. SIGTERM/SIGINT remove the socket.
//! A dlist request still unfinished after 16 MiB closes its connection.

use cyrus_mboxevent::transport::dlist::parse_request;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Options {
    dlist: bool,
    envelope: bool,
    mode: Option<u32>,
    count: Option<u64>,
    path: String,
}

const USAGE: &str = "usage: cmev-tap [--dlist] [--envelope] [--mode OCTAL] [--count N] PATH";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        dlist: false,
        envelope: false,
        mode: None,
        count: None,
        path: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dlist" => o.dlist = true,
            "--envelope" => o.envelope = true,
            "--mode" => {
                let v = args.next().ok_or("--mode needs a value")?;
                o.mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| format!("--mode: '{v}' is not octal"))?,
                );
            }
            "--count" => {
                let v = args.next().ok_or("--count needs a value")?;
                o.count = Some(
                    v.parse()
                        .map_err(|_| format!("--count: '{v}' is not a number"))?,
                );
            }
            "-h" | "--help" => return Err(USAGE.into()),
            p if !p.starts_with('-') && o.path.is_empty() => o.path = p.to_owned(),
            other => return Err(format!("unexpected argument '{other}'\n{USAGE}")),
        }
    }
    if o.path.is_empty() {
        return Err(USAGE.into());
    }
    Ok(o)
}

/// The event JSON as a value; text that is not JSON is kept as a string.
fn message_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The notification a line shows: with `--envelope` every field notifyd
/// gets, whichever transport carried it; otherwise the event JSON alone.
struct Notification<'a> {
    method: &'a str,
    class: &'a str,
    priority: &'a str,
    user: &'a str,
    mailbox: &'a str,
    options: &'a [String],
    message: &'a [u8],
    fname: Option<&'a str>,
}

impl Notification<'_> {
    fn line(&self, envelope: bool) -> String {
        if !envelope {
            return String::from_utf8_lossy(self.message).into_owned();
        }
        json!({"method": self.method, "class": self.class, "priority": self.priority,
               "user": self.user, "mailbox": self.mailbox, "options": self.options,
               "message": message_value(self.message), "fname": self.fname})
        .to_string()
    }
}

/// notifyd's datagram: method, class, priority, user, mailbox, nopt,
/// options, message, [fname], each NUL-terminated.
fn datagram_line(d: &[u8], envelope: bool) -> Option<String> {
    let mut fields = d.split(|b| *b == 0);
    let mut next = || {
        fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
    };
    let (method, class, priority, user, mailbox) = (next()?, next()?, next()?, next()?, next()?);
    let nopt: usize = next()?.parse().ok()?;
    let options: Vec<String> = (0..nopt).map(|_| next()).collect::<Option<_>>()?;
    let message = next()?;
    let fname = next().filter(|f| !f.is_empty());
    Some(
        Notification {
            method: &method,
            class: &class,
            priority: &priority,
            user: &user,
            mailbox: &mailbox,
            options: &options,
            message: message.as_bytes(),
            fname: fname.as_deref(),
        }
        .line(envelope),
    )
}

fn emit(line: &str, seen: &mut u64, o: &Options) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    *seen += 1;
    if o.count.is_some_and(|n| *seen >= n) {
        STOP.store(true, Ordering::SeqCst);
    }
}

fn serve_datagrams(o: &Options) -> std::io::Result<()> {
    let sock = publish(o, |p| UnixDatagram::bind(p))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = vec![0u8; 65536 + 1];
    let mut seen = 0;
    while !STOP.load(Ordering::SeqCst) {
        match sock.recv(&mut buf) {
            Ok(n) => match datagram_line(&buf[..n], o.envelope) {
                Some(line) => emit(&line, &mut seen, o),
                None => eprintln!("cmev-tap: malformed datagram of {n} bytes"),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the tap answers: the reply Cassandane's listener gives, and one
/// for bytes that are not a NOTIFY request (both as `parse_reply` reads
/// them: success, and a reply named NO).
const REPLY_OK: &[u8] = b"OK %()\r\n";
const REPLY_NO: &[u8] = b"NO %(ERROR \"not a NOTIFY request\")\r\n";

/// A request that has not ended by then is not one the library writes (its
/// largest events are a few MB): the connection is dropped rather than
/// letting one client grow the tap without bound.
const MAX_REQUEST: usize = 16 << 20;

/// One dlist connection: read one NOTIFY, answer OK (or NO on garbage).
fn dlist_connection(mut c: UnixStream, o: &Options) -> Option<String> {
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match parse_request(&buf) {
            Some(Ok((req, _))) => {
                let _ = c.write_all(REPLY_OK);
                return Some(
                    Notification {
                        method: &req.method,
                        class: &req.class,
                        priority: "",
                        user: "",
                        mailbox: "",
                        options: &[],
                        message: &req.message,
                        fname: None,
                    }
                    .line(o.envelope),
                );
            }
            Some(Err(())) => {
                let _ = c.write_all(REPLY_NO);
                return None;
            }
            None if buf.len() > MAX_REQUEST => {
                eprintln!(
                    "cmev-tap: dlist request still incomplete after {} bytes (limit {MAX_REQUEST}); connection closed",
                    buf.len()
                );
                return None;
            }
            None => match c.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

fn serve_dlist(o: &Options) -> std::io::Result<()> {
    let l = publish(o, |p| UnixListener::bind(p))?;
    l.set_nonblocking(true)?;
    let mut seen = 0;
    while !STOP.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false)?;
                if let Some(line) = dlist_connection(c, o) {
                    emit(&line, &mut seen, o);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Binds at a sibling name and links it into place, so that whoever waits
/// for the path to appear (the tests, run-sandbox.sh) never connects between
/// bind and listen (ECONNREFUSED) nor sees the socket before its mode is set.
/// A link, unlike a rename, fails as bind would on anything already there.
fn publish<S>(o: &Options, bind: impl FnOnce(&str) -> std::io::Result<S>) -> std::io::Result<S> {
    let staging = format!("{}.new", o.path);
    remove_stale_socket(&staging);
    let sock = bind(&staging)?;
    let placed = match o.mode {
        Some(m) => std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(m)),
        None => Ok(()),
    }
    .and_then(|()| std::fs::hard_link(&staging, &o.path));
    let _ = std::fs::remove_file(&staging);
    placed.map(|()| sock)
}

/// A socket file left behind would make the next bind fail; anything
/// else at the path is not ours to remove.
fn remove_stale_socket(path: &str) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    remove_stale_socket(&o.path);
    let r = if o.dlist {
        serve_dlist(&o)
    } else {
        serve_datagrams(&o)
    };
    remove_stale_socket(&o.path);
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmev-tap: {}: {e}", o.path);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyrus_mboxevent::transport::dlist::{parse_reply, DlistError};

    #[test]
    fn datagram_fields() {
        let d = b"log\0EVENT\0\0\0\0\x30\0{\"event\":\"Login\"}\0";
        assert_eq!(datagram_line(d, false).unwrap(), "{\"event\":\"Login\"}");
        let v: Value = serde_json::from_str(&datagram_line(d, true).unwrap()).unwrap();
        assert_eq!(v["method"], "log");
        assert_eq!(v["message"]["event"], "Login");
        assert_eq!(v["fname"], Value::Null);
        let with_opts = b"m\0c\0p\0u\0mb\0\x32\0o1\0o2\0text\0f\0";
        let v: Value = serde_json::from_str(&datagram_line(with_opts, true).unwrap()).unwrap();
        assert_eq!(v["options"], json!(["o1", "o2"]));
        assert_eq!(v["message"], "text");
        assert_eq!(v["fname"], "f");
        assert!(datagram_line(b"log\0EVENT\0", false).is_none());
        assert!(datagram_line(b"a\0b\0c\0d\0e\0x\0", false).is_none());
    }

    #[test]
    fn replies_read_as_the_library_reads_them() {
        let line = |r: &'static [u8]| r.strip_suffix(b"\r\n").unwrap();
        assert!(parse_reply(line(REPLY_OK)).is_ok());
        assert!(matches!(parse_reply(line(REPLY_NO)), Err(DlistError::NotOk(n)) if n == "NO"));
    }
}
