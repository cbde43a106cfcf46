//! (e) The relay's store on a full disk (a small tmpfs) or in a directory
//! that can no longer be written to: each event refused is answered NO (so the sender
//! counts it, and is not kept waiting), counted, and logged with the
//! system's reason; the relay goes on, and takes events again once there
//! is room. Needs root (it mounts a tmpfs), as CI runs.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs at {}", at.display());
        Mount(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A dlist exchange's reply: OK, or the NO with its text.
fn exchange(path: &Path, json: &str) -> Result<(), String> {
    let req = cyrus_mboxevent::transport::dlist::frame("log", json);
    cyrus_mboxevent::transport::dlist::send(path.to_str().unwrap(), &req, Duration::from_secs(5))
        .map_err(|e| e.to_string())
}

fn toml(dir: &TestDir, webhook_port: u16) -> String {
    // The webhook is never up: events stay in the store and fill it.
    format!(
        "host = \"imap1.example.org\"\n[store]\ndir = \"{}\"\nsegment_bytes = 65536\n\
         [input]\ndlist = \"{}\"\n[webhook]\nurl = \"http://127.0.0.1:{webhook_port}/\"\n\
         secret = \"s\"\ndead_letter = \"{}\"\n",
        dir.path("store").display(),
        dir.path("notify-dlist").display(),
        dir.path("dead.jsonl").display()
    )
}

fn big_event(n: usize) -> String {
    let filler = "x".repeat(2000);
    format!("{{\"event\":\"MessageNew\",\"n\":{n},\"messageContent\":\"{filler}\"}}")
}

#[test]
fn disk_full_and_read_only_store() {
    if !is_root() {
        eprintln!("disk: skipped, mounting a tmpfs needs root");
        return;
    }
    let dir = TestDir::new("e");
    let mount = Mount::tmpfs(&dir.path("store"), "160k");
    let dlist = dir.path("notify-dlist");
    let mut relay = Relay::start(&dir, &toml(&dir, free_port()), std::slice::from_ref(&dlist));

    // Full: events are refused with the reason, promptly, and counted.
    let (mut ok, mut refused, mut slowest) = (0, 0, Duration::ZERO);
    let mut reason = String::new();
    for n in 0..200 {
        let t = Instant::now();
        match exchange(&dlist, &big_event(n)) {
            Ok(()) => ok += 1,
            Err(e) => {
                refused += 1;
                reason = e;
            }
        }
        slowest = slowest.max(t.elapsed());
    }
    assert!(ok > 20 && refused > 50, "{ok} stored, {refused} refused");
    assert!(reason.contains("reply NO"), "{reason}");
    assert!(slowest < Duration::from_secs(1), "a reply took {slowest:?}");
    relay.wait_stat("store_errors", refused, Duration::from_secs(5));
    assert_eq!(relay.stat("stored"), ok);
    let log = relay.log_text();
    assert!(log.contains("No space left on device"), "{log}");
    eprintln!("(e) 160 KiB tmpfs: {ok} stored, {refused} refused (NO), slowest reply {slowest:?}");

    // Restarted on the full disk: what was stored is all there, nothing torn.
    relay.stop();
    relay.restart();
    assert!(!relay.log_text().contains("torn"));

    drop(relay);
    drop(mount);

    // A directory that can no longer be written to (immutable: root is
    // refused too): the next segment cannot be made, so events are refused
    // and counted, and taken again once it can.
    let dir = TestDir::new("e-ro");
    let store = dir.path("store");
    let dlist = dir.path("notify-dlist");
    let toml = toml(&dir, free_port()).replace("65536", "4096");
    let mut relay = Relay::start(&dir, &toml, std::slice::from_ref(&dlist));
    let _unlock = Immutable::set(&store);
    let mut refused = None;
    for n in 0..4 {
        if let Err(e) = exchange(&dlist, &big_event(n)) {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a full segment, and no next one");
    assert!(e.contains("reply NO"), "{e}");
    relay.wait_stat("store_errors", 1, Duration::from_secs(5));
    assert!(relay.log_text().contains("Operation not permitted"));
    drop(_unlock);
    exchange(&dlist, &big_event(10)).unwrap();
    relay.stop();

    // A store that cannot be made at all: a clear error, exit status 1.
    std::fs::remove_dir_all(&store).unwrap();
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&store)
        .unwrap();
    let _unlock = Immutable::set(&store);
    let out = Command::new(env!("CARGO_BIN_EXE_cmev-relay"))
        .arg(&relay.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

/// `chattr +i` on a directory, undone when dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Immutable {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chattr +i {}", dir.display());
        Immutable(dir.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}
