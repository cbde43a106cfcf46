//! Random sequences of C-API calls with random bytes and ids, through the
//! extern "C" functions themselves (as Cyrus calls them).
//!
//! Each input chooses queued or sync delivery; events go to a datagram
//! socket this harness owns, drained by a thread. Oracles, besides "never
//! crash, never panic" (libfuzzer-sys aborts on any panic, even one the
//! library would catch at its boundary):
//! - every return code is the one the documentation gives for the inputs
//!   (NULL, unknown type/param, wrong kind, invalid JSON, duplicate event);
//! - every datagram is a well-formed notifyd frame whose JSON parses, starts
//!   with "event" and respects event_max_datagram_size;
//! - every callback payload is NUL-terminated JSON ending in "@type":"notify";
//! - every JSON object handed over with cmev_event_set_json_object is
//!   released exactly once, whatever happens to its event;
//! - at rest after each input: enqueued = sent + dropped exactly, and the
//!   receiver got exactly `sent` datagrams.
#![no_main]

use arbitrary::Arbitrary;
use cyrus_mboxevent::catalogue::{Kind, Param, ALL_TYPES_AND_COMBINATIONS};
use cyrus_mboxevent::counters::Counter;
use cyrus_mboxevent::event::Event;
use cyrus_mboxevent::ffi::*;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CString};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const SLOTS: usize = 4;

/// The fuzzer's syslog: counted, not written (no flooding the system log).
static SYSLOG_LINES: AtomicU64 = AtomicU64::new(0);

#[no_mangle]
pub extern "C" fn syslog(_priority: c_int, _format: *const c_char) {
    SYSLOG_LINES.fetch_add(1, Ordering::Relaxed);
}

#[derive(Arbitrary, Debug)]
enum Ty {
    Known(u8),
    Raw(u32),
}

impl Ty {
    fn bits(&self) -> u32 {
        match self {
            Ty::Known(i) => {
                ALL_TYPES_AND_COMBINATIONS[*i as usize % ALL_TYPES_AND_COMBINATIONS.len()].bits()
            }
            Ty::Raw(r) => *r,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Pm {
    Known(u8),
    Raw(u32),
}

impl Pm {
    fn id(&self) -> u32 {
        match self {
            Pm::Known(i) => u32::from(*i) % 75,
            Pm::Raw(r) => *r,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    New {
        slot: u8,
        ty: Ty,
    },
    Free {
        slot: u8,
    },
    SetType {
        slot: u8,
        ty: Ty,
    },
    GetType {
        slot: u8,
    },
    Has {
        slot: u8,
        p: Pm,
    },
    Expected {
        ty: Ty,
        p: Pm,
    },
    SetString {
        slot: u8,
        p: Pm,
        v: Option<Vec<u8>>,
    },
    SetBytes {
        slot: u8,
        p: Pm,
        v: Option<Vec<u8>>,
    },
    SetUint {
        slot: u8,
        p: Pm,
        v: u64,
    },
    SetJson {
        slot: u8,
        p: Pm,
        v: Option<Vec<u8>>,
    },
    SetJsonObject {
        slot: u8,
        p: Pm,
        text: Vec<u8>,
        dump_fails: bool,
        null_obj: bool,
        null_dump: bool,
    },
    SetStrings {
        slot: u8,
        p: Pm,
        v: Option<Vec<Option<Vec<u8>>>>,
    },
    AddUid {
        slot: u8,
        uid: u32,
    },
    AddUidRun {
        slot: u8,
        start: u32,
        count: u16,
        step: u8,
    },
    AddOldUid {
        slot: u8,
        uid: u32,
    },
    AddMsgid {
        slot: u8,
        v: Option<Vec<u8>>,
    },
    AddFlag {
        slot: u8,
        v: Option<Vec<u8>>,
    },
    AddFlags {
        slot: u8,
        v: Option<Vec<Option<Vec<u8>>>>,
    },
    SetAccess {
        slot: u8,
        s: Option<Vec<u8>>,
        c: Option<Vec<u8>>,
        u: Option<Vec<u8>>,
    },
    SetAcl {
        slot: u8,
        s: Option<Vec<u8>>,
        r: Option<Vec<u8>>,
    },
    SetUri {
        slot: u8,
        v: Option<Vec<u8>>,
    },
    SetContent {
        slot: u8,
        v: Option<Vec<u8>>,
        header: u32,
    },
    MailboxEnabled {
        inbox: bool,
        v: Option<Vec<u8>>,
    },
    Notify {
        slots: Option<Vec<Option<u8>>>,
    },
    ClientId {
        v: Option<Vec<u8>>,
    },
    Callback {
        on: bool,
    },
    Flush {
        ms: u8,
    },
    Counters {
        null: bool,
    },
    Config {
        opt: u8,
        v: Option<Vec<u8>>,
        errlen: u8,
    },
    ConfigRaw {
        opt: Vec<u8>,
        v: Vec<u8>,
    },
    EnabledTypes,
}

#[derive(Arbitrary, Debug)]
struct Input {
    sync: bool,
    ops: Vec<Op>,
}

/// Options a sequence may change. Where events go, how they are delivered
/// and the queue's timing stay the harness's (a random notifysocket would
/// only make the sender wait for a receiver that never comes).
const OPTIONS: [&str; 13] = [
    "event_groups",
    "event_extra_params",
    "event_exclude_flags",
    "event_exclude_specialuse",
    "event_content_inclusion_mode",
    "event_content_size",
    "event_timestamp_format",
    "event_max_datagram_size",
    "servername",
    "service",
    "event_notifier",
    "event_queue_max_age",
    "no_such_option",
];

const HARNESS_OWNED: [&str; 8] = [
    "notifysocket",
    "configdirectory",
    "event_delivery",
    "event_queue_size",
    "event_queue_overflow",
    "event_queue_block_timeout",
    "event_flush_timeout",
    "event_dlist_timeout",
];

/// A C string from fuzz bytes: cut at the first NUL, as C would see it.
fn cstr(v: &[u8]) -> CString {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    CString::new(&v[..end]).expect("no NUL left")
}

struct Receiver {
    path: String,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn receiver() -> &'static Receiver {
    static R: OnceLock<Receiver> = OnceLock::new();
    R.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cmev-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the receiver");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            loop {
                if let Ok(n) = sock.recv(&mut buf) {
                    sink.lock().unwrap().push(buf[..n].to_vec());
                }
            }
        });
        Receiver {
            path: path.to_str().unwrap().to_owned(),
            got,
        }
    })
}

