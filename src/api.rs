//! The library's operations on events in safe Rust: what the C entry points
//! that build, fill and send events do. `ffi` converts pointers, catches
//! panics and maps errors to their C values; the process's settings are
//! `settings`.

use crate::body::{Span, Value};
use crate::catalogue::{mask, EventType, Kind, Param};
use crate::config::{Config, ContentMode, DATAGRAM_MAX};
use crate::counters::{bump, Counter};
use crate::event::Event;
use crate::foreign::ForeignJson;
use crate::json::is_valid;
use crate::log::{self, OncePerType};
use crate::notify::{prepare, CALLBACK_TYPES};
use crate::series::{self, Series};
use crate::settings::{self, Callback};
use crate::{deliver, pool, process};
use std::sync::Arc;

/// Why a call was refused; `ffi` maps each to its `cmev_error` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A required pointer argument was NULL.
    Null,
    UnknownType,
    UnknownParam,
    /// The setter does not match the parameter's kind (e.g. a string for
    /// `modseq`).
    WrongKind,
    /// The text given as JSON does not parse.
    InvalidJson,
    /// Not a Cyrus series this library knows.
    UnknownSeries,
}

static INCOMPLETE_LOGGED: OncePerType = OncePerType::new();

/// The event types that are sent: event_groups, or none while
/// event_notifier is unset.
pub fn enabled_types() -> u32 {
    let cfg = settings::config();
    if cfg.notifier.is_some() {
        cfg.enabled_types
    } else {
        0
    }
}

pub fn parse_type(bits: u32) -> Result<EventType, Refused> {
    EventType::from_bits(bits).ok_or(Refused::UnknownType)
}

/// A parameter by its number in the series the adapter speaks.
pub fn parse_param(n: u32) -> Result<Param, Refused> {
    series::param(n).ok_or(Refused::UnknownParam)
}

/// The type's C value for a name as Cyrus 3.10's `name_to_mboxevent()`
/// reads it; 0 (Cancelled) if unknown.
pub fn type_from_name(name: &[u8]) -> u32 {
    std::str::from_utf8(name)
        .ok()
        .and_then(EventType::from_name)
        .map_or(0, EventType::bits)
}

/// The Cyrus series whose parameter numbers the caller passes from now on.
pub fn set_series(v: u32) -> Result<(), Refused> {
    series::set(Series::from_c(v).ok_or(Refused::UnknownSeries)?);
    Ok(())
}

pub fn is_expected(kind: EventType, p: Param) -> bool {
    settings::config().expects(kind, p)
}

/// A new event, or `None` when nobody would receive it: neither notifyd
/// (event_notifier set and the type's group on) nor the IMAP IDLE/NOTIFY
/// callback (registered, for its types; Cyrus 3.10 registers it whether
/// event_notifier is set or not).
pub fn event_new(kind: EventType) -> Option<Box<Event>> {
    let cfg = settings::config();
    let to_notifyd = cfg.notifier.is_some() && cfg.enabled_types & kind.bits() != 0;
    let to_callback = settings::callback().is_some() && kind.is_in(CALLBACK_TYPES);
    if !to_notifyd && !to_callback {
        return None;
    }
    process::install_hooks();
    let client_id = cfg.expects(kind, Param::ClientId);
    let mut ev = Box::new(Event::with_body(kind, cfg, pool::take_body()));
    ev.set(Param::Pid, Value::Int(u64::from(process::pid())));
    if client_id {
        settings::with_client_id(|id| ev.body.set_str(Param::ClientId, id));
    }
    Some(ev)
}

/// Free an event; its buffers serve the next one.
pub fn event_free(ev: Event) {
    pool::give_body(ev.body);
}

/// The setter must match the parameter's kind (e.g. no string for modseq).
fn check_kind(ok: bool) -> Result<(), Refused> {
    if ok {
        Ok(())
    } else {
        Err(Refused::WrongKind)
    }
}

