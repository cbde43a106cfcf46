//! The durable store: events appended to segment files and fsync'd in
//! batches before anyone is told they are safe (a dlist `OK`, a spool record
//! marked done), kept until every output has acknowledged them, bounded by
//! size and age.
//!
//! # Layout
//!
//! `<dir>/epoch` names the store (it goes into ids, so that a store made
//! anew never reuses an id); `<dir>/<first seq, 20 digits>.seg` holds
//! records; `<dir>/<output>.cursor` the first event that output has not
//! had acknowledged. A record is `len u32, crc32 u32` then `len` bytes:
//! `seq u64, received_ms u64, id_len u16, name_len u16, id, name, json`,
//! all little-endian; the CRC covers those `len` bytes, so a record torn by
//! a crash is found and cut off when the store is opened.
//!
//! # Who writes, who reads
//!
//! One thread writes (`Writer`): it takes every append waiting, writes them
//! in one `write`, `fdatasync`s once, and only then publishes the new end
//! (`committed`) and answers the appenders. Readers (one per output) read
//! the segment files up to `committed` and never past it, so they never see
//! a record being written. A segment is removed once every cursor is past
//! it, or by the bounds (its undelivered events counted). The active
//! (last) segment is never removed, so its name always tells the next seq.

use crate::log;
use crate::stats::{add, STATS};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// An event as an input hands it over.
#[derive(Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Its id when the source gives one (a spool ring); else the store's
    /// `<host>:<epoch>:<seq>`.
    pub id: Option<String>,
    /// The event's type (`MessageNew`).
    pub name: String,
    /// The event JSON exactly as Cyrus wrote it.
    pub json: Vec<u8>,
}

/// An event as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub received_ms: u64,
    pub id: String,
    pub name: String,
    pub json: Vec<u8>,
}

/// Why an append was not stored.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

