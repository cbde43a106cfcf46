//! The spool input: the rings of Cyrus processes in `event_spool_dir`.
//!
//! A ring whose process died with events unsent is taken over (the
//! library's `adopt::Claimed`), its events stored, and only then marked
//! done and the ring removed. The relay competes with Cyrus's own senders
//! for such a ring by its locks; whoever takes it sends it.
//!
//! The ring of a living process that leaves its events to the relay
//! (`event_delivery: relay`) is read while the process writes it
//! (`adopt::Served`): every `POLL_EVERY` its new events are stored, and
//! only then marked done, which gives their space back to the process. The
//! relay renews the ring's lease while it can store; a relay that cannot
//! (disk full) or is gone lets it lapse, and the process sends its events
//! itself. Once the process is gone, what is left is taken as above.
//!
//! Either way an event's id is `<host>:<ring name>:<seq>`: a relay killed
//! between storing and marking stores the same events again with the same
//! ids, which JetStream drops as repeats.

use crate::log;
use crate::stats::{add, STATS};
use crate::store::{NewEvent, Store};
use cyrus_mboxevent::adopt::{Claimed, ClaimedEvent, Opened, Served};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the spool directory is searched (Cyrus's senders search it
/// about every 5 s; the relay a little more often, so that it takes most),
/// and living rings looked at for their process's end.
const SCAN_EVERY: Duration = Duration::from_secs(2);
/// How often living rings are looked at for new events: the latency the
/// library's sender adds within a stream (its 10 ms naps).
const POLL_EVERY: Duration = Duration::from_millis(10);
/// How often the lease of each living ring is renewed (it lasts
/// `RELAY_LEASE`, 5 s): a store in a line that the ring's writer reads.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Events taken from one living ring per poll.
const BATCH: usize = 1024;

/// A living process's ring being read.
struct Live {
    path: PathBuf,
    stem: String,
    ring: Served,
}

/// Rings found in `dir` that are not among `known`, opened and locked on
/// a blocking thread (the library opens, locks and maps files).
fn open_new(dir: &Path, known: HashSet<PathBuf>) -> Vec<(PathBuf, Opened)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ring") && !known.contains(p))
        .filter_map(|p| Served::open(&p).map(|o| (p, o)))
        .collect()
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn new_event(host: &str, stem: &str, e: ClaimedEvent) -> NewEvent {
    NewEvent {
        id: Some(format!("{host}:{stem}:{}", e.seq)),
        name: e.name.to_owned(),
        json: e.json.into_bytes(),
    }
}

pub async fn serve(dir: PathBuf, host: String, store: Arc<Store>) {
    let mut live: Vec<Live> = Vec::new();
    let mut last_scan: Option<Instant> = None;
    let mut last_renew = Instant::now();
    loop {
        if last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
            last_scan = Some(Instant::now());
            scan(&dir, &host, &store, &mut live).await;
        }
        let renew = last_renew.elapsed() >= RENEW_EVERY;
        if poll(&host, &store, &mut live, renew).await && renew {
            last_renew = Instant::now();
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Take over the rings whose process has ended (living rings whose process
/// is gone, and dead rings found in `dir`), and start reading new living
/// rings.
async fn scan(dir: &Path, host: &str, store: &Store, live: &mut Vec<Live>) {
    let (gone, lives): (Vec<Live>, Vec<Live>) = std::mem::take(live)
        .into_iter()
        .partition(|l| l.ring.owner_gone());
    *live = lives;
    for l in gone {
        if let Some(c) = l.ring.claim() {
            take(&l.path, c, host, store).await;
        }
    }
    let d = dir.to_path_buf();
    let known = live.iter().map(|l| l.path.clone()).collect();
    let found = tokio::task::spawn_blocking(move || open_new(&d, known))
        .await
        .unwrap_or_default();
    for (path, opened) in found {
        match opened {
            Opened::Dead(c) => take(&path, c, host, store).await,
            Opened::Live(ring) => {
                ring.renew();
                add(&STATS.spool_live_rings, 1);
                live.push(Live {
                    stem: stem(&path),
                    path,
                    ring,
                });
            }
        }
    }
}

/// Store what the living rings hold, in one append, then mark it done;
/// renew their leases if `renew`. False if the store refused the events
/// (then no lease is renewed, so that their processes send for themselves
/// once the leases lapse).
async fn poll(host: &str, store: &Store, live: &mut [Live], renew: bool) -> bool {
    let mut events = Vec::new();
    let lost_before: u64 = live.iter().map(|l| l.ring.lost()).sum();
    for l in live.iter_mut() {
        let batch = l.ring.events(BATCH);
        events.extend(batch.into_iter().map(|e| new_event(host, &l.stem, e)));
    }
    if live.iter().all(|l| l.ring.found() == 0) {
        if renew {
            live.iter().for_each(|l| l.ring.renew());
        }
        return true;
    }
    let n = events.len() as u64;
    match store.append(events).await {
        Ok(()) => {
            add(&STATS.received, n);
            for l in live.iter_mut() {
                l.ring.done();
                if renew {
                    l.ring.renew();
                }
            }
            let lost: u64 = live.iter().map(|l| l.ring.lost()).sum();
            add(&STATS.spool_lost, lost - lost_before);
            true
        }
        Err(e) => {
            log::error_limited(
                "spool",
                &format!(
                    "{n} events of living processes' rings not stored ({}); left in their \
                     rings, whose processes send for themselves if this lasts",
                    e.0
                ),
            );
            false
        }
    }
}

async fn take(path: &Path, ring: Claimed, host: &str, store: &Store) {
    let stem = stem(path);
    let events: Vec<NewEvent> = ring
        .events()
        .into_iter()
        .map(|e| new_event(host, &stem, e))
        .collect();
    let n = events.len() as u64;
    // A living ring read to its end before its process exited.
    if n == 0 && ring.lost() == 0 {
        ring.done();
        return;
    }
    match store.append(events).await {
        Ok(()) => {
            add(&STATS.received, n);
            add(&STATS.spool_lost, ring.lost());
            log::info(&format!(
                "took over {n} events left by process {} in {} ({} unreadable)",
                ring.pid(),
                path.display(),
                ring.lost()
            ));
            add(&STATS.spool_rings, 1);
            ring.done();
        }
        // Dropping the claim unlocks the ring with its events still in it.
        Err(e) => log::error_limited(
            "spool",
            &format!(
                "{}: {n} events not stored ({}); the ring is left for later",
                path.display(),
                e.0
            ),
        ),
    }
}
