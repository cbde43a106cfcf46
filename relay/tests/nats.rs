//! The relay into a real nats-server (JetStream, authentication on):
//! every event exactly once in the stream, through a server outage and
//! through the relay's own SIGKILL.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Check the stream against what was sent: each id once, each event's JSON
/// byte for byte as the producer wrote it, on its subject. Returns how many
/// times each (producer, n) is there.
fn check_stream(msgs: &[(String, String, Vec<u8>)]) -> HashMap<(usize, usize), usize> {
    let mut ids = HashSet::new();
    let mut seen = HashMap::new();
    for (subject, id, payload) in msgs {
        assert!(!id.is_empty(), "a message without Nats-Msg-Id");
        assert!(ids.insert(id.clone()), "id {id} twice in the stream");
        assert_eq!(subject, "cyrus.events.imap1_example_org.MessageNew");
        let (p, n) = marker(payload);
        assert_eq!(payload, event_json(p, n).as_bytes(), "payload changed");
        *seen.entry((p, n)).or_insert(0) += 1;
    }
    seen
}

fn relay_toml(dir: &TestDir, nats: &NatsServer) -> String {
    format!(
        "host = \"imap1.example.org\"\n[store]\ndir = \"{}\"\n[input]\ndatagram = \"{}\"\ndlist = \"{}\"\n{}",
        dir.path("store").display(),
        dir.path("notify").display(),
        dir.path("notify-dlist").display(),
        nats_section(nats)
    )
}

/// (a) 100,000 events from 8 producers (6 on the datagram socket, 2 on
/// dlist): each id exactly once in the stream, each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_from_eight_producers() {
    const PER: usize = 12_500;
    let dir = TestDir::new("a");
    let nats = NatsServer::start(&dir);
    let (dgram, dlist) = (dir.path("notify"), dir.path("notify-dlist"));
    let relay = Relay::start(
        &dir,
        &relay_toml(&dir, &nats),
        &[dgram.clone(), dlist.clone()],
    );
    let producers: Vec<_> = (0..8)
        .map(|p| {
            let (dgram, dlist) = (dgram.clone(), dlist.clone());
            std::thread::spawn(move || {
                if p < 6 {
                    send_datagrams(&dgram, p, 0..PER, Duration::ZERO);
                } else {
                    for n in 0..PER {
                        assert!(
                            send_dlist(&dlist, &event_json(p, n)),
                            "dlist {p}/{n} not OK"
                        );
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let n = stream_count(&nats, 8 * PER as u64, Duration::from_secs(120)).await;
    assert_eq!(n, 8 * PER as u64, "stats: {}", relay.stats());
    let seen = check_stream(&stream_messages(&nats).await);
    assert_eq!(seen.len(), 8 * PER);
    assert!(seen.values().all(|c| *c == 1));
    assert_eq!(relay.stat("rejected"), 0);
    assert_eq!(relay.stat("store_errors"), 0);
}

/// (b) nats-server SIGKILLed for 10 s while events flow, then restarted:
/// nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_down_ten_seconds() {
    const N: usize = 6_000;
    let dir = TestDir::new("b");
    let mut nats = NatsServer::start(&dir);
    let dgram = dir.path("notify");
    let relay = Relay::start(&dir, &relay_toml(&dir, &nats), std::slice::from_ref(&dgram));
    // 2 producers, 500 events/s each: 6 s of traffic, the outage inside it.
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let dgram = dgram.clone();
            std::thread::spawn(move || {
                send_datagrams(&dgram, p, 0..N / 2, Duration::from_millis(2))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.kill();
    let acked_at_kill = relay.stat("nats_acked");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stored_while_down = relay.stat("stored");
    nats.restart();
    for p in producers {
        p.join().unwrap();
    }
    let n = stream_count(&nats, N as u64, Duration::from_secs(60)).await;
    assert_eq!(n, N as u64, "stats: {}", relay.stats());
    let seen = check_stream(&stream_messages(&nats).await);
    assert_eq!(seen.len(), N);
    assert!(acked_at_kill < N as u64 && stored_while_down > acked_at_kill);
    assert!(relay.stat("nats_errors") > 0, "the outage was noticed");
    eprintln!("(b) {}", relay.stats());
}

/// (c) the relay SIGKILLed twice while dlist producers send: every event
/// answered OK is in the stream; the relay sends again what it had not
/// seen acknowledged, with the same ids, and JetStream drops the repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sigkilled_and_restarted() {
    // Each producer sends at least this many, and goes on until both kills
    // are over, so that events are in flight at every kill however fast the
    // host is.
    const MIN: usize = 2_500;
    let dir = TestDir::new("c");
    let nats = NatsServer::start(&dir);
    let dlist = dir.path("notify-dlist");
    let mut relay = Relay::start(&dir, &relay_toml(&dir, &nats), std::slice::from_ref(&dlist));
    let killing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let dlist = dlist.clone();
            let killing = killing.clone();
            std::thread::spawn(move || {
                let mut oks = Vec::new();
                let mut n = 0;
                while n < MIN || killing.load(std::sync::atomic::Ordering::Relaxed) {
                    // As a sender that keeps an event until it is taken.
                    while !send_dlist(&dlist, &event_json(p, n)) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    oks.push((p, n));
                    n += 1;
                    std::thread::sleep(Duration::from_micros(500));
                }
                oks
            })
        })
        .collect();
    let mut republished = 0;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        relay.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay.restart();
        // What it publishes at once is what it had before the kill.
        tokio::time::sleep(Duration::from_millis(500)).await;
        republished += relay.stat("nats_duplicates");
    }
    killing.store(false, std::sync::atomic::Ordering::Relaxed);
    let oks: Vec<(usize, usize)> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    assert!(oks.len() >= 2 * MIN);
    relay.wait_stat("nats_acked", 1, Duration::from_secs(5));
    let n = stream_count(&nats, oks.len() as u64, Duration::from_secs(60)).await;
    let seen = check_stream(&stream_messages(&nats).await);
    for k in &oks {
        assert!(seen.contains_key(k), "{k:?} was answered OK and is missing");
    }
    // An event stored just before a kill, its OK not yet written, is sent
    // again by the producer: a new event to the relay (at most one per kill
    // and producer).
    let twice = seen.values().filter(|c| **c > 1).count();
    assert!(twice <= 4, "{twice} events twice");
    assert_eq!(n as usize, oks.len() + twice);
    assert!(
        republished > 0,
        "the relay published again what it had before the kill: {}",
        relay.stats()
    );
    eprintln!(
        "(c) JetStream dropped {republished} repeats; {twice} events sent twice by producers"
    );
}

/// A wrong password is a clear error, and nothing is dropped: the events
/// wait in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error() {
    let dir = TestDir::new("pw");
    let nats = NatsServer::start(&dir);
    let dgram = dir.path("notify");
    let toml = relay_toml(&dir, &nats).replace(PASSWORD, "not-the-password");
    let relay = Relay::start(&dir, &toml, std::slice::from_ref(&dgram));
    relay.refused(
        &dgram,
        10,
        &["authorization violation", "refused the relay's credentials"],
    );
}
