//! The spool input: rings that Cyrus processes left in `event_spool_dir`
//! when they died with events not yet sent are taken over (the library's
//! `adopt::Claimed`), their events stored, and only then marked done and the
//! ring removed. The relay competes with Cyrus's own senders for a ring by
//! its lock; whoever takes it sends it. A relay killed between storing and
//! marking leaves the ring to be taken again: the same events come with the
//! same ids (`<host>:<ring name>:<seq>`), which JetStream drops as repeats.

use crate::log;
use crate::stats::{add, STATS};
use crate::store::{NewEvent, Store};
use cyrus_mboxevent::adopt::Claimed;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the spool directory is searched (Cyrus's senders search it
/// about every 5 s; the relay a little more often, so that it takes most).
const SCAN_EVERY: Duration = Duration::from_secs(2);

/// Rings whose owner is gone, with their events: found and locked on a
/// blocking thread (the library opens, locks and maps files).
fn claim_all(dir: &Path) -> Vec<(PathBuf, Claimed)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ring"))
        .filter_map(|p| Claimed::claim(&p).map(|c| (p, c)))
        .collect()
}

pub async fn serve(dir: PathBuf, host: String, store: Arc<Store>) {
    loop {
        let d = dir.clone();
        let claimed = tokio::task::spawn_blocking(move || claim_all(&d))
            .await
            .unwrap_or_default();
        for (path, ring) in claimed {
            take(&path, ring, &host, &store).await;
        }
        tokio::time::sleep(SCAN_EVERY).await;
    }
}

async fn take(path: &Path, ring: Claimed, host: &str, store: &Store) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let events: Vec<NewEvent> = ring
        .events()
        .into_iter()
        .map(|e| NewEvent {
            id: Some(format!("{host}:{stem}:{}", e.seq)),
            name: e.name.to_owned(),
            json: e.json.into_bytes(),
        })
        .collect();
    let n = events.len() as u64;
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
