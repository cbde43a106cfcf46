//! cmev-tap as a separate process: a dlist client that never finishes its
//! request must not make the tap hold an ever larger buffer, nor stop it
//! serving the next client.

use cyrus_mboxevent::transport::dlist::{frame, parse_reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tap process, killed should the test fail before it exits.
struct Tap(Child);

impl Tap {
    /// Everything the tap printed, once it has exited, and how it exited.
    fn finish(&mut self) -> (std::process::ExitStatus, String, String) {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let out = self.0.stdout.as_mut().unwrap();
        out.read_to_string(&mut stdout).unwrap();
        let err = self.0.stderr.as_mut().unwrap();
        err.read_to_string(&mut stderr).unwrap();
        (self.0.wait().unwrap(), stdout, stderr)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path, tap: &mut Tap) {
    let end = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(tap.0.try_wait().unwrap().is_none(), "cmev-tap exited early");
        assert!(
            Instant::now() < end,
            "cmev-tap did not bind {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_tap(args: &[&str], path: &Path) -> Tap {
    Tap(Command::new(env!("CARGO_BIN_EXE_cmev-tap"))
        .args(args)
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap())
}

/// One dlist notification sent to the tap, answered as Cassandane's
/// listener answers.
fn served(path: &Path, json: &str) {
    let c = UnixStream::connect(path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&c).write_all(&frame("log", json)).unwrap();
    let mut reply = String::new();
    BufReader::new(&c).read_line(&mut reply).unwrap();
    assert!(
        parse_reply(reply.trim_end().as_bytes()).is_ok(),
        "{reply:?}"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cmev-tap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn endless_dlist_request_is_cut_off_at_16_mib() {
    let dir = temp_dir("endless");
    let path = dir.join("notify");
    let mut tap = spawn_tap(&["--dlist", "--count", "1"], &path);
    wait_for_socket(&path, &mut tap);

    // A literal that announces more than it will ever send.
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"NOTIFY %(METHOD log CLASS EVENT MESSAGE {1000000000+}\r\n")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    let refused = loop {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
        assert!(sent < 64 << 20, "cmev-tap took {sent} bytes of one request");
    };
    assert!(
        matches!(
            refused.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "after {sent} bytes: {refused}"
    );
    assert!(sent >= 16 << 20, "closed after only {sent} bytes");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "a reply to a request never finished: {rest:?}"
    );

    // The next client is served as usual.
    let json = "{\"event\":\"Login\"}";
    served(&path, json);

    let (status, stdout, stderr) = tap.finish();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert_eq!(stdout, format!("{json}\n"));
    assert!(
        stderr.contains("dlist request still incomplete") && stderr.contains("connection closed"),
        "stderr: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Scripts wait for the socket file and then connect: the file must not
/// appear before the tap listens, nor before it has the mode asked for.
#[test]
fn socket_appears_listening_with_its_mode() {
    let dir = temp_dir("ready");
    let path = dir.join("notify");
    for _ in 0..20 {
        let mut tap = spawn_tap(&["--dlist", "--count", "1", "--mode", "0604"], &path);
        wait_for_socket(&path, &mut tap);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o604);
        served(&path, "{}");
        assert!(tap.0.wait().unwrap().success());
        assert!(!path.exists() && !dir.join("notify.new").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = temp_dir("occupied");
    let path = dir.join("notify");
    std::fs::write(&path, "operator's file").unwrap();
    for args in [&["--dlist"][..], &[]] {
        let (status, _, stderr) = spawn_tap(args, &path).finish();
        assert!(
            !status.success() && stderr.contains("File exists"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "operator's file");
        assert!(!dir.join("notify.new").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