struct Append {
    events: Vec<NewEvent>,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

struct Segment {
    bytes: u64,
    /// When the newest record in it was received.
    last_ms: u64,
}

/// What the store shares between its writer, readers and outputs.
struct Shared {
    dir: PathBuf,
    /// Segments by their first seq; the last is the active one.
    segments: Mutex<BTreeMap<u64, Segment>>,
    /// Each output's first unacknowledged seq.
    cursors: Mutex<HashMap<String, u64>>,
    max_bytes: u64,
    max_age: Duration,
}

pub struct Store {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Append>,
    /// The seq after the last record fsync'd.
    committed: watch::Receiver<Committed>,
}

const HEAD: usize = 8;
const FIXED: usize = 8 + 8 + 2 + 2;
/// No event is this large (stock's largest are a few MB).
const MAX_RECORD: usize = 64 << 20;

/// How far the store is fsync'd: the seq after the last record, and the
/// active segment's length then (readers read no further).
#[derive(Clone, Copy, Debug)]
struct Committed {
    next: u64,
    active: u64,
    len: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// Append the record of an event to `buf`.
fn encode(seq: u64, received_ms: u64, id: &str, e: &NewEvent, buf: &mut Vec<u8>) {
    let len = FIXED + id.len() + e.name.len() + e.json.len();
    let start = buf.len();
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&received_ms.to_le_bytes());
    buf.extend_from_slice(&(id.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
    buf.extend_from_slice(id.as_bytes());
    buf.extend_from_slice(e.name.as_bytes());
    buf.extend_from_slice(&e.json);
    let crc = crc32fast::hash(&buf[start + HEAD..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What `decode` finds at the start of a buffer.
enum Decoded {
    /// A record, and its length with its head.
    Record(Event, usize),
    /// The buffer ends within the record (or is empty).
    Short,
    /// Not a well-formed record: torn by a crash, or damaged.
    Bad,
}

fn decode(b: &[u8]) -> Decoded {
    if b.len() < HEAD {
        return Decoded::Short;
    }
    let len = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(b[4..8].try_into().unwrap());
    if !(FIXED..=MAX_RECORD).contains(&len) {
        return Decoded::Bad;
    }
    let Some(body) = b.get(HEAD..HEAD + len) else {
        return Decoded::Short;
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Bad;
    }
    let u16_at = |i: usize| u16::from_le_bytes(body[i..i + 2].try_into().unwrap()) as usize;
    let (id_len, name_len) = (u16_at(16), u16_at(18));
    if FIXED + id_len + name_len > len {
        return Decoded::Bad;
    }
    let text = |r: std::ops::Range<usize>| String::from_utf8(body[r].to_vec()).ok();
    let (Some(id), Some(name)) = (
        text(FIXED..FIXED + id_len),
        text(FIXED + id_len..FIXED + id_len + name_len),
    ) else {
        return Decoded::Bad;
    };
    let e = Event {
        seq: u64::from_le_bytes(body[..8].try_into().unwrap()),
        received_ms: u64::from_le_bytes(body[8..16].try_into().unwrap()),
        id,
        name,
        json: body[FIXED + id_len + name_len..].to_vec(),
    };
    Decoded::Record(e, HEAD + len)
}

/// The store directory, made if missing; refused unless it is this user's
/// and closed to others (events carry addresses and message contents).
fn check_dir(dir: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("store directory {}: {e}", dir.display()))?;
    let m = fs::metadata(dir).map_err(|e| format!("store directory {}: {e}", dir.display()))?;
    // SAFETY: no arguments, cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "store directory {} belongs to uid {}, not to the relay's {me}",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "store directory {} is open to group or others (mode {:o}); it must be 0700",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Scan a segment: its records' count of bytes that are whole, the seq
/// after its last record and that record's time; a torn end is cut off.
fn recover(path: &Path, first: u64, is_last: bool) -> Result<(u64, u64, u64), String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut good, mut next, mut last_ms) = (0usize, first, 0u64);
    while good < data.len() {
        match decode(&data[good..]) {
            Decoded::Record(e, n) => {
                good += n;
                next = e.seq + 1;
                last_ms = e.received_ms;
            }
            Decoded::Short | Decoded::Bad => {
                let cut = data.len() - good;
                if is_last {
                    log::warn(&format!(
                        "{}: cutting {cut} bytes of a record torn at offset {good} (never \
                         acknowledged upstream: it was not fsync'd)",
                        path.display()
                    ));
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| e.to_string())?;
                    f.set_len(good as u64).map_err(|e| e.to_string())?;
                    f.sync_all().map_err(|e| e.to_string())?;
                } else {
                    log::error(&format!(
                        "{}: damaged record at offset {good}; the {cut} bytes after it are \
                         skipped",
                        path.display()
                    ));
                }
                break;
            }
        }
    }
    Ok((good as u64, next, last_ms))
}

impl Store {
    /// Open (or make) the store at `cfg.dir`; starts its writer thread.
    pub fn open(cfg: &crate::config::StoreConfig, host: &str) -> Result<Store, String> {
        let dir = cfg.dir.clone();
        check_dir(&dir)?;
        let epoch_path = dir.join("epoch");
        let epoch = match fs::read_to_string(&epoch_path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let stamp = format!("{:x}", now_ms());
                let tmp = dir.join("epoch.new");
                fs::write(&tmp, &stamp)
                    .and_then(|()| File::open(&tmp)?.sync_all())
                    .and_then(|()| fs::rename(&tmp, &epoch_path))
                    .and_then(|()| sync_dir(&dir))
                    .map_err(|e| format!("store directory {}: {e}", dir.display()))?;
                stamp
            }
            Err(e) => return Err(format!("{}: {e}", epoch_path.display())),
        };
        let mut firsts: Vec<u64> = fs::read_dir(&dir)
            .map_err(|e| format!("store directory {}: {e}", dir.display()))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut next = 0;
        for (i, &first) in firsts.iter().enumerate() {
            let (bytes, after, last_ms) =
                recover(&seg_path(&dir, first), first, i + 1 == firsts.len())?;
            next = after.max(first);
            segments.insert(first, Segment { bytes, last_ms });
        }
        let active = match segments.last_key_value() {
            Some((&first, _)) => first,
            None => {
                File::create(seg_path(&dir, 0))
                    .and_then(|f| f.sync_all())
                    .and_then(|()| sync_dir(&dir))
                    .map_err(|e| format!("store directory {}: {e}", dir.display()))?;
                segments.insert(
                    0,
                    Segment {
                        bytes: 0,
                        last_ms: 0,
                    },
                );
                0
            }
        };
        let bytes = segments[&active].bytes;
        let file = OpenOptions::new()
            .append(true)
            .open(seg_path(&dir, active))
            .map_err(|e| format!("store directory {}: {e}", dir.display()))?;
        let shared = Arc::new(Shared {
            dir,
            segments: Mutex::new(segments),
            cursors: Mutex::new(HashMap::new()),
            max_bytes: cfg.max_bytes,
            max_age: cfg.max_age,
        });
        let (tx, rx) = mpsc::channel(1024);
        let (committed_tx, committed) = watch::channel(Committed {
            next,
            active,
            len: bytes,
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            rx,
            committed: committed_tx,
            file,
            active,
            next,
            prefix: format!("{host}:{epoch}:"),
            segment_bytes: cfg.segment_bytes,
            buf: Vec::new(),
        };
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("cannot start the store's writer: {e}"))?;
        Ok(Store {
            shared,
            tx,
            committed,
        })
    }

    /// Store `events`; resolves once they are fsync'd (or could not be).
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Append {
                events,
                done: Some(done),
            })
            .await
            .map_err(|_| StoreError("the store has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError("the store has stopped".into()))?
    }

    /// Store `events` with no one waiting for the outcome (datagrams: their
    /// sender hears nothing either way); failures are counted and logged.
    pub async fn append_detached(&self, events: Vec<NewEvent>) {
        let _ = self.tx.send(Append { events, done: None }).await;
    }

    /// A reader for output `name`, from its saved cursor on.
    pub fn reader(&self, name: &str) -> Reader {
        let path = self.shared.dir.join(format!("{name}.cursor"));
        let saved = fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        self.shared
            .cursors
            .lock()
            .unwrap()
            .insert(name.to_owned(), saved);
        Reader {
            shared: Arc::clone(&self.shared),
            committed: self.committed.clone(),
            next: saved,
            open: None,
        }
    }

    /// Output `name` has had every event before `seq` acknowledged.
    pub fn ack(&self, name: &str, seq: u64) {
        if let Some(c) = self.shared.cursors.lock().unwrap().get_mut(name) {
            *c = (*c).max(seq);
        }
    }

    /// Save the cursors and remove what no one needs or the bounds forbid;
    /// run every fraction of a second by `main`.
    pub fn maintain(&self) {
        self.shared.save_cursors();
        self.shared.retire(now_ms());
    }

    /// Bytes on disk in segments.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.shared
            .segments
            .lock()
            .unwrap()
            .values()
            .map(|s| s.bytes)
            .sum()
    }
}

impl Shared {
    fn save_cursors(&self) {
        let cursors: Vec<(String, u64)> = self
            .cursors
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (name, seq) in cursors {
            let path = self.dir.join(format!("{name}.cursor"));
            let tmp = self.dir.join(format!("{name}.cursor.new"));
            // Not fsync'd: a cursor lost in a crash only means redelivery,
            // which the ids make harmless.
            let r = fs::write(&tmp, seq.to_string()).and_then(|()| fs::rename(&tmp, &path));
            if let Err(e) = r {
                log::error_limited("cursor", &format!("{}: {e}", path.display()));
            }
        }
    }

