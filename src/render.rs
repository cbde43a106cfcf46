//! An event as stock writes it: `{"event":…}` and then every filled
//! parameter in parameter order, addresses split into host and port, and
//! messageContent last, so that a datagram too small for it can cut it.

use crate::body::{Body, Value};
use crate::catalogue::{EventType, Kind, Param};
use crate::counters::{bump, Counter};
use crate::json::{write_compact, write_str};
use crate::log;
use crate::timestamp::{self, TimestampFormat};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// `,"name":` — parameter names are plain ASCII that needs no escaping
/// (checked by a test).
fn key(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

/// stock `parseint32`: leading decimal digits up to `i32::MAX`, rest ignored.
fn leading_port(s: &str) -> Option<i32> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..digits].parse::<i32>().ok()
}

/// A rendered event. `content_at` is the byte offset of the
/// `,"messageContent":` member, which is always last, so a sender can cut it;
/// `content_cut` says the content was already shortened while rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub json: String,
    pub content_at: Option<usize>,
    pub content_cut: bool,
}

/// Write an event: `"event"` first, then every filled parameter in parameter
/// order.
pub fn render(kind: EventType, body: &Body, ts: TimestampFormat) -> Rendered {
    render_limited(String::with_capacity(512), kind, body, ts, usize::MAX)
}

/// `render` after what `out` holds already (a datagram header: offsets and
/// `fit` then count it too), writing at most the first `content_limit`
/// bytes of messageContent: a datagram of N bytes never needs more, and a
/// 100 MB message then costs N, not 100 MB, to send.
pub fn render_limited(
    mut out: String,
    kind: EventType,
    body: &Body,
    ts: TimestampFormat,
    content_limit: usize,
) -> Rendered {
    out.push_str("{\"event\":");
    write_str(&mut out, kind.name());
    let mut content_at = None;
    let mut content_cut = false;
    for (p, v) in body.params() {
        if p == Param::MessageContent {
            content_at = Some(out.len());
            if let Value::Str(c) = v {
                let c = body.str(*c);
                if c.len() > content_limit {
                    let mut end = content_limit;
                    while !c.is_char_boundary(end) {
                        end -= 1;
                    }
                    key(&mut out, p.json_name());
                    write_str(&mut out, &c[..end]);
                    content_cut = true;
                    continue;
                }
            }
        }
        match (p.kind(), v) {
            (_, Value::Absent) => {}
            (Kind::Address(host_key, port_key), Value::Str(s)) => {
                let s = body.str(*s);
                let (host, port) = match s.split_once(';') {
                    Some((h, rest)) => (h, leading_port(rest)),
                    None => (s, None),
                };
                key(&mut out, host_key);
                write_str(&mut out, host);
                if let Some(port) = port {
                    key(&mut out, port_key);
                    let _ = write!(out, "{port}");
                }
            }
            (_, Value::Foreign(f)) => {
                let at = out.len();
                key(&mut out, p.json_name());
                if !f.text().is_some_and(|j| write_compact(&mut out, &j)) {
                    out.truncate(at);
                    foreign_failed(p);
                }
            }
            (_, v) => {
                key(&mut out, p.json_name());
                match v {
                    // jansson integers are signed: the quota sentinel stays -1.
                    Value::Int(n) => {
                        let _ = write!(out, "{}", *n as i64);
                    }
                    Value::Str(s) => write_str(&mut out, body.str(*s)),
                    Value::List(l) => {
                        out.push('[');
                        for (i, s) in body.strs(*l).enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            write_str(&mut out, s);
                        }
                        out.push(']');
                    }
                    // Validated when set; written in jansson's compact form.
                    Value::Json(j) => {
                        if !write_compact(&mut out, body.str(*j)) {
                            out.push_str("null");
                        }
                    }
                    // Digits and punctuation only: nothing to escape.
                    Value::Time(t) => {
                        out.push('"');
                        timestamp::write(&mut out, *t, ts);
                        out.push('"');
                    }
                    Value::Absent | Value::Foreign(_) => {}
                }
            }
        }
    }
    out.push('}');
    Rendered {
        json: out,
        content_at,
        content_cut,
    }
}

/// A caller's JSON value that could not be dumped is left out: the event
/// still goes, counted, with one log line per process.
pub(crate) fn foreign_failed(p: Param) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    bump(Counter::JsonLeftOut);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        log::error(&format!(
            "mboxevent: {} left out: its JSON could not be written (logged once)",
            p.json_name()
        ));
    }
}

impl Rendered {
    /// The event with messageContent cut so the whole JSON is at most
    /// `max` bytes; `None` if even an empty content does not fit. The cut
    /// never splits an escape sequence or a UTF-8 character.
    pub fn fit(self, max: usize) -> Option<String> {
        let mut json = self.json;
        if json.len() <= max {
            return Some(json);
        }
        let at = self.content_at?;
        let rest = &json[at..];
        // rest = ,"messageContent":"<escaped>"}
        let value_start = at + rest.find(":\"")? + 2;
        let value = &json[value_start..json.len() - 2];
        let budget = max.checked_sub(value_start + 2)?;
        let cut = escaped_prefix_len(value, budget);
        json.truncate(value_start + cut);
        json.push_str("\"}");
        Some(json)
    }
}

