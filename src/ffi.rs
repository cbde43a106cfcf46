//! The C ABI. Every function checks its pointers (NULL is never a crash),
//! catches panics (an internal error is logged and returned, never unwound
//! into Cyrus), and settles ownership; the work happens in `api`.
//!
//! Ownership: a `cmev_event` comes from `cmev_event_new` and is released
//! with `cmev_event_free`; every other function borrows it for the call
//! only. Strings passed in are copied; the library keeps no caller pointer
//! except the callback's `rock`.

// For C callers `unsafe` on the signature means nothing; the pointer
// contracts are in each function's documentation, as in hyper's C API.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::api::{self, Callback, Error};
use crate::counters::{Snapshot, COUNTERS};
use crate::event::{cmev_json_dump_fn, cmev_json_release_fn, Event, ForeignJson};
use crate::json::lossy;
use crate::log;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f`, turning a panic into `fallback` and a log line.
fn guard<R>(what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "fault-injection")]
        fault::maybe_panic(what);
        f()
    })) {
        Ok(r) => r,
        Err(_) => {
            log::error(&format!(
                "mboxevent: internal error in {what}; call ignored"
            ));
            fallback
        }
    }
}

/// Test builds only (`--features fault-injection`): with
/// `CMEV_FAULT_PANIC=<C function name>` in the environment (read once), the
/// first call of that function panics inside its guard.
#[cfg(feature = "fault-injection")]
mod fault {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;

    pub fn maybe_panic(what: &str) {
        static TARGET: OnceLock<Option<String>> = OnceLock::new();
        static FIRED: AtomicBool = AtomicBool::new(false);
        let target = TARGET.get_or_init(|| std::env::var("CMEV_FAULT_PANIC").ok());
        if target.as_deref() == Some(what) && !FIRED.swap(true, Ordering::SeqCst) {
            panic!("fault injection: {what}");
        }
    }
}

fn status(r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e as c_int,
    }
}

/// Run `f` on the event, or report a NULL handle / a panic.
fn with_event(
    what: &str,
    ev: *mut Event,
    f: impl FnOnce(&mut Event) -> Result<(), Error>,
) -> c_int {
    guard(what, Error::Panic as c_int, || {
        // SAFETY: a non-NULL handle comes from cmev_event_new and is not
        // used concurrently (documented contract).
        match unsafe { ev.as_mut() } {
            Some(ev) => status(f(ev)),
            None => Error::Null as c_int,
        }
    })
}

/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// # Safety
/// `p` is NULL or valid for `len` bytes.
unsafe fn slice<'a>(p: *const c_char, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else if len == 0 {
        Some(&[])
    } else {
        Some(unsafe { std::slice::from_raw_parts(p.cast(), len) })
    }
}

/// # Safety
/// `p` is NULL or points to `n` pointers, each NULL or a NUL-terminated string.
unsafe fn strings<'a>(p: *const *const c_char, n: usize) -> Option<Vec<&'a [u8]>> {
    if p.is_null() {
        return (n == 0).then(Vec::new);
    }
    let ptrs = unsafe { std::slice::from_raw_parts(p, n) };
    Some(ptrs.iter().filter_map(|s| unsafe { bytes(*s) }).collect())
}

fn write_err(buf: *mut c_char, len: usize, msg: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = msg.len().min(len - 1);
    // SAFETY: the caller gave `len` writable bytes at `buf`.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast(), n);
        *buf.add(n) = 0;
    }
}

/// Set one imapd.conf option by name, with the value as written in
/// imapd.conf (`event_notifier`, `event_groups`, `event_extra_params`,
/// `event_exclude_flags`, `event_exclude_specialuse`,
/// `event_content_inclusion_mode`, `event_content_size`,
/// `event_timestamp_format`, `event_max_datagram_size`, `notifysocket`,
/// `configdirectory`, `servername`, and `service` for Cyrus's
/// `config_ident`). Takes effect for events created afterwards.
///
/// Returns 0, or `CMEV_ERROR_UNKNOWN_OPTION` / `CMEV_ERROR_INVALID_VALUE`
/// (the option then holds its default; the reason is logged and, when
/// `errbuf` is not NULL, written there NUL-terminated, cut to `errlen`), or
/// `CMEV_ERROR_NULL` when `option` or `value` is NULL.
#[no_mangle]
pub extern "C" fn cmev_config_set(
    option: *const c_char,
    value: *const c_char,
    errbuf: *mut c_char,
    errlen: usize,
) -> c_int {
    guard("cmev_config_set", Error::Panic as c_int, || {
        // SAFETY: documented contract of the arguments.
        let (Some(o), Some(v)) = (unsafe { bytes(option) }, unsafe { bytes(value) }) else {
            write_err(errbuf, errlen, "option and value must not be NULL");
            return Error::Null as c_int;
        };
        match api::config_set(&lossy(o), &lossy(v)) {
            Ok(()) => {
                write_err(errbuf, errlen, "");
                0
            }
            Err(e) => {
                write_err(errbuf, errlen, &e.to_string());
                match e {
                    crate::config::ConfigError::UnknownOption(_) => Error::UnknownOption as c_int,
                    crate::config::ConfigError::InvalidValue { .. } => Error::InvalidValue as c_int,
                }
            }
        }
    })
}

/// The event types that are sent under the current configuration (a mask
/// of `cmev_event_type` bits from event_groups), 0 when event_notifier is
/// unset. Stock `mboxevent_init()` returns this.
#[no_mangle]
pub extern "C" fn cmev_enabled_types() -> u32 {
    guard("cmev_enabled_types", 0, api::enabled_types)
}

/// Put every option back to its default (events off).
#[no_mangle]
pub extern "C" fn cmev_config_reset() {
    guard("cmev_config_reset", (), api::config_reset)
}

/// Create an event of `type` (a `cmev_event_type` value, or
/// `MESSAGE_NEW|CALENDAR`). Returns NULL when notification is off
/// (`event_notifier` unset), when the type's group is off and no IMAP NOTIFY
/// callback is registered, or when `type` is not a known type. The caller
/// owns the event and releases it with `cmev_event_free`.
#[no_mangle]
pub extern "C" fn cmev_event_new(event_type: u32) -> *mut Event {
    guard(
        "cmev_event_new",
        std::ptr::null_mut(),
        || match api::parse_type(event_type).ok().and_then(api::event_new) {
            Some(ev) => Box::into_raw(ev),
            None => std::ptr::null_mut(),
        },
    )
}

/// Release an event. NULL is ignored.
///
/// # Safety
/// `ev` is NULL or a live event from `cmev_event_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cmev_event_free(ev: *mut Event) {
    guard("cmev_event_free", (), || {
        if !ev.is_null() {
            // SAFETY: ownership returns from the caller (contract above).
            api::event_free(*unsafe { Box::from_raw(ev) });
        }
    })
}