pub fn set_int(ev: &mut Event, p: Param, n: u64) -> Result<(), Refused> {
    check_kind(p.kind() == Kind::Int)?;
    ev.set(p, Value::Int(n));
    Ok(())
}

/// A string parameter from bytes; invalid UTF-8 becomes U+FFFD.
pub fn set_bytes(ev: &mut Event, p: Param, v: &[u8]) -> Result<(), Refused> {
    check_kind(matches!(p.kind(), Kind::Str | Kind::Address(..)))?;
    ev.body.set_lossy(p, v);
    Ok(())
}

pub fn set_strings<'a>(
    ev: &mut Event,
    p: Param,
    v: impl Iterator<Item = &'a [u8]>,
) -> Result<(), Refused> {
    check_kind(p.kind() == Kind::Array)?;
    let start = ev.body.list.len();
    for s in v {
        let span = ev.body.push_lossy(s);
        ev.body.list.push(span);
    }
    let end = ev.body.list.len();
    ev.set(p, Value::List(Span { start, end }));
    Ok(())
}

/// JSON text is checked here and written compactly when rendered, off the
/// caller's thread.
pub fn set_json(ev: &mut Event, p: Param, text: &[u8]) -> Result<(), Refused> {
    check_kind(p.kind() == Kind::Json)?;
    let text = String::from_utf8_lossy(text);
    if !is_valid(&text) {
        return Err(Refused::InvalidJson);
    }
    let span = ev.body.push(&text);
    ev.set(p, Value::Json(span));
    Ok(())
}

/// A JSON value left in the caller's JSON library: dumped when the event is
/// rendered, off the caller's thread. Dropped (released) on error.
pub fn set_foreign(ev: &mut Event, p: Param, v: ForeignJson) -> Result<(), Refused> {
    check_kind(p.kind() == Kind::Json)?;
    ev.set(p, Value::Foreign(Arc::new(v)));
    Ok(())
}

/// Add a Message-ID to vnd.cmu.midset (`NIL` for none), once each, when the
/// event carries a midset.
pub fn add_msgid(ev: &mut Event, msgid: Option<&[u8]>) {
    if !ev.cfg.expects(ev.kind, Param::Midset) {
        return;
    }
    let b = &mut ev.body;
    let mark = b.text.len();
    let id = b.push_lossy(msgid.unwrap_or(b"NIL"));
    if b.contains(&b.msgids, id, false) {
        b.truncate(mark);
    } else {
        b.msgids.push(id);
    }
}

/// Add a flag unless an equal one (ASCII case ignored) or one of `exclude`
/// is there already.
fn add_flag_unless(ev: &mut Event, flag: &[u8], exclude: &[String]) {
    let b = &mut ev.body;
    let mark = b.text.len();
    let f = b.push_lossy(flag);
    let excluded = exclude.iter().any(|x| x.eq_ignore_ascii_case(b.str(f)));
    if excluded || b.contains(&b.flags, f, true) {
        b.truncate(mark);
    } else {
        b.flags.push(f);
    }
}

/// One flag, without event_exclude_flags, when the event carries flagNames.
pub fn add_flag(ev: &mut Event, flag: &[u8]) {
    if ev.cfg.expects(ev.kind, Param::FlagNames) {
        add_flag_unless(ev, flag, &[]);
    }
}

/// Flags changed by a STORE: those in event_exclude_flags are left out.
pub fn add_flags<'a>(ev: &mut Event, flags: impl Iterator<Item = &'a [u8]>) {
    let cfg = Arc::clone(&ev.cfg);
    for f in flags {
        add_flag_unless(ev, f, &cfg.exclude_flags);
    }
}

/// Server and client address (`"ip;port"`) and user. A Logout without a user
/// (no successful login) is cancelled, as in stock.
pub fn set_access(
    ev: &mut Event,
    server: Option<&[u8]>,
    client: Option<&[u8]>,
    user: Option<&[u8]>,
) {
    if user.is_none() && ev.kind == EventType::Logout {
        ev.kind = EventType::Cancelled;
        return;
    }
    let fields = [
        (Param::ServerAddress, server),
        (Param::ClientAddress, client),
        (Param::User, user),
    ];
    for (p, v) in fields {
        if let Some(v) = v {
            if ev.cfg.expects(ev.kind, p) {
                ev.body.set_lossy(p, v);
            }
        }
    }
}

