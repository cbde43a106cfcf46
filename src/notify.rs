//! What `notify` does to a queue of events before anything is sent, in
//! stock's order: skip cancelled events, send a FlagsClear carrying `\Seen`
//! before the FlagsSet just ahead of it, skip events with nothing to report,
//! fill the parameters the library owns, split FlagsSet into MessageTrash /
//! MessageRead / FlagsSet, and render each notification.

use crate::config::Config;
use crate::event::{mask, Event, EventType, Param, Value};
use crate::json::{render, Rendered};
use crate::rules::{expected, may_be_missing};
use crate::timestamp;

/// One notification ready to leave.
#[derive(Debug)]
pub struct Outgoing {
    pub kind: EventType,
    pub rendered: Rendered,
    /// The event's group is enabled: it goes to the notify socket.
    pub send: bool,
    /// Expected parameters the adapter did not fill (stock aborted here).
    pub missing: Vec<Param>,
}

/// Event types that later Cyrus versions hand to the in-process IMAP NOTIFY
/// callback.
pub const CALLBACK_TYPES: u32 = mask::MESSAGE | mask::FLAGS | mask::MAILBOX | mask::SUBSCRIPTION;

fn has_seen(flags: &[String]) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"))
}

/// Process a queue in order. Events are changed the way stock changes them
/// (filled, reordered, flags consumed); the caller still owns and frees them.
pub fn prepare(events: &mut [&mut Event], cfg: &Config) -> Vec<Outgoing> {
    let mut out = Vec::with_capacity(events.len());
    for i in 0..events.len() {
        if events[i].kind == EventType::FlagsSet
            && events
                .get(i + 1)
                .is_some_and(|n| n.kind == EventType::FlagsClear && has_seen(&n.flags))
        {
            events.swap(i, i + 1);
        }
        prepare_one(events[i], cfg, &mut out);
    }
    out
}

fn nothing_to_report(ev: &Event) -> bool {
    let k = ev.kind;
    if k == EventType::Cancelled {
        return true;
    }
    if k.is_in(mask::MESSAGE | mask::FLAGS) {
        if k.is_in(mask::NEW_OR_APPEND) {
            return !ev.has(Param::Uri);
        }
        // A STORE whose flags were all excluded has no flags left: stock
        // would abort on the missing flagNames; there is nothing to say.
        let flag_event = matches!(k, EventType::FlagsSet | EventType::FlagsClear);
        return ev.uids.is_empty() || (flag_event && ev.flags.is_empty());
    }
    k.is_in(mask::QUOTA) && !ev.has(Param::QuotaStorage) && !ev.has(Param::QuotaMessages)
}

fn fill_library_params(ev: &mut Event, cfg: &Config) {
    let k = ev.kind;
    if expected(k, Param::Service, cfg) {
        ev.set(Param::Service, Value::Str(cfg.service.clone()));
    }
    if expected(k, Param::ServerFqdn, cfg) {
        ev.set(Param::ServerFqdn, Value::Str(cfg.servername.clone()));
    }
    if expected(k, Param::Timestamp, cfg) {
        ev.set(
            Param::Timestamp,
            Value::Str(timestamp::format(ev.created, cfg.timestamp_format)),
        );
    }
    if let Some(s) = ev.uids.to_imap() {
        ev.set(Param::Uidset, Value::Str(s));
    }
    if !ev.msgids.is_empty() {
        ev.set(Param::Midset, Value::Array(ev.msgids.clone()));
    }
    if let Some(s) = ev.old_uids.to_imap() {
        ev.set(Param::OldUidset, Value::Str(s));
    }
    // RFC 5423: modseq only with a notification about one message.
    if ev.message_count() > 1 {
        ev.unset(Param::Modseq);
    }
}

fn prepare_one(ev: &mut Event, cfg: &Config, out: &mut Vec<Outgoing>) {
    if nothing_to_report(ev) {
        return;
    }
    fill_library_params(ev, cfg);
    loop {
        let mut kind = ev.kind;
        if kind == EventType::FlagsSet {
            // RFC 5423 §4.2 prefers MessageTrash and MessageRead; exact case.
            for (flag, derived) in [
                ("\\Deleted", EventType::MessageTrash),
                ("\\Seen", EventType::MessageRead),
            ] {
                if let Some(pos) = ev.flags.iter().position(|f| f == flag) {
                    ev.flags.remove(pos);
                    kind = derived;
                    break;
                }
            }
        }
        if !ev.flags.is_empty() && kind != EventType::MessageTrash && kind != EventType::MessageRead
        {
            ev.set(Param::FlagNames, Value::Str(ev.flags.join(" ")));
            ev.flags.clear();
        }
        out.push(finish(ev, kind, cfg));
        if ev.flags.is_empty() {
            break;
        }
    }
}