/// The event's current type; `CMEV_EVENT_TYPE_CANCELLED` (0) when cancelled
/// or when `ev` is NULL.
#[no_mangle]
pub extern "C" fn cmev_event_get_type(ev: *const Event) -> u32 {
    // SAFETY: NULL or a live event.
    guard("cmev_event_get_type", 0, || {
        unsafe { ev.as_ref() }.map_or(0, |e| e.kind.bits())
    })
}

/// Change the event's type (Cyrus cancels events by setting type 0).
#[no_mangle]
pub extern "C" fn cmev_event_set_type(ev: *mut Event, event_type: u32) -> c_int {
    with_event("cmev_event_set_type", ev, |e| {
        e.kind = api::parse_type(event_type)?;
        Ok(())
    })
}

/// Whether events of `type` carry parameter `param` under the current
/// configuration (stock's `mboxevent_expected_param`). Lets the adapter skip
/// costly extraction. False for unknown types or parameters.
#[no_mangle]
pub extern "C" fn cmev_expected(event_type: u32, param: u32) -> bool {
    guard("cmev_expected", false, || {
        match (api::parse_type(event_type), api::parse_param(param)) {
            (Ok(t), Ok(p)) => api::is_expected(t, p),
            _ => false,
        }
    })
}

/// Whether the event already has `param` filled. False for NULL.
#[no_mangle]
pub extern "C" fn cmev_event_has(ev: *const Event, param: u32) -> bool {
    guard("cmev_event_has", false, || {
        // SAFETY: NULL or a live event.
        let e = unsafe { ev.as_ref() };
        matches!((e, api::parse_param(param)), (Some(e), Ok(p)) if e.has(p))
    })
}