/// ACL subject and rights; NULL rights (DELETEACL) leaves aclRights out.
pub fn set_acl(ev: &mut Event, subject: &[u8], rights: Option<&[u8]>) {
    ev.body.set_lossy(Param::AclSubject, subject);
    match rights {
        Some(r) => ev.body.set_lossy(Param::AclRights, r),
        None => ev.set(Param::AclRights, Value::Absent),
    }
}

/// The mailbox's IMAP URL as the uri. On MessageNew/MessageAppend the first
/// UID is appended as `/;UID=n` and the UIDs leave uidset, as stock does.
pub fn set_mailbox_uri(ev: &mut Event, uri: &[u8]) {
    use std::fmt::Write as _;
    let mut span = ev.body.push_lossy(uri);
    if ev.kind.is_in(mask::NEW_OR_APPEND) {
        if let Some(first) = ev.body.uids.first() {
            let _ = write!(ev.body.text, "/;UID={first}");
            span.end = ev.body.text.len();
            ev.uids_in_uri += ev.body.uids.count();
            ev.body.uids.clear();
        }
    }
    ev.set(Param::Uri, Value::Str(span));
}

/// messageContent per event_content_inclusion_mode and event_content_size.
/// `message` is the whole message, or as much of it as `content_wanted`
/// asks for; its first `header_size` bytes are the header.
pub fn set_content(ev: &mut Event, message: &[u8], header_size: usize) {
    if let Some((start, len)) = content_range(ev, message.len(), header_size) {
        ev.body
            .set_lossy(Param::MessageContent, &message[start..start + len]);
    }
}

/// How many leading bytes of a message of `size` bytes the event's
/// messageContent takes; `None` when it takes no messageContent from it.
/// `set_content` given just those bytes fills the same content as given the
/// whole message, so the caller need not read the rest.
pub fn content_wanted(ev: &Event, size: usize, header_size: usize) -> Option<usize> {
    content_range(ev, size, header_size).map(|(start, len)| start + len)
}

/// The part of a message of `size` bytes that is the event's messageContent,
/// per event_content_inclusion_mode and event_content_size.
fn content_range(ev: &Event, size: usize, header_size: usize) -> Option<(usize, usize)> {
    let cfg = &ev.cfg;
    if !cfg.expects(ev.kind, Param::MessageContent) {
        return None;
    }
    let header_size = header_size.min(size);
    let limit = usize::try_from(cfg.content_size).unwrap_or(usize::MAX);
    let cap = |n: usize| if limit > 0 && n > limit { limit } else { n };
    let body_len = size - header_size;
    let (start, len) = match cfg.content_mode {
        ContentMode::Standard if limit == 0 || size <= limit => (0, size),
        // RFC 5423 suggests a URLAUTH reference instead; stock sends nothing.
        ContentMode::Standard => return None,
        ContentMode::Message => (0, cap(size)),
        ContentMode::Header => (0, cap(header_size)),
        ContentMode::Body => (header_size, cap(body_len)),
        ContentMode::HeaderBody => (0, header_size + cap(body_len)),
    };
    // A datagram never holds more than DATAGRAM_MAX bytes of it, so the
    // rest of a large message is not copied on the caller's thread. The
    // bytes kept beyond that keep the lossy decoding of a UTF-8 sequence cut
    // at the end clear of anything a datagram can carry.
    // `dlist:` and the IMAP NOTIFY callback get the content whole.
    let whole = cfg.is_dlist() || settings::callback().is_some();
    Some((start, if whole { len } else { len.min(CONTENT_KEPT) }))
}

