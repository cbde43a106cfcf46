//! `make bench`'s relay rows (benches/relay.sh): events per second through
//! the relay into JetStream, latency from the library's `cmev_notify` to a
//! NATS consumer, and the relay's CPU per event, beside a minimal JetStream
//! publisher (pipelined, every publish acknowledged) measured in the same
//! run against the same nats-server: the machine's limit.
//!
//! ```text
//! CMEV_RELAY=target/release/cmev-relay relay_bench OUT.md [EVENTS] [RATE]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use cyrus_mboxevent::catalogue::{EventType, Param};
use cyrus_mboxevent::ffi::{
    cmev_config_set, cmev_event_free, cmev_event_new, cmev_event_set_string, cmev_flush,
    cmev_notify,
};
use futures::StreamExt;
use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PRODUCERS: usize = 4;
const IN_FLIGHT: usize = 512;
const LATENCY_SECONDS: u64 = 5;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn config(option: &str, value: &str) {
    let (o, v) = (CString::new(option).unwrap(), CString::new(value).unwrap());
    let rc = cmev_config_set(o.as_ptr(), v.as_ptr(), std::ptr::null_mut(), 0);
    assert_eq!(rc, 0, "{option}");
}

/// A URI carrying the moment it was made, for the consumer's latency.
fn uri(n: usize) -> String {
    format!(
        "imap://bench.example.org/user/alice;UIDVALIDITY=1/;UID={n}#{}",
        now_ns()
    )
}

fn notify(n: usize) {
    let u = CString::new(uri(n)).unwrap();
    let ev = cmev_event_new(EventType::MessageNew.bits());
    // SAFETY: a live event and a NUL-terminated string, handed over and freed.
    unsafe {
        cmev_event_set_string(ev, Param::Uri as u32, u.as_ptr());
        cmev_notify(&ev, 1);
        cmev_event_free(ev);
    }
}

