//! A ring of records in shared memory: the process's spool file, mapped.
//! Callers append records, the sender marks them done and frees their
//! space; after the process is gone another one reads what is left.
//!
//! # Layout
//!
//! A header of `HEADER` bytes, then `cap` bytes of records, each at a
//! multiple of 8: a tag (`mark::WRITING`, `COMMITTED`, `DONE` or `PAD`), its
//! length with the 8-byte head, its payload. A record that would cross the
//! end of the ring goes to its start, after a `PAD` record filling the end.
//!
//! # The ring's state is one word
//!
//! `word` holds where the next record goes (`head`) and how many bytes are
//! in use from the oldest record on (`used`); the oldest record is at `head
//! - used`, modulo `cap`. Writers reserve with a compare-and-swap of the
//! word that moves `head` and grows `used`, so two writers never get the
//! same bytes and a writer never gets bytes in use. The sender frees with a
//! compare-and-swap that shrinks `used` by the done records it walked from
//! the oldest on; when that leaves nothing in use it also puts `head` back
//! to 0, so that a process whose events leave as fast as they come keeps
//! writing the ring's first pages, not all of it. A writer that reserved
//! meanwhile makes that swap fail, and the sender tries again with its
//! `used`: a reservation and a reset never both succeed on the same word.
//!
//! # What another process can trust
//!
//! A record's payload is written before its tag becomes `COMMITTED`
//! (release), and a reader loads the tag first (acquire). Stores to a shared
//! mapping stay in the file when the process is killed, so after a death a
//! `COMMITTED` record is whole, a `WRITING` one is not (its length is
//! already right: it is written before the payload), and the bytes
//! reserved by a writer killed before it wrote its tag hold an old tag,
//! which the reader either skips as done or cannot trust at all. Such a
//! gap need not be the newest reservation (another thread may have written
//! its record after it), so the reader looks past it (`gap`) rather than
//! stopping there.
//!
//! # Freed records hold no tag
//!
//! Before the freer's compare-and-swap gives records' bytes back, it zeroes
//! their tags. A writer's reservation and the store of its first tag are
//! two steps, and a reader walking the ring between them (the owner's
//! sender freeing, or cmev-relay reading a live ring) would otherwise find
//! the tag of the record freed there before, `DONE` or `PAD` with that
//! record's length, and step over, or free, bytes the writer is filling. A
//! zero tag (or an old record's payload, which never holds a tag: text is
//! UTF-8, and no tag's bytes are) stops every reader there until the writer
//! has written its head, length first and tag last (release).
//!
//! # A ring left to cmev-relay (`event_delivery: relay`)
//!
//! Its header says so (`RELAYED`), and its owner writes records without
//! marks and never frees: the relay that reads it, alone by the lock
//! `spool::try_lock_reader` takes, marks them done once they are in its
//! store and frees them (`advance`), so that it is the ring's one freer.
//! The owner learns of the room from the word itself, at its next
//! reservation. The relay keeps `lease` ahead of the owner's clock while it
//! reads; the owner writes to the ring only while the lease holds (it
//! compares it with the time it already read for the event, so no system
//! call), and sends events itself otherwise (`spool::leave`).
//!
//! Every event is delivered or counted: the owner's `write` either commits
//! a record (counted `Relayed`) or fails at once and the event takes the
//! queued way, where the queue's argument holds (`RelayFallback`). A
//! committed record stays until a reader marks it done, and a reader marks
//! it only once the event is safe elsewhere: the relay's store, or another
//! process's queue after the owner's death. The lease only says where new
//! events go: a record written just before a relay died or let its lease
//! lapse waits for the next relay, or for whoever takes the ring once the
//! owner is gone. No one waits for another: the owner never waits for the
//! relay (a full ring fails the reservation), and the relay never waits
//! for the owner (it stops at the first record not yet committed and looks
//! again at its next poll; a dead owner's half-written record is a gap, as
//! above). The lease and the owner's clock wrap, and are compared by their
//! difference, valid for 24 days either way.

use crate::mark::{DoneMark, COMMITTED, DONE, PAD, WRITING};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes before the first record: one cache line, shared by all writers.
pub(crate) const HEADER: usize = 64;
const MAGIC: [u8; 8] = *b"cmevring";
const VERSION: u32 = 1;
/// A record's tag and length.
const RECORD_HEAD: usize = 8;

/// `Header::flags`: the ring is left to cmev-relay (see the module's text).
const RELAYED: u32 = 1;

