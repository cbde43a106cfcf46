//! Wire framing for notifyd: `method\0class\0priority\0user\0mailbox\0nopt\0
//! message\0`, with class `EVENT`, empty priority/user/mailbox, no options
//! and no file name, exactly as stock's notify() writes an event.

use crate::config::DATAGRAM_MAX;
use crate::outgoing::Outgoing;

const CLASS_AND_EMPTY_FIELDS: &str = "EVENT\0\0\0\0";
const NO_OPTIONS: &str = "0\0";

fn overhead(method: &str) -> usize {
    method.len() + 1 + CLASS_AND_EMPTY_FIELDS.len() + NO_OPTIONS.len() + 1
}

/// The datagram for an event's JSON.
pub fn datagram(method: &str, json: &str) -> Vec<u8> {
    let mut d = String::with_capacity(overhead(method) + json.len());
    header(&mut d, method);
    d.push_str(json);
    d.push('\0');
    d.into_bytes()
}

fn header(d: &mut String, method: &str) {
    d.push_str(method);
    d.push('\0');
    d.push_str(CLASS_AND_EMPTY_FIELDS);
    d.push_str(NO_OPTIONS);
}

/// What became of an event that had to fit in `max` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Fitted {
    Whole(Vec<u8>),
    ContentCut(Vec<u8>),
    TooBig,
}

/// Frame a notification, cutting messageContent when the datagram would
/// exceed `max`. The datagram is written into `buf` (reused, to spare an
/// allocation per event) right after its header.
pub fn fit_datagram(method: &str, out: &Outgoing, max: usize, mut buf: Vec<u8>) -> Fitted {
    let Some(budget) = max.checked_sub(overhead(method)) else {
        return Fitted::TooBig;
    };
    buf.clear();
    let mut d = String::from_utf8(buf).unwrap_or_default();
    header(&mut d, method);
    let head = d.len();
    let r = out.render_after(d, budget);
    let end = |s: String| {
        let mut d = s.into_bytes();
        d.push(0);
        d
    };
    if r.json.len() - head <= budget && !r.content_cut {
        return Fitted::Whole(end(r.json));
    }
    match r.fit(head + budget) {
        Some(json) => Fitted::ContentCut(end(json)),
        None => Fitted::TooBig,
    }
}

/// notifyd's receive limit and stock's send limit for a socket buffer size.
pub fn limit_for_buffer(bufsize: usize) -> usize {
    (bufsize / 10).saturating_sub(32).min(DATAGRAM_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;
    use crate::catalogue::{EventType, Param};
    use crate::config::Config;
    use std::sync::Arc;

    #[test]
    fn matches_golden_envelope() {
        let d = datagram("log", "{}");
        assert_eq!(d, b"log\0EVENT\0\0\0\x000\0{}\0");
    }

    #[test]
    fn stock_limit_with_linux_default_buffer() {
        assert_eq!(limit_for_buffer(212_992), 21_267);
        assert_eq!(limit_for_buffer(10_000_000), 65_536);
        assert_eq!(limit_for_buffer(100), 0);
    }

    #[test]
    fn fitting() {
        let mut cfg = Config::default();
        cfg.set("event_extra_params", "").unwrap();
        let mut body = Box::<Body>::default();
        body.set_str(Param::MessageContent, "abcdef");
        let out = Outgoing::new(EventType::MessageNew, body, Arc::new(cfg));
        let whole = datagram(
            "log",
            "{\"event\":\"MessageNew\",\"messageContent\":\"abcdef\"}",
        );
        assert_eq!(
            fit_datagram("log", &out, whole.len(), Vec::new()),
            Fitted::Whole(whole.clone())
        );
        match fit_datagram("log", &out, whole.len() - 2, Vec::new()) {
            Fitted::ContentCut(d) => assert!(d.ends_with(b"\"abcd\"}\0")),
            other => panic!("{other:?}"),
        }
        assert_eq!(fit_datagram("log", &out, 20, Vec::new()), Fitted::TooBig);
    }
}
