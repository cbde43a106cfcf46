//! The `dlist:` transport (notifysocket = `dlist:/path`), which Cyrus's own
//! test suite listens on: one stream connection per event carrying a dlist
//! `NOTIFY` kvlist, answered by a dlist whose name is `OK` on success.
//! Unlike stock, every step is bounded by a timeout, so a stalled listener
//! costs at most that long, and never on the caller's thread when queued.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Replies longer than this are not a dlist reply to NOTIFY.
const MAX_REPLY: usize = 4096;

#[derive(Debug)]
pub enum DlistError {
    /// No complete reply within the timeout (includes a stalled listener).
    Timeout,
    /// Could not connect or write (listener absent, refused, closed early).
    Io(io::Error),
    /// The peer answered something that is not a dlist reply line.
    Garbage,
    /// A well-formed reply other than OK (its name).
    NotOk(String),
}

impl std::fmt::Display for DlistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DlistError::Timeout => write!(f, "no reply within the dlist timeout"),
            DlistError::Io(e) => write!(f, "{e}"),
            DlistError::Garbage => write!(f, "reply is not a dlist"),
            DlistError::NotOk(n) => write!(f, "reply {n}"),
        }
    }
}

/// A dlist atom is written bare when it is made of these; otherwise as a
/// literal, which carries any bytes.
fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

