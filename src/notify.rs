//! What `notify` does to a queue of events before anything is sent, in
//! stock's order: skip cancelled events, send a FlagsClear carrying `\Seen`
//! before the FlagsSet just ahead of it, skip events with nothing to report,
//! fill the parameters the library owns, and split FlagsSet into
//! MessageTrash / MessageRead / FlagsSet. Rendering is left to whoever sends
//! (the sender thread, off the caller's hot path).

use crate::body::{Body, Span, Value};
use crate::catalogue::{mask, EventType, Param};
use crate::config::ContentMode;
use crate::event::Event;
use crate::outgoing::Outgoing;
use crate::pool;
use crate::rules::may_be_missing;
use std::sync::Arc;

/// Event types that later Cyrus versions hand to the in-process IMAP NOTIFY
/// callback.
pub const CALLBACK_TYPES: u32 = mask::MESSAGE | mask::FLAGS | mask::MAILBOX | mask::SUBSCRIPTION;

fn has_seen(b: &Body) -> bool {
    b.flags
        .iter()
        .any(|f| b.str(*f).eq_ignore_ascii_case("\\Seen"))
}

/// Process a queue in order, handing each notification to `out` with the
/// expected parameters the adapter did not fill (stock aborted there). The
/// events' contents move into the notifications (stock frees events right
/// after notify); what is left of them is the caller's to free.
pub fn prepare(events: &mut [&mut Event], mut out: impl FnMut(Outgoing, Vec<Param>)) {
    for i in 0..events.len() {
        if events[i].kind == EventType::FlagsSet
            && events
                .get(i + 1)
                .is_some_and(|n| n.kind == EventType::FlagsClear && has_seen(&n.body))
        {
            events.swap(i, i + 1);
        }
        prepare_one(events[i], &mut out);
    }
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
        return ev.body.uids.is_empty() || (flag_event && ev.body.flags.is_empty());
    }
    k.is_in(mask::QUOTA) && !ev.has(Param::QuotaStorage) && !ev.has(Param::QuotaMessages)
}

fn fill_library_params(ev: &mut Event) {
    let (k, cfg) = (ev.kind, Arc::clone(&ev.cfg));
    if cfg.expects(k, Param::Service) {
        ev.body.set_str(Param::Service, &cfg.service);
    }
    if cfg.expects(k, Param::ServerFqdn) {
        ev.body.set_str(Param::ServerFqdn, &cfg.servername);
    }
    if cfg.expects(k, Param::Timestamp) {
        ev.set(Param::Timestamp, Value::Time(ev.created));
    }
    let b = &mut ev.body;
    if !b.uids.is_empty() {
        let start = b.text.len();
        b.uids.write_imap(&mut b.text);
        let end = b.text.len();
        b.set(Param::Uidset, Value::Str(Span { start, end }));
    }
    if !b.old_uids.is_empty() {
        let start = b.text.len();
        b.old_uids.write_imap(&mut b.text);
        let end = b.text.len();
        b.set(Param::OldUidset, Value::Str(Span { start, end }));
    }
    if !b.msgids.is_empty() {
        let start = b.list.len();
        b.list.append(&mut b.msgids);
        let end = b.list.len();
        b.set(Param::Midset, Value::List(Span { start, end }));
    }
    // RFC 5423: modseq only with a notification about one message.
    if ev.message_count() > 1 {
        ev.unset(Param::Modseq);
    }
}

fn prepare_one(ev: &mut Event, out: &mut impl FnMut(Outgoing, Vec<Param>)) {
    if nothing_to_report(ev) {
        return;
    }
    fill_library_params(ev);
    loop {
        let mut kind = ev.kind;
        if kind == EventType::FlagsSet {
            // RFC 5423 §4.2 prefers MessageTrash and MessageRead; exact case.
            let b = &mut ev.body;
            for (flag, derived) in [
                ("\\Deleted", EventType::MessageTrash),
                ("\\Seen", EventType::MessageRead),
            ] {
                if let Some(pos) = b.flags.iter().position(|f| b.str(*f) == flag) {
                    b.flags.remove(pos);
                    kind = derived;
                    break;
                }
            }
        }
        let b = &mut ev.body;
        if !b.flags.is_empty() && kind != EventType::MessageTrash && kind != EventType::MessageRead
        {
            let flags = std::mem::take(&mut b.flags);
            let names = b.join(&flags, ' ');
            b.set(Param::FlagNames, Value::Str(names));
            b.flags = flags;
            b.flags.clear();
        }
        // The last notification of an event takes its parameters; the
        // others of a split get a copy.
        let last = ev.body.flags.is_empty();
        let (o, missing) = finish(ev, kind, last);
        out(o, missing);
        if last {
            break;
        }
    }
}