/// Fields after `word` were padding in the first rings of this version,
/// which read as zero: not relayed, no lease. Older readers ignore them.
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: u32,
    cap: u32,
    pid: u32,
    flags: u32,
    /// When the writer's millisecond clock (`outgoing::clock_ms`) started,
    /// in milliseconds since the epoch: the age of a record made at `t` on
    /// that clock is counted from `clock_start + t`.
    clock_start: u64,
    word: AtomicU64,
    /// The same moment on `CLOCK_MONOTONIC`, which every process reads
    /// alike: how a relay reads the owner's clock.
    clock_mono: u64,
    /// Until when, on the owner's clock, a relay reads the ring.
    lease: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<Header>() <= HEADER);

/// Who made a ring, and for whom.
pub struct Owner {
    pub pid: u32,
    /// `Header::clock_start` and `Header::clock_mono`.
    pub clock_start: u64,
    pub clock_mono: u64,
    /// Left to cmev-relay, which is presumed to read it until `lease` (on
    /// the owner's clock): a new ring gives a relay time to find it.
    pub relayed: Option<u32>,
}

/// `CLOCK_MONOTONIC` in milliseconds: the clock `Instant` reads, through
/// the vDSO.
pub fn mono_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock and an initialised out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Whether `until` is still ahead of `now`, both on one wrapping
/// millisecond clock.
fn ahead(until: u32, now: u32) -> bool {
    (until.wrapping_sub(now) as i32) > 0
}

fn split(w: u64) -> (usize, usize) {
    ((w >> 32) as usize, (w & 0xffff_ffff) as usize)
}

fn join(head: usize, used: usize) -> u64 {
    (head as u64) << 32 | used as u64
}

/// Room for a payload of `n` bytes, with the record's head, at a multiple of 8.
pub fn record_len(n: usize) -> usize {
    (RECORD_HEAD + n + 7) & !7
}

/// The ring in a region of memory it does not own.
pub struct Journal {
    base: NonNull<u8>,
    cap: usize,
}

// SAFETY: all shared state is reached through atomics; record bytes are
// written only by the writer that reserved them, before they are published.
unsafe impl Send for Journal {}
unsafe impl Sync for Journal {}

/// A region that does not hold a ring of ours.
#[derive(Debug, PartialEq, Eq)]
pub struct NotARing(pub &'static str);

/// One record as a reader finds it.
pub struct Found<'a> {
    pub at: usize,
    pub tag: u32,
    pub payload: &'a [u8],
}

impl Journal {
    /// A new, empty ring over `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` is valid for `len` bytes, aligned to 8, for the rest of the
    /// process, and nothing else in this process writes there.
    pub unsafe fn format(base: NonNull<u8>, len: usize, owner: Owner) -> Journal {
        let cap = (len.saturating_sub(HEADER) & !7).min(u32::MAX as usize & !7);
        base.as_ptr().write_bytes(0, HEADER);
        base.cast::<Header>().as_ptr().write(Header {
            magic: MAGIC,
            version: VERSION,
            cap: cap as u32,
            pid: owner.pid,
            flags: if owner.relayed.is_some() { RELAYED } else { 0 },
            clock_start: owner.clock_start,
            word: AtomicU64::new(0),
            clock_mono: owner.clock_mono,
            lease: AtomicU32::new(owner.relayed.unwrap_or(0)),
        });
        Journal { base, cap }
    }

    /// The ring another process left in `len` bytes at `base`, checked.
    ///
    /// # Safety
    /// As for `format`.
    pub unsafe fn open(base: NonNull<u8>, len: usize) -> Result<Journal, NotARing> {
        if len < HEADER {
            return Err(NotARing("shorter than its header"));
        }
        let h = &*base.cast::<Header>().as_ptr();
        if h.magic != MAGIC || h.version != VERSION {
            return Err(NotARing("not a ring of this version"));
        }
        let cap = h.cap as usize;
        if cap % 8 != 0 || HEADER + cap != len {
            return Err(NotARing("its size does not match its header"));
        }
        let (head, used) = split(h.word.load(Ordering::Acquire));
        if head > cap || used > cap || head % 8 != 0 || used % 8 != 0 {
            return Err(NotARing("its positions are out of range"));
        }
        Ok(Journal { base, cap })
    }

    fn header(&self) -> &Header {
        // SAFETY: the header was written (or checked) when made.
        unsafe { &*self.base.cast::<Header>().as_ptr() }
    }

