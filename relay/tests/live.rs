//! The spool input on living processes (`event_delivery: relay`): a process
//! using the library's C ABI leaves its events in its ring and sends none;
//! the relay reads them while the process runs. Each producer is this test
//! binary run again (`producer`), driven by lines on its standard input.

mod common;

use common::*;
use cyrus_mboxevent::counters::Counter;
use cyrus_mboxevent::ffi::{cmev_counters_get, cmev_flush, Snapshot};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOST: &str = "imap1.example.org";

/// Threads of this process named as the library's sender.
fn sender_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "mboxevent-send")
        })
        .count()
}

/// The producer: `notify A B PACE_US` notifies UIDs A..B (printing `at N`
/// after each, then `done`); `counters` flushes what it queued and prints
/// `counters RELAYED FALLBACK SENT SENDER_THREADS`; end of input ends it.
#[test]
#[ignore = "the child process of the tests below"]
fn producer() {
    let dir = PathBuf::from(std::env::var("CMEV_RELAY_TEST_DIR").expect("run by a test"));
    library_option("event_notifier", "log");
    library_option("event_groups", "message");
    library_option("event_delivery", "relay");
    library_option("notifysocket", dir.join("notify").to_str().unwrap());
    library_option("event_spool_dir", dir.join("spool").to_str().unwrap());
    let kb = std::env::var("CMEV_SPOOL_KB").unwrap_or_else(|_| "1024".into());
    library_option("event_spool_size", &kb);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["notify", a, b, pace] => {
                let pace = Duration::from_micros(pace.parse().unwrap());
                for n in a.parse().unwrap()..b.parse().unwrap() {
                    notify_message_new(n);
                    writeln!(out, "at {n}").unwrap();
                    out.flush().unwrap();
                    std::thread::sleep(pace);
                }
                writeln!(out, "done").unwrap();
            }
            ["counters"] => {
                cmev_flush(10_000);
                let mut s = Snapshot::default();
                assert_eq!(cmev_counters_get(&mut s), 0);
                writeln!(
                    out,
                    "counters {} {} {} {}",
                    s.get(Counter::Relayed),
                    s.get(Counter::RelayFallback),
                    s.get(Counter::Sent),
                    sender_threads()
                )
                .unwrap();
            }
            _ => panic!("producer: {line}?"),
        }
        out.flush().unwrap();
    }
}

struct Producer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// What `counters` prints.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    relayed: u64,
    fallback: u64,
    sent: u64,
    sender_threads: u64,
}