static CALLBACK_CALLS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn on_notify(json: *const c_char, len: usize, rock: *mut c_void) {
    assert_eq!(rock as usize, 0x5eed);
    // SAFETY: the library passes len bytes plus a NUL.
    let bytes = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len + 1) };
    assert_eq!(bytes[len], 0, "callback JSON not NUL-terminated");
    let text = std::str::from_utf8(&bytes[..len]).expect("callback JSON is UTF-8");
    let v: serde_json::Value = serde_json::from_str(text).expect("callback JSON parses");
    assert_eq!(v["@type"], "notify");
    assert!(text.starts_with("{\"event\":\"") && text.ends_with(",\"@type\":\"notify\"}"));
    CALLBACK_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// A caller's JSON object (jansson's in Cyrus): its text, and whether its
/// dump fails. The addresses of those not released yet are kept, so that a
/// second release, or one never made, is caught.
struct FakeJson {
    text: Vec<u8>,
    fails: bool,
}

fn live_objects() -> &'static Mutex<HashSet<usize>> {
    static LIVE: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashSet::new()))
}

fn new_object(text: &[u8], fails: bool) -> *mut c_void {
    let obj = Box::into_raw(Box::new(FakeJson {
        text: text.to_vec(),
        fails,
    }));
    live_objects().lock().unwrap().insert(obj as usize);
    obj.cast()
}

unsafe extern "C" fn dump_object(
    obj: *const c_void,
    write: cmev_json_write_fn,
    ctx: *mut c_void,
) -> c_int {
    assert!(
        live_objects().lock().unwrap().contains(&(obj as usize)),
        "dump after release"
    );
    // SAFETY: a live FakeJson (checked above).
    let o = unsafe { &*obj.cast::<FakeJson>() };
    if o.fails {
        return -1;
    }
    let write = write.expect("a write function");
    // In two pieces, as jansson writes: the library must join them.
    let (a, b) = o.text.split_at(o.text.len() / 2);
    for piece in [a, b] {
        // SAFETY: the library's sink, with its own context.
        let r = unsafe { write(piece.as_ptr().cast(), piece.len(), ctx) };
        if r != 0 {
            return r;
        }
    }
    0
}

unsafe extern "C" fn release_object(obj: *mut c_void) {
    assert!(
        live_objects().lock().unwrap().remove(&(obj as usize)),
        "released twice"
    );
    // SAFETY: made by new_object, released once (checked above).
    drop(unsafe { Box::from_raw(obj.cast::<FakeJson>()) });
}

