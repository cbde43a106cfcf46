//! The spool: a directory of ring files (`journal`), one per process that
//! queues events, so that what a process acknowledged outlives it. Each
//! queued event is copied into the process's ring on the caller's thread
//! (memory writes into a shared mapping: no system call) before `notify`
//! returns, and marked done when it is sent or counted; a process that dies
//! leaves its ring to another (`adopt`).
//!
//! The ring is made on the first queued event, under a temporary name,
//! locked (`flock`, held until the process ends: the lock is how others know
//! the owner lives), given its disk space (so that writing into the mapping
//! can never fault for lack of it) and only then named `*.ring`, so that no
//! other process opens one half made. The directory must belong to Cyrus's
//! user and be closed to others, since events carry message contents and
//! addresses; the files are readable by that user alone.
//!
//! With `event_delivery: relay` the ring is cmev-relay's to read (`leave`,
//! and `journal`'s text on relayed rings): the process writes each event
//! there and nothing else, and sends it itself only when no relay reads the
//! ring or the ring is full.

use crate::config::{Config, Delivery};
use crate::counters::{bump, Counter};
use crate::journal::{mono_ms, Journal, Owner, HEADER};
use crate::log;
use crate::outgoing::{clock_ms, Outgoing};
use crate::process_local::ProcessLocal;
use crate::record::{encode, encoded_len, has_foreign, resolve_foreign, Target};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a relayed ring is presumed read after cmev-relay last said so
/// (and after it is made, so that a relay has time to find it): past that
/// its process sends its events itself. The relay renews it every second.
pub const RELAY_LEASE: Duration = Duration::from_secs(5);

/// A ring file mapped whole, with its lock (the open file).
pub struct Mapped {
    pub journal: Journal,
    /// The number of the next event this process spools.
    seq: AtomicU64,
    pub path: PathBuf,
    pub fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is shared memory reached through `Journal`'s atomics.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: mapped in `map`, and no reference into it outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Map `len` bytes of `fd` shared, read and write.
pub fn map(fd: &OwnedFd, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh mapping of an open file; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // A mapping holds its open file, and with it the file's lock: copied
    // into a forked child, it kept a dead parent's ring locked for as long
    // as the child lived. No reference into it survives in a child (see
    // `forget_in_child`), and failing only costs that.
    // SAFETY: the mapping just made, whole.
    unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) };
    Ok(NonNull::new(p.cast()).expect("mmap does not return NULL"))
}

impl Mapped {
    /// Wrap a mapping made by `map`; unmapped when dropped.
    pub fn new(
        journal: Journal,
        path: PathBuf,
        fd: OwnedFd,
        base: NonNull<u8>,
        len: usize,
    ) -> Mapped {
        Mapped {
            journal,
            seq: AtomicU64::new(0),
            path,
            fd,
            base,
            len,
        }
    }
}

