//! The C ABI: every function is declared through `ffi_fn!`, which exports
//! it unmangled, catches panics (an internal error is logged with the
//! function's name and the declared fallback is returned, never unwound into
//! Cyrus) and leaves the work to `api` and `settings`. Each function checks its pointers:
//! NULL is never a crash. The C ABI's own types live here too.
//!
//! Ownership: a `cmev_event` comes from `cmev_event_new` and is released
//! with `cmev_event_free`; every other function borrows it for the call
//! only. Strings passed in are copied; the library keeps no caller pointer
//! except the callback's `rock`.

// For C callers `unsafe` on the signature means nothing; the pointer
// contracts are in each function's documentation, as in hyper's C API.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::api::{self, Refused};
use crate::config::ConfigError;
use crate::counters::{self, Counter, COUNTERS, COUNTER_COUNT};
use crate::event::Event;
use crate::foreign::ForeignJson;
use crate::json::lossy;
use crate::log;
use crate::settings::{self, Callback};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Declares one C entry point: `#[no_mangle] pub extern "C"`, its body run
/// inside `boundary` under the function's own name, and the value returned
/// when the body panics (`?= fallback`; none for functions returning
/// nothing). Statements in an optional `take { … }` run before the
/// boundary: they settle ownership of arguments that must be given back
/// even if the body panics. build.rs reads these declarations to write the
/// header's prototypes (cbindgen does not expand macros).
macro_rules! ffi_fn {
    ($(#[$m:meta])* unsafe fn $($rest:tt)*) => {
        ffi_fn!(@fn [$(#[$m])*] [unsafe] $($rest)*);
    };
    ($(#[$m:meta])* fn $($rest:tt)*) => {
        ffi_fn!(@fn [$(#[$m])*] [] $($rest)*);
    };
    (@fn [$($attr:tt)*] [$($q:tt)*] $name:ident($($a:ident: $t:ty),* $(,)?) -> $ret:ty
        $(, take { $($take:stmt;)* })? $body:block ?= $fallback:expr) => {
        $($attr)*
        #[no_mangle]
        pub $($q)* extern "C" fn $name($($a: $t),*) -> $ret {
            $($($take)*)?
            boundary(stringify!($name), move || $body).unwrap_or_else(|| $fallback)
        }
    };
    (@fn [$($attr:tt)*] [$($q:tt)*] $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        ffi_fn!(@fn [$($attr)*] [$($q)*] $name($($a: $t),*) -> () $body ?= ());
    };
}

/// Run `f`; a panic becomes `None` and a log line naming the C function.
fn boundary<R>(function: &str, f: impl FnOnce() -> R) -> Option<R> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "fault-injection")]
        fault::maybe_panic(function);
        f()
    }));
    if r.is_err() {
        log::error(&format!(
            "mboxevent: internal error in {function}; call ignored"
        ));
    }
    r.ok()
}

/// Test builds only (`--features fault-injection`): with
/// `CMEV_FAULT_PANIC=<C function name>` in the environment (read once), the
/// first call of that function panics inside its boundary.
#[cfg(feature = "fault-injection")]
mod fault {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;

    pub fn maybe_panic(function: &str) {
        static TARGET: OnceLock<Option<String>> = OnceLock::new();
        static FIRED: AtomicBool = AtomicBool::new(false);
        let target = TARGET.get_or_init(|| std::env::var("CMEV_FAULT_PANIC").ok());
        if target.as_deref() == Some(function) && !FIRED.swap(true, Ordering::SeqCst) {
            panic!("fault injection: {function}");
        }
    }
}

/// Errors of the event API, with the numbers the C ABI returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub enum Error {
    /// A required pointer argument was NULL.
    Null = 1,
    UnknownOption = 2,
    InvalidValue = 3,
    UnknownType = 4,
    UnknownParam = 5,
    /// The setter does not match the parameter's kind (e.g. a string for
    /// `modseq`).
    WrongKind = 6,
    /// The text given as JSON does not parse.
    InvalidJson = 7,
    /// An internal error was caught at the boundary; nothing was changed.
    Panic = 8,
    /// `cmev_set_cyrus_series` does not know that series.
    UnknownSeries = 9,
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        match r {
            Refused::Null => Error::Null,
            Refused::UnknownType => Error::UnknownType,
            Refused::UnknownParam => Error::UnknownParam,
            Refused::WrongKind => Error::WrongKind,
            Refused::InvalidJson => Error::InvalidJson,
            Refused::UnknownSeries => Error::UnknownSeries,
        }
    }
}

