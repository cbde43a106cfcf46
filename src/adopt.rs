//! Taking over the spool rings of processes that ended without sending all
//! they queued (killed, crashed, or gone while the listener was away). The
//! directory is searched about every `SCAN_EVERY` by one of the senders, not
//! by each (hundreds of imapd processes would each open every ring): the
//! time of the last search is the modification time of `.scan`, and its
//! lock says who searches now. A ring whose lock the searcher can take has
//! no living owner. Its events are copied into this process's own ring and
//! queue, oldest first, while the queue has room (`Queue::offer`), each
//! marked done in the dead ring once it is safe in ours; the emptied ring
//! is removed.
//!
//! At least once: the dead process may have sent its last batch without
//! living to mark it done, so that batch arrives twice, byte for byte the
//! same (same timestamp, pid and values), which is how a consumer tells a
//! repeat. Records the dead process was still writing (or had reserved
//! and not begun), and files that are not rings, are counted (`SpoolLost`)
//! and logged; a file that is not a ring is renamed `*.bad` for
//! inspection, not read again.
//!
//! Another program can take rings over the same way and deliver their
//! events itself (`Claimed`, which cmev-relay uses): it reads them rendered
//! as their process would have sent them, keeps them safe, and only then
//! marks them done, so that a claimer that dies leaves the ring to the
//! next with nothing lost. It can also read the ring of a living process
//! that leaves its events to it (`event_delivery: relay`, `Served`).
//!
//! Whoever reads a ring holds its reader's lock (`spool::try_lock_reader`)
//! as well as, for a dead process's ring, its owner's: so a ring is read,
//! and its space freed, by one reader at a time, whether its owner died
//! while a relay read it or not.

use crate::counters::{bump, Counter, COUNTERS};
use crate::journal::Journal;
use crate::log;
use crate::mark::{COMMITTED, DONE, PAD, WRITING};
use crate::outgoing::{clock_ms, Outgoing};
use crate::queue::Queue;
use crate::record::{Decoded, Decoder};
use crate::spool::{self, map, open_rw, try_lock, try_lock_reader, Mapped, RELAY_LEASE};
use std::collections::VecDeque;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the spool directory is searched for rings of dead processes.
const SCAN_EVERY: Duration = Duration::from_secs(5);
/// How often a sender looks whether a search is due (one `fstat`).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Rings this process has taken over and not yet emptied.
#[derive(Default)]
pub struct Adopter {
    last_look: Option<Instant>,
    /// `.scan` in the spool directory, opened on the first look.
    schedule: Option<OwnedFd>,
    taken: Vec<Taken>,
}

struct Taken {
    ring: Mapped,
    /// Its events, read when it was taken, in the order they were made.
    backlog: VecDeque<Entry>,
    adopted: u64,
    lost: u64,
    left_out: u64,
}

/// One event of a dead process, and its records there (two if it died
/// between rewriting a record and freeing the first, see `spool::complete`).
struct Entry {
    seq: u64,
    records: Vec<usize>,
    out: Outgoing,
    pending: usize,
}

impl Adopter {
    /// Look for dead processes' rings when it is time, and move what they
    /// hold into `queue` while it has room.
    pub fn run(&mut self, queue: &Queue) {
        if !self.last_look.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            self.last_look = Some(Instant::now());
            if let Some(dir) = spool::own_dir() {
                if self.search_due(&dir) {
                    self.scan(&dir);
                    if let Some(fd) = &self.schedule {
                        // SAFETY: an open descriptor we locked.
                        unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
                    }
                }
            }
        }
        self.taken.retain_mut(|t| !drain(t, queue));
    }

    /// Whether this process searches now: the last search is older than
    /// `SCAN_EVERY` (or this is the sender's first look: a process starting
    /// may be the first alive since others died) and no one else searches.
    /// Holds `.scan`'s lock and has set its time when true.
    fn search_due(&mut self, dir: &Path) -> bool {
        let first = self.schedule.is_none();
        if first {
            self.schedule = open_rw(&dir.join(".scan"), libc::O_CREAT).ok();
        }
        let Some(fd) = &self.schedule else {
            return false;
        };
        let raw = fd.as_raw_fd();
        // SAFETY: an open descriptor and a zeroed stat buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(raw, &mut st) } != 0 {
            return false;
        }
        let last = UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32);
        let recent = SystemTime::now()
            .duration_since(last)
            .is_ok_and(|age| age < SCAN_EVERY);
        if (recent && !first) || !try_lock(fd) {
            return false;
        }
        // SAFETY: NULL times: now, for the descriptor we hold.
        unsafe { libc::futimens(raw, std::ptr::null()) };
        true
    }

    fn scan(&mut self, dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let own = spool::own_path();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "new") {
                remove_if_abandoned(&path);
                continue;
            }
            let is_ring = path.extension().is_some_and(|x| x == "ring");
            if !is_ring || Some(path.as_path()) == own || self.holds(&path) {
                continue;
            }
            if let Some(t) = take(path) {
                self.taken.push(t);
            }
        }
    }

    fn holds(&self, path: &Path) -> bool {
        self.taken.iter().any(|t| t.ring.path == path)
    }
}

