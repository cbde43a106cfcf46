//! What `notify` does to a queue of events before anything is sent, in
//! stock's order: skip cancelled events, send a FlagsClear carrying `\Seen`
//! before the FlagsSet just ahead of it, skip events with nothing to report,
//! fill the parameters the library owns, and split FlagsSet into
//! MessageTrash / MessageRead / FlagsSet. Rendering is left to whoever sends
//! (the sender thread, off the caller's hot path).

use crate::config::Config;
use crate::event::{mask, Event, EventType, Param, Value, ALL_PARAMS};
use crate::json::{render, render_limited, Rendered};
use crate::rules::may_be_missing;
use std::sync::Arc;

/// One notification ready to leave, not yet rendered.
#[derive(Debug)]
pub struct Outgoing {
    pub kind: EventType,
    /// Filled parameters, sorted by number.
    pub params: Vec<(Param, Value)>,
    pub cfg: Arc<Config>,
    /// The event's group is enabled: it goes to the notify socket.
    pub send: bool,
    /// Expected parameters the adapter did not fill (stock aborted here).
    pub missing: Vec<Param>,
}

impl Outgoing {
    pub fn render(&self) -> Rendered {
        render(self.kind, &self.params, self.cfg.timestamp_format)
    }

    /// Rendered for a datagram of at most `max` bytes of JSON.
    pub fn render_within(&self, max: usize) -> Rendered {
        render_limited(self.kind, &self.params, self.cfg.timestamp_format, max)
    }
}

/// Event types that later Cyrus versions hand to the in-process IMAP NOTIFY
/// callback.
pub const CALLBACK_TYPES: u32 = mask::MESSAGE | mask::FLAGS | mask::MAILBOX | mask::SUBSCRIPTION;

fn has_seen(flags: &[String]) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"))
}

