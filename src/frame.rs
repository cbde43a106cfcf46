//! Wire framing for notifyd: `method\0class\0priority\0user\0mailbox\0nopt\0
//! message\0`, with class `EVENT`, empty priority/user/mailbox, no options
//! and no file name, exactly as stock's notify() writes an event.

use crate::notify::Outgoing;

const CLASS_AND_EMPTY_FIELDS: &[u8] = b"EVENT\0\0\0\0";
const NO_OPTIONS: &[u8] = b"0\0";

fn overhead(method: &str) -> usize {
    method.len() + 1 + CLASS_AND_EMPTY_FIELDS.len() + NO_OPTIONS.len() + 1
}

/// The datagram for an event's JSON.
pub fn datagram(method: &str, json: &str) -> Vec<u8> {
    let mut d = Vec::with_capacity(overhead(method) + json.len());
    d.extend_from_slice(method.as_bytes());
    d.push(0);
    d.extend_from_slice(CLASS_AND_EMPTY_FIELDS);
    d.extend_from_slice(NO_OPTIONS);
    d.extend_from_slice(json.as_bytes());
    d.push(0);
    d
}

/// What became of an event that had to fit in `max` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Fitted {
    Whole(Vec<u8>),
    ContentCut(Vec<u8>),
    TooBig,
}

/// Frame a notification, cutting messageContent when the datagram would
/// exceed `max`.
pub fn fit_datagram(method: &str, out: &Outgoing, max: usize) -> Fitted {
    let Some(budget) = max.checked_sub(overhead(method)) else {
        return Fitted::TooBig;
    };
    let r = out.render_within(budget);
    if r.json.len() <= budget && !r.content_cut {
        return Fitted::Whole(datagram(method, &r.json));
    }
    match r.fit(budget) {
        Some(json) => Fitted::ContentCut(datagram(method, &json)),
        None => Fitted::TooBig,
    }
}

/// notifyd's receive limit and stock's send limit for a socket buffer size.
pub fn limit_for_buffer(bufsize: usize) -> usize {
    (bufsize / 10).saturating_sub(32).min(65536)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut cfg = crate::config::Config::default();
        cfg.set("event_extra_params", "").unwrap();
        let out = Outgoing {
            kind: crate::event::EventType::MessageNew,
            params: vec![(
                crate::event::Param::MessageContent,
                crate::event::Value::Str("abcdef".into()),
            )],
            cfg: std::sync::Arc::new(cfg),
            send: true,
            missing: Vec::new(),
        };
        let whole = datagram(
            "log",
            "{\"event\":\"MessageNew\",\"messageContent\":\"abcdef\"}",
        );
        assert_eq!(
            fit_datagram("log", &out, whole.len()),
            Fitted::Whole(whole.clone())
        );
        match fit_datagram("log", &out, whole.len() - 2) {
            Fitted::ContentCut(d) => assert!(d.ends_with(b"\"abcd\"}\0")),
            other => panic!("{other:?}"),
        }
        assert_eq!(fit_datagram("log", &out, 20), Fitted::TooBig);
    }
}