    pub fn pid(&self) -> u32 {
        self.header().pid
    }

    pub fn clock_start(&self) -> u64 {
        self.header().clock_start
    }

    /// Whether the ring is left to cmev-relay.
    pub fn relayed(&self) -> bool {
        self.header().flags & RELAYED != 0
    }

    /// Whether a relay reads the ring at `now` on the owner's clock.
    pub fn lease_holds(&self, now: u32) -> bool {
        ahead(self.header().lease.load(Ordering::Relaxed), now)
    }

    /// The relay's side: it reads the ring for `ms` more milliseconds.
    pub fn renew_lease(&self, ms: u32) {
        let owner_now = mono_ms().wrapping_sub(self.header().clock_mono) as u32;
        self.header()
            .lease
            .store(owner_now.wrapping_add(ms), Ordering::Relaxed);
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes in use by records not yet freed.
    pub fn used(&self) -> usize {
        split(self.header().word.load(Ordering::Acquire)).1
    }

    fn at(&self, off: usize) -> *mut u8 {
        // SAFETY: callers pass offsets inside the ring.
        unsafe { self.base.as_ptr().add(HEADER + off) }
    }

    fn tag(&self, off: usize) -> &AtomicU32 {
        // SAFETY: a record head is inside the ring and aligned to 8.
        unsafe { &*self.at(off).cast::<AtomicU32>() }
    }

    fn len_at(&self, off: usize) -> usize {
        // SAFETY: as for `tag`; read as an atomic since another thread of a
        // dead process may have left it half-written.
        unsafe { &*self.at(off + 4).cast::<AtomicU32>() }.load(Ordering::Relaxed) as usize
    }

    /// The length, then the tag (release): a reader that sees the tag sees
    /// the length that goes with it.
    fn write_head(&self, off: usize, tag: u32, len: usize) {
        // SAFETY: as for `len_at`.
        unsafe { &*self.at(off + 4).cast::<AtomicU32>() }.store(len as u32, Ordering::Relaxed);
        self.tag(off).store(tag, Ordering::Release);
    }

    /// Append a record of `n` payload bytes written by `fill`; `None` if
    /// the ring has no room. The mark frees the record when dropped.
    pub fn append(&self, n: usize, seq: u64, fill: impl FnOnce(&mut [u8])) -> Option<DoneMark> {
        let start = self.write(n, fill)?;
        // SAFETY: the record's tag, in memory that outlives the process's
        // use of it; this is its only mark.
        Some(unsafe { DoneMark::new(NonNull::from(self.tag(start)), seq) })
    }

    /// Append a record of `n` payload bytes written by `fill`, committed,
    /// with no mark: its reader marks it done (a relayed ring). Its offset,
    /// or `None` if the ring has no room.
    pub fn write(&self, n: usize, fill: impl FnOnce(&mut [u8])) -> Option<usize> {
        let len = record_len(n);
        let word = &self.header().word;
        let mut w = word.load(Ordering::Acquire);
        let (start, pad) = loop {
            let (head, used) = split(w);
            let (start, pad) = if head + len > self.cap {
                (0, self.cap - head)
            } else {
                (head, 0)
            };
            if used + pad + len > self.cap {
                return None;
            }
            match word.compare_exchange_weak(
                w,
                join(start + len, used + pad + len),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break (start, pad),
                Err(now) => w = now,
            }
        };
        if pad > 0 {
            let head = split(w).0;
            self.write_head(head, PAD, pad);
        }
        self.write_head(start, WRITING, len);
        // SAFETY: these bytes were reserved above for this writer alone.
        let payload = unsafe { std::slice::from_raw_parts_mut(self.at(start + RECORD_HEAD), n) };
        fill(payload);
        self.tag(start).store(COMMITTED, Ordering::Release);
        Some(start)
    }

    /// The records in use, oldest first, up to the first that cannot be
    /// trusted (`Err` with its offset).
    pub fn records(&self) -> impl Iterator<Item = Result<Found<'_>, usize>> {
        let (head, used) = split(self.header().word.load(Ordering::Acquire));
        let mut off = (head + self.cap - used) % self.cap.max(1);
        let mut left = used;
        let mut broken = false;
        std::iter::from_fn(move || {
            if left == 0 || broken {
                return None;
            }
            let Some((tag, len)) = self.head_at(off, left) else {
                broken = true;
                return Some(Err(off));
            };
            // SAFETY: inside the ring, checked above.
            let payload = unsafe {
                std::slice::from_raw_parts(self.at(off + RECORD_HEAD), len - RECORD_HEAD)
            };
            let found = Found {
                at: off,
                tag,
                payload,
            };
            left -= len;
            off = (off + len) % self.cap;
            Some(Ok(found))
        })
    }