    /// Remove segments every output is done with, then those past the
    /// bounds, counting their undelivered events.
    fn retire(&self, now: u64) {
        let slowest = self.cursors.lock().unwrap().values().copied().min();
        let mut segs = self.segments.lock().unwrap();
        loop {
            let mut it = segs.iter();
            let (Some((&first, seg)), Some((&after, _))) = (it.next(), it.next()) else {
                return;
            };
            let total: u64 = segs.values().map(|s| s.bytes).sum();
            let done = slowest.is_none_or(|c| c >= after);
            let too_big = total > self.max_bytes;
            let too_old = now.saturating_sub(seg.last_ms) > self.max_age.as_millis() as u64;
            if !(done || too_big || too_old) {
                return;
            }
            if !done {
                let lost = after - slowest.unwrap_or(0).max(first);
                let (why, counter) = if too_big {
                    ("the store is at max_bytes", &STATS.dropped_size)
                } else {
                    ("they reached max_age", &STATS.dropped_age)
                };
                add(counter, lost);
                log::error(&format!(
                    "dropping {lost} undelivered events (seq {first}..{after}): {why}"
                ));
                for c in self.cursors.lock().unwrap().values_mut() {
                    *c = (*c).max(after);
                }
            }
            let path = seg_path(&self.dir, first);
            if let Err(e) = fs::remove_file(&path) {
                log::error_limited("remove", &format!("{}: {e}", path.display()));
                return;
            }
            segs.remove(&first);
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Append>,
    committed: watch::Sender<Committed>,
    file: File,
    active: u64,
    next: u64,
    prefix: String,
    segment_bytes: u64,
    buf: Vec<u8>,
}

/// Events written into one batch at most, so that one fsync never waits
/// for an unbounded write.
const BATCH: usize = 4096;

impl Writer {
    fn run(mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut batch = vec![first];
            let mut n = batch[0].events.len();
            while n < BATCH {
                match self.rx.try_recv() {
                    Ok(a) => {
                        n += a.events.len();
                        batch.push(a);
                    }
                    Err(_) => break,
                }
            }
            let r = self.write(&batch);
            match &r {
                Ok(()) => add(&STATS.stored, n as u64),
                Err(e) => {
                    add(&STATS.store_errors, n as u64);
                    log::error_limited("store", &format!("store: {n} events not stored: {}", e.0));
                }
            }
            for a in batch {
                if let Some(done) = a.done {
                    let _ = done.send(r.clone());
                }
            }
        }
    }

    /// Write and fsync every event of `batch`, or none: on failure the
    /// segments are put back as they were and the seqs are not used.
    fn write(&mut self, batch: &[Append]) -> Result<(), StoreError> {
        let (next, active) = (self.next, self.active);
        let bytes = self.active_bytes();
        let r = self.write_all(batch, bytes);
        match r {
            Ok(()) => {
                let len = self.active_bytes();
                self.committed.send_replace(Committed {
                    next: self.next,
                    active: self.active,
                    len,
                });
            }
            Err(_) => {
                self.undo(active, bytes);
                self.next = next;
            }
        }
        r
    }

    fn write_all(&mut self, batch: &[Append], mut bytes: u64) -> Result<(), StoreError> {
        let now = now_ms();
        self.buf.clear();
        for e in batch.iter().flat_map(|a| &a.events) {
            let made;
            let id = match &e.id {
                Some(id) => id.as_str(),
                None => {
                    made = format!("{}{}", self.prefix, self.next);
                    made.as_str()
                }
            };
            let before = self.buf.len();
            encode(self.next, now, id, e, &mut self.buf);
            let len = (self.buf.len() - before) as u64;
            if bytes > 0 && bytes + len > self.segment_bytes {
                // This record starts the next segment: what came before
                // goes to the full one first.
                let tail = self.buf.split_off(before);
                self.flush(now)?;
                self.rotate()?;
                self.buf = tail;
                bytes = 0;
            }
            bytes += len;
            self.next += 1;
        }
        self.flush(now)
    }

    fn active_bytes(&self) -> u64 {
        self.shared.segments.lock().unwrap()[&self.active].bytes
    }

    /// Append `buf` to the active segment and fsync it.
    fn flush(&mut self, now: u64) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = seg_path(&self.shared.dir, self.active);
        self.file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        let mut segs = self.shared.segments.lock().unwrap();
        let seg = segs.get_mut(&self.active).expect("the active segment");
        seg.bytes += self.buf.len() as u64;
        seg.last_ms = now;
        self.buf.clear();
        Ok(())
    }