/// A ring still under its temporary name this long after it was made was
/// abandoned: its maker names it within a few system calls, unless killed.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// Remove a ring its maker died making: it never held an event, but keeps
/// its disk space (`event_spool_size`) for good. Its age tells it from one
/// being made now, not yet locked; the lock, from one whose maker lives.
fn remove_if_abandoned(path: &Path) {
    let old = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > ABANDONED_AFTER));
    if !old {
        return;
    }
    if let Ok(fd) = open_rw(path, 0) {
        if try_lock(&fd) {
            let _ = fs::remove_file(path);
        }
    }
}

/// Open the ring at `path` and take its owner's lock if it is free, and
/// its reader's lock: with whether the owner is gone. `None` if another
/// reads the ring, or if its owner lives and `live_too` is false (then the
/// reader's lock is not even tried, so that it stays free for a relay).
fn open_locked(path: &Path, live_too: bool) -> Option<(OwnedFd, bool)> {
    let fd = open_rw(path, 0).ok()?;
    let owner_gone = try_lock(&fd);
    ((owner_gone || live_too) && try_lock_reader(&fd)).then_some((fd, owner_gone))
}

/// Map the ring in `fd`, whole, and check it.
fn map_ring(path: &Path, fd: OwnedFd) -> Result<Mapped, &'static str> {
    let len = fstat_len(&fd).ok_or("cannot be read")?;
    let mapped = if len == 0 { None } else { map(&fd, len).ok() };
    match mapped {
        None if len == 0 => Err("empty file"),
        None => Err("cannot be mapped"),
        // SAFETY: a mapping of the whole file, which we hold locked; only
        // this thread reads or writes it until it is unmapped.
        Some(base) => match unsafe { Journal::open(base, len) } {
            Ok(j) => Ok(Mapped::new(j, path.to_path_buf(), fd, base, len)),
            Err(e) => {
                // SAFETY: the mapping just made, not used after this.
                unsafe { libc::munmap(base.as_ptr().cast(), len) };
                Err(e.0)
            }
        },
    }
}

/// A dead process's ring, locked by us, read; a file that is no ring is
/// set aside.
fn take_dead(path: &Path, fd: OwnedFd) -> Option<Taken> {
    map_ring(path, fd)
        .inspect_err(|why| set_aside(path, why))
        .ok()
        .map(read)
}

/// Take over the ring at `path` if its owner is gone.
fn take(path: PathBuf) -> Option<Taken> {
    let (fd, _) = open_locked(&path, false)?;
    take_dead(&path, fd)
}