    /// The tag and length of a well-formed record head at `off`, with
    /// `left` bytes in use from there on.
    fn head_at(&self, off: usize, left: usize) -> Option<(u32, usize)> {
        let tag = self.tag(off).load(Ordering::Acquire);
        let len = self.len_at(off);
        let known = matches!(tag, WRITING | COMMITTED | DONE | PAD);
        let fits = len >= RECORD_HEAD && len % 8 == 0 && len <= left && off + len <= self.cap;
        (known && fits).then_some((tag, len))
    }

    /// Whether well-formed records fill the `left` bytes from `off`.
    fn chain_ok(&self, mut off: usize, mut left: usize) -> bool {
        while left > 0 {
            let Some((_, len)) = self.head_at(off, left) else {
                return false;
            };
            left -= len;
            off = (off + len) % self.cap;
        }
        true
    }

    /// In a ring whose writers are gone: the length of the gap at `off`,
    /// where `records` found no record it can trust, up to the nearest
    /// offset from which well-formed records lead exactly to the newest
    /// reservation's end (at worst, that end). A writer killed between
    /// reserving its bytes and writing their head leaves such a gap;
    /// records that other threads reserved after it and finished must not
    /// be lost with it.
    pub fn gap(&self, off: usize) -> usize {
        let (head, used) = split(self.header().word.load(Ordering::Acquire));
        let oldest = (head + self.cap - used) % self.cap;
        let left = used - (off + self.cap - oldest) % self.cap;
        (RECORD_HEAD..left)
            .step_by(8)
            .find(|&d| self.chain_ok((off + d) % self.cap, left - d))
            .unwrap_or(left)
    }

    /// Mark the `n` bytes of a gap at `at` done, as records that can be
    /// freed: two when the gap crosses the end of the ring, which a record
    /// never does.
    pub fn set_gap_done(&self, at: usize, n: usize) {
        let first = n.min(self.cap - at);
        self.write_head(at, DONE, first);
        if n > first {
            self.write_head(0, DONE, n - first);
        }
    }

    /// Whether every record in use is done with: read only, so that it may
    /// run beside the one thread that frees (`advance`).
    pub fn all_done(&self) -> bool {
        self.records()
            .all(|r| matches!(r, Ok(f) if f.tag == DONE || f.tag == PAD))
    }

    /// Mark the record at `at` done (a reader taking over the ring).
    pub fn set_done(&self, at: usize) {
        self.tag(at).store(DONE, Ordering::Release);
    }