/// Stock's limit from SO_SNDBUF, as the library derives it.
fn derived_limit() -> usize {
    static L: OnceLock<usize> = OnceLock::new();
    *L.get_or_init(|| {
        let s = cyrus_mboxevent::transport::datagram::DatagramSocket::new(Duration::from_secs(1))
            .expect("socket");
        cyrus_mboxevent::frame::limit_for_buffer(s.send_buffer().expect("SO_SNDBUF"))
    })
}

fn counters() -> Snapshot {
    let mut s = Snapshot::default();
    assert_eq!(cmev_counters_get(&mut s), 0);
    s
}

fn set(option: &str, value: &str) {
    let o = CString::new(option).unwrap();
    let v = CString::new(value).unwrap();
    assert_eq!(
        cmev_config_set(o.as_ptr(), v.as_ptr(), std::ptr::null_mut(), 0),
        0
    );
}

/// A well-formed notifyd datagram: method, EVENT, three empty fields, "0",
/// the JSON, a final NUL; the JSON an object starting with "event".
fn check_datagram(d: &[u8], max: usize) {
    assert!(
        d.len() <= max,
        "datagram of {} bytes over the limit {max}",
        d.len()
    );
    let fields: Vec<&[u8]> = d.split(|b| *b == 0).collect();
    assert_eq!(fields.len(), 8, "{:?}", String::from_utf8_lossy(d));
    assert_eq!(&fields[1..6], &[&b"EVENT"[..], b"", b"", b"", b"0"]);
    assert!(fields[7].is_empty());
    let json = std::str::from_utf8(fields[6]).expect("JSON is UTF-8");
    let v: serde_json::Value = serde_json::from_str(json).expect("datagram JSON parses");
    assert!(v.is_object() && json.starts_with("{\"event\":\""), "{json}");
}

/// Expected status of a parameter setter for a live event.
fn expected_status(p: u32, accepts: impl Fn(Kind) -> bool) -> c_int {
    match Param::from_index(p) {
        None => 5,
        Some(p) if accepts(p.kind()) => 0,
        Some(_) => 6,
    }
}