/// messageContent bytes an event for a datagram keeps: enough for the
/// largest datagram, plus two UTF-8 sequences' worth.
const CONTENT_KEPT: usize = DATAGRAM_MAX + 8;

/// Whether events are wanted for a mailbox: event_exclude_specialuse `ALL`
/// keeps only users' top-level mailboxes, and any listed special-use
/// attribute (exact case) excludes the mailbox.
pub fn mailbox_enabled(is_user_inbox: bool, specialuse: Option<&[u8]>) -> bool {
    let cfg = settings::config();
    if !is_user_inbox && excludes_subfolders(&cfg) {
        return false;
    }
    let attrs = specialuse.map(String::from_utf8_lossy).unwrap_or_default();
    !attrs
        .split_ascii_whitespace()
        .any(|a| cfg.exclude_specialuse.iter().any(|x| x == a))
}

/// "all" in event_exclude_specialuse: only users' top-level mailboxes.
fn excludes_subfolders(cfg: &Config) -> bool {
    cfg.exclude_specialuse
        .iter()
        .any(|w| w.eq_ignore_ascii_case("ALL"))
}

/// Which of `mailbox_enabled`'s inputs the configuration makes it look at:
/// (whether the mailbox is a user's top-level one, its special-use
/// attributes). Stock looks up neither when it cannot matter, and both cost
/// Cyrus work per event.
pub fn mailbox_needs() -> (bool, bool) {
    let cfg = settings::config();
    (
        excludes_subfolders(&cfg),
        !cfg.exclude_specialuse.is_empty(),
    )
}

/// Wait up to `timeout` for queued events to go out; returns how many are
/// still queued (counted and logged).
pub fn flush(timeout: std::time::Duration) -> usize {
    deliver::flush(timeout)
}

/// Send a queue of events in order. Their contents move into the
/// notifications; the emptied events stay the caller's to free.
pub fn notify(events: &mut [&mut Event]) {
    let callback = settings::callback();
    prepare(events, |o, missing| {
        bump(Counter::Notified);
        if !missing.is_empty() {
            bump(Counter::Incomplete);
            if INCOMPLETE_LOGGED.first(o.kind.bit_index()) {
                let names: Vec<_> = missing.iter().map(|p| p.json_name()).collect();
                log::warning(&format!(
                    "mboxevent: {} sent without expected parameters: {} (logged once per event type)",
                    o.kind.name(),
                    names.join(" ")
                ));
            }
        }
        if let Some(cb) = callback.filter(|_| o.kind.is_in(CALLBACK_TYPES)) {
            deliver_to_callback(cb, &o.render().json);
        }
        if o.send() {
            deliver::submit(o);
        } else {
            bump(Counter::UnsentGroupOff);
        }
    });
}