/// Latencies (ns) of messages on `subject`, from the time in their `uri`.
struct Consumer {
    got: Arc<Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Consumer {
    async fn start(nats: &NatsServer, subject: &str) -> Consumer {
        let client = js_context(nats).await.client();
        let mut sub = client.subscribe(subject.to_owned()).await.unwrap();
        client.flush().await.unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        let task = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let at = now_ns();
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                let sent: u64 = v["uri"]
                    .as_str()
                    .and_then(|u| u.rsplit('#').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(at);
                g.lock().unwrap().push(at.saturating_sub(sent));
            }
        });
        Consumer { got, task }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    async fn wait(&self, n: usize) {
        let t = Instant::now();
        while self.count() < n {
            assert!(
                t.elapsed() < Duration::from_secs(300),
                "{} of {n}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// p50 and p99 in ms.
    fn percentiles(self) -> (f64, f64) {
        self.task.abort();
        let mut v = self.got.lock().unwrap().clone();
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1e6;
        (at(0.50), at(0.99))
    }
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3).
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: no arguments.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The payload the relay stores for event `n`, as the library renders it.
fn baseline_payload(n: usize) -> Vec<u8> {
    format!(
        "{{\"event\":\"MessageNew\",\"uri\":\"{}\",\"pid\":{}}}",
        uri(n),
        std::process::id()
    )
    .into_bytes()
}

/// The minimal publisher: `IN_FLIGHT` publishes awaiting acknowledgement,
/// `pace` between publishes (zero: as fast as acknowledged).
async fn publish(js: &async_nats::jetstream::Context, events: usize, pace: Duration) {
    let mut in_flight = VecDeque::new();
    let start = Instant::now();
    for n in 0..events {
        if !pace.is_zero() {
            let due = start + pace * n as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("baseline:{n}:{}", now_ns()).as_str());
        let f = js
            .publish_with_headers("baseline.bench.MessageNew", h, baseline_payload(n).into())
            .await
            .unwrap();
        in_flight.push_back(f);
        if in_flight.len() >= IN_FLIGHT {
            in_flight.pop_front().unwrap().await.unwrap();
        }
    }
    for f in in_flight {
        f.await.unwrap();
    }
}

/// Datagrams framed as the library frames them, sent straight to the
/// relay: its own latency, without the library's sender.
fn send_direct(path: &std::path::Path, events: usize, pace: Duration) {
    let s = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let start = Instant::now();
    for n in 0..events {
        std::thread::sleep((start + pace * n as u32).saturating_duration_since(Instant::now()));
        let json = String::from_utf8(baseline_payload(n)).unwrap();
        s.send_to(&cyrus_mboxevent::frame::datagram("log", &json), path)
            .unwrap();
    }
}

fn produce(events: usize, pace: Duration) {
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            std::thread::spawn(move || {
                let start = Instant::now();
                for (i, n) in (p..events).step_by(PRODUCERS).enumerate() {
                    if !pace.is_zero() {
                        let due = start + pace * (i * PRODUCERS) as u32;
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    notify(n);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .expect("usage: relay_bench OUT.md [EVENTS] [RATE]");
    let events: usize = args.get(2).map_or(50_000, |a| a.parse().unwrap());
    let rate: u64 = args.get(3).map_or(1_000, |a| a.parse().unwrap());
    let dir = TestDir::new("bench");
    let nats = NatsServer::start(&dir);
    let dgram = dir.path("notify");
    let toml = format!(
        "host = \"bench.example.org\"\n[store]\ndir = \"{}\"\n[input]\ndatagram = \"{}\"\n{}",
        dir.path("store").display(),
        dgram.display(),
        nats_section(&nats)
    );
    let relay = Relay::start(&dir, &toml, std::slice::from_ref(&dgram));
    let pid = relay.pid().unwrap();
    config("event_notifier", "log");
    config("event_groups", "message");
    config("event_queue_overflow", "block");
    config("notifysocket", dgram.to_str().unwrap());
    config("event_spool_dir", dir.path("spool").to_str().unwrap());
    // Warm up (the relay makes its stream on connecting).
    let warm = Consumer::start(&nats, "cyrus.events.>").await;
    produce(100, Duration::ZERO);
    warm.wait(100).await;
    warm.percentiles();

    // Throughput through the relay: notify as fast as the library takes them.
    let consumer = Consumer::start(&nats, "cyrus.events.>").await;
    let (t, cpu) = (Instant::now(), cpu_seconds(pid));
    produce(events, Duration::ZERO);
    consumer.wait(events).await;
    let relay_secs = t.elapsed().as_secs_f64();
    let relay_cpu = cpu_seconds(pid) - cpu;
    consumer.task.abort();
    cmev_flush(1000);

    // The machine's limit: the minimal publisher, same server, same size.
    let js = js_context(&nats).await;
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "BASELINE".into(),
        subjects: vec!["baseline.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let self_pid = std::process::id();
    let (t, cpu) = (Instant::now(), cpu_seconds(self_pid));
    publish(&js, events, Duration::ZERO).await;
    let base_secs = t.elapsed().as_secs_f64();
    let base_cpu = cpu_seconds(self_pid) - cpu;

    // Latency at a steady rate, both ways.
    let pace = Duration::from_nanos(1_000_000_000 / rate);
    let n = (rate * LATENCY_SECONDS) as usize;
    let consumer = Consumer::start(&nats, "cyrus.events.>").await;
    produce(n, pace);
    consumer.wait(n).await;
    let (r50, r99) = consumer.percentiles();
    let consumer = Consumer::start(&nats, "cyrus.events.>").await;
    let path = dgram.clone();
    tokio::task::spawn_blocking(move || send_direct(&path, n, pace))
        .await
        .unwrap();
    consumer.wait(n).await;
    let (d50, d99) = consumer.percentiles();
    let consumer = Consumer::start(&nats, "baseline.>").await;
    publish(&js, n, pace).await;
    consumer.wait(n).await;
    let (b50, b99) = consumer.percentiles();

    let (rr, br) = (events as f64 / relay_secs, events as f64 / base_secs);
    let (rc, bc) = (
        relay_cpu * 1e6 / events as f64,
        base_cpu * 1e6 / events as f64,
    );
    let table = format!(
        "## cmev-relay into NATS JetStream\n\n\
         {events} MessageNew events from {PRODUCERS} threads through the library \
         (`cmev_notify`, datagrams) and the relay (store fsync'd, `Nats-Msg-Id`, \
         {IN_FLIGHT} in flight) into a file-backed stream, against a minimal publisher \
         ({IN_FLIGHT} in flight, every publish acknowledged) to the same nats-server in \
         the same run. Latency: {rate} events/s for {LATENCY_SECONDS} s, from `cmev_notify` \
         (or the publish) to a NATS subscriber.\n\n\
         | | relay | minimal publisher | relay / publisher |\n\
         | --- | ---: | ---: | ---: |\n\
         | events/s into JetStream | {rr:.0} | {br:.0} | {:.2} |\n\
         | CPU per event (µs, relay process / publisher process) | {rc:.1} | {bc:.1} | {:.2} |\n\
         | latency p50 (ms), from `cmev_notify` | {r50:.2} | {b50:.2} | {:.2} |\n\
         | latency p99 (ms), from `cmev_notify` | {r99:.2} | {b99:.2} | {:.2} |\n\
         | latency p50 (ms), datagram sent straight to the relay | {d50:.2} | {b50:.2} | {:.2} |\n\
         | latency p99 (ms), datagram sent straight to the relay | {d99:.2} | {b99:.2} | {:.2} |\n",
        rr / br,
        rc / bc,
        r50 / b50,
        r99 / b99,
        d50 / b50,
        d99 / b99
    );
    std::fs::write(out, &table).unwrap();
    print!("{table}");
    eprintln!("relay counters: {}", relay.stats());
}