/// Set a string parameter from a NUL-terminated string (copied). Invalid
/// UTF-8 is kept with U+FFFD in place of the bad bytes. Replaces an earlier
/// value. `CMEV_ERROR_WRONG_KIND` if `param` is not a string parameter.
#[no_mangle]
pub extern "C" fn cmev_event_set_string(ev: *mut Event, param: u32, value: *const c_char) -> c_int {
    with_event("cmev_event_set_string", ev, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        let v = unsafe { bytes(value) }.ok_or(Error::Null)?;
        api::set_bytes(e, api::parse_param(param)?, v)
    })
}

/// Set a string parameter from `len` bytes (copied); embedded NULs are kept
/// and written as `\u0000`.
#[no_mangle]
pub extern "C" fn cmev_event_set_bytes(
    ev: *mut Event,
    param: u32,
    value: *const c_char,
    len: usize,
) -> c_int {
    with_event("cmev_event_set_bytes", ev, |e| {
        // SAFETY: NULL or valid for len bytes.
        let v = unsafe { slice(value, len) }.ok_or(Error::Null)?;
        api::set_bytes(e, api::parse_param(param)?, v)
    })
}

/// Set an integer parameter. Written as a signed 64-bit value, as stock
/// does: `UINT64_MAX` (Cyrus's "unlimited" -1) prints as `-1`.
#[no_mangle]
pub extern "C" fn cmev_event_set_uint(ev: *mut Event, param: u32, value: u64) -> c_int {
    with_event("cmev_event_set_uint", ev, |e| {
        api::set_int(e, api::parse_param(param)?, value)
    })
}

/// Set a JSON parameter (`vnd.fastmail.jmapEmail`, `vnd.fastmail.jmapStates`)
/// from JSON text, which is validated and written compactly with its key
/// order kept. `CMEV_ERROR_INVALID_JSON` if it does not parse.
#[no_mangle]
pub extern "C" fn cmev_event_set_json(ev: *mut Event, param: u32, json: *const c_char) -> c_int {
    with_event("cmev_event_set_json", ev, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        let v = unsafe { bytes(json) }.ok_or(Error::Null)?;
        api::set_json(e, api::parse_param(param)?, v)
    })
}

/// Set a JSON parameter from a JSON value of the caller's own JSON library
/// (in Cyrus, a jansson `json_t *`), written only when the event is
/// rendered, off the caller's thread: `dump(obj, write, ctx)` must write the
/// value's compact JSON text through `write` (jansson's `json_dump_callback`
/// does) and return 0. The text is validated and written as
/// `cmev_event_set_json` writes text; if the dump fails or writes no valid
/// JSON, the parameter is left out (counted: `CMEV_COUNTER_JSON_LEFT_OUT`).
///
/// Ownership: the call takes over one reference to `obj` in every case,
/// errors included, and gives it back exactly once with `release(obj)`,
/// possibly on another thread; `dump` and `release` must be callable from
/// any thread, and nobody may change `obj` from now on. `obj` and `release`
/// must not be NULL (`CMEV_ERROR_NULL`, and nothing is released).
#[no_mangle]
pub extern "C" fn cmev_event_set_json_object(
    ev: *mut Event,
    param: u32,
    obj: *mut c_void,
    dump: cmev_json_dump_fn,
    release: cmev_json_release_fn,
) -> c_int {
    // Taken over before anything can fail, so that every path, a panic
    // caught by the guard included, releases it exactly once.
    let Some(release) = release.filter(|_| !obj.is_null()) else {
        return Error::Null as c_int;
    };
    let Some(dump) = dump else {
        // SAFETY: the reference handed over, given back once.
        unsafe { release(obj) };
        return Error::Null as c_int;
    };
    // SAFETY: the caller hands over one reference (see above).
    let owned = unsafe { ForeignJson::new(obj, dump, release) };
    with_event("cmev_event_set_json_object", ev, move |e| {
        api::set_foreign(e, api::parse_param(param)?, owned)
    })
}