fn push_value(out: &mut Vec<u8>, v: &str) {
    if is_atom(v) && v != "NIL" {
        out.extend_from_slice(v.as_bytes());
    } else {
        out.extend_from_slice(format!("{{{}+}}\r\n", v.len()).as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
}

/// The request stock's `notify_dlist` writes for an event.
pub fn frame(method: &str, json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 128);
    out.extend_from_slice(b"NOTIFY %(METHOD ");
    push_value(&mut out, method);
    out.extend_from_slice(b" CLASS EVENT PRIORITY NIL USER NIL MAILBOX NIL OPTIONS () MESSAGE ");
    push_value(&mut out, json);
    out.extend_from_slice(b" FILEPATH NIL)\r\n");
    out
}

/// Check a complete reply line (without CRLF): its first token is the
/// reply's name, and only `OK` is success.
pub fn parse_reply(line: &[u8]) -> Result<(), DlistError> {
    let name_len = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let rest = &line[name_len..];
    if name_len == 0
        || !(rest.is_empty() || rest[0] == b' ')
        || line.iter().any(|b| b.is_ascii_control())
    {
        return Err(DlistError::Garbage);
    }
    match &line[..name_len] {
        b"OK" => Ok(()),
        other => Err(DlistError::NotOk(
            String::from_utf8_lossy(other).into_owned(),
        )),
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Connect without blocking: a listener whose backlog is full (one that
/// never accepts) makes connect() fail with EAGAIN instead of hanging.
fn connect(path: &str, deadline: Instant) -> Result<UnixStream, DlistError> {
    let (addr, len) = super::datagram::unix_addr(path).map_err(DlistError::Io)?;
    loop {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(DlistError::Io(io::Error::last_os_error()));
        }
        // SAFETY: fd is fresh and ours.
        let s = unsafe { UnixStream::from_raw_fd(fd) };
        // SAFETY: valid fd and address of the given length.
        let r = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
        if r == 0 {
            s.set_nonblocking(false).map_err(DlistError::Io)?;
            return Ok(s);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(DlistError::Io(e));
        }
        if Instant::now() >= deadline {
            return Err(DlistError::Timeout);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Deliver one framed request to the listener at `path`, all within `timeout`.
pub fn send(path: &str, request: &[u8], timeout: Duration) -> Result<(), DlistError> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut s = connect(path, deadline)?;
    // Not write_all with SO_SNDTIMEO: that timeout bounds each wait for
    // buffer space, not the call, so a peer that reads a little now and
    // then holds the sender for as long as the request takes. Non-blocking
    // writes and poll() against the deadline instead.
    s.set_nonblocking(true).map_err(DlistError::Io)?;
    let mut sent = 0;
    while sent < request.len() {
        match s.write(&request[sent..]) {
            Ok(0) => return Err(DlistError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let wait = deadline.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    return Err(DlistError::Timeout);
                }
                let mut pfd = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe {
                    libc::poll(
                        &mut pfd,
                        1,
                        wait.as_millis().clamp(1, i32::MAX as u128) as i32,
                    )
                };
            }
            Err(e) => return Err(DlistError::Io(e)),
        }
    }
    s.set_nonblocking(false).map_err(DlistError::Io)?;
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        if let Some(end) = reply.windows(2).position(|w| w == b"\r\n") {
            return parse_reply(&reply[..end]);
        }
        if reply.len() > MAX_REPLY {
            return Err(DlistError::Garbage);
        }
        if Instant::now() >= deadline {
            return Err(DlistError::Timeout);
        }
        s.set_read_timeout(Some(left())).map_err(DlistError::Io)?;
        match s.read(&mut buf) {
            Ok(0) if reply.is_empty() => {
                return Err(DlistError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed without a reply",
                )))
            }
            Ok(0) => return Err(DlistError::Garbage),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if timed_out(&e) => return Err(DlistError::Timeout),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DlistError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    #[test]
    fn frame_like_stock() {
        let json = "{\"event\":\"Login\"}";
        assert_eq!(
            frame("pusher", json),
            format!(
                "NOTIFY %(METHOD pusher CLASS EVENT PRIORITY NIL USER NIL MAILBOX NIL OPTIONS () MESSAGE {{{}+}}\r\n{json} FILEPATH NIL)\r\n",
                json.len()
            )
            .into_bytes()
        );
        assert!(frame("a b", "x").starts_with(b"NOTIFY %(METHOD {3+}\r\na b CLASS"));
    }

    #[test]
    fn replies() {
        assert!(parse_reply(b"OK").is_ok());
        assert!(parse_reply(b"OK %()").is_ok());
        assert!(matches!(parse_reply(b"NO %(ERROR x)"), Err(DlistError::NotOk(n)) if n == "NO"));
        for bad in [&b""[..], b" OK", b"\x01\x02", b"OK\x00", b"{5+}"] {
            assert!(
                matches!(parse_reply(bad), Err(DlistError::Garbage)),
                "{bad:?}"
            );
        }
    }

    fn listener(
        name: &str,
        answer: Option<&'static [u8]>,
    ) -> (String, thread::JoinHandle<Vec<u8>>) {
        let dir = std::env::temp_dir().join(format!("cmev-dl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify").to_str().unwrap().to_owned();
        let l = UnixListener::bind(&path).unwrap();
        let h = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut got = vec![0u8; 4096];
            let n = c.read(&mut got).unwrap();
            got.truncate(n);
            match answer {
                Some(a) => c.write_all(a).unwrap(),
                None => thread::sleep(Duration::from_millis(400)),
            }
            let _ = std::fs::remove_dir_all(&dir);
            got
        });
        (path, h)
    }

    #[test]
    fn ok_timeout_and_garbage() {
        let (p, h) = listener("ok", Some(b"OK %()\r\n"));
        send(&p, &frame("log", "{}"), Duration::from_secs(2)).unwrap();
        assert!(h.join().unwrap().starts_with(b"NOTIFY %(METHOD log"));

        let (p, h) = listener("stall", None);
        let t = Instant::now();
        assert!(matches!(
            send(&p, &frame("log", "{}"), Duration::from_millis(100)),
            Err(DlistError::Timeout)
        ));
        assert!(t.elapsed() < Duration::from_millis(350));
        h.join().unwrap();

        let (p, h) = listener("garbage", Some(b"\x00\x01garbage\r\n"));
        assert!(matches!(
            send(&p, &frame("log", "{}"), Duration::from_secs(2)),
            Err(DlistError::Garbage)
        ));
        h.join().unwrap();

        assert!(matches!(
            send("/nonexistent/x", b"", Duration::from_secs(1)),
            Err(DlistError::Io(_))
        ));
    }
}

/// A NOTIFY request as a listener receives it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub class: String,
    pub message: Vec<u8>,
}

/// Parse one `NOTIFY %(KEY value ...)` request at the start of `buf`.
/// Returns the request and the bytes it used, `None` until it is complete,
/// or an error for bytes that are not such a request. Values are atoms,
/// `NIL`, quoted strings, literals (`{N+}\r\n` / `{N}\r\n`) or
/// parenthesised lists (skipped).
pub fn parse_request(buf: &[u8]) -> Option<Result<(Request, usize), ()>> {
    let mut p = Parser {
        buf,
        pos: 0,
        depth: 0,
    };
    match p.request() {
        Ok(req) => Some(Ok((req, p.pos))),
        Err(Stop::Incomplete) => None,
        Err(Stop::Invalid) => Some(Err(())),
    }
}

enum Stop {
    Incomplete,
    Invalid,
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Lists open around `pos`: bounded, so hostile nesting cannot
    /// exhaust the stack.
    depth: usize,
}

/// Deeper nesting than any NOTIFY request has is refused.
const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.buf.get(self.pos).copied().ok_or(Stop::Incomplete)
    }

    fn expect(&mut self, s: &[u8]) -> Result<(), Stop> {
        for &b in s {
            if self.peek()? != b {
                return Err(Stop::Invalid);
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<&[u8], Stop> {
        let start = self.pos;
        while self.peek()?.is_ascii_graphic() && !b"(){}%\"".contains(&self.peek()?) {
            self.pos += 1;
        }
        Ok(&self.buf[start..self.pos])
    }

    fn quoted(&mut self) -> Result<Vec<u8>, Stop> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    out.push(self.peek()?);
                }
                c => out.push(c),
            }
            self.pos += 1;
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, Stop> {
        self.pos += 1;
        let digits = self.atom()?;
        let n: usize = std::str::from_utf8(digits.strip_suffix(b"+").unwrap_or(digits))
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(Stop::Invalid)?;
        self.expect(b"}\r\n")?;
        let end = self.pos.checked_add(n).ok_or(Stop::Invalid)?;
        let v = self
            .buf
            .get(self.pos..end)
            .ok_or(Stop::Incomplete)?
            .to_vec();
        self.pos = end;
        Ok(v)
    }

    fn skip_list(&mut self) -> Result<(), Stop> {
        if self.peek()? == b'%' {
            self.pos += 1;
        }
        self.expect(b"(")?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Invalid);
        }
        while self.peek()? != b')' {
            if self.peek()? == b' ' {
                self.pos += 1;
            } else {
                self.value()?;
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(())
    }

    /// One value; lists are skipped and give an empty string.
    fn value(&mut self) -> Result<Vec<u8>, Stop> {
        match self.peek()? {
            b'"' => self.quoted(),
            b'{' => self.literal(),
            b'(' | b'%' => self.skip_list().map(|()| Vec::new()),
            _ => {
                let a = self.atom()?;
                if a.is_empty() {
                    return Err(Stop::Invalid);
                }
                Ok(if a == b"NIL" { Vec::new() } else { a.to_vec() })
            }
        }
    }

    fn request(&mut self) -> Result<Request, Stop> {
        let head = b"NOTIFY %(";
        let n = head.len().min(self.buf.len());
        if self.buf[..n] != head[..n] {
            return Err(Stop::Invalid);
        }
        self.expect(head)?;
        let mut req = Request {
            method: String::new(),
            class: String::new(),
            message: Vec::new(),
        };
        loop {
            match self.peek()? {
                b')' => {
                    self.pos += 1;
                    self.expect(b"\r\n")?;
                    return Ok(req);
                }
                b' ' => self.pos += 1,
                _ => {
                    let key = self.atom()?.to_vec();
                    self.expect(b" ")?;
                    let v = self.value()?;
                    match key.as_slice() {
                        b"METHOD" => req.method = String::from_utf8_lossy(&v).into_owned(),
                        b"CLASS" => req.class = String::from_utf8_lossy(&v).into_owned(),
                        b"MESSAGE" => req.message = v,
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn round_trips_our_frame() {
        let json = "{\"event\":\"MessageNew\",\"uri\":\"imap://h/a b\"}";
        let f = frame("pusher", json);
        let (req, used) = parse_request(&f).unwrap().unwrap();
        assert_eq!(used, f.len());
        assert_eq!(
            req,
            Request {
                method: "pusher".into(),
                class: "EVENT".into(),
                message: json.as_bytes().to_vec()
            }
        );
        for cut in 0..f.len() {
            assert!(parse_request(&f[..cut]).is_none(), "cut at {cut}");
        }
        assert_eq!(parse_request(b"HELLO\r\n"), Some(Err(())));
        let quoted = b"NOTIFY %(METHOD \"x\\\"y\" MESSAGE \"{}\" OPTIONS (a b))\r\n";
        let (req, _) = parse_request(quoted).unwrap().unwrap();
        assert_eq!(
            (req.method.as_str(), req.message.as_slice()),
            ("x\"y", &b"{}"[..])
        );
    }
}
