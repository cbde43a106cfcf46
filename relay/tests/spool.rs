//! The spool input: a process using the library queues events with no
//! listener up, and is SIGKILLed; the relay takes its ring over and every
//! event reaches JetStream, rendered as the process would have sent it,
//! with ids from the ring. A relay killed after storing them and before
//! marking them done takes the ring again: same ids, JetStream drops them.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const EVENTS: usize = 300;

/// The producer, run in a child process by `rings_of_dead_processes`: it
/// queues `EVENTS` events for a listener that is not there, then dies.
#[test]
#[ignore = "the child process of rings_of_dead_processes"]
fn producer() {
    let dir = std::env::var("CMEV_RELAY_TEST_DIR").expect("run by rings_of_dead_processes");
    let dir = Path::new(&dir);
    library_option("event_notifier", "log");
    library_option("event_groups", "message");
    library_option("notifysocket", dir.join("nobody-listens").to_str().unwrap());
    library_option("event_spool_dir", dir.join("spool").to_str().unwrap());
    for n in 0..EVENTS {
        notify_message_new(n);
    }
    // SAFETY: dying as a killed lmtpd dies, with its events unsent.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

fn produce(dir: &TestDir) {
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "producer", "--nocapture"])
        .env("CMEV_RELAY_TEST_DIR", &dir.0)
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL), "the producer died killed");
}

fn rings(dir: &TestDir) -> usize {
    std::fs::read_dir(dir.path("spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ring"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rings_of_dead_processes() {
    let dir = TestDir::new("spool");
    produce(&dir);
    produce(&dir);
    // The second may have taken the first's ring over into its own, as
    // the library's senders do: either way the events are in rings.
    assert!(rings(&dir) >= 1, "the dead producers left their rings");
    let nats = NatsServer::start(&dir);
    let toml = format!(
        "host = \"imap1.example.org\"\n[store]\ndir = \"{}\"\n[input]\nspool_dir = \"{}\"\n{}",
        dir.path("store").display(),
        dir.path("spool").display(),
        nats_section(&nats)
    );
    let mut relay = Relay::start(&dir, &toml, &[]);
    relay.wait_stat("nats_acked", 2 * EVENTS as u64, Duration::from_secs(20));
    assert_eq!(rings(&dir), 0, "rings removed once their events are stored");

    // A relay that dies between storing a ring's events and marking them
    // done leaves the ring as it was: played here by putting a copy back.
    relay.kill9();
    produce(&dir);
    let ring = std::fs::read_dir(dir.path("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "ring"))
        .unwrap();
    let copy = std::fs::read(&ring).unwrap();
    relay.restart();
    relay.wait_stat("spool_rings", 1, Duration::from_secs(20));
    relay.wait_stat("nats_acked", EVENTS as u64, Duration::from_secs(20));
    relay.kill9();
    std::fs::write(&ring, &copy).unwrap();
    relay.restart();
    relay.wait_stat("nats_duplicates", EVENTS as u64, Duration::from_secs(20));

    let msgs = stream_messages(&nats).await;
    assert_eq!(msgs.len(), 3 * EVENTS, "repeats dropped by JetStream");
    let mut ids = std::collections::HashSet::new();
    for (subject, id, payload) in &msgs {
        assert!(ids.insert(id.clone()), "{id} twice");
        assert!(
            id.starts_with("imap1.example.org:") && id.contains('-'),
            "{id}"
        );
        assert_eq!(subject, "cyrus.events.imap1_example_org.MessageNew");
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["event"], "MessageNew");
        assert!(v["uri"].as_str().unwrap().contains(";UID="), "{v}");
    }
}