    /// Free the space of the done records from the oldest on; only one
    /// thread frees (the owner's sender, the relay reading a relayed ring,
    /// or the reader that took the ring). Their tags are zeroed first (see
    /// the module's text): until the swap below they are still the oldest,
    /// since no one else frees.
    pub fn advance(&self) {
        let mut freed = 0;
        for r in self.records() {
            match r {
                Ok(f) if f.tag == DONE || f.tag == PAD => {
                    freed += f.payload.len() + RECORD_HEAD;
                    self.tag(f.at).store(0, Ordering::Relaxed);
                }
                _ => break,
            }
        }
        if freed == 0 {
            return;
        }
        let word = &self.header().word;
        let mut w = word.load(Ordering::Acquire);
        loop {
            let (head, used) = split(w);
            let new = match used - freed {
                0 => join(0, 0),
                left => join(head, left),
            };
            match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(len: usize) -> NonNull<u8> {
        let v: &'static mut [u64] = Vec::leak(vec![0u64; len / 8]);
        NonNull::new(v.as_mut_ptr().cast()).unwrap()
    }

    fn owner(pid: u32, clock_start: u64) -> Owner {
        Owner {
            pid,
            clock_start,
            clock_mono: 0,
            relayed: None,
        }
    }

    fn payloads(j: &Journal) -> Vec<(u32, Vec<u8>)> {
        j.records()
            .map(|r| r.map(|f| (f.tag, f.payload.to_vec())).unwrap())
            .collect()
    }

    #[test]
    fn records_wrap_pad_and_free_in_order() {
        let base = region(HEADER + 64);
        let j = unsafe { Journal::format(base, HEADER + 64, owner(7, 1000)) };
        let m1 = j.append(12, 0, |b| b.fill(1)).unwrap(); // 24 bytes at 0
        let m2 = j.append(12, 0, |b| b.fill(2)).unwrap(); // 24 at 24
                                                          // 16 bytes of padding and 32 more would need 96.
        assert!(j.append(20, 0, |_| ()).is_none());
        drop(m2);
        j.advance();
        assert_eq!(j.used(), 48, "the oldest is not done: nothing freed");
        drop(m1);
        j.advance();
        assert_eq!(j.used(), 0);

        let a = j.append(12, 0, |b| b.fill(1)).unwrap(); // 0..24
        let b = j.append(12, 0, |b| b.fill(2)).unwrap(); // 24..48
        drop(a);
        j.advance();
        assert_eq!(j.used(), 24);
        // 16 more end exactly at the end; 24 after them go to the start.
        let c = j.append(4, 0, |b| b.copy_from_slice(b"abcd")).unwrap();
        let d = j.append(12, 0, |b| b.fill(4)).unwrap();
        assert_eq!(j.used(), 64);
        let got: Vec<_> = j
            .records()
            .map(|r| r.map(|f| (f.at, f.tag)).unwrap())
            .collect();
        assert_eq!(got, vec![(24, COMMITTED), (48, COMMITTED), (0, COMMITTED)]);
        drop(d);
        j.advance();
        assert_eq!(j.used(), 64, "done, but not the oldest");
        drop((b, c));
        j.advance();
        assert_eq!(j.used(), 0);
        let e = j.append(12, 0, |_| ()).unwrap();
        assert_eq!(
            j.records().next().unwrap().unwrap().at,
            0,
            "empty again: from the start"
        );
        let f = j.append(12, 0, |_| ()).unwrap();
        drop(e);
        j.advance();
        // 24 bytes do not fit in the 16 at the end: padding, then the start.
        let g = j.append(12, 0, |_| ()).unwrap();
        let got: Vec<_> = j
            .records()
            .map(|r| r.map(|f| (f.at, f.tag)).unwrap())
            .collect();
        assert_eq!(got, vec![(24, COMMITTED), (48, PAD), (0, COMMITTED)]);
        drop((f, g));
        j.advance();
        assert_eq!(j.used(), 0);
    }

    #[test]
    fn a_full_ring_refuses_and_a_reader_sees_what_is_left() {
        let len = HEADER + 96;
        let base = region(len);
        let j = unsafe { Journal::format(base, len, owner(7, 1000)) };
        let marks: Vec<_> = (0..4)
            .map_while(|i| j.append(16, 0, |b| b.fill(i)).map(|m| (i, m)))
            .collect();
        assert_eq!(marks.len(), 4);
        assert!(j.append(16, 0, |_| ()).is_none());
        std::mem::forget(marks);
        let other = unsafe { Journal::open(base, len) }.unwrap();
        let got = payloads(&other);
        assert_eq!(got.len(), 4);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (t, p))| *t == COMMITTED && p[0] == i as u8));
        assert_eq!(other.pid(), 7);
        assert_eq!(other.clock_start(), 1000);
        assert!(unsafe { Journal::open(base, len - 8) }.is_err());
    }

    /// The tags a reader finds, with a gap made done wherever it stops.
    fn tags_past_gaps(j: &Journal) -> (Vec<u32>, usize) {
        let mut gaps = 0;
        while let Some(off) = j.records().find_map(|r| r.err()) {
            j.set_gap_done(off, j.gap(off));
            gaps += 1;
        }
        (j.records().map(|r| r.unwrap().tag).collect(), gaps)
    }

    #[test]
    fn a_reservation_never_written_is_a_gap_the_reader_steps_over() {
        let len = HEADER + 256;
        let base = region(len);
        let j = unsafe { Journal::format(base, len, owner(7, 0)) };
        let marks: Vec<_> = (0..4)
            .map(|i| j.append(24, 0, |b| b.fill(i)).unwrap())
            .collect();
        std::mem::forget(marks);
        // The second writer was killed after reserving, before its head;
        // the later two finished theirs.
        j.write_head(32, 0, 0);
        assert_eq!(
            j.records().map(|r| r.is_ok()).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(j.gap(32), 32);
        let (tags, gaps) = tags_past_gaps(&j);
        assert_eq!(
            (tags, gaps),
            (vec![COMMITTED, DONE, COMMITTED, COMMITTED], 1)
        );

        // The newest reservation, never written: a gap up to the end of use.
        j.write_head(96, 0, 0);
        assert_eq!(j.gap(96), 32);
        let (tags, _) = tags_past_gaps(&j);
        assert_eq!(tags, vec![COMMITTED, DONE, COMMITTED, DONE]);
    }

    #[test]
    fn a_gap_may_cross_the_end_of_the_ring() {
        let len = HEADER + 128;
        let base = region(len);
        let j = unsafe { Journal::format(base, len, owner(7, 0)) };
        let a = j.append(24, 0, |_| ()).unwrap(); // 0..32
        let b = j.append(24, 0, |_| ()).unwrap(); // 32..64
        std::mem::forget(j.append(24, 0, |_| ()).unwrap()); // 64..96
        drop((a, b));
        j.advance();
        // 40 bytes do not fit in the 32 left at the end: padding at
        // 96..128, the record at 0..40, neither head written.
        std::mem::forget(j.append(32, 0, |_| ()).unwrap());
        j.write_head(96, 0xdead_beef, 3);
        j.write_head(0, 0, 0);
        assert_eq!(
            j.records().map(|r| r.is_ok()).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(j.gap(96), 72);
        let (tags, gaps) = tags_past_gaps(&j);
        assert_eq!((tags, gaps), (vec![COMMITTED, DONE, DONE], 1));
        j.set_done(64);
        j.advance();
        assert_eq!(j.used(), 0);
    }

    #[test]
    fn all_done_frees_nothing() {
        let len = HEADER + 64;
        let base = region(len);
        let j = unsafe { Journal::format(base, len, owner(7, 0)) };
        let a = j.append(8, 0, |_| ()).unwrap();
        let b = j.append(8, 0, |_| ()).unwrap();
        drop(a);
        assert!(!j.all_done());
        drop(b);
        assert!(j.all_done());
        assert_eq!(j.used(), 32, "freeing is the sender's alone");
    }

    #[test]
    fn a_reservation_over_freed_records_stops_readers_until_written() {
        let len = HEADER + 64;
        let base = region(len);
        let j = unsafe { Journal::format(base, len, owner(7, 0)) };
        drop(j.append(16, 0, |_| ()).unwrap());
        j.advance();
        assert_eq!(j.used(), 0);
        // A writer that has reserved the same 24 bytes and not yet written
        // its head: what was freed there must not read as a done record.
        j.header().word.store(join(24, 24), Ordering::Release);
        let got: Vec<_> = j.records().map(|r| r.map(|f| f.tag)).collect();
        assert_eq!(got, vec![Err(0)]);
        j.advance();
        assert_eq!(j.used(), 24, "nothing freed under a writer");
    }

    #[test]
    fn a_relayed_ring_has_a_lease_on_the_owners_clock() {
        let len = HEADER + 64;
        let base = region(len);
        let mut o = owner(7, 0);
        o.relayed = Some(u32::MAX - 10);
        o.clock_mono = mono_ms();
        let j = unsafe { Journal::format(base, len, o) };
        assert!(j.relayed());
        assert!(j.lease_holds(u32::MAX - 20));
        assert!(!j.lease_holds(u32::MAX - 10));
        assert!(!j.lease_holds(5), "past the wrap");
        // The owner's clock read 0 at clock_mono: the relay's lease counts
        // from now on that clock.
        j.renew_lease(5000);
        assert!(j.lease_holds(1000) && j.lease_holds(4000));
        assert!(!j.lease_holds(6000));
        let at = j.write(8, |b| b.fill(3)).unwrap();
        let f = j.records().next().unwrap().unwrap();
        assert_eq!((f.at, f.tag, f.payload), (at, COMMITTED, &[3u8; 8][..]));
        let plain = unsafe { Journal::open(region(len), len) };
        assert!(plain.is_err(), "a zeroed region is no ring");
        assert!(!unsafe { Journal::format(region(len), len, owner(7, 0)) }.relayed());
    }

    #[test]
    fn garbage_stops_the_reader() {
        let len = HEADER + 64;
        let base = region(len);
        let j = unsafe { Journal::format(base, len, owner(7, 0)) };
        std::mem::forget(j.append(8, 0, |b| b.fill(9)).unwrap());
        std::mem::forget(j.append(8, 0, |b| b.fill(9)).unwrap());
        j.tag(16).store(0xdead_beef, Ordering::Relaxed);
        let got: Vec<_> = j.records().map(|r| r.map(|f| f.at)).collect();
        assert_eq!(got, vec![Ok(0), Err(16)]);
    }
}