/// Take the lock that says the ring's owner lives; false if another holds it.
pub fn try_lock(fd: &OwnedFd) -> bool {
    // SAFETY: an open descriptor.
    unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Take the lock that says who reads a ring and frees its space besides
/// its owner's sender: an open file description lock on its first byte,
/// apart from the `flock` of its owner, so that a relay can hold it while
/// the owner lives. False if another holds it.
pub fn try_lock_reader(fd: &OwnedFd) -> bool {
    // SAFETY: a zeroed flock is valid; the fields set below are its request.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    lk.l_len = 1;
    // SAFETY: an open descriptor and an initialised request.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lk) == 0 }
}

/// Open `path` for reading and writing, not following a symbolic link.
pub fn open_rw(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW | flags,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just opened, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The directory, made if missing; refused unless it is a directory of this
/// user's that no one else can write to.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Another process starting at the same time may make it first;
            // it is then checked as any directory found.
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(format!("cannot be made: {e}"))
                }
                _ => fs::metadata(dir).map_err(|e| e.to_string())?,
            }
        }
        r => r.map_err(|e| e.to_string())?,
    };
    // SAFETY: no arguments, cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        return Err("is not a directory".into());
    }
    if meta.uid() != me {
        return Err(format!(
            "belongs to uid {}, not to this process's {me}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Make this process's ring in `dir`, left to cmev-relay if `relayed`.
pub(crate) fn create(dir: &Path, size: usize, relayed: bool) -> Result<Mapped, String> {
    check_dir(dir)?;
    let pid = std::process::id();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut made = None;
    for n in 0..16 {
        let tmp = dir.join(format!(".{pid}-{stamp:x}-{n}.new"));
        match open_rw(&tmp, libc::O_CREAT | libc::O_EXCL) {
            Ok(fd) => {
                made = Some((tmp, fd));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create a file: {e}")),
        }
    }
    let (tmp, fd) = made.ok_or("cannot find a free file name")?;
    let path = dir.join(format!("{pid}-{stamp:x}.ring"));
    let ring = make_ring(fd, size, pid, relayed).and_then(|mut m| {
        fs::rename(&tmp, &path).map_err(|e| format!("cannot name the ring: {e}"))?;
        m.path = path;
        Ok(m)
    });
    if ring.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    ring
}

fn make_ring(fd: OwnedFd, size: usize, pid: u32, relayed: bool) -> Result<Mapped, String> {
    if !try_lock(&fd) {
        return Err("cannot lock a new file".into());
    }
    let len = HEADER + size;
    // SAFETY: an open descriptor; the range is the whole file.
    let rc = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len as libc::off_t) };
    if rc != 0 {
        return Err(format!(
            "has no room for a ring of {len} bytes: {}",
            io::Error::from_raw_os_error(rc)
        ));
    }
    let base = map(&fd, len).map_err(|e| format!("cannot map a ring: {e}"))?;
    let now = clock_ms();
    let owner = Owner {
        pid,
        clock_start: now_ms().saturating_sub(now.into()),
        clock_mono: mono_ms().saturating_sub(now.into()),
        relayed: relayed.then(|| now.wrapping_add(RELAY_LEASE.as_millis() as u32)),
    };
    // SAFETY: a fresh mapping of `len` bytes, page-aligned, which this
    // process never unmaps while it uses the ring.
    let journal = unsafe { Journal::format(base, len, owner) };
    Ok(Mapped::new(journal, PathBuf::new(), fd, base, len))
}

/// This process's ring: made on the first queued event, once; `None` if
/// the spool is off or could not be had (logged then). Threads queueing
/// their first events at once wait for the one making it (`OnceLock`),
/// where each making its own left the others' rings behind. The lock is
/// process-local, so that a child forked while its parent made the ring
/// does not wait for a thread it lacks.
static OWN: ProcessLocal<OnceLock<Option<Mapped>>> = ProcessLocal::new();

/// This process's ring, if it has one by now.
fn mapped() -> Option<&'static Mapped> {
    OWN.get()?.get()?.as_ref()
}

fn own(cfg: &Config) -> Option<&'static Mapped> {
    if cfg.spool_size == 0 {
        return None;
    }
    OWN.get_or_init(OnceLock::new)
        .get_or_init(|| {
            let dir = cfg.spool_dir();
            create(
                Path::new(&dir),
                cfg.spool_size,
                cfg.delivery == Delivery::Relay,
            )
            .inspect_err(|why| {
                log::error(&format!(
                    "mboxevent: event spool {dir} {why}: queued events are kept in memory only \
                     and lost if this process dies"
                ))
            })
            .ok()
        })
        .as_ref()
}

/// The directory of this process's ring, if it has one.
pub fn own_dir() -> Option<PathBuf> {
    mapped()?.path.parent().map(Path::to_path_buf)
}

/// The path of this process's ring, if it has one.
pub fn own_path() -> Option<&'static Path> {
    Some(&mapped()?.path)
}

/// Copy a notification into this process's ring before it is queued; it
/// then carries the mark that frees the copy. Without a ring (or room in
/// it) the notification goes on in memory only, counted. The caller's JSON
/// values (jmapEmail) are not written here, where writing them would cost
/// the caller more than all the rest: the record marks them pending and
/// the sender rewrites it with them (`complete`).
pub fn keep(out: &mut Outgoing) {
    if out.cfg.spool_size == 0 {
        return;
    }
    // A relayed ring's records are the relay's to send: one of an event
    // this process sends too would go out twice.
    let Some(m) = own(&out.cfg).filter(|m| !m.journal.relayed()) else {
        bump(Counter::Unspooled);
        return;
    };
    let seq = m.seq.fetch_add(1, Ordering::Relaxed);
    if !append(m, out, seq) {
        bump(Counter::Unspooled);
    }
}

/// Why a notification for cmev-relay was not left in the ring.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum NotLeft {
    /// The spool is off or its ring could not be made (or was made for
    /// another `event_delivery`).
    NoRing = 1,
    /// No relay has renewed the ring's lease.
    NoRelay,
    /// No room left in the ring.
    Full,
}

/// The last reason `leave` gave, 0 while events are left: logged when it
/// changes, not for every event.
static FALLBACK: AtomicU8 = AtomicU8::new(0);