    /// Start a new active segment at `self.next`.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let path = seg_path(&self.shared.dir, self.next);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|f| sync_dir(&self.shared.dir).map(|()| f))
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        self.file = file;
        self.active = self.next;
        self.shared.segments.lock().unwrap().insert(
            self.next,
            Segment {
                bytes: 0,
                last_ms: 0,
            },
        );
        Ok(())
    }

    /// After a failed batch: the segments as they were before it (a
    /// segment it began is removed; the one it wrote into is cut back).
    fn undo(&mut self, active: u64, bytes: u64) {
        if self.active != active {
            let path = seg_path(&self.shared.dir, self.active);
            let _ = fs::remove_file(&path);
            self.shared.segments.lock().unwrap().remove(&self.active);
            self.active = active;
            match OpenOptions::new()
                .append(true)
                .open(seg_path(&self.shared.dir, active))
            {
                Ok(f) => self.file = f,
                Err(e) => log::error(&format!("store: cannot reopen segment {active}: {e}")),
            }
        }
        if let Err(e) = self.file.set_len(bytes) {
            log::error(&format!("store: cannot cut back segment {active}: {e}"));
        }
        self.shared
            .segments
            .lock()
            .unwrap()
            .get_mut(&active)
            .expect("the active segment")
            .bytes = bytes;
        self.buf.clear();
    }
}