/// Set an array-of-strings parameter from `count` strings (copied; NULL
/// entries are skipped). `values` may be NULL only when `count` is 0.
#[no_mangle]
pub extern "C" fn cmev_event_set_strings(
    ev: *mut Event,
    param: u32,
    values: *const *const c_char,
    count: usize,
) -> c_int {
    with_event("cmev_event_set_strings", ev, |e| {
        // SAFETY: NULL or `count` string pointers.
        let v = unsafe { strings(values, count) }.ok_or(Error::Null)?;
        api::set_strings(e, api::parse_param(param)?, v.into_iter())
    })
}

/// Add a message's UID to uidset (insertion order kept; a UID one above the
/// last extends its range).
#[no_mangle]
pub extern "C" fn cmev_event_add_uid(ev: *mut Event, uid: u32) -> c_int {
    with_event("cmev_event_add_uid", ev, |e| {
        e.body.uids.add(uid);
        Ok(())
    })
}

/// Add a source message's UID to vnd.cmu.oldUidset (COPY/MOVE).
#[no_mangle]
pub extern "C" fn cmev_event_add_old_uid(ev: *mut Event, uid: u32) -> c_int {
    with_event("cmev_event_add_old_uid", ev, |e| {
        e.body.old_uids.add(uid);
        Ok(())
    })
}

/// Add a Message-ID to vnd.cmu.midset when the event carries one; NULL
/// stands for a message without Message-ID (`NIL`). Duplicates are dropped.
#[no_mangle]
pub extern "C" fn cmev_event_add_msgid(ev: *mut Event, msgid: *const c_char) -> c_int {
    with_event("cmev_event_add_msgid", ev, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        api::add_msgid(e, unsafe { bytes(msgid) });
        Ok(())
    })
}

/// Add one flag to flagNames when the event carries flagNames;
/// event_exclude_flags does not apply (stock `mboxevent_add_flag`).
/// Case-insensitive duplicates are dropped.
#[no_mangle]
pub extern "C" fn cmev_event_add_flag(ev: *mut Event, flag: *const c_char) -> c_int {
    with_event("cmev_event_add_flag", ev, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        api::add_flag(e, unsafe { bytes(flag) }.ok_or(Error::Null)?);
        Ok(())
    })
}

/// Add the flags a STORE changed, leaving out those in event_exclude_flags
/// (case-insensitive), as stock `mboxevent_add_flags`. Pass system flags by
/// name (`\Deleted`, `\Answered`, `\Flagged`, `\Draft`, `\Seen`, in that
/// order) followed by user flags. NULL entries are skipped.
#[no_mangle]
pub extern "C" fn cmev_event_add_flags(
    ev: *mut Event,
    flags: *const *const c_char,
    count: usize,
) -> c_int {
    with_event("cmev_event_add_flags", ev, |e| {
        // SAFETY: NULL or `count` string pointers.
        let v = unsafe { strings(flags, count) }.ok_or(Error::Null)?;
        api::add_flags(e, v.into_iter());
        Ok(())
    })
}

/// Access accounting: server and client address as `"ip;port"` and the
/// user, each filled when the event type carries it (NULL: not filled). A
/// Logout with a NULL user is cancelled, as in stock.
#[no_mangle]
pub extern "C" fn cmev_event_set_access(
    ev: *mut Event,
    serveraddr: *const c_char,
    clientaddr: *const c_char,
    userid: *const c_char,
) -> c_int {
    with_event("cmev_event_set_access", ev, |e| {
        // SAFETY: each NULL or a NUL-terminated string.
        unsafe { api::set_access(e, bytes(serveraddr), bytes(clientaddr), bytes(userid)) };
        Ok(())
    })
}

/// aclSubject and aclRights. NULL `rights` (DELETEACL) leaves aclRights out
/// of the JSON, as stock does.
#[no_mangle]
pub extern "C" fn cmev_event_set_acl(
    ev: *mut Event,
    subject: *const c_char,
    rights: *const c_char,
) -> c_int {
    with_event("cmev_event_set_acl", ev, |e| {
        // SAFETY: each NULL or a NUL-terminated string.
        let s = unsafe { bytes(subject) }.ok_or(Error::Null)?;
        api::set_acl(e, s, unsafe { bytes(rights) });
        Ok(())
    })
}

