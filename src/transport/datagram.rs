//! The notifyd datagram transport: one unbound AF_UNIX SOCK_DGRAM socket kept
//! for the life of the process (stock opens and closes one per event),
//! connected to the listener it sends to, so that the kernel resolves the
//! path once per batch (to see a replaced listener, as stock does per
//! event), not once per datagram, and a busy listener can be waited for.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// The most datagrams one `send_batch` sends: its headers live on the stack.
pub(crate) const BATCH_MAX: usize = 64;

pub struct DatagramSocket {
    fd: OwnedFd,
    /// The path the socket is connected to, if any, and the socket file's
    /// identity (device, inode) then.
    peer: RefCell<Option<(String, (u64, u64))>>,
}

/// Build a `sockaddr_un` for `path`; paths that do not fit `sun_path` (with
/// its NUL) are refused instead of being cut as stock's strlcpy does.
pub fn unix_addr(path: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    // With the errno the counters report (LAST_ERRNO), as a syscall would.
    // (not ENOENT for an empty path: that would mean "absent, retry")
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

impl DatagramSocket {
    /// A new socket; `send_timeout` bounds how long a full receiver queue can
    /// hold the sender.
    pub fn new(send_timeout: Duration) -> io::Result<Self> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: send_timeout.as_secs() as libc::time_t,
            tv_usec: send_timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: valid fd, option value points to a timeval of the given size.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DatagramSocket {
            fd,
            peer: RefCell::new(None),
        })
    }

    /// Wait up to `timeout` for room at the connected listener (its queue
    /// was full); true when there is room. A connected datagram socket is
    /// woken by the listener's reads, so a busy listener costs a wait, not
    /// a guessed sleep.
    pub fn wait_writable(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        r > 0 && pfd.revents & libc::POLLOUT != 0
    }

    /// Resolve the path again on the next send.
    pub fn forget_peer(&self) {
        self.peer.replace(None);
    }

    /// Connect to the listener at `path` unless connected to it already;
    /// true when this call connected.
    fn connect_to(&self, path: &str) -> io::Result<bool> {
        let (addr, len) = unix_addr(path)?;
        let id = std::fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .inspect_err(|_| self.forget_peer())?;
        if let Some((p, was)) = &*self.peer.borrow() {
            if p == path && *was == id {
                return Ok(false);
            }
        }
        self.peer.replace(None);
        // SAFETY: valid fd; addr is a sockaddr_un of `len` bytes.
        let r = unsafe {
            libc::connect(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.peer.replace(Some((path.to_owned(), id)));
        Ok(true)
    }

    /// SO_SNDBUF, from which stock derives its datagram size limit.
    pub fn send_buffer(&self) -> io::Result<usize> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd; v and len are valid for writes of their sizes.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v.max(0) as usize)
    }

    pub fn send_to(&self, path: &str, data: &[u8]) -> io::Result<()> {
        match self.send_batch(path, &[data], false) {
            (1, _) => Ok(()),
            (_, e) => {
                Err(e.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::WriteZero, "datagram not sent")
                }))
            }
        }
    }

    /// Send datagrams to `path` with one `sendmmsg` call, at most
    /// `BATCH_MAX` of them. Returns how many went out and, when not all
    /// did, the error that stopped the first one left. `nonblocking` turns
    /// a full receiver into `EAGAIN` at once.
    pub fn send_batch(
        &self,
        path: &str,
        datagrams: &[&[u8]],
        nonblocking: bool,
    ) -> (usize, Option<io::Error>) {
        let datagrams = &datagrams[..datagrams.len().min(BATCH_MAX)];
        if datagrams.is_empty() {
            return (0, None);
        }
        // On the stack: allocated per call, the headers met the callers'
        // allocations on glibc's arena lock, where a caller then slept.
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid.
        let mut iovs: [libc::iovec; BATCH_MAX] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
        for ((iov, h), d) in iovs.iter_mut().zip(msgs.iter_mut()).zip(datagrams) {
            iov.iov_base = d.as_ptr() as *mut libc::c_void;
            iov.iov_len = d.len();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        let msgs = &mut msgs[..datagrams.len()];
        let flags = libc::MSG_NOSIGNAL | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        let mut fresh = false;
        let n = loop {
            match self.connect_to(path) {
                Ok(connected) => fresh |= connected,
                Err(e) => return (0, Some(e)),
            }
            // SAFETY: every header points at a live iovec, which outlives the call.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    msgs.len() as libc::c_uint,
                    flags,
                )
            };
            // A signal on the calling thread (sync mode: Cyrus's own
            // thread) interrupted a send waiting for room: try again.
            let errno = (n < 0).then(|| io::Error::last_os_error().raw_os_error());
            if errno == Some(Some(libc::EINTR)) {
                continue;
            }
            // A new listener that got the old one's inode number looks
            // like the old one: refused, it is connected to and tried once.
            if errno == Some(Some(libc::ECONNREFUSED)) && !fresh {
                self.forget_peer();
                continue;
            }
            break n;
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            // The listener went away: find the path's new one next time.
            if e.raw_os_error() != Some(libc::EAGAIN) {
                self.forget_peer();
            }
            return (0, Some(e));
        }
        let n = n as usize;
        if let Some(short) = msgs[..n]
            .iter()
            .zip(datagrams)
            .position(|(m, d)| m.msg_len as usize != d.len())
        {
            return (
                short,
                Some(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "short datagram write",
                )),
            );
        }
        (n, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::path::PathBuf;

    /// A fresh directory for one test, and the socket path in it.
    fn scratch(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("cmev-dg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        (dir, path)
    }

    #[test]
    fn sends_to_a_bound_socket() {
        let (dir, path) = scratch("send");
        let rx = UnixDatagram::bind(&path).unwrap();
        let s = DatagramSocket::new(Duration::from_secs(1)).unwrap();
        assert!(s.send_buffer().unwrap() > 0);
        s.send_to(path.to_str().unwrap(), b"x\0y").unwrap();
        let mut buf = [0u8; 16];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"x\0y");
        let (sent, err) = s.send_batch(path.to_str().unwrap(), &[b"a", b"bb", b"ccc"], true);
        assert_eq!((sent, err.is_none()), (3, true));
        for want in [&b"a"[..], b"bb", b"ccc"] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One call sends at most BATCH_MAX, in order, and says so; the caller
    /// sends the rest with the next.
    #[test]
    fn a_batch_is_cut_at_its_most() {
        let (dir, path) = scratch("max");
        let rx = UnixDatagram::bind(&path).unwrap();
        // Long enough for a loaded machine; the wait also shows nothing
        // beyond the batch arrives.
        rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while let Ok(n) = rx.recv(&mut buf) {
                got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
            }
            got
        });
        let texts: Vec<String> = (0..BATCH_MAX + 10).map(|i| i.to_string()).collect();
        let datagrams: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
        let s = DatagramSocket::new(Duration::from_secs(5)).unwrap();
        let (sent, err) = s.send_batch(path.to_str().unwrap(), &datagrams, false);
        assert_eq!((sent, err.is_none()), (BATCH_MAX, true));
        assert_eq!(reader.join().unwrap(), texts[..BATCH_MAX]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn follows_a_replaced_listener() {
        let (dir, path) = scratch("re");
        let p = path.to_str().unwrap();
        let s = DatagramSocket::new(Duration::from_secs(1)).unwrap();
        let mut buf = [0u8; 16];
        let first = UnixDatagram::bind(&path).unwrap();
        s.send_to(p, b"one").unwrap();
        assert_eq!(first.recv(&mut buf).unwrap(), 3);
        // Gone: absent, then a new listener at the same path gets the next.
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let e = s.send_to(p, b"lost").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let second = UnixDatagram::bind(&path).unwrap();
        s.send_to(p, b"two").unwrap();
        assert_eq!(second.recv(&mut buf).unwrap(), 3);
        // Replaced while the old one still listens: found at the next send.
        std::fs::remove_file(&path).unwrap();
        let third = UnixDatagram::bind(&path).unwrap();
        s.send_to(p, b"three").unwrap();
        assert_eq!(third.recv(&mut buf).unwrap(), 5);
        drop(second);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_paths() {
        let s = DatagramSocket::new(Duration::from_secs(1)).unwrap();
        let long = "/".repeat(200);
        assert_eq!(
            s.send_to(&long, b"x").unwrap_err().raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
        assert_eq!(
            s.send_to("", b"x").unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        let e = s.send_to("/nonexistent/dir/notify", b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