/// A snapshot of all counters, indexed by `cmev_counter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub values: [u64; COUNTER_COUNT],
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    pub fn dropped(&self) -> u64 {
        counters::dropped(&self.values)
    }
}

/// Appends `len` bytes to the sink `ctx`; returns 0 on success. The same
/// signature as jansson's `json_dump_callback_t`.
#[allow(non_camel_case_types)]
pub type cmev_json_write_fn =
    Option<unsafe extern "C" fn(buf: *const c_char, len: usize, ctx: *mut c_void) -> c_int>;
/// Writes the JSON text of `obj` through `write(…, ctx)`; returns 0 on
/// success.
#[allow(non_camel_case_types)]
pub type cmev_json_dump_fn = Option<
    unsafe extern "C" fn(obj: *const c_void, write: cmev_json_write_fn, ctx: *mut c_void) -> c_int,
>;
/// Gives back the reference to `obj` that the library was handed.
#[allow(non_camel_case_types)]
pub type cmev_json_release_fn = Option<unsafe extern "C" fn(obj: *mut c_void)>;

/// Callback receiving each message, flag, mailbox and subscription
/// notification as NUL-terminated JSON with `"@type":"notify"` added, on the
/// thread calling `cmev_notify`. `json` is valid only during the call.
#[allow(non_camel_case_types)]
pub type cmev_notify_cb =
    Option<unsafe extern "C" fn(json: *const c_char, len: usize, rock: *mut c_void)>;

fn status(r: Result<(), Refused>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => Error::from(e) as c_int,
    }
}