/// Set uri from the mailbox's IMAP URL (`imap://server/mailbox;UIDVALIDITY=v`).
/// For MessageNew and MessageAppend the first UID added is appended as
/// `/;UID=n` and the UIDs leave uidset, as stock does; so add UIDs first.
#[no_mangle]
pub extern "C" fn cmev_event_set_mailbox_uri(ev: *mut Event, uri: *const c_char) -> c_int {
    with_event("cmev_event_set_mailbox_uri", ev, |e| {
        // SAFETY: NULL or a NUL-terminated string.
        api::set_mailbox_uri(e, unsafe { bytes(uri) }.ok_or(Error::Null)?);
        Ok(())
    })
}

/// Fill messageContent from the message (`size` bytes, of which the first
/// `header_size` are the header), per event_content_inclusion_mode and
/// event_content_size: the whole message, or just the first bytes that
/// `cmev_event_content_wanted` asks for. Does nothing when the event does
/// not carry messageContent. The bytes are copied, as much as the event's
/// transport can carry.
#[no_mangle]
pub extern "C" fn cmev_event_set_content(
    ev: *mut Event,
    message: *const c_char,
    size: usize,
    header_size: usize,
) -> c_int {
    with_event("cmev_event_set_content", ev, |e| {
        // SAFETY: NULL or valid for `size` bytes.
        api::set_content(
            e,
            unsafe { slice(message, size) }.ok_or(Error::Null)?,
            header_size,
        );
        Ok(())
    })
}

/// Whether this event takes messageContent from a message of `size` bytes
/// (the first `header_size` its header), and if so, in `*wanted`, how many
/// of its leading bytes `cmev_event_set_content` uses: read just those and
/// pass them as the message. False (nothing to read) when messageContent is
/// not expected or is left out, as stock leaves out a message over
/// event_content_size. With the content wanted whole (a `dlist:` socket,
/// the IMAP NOTIFY callback) `*wanted` is `size`; for datagrams it is at most
/// 64 KB and a few bytes. False for a NULL event or `wanted`; after an
/// internal error true with `*wanted` = `size`, so that no content is lost.
#[no_mangle]
pub extern "C" fn cmev_event_content_wanted(
    ev: *const Event,
    size: usize,
    header_size: usize,
    wanted: *mut usize,
) -> bool {
    if wanted.is_null() {
        return false;
    }
    let n = guard("cmev_event_content_wanted", Some(size), || {
        // SAFETY: NULL or a live event.
        unsafe { ev.as_ref() }.and_then(|e| api::content_wanted(e, size, header_size))
    });
    // SAFETY: checked non-NULL; the caller gave a writable size_t.
    unsafe { *wanted = n.unwrap_or(0) };
    n.is_some()
}

/// `cmev_mailbox_needs`: event_exclude_specialuse lists "all", so whether
/// the mailbox is a user's top-level one decides.
pub const MAILBOX_NEEDS_USER_INBOX: c_uint = 1;
/// `cmev_mailbox_needs`: event_exclude_specialuse is not empty, so the
/// mailbox's special-use attributes decide (as in stock, also for "all"
/// alone).
pub const MAILBOX_NEEDS_SPECIALUSE: c_uint = 2;

/// What `cmev_mailbox_enabled` looks at under the current
/// event_exclude_specialuse (`CMEV_MAILBOX_NEEDS_*` bits), so that the caller
/// looks up only that, as stock does: an argument of `cmev_mailbox_enabled`
/// whose bit is clear is not looked at. 0: every mailbox has events.
#[no_mangle]
pub extern "C" fn cmev_mailbox_needs() -> c_uint {
    // Fails safe: the caller looks both up.
    guard(
        "cmev_mailbox_needs",
        MAILBOX_NEEDS_USER_INBOX | MAILBOX_NEEDS_SPECIALUSE,
        || {
            let (user_inbox, specialuse) = api::mailbox_needs();
            let mut needs = 0;
            if user_inbox {
                needs |= MAILBOX_NEEDS_USER_INBOX;
            }
            if specialuse {
                needs |= MAILBOX_NEEDS_SPECIALUSE;
            }
            needs
        },
    )
}

/// Whether events are wanted for a mailbox, given whether it is a user's
/// top-level mailbox and its special-use attributes (space-separated, NULL
/// for none), under event_exclude_specialuse.
#[no_mangle]
pub extern "C" fn cmev_mailbox_enabled(is_user_inbox: bool, specialuse: *const c_char) -> bool {
    // SAFETY: NULL or a NUL-terminated string.
    guard("cmev_mailbox_enabled", true, || {
        api::mailbox_enabled(is_user_inbox, unsafe { bytes(specialuse) })
    })
}