/// One output's view of the store: the events from its cursor on, in order.
pub struct Reader {
    shared: Arc<Shared>,
    committed: watch::Receiver<Committed>,
    next: u64,
    open: Option<Open>,
}

/// The segment a reader is in, and the bytes read from it not yet decoded.
struct Open {
    first: u64,
    file: File,
    buf: Vec<u8>,
    /// The file offset just after `buf`.
    end: u64,
}

/// Bytes read from a segment at once.
const CHUNK: usize = 256 << 10;

impl Open {
    /// Read more of the file, up to `limit`; false when there is no more.
    fn fill(&mut self, limit: u64) -> io::Result<bool> {
        let want = (limit.saturating_sub(self.end)).min(CHUNK as u64) as usize;
        if want == 0 {
            return Ok(false);
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let n = self.file.read_at(&mut self.buf[old..], self.end)?;
        self.buf.truncate(old + n);
        self.end += n as u64;
        Ok(n > 0)
    }
}

impl Reader {
    /// The next stored event, if there is one now.
    pub fn next(&mut self) -> Option<Event> {
        let c = *self.committed.borrow();
        loop {
            if self.next >= c.next {
                return None;
            }
            let want = self.segment_of(self.next)?;
            if want > self.next {
                // Removed (bounds) before this output had them: counted there.
                self.next = want;
                continue;
            }
            if self.open.as_ref().is_none_or(|o| o.first != want) {
                let path = seg_path(&self.shared.dir, want);
                match File::open(&path) {
                    Ok(file) => {
                        self.open = Some(Open {
                            first: want,
                            file,
                            buf: Vec::new(),
                            end: 0,
                        })
                    }
                    Err(e) => {
                        log::error_limited("read", &format!("{}: {e}", path.display()));
                        return None;
                    }
                }
            }
            let o = self.open.as_mut().expect("opened above");
            // Only what was fsync'd: past it the writer may be writing, or
            // cutting back a batch that failed.
            let limit = if o.first == c.active { c.len } else { u64::MAX };
            match decode(&o.buf) {
                Decoded::Record(e, n) => {
                    o.buf.drain(..n);
                    if e.seq < self.next {
                        continue;
                    }
                    self.next = e.seq + 1;
                    return Some(e);
                }
                Decoded::Short => match o.fill(limit) {
                    Ok(true) => continue,
                    Ok(false) if o.buf.is_empty() => {
                        // This segment is finished: what follows is in the next.
                        let first = o.first;
                        self.open = None;
                        self.next = self.next.max(self.segment_after(first)?);
                    }
                    Ok(false) => return self.skip_damaged(),
                    Err(e) => {
                        log::error_limited("read", &format!("store: segment {}: {e}", o.first));
                        return None;
                    }
                },
                Decoded::Bad => return self.skip_damaged(),
            }
        }
    }

    /// A damaged record: the rest of its segment cannot be trusted; go on
    /// with the next segment (counted as lost in the log).
    fn skip_damaged(&mut self) -> Option<Event> {
        let first = self.open.take()?.first;
        let after = self.segment_after(first)?;
        log::error_limited(
            "damaged",
            &format!(
                "store: damaged record in segment {first}: events {}..{after} skipped",
                self.next
            ),
        );
        self.next = after;
        self.next()
    }