fn deliver_to_callback(cb: Callback, json: &str) {
    // Later Cyrus tags the IMAP NOTIFY copy with "@type":"notify".
    let mut s = String::with_capacity(json.len() + 20);
    s.push_str(&json[..json.len() - 1]);
    s.push_str(",\"@type\":\"notify\"}\0");
    bump(Counter::CallbackCalls);
    // SAFETY: the callback was registered by the C caller for exactly this
    // signature; the buffer is NUL-terminated and lives across the call.
    unsafe { (cb.func)(s.as_ptr().cast(), s.len() - 1, cb.rock as *mut libc::c_void) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;
    use crate::frame::fit_datagram;
    use crate::outgoing::Outgoing;

    fn content_cfg(socket: &str) -> Arc<Config> {
        let mut c = Config::default();
        c.set("event_notifier", "log").unwrap();
        c.set("event_extra_params", "messageContent").unwrap();
        c.set("notifysocket", socket).unwrap();
        Arc::new(c)
    }

    fn outgoing(cfg: &Arc<Config>, body: Box<Body>) -> Outgoing {
        Outgoing::new(EventType::MessageNew, body, Arc::clone(cfg))
    }

    /// A message of twice the largest datagram: plain ASCII (one byte each
    /// in the JSON, so as much of it as can be sent) up to where the copy is
    /// cut, then multi-byte characters, invalid UTF-8 and characters that
    /// need escaping, shifted across the cut byte by byte. Every datagram
    /// size gives the datagram of the message kept whole.
    #[test]
    fn a_large_content_sends_as_if_kept_whole() {
        let cfg = content_cfg("/tmp/cmev-nobody/notify");
        let tricky: &[u8] = &[
            0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, b'"', b'\\', b'\n', 0xff, 0xc3,
            b'x', 0xf0, 0x9f, 0x98,
        ];
        let header = b"Subject: big\r\n\r\n";
        for shift in 0..24 {
            let mut msg = header.to_vec();
            msg.resize(header.len() + CONTENT_KEPT - 12 + shift, b'a');
            while msg.len() < 2 * DATAGRAM_MAX {
                msg.extend_from_slice(tricky);
            }
            let mut ev = Event::new(EventType::MessageNew, Arc::clone(&cfg));
            set_content(&mut ev, &msg, header.len());
            let mut whole = Box::<Body>::default();
            whole.set_lossy(Param::MessageContent, &msg);
            for max in [DATAGRAM_MAX, DATAGRAM_MAX - 3, 21_267, 4096] {
                let kept = fit_datagram("log", &outgoing(&cfg, ev.body.clone()), max, Vec::new());
                let all = fit_datagram("log", &outgoing(&cfg, whole.clone()), max, Vec::new());
                assert_eq!(kept, all, "shift {shift}, datagram of {max}");
            }
        }
    }

    fn content_of(ev: &Event) -> Option<String> {
        match ev.get(Param::MessageContent) {
            Some(Value::Str(s)) => Some(ev.body.str(*s).to_owned()),
            _ => None,
        }
    }

    /// Given only the bytes `content_wanted` asks for, `set_content` fills
    /// what it fills from the whole message, in every inclusion mode, size
    /// limit and transport; asking for none means the whole message gives
    /// no content.
    #[test]
    fn the_wanted_bytes_give_the_content_of_the_whole_message() {
        let text: Vec<u8> = "Subject: é€😀 \"q\"\r\n\r\nbody ✓ "
            .bytes()
            .cycle()
            .take(200_000)
            .collect();
        for socket in ["/tmp/n", "dlist:/tmp/d"] {
            for mode in ["standard", "message", "header", "body", "headerbody"] {
                for limit in ["0", "5", "100", "70000", "200000"] {
                    let mut c = (*content_cfg(socket)).clone();
                    c.set("event_content_inclusion_mode", mode).unwrap();
                    c.set("event_content_size", limit).unwrap();
                    let cfg = Arc::new(c);
                    for size in [0, 3, 50, 1000, 70_000, 150_000] {
                        for header in [0, 10, 500, 80_000] {
                            let msg = &text[..size];
                            let mut whole = Event::new(EventType::MessageNew, Arc::clone(&cfg));
                            set_content(&mut whole, msg, header);
                            let wanted = content_wanted(&whole, size, header);
                            let what =
                                format!("{socket} {mode} {limit} size {size} header {header}");
                            let mut part = Event::new(EventType::MessageNew, Arc::clone(&cfg));
                            if let Some(n) = wanted {
                                assert!(n <= size, "{what}");
                                set_content(&mut part, &msg[..n], header);
                            }
                            assert_eq!(content_of(&part), content_of(&whole), "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dlist_keeps_the_content_whole() {
        let msg = vec![b'x'; 3 * DATAGRAM_MAX];
        for (socket, kept) in [
            ("dlist:/tmp/cmev-nobody/dlist", msg.len()),
            ("/tmp/n", CONTENT_KEPT),
        ] {
            let mut ev = Event::new(EventType::MessageNew, content_cfg(socket));
            set_content(&mut ev, &msg, 0);
            match ev.get(Param::MessageContent) {
                Some(Value::Str(s)) => assert_eq!(ev.body.str(*s).len(), kept, "{socket}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
