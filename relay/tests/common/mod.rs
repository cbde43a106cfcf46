//! Real parts for the relay's tests: a nats-server with JetStream and
//! authentication on a loopback port, the relay binary, producers that send
//! as the library does (its own framing and dlist client), a JetStream
//! reader, and an HTTP receiver that checks the webhook's signature.

#![allow(dead_code)] // Each test binary uses a part of this module.

use futures::StreamExt;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "relay";
pub const PASSWORD: &str = "relay-test-password";
pub const STREAM: &str = "CYRUS_EVENTS";

/// A directory for one test, removed when it passes.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let d = std::env::temp_dir().join(format!("cmev-relay-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TestDir(d)
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nats-server with JetStream (storage in the test's directory) and a
/// user and password, on a loopback port.
pub struct NatsServer {
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start(dir: &TestDir) -> NatsServer {
        NatsServer::start_with(dir, "")
    }

    /// The same with more of nats-server's configuration (e.g. a `tls` block).
    pub fn start_with(dir: &TestDir, more_conf: &str) -> NatsServer {
        let auth =
            format!("authorization {{ user: {USER}, password: \"{PASSWORD}\" }}\n{more_conf}");
        NatsServer::start_auth(dir, &auth)
    }

    /// nats-server with JetStream and `auth` (its authentication settings)
    /// in place of the user and password.
    pub fn start_auth(dir: &TestDir, auth: &str) -> NatsServer {
        let port = free_port();
        let conf = dir.path("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n{auth}",
                dir.path("jetstream").display()
            ),
        )
        .unwrap();
        let mut s = NatsServer {
            port,
            conf,
            log: dir.path("nats.log"),
            child: None,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server (Debian package nats-server) is installed");
        self.child = Some(child);
        let port = self.port;
        wait_until("nats-server listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The relay binary: Cargo's for the tests; `CMEV_RELAY` for the benchmark
/// (an example, for which Cargo names no binary).
pub fn relay_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_cmev-relay") {
        Some(p) => p.into(),
        None => std::env::var_os("CMEV_RELAY")
            .expect("CMEV_RELAY names the relay binary")
            .into(),
    }
}

/// The relay binary under test, with its configuration file.
pub struct Relay {
    pub config: PathBuf,
    pub log: PathBuf,
    pub stats: PathBuf,
    child: Option<Child>,
    wait_for: Vec<PathBuf>,
}

impl Relay {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Write `toml` (the stats file is added) and start the relay; returns
    /// once the sockets it names in `wait_for` exist.
    pub fn start(dir: &TestDir, toml: &str, wait_for: &[PathBuf]) -> Relay {
        let stats = dir.path("stats.json");
        let config = dir.path("relay.toml");
        std::fs::write(
            &config,
            format!("stats_file = \"{}\"\n{toml}", stats.display()),
        )
        .unwrap();
        let mut r = Relay {
            config,
            log: dir.path("relay.log"),
            stats,
            child: None,
            wait_for: wait_for.to_vec(),
        };
        r.restart();
        r
    }

    pub fn restart(&mut self) {
        // Counters start again with the process: no stale ones are read.
        let _ = std::fs::remove_file(&self.stats);
        for p in &self.wait_for {
            let _ = std::fs::remove_file(p);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(relay_bin())
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        for p in self.wait_for.clone() {
            wait_until(
                &format!("relay socket {}", p.display()),
                Duration::from_secs(10),
                || p.exists(),
            );
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the relay flushes and writes its stats.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn stats(&self) -> serde_json::Value {
        std::fs::read_to_string(&self.stats)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }

    /// Wait until counter `name` reaches `n`.
    pub fn wait_stat(&self, name: &str, n: u64, timeout: Duration) {
        wait_until(
            &format!("{name} >= {n} ({})", self.stats()),
            timeout,
            || self.stat(name) >= n,
        );
    }

    /// NATS turns the relay away: `n` events sent to `dgram` wait in the
    /// store, a NATS error is counted, nothing is acknowledged, and the log
    /// says why (each of `reasons`).
    pub fn refused(&self, dgram: &Path, n: usize, reasons: &[&str]) {
        send_datagrams(dgram, 0, 0..n, Duration::ZERO);
        self.wait_stat("stored", n as u64, Duration::from_secs(10));
        self.wait_stat("nats_errors", 1, Duration::from_secs(10));
        assert_eq!(self.stat("nats_acked"), 0);
        let log = self.log_text();
        assert!(reasons.iter().all(|r| log.contains(r)), "{log}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A relay configuration with the store in `dir` and NATS at `nats`.
pub fn nats_section(nats: &NatsServer) -> String {
    format!(
        "[nats]\nservers = [\"{}\"]\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\nduplicate_window = 600\n",
        nats.url()
    )
}

/// The event producer `p` sends as its `n`th: unique, and recognisable.
pub fn event_json(p: usize, n: usize) -> String {
    format!(
        "{{\"event\":\"MessageNew\",\"timestamp\":\"2026-01-01T00:00:00.000+00:00\",\
         \"service\":\"lmtpd\",\"uri\":\"imap://user{p}@imap1.example.org/INBOX;UIDVALIDITY=1/;UID={n}\",\
         \"vnd.cmev.test\":[{p},{n}]}}"
    )
}

/// Producer and number of an event from `event_json`.
pub fn marker(json: &[u8]) -> (usize, usize) {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let m = &v["vnd.cmev.test"];
    (
        m[0].as_u64().unwrap() as usize,
        m[1].as_u64().unwrap() as usize,
    )
}

/// Send events `range` of producer `p` as notifyd datagrams, framed by the
/// library; a socket that is not there yet (relay restarting) is waited for.
pub fn send_datagrams(path: &Path, p: usize, range: std::ops::Range<usize>, pace: Duration) {
    let s = UnixDatagram::unbound().unwrap();
    for n in range {
        let d = cyrus_mboxevent::frame::datagram("log", &event_json(p, n));
        loop {
            match s.send_to(&d, path) {
                Ok(_) => break,
                Err(e)
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) =>
                {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("datagram to {}: {e}", path.display()),
            }
        }
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
}

/// Send one event over dlist as the library does; true if answered OK.
pub fn send_dlist(path: &Path, json: &str) -> bool {
    let req = cyrus_mboxevent::transport::dlist::frame("log", json);
    cyrus_mboxevent::transport::dlist::send(path.to_str().unwrap(), &req, Duration::from_secs(5))
        .is_ok()
}

pub async fn js_context(nats: &NatsServer) -> async_nats::jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .user_and_password(USER.into(), PASSWORD.into())
        .connect(nats.url())
        .await
        .unwrap();
    async_nats::jetstream::new(client)
}

/// Messages in the stream, waiting up to `timeout` for at least `want`.
pub async fn stream_count(nats: &NatsServer, want: u64, timeout: Duration) -> u64 {
    let js = js_context(nats).await;
    let t = Instant::now();
    loop {
        let n = match js.get_stream(STREAM).await {
            Ok(s) => s.get_info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        };
        if n >= want || t.elapsed() > timeout {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message in the stream: (subject, Nats-Msg-Id, payload).
pub async fn stream_messages(nats: &NatsServer) -> Vec<(String, String, Vec<u8>)> {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let js = js_context(nats).await;
    let stream = js.get_stream(STREAM).await.unwrap();
    let total = stream.get_info().await.unwrap().state.messages as usize;
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .expect("the stream's messages within 10 s")
            .unwrap()
            .unwrap();
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((m.subject.to_string(), id, m.payload.to_vec()));
    }
    out
}

/// Set one of the library's options in this process, as Cyrus's adapter does.
pub fn library_option(option: &str, value: &str) {
    let o = std::ffi::CString::new(option).unwrap();
    let v = std::ffi::CString::new(value).unwrap();
    let rc = cyrus_mboxevent::ffi::cmev_config_set(o.as_ptr(), v.as_ptr(), std::ptr::null_mut(), 0);
    assert_eq!(rc, 0, "{option}");
}

/// Notify a MessageNew of UID `n` through the library's C ABI, as Cyrus does.
pub fn notify_message_new(n: usize) {
    use cyrus_mboxevent::catalogue::{EventType, Param};
    use cyrus_mboxevent::ffi::{
        cmev_event_free, cmev_event_new, cmev_event_set_string, cmev_notify,
    };
    let uri = std::ffi::CString::new(format!(
        "imap://alice@imap1.example.org/INBOX;UIDVALIDITY=1/;UID={n}"
    ))
    .unwrap();
    let ev = cmev_event_new(EventType::MessageNew.bits());
    // SAFETY: a live event and a NUL-terminated string; the event is
    // handed to cmev_notify and then freed, as Cyrus does.
    unsafe {
        cmev_event_set_string(ev, Param::Uri as u32, uri.as_ptr());
        assert_eq!(cmev_notify(&ev, 1), 0);
        cmev_event_free(ev);
    }
}

/// The UID in an event's uri (`notify_message_new`'s number).
pub fn uid(json: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let uri = v["uri"].as_str().unwrap();
    uri.rsplit_once(";UID=").unwrap().1.parse().unwrap()
}