/// Run `f` on the event, or report a NULL handle.
fn with_event(ev: *mut Event, f: impl FnOnce(&mut Event) -> Result<(), Refused>) -> c_int {
    // SAFETY: a non-NULL handle comes from cmev_event_new and is not used
    // concurrently (documented contract).
    match unsafe { ev.as_mut() } {
        Some(ev) => status(f(ev)),
        None => Error::Null as c_int,
    }
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

ffi_fn! {
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
    fn cmev_config_set(
        option: *const c_char,
        value: *const c_char,
        errbuf: *mut c_char,
        errlen: usize,
    ) -> c_int {
        // SAFETY: documented contract of the arguments.
        let (Some(o), Some(v)) = (unsafe { bytes(option) }, unsafe { bytes(value) }) else {
            write_err(errbuf, errlen, "option and value must not be NULL");
            return Error::Null as c_int;
        };
        match settings::config_set(&lossy(o), &lossy(v)) {
            Ok(()) => {
                write_err(errbuf, errlen, "");
                0
            }
            Err(e) => {
                write_err(errbuf, errlen, &e.to_string());
                match e {
                    ConfigError::UnknownOption(_) => Error::UnknownOption as c_int,
                    ConfigError::InvalidValue { .. } => Error::InvalidValue as c_int,
                }
            }
        }
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// The event types that are sent under the current configuration (a mask
    /// of `cmev_event_type` bits from event_groups), 0 when event_notifier is
    /// unset. Stock `mboxevent_init()` returns this.
    fn cmev_enabled_types() -> u32 {
        api::enabled_types()
    } ?= 0
}

ffi_fn! {
    /// Put every option back to its default (events off).
    fn cmev_config_reset() {
        settings::config_reset()
    }
}

ffi_fn! {
    /// Create an event of `type` (a `cmev_event_type` value, or
    /// `MESSAGE_NEW|CALENDAR`). Returns NULL when notification is off
    /// (`event_notifier` unset), when the type's group is off and no IMAP NOTIFY
    /// callback is registered, or when `type` is not a known type. The caller
    /// owns the event and releases it with `cmev_event_free`.
    fn cmev_event_new(event_type: u32) -> *mut Event {
        match api::parse_type(event_type).ok().and_then(api::event_new) {
            Some(ev) => Box::into_raw(ev),
            None => std::ptr::null_mut(),
        }
    } ?= std::ptr::null_mut()
}

ffi_fn! {
    /// Release an event. NULL is ignored.
    ///
    /// # Safety
    /// `ev` is NULL or a live event from `cmev_event_new`, not used afterwards.
    unsafe fn cmev_event_free(ev: *mut Event) {
        if !ev.is_null() {
            // SAFETY: ownership returns from the caller (contract above).
            api::event_free(*unsafe { Box::from_raw(ev) });
        }
    }
}

ffi_fn! {
    /// The event's current type; `CMEV_EVENT_TYPE_CANCELLED` (0) when cancelled
    /// or when `ev` is NULL.
    fn cmev_event_get_type(ev: *const Event) -> u32 {
        // SAFETY: NULL or a live event.
        unsafe { ev.as_ref() }.map_or(0, |e| e.kind.bits())
    } ?= 0
}

ffi_fn! {
    /// Change the event's type (Cyrus cancels events by setting type 0).
    fn cmev_event_set_type(ev: *mut Event, event_type: u32) -> c_int {
        with_event(ev, |e| {
            e.kind = api::parse_type(event_type)?;
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Whether events of `type` carry parameter `param` under the current
    /// configuration (stock's `mboxevent_expected_param`). Lets the adapter skip
    /// costly extraction. False for unknown types or parameters.
    fn cmev_expected(event_type: u32, param: u32) -> bool {
        match (api::parse_type(event_type), api::parse_param(param)) {
            (Ok(t), Ok(p)) => api::is_expected(t, p),
            _ => false,
        }
    } ?= false
}

ffi_fn! {
    /// Whether the event already has `param` filled. False for NULL.
    fn cmev_event_has(ev: *const Event, param: u32) -> bool {
        // SAFETY: NULL or a live event.
        let e = unsafe { ev.as_ref() };
        matches!((e, api::parse_param(param)), (Some(e), Ok(p)) if e.has(p))
    } ?= false
}

ffi_fn! {
    /// Set a string parameter from a NUL-terminated string (copied). Invalid
    /// UTF-8 is kept with U+FFFD in place of the bad bytes. Replaces an earlier
    /// value. `CMEV_ERROR_WRONG_KIND` if `param` is not a string parameter.
    fn cmev_event_set_string(ev: *mut Event, param: u32, value: *const c_char) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or a NUL-terminated string.
            let v = unsafe { bytes(value) }.ok_or(Refused::Null)?;
            api::set_bytes(e, api::parse_param(param)?, v)
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set a string parameter from `len` bytes (copied); embedded NULs are kept
    /// and written as `\u0000`.
    fn cmev_event_set_bytes(
        ev: *mut Event,
        param: u32,
        value: *const c_char,
        len: usize,
    ) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or valid for len bytes.
            let v = unsafe { slice(value, len) }.ok_or(Refused::Null)?;
            api::set_bytes(e, api::parse_param(param)?, v)
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set an integer parameter. Written as a signed 64-bit value, as stock
    /// does: `UINT64_MAX` (Cyrus's "unlimited" -1) prints as `-1`.
    fn cmev_event_set_uint(ev: *mut Event, param: u32, value: u64) -> c_int {
        with_event(ev, |e| {
            api::set_int(e, api::parse_param(param)?, value)
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set a JSON parameter (`vnd.fastmail.jmapEmail`, `vnd.fastmail.jmapStates`)
    /// from JSON text, which is validated and written compactly with its key
    /// order kept. `CMEV_ERROR_INVALID_JSON` if it does not parse.
    fn cmev_event_set_json(ev: *mut Event, param: u32, json: *const c_char) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or a NUL-terminated string.
            let v = unsafe { bytes(json) }.ok_or(Refused::Null)?;
            api::set_json(e, api::parse_param(param)?, v)
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set a JSON parameter from a JSON value of the caller's own JSON library
    /// (in Cyrus, a jansson `json_t *`), written only when the event is
    /// rendered, off the caller's thread: `dump(obj, write, ctx)` must write the
    /// value's compact JSON text through `write` (jansson's `json_dump_callback`
    /// does) and return 0. The text is validated and written as
    /// `cmev_event_set_json` writes text; if the dump fails or writes no valid
    /// JSON, the parameter is left out (counted: `CMEV_COUNTER_JSON_LEFT_OUT`).
    /// The spool's copy of a queued event gets the text once the sender has
    /// written it: an event whose process dies before that (within about
    /// 10 ms of notify) is sent by another process without this parameter,
    /// counted the same way.
    ///
    /// Ownership: the call takes over one reference to `obj` in every case,
    /// errors included, and gives it back exactly once with `release(obj)`,
    /// possibly on another thread; `dump` and `release` must be callable from
    /// any thread, and nobody may change `obj` from now on. `obj` and `release`
    /// must not be NULL (`CMEV_ERROR_NULL`, and nothing is released).
    fn cmev_event_set_json_object(
        ev: *mut Event,
        param: u32,
        obj: *mut c_void,
        dump: cmev_json_dump_fn,
        release: cmev_json_release_fn,
    ) -> c_int, take {
        // Taken over before the boundary, so that every path, a panic
        // included, releases it exactly once.
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
    } {
        with_event(ev, move |e| api::set_foreign(e, api::parse_param(param)?, owned))
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set an array-of-strings parameter from `count` strings (copied; NULL
    /// entries are skipped). `values` may be NULL only when `count` is 0.
    fn cmev_event_set_strings(
        ev: *mut Event,
        param: u32,
        values: *const *const c_char,
        count: usize,
    ) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or `count` string pointers.
            let v = unsafe { strings(values, count) }.ok_or(Refused::Null)?;
            api::set_strings(e, api::parse_param(param)?, v.into_iter())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Add a message's UID to uidset (insertion order kept; a UID one above the
    /// last extends its range).
    fn cmev_event_add_uid(ev: *mut Event, uid: u32) -> c_int {
        with_event(ev, |e| {
            e.body.uids.add(uid);
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Add a source message's UID to vnd.cmu.oldUidset (COPY/MOVE).
    fn cmev_event_add_old_uid(ev: *mut Event, uid: u32) -> c_int {
        with_event(ev, |e| {
            e.body.old_uids.add(uid);
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Add a Message-ID to vnd.cmu.midset when the event carries one; NULL
    /// stands for a message without Message-ID (`NIL`). Duplicates are dropped.
    fn cmev_event_add_msgid(ev: *mut Event, msgid: *const c_char) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or a NUL-terminated string.
            api::add_msgid(e, unsafe { bytes(msgid) });
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Add one flag to flagNames when the event carries flagNames;
    /// event_exclude_flags does not apply (stock `mboxevent_add_flag`).
    /// Case-insensitive duplicates are dropped.
    fn cmev_event_add_flag(ev: *mut Event, flag: *const c_char) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or a NUL-terminated string.
            api::add_flag(e, unsafe { bytes(flag) }.ok_or(Refused::Null)?);
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Add the flags a STORE changed, leaving out those in event_exclude_flags
    /// (case-insensitive), as stock `mboxevent_add_flags`. Pass system flags by
    /// name (`\Deleted`, `\Answered`, `\Flagged`, `\Draft`, `\Seen`, in that
    /// order) followed by user flags. NULL entries are skipped.
    fn cmev_event_add_flags(
        ev: *mut Event,
        flags: *const *const c_char,
        count: usize,
    ) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or `count` string pointers.
            let v = unsafe { strings(flags, count) }.ok_or(Refused::Null)?;
            api::add_flags(e, v.into_iter());
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Access accounting: server and client address as `"ip;port"` and the
    /// user, each filled when the event type carries it (NULL: not filled). A
    /// Logout with a NULL user is cancelled, as in stock.
    fn cmev_event_set_access(
        ev: *mut Event,
        serveraddr: *const c_char,
        clientaddr: *const c_char,
        userid: *const c_char,
    ) -> c_int {
        with_event(ev, |e| {
            // SAFETY: each NULL or a NUL-terminated string.
            unsafe { api::set_access(e, bytes(serveraddr), bytes(clientaddr), bytes(userid)) };
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// aclSubject and aclRights. NULL `rights` (DELETEACL) leaves aclRights out
    /// of the JSON, as stock does.
    fn cmev_event_set_acl(
        ev: *mut Event,
        subject: *const c_char,
        rights: *const c_char,
    ) -> c_int {
        with_event(ev, |e| {
            // SAFETY: each NULL or a NUL-terminated string.
            let s = unsafe { bytes(subject) }.ok_or(Refused::Null)?;
            api::set_acl(e, s, unsafe { bytes(rights) });
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set uri from the mailbox's IMAP URL (`imap://server/mailbox;UIDVALIDITY=v`).
    /// For MessageNew and MessageAppend the first UID added is appended as
    /// `/;UID=n` and the UIDs leave uidset, as stock does; so add UIDs first.
    fn cmev_event_set_mailbox_uri(ev: *mut Event, uri: *const c_char) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or a NUL-terminated string.
            api::set_mailbox_uri(e, unsafe { bytes(uri) }.ok_or(Refused::Null)?);
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Fill messageContent from the message (`size` bytes, of which the first
    /// `header_size` are the header), per event_content_inclusion_mode and
    /// event_content_size: the whole message, or just the first bytes that
    /// `cmev_event_content_wanted` asks for. Does nothing when the event does
    /// not carry messageContent. The bytes are copied, as much as the event's
    /// transport can carry.
    fn cmev_event_set_content(
        ev: *mut Event,
        message: *const c_char,
        size: usize,
        header_size: usize,
    ) -> c_int {
        with_event(ev, |e| {
            // SAFETY: NULL or valid for `size` bytes.
            api::set_content(
                e,
                unsafe { slice(message, size) }.ok_or(Refused::Null)?,
                header_size,
            );
            Ok(())
        })
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Whether this event takes messageContent from a message of `size` bytes
    /// (the first `header_size` its header), and if so, in `*wanted`, how many
    /// of its leading bytes `cmev_event_set_content` uses: read just those and
    /// pass them as the message. False (nothing to read) when messageContent is
    /// not expected or is left out, as stock leaves out a message over
    /// event_content_size. With the content wanted whole (a `dlist:` socket,
    /// the IMAP NOTIFY callback) `*wanted` is `size`; for datagrams it is at most
    /// 64 KB and a few bytes. False for a NULL event or `wanted`; after an
    /// internal error true with `*wanted` = `size`, so that no content is lost.
    fn cmev_event_content_wanted(
        ev: *const Event,
        size: usize,
        header_size: usize,
        wanted: *mut usize,
    ) -> bool, take {
        if wanted.is_null() {
            return false;
        };
    } {
        // SAFETY: NULL or a live event.
        let n = unsafe { ev.as_ref() }.and_then(|e| api::content_wanted(e, size, header_size));
        put_wanted(wanted, n)
    } ?= put_wanted(wanted, Some(size))
}

/// Store `n` (0 for none) in `*wanted`, which `take` found non-NULL;
/// whether there is content to read.
fn put_wanted(wanted: *mut usize, n: Option<usize>) -> bool {
    // SAFETY: non-NULL (checked before the boundary); the caller gave a
    // writable size_t.
    unsafe { *wanted = n.unwrap_or(0) };
    n.is_some()
}

/// `cmev_set_cyrus_series`: the library's own numbering (`cmev_param`), the
/// default; for the parameters Cyrus 3.6 has, the same as 3.6's.
pub const CYRUS_OWN: c_uint = 0;
/// `cmev_set_cyrus_series`: Cyrus 3.6's `enum event_param`.
pub const CYRUS_3_6: c_uint = 0x306;
/// `cmev_set_cyrus_series`: Cyrus 3.8's and 3.10's `enum event_param`.
pub const CYRUS_3_10: c_uint = 0x30a;
/// `cmev_set_cyrus_series`: Cyrus 3.12's `enum event_param`.
pub const CYRUS_3_12: c_uint = 0x30c;
/// Entries of each series' `enum event_param` (`MAX_PARAM + 1` there), for
/// the adapter's static assertions.
pub const CYRUS_3_6_PARAM_COUNT: c_uint = 71;
pub const CYRUS_3_10_PARAM_COUNT: c_uint = 77;
pub const CYRUS_3_12_PARAM_COUNT: c_uint = 78;

ffi_fn! {
    /// Say which Cyrus series' `enum event_param` numbers every `param`
    /// argument is in from now on, for the whole process: `CMEV_CYRUS_3_6`,
    /// `CMEV_CYRUS_3_10`, `CMEV_CYRUS_3_12`, or `CMEV_CYRUS_OWN` (the default). The adapter calls
    /// it once, before its first event. Returns 0, or
    /// `CMEV_ERROR_UNKNOWN_SERIES` and nothing changes.
    fn cmev_set_cyrus_series(series: u32) -> c_int {
        status(api::set_series(series))
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// The event type Cyrus 3.10's `name_to_mboxevent()` finds for `name`:
    /// any name an event is written with, ASCII case ignored, and
    /// "CalendarEventNew"; 0 (Cancelled) if unknown or NULL.
    fn cmev_event_type_from_name(name: *const c_char) -> u32 {
        // SAFETY: NULL or a NUL-terminated string.
        unsafe { bytes(name) }.map_or(0, api::type_from_name)
    } ?= 0
}

/// `cmev_mailbox_needs`: event_exclude_specialuse lists "all", so whether
/// the mailbox is a user's top-level one decides.
pub const MAILBOX_NEEDS_USER_INBOX: c_uint = 1;
/// `cmev_mailbox_needs`: event_exclude_specialuse is not empty, so the
/// mailbox's special-use attributes decide (as in stock, also for "all"
/// alone).
pub const MAILBOX_NEEDS_SPECIALUSE: c_uint = 2;

ffi_fn! {
    /// What `cmev_mailbox_enabled` looks at under the current
    /// event_exclude_specialuse (`CMEV_MAILBOX_NEEDS_*` bits), so that the caller
    /// looks up only that, as stock does: an argument of `cmev_mailbox_enabled`
    /// whose bit is clear is not looked at. 0: every mailbox has events. After
    /// an internal error both bits, so that the caller looks both up.
    fn cmev_mailbox_needs() -> c_uint {
        let (user_inbox, specialuse) = api::mailbox_needs();
        let mut needs = 0;
        if user_inbox {
            needs |= MAILBOX_NEEDS_USER_INBOX;
        }
        if specialuse {
            needs |= MAILBOX_NEEDS_SPECIALUSE;
        }
        needs
    } ?= MAILBOX_NEEDS_USER_INBOX | MAILBOX_NEEDS_SPECIALUSE
}

ffi_fn! {
    /// Whether events are wanted for a mailbox, given whether it is a user's
    /// top-level mailbox and its special-use attributes (space-separated, NULL
    /// for none), under event_exclude_specialuse.
    fn cmev_mailbox_enabled(is_user_inbox: bool, specialuse: *const c_char) -> bool {
        // SAFETY: NULL or a NUL-terminated string.
        api::mailbox_enabled(is_user_inbox, unsafe { bytes(specialuse) })
    } ?= true
}

ffi_fn! {
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
    unsafe fn cmev_notify(events: *const *mut Event, count: usize) -> c_int {
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
    } ?= Error::Panic as c_int
}

ffi_fn! {
    /// Set the client id written as vnd.fastmail.clientId (NULL: empty).
    fn cmev_set_client_id(id: *const c_char) {
        // SAFETY: NULL or a NUL-terminated string.
        settings::set_client_id(unsafe { bytes(id) }.map(lossy))
    }
}

ffi_fn! {
    /// Register (or, with NULL, remove) the IMAP NOTIFY callback. `rock` is
    /// passed back untouched.
    fn cmev_set_notify_callback(cb: cmev_notify_cb, rock: *mut c_void) {
        settings::set_callback(cb.map(|func| Callback {
            func,
            rock: rock as usize,
        }))
    }
}

ffi_fn! {
    /// Wait up to `timeout_ms` milliseconds for every queued event to be sent
    /// (or dropped and counted). Returns how many are still queued when the
    /// deadline passes; those are counted (`CMEV_COUNTER_UNSENT_AT_FLUSH`) and
    /// logged. Process exit does the same with `event_flush_timeout`; Cyrus's
    /// shut_down calls this explicitly.
    fn cmev_flush(timeout_ms: u32) -> u64 {
        api::flush(std::time::Duration::from_millis(u64::from(timeout_ms))) as u64
    } ?= 0
}

ffi_fn! {
    /// Copy the process's counters into `*out` (index `values` with a
    /// `cmev_counter`). `CMEV_ERROR_NULL` if `out` is NULL.
    fn cmev_counters_get(out: *mut Snapshot) -> c_int {
        if out.is_null() {
            return Error::Null as c_int;
        }
        // SAFETY: non-NULL and writable (contract).
        unsafe { out.write(Snapshot { values: COUNTERS.values() }) };
        0
    } ?= Error::Panic as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback_value() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = boundary("test", || -> c_int { panic!("boom") });
        std::panic::set_hook(prev);
        assert_eq!(r, None);
        assert_eq!(boundary("test", || 7), Some(7));
    }
}
