//! (d) The webhook output against a real HTTP receiver that checks each
//! batch's HMAC-SHA256 signature: delivered when it answers 2xx; retried
//! while it answers 500, hangs, or is down; dead-lettered after
//! `discard_after`; every event delivered or dead-lettered, none lost.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use sha2::Sha256;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "webhook-test-secret";
const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

#[derive(Default)]
struct Seen {
    /// (producer, n) of each event in a batch answered 200.
    events: Mutex<Vec<(usize, usize)>>,
    requests: AtomicU64,
    bad_signatures: AtomicU64,
}

/// An HTTP receiver on `port`; dropping the handle takes it down, open
/// connections too.
struct Receiver {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn verify(req_ts: &str, sig: &str, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(req_ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sig == format!("v1={want}")
}

async fn handle(
    req: Request<Incoming>,
    mode: Arc<AtomicU8>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ts, sig) = (header("X-Cmev-Timestamp"), header("X-Cmev-Signature"));
    let body = req.into_body().collect().await?.to_bytes();
    seen.requests.fetch_add(1, Ordering::Relaxed);
    let status = match mode.load(Ordering::Relaxed) {
        HANG => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
        FAIL => StatusCode::INTERNAL_SERVER_ERROR,
        _ if !verify(&ts, &sig, &body) => {
            seen.bad_signatures.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
        _ => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["host"], "imap1.example.org");
            let mut events = seen.events.lock().unwrap();
            for e in v["events"].as_array().unwrap() {
                assert!(e["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("imap1.example.org:")));
                assert_eq!(e["event"], "MessageNew");
                let payload = serde_json::to_vec(&e["payload"]).unwrap();
                events.push(marker(&payload));
            }
            StatusCode::OK
        }
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

async fn receiver(addr: SocketAddr, mode: Arc<AtomicU8>, seen: Arc<Seen>) -> Receiver {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let task = tokio::spawn(async move {
        // Connections live in this set, so that aborting the task closes them.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((io, _)) = listener.accept().await else {
                continue;
            };
            let (mode, seen) = (Arc::clone(&mode), Arc::clone(&seen));
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    handle(req, Arc::clone(&mode), Arc::clone(&seen))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    Receiver { task }
}

/// Dead-lettered events: (producer, n) of each, from the file's batches.
fn dead_letters(path: &std::path::Path) -> Vec<(usize, usize)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
            v["batch"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| marker(&serde_json::to_vec(&e["payload"]).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_then_dead_letters() {
    let dir = TestDir::new("d");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let dgram = dir.path("notify");
    let dead = dir.path("dead-letter.jsonl");
    let toml = format!(
        "host = \"imap1.example.org\"\n[store]\ndir = \"{}\"\n[input]\ndatagram = \"{}\"\n\
         [webhook]\nurl = \"http://{addr}/events\"\nsecret = \"{SECRET}\"\nbatch = 10\n\
         timeout = 0.5\nretry_min = 0.1\nretry_max = 0.4\ndiscard_after = 2.5\ndead_letter = \"{}\"\n",
        dir.path("store").display(),
        dgram.display(),
        dead.display()
    );
    let relay = Relay::start(&dir, &toml, std::slice::from_ref(&dgram));
    let mode = Arc::new(AtomicU8::new(OK));
    let seen = Arc::new(Seen::default());
    let mut rx = Some(receiver(addr, Arc::clone(&mode), Arc::clone(&seen)).await);
    let mut sent = 0;
    let mut send = |p: usize, count: usize| {
        send_datagrams(&dgram, p, sent..sent + count, Duration::ZERO);
        sent += count;
    };
    let delivered = |n: u64| relay.wait_stat("webhook_delivered", n, Duration::from_secs(20));
    let dead_lettered =
        |n: u64| relay.wait_stat("webhook_dead_lettered", n, Duration::from_secs(20));

    // Up: delivered, signed.
    send(0, 25);
    delivered(25);
    // 500 for a second, then well again: retried and delivered.
    mode.store(FAIL, Ordering::Relaxed);
    send(0, 10);
    tokio::time::sleep(Duration::from_secs(1)).await;
    mode.store(OK, Ordering::Relaxed);
    delivered(35);
    let errors_500 = relay.stat("webhook_errors");
    assert!(errors_500 >= 2, "retried: {}", relay.stats());
    // 500 for good: dead-lettered after discard_after.
    mode.store(FAIL, Ordering::Relaxed);
    send(0, 10);
    dead_lettered(10);
    // Hangs: each try times out, then dead-lettered.
    mode.store(HANG, Ordering::Relaxed);
    send(0, 10);
    dead_lettered(20);
    // Down for a second: retried and delivered once it is back.
    mode.store(OK, Ordering::Relaxed);
    drop(rx.take());
    send(0, 10);
    tokio::time::sleep(Duration::from_secs(1)).await;
    rx = rx.or(Some(
        receiver(addr, Arc::clone(&mode), Arc::clone(&seen)).await,
    ));
    delivered(45);
    // Down for good: dead-lettered.
    drop(rx.take());
    send(0, 10);
    dead_lettered(30);

    let got: Vec<_> = seen.events.lock().unwrap().clone();
    let dead_events = dead_letters(&dead);
    assert_eq!(seen.bad_signatures.load(Ordering::Relaxed), 0);
    assert_eq!(got.len(), 45, "each delivered once");
    assert_eq!(dead_events.len(), 30);
    let all: HashSet<_> = got.iter().chain(&dead_events).copied().collect();
    assert_eq!(
        all.len(),
        sent,
        "every event delivered or dead-lettered, none both"
    );
    assert!(relay.log_text().contains("written to"));
    eprintln!(
        "(d) {} requests; {}",
        seen.requests.load(Ordering::Relaxed),
        relay.stats()
    );
}