impl Producer {
    fn start(dir: &TestDir, spool_kb: u32) -> Producer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "producer", "--nocapture", "--quiet"])
            .env("CMEV_RELAY_TEST_DIR", &dir.0)
            .env("CMEV_SPOOL_KB", spool_kb.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Producer {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// The next line it prints that starts with `word`.
    fn next(&mut self, word: &str) -> String {
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "producer ended"
            );
            if line.starts_with(word) {
                return line.trim_end().to_owned();
            }
        }
    }

    /// Notify UIDs `range`, `pace` apart; returns once all are notified.
    fn notify(&mut self, range: std::ops::Range<usize>, pace: Duration) {
        self.say(&format!(
            "notify {} {} {}",
            range.start,
            range.end,
            pace.as_micros()
        ));
        self.next("done");
    }

    /// The UID it has notified last, once it is at least `n`.
    fn reach(&mut self, n: usize) -> usize {
        loop {
            let at: usize = self.next("at ")[3..].parse().unwrap();
            if at >= n {
                return at;
            }
        }
    }

    fn counts(&mut self) -> Counts {
        self.say("counters");
        let line = self.next("counters");
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|w| w.parse().unwrap())
            .collect();
        Counts {
            relayed: v[0],
            fallback: v[1],
            sent: v[2],
            sender_threads: v[3],
        }
    }

    /// End of input: it returns and exits as a process does.
    fn finish(mut self) {
        self.stdin = None;
        assert!(self.child.wait().unwrap().success());
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn relay_toml(dir: &TestDir, nats: &NatsServer, datagram: bool) -> String {
    let input = if datagram {
        format!("datagram = \"{}\"\n", dir.path("notify").display())
    } else {
        String::new()
    };
    format!(
        "host = \"{HOST}\"\n[store]\ndir = \"{}\"\n[input]\nspool_dir = \"{}\"\n{input}{}",
        dir.path("store").display(),
        dir.path("spool").display(),
        nats_section(nats)
    )
}

fn rings(dir: &TestDir) -> Vec<PathBuf> {
    std::fs::read_dir(dir.path("spool"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ring"))
                .collect()
        })
        .unwrap_or_default()
}

/// (seq, UID) of each event in the stream, in its order, each checked to
/// carry the ring id `<host>:<ring>:<seq>` (one ring per test).
async fn ring_events(nats: &NatsServer) -> Vec<(usize, usize)> {
    stream_messages(nats)
        .await
        .iter()
        .map(|(_, id, json)| {
            let (ring, seq) = id.rsplit_once(':').unwrap();
            assert!(
                ring.starts_with(&format!("{HOST}:")) && ring.contains('-'),
                "{id}"
            );
            (seq.parse().unwrap(), uid(json))
        })
        .collect()
}

/// `n` events numbered in their ring as their UID, in order.
fn in_order(n: usize) -> Vec<(usize, usize)> {
    (0..n).map(|i| (i, i)).collect()
}

fn wait_gone(what: &str, timeout: Duration, mut gone: impl FnMut() -> bool) {
    let t = Instant::now();
    while !gone() {
        assert!(t.elapsed() < timeout, "{what} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_living_process_sends_nothing_and_its_events_reach_jetstream_in_order() {
    const N: usize = 3000;
    let dir = TestDir::new("live-order");
    let nats = NatsServer::start(&dir);
    let relay = Relay::start(&dir, &relay_toml(&dir, &nats, false), &[]);
    let mut p = Producer::start(&dir, 1024);
    p.notify(0..N, Duration::from_micros(200));
    let c = p.counts();
    assert_eq!(
        c,
        Counts {
            relayed: N as u64,
            fallback: 0,
            sent: 0,
            sender_threads: 0
        }
    );
    relay.wait_stat("nats_acked", N as u64, Duration::from_secs(30));
    assert_eq!(ring_events(&nats).await, in_order(N));
    assert_eq!(relay.stat("spool_live_rings"), 1);
    // Everything read: the process removes its ring as it exits.
    p.finish();
    assert!(rings(&dir).is_empty());
    assert_eq!(relay.stat("received"), N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_restarted_and_the_process_killed_midway_lose_nothing() {
    const N: usize = 8000;
    let dir = TestDir::new("live-kills");
    let nats = NatsServer::start(&dir);
    let mut relay = Relay::start(&dir, &relay_toml(&dir, &nats, false), &[]);
    let mut p = Producer::start(&dir, 1024);
    p.say(&format!("notify 0 {N} 300"));
    p.reach(1000);
    relay.kill9();
    p.reach(1500);
    relay.restart();
    p.reach(3000);
    relay.kill9();
    relay.restart();
    let last = p.reach(4000);
    p.kill9();
    // Everything up to the last UID it said it notified, and perhaps the
    // next (notified, not yet said): from the live ring, then from the
    // ring of the dead process, which the relay takes and removes.
    wait_gone("the dead process's ring", Duration::from_secs(20), || {
        rings(&dir).is_empty()
    });
    stream_count(&nats, last as u64 + 1, Duration::from_secs(30)).await;
    let got = ring_events(&nats).await;
    assert!(
        got.len() == last + 1 || got.len() == last + 2,
        "{} of {last}",
        got.len()
    );
    assert_eq!(got, in_order(got.len()), "each once, in order");
    eprintln!(
        "{} events, {} repeats dropped by JetStream after the last restart",
        got.len(),
        relay.stat("nats_duplicates")
    );
}

/// A listener at notifyd's place, counting the datagrams it hears by UID
/// on a thread of its own (a listener that does not read holds its sender
/// back).
struct Listener {
    heard: Arc<Mutex<HashMap<usize, usize>>>,
}

impl Listener {
    fn bind(path: &Path) -> Listener {
        let socket = UnixDatagram::bind(path).unwrap();
        let heard = Arc::new(Mutex::new(HashMap::new()));
        let h = Arc::clone(&heard);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                let uid: usize = text
                    .rsplit_once(";UID=")
                    .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|d| d.parse().ok())
                    .unwrap();
                *h.lock().unwrap().entry(uid).or_default() += 1;
            }
        });
        Listener { heard }
    }

    fn heard(&self) -> HashMap<usize, usize> {
        self.heard.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_relay_the_process_sends_itself_until_one_comes() {
    let dir = TestDir::new("live-norelay");
    let listener = Listener::bind(&dir.path("notify"));
    let mut p = Producer::start(&dir, 1024);
    // A new ring is presumed read for RELAY_LEASE (5 s), time for a relay
    // to find it: these wait in it.
    p.notify(0..50, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(5500));
    // No relay renewed the lease: the process sends these itself.
    p.notify(50..100, Duration::ZERO);
    let c = p.counts();
    assert_eq!((c.relayed, c.fallback, c.sent), (50, 50, 50), "{c:?}");
    assert_eq!(c.sender_threads, 1, "a sender started for them");
    assert_eq!(
        listener.heard(),
        (50..100).map(|u| (u, 1)).collect::<HashMap<_, _>>()
    );

    // A relay comes: it takes what waited in the ring, renews the lease,
    // and the process leaves its events to it again.
    let nats = NatsServer::start(&dir);
    let relay = Relay::start(&dir, &relay_toml(&dir, &nats, false), &[]);
    relay.wait_stat("received", 50, Duration::from_secs(10));
    p.notify(100..150, Duration::ZERO);
    let c = p.counts();
    assert_eq!((c.relayed, c.fallback, c.sent), (100, 50, 50), "{c:?}");
    relay.wait_stat("nats_acked", 100, Duration::from_secs(20));
    // Events sent by the process take no number in the ring.
    let want: Vec<(usize, usize)> = (0..50).chain(100..150).enumerate().collect();
    assert_eq!(ring_events(&nats).await, want);
    assert_eq!(
        listener.heard().len(),
        50,
        "nothing more sent by the process"
    );
    p.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ring_sends_the_rest_to_the_relays_socket() {
    const N: usize = 2000;
    let dir = TestDir::new("live-full");
    let nats = NatsServer::start(&dir);
    let relay = Relay::start(&dir, &relay_toml(&dir, &nats, true), &[dir.path("notify")]);
    // A ring of 4 KiB holds about 20 events: a burst outruns the relay's
    // 10 ms polls, and what does not fit goes to its datagram socket.
    let mut p = Producer::start(&dir, 4);
    p.notify(0..N, Duration::ZERO);
    let c = p.counts();
    assert_eq!(c.relayed + c.fallback, N as u64, "{c:?}");
    assert!(c.relayed > 0 && c.fallback > 0, "{c:?}");
    assert_eq!(c.sent, c.fallback, "{c:?}");
    relay.wait_stat("nats_acked", N as u64, Duration::from_secs(30));
    let msgs = stream_messages(&nats).await;
    let mut uids: Vec<usize> = msgs.iter().map(|(_, _, json)| uid(json)).collect();
    uids.sort_unstable();
    assert_eq!(uids, (0..N).collect::<Vec<_>>(), "each once");
    let from_ring = msgs
        .iter()
        .filter(|(_, id, _)| id.rsplit_once(':').unwrap().0.contains('-'))
        .count();
    assert_eq!(from_ring as u64, c.relayed);
    p.finish();
    assert!(Path::new(&dir.path("spool")).is_dir());
}