/// Longest prefix of an escaped JSON string body that is at most `budget`
/// bytes and ends between two characters.
fn escaped_prefix_len(value: &str, budget: usize) -> usize {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let step = match b[i] {
            b'\\' if b.get(i + 1) == Some(&b'u') => 6,
            b'\\' => 2,
            c if c < 0x80 => 1,
            c if c >= 0xf0 => 4,
            c if c >= 0xe0 => 3,
            _ => 2,
        };
        if i + step > budget {
            break;
        }
        i += step;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Span;
    use proptest::prelude::*;

    const ISO: TimestampFormat = TimestampFormat::Iso8601;

    fn s(x: &str) -> String {
        let mut o = String::new();
        write_str(&mut o, x);
        o
    }

    #[test]
    fn parameter_names_need_no_escaping() {
        for p in crate::catalogue::ALL_PARAMS {
            let names = match p.kind() {
                Kind::Address(h, port) => vec![h, port],
                _ => vec![p.json_name()],
            };
            for n in names {
                assert_eq!(s(n), format!("\"{n}\""));
            }
        }
    }

    fn body(strs: &[(Param, &str)]) -> Body {
        let mut b = Body::default();
        for (p, v) in strs {
            b.set_str(*p, v);
        }
        b
    }

    #[test]
    fn addresses_split_and_tolerate_missing_port() {
        let r = render(
            EventType::Login,
            &body(&[
                (Param::ServerAddress, "127.0.0.1;44713"),
                (Param::ClientAddress, "::1"),
                (Param::Uri, "10.0.0.1;x"),
            ]),
            ISO,
        );
        assert_eq!(
            r.json,
            "{\"event\":\"Login\",\"serverDomain\":\"127.0.0.1\",\"serverPort\":44713,\"clientIP\":\"::1\",\"uri\":\"10.0.0.1;x\"}"
        );
        let r = render(
            EventType::Login,
            &body(&[(Param::ClientAddress, "10.0.0.1;x")]),
            ISO,
        );
        assert_eq!(r.json, "{\"event\":\"Login\",\"clientIP\":\"10.0.0.1\"}");
        let r = render(
            EventType::Login,
            &body(&[(Param::ClientAddress, "h;99999999999")]),
            ISO,
        );
        assert_eq!(r.json, "{\"event\":\"Login\",\"clientIP\":\"h\"}");
    }

    #[test]
    fn integers_are_signed_like_jansson() {
        let mut b = Body::default();
        b.set(Param::QuotaMessages, Value::Int(u64::MAX));
        b.set(Param::Messages, Value::Int(7));
        let r = render(EventType::QuotaChange, &b, ISO);
        assert_eq!(
            r.json,
            "{\"event\":\"QuotaChange\",\"maxMessages\":-1,\"messages\":7}"
        );
    }

    #[test]
    fn lists_and_json_render_from_the_text_buffer() {
        let mut b = Body::default();
        let (x, y) = (b.push("<a@b>"), b.push("NIL"));
        b.list.extend([x, y]);
        b.set(Param::Midset, Value::List(Span { start: 0, end: 2 }));
        let j = b.push("{ \"k\" : [1, \"v\"] }");
        b.set(Param::JmapEmail, Value::Json(j));
        let r = render(EventType::MessageNew, &b, ISO);
        let v: serde_json::Value = serde_json::from_str(&r.json).unwrap();
        assert_eq!(v["vnd.cmu.midset"], serde_json::json!(["<a@b>", "NIL"]));
        assert!(r.json.contains("{\"k\":[1,\"v\"]}"), "{}", r.json);
    }

    #[test]
    fn fit_cuts_content_only() {
        let r = render(
            EventType::MessageNew,
            &body(&[
                (Param::Uri, "imap://h/INBOX"),
                (Param::MessageContent, "ab\u{1}é€cd"),
            ]),
            ISO,
        );
        let head = "{\"event\":\"MessageNew\",\"uri\":\"imap://h/INBOX\",\"messageContent\":\"";
        assert_eq!(r.json, format!("{head}ab\\u0001é€cd\"}}"));
        assert_eq!(r.clone().fit(1000).unwrap(), r.json);
        for max in head.len() + 2..r.json.len() {
            let cut = r.clone().fit(max).unwrap();
            assert!(cut.len() <= max);
            let v: serde_json::Value = serde_json::from_str(&cut).unwrap();
            let got = v["messageContent"].as_str().unwrap();
            assert!("ab\u{1}é€cd".starts_with(got));
        }
        assert_eq!(r.fit(head.len() + 1), None);
        let plain = render(
            EventType::MessageNew,
            &body(&[(Param::Uri, "imap://h/INBOX")]),
            ISO,
        );
        assert_eq!(plain.fit(10), None);
    }

    #[test]
    fn limited_render_writes_only_what_can_fit() {
        let c = "é".repeat(1000);
        let b = body(&[(Param::MessageContent, &c)]);
        let r = render_limited(String::from("prefix"), EventType::MessageNew, &b, ISO, 101);
        assert!(r.content_cut);
        let v: serde_json::Value = serde_json::from_str(&r.json["prefix".len()..]).unwrap();
        assert_eq!(v["messageContent"].as_str().unwrap().len(), 100);
        let full = render(EventType::MessageNew, &b, ISO);
        assert!(!full.content_cut);
    }

    proptest! {
        #[test]
        fn any_bytes_give_valid_json(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut body = Body::default();
            for p in [Param::Envelope, Param::MessageContent] {
                let v = body.push_lossy(&b);
                body.set(p, Value::Str(v));
            }
            let r = render(EventType::MessageNew, &body, ISO);
            let parsed: serde_json::Value = serde_json::from_str(&r.json).unwrap();
            prop_assert!(parsed.get("vnd.cmu.envelope").is_some());
            for max in [r.json.len() / 2, r.json.len() - 1] {
                if let Some(cut) = r.clone().fit(max) {
                    prop_assert!(cut.len() <= max);
                    let _: serde_json::Value = serde_json::from_str(&cut).unwrap();
                }
            }
        }
    }
}