fn finish(ev: &Event, kind: EventType, cfg: &Config) -> Outgoing {
    let mut params: Vec<(Param, &Value)> = ev.params.iter().map(|(p, v)| (*p, v)).collect();
    params.sort_unstable_by_key(|(p, _)| *p);
    let missing = crate::event::ALL_PARAMS
        .iter()
        .copied()
        .filter(|p| expected(kind, *p, cfg) && !ev.has(*p) && !may_be_missing(kind, *p, cfg, ev))
        .collect();
    Outgoing {
        kind,
        rendered: render(kind, &params),
        send: cfg.enabled_types & kind.bits() != 0,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut c = Config::default();
        c.set("event_notifier", "log").unwrap();
        c.set("event_groups", "message flags mailbox").unwrap();
        c.set("event_extra_params", "").unwrap();
        c.set("servername", "h").unwrap();
        c
    }

    fn flag_event(kind: EventType, uids: &[u32], flags: &[&str]) -> Event {
        let mut e = Event::new(kind);
        e.set(Param::Uri, Value::Str("imap://h/INBOX".into()));
        e.set(Param::User, Value::Str("u".into()));
        e.set(Param::Pid, Value::Int(1));
        uids.iter().for_each(|u| e.uids.add(*u));
        e.flags = flags.iter().map(|f| f.to_string()).collect();
        e
    }

    fn names(o: &[Outgoing]) -> Vec<String> {
        o.iter().map(|x| x.rendered.json.clone()).collect()
    }

    #[test]
    fn split_order_trash_read_flagsset() {
        let mut e = flag_event(
            EventType::FlagsSet,
            &[7],
            &["\\Seen", "\\Deleted", "$Label4"],
        );
        let o = prepare(&mut [&mut e], &cfg());
        let kinds: Vec<_> = o.iter().map(|x| x.kind).collect();
        assert_eq!(
            kinds,
            [
                EventType::MessageTrash,
                EventType::MessageRead,
                EventType::FlagsSet
            ]
        );
        assert!(!o[0].rendered.json.contains("flagNames"));
        assert!(o[2].rendered.json.contains("\"flagNames\":\"$Label4\""));
        assert!(o.iter().all(|x| x.missing.is_empty()), "{:?}", o);
    }

    #[test]
    fn split_is_case_sensitive_and_lone_flag_makes_one_event() {
        let mut e = flag_event(EventType::FlagsSet, &[1], &["\\seen"]);
        let o = prepare(&mut [&mut e], &cfg());
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].kind, EventType::FlagsSet);
        let mut e = flag_event(EventType::FlagsSet, &[1], &["\\Deleted"]);
        let o = prepare(&mut [&mut e], &cfg());
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].kind, EventType::MessageTrash);
    }

    #[test]
    fn flagsclear_with_seen_goes_first() {
        let mut set = flag_event(EventType::FlagsSet, &[4], &["\\Answered"]);
        let mut clear = flag_event(EventType::FlagsClear, &[4], &["\\SEEN"]);
        let o = prepare(&mut [&mut set, &mut clear], &cfg());
        assert_eq!(o[0].kind, EventType::FlagsClear);
        assert_eq!(o[1].kind, EventType::FlagsSet);
        let mut set = flag_event(EventType::FlagsSet, &[4], &["\\Answered"]);
        let mut clear = flag_event(EventType::FlagsClear, &[4], &["\\Flagged"]);
        let o = prepare(&mut [&mut set, &mut clear], &cfg());
        assert_eq!(o[0].kind, EventType::FlagsSet);
    }

    #[test]
    fn skips_what_has_nothing_to_report() {
        let c = cfg();
        let mut no_uids = flag_event(EventType::MessageExpunge, &[], &[]);
        let mut no_flags = flag_event(EventType::FlagsSet, &[1], &[]);
        let mut cancelled = flag_event(EventType::Cancelled, &[1], &[]);
        let mut new_no_uri = Event::new(EventType::MessageNew);
        let mut quota = Event::new(EventType::QuotaChange);
        let o = prepare(
            &mut [
                &mut no_uids,
                &mut no_flags,
                &mut cancelled,
                &mut new_no_uri,
                &mut quota,
            ],
            &c,
        );
        assert!(o.is_empty(), "{:?}", names(&o));
    }

    #[test]
    fn modseq_only_with_one_message() {
        let mut c = cfg();
        c.set("event_extra_params", "modseq").unwrap();
        let mut one = flag_event(EventType::MessageExpunge, &[3], &[]);
        one.set(Param::Modseq, Value::Int(9));
        let mut two = flag_event(EventType::MessageExpunge, &[3, 7], &[]);
        two.set(Param::Modseq, Value::Int(9));
        let o = prepare(&mut [&mut one, &mut two], &c);
        assert!(o[0].rendered.json.contains("\"modseq\":9"));
        assert!(!o[1].rendered.json.contains("modseq"));
        assert!(o[1].missing.is_empty());
    }

    #[test]
    fn missing_parameters_are_reported_not_fatal() {
        let mut e = Event::new(EventType::MailboxCreate);
        e.set(Param::Uri, Value::Str("imap://h/x".into()));
        let o = prepare(&mut [&mut e], &cfg());
        assert_eq!(o.len(), 1);
        assert_eq!(
            o[0].missing,
            [
                Param::MailboxId,
                Param::Pid,
                Param::User,
                Param::Mbtype,
                Param::MailboxAcl
            ]
        );
    }

    #[test]
    fn quota_events_about_one_resource_are_complete() {
        let mut c = cfg();
        c.set("event_groups", "quota").unwrap();
        let mut e = Event::new(EventType::QuotaExceed);
        e.set(Param::Uri, Value::Str("imap://h/user/u".into()));
        e.set(Param::Pid, Value::Int(1));
        e.set(Param::ServerFqdn, Value::Str("h".into()));
        e.set(Param::QuotaMessages, Value::Int(10));
        e.set(Param::Messages, Value::Int(10));
        let o = prepare(&mut [&mut e], &c);
        assert!(o[0].missing.is_empty(), "{:?}", o[0].missing);
        let mut e = Event::new(EventType::QuotaWithin);
        e.set(Param::Uri, Value::Str("imap://h/user/u".into()));
        e.set(Param::QuotaStorage, Value::Int(4));
        let o = prepare(&mut [&mut e], &c);
        assert_eq!(o[0].missing, [Param::DiskUsed, Param::Pid]);
    }

    #[test]
    fn group_filter_marks_unsent() {
        let mut c = cfg();
        c.set("event_groups", "message").unwrap();
        let mut e = flag_event(EventType::FlagsSet, &[1], &["$X"]);
        let o = prepare(&mut [&mut e], &c);
        assert!(!o[0].send);
    }
}