fn finish(ev: &mut Event, kind: EventType, last: bool) -> (Outgoing, Vec<Param>) {
    let cfg = Arc::clone(&ev.cfg);
    // By the set bits, not by every parameter: this runs on every event.
    let mut unfilled = cfg.expected_mask(kind) & !ev.filled_mask();
    let mut missing = Vec::new();
    while unfilled != 0 {
        let p = Param::at_rank(unfilled.trailing_zeros());
        unfilled &= unfilled - 1;
        let standard = cfg.content_mode == ContentMode::Standard;
        let (filled, messages) = (ev.filled_mask(), ev.message_count());
        missing.extend(p.filter(|p| !may_be_missing(kind, *p, standard, filled, messages)));
    }
    let body = if last {
        pool::boxed(&mut ev.body)
    } else {
        ev.body.clone()
    };
    body.note_size();
    (Outgoing::new(kind, body, cfg), missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
        e.body.set_str(Param::Uri, "imap://h/INBOX");
        e.body.set_str(Param::User, "u");
        e.set(Param::Pid, Value::Int(1));
        uids.iter().for_each(|u| e.body.uids.add(*u));
        for f in flags {
            let span = e.body.push(f);
            e.body.flags.push(span);
        }
        e
    }

    fn prepare(events: &mut [&mut Event]) -> Vec<Outgoing> {
        prepare_missing(events)
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    }

    /// Each notification with the expected parameters it lacks.
    fn prepare_missing(events: &mut [&mut Event]) -> Vec<(Outgoing, Vec<Param>)> {
        let mut out = Vec::new();
        super::prepare(events, |o, missing| out.push((o, missing)));
        out
    }

    fn missing(events: &mut [&mut Event]) -> Vec<Vec<Param>> {
        prepare_missing(events)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
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
        let (o, missing): (Vec<_>, Vec<_>) = prepare_missing(&mut [&mut e]).into_iter().unzip();
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
        assert!(missing.iter().all(Vec::is_empty), "{missing:?}");
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
        let (o, missing): (Vec<_>, Vec<_>) = prepare_missing(&mut [&mut one, &mut two])
            .into_iter()
            .unzip();
        assert!(json(&o[0]).contains("\"modseq\":9"));
        assert!(!json(&o[1]).contains("modseq"));
        assert!(missing[1].is_empty());
    }

    #[test]
    fn missing_parameters_are_reported_not_fatal() {
        let mut e = Event::new(EventType::MailboxCreate, Arc::new(cfg()));
        e.body.set_str(Param::Uri, "imap://h/x");
        assert_eq!(
            missing(&mut [&mut e]),
            [[
                Param::MailboxId,
                Param::Pid,
                Param::User,
                Param::Mbtype,
                Param::MailboxAcl
            ]]
        );
    }

    #[test]
    fn quota_events_about_one_resource_are_complete() {
        let mut c = cfg();
        c.set("event_groups", "quota").unwrap();
        let mut e = Event::new(EventType::QuotaExceed, Arc::new(c.clone()));
        e.body.set_str(Param::Uri, "imap://h/user/u");
        e.set(Param::Pid, Value::Int(1));
        e.body.set_str(Param::ServerFqdn, "h");
        e.set(Param::QuotaMessages, Value::Int(10));
        e.set(Param::Messages, Value::Int(10));
        assert_eq!(missing(&mut [&mut e]), [[]]);
        let mut e = Event::new(EventType::QuotaWithin, Arc::new(c.clone()));
        e.body.set_str(Param::Uri, "imap://h/user/u");
        e.set(Param::QuotaStorage, Value::Int(4));
        assert_eq!(missing(&mut [&mut e]), [[Param::DiskUsed, Param::Pid]]);
    }

    #[test]
    fn group_filter_marks_unsent() {
        let mut c = cfg();
        c.set("event_groups", "message").unwrap();
        let mut e = flag_event_in(&c, EventType::FlagsSet, &[1], &["$X"]);
        let o = prepare(&mut [&mut e]);
        assert!(!o[0].send());
    }
}