/// Send a queue of `count` events, in order, applying stock's rules: skip
/// cancelled and empty events, FlagsClear-with-`\Seen` before a preceding
/// FlagsSet, FlagsSet split into MessageTrash/MessageRead/FlagsSet. NULL
/// entries are skipped. The events are changed (filled, flags consumed) but
/// stay the caller's: free them afterwards. `CMEV_ERROR_INVALID_VALUE` if
/// the same event appears twice.
///
/// # Safety
/// `events` is NULL (with `count` 0) or points to `count` entries, each NULL
/// or a live event not used elsewhere during the call.
#[no_mangle]
pub unsafe extern "C" fn cmev_notify(events: *const *mut Event, count: usize) -> c_int {
    guard("cmev_notify", Error::Panic as c_int, || {
        if events.is_null() {
            return if count == 0 { 0 } else { Error::Null as c_int };
        }
        // SAFETY: `count` readable pointers (contract above).
        let ptrs = unsafe { std::slice::from_raw_parts(events, count) };
        let live = || ptrs.iter().copied().filter(|p| !p.is_null());
        // The same event twice would alias two &mut; Cyrus queues hold a
        // handful of events, so a quadratic check costs less than sorting.
        if live()
            .enumerate()
            .any(|(i, p)| live().skip(i + 1).any(|q| q == p))
        {
            return Error::InvalidValue as c_int;
        }
        // SAFETY: distinct live events, so the &mut do not alias.
        let mut refs: Vec<&mut Event> = live().map(|p| unsafe { &mut *p }).collect();
        api::notify(&mut refs);
        0
    })
}

/// Set the client id written as vnd.fastmail.clientId (NULL: empty).
#[no_mangle]
pub extern "C" fn cmev_set_client_id(id: *const c_char) {
    // SAFETY: NULL or a NUL-terminated string.
    guard("cmev_set_client_id", (), || {
        api::set_client_id(unsafe { bytes(id) }.map(lossy))
    })
}

/// Callback receiving each message, flag, mailbox and subscription
/// notification as NUL-terminated JSON with `"@type":"notify"` added, on the
/// thread calling `cmev_notify`. `json` is valid only during the call.
#[allow(non_camel_case_types)]
pub type cmev_notify_cb =
    Option<unsafe extern "C" fn(json: *const c_char, len: usize, rock: *mut c_void)>;

/// Register (or, with NULL, remove) the IMAP NOTIFY callback. `rock` is
/// passed back untouched.
#[no_mangle]
pub extern "C" fn cmev_set_notify_callback(cb: cmev_notify_cb, rock: *mut c_void) {
    guard("cmev_set_notify_callback", (), || {
        api::set_callback(cb.map(|func| Callback {
            func,
            rock: rock as usize,
        }))
    })
}

/// Wait up to `timeout_ms` milliseconds for every queued event to be sent
/// (or dropped and counted). Returns how many are still queued when the
/// deadline passes; those are counted (`CMEV_COUNTER_UNSENT_AT_FLUSH`) and
/// logged. Process exit does the same with `event_flush_timeout`; Cyrus's
/// shut_down calls this explicitly.
#[no_mangle]
pub extern "C" fn cmev_flush(timeout_ms: u32) -> u64 {
    guard("cmev_flush", 0, || {
        api::flush(std::time::Duration::from_millis(u64::from(timeout_ms))) as u64
    })
}

/// Copy the process's counters into `*out` (index `values` with a
/// `cmev_counter`). `CMEV_ERROR_NULL` if `out` is NULL.
#[no_mangle]
pub extern "C" fn cmev_counters_get(out: *mut Snapshot) -> c_int {
    guard("cmev_counters_get", Error::Panic as c_int, || {
        if out.is_null() {
            return Error::Null as c_int;
        }
        // SAFETY: non-NULL and writable (contract).
        unsafe { out.write(COUNTERS.snapshot()) };
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback_value() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = guard("test", Error::Panic as c_int, || -> c_int {
            panic!("boom")
        });
        std::panic::set_hook(prev);
        assert_eq!(r, Error::Panic as c_int);
        assert_eq!(guard("test", 0, || 7), 7);
    }
}