/// Read a dead process's ring whole: its events in the order they were
/// made (records can be out of order: one rewritten goes to the end), each
/// once, the complete copy preferred.
fn read(ring: Mapped) -> Taken {
    let j = &ring.journal;
    let start = j.clock_start();
    let now = now_ms();
    let mut decoder = Decoder::default();
    let mut entries = Vec::new();
    let mut lost = 0;
    // Walked again from the oldest after each gap, which ends a walk.
    'walk: loop {
        entries.clear();
        for r in j.records() {
            let found = match r {
                Ok(f) => f,
                Err(off) => {
                    // Reserved by a writer killed before it wrote the
                    // record's head: that event is lost, not what follows.
                    j.set_gap_done(off, j.gap(off));
                    bump(Counter::SpoolLost);
                    lost += 1;
                    continue 'walk;
                }
            };
            let decoded = match found.tag {
                COMMITTED => decoder.decode(found.payload).ok(),
                WRITING => None,
                _ => continue,
            };
            let Some(d) = decoded else {
                bump(Counter::SpoolLost);
                lost += 1;
                j.set_done(found.at);
                continue;
            };
            // Its age on our clock: the same wall-clock moment.
            let age = now.saturating_sub(start + u64::from(d.made_ms));
            let mut out = Outgoing::new(d.kind, d.body, d.cfg);
            out.made_ms = clock_ms().wrapping_sub(age.min(u32::MAX.into()) as u32);
            entries.push(Entry {
                seq: d.seq,
                records: vec![found.at],
                out,
                pending: d.pending.len(),
            });
        }
        break;
    }
    entries.sort_by_key(|e| (e.seq, e.pending));
    let mut backlog: VecDeque<Entry> = VecDeque::with_capacity(entries.len());
    for e in entries {
        match backlog.back_mut() {
            Some(kept) if kept.seq == e.seq => kept.records.extend(e.records),
            _ => backlog.push_back(e),
        }
    }
    Taken {
        ring,
        backlog,
        adopted: 0,
        lost,
        left_out: 0,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn fstat_len(fd: &impl AsRawFd) -> Option<usize> {
    // SAFETY: an open descriptor and a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0).then_some(st.st_size as usize)
}

/// A file in the spool that is not a ring of ours: renamed, logged and
/// counted, never read again.
fn set_aside(path: &Path, why: &str) {
    bump(Counter::SpoolLost);
    let bad = path.with_extension("bad");
    let _ = fs::rename(path, &bad);
    log::error(&format!(
        "mboxevent: {} is not a readable event spool ring ({why}); its events are lost, \
         the file is kept as {}",
        path.display(),
        bad.display()
    ));
}

/// A dead process's ring, taken over (locked) by a program that delivers
/// its events itself. Dropped without `done`, it is unlocked with its
/// events still in it, for the next claimer.
pub struct Claimed(Taken);

/// One event of a claimed ring.
pub struct ClaimedEvent {
    /// Its number in its process: with the ring's name, it names the event.
    pub seq: u64,
    /// The event's type, as in its JSON (`MessageNew`).
    pub name: &'static str,
    /// The JSON its process would have sent, byte for byte.
    pub json: String,
    /// Its process died before writing the caller's JSON values (jmapEmail):
    /// the JSON is without them.
    pub incomplete: bool,
}

impl ClaimedEvent {
    fn of(seq: u64, out: &Outgoing, pending: usize) -> ClaimedEvent {
        ClaimedEvent {
            seq,
            name: out.kind.name(),
            json: out.render().json,
            incomplete: pending > 0,
        }
    }
}

impl Claimed {
    /// Take over the ring at `path` if its process is gone; `None` if it
    /// lives (or another took it), or if the file is not a ring (then set
    /// aside as `*.bad`, logged and counted).
    pub fn claim(path: &Path) -> Option<Claimed> {
        take(path.to_path_buf()).map(Claimed)
    }

    /// The process that wrote the ring.
    pub fn pid(&self) -> u32 {
        self.0.ring.journal.pid()
    }

    /// Records that could not be read (its process was writing them).
    pub fn lost(&self) -> u64 {
        self.0.lost
    }

    /// Its events in the order they were made, each once, rendered (a
    /// ring holds only events its process queued to send).
    pub fn events(&self) -> Vec<ClaimedEvent> {
        self.0
            .backlog
            .iter()
            .map(|e| ClaimedEvent::of(e.seq, &e.out, e.pending))
            .collect()
    }

    /// Every event is safe elsewhere: mark them done and remove the ring.
    pub fn done(mut self) {
        let t = &mut self.0;
        for e in t.backlog.drain(..) {
            for at in e.records {
                t.ring.journal.set_done(at);
            }
        }
        t.ring.journal.advance();
        let _ = fs::remove_file(&t.ring.path);
    }
}

/// The ring of a living process that leaves its events to cmev-relay
/// (`event_delivery: relay`), read by the relay, which alone marks its
/// records done and frees their space (`journal`'s text on relayed rings).
/// Dropped, it is unlocked with its events still in it, for the next relay.
pub struct Served {
    ring: Mapped,
    decoder: Decoder,
    /// The records of the events `events` last returned, and how many of
    /// them could not be read.
    batch: Vec<usize>,
    batch_lost: u64,
    lost: u64,
}

/// A ring found by `Served::open`.
pub enum Opened {
    /// Its process lives and leaves its events to a relay.
    Live(Served),
    /// Its process is gone: taken over as by `Claimed::claim`.
    Dead(Claimed),
}

impl Served {
    /// The ring at `path`, unless another reads it, or its process lives
    /// and sends its events itself (`None`).
    pub fn open(path: &Path) -> Option<Opened> {
        let (fd, owner_gone) = open_locked(path, true)?;
        if owner_gone {
            return take_dead(path, fd).map(|t| Opened::Dead(Claimed(t)));
        }
        // A living owner's ring is whole once named; one that is not is
        // left to its owner and, after it, to whoever takes it then.
        let ring = map_ring(path, fd).ok()?;
        ring.journal.relayed().then(|| {
            Opened::Live(Served {
                ring,
                decoder: Decoder::default(),
                batch: Vec::new(),
                batch_lost: 0,
                lost: 0,
            })
        })
    }

    /// The process that writes the ring.
    pub fn pid(&self) -> u32 {
        self.ring.journal.pid()
    }

    /// Records that could not be read (damaged), marked done by `done`.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The events not yet marked done, oldest first, at most `max`, up to
    /// the first record its process is still writing; each rendered as its
    /// process would have sent it. Until `done`, the next call returns the
    /// same events again.
    pub fn events(&mut self, max: usize) -> Vec<ClaimedEvent> {
        self.batch.clear();
        self.batch_lost = 0;
        let mut events = Vec::new();
        for r in self.ring.journal.records() {
            let f = match r {
                Ok(f) if f.tag == DONE || f.tag == PAD => continue,
                Ok(f) if f.tag == COMMITTED => f,
                _ => break,
            };
            self.batch.push(f.at);
            match self.decoder.decode(f.payload) {
                Ok(Decoded {
                    kind,
                    seq,
                    body,
                    cfg,
                    pending,
                    ..
                }) => {
                    let out = Outgoing::new(kind, body, cfg);
                    events.push(ClaimedEvent::of(seq, &out, pending.len()));
                }
                Err(_) => self.batch_lost += 1,
            }
            if events.len() == max {
                break;
            }
        }
        events
    }

    /// Records the last `events` found: its events, and records that could
    /// not be read, which `done` marks done too.
    pub fn found(&self) -> usize {
        self.batch.len()
    }

    /// The events `events` returned are safe elsewhere: mark them done and
    /// give their space back to the process.
    pub fn done(&mut self) {
        for at in self.batch.drain(..) {
            self.ring.journal.set_done(at);
        }
        self.ring.journal.advance();
        COUNTERS.add(Counter::SpoolLost, self.batch_lost);
        self.lost += std::mem::take(&mut self.batch_lost);
    }

    /// Tell the process that a relay reads its ring, for `RELAY_LEASE`
    /// from now: it leaves its events here meanwhile.
    pub fn renew(&self) {
        self.ring
            .journal
            .renew_lease(RELAY_LEASE.as_millis() as u32);
    }

    /// Whether its process is gone: its lock is then ours (see `claim`).
    pub fn owner_gone(&self) -> bool {
        try_lock(&self.ring.fd)
    }

    /// Once its process is gone, what the ring still holds, to deliver as
    /// a dead process's ring; `None` (and the ring let go) while it lives.
    pub fn claim(self) -> Option<Claimed> {
        self.owner_gone().then(|| Claimed(read(self.ring)))
    }
}

/// Move what `t` holds into `queue`, as far as there is room; true once
/// the ring is empty and removed.
fn drain(t: &mut Taken, queue: &Queue) -> bool {
    let j = &t.ring.journal;
    while let Some(mut e) = t.backlog.pop_front() {
        let age = clock_ms().wrapping_sub(e.out.made_ms);
        // Each one taken counts as accepted for delivery here, so that
        // `enqueued = sent + dropped + queued` still holds in this process.
        if Duration::from_millis(age.into()) > e.out.cfg.max_age {
            bump(Counter::Enqueued);
            bump(Counter::DroppedExpired);
        } else {
            spool::keep(&mut e.out);
            if let Err(back) = queue.offer(e.out) {
                e.out = back;
                t.backlog.push_front(e);
                break;
            }
            bump(Counter::Enqueued);
            bump(Counter::Adopted);
            t.adopted += 1;
            if e.pending > 0 {
                COUNTERS.add(Counter::JsonLeftOut, e.pending as u64);
                t.left_out += 1;
            }
        }
        // Safe in our ring and queue (or counted): no longer the dead one's.
        for at in e.records {
            j.set_done(at);
        }
    }
    j.advance();
    if !t.backlog.is_empty() {
        return false;
    }
    let _ = fs::remove_file(&t.ring.path);
    report(t);
    true
}

fn report(t: &Taken) {
    if t.adopted + t.lost == 0 {
        return;
    }
    log::warning(&format!(
        "mboxevent: took over {} events left by process {} in {} ({} unreadable, lost; {} sent \
         without the JSON values it had not yet written); its last batch may arrive twice",
        t.adopted,
        t.ring.journal.pid(),
        t.ring.path.display(),
        t.lost,
        t.left_out
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{EventType, Param};
    use crate::config::Config;
    use crate::record::{encode, encoded_len, Target};
    use std::sync::Arc;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cmev-adopt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn write(ring: &Mapped, seq: u64) {
        let mut body = Box::<crate::body::Body>::default();
        body.set_str(Param::Uri, &format!("imap://h/INBOX;UID={seq}"));
        let out = Outgoing::new(EventType::MessageNew, body, Arc::new(Config::default()));
        let to = Target::of(&out);
        let n = encoded_len(&out, &to);
        ring.journal
            .write(n, |b| encode(&out, &to, seq, b))
            .unwrap();
    }

    fn seqs(events: &[ClaimedEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_relay_reads_a_living_process_ring_then_takes_what_it_left() {
        let d = dir("live");
        let own = spool::create(&d, 4096, true).unwrap();
        for seq in 0..3 {
            write(&own, seq);
        }
        let Some(Opened::Live(mut served)) = Served::open(&own.path) else {
            panic!("a living relayed ring is served")
        };
        assert!(Served::open(&own.path).is_none(), "one reader at a time");
        assert!(take(own.path.clone()).is_none(), "no sender takes it");
        assert_eq!(served.pid(), std::process::id());

        let first = served.events(2);
        assert_eq!(seqs(&first), [0, 1]);
        assert!(first[1].json.contains("UID=1"), "{}", first[1].json);
        assert_eq!(seqs(&served.events(10)), [0, 1, 2], "again until done");
        served.done();
        assert_eq!(own.journal.used(), 0, "the relay frees the space");
        assert!(served.events(10).is_empty());

        served.renew();
        assert!(own.journal.lease_holds(crate::outgoing::clock_ms()));
        write(&own, 3);
        write(&own, 4);
        assert_eq!(seqs(&served.events(10)), [3, 4]);
        assert!(!served.owner_gone());
        // The owner dies (its descriptor closes) before the relay marked
        // its last events done: they are taken as a dead ring's.
        let path = own.path.clone();
        drop(own);
        assert!(served.owner_gone());
        let claimed = served.claim().expect("the owner is gone");
        assert_eq!(seqs(&claimed.events()), [3, 4]);
        claimed.done();
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_ring_its_process_sends_itself_is_not_served() {
        let d = dir("queued");
        let own = spool::create(&d, 4096, false).unwrap();
        write(&own, 0);
        assert!(Served::open(&own.path).is_none());
        let path = own.path.clone();
        drop(own);
        let Some(Opened::Dead(c)) = Served::open(&path) else {
            panic!("a dead ring is taken")
        };
        assert_eq!(seqs(&c.events()), [0]);
        c.done();
        let _ = fs::remove_dir_all(&d);
    }
}