    /// Wait until an event after those read is stored.
    pub async fn wait(&mut self) {
        let next = self.next;
        let _ = self.committed.wait_for(|c| c.next > next).await;
    }

    /// Read again from `seq` (after a failed delivery, from the cursor).
    pub fn rewind(&mut self, seq: u64) {
        self.next = seq;
        self.open = None;
    }

    /// The first seq of the segment holding `seq`, or of the first one
    /// after it if that was removed.
    fn segment_of(&self, seq: u64) -> Option<u64> {
        let segs = self.shared.segments.lock().unwrap();
        segs.range(..=seq)
            .next_back()
            .or_else(|| segs.range(seq..).next())
            .map(|(k, _)| *k)
    }

    fn segment_after(&self, first: u64) -> Option<u64> {
        let segs = self.shared.segments.lock().unwrap();
        segs.range(first + 1..).next().map(|(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cmev-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> StoreConfig {
        StoreConfig {
            dir: dir.to_owned(),
            max_bytes,
            max_age: Duration::from_secs(3600),
            segment_bytes,
        }
    }

    fn ev(n: usize) -> NewEvent {
        NewEvent {
            id: None,
            name: "MessageNew".into(),
            json: format!("{{\"event\":\"MessageNew\",\"n\":{n}}}").into_bytes(),
        }
    }

    fn drain(r: &mut Reader) -> Vec<Event> {
        std::iter::from_fn(|| r.next()).collect()
    }

    #[tokio::test]
    async fn append_read_reopen_and_cut_a_torn_end() {
        let d = dir("reopen");
        let s = Store::open(&cfg(&d, 4096, 1 << 20), "h").unwrap();
        s.append((0..100).map(ev).collect()).await.unwrap();
        let mut r = s.reader("out");
        let got = drain(&mut r);
        assert_eq!(got.len(), 100);
        assert!(got.iter().enumerate().all(|(i, e)| e.seq == i as u64));
        let epoch = fs::read_to_string(d.join("epoch")).unwrap();
        assert_eq!(got[7].id, format!("h:{epoch}:7"));
        assert!(
            fs::read_dir(&d).unwrap().count() > 3,
            "rotated into segments"
        );
        s.ack("out", 40);
        s.maintain();
        drop((r, s));
        // A torn record at the end, as a crash mid-write leaves it.
        let last = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .max()
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[60, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        let s = Store::open(&cfg(&d, 4096, 1 << 20), "h").unwrap();
        let mut r = s.reader("out");
        let got = drain(&mut r);
        assert_eq!(got.first().map(|e| e.seq), Some(40), "from the cursor on");
        assert_eq!(got.last().map(|e| e.seq), Some(99));
        s.append(vec![ev(100)]).await.unwrap();
        assert_eq!(r.next().map(|e| (e.seq, e.json)), Some((100, ev(100).json)));
        r.rewind(95);
        assert_eq!(drain(&mut r).len(), 6);
        fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn the_size_bound_drops_the_oldest_counted() {
        let d = dir("bound");
        let s = Store::open(&cfg(&d, 4096, 3 * 4096), "h").unwrap();
        let mut r = s.reader("out");
        let before = STATS
            .dropped_size
            .load(std::sync::atomic::Ordering::Relaxed);
        s.append((0..400).map(ev).collect()).await.unwrap();
        s.maintain();
        assert!(s.bytes() <= 3 * 4096, "{}", s.bytes());
        let dropped = STATS
            .dropped_size
            .load(std::sync::atomic::Ordering::Relaxed)
            - before;
        let got = drain(&mut r);
        assert!(dropped > 0);
        assert_eq!(
            got.len() as u64 + dropped,
            400,
            "each event read or counted"
        );
        assert_eq!(got.last().unwrap().seq, 399);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        let d = dir("mode");
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let e = Store::open(&cfg(&d, 4096, 1 << 20), "h").err().unwrap();
        assert!(e.contains("open to group or others"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