fn ptrs(v: &[Option<Vec<u8>>]) -> (Vec<Option<CString>>, Vec<*const c_char>) {
    let owned: Vec<Option<CString>> = v.iter().map(|x| x.as_deref().map(cstr)).collect();
    let p = owned
        .iter()
        .map(|x| x.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
        .collect();
    (owned, p)
}

fn opt_ptr(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

fuzz_target!(|input: Input| {
    let rx = receiver();
    let derived = derived_limit();
    // The datagram limit in force, and the largest one any event of this
    // input was created under (events keep their configuration).
    let mut limit_now = derived;
    let mut max_datagram = 0;
    cmev_config_reset();
    set("event_notifier", "log");
    set(
        "event_groups",
        "message quota flags access mailbox subscription calendar applepushservice",
    );
    set("event_extra_params", "");
    set("notifysocket", &rx.path);
    set("event_delivery", if input.sync { "sync" } else { "queued" });
    cmev_set_notify_callback(None, std::ptr::null_mut());
    let before = counters();
    let callbacks_before = CALLBACK_CALLS.load(Ordering::Relaxed);
    let mut slots: [*mut Event; SLOTS] = [std::ptr::null_mut(); SLOTS];
    let s = |i: &u8| *i as usize % SLOTS;

    for op in &input.ops {
        match op {
            Op::New { slot, ty } => {
                let ev = cmev_event_new(ty.bits());
                if !ev.is_null() {
                    max_datagram = max_datagram.max(limit_now);
                }
                // SAFETY: NULL or a live event we own.
                unsafe { cmev_event_free(slots[s(slot)]) };
                slots[s(slot)] = ev;
            }
            Op::Free { slot } => {
                // SAFETY: NULL or a live event we own; forgotten right after.
                unsafe { cmev_event_free(slots[s(slot)]) };
                slots[s(slot)] = std::ptr::null_mut();
            }
            Op::SetType { slot, ty } => {
                let ev = slots[s(slot)];
                let r = cmev_event_set_type(ev, ty.bits());
                let known = cyrus_mboxevent::catalogue::EventType::from_bits(ty.bits()).is_some();
                let want = if ev.is_null() {
                    1
                } else if known {
                    0
                } else {
                    4
                };
                assert_eq!(r, want);
                if known && !ev.is_null() {
                    assert_eq!(cmev_event_get_type(ev), ty.bits());
                }
            }
            Op::GetType { slot } => {
                let t = cmev_event_get_type(slots[s(slot)]);
                assert!(t == 0 || cyrus_mboxevent::catalogue::EventType::from_bits(t).is_some());
            }
            Op::Has { slot, p } => {
                let has = cmev_event_has(slots[s(slot)], p.id());
                assert!(!has || (!slots[s(slot)].is_null() && Param::from_index(p.id()).is_some()));
            }
            Op::Expected { ty, p } => {
                let e = cmev_expected(ty.bits(), p.id());
                assert!(!e || Param::from_index(p.id()).is_some());
            }
            Op::SetString { slot, p, v } => {
                let ev = slots[s(slot)];
                let c = v.as_deref().map(cstr);
                let r = cmev_event_set_string(ev, p.id(), opt_ptr(&c));
                let want = match (ev.is_null(), &c) {
                    (true, _) | (_, None) => 1,
                    _ => expected_status(p.id(), |k| matches!(k, Kind::Str | Kind::Address(..))),
                };
                assert_eq!(r, want);
            }
            Op::SetBytes { slot, p, v } => {
                let ev = slots[s(slot)];
                let (ptr, len) = v
                    .as_ref()
                    .map_or((std::ptr::null(), 0), |b| (b.as_ptr().cast(), b.len()));
                let r = cmev_event_set_bytes(ev, p.id(), ptr, len);
                let want = match (ev.is_null(), v) {
                    (true, _) | (_, None) => 1,
                    _ => expected_status(p.id(), |k| matches!(k, Kind::Str | Kind::Address(..))),
                };
                assert_eq!(r, want);
            }
            Op::SetUint { slot, p, v } => {
                let ev = slots[s(slot)];
                let r = cmev_event_set_uint(ev, p.id(), *v);
                let want = if ev.is_null() {
                    1
                } else {
                    expected_status(p.id(), |k| k == Kind::Int)
                };
                assert_eq!(r, want);
            }
            Op::SetJson { slot, p, v } => {
                let ev = slots[s(slot)];
                let c = v.as_deref().map(cstr);
                let r = cmev_event_set_json(ev, p.id(), opt_ptr(&c));
                let want = match (ev.is_null(), &c) {
                    (true, _) | (_, None) => 1,
                    (_, Some(c)) => {
                        let text = String::from_utf8_lossy(c.as_bytes());
                        // The kind is checked before the text is parsed.
                        match Param::from_index(p.id()) {
                            None => 5,
                            Some(q) if q.kind() != Kind::Json => 6,
                            Some(_) if !cyrus_mboxevent::json::is_valid(&text) => 7,
                            Some(_) => 0,
                        }
                    }
                };
                assert_eq!(r, want);
            }
            Op::SetJsonObject {
                slot,
                p,
                text,
                dump_fails,
                null_obj,
                null_dump,
            } => {
                let ev = slots[s(slot)];
                let obj = if *null_obj {
                    std::ptr::null_mut()
                } else {
                    new_object(text, *dump_fails)
                };
                let dump: cmev_json_dump_fn = if *null_dump { None } else { Some(dump_object) };
                let r = cmev_event_set_json_object(ev, p.id(), obj, dump, Some(release_object));
                let want = if *null_obj || *null_dump || ev.is_null() {
                    1
                } else {
                    expected_status(p.id(), |k| k == Kind::Json)
                };
                assert_eq!(r, want);
                if r != 0 && !obj.is_null() {
                    assert!(
                        !live_objects().lock().unwrap().contains(&(obj as usize)),
                        "refused and kept"
                    );
                }
            }
            Op::SetStrings { slot, p, v } => {
                let ev = slots[s(slot)];
                let (r, want) = match v {
                    Some(v) => {
                        let (_owned, p2) = ptrs(v);
                        let r = cmev_event_set_strings(ev, p.id(), p2.as_ptr(), p2.len());
                        (
                            r,
                            if ev.is_null() {
                                1
                            } else {
                                expected_status(p.id(), |k| k == Kind::Array)
                            },
                        )
                    }
                    None => {
                        let r = cmev_event_set_strings(ev, p.id(), std::ptr::null(), 0);
                        (
                            r,
                            if ev.is_null() {
                                1
                            } else {
                                expected_status(p.id(), |k| k == Kind::Array)
                            },
                        )
                    }
                };
                assert_eq!(r, want);
            }
            Op::AddUid { slot, uid } => {
                let ev = slots[s(slot)];
                assert_eq!(
                    cmev_event_add_uid(ev, *uid),
                    if ev.is_null() { 1 } else { 0 }
                );
            }
            Op::AddUidRun {
                slot,
                start,
                count,
                step,
            } => {
                let ev = slots[s(slot)];
                let mut u = *start;
                for _ in 0..*count {
                    assert_eq!(cmev_event_add_uid(ev, u), if ev.is_null() { 1 } else { 0 });
                    u = u.wrapping_add(u32::from(*step));
                }
            }
            Op::AddOldUid { slot, uid } => {
                let ev = slots[s(slot)];
                assert_eq!(
                    cmev_event_add_old_uid(ev, *uid),
                    if ev.is_null() { 1 } else { 0 }
                );
            }
            Op::AddMsgid { slot, v } => {
                let ev = slots[s(slot)];
                let c = v.as_deref().map(cstr);
                assert_eq!(
                    cmev_event_add_msgid(ev, opt_ptr(&c)),
                    if ev.is_null() { 1 } else { 0 }
                );
            }
            Op::AddFlag { slot, v } => {
                let ev = slots[s(slot)];
                let c = v.as_deref().map(cstr);
                let want = if ev.is_null() || c.is_none() { 1 } else { 0 };
                assert_eq!(cmev_event_add_flag(ev, opt_ptr(&c)), want);
            }
            Op::AddFlags { slot, v } => {
                let ev = slots[s(slot)];
                let r = match v {
                    Some(v) => {
                        let (_owned, p2) = ptrs(v);
                        cmev_event_add_flags(ev, p2.as_ptr(), p2.len())
                    }
                    None => cmev_event_add_flags(ev, std::ptr::null(), 0),
                };
                assert_eq!(r, if ev.is_null() { 1 } else { 0 });
            }
            Op::SetAccess { slot, s: sa, c, u } => {
                let ev = slots[s(slot)];
                let (sa, c, u) = (
                    sa.as_deref().map(cstr),
                    c.as_deref().map(cstr),
                    u.as_deref().map(cstr),
                );
                let r = cmev_event_set_access(ev, opt_ptr(&sa), opt_ptr(&c), opt_ptr(&u));
                assert_eq!(r, if ev.is_null() { 1 } else { 0 });
            }
            Op::SetAcl {
                slot,
                s: subj,
                r: rights,
            } => {
                let ev = slots[s(slot)];
                let (subj, rights) = (subj.as_deref().map(cstr), rights.as_deref().map(cstr));
                let r = cmev_event_set_acl(ev, opt_ptr(&subj), opt_ptr(&rights));
                assert_eq!(r, if ev.is_null() || subj.is_none() { 1 } else { 0 });
            }
            Op::SetUri { slot, v } => {
                let ev = slots[s(slot)];
                let c = v.as_deref().map(cstr);
                let want = if ev.is_null() || c.is_none() { 1 } else { 0 };
                assert_eq!(cmev_event_set_mailbox_uri(ev, opt_ptr(&c)), want);
            }
            Op::SetContent { slot, v, header } => {
                let ev = slots[s(slot)];
                let (ptr, len) = v
                    .as_ref()
                    .map_or((std::ptr::null(), 0), |b| (b.as_ptr().cast(), b.len()));
                let mut wanted = usize::MAX;
                let takes = cmev_event_content_wanted(ev, len, *header as usize, &mut wanted);
                assert!(if takes {
                    wanted <= len && !ev.is_null()
                } else {
                    wanted == 0
                });
                let r = cmev_event_set_content(ev, ptr, len, *header as usize);
                assert_eq!(r, if ev.is_null() || v.is_none() { 1 } else { 0 });
            }
            Op::MailboxEnabled { inbox, v } => {
                let c = v.as_deref().map(cstr);
                cmev_mailbox_enabled(*inbox, opt_ptr(&c));
            }
            Op::Notify { slots: which } => match which {
                None => {
                    // SAFETY: NULL with count 0 is allowed.
                    assert_eq!(unsafe { cmev_notify(std::ptr::null(), 0) }, 0);
                }
                Some(which) => {
                    let q: Vec<*mut Event> = which
                        .iter()
                        .take(16)
                        .map(|w| w.map_or(std::ptr::null_mut(), |i| slots[s(&i)]))
                        .collect();
                    let mut live: Vec<_> = q.iter().filter(|p| !p.is_null()).collect();
                    let n = live.len();
                    live.sort();
                    live.dedup();
                    // SAFETY: live events we own, or NULL entries.
                    let r = unsafe { cmev_notify(q.as_ptr(), q.len()) };
                    assert_eq!(r, if live.len() == n { 0 } else { 3 });
                }
            },
            Op::ClientId { v } => {
                let c = v.as_deref().map(cstr);
                cmev_set_client_id(opt_ptr(&c));
            }
            Op::Callback { on } => {
                if *on {
                    cmev_set_notify_callback(Some(on_notify), 0x5eed as *mut c_void);
                } else {
                    cmev_set_notify_callback(None, std::ptr::null_mut());
                }
            }
            Op::Flush { ms } => {
                cmev_flush(u32::from(*ms % 4));
            }
            Op::Counters { null } => {
                if *null {
                    assert_eq!(cmev_counters_get(std::ptr::null_mut()), 1);
                } else {
                    counters();
                }
            }
            Op::Config { opt, v, errlen } => {
                let name = OPTIONS[*opt as usize % OPTIONS.len()];
                let o = CString::new(name).unwrap();
                let c = v.as_deref().map(cstr);
                let mut err = [0x55u8; 256];
                let errlen = usize::from(*errlen);
                let r = cmev_config_set(o.as_ptr(), opt_ptr(&c), err.as_mut_ptr().cast(), errlen);
                assert!(matches!(r, 0..=3), "{r}");
                if errlen > 0 {
                    let nul = err[..errlen].iter().position(|b| *b == 0);
                    assert!(nul.is_some(), "error text not NUL-terminated within errlen");
                }
                assert!(
                    err[errlen..].iter().all(|b| *b == 0x55),
                    "wrote past errlen"
                );
                if name == "event_max_datagram_size" {
                    // Track the limit in force for the datagram check.
                    let text = c
                        .as_ref()
                        .map(|c| String::from_utf8_lossy(c.as_bytes()).trim().to_owned());
                    limit_now = match (r, text.and_then(|t| t.parse::<usize>().ok())) {
                        (0, Some(n)) if n > 0 => n,
                        _ => derived,
                    };
                }
            }
            Op::ConfigRaw { opt, v } => {
                let o = cstr(opt);
                if HARNESS_OWNED.contains(&String::from_utf8_lossy(o.as_bytes()).as_ref()) {
                    continue;
                }
                let v = cstr(v);
                let r = cmev_config_set(o.as_ptr(), v.as_ptr(), std::ptr::null_mut(), 0);
                assert!(matches!(r, 0 | 2 | 3), "{r}");
            }
            Op::EnabledTypes => {
                cmev_enabled_types();
            }
        }
    }
    for ev in slots {
        // SAFETY: NULL or a live event we own.
        unsafe { cmev_event_free(ev) };
    }

    // At rest: everything accepted is sent or dropped, and the receiver got
    // exactly what was sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cyrus_mboxevent::deliver::outstanding() > 0 {
        assert!(Instant::now() < deadline, "queue never drained");
        std::thread::sleep(Duration::from_micros(200));
    }
    let after = counters();
    let d = |c: Counter| after.get(c) - before.get(c);
    let dropped = after.dropped() - before.dropped();
    assert_eq!(
        d(Counter::Enqueued),
        d(Counter::Sent) + dropped,
        "{before:?} {after:?}"
    );
    assert_eq!(d(Counter::DroppedExpired), 0);
    assert_eq!(
        d(Counter::CallbackCalls),
        CALLBACK_CALLS.load(Ordering::Relaxed) - callbacks_before
    );
    let sent = d(Counter::Sent) as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut have = 0;
    loop {
        let got = std::mem::take(&mut *rx.got.lock().unwrap());
        for dg in &got {
            check_datagram(dg, max_datagram);
        }
        have += got.len();
        if have >= sent {
            assert_eq!(have, sent, "more datagrams than sent");
            break;
        }
        assert!(Instant::now() < deadline, "sent {sent}, received {have}");
        std::thread::sleep(Duration::from_micros(200));
    }
    // Every object handed over was released, once (sent events give theirs
    // back just after they are counted).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live_objects().lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "a JSON object never released");
        std::thread::sleep(Duration::from_micros(200));
    }
    // Nothing may arrive afterwards that was not counted.
    std::thread::sleep(Duration::from_micros(50));
    assert!(
        rx.got.lock().unwrap().is_empty(),
        "a datagram beyond the count of sent"
    );
});