/// With `event_delivery: relay`: write the notification into this process's
/// ring for cmev-relay and do nothing more with it (true); memory writes
/// only, the lease compared with the time the event was made. False when
/// no relay reads the ring, the ring is full, or there is none: the caller
/// then sends it itself, counted (`RelayFallback`) and logged when that
/// starts. The caller's JSON values (jmapEmail) are written here, since no
/// sender comes after.
pub fn leave(out: &mut Outgoing) -> bool {
    let left = match own(&out.cfg).filter(|m| m.journal.relayed()) {
        None => Err(NotLeft::NoRing),
        Some(m) if !m.journal.lease_holds(out.made_ms) => Err(NotLeft::NoRelay),
        Some(m) => {
            if has_foreign(&out.body) {
                resolve_foreign(&mut out.body);
            }
            let seq = m.seq.fetch_add(1, Ordering::Relaxed);
            let to = Target::of(out);
            let n = encoded_len(out, &to);
            m.journal
                .write(n, |b| encode(out, &to, seq, b))
                .map(|_| ())
                .ok_or(NotLeft::Full)
        }
    };
    match left {
        Ok(()) => {
            bump(Counter::Relayed);
            if FALLBACK.load(Ordering::Relaxed) != 0 && FALLBACK.swap(0, Ordering::Relaxed) != 0 {
                log::warning(&format!(
                    "mboxevent: cmev-relay reads {} again: events are left to it",
                    own_path().map_or(String::new(), |p| p.display().to_string())
                ));
            }
            true
        }
        Err(why) => {
            bump(Counter::RelayFallback);
            if FALLBACK.load(Ordering::Relaxed) != why as u8
                && FALLBACK.swap(why as u8, Ordering::Relaxed) != why as u8
            {
                log_fallback(why);
            }
            false
        }
    }
}

fn log_fallback(why: NotLeft) {
    let ring = own_path().map_or(String::new(), |p| p.display().to_string());
    let reason = match why {
        NotLeft::NoRing => "event_delivery: relay has no spool ring to leave events in".to_owned(),
        NotLeft::NoRelay => format!(
            "no cmev-relay has read {ring} for {} s",
            RELAY_LEASE.as_secs()
        ),
        NotLeft::Full => format!("{ring} is full: cmev-relay is behind"),
    };
    log::error(&format!(
        "mboxevent: {reason}; this process sends its events itself until that changes \
         (counted as relay fallback)"
    ));
}

/// On the sender's thread: write the caller's JSON values of a spooled
/// notification into a new record of it, which replaces the first (same
/// number, so a reader keeps the order). Until then a death of the process
/// sends the event without them (see `adopt`).
pub fn complete(out: &mut Outgoing) {
    if !out.body.spooled.is_set() || !has_foreign(&out.body) {
        return;
    }
    resolve_foreign(&mut out.body);
    let Some(m) = mapped() else { return };
    let seq = out.body.spooled.seq();
    append(m, out, seq);
}

/// Append `out` to `m`'s ring; its mark (dropping any earlier one, which
/// frees the record replaced) once the copy is whole. False if full.
fn append(m: &Mapped, out: &mut Outgoing, seq: u64) -> bool {
    let to = Target::of(out);
    let n = encoded_len(out, &to);
    let mark = m.journal.append(n, seq, |b| encode(out, &to, seq, b));
    drop(to);
    match mark {
        Some(mark) => {
            out.body.spooled = mark;
            true
        }
        None => {
            static LOGGED: AtomicBool = AtomicBool::new(false);
            if !LOGGED.swap(true, Ordering::Relaxed) {
                log::error(&format!(
                    "mboxevent: event spool {} has no room for an event of {n} bytes ({} of {} \
                     bytes in use): events that do not fit are kept in memory only (logged once)",
                    m.path.display(),
                    m.journal.used(),
                    m.journal.capacity()
                ));
            }
            false
        }
    }
}

/// Free the ring's space of the records done with (the sender's job,
/// except in a relayed ring: its relay is its one freer).
pub fn advance() {
    if let Some(m) = mapped().filter(|m| !m.journal.relayed()) {
        m.journal.advance();
    }
}

/// At exit: an emptied ring goes; one still holding events stays for
/// another process to send them (the flush has said so).
pub fn close_at_exit() {
    let Some(m) = mapped() else { return };
    // Not `advance`: the sender may be freeing at this moment, and two
    // threads freeing the same records subtract them from `used` twice.
    if m.journal.all_done() {
        let _ = fs::remove_file(&m.path);
    }
}

/// In a forked child: the parent's ring stays the parent's. The child
/// closes its copy of the descriptor and has no copy of the mapping (`map`),
/// so that the lock goes with the parent; the marks pointing into it are on
/// the parent's queued events, which the child never drops.
pub fn forget_in_child() {
    if let Some(m) = mapped() {
        // SAFETY: the child's own copy of the descriptor; the parent's stays
        // open. The leaked `Mapped` never closes it again.
        unsafe { libc::close(m.fd.as_raw_fd()) };
    }
    OWN.forget();
}