/// Process a queue in order. The events' contents move into the
/// notifications (stock frees events right after notify); what is left of
/// them is the caller's to free.
pub fn prepare(events: &mut [&mut Event]) -> Vec<Outgoing> {
    let mut out = Vec::with_capacity(events.len());
    for i in 0..events.len() {
        if events[i].kind == EventType::FlagsSet
            && events
                .get(i + 1)
                .is_some_and(|n| n.kind == EventType::FlagsClear && has_seen(&n.flags))
        {
            events.swap(i, i + 1);
        }
        prepare_one(events[i], &mut out);
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

fn fill_library_params(ev: &mut Event) {
    let (k, cfg) = (ev.kind, Arc::clone(&ev.cfg));
    if cfg.expects(k, Param::Service) {
        ev.set(Param::Service, Value::Str(cfg.service.clone()));
    }
    if cfg.expects(k, Param::ServerFqdn) {
        ev.set(Param::ServerFqdn, Value::Str(cfg.servername.clone()));
    }
    if cfg.expects(k, Param::Timestamp) {
        ev.set(Param::Timestamp, Value::Time(ev.created));
    }
    if let Some(s) = ev.uids.to_imap() {
        ev.set(Param::Uidset, Value::Str(s));
    }
    if !ev.msgids.is_empty() {
        let ids = std::mem::take(&mut ev.msgids);
        ev.set(Param::Midset, Value::Array(ids));
    }
    if let Some(s) = ev.old_uids.to_imap() {
        ev.set(Param::OldUidset, Value::Str(s));
    }
    // RFC 5423: modseq only with a notification about one message.
    if ev.message_count() > 1 {
        ev.unset(Param::Modseq);
    }
}

fn prepare_one(ev: &mut Event, out: &mut Vec<Outgoing>) {
    if nothing_to_report(ev) {
        return;
    }
    fill_library_params(ev);
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
        // The last notification of an event takes its parameters; the
        // others of a split get a copy.
        let last = ev.flags.is_empty();
        out.push(finish(ev, kind, last));
        if last {
            break;
        }
    }
}

fn finish(ev: &mut Event, kind: EventType, last: bool) -> Outgoing {
    let cfg = Arc::clone(&ev.cfg);
    let unfilled = cfg.expected_mask(kind) & !ev.filled_mask();
    let missing = if unfilled == 0 {
        Vec::new()
    } else {
        ALL_PARAMS
            .iter()
            .copied()
            .filter(|p| unfilled & (1u128 << *p as u32) != 0 && !may_be_missing(kind, *p, &cfg, ev))
            .collect()
    };
    let mut params = if last {
        std::mem::take(&mut ev.params)
    } else {
        ev.params.clone()
    };
    params.sort_unstable_by_key(|(p, _)| *p);
    Outgoing {
        kind,
        params,
        send: cfg.enabled_types & kind.bits() != 0,
        cfg,
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
        flag_event_in(&cfg(), kind, uids, flags)
    }

    fn flag_event_in(c: &Config, kind: EventType, uids: &[u32], flags: &[&str]) -> Event {
        let mut e = Event::new(kind, Arc::new(c.clone()));
        e.set(Param::Uri, Value::Str("imap://h/INBOX".into()));
        e.set(Param::User, Value::Str("u".into()));
        e.set(Param::Pid, Value::Int(1));
        uids.iter().for_each(|u| e.uids.add(*u));
        e.flags = flags.iter().map(|f| f.to_string()).collect();
        e
    }

    fn names(o: &[Outgoing]) -> Vec<String> {
        o.iter().map(|x| x.render().json).collect()
    }

    fn json(o: &Outgoing) -> String {
        o.render().json
    }

    #[test]
    fn split_order_trash_read_flagsset() {
        let mut e = flag_event(
            EventType::FlagsSet,
            &[7],
            &["\\Seen", "\\Deleted", "$Label4"],
        );
        let o = prepare(&mut [&mut e]);
        let kinds: Vec<_> = o.iter().map(|x| x.kind).collect();
        assert_eq!(
            kinds,
            [
                EventType::MessageTrash,
                EventType::MessageRead,
                EventType::FlagsSet
            ]
        );
        assert!(!json(&o[0]).contains("flagNames"));
        assert!(json(&o[2]).contains("\"flagNames\":\"$Label4\""));
        assert!(o.iter().all(|x| x.missing.is_empty()), "{:?}", o);
    }

    #[test]
    fn split_is_case_sensitive_and_lone_flag_makes_one_event() {
        let mut e = flag_event(EventType::FlagsSet, &[1], &["\\seen"]);
        let o = prepare(&mut [&mut e]);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].kind, EventType::FlagsSet);
        let mut e = flag_event(EventType::FlagsSet, &[1], &["\\Deleted"]);
        let o = prepare(&mut [&mut e]);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].kind, EventType::MessageTrash);
    }

    #[test]
    fn flagsclear_with_seen_goes_first() {
        let mut set = flag_event(EventType::FlagsSet, &[4], &["\\Answered"]);
        let mut clear = flag_event(EventType::FlagsClear, &[4], &["\\SEEN"]);
        let o = prepare(&mut [&mut set, &mut clear]);
        assert_eq!(o[0].kind, EventType::FlagsClear);
        assert_eq!(o[1].kind, EventType::FlagsSet);
        let mut set = flag_event(EventType::FlagsSet, &[4], &["\\Answered"]);
        let mut clear = flag_event(EventType::FlagsClear, &[4], &["\\Flagged"]);
        let o = prepare(&mut [&mut set, &mut clear]);
        assert_eq!(o[0].kind, EventType::FlagsSet);
    }

    #[test]
    fn skips_what_has_nothing_to_report() {
        let c = cfg();
        let mut no_uids = flag_event(EventType::MessageExpunge, &[], &[]);
        let mut no_flags = flag_event(EventType::FlagsSet, &[1], &[]);
        let mut cancelled = flag_event(EventType::Cancelled, &[1], &[]);
        let mut new_no_uri = Event::new(EventType::MessageNew, Arc::new(c.clone()));
        let mut quota = Event::new(EventType::QuotaChange, Arc::new(c.clone()));
        let o = prepare(&mut [
            &mut no_uids,
            &mut no_flags,
            &mut cancelled,
            &mut new_no_uri,
            &mut quota,
        ]);
        assert!(o.is_empty(), "{:?}", names(&o));
    }

    #[test]
    fn modseq_only_with_one_message() {
        let mut c = cfg();
        c.set("event_extra_params", "modseq").unwrap();
        let mut one = flag_event_in(&c, EventType::MessageExpunge, &[3], &[]);
        one.set(Param::Modseq, Value::Int(9));
        let mut two = flag_event_in(&c, EventType::MessageExpunge, &[3, 7], &[]);
        two.set(Param::Modseq, Value::Int(9));
        let o = prepare(&mut [&mut one, &mut two]);
        assert!(json(&o[0]).contains("\"modseq\":9"));
        assert!(!json(&o[1]).contains("modseq"));
        assert!(o[1].missing.is_empty());
    }

    #[test]
    fn missing_parameters_are_reported_not_fatal() {
        let mut e = Event::new(EventType::MailboxCreate, Arc::new(cfg()));
        e.set(Param::Uri, Value::Str("imap://h/x".into()));
        let o = prepare(&mut [&mut e]);
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
        let mut e = Event::new(EventType::QuotaExceed, Arc::new(c.clone()));
        e.set(Param::Uri, Value::Str("imap://h/user/u".into()));
        e.set(Param::Pid, Value::Int(1));
        e.set(Param::ServerFqdn, Value::Str("h".into()));
        e.set(Param::QuotaMessages, Value::Int(10));
        e.set(Param::Messages, Value::Int(10));
        let o = prepare(&mut [&mut e]);
        assert!(o[0].missing.is_empty(), "{:?}", o[0].missing);
        let mut e = Event::new(EventType::QuotaWithin, Arc::new(c.clone()));
        e.set(Param::Uri, Value::Str("imap://h/user/u".into()));
        e.set(Param::QuotaStorage, Value::Int(4));
        let o = prepare(&mut [&mut e]);
        assert_eq!(o[0].missing, [Param::DiskUsed, Param::Pid]);
    }

    #[test]
    fn group_filter_marks_unsent() {
        let mut c = cfg();
        c.set("event_groups", "message").unwrap();
        let mut e = flag_event_in(&c, EventType::FlagsSet, &[1], &["$X"]);
        let o = prepare(&mut [&mut e]);
        assert!(!o[0].send);
    }
}
