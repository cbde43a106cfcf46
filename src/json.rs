//! The JSON writer: bytes exactly as stock's jansson `json_dumps(...,
//! JSON_PRESERVE_ORDER|JSON_COMPACT)` writes an event. Compact separators,
//! UTF-8 output, `/` left alone, `"` `\` and the short escapes `\b \f \n \r
//! \t`, every other control character as `\u00XX` in uppercase hex.

use crate::config::TimestampFormat;
use crate::counters::{bump, Counter};
use crate::event::{Body, EventType, Kind, Param, Value};
use crate::{log, timestamp};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes that a JSON string cannot hold as they are.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Append `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = next_escaped(bytes, 0);
    while i < bytes.len() {
        let b = bytes[i];
        // Only ASCII bytes are escaped, so `start` and `i` fall between
        // characters.
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{:04X}", b);
            }
        }
        start = i + 1;
        i = next_escaped(bytes, start);
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Where the next byte from `from` on that needs escaping is, or the length.
fn next_escaped(bytes: &[u8], from: usize) -> usize {
    // SAFETY: SSE2 is part of the x86_64 baseline.
    #[cfg(target_arch = "x86_64")]
    let from = unsafe { skip_plain(bytes, from) };
    bytes[from..]
        .iter()
        .position(|&b| ESCAPED[b as usize])
        .map_or(bytes.len(), |k| from + k)
}

/// From `i` on, sixteen bytes at a time: where the first byte to escape is,
/// or where fewer than sixteen are left. Strings are mostly plain, and byte
/// by byte this scan was an eighth of the sender's time in the throughput
/// bench.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let control = _mm_set1_epi8(0x1f);
    while i + 16 <= bytes.len() {
        // SAFETY: the 16 bytes at `i` are within `bytes`; the load needs no
        // alignment.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>()) };
        // A byte is below 0x20 when its unsigned max with 0x1f is 0x1f.
        let below = _mm_cmpeq_epi8(_mm_max_epu8(v, control), control);
        let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
        let mask = _mm_movemask_epi8(_mm_or_si128(below, special)) as u32;
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    i
}

/// Bytes as a string: invalid UTF-8 becomes U+FFFD, so the key stays.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `text` is one JSON value that `compact` can write back: parsed
/// as `compact` parses it, so numbers beyond f64 and nesting deeper than
/// serde_json's limit are refused here (as jansson refuses them) instead of
/// turning into `null` when the event is written.
pub fn is_valid(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok()
}

/// Append JSON text compactly, in jansson's form, keeping key order; false,
/// with nothing appended, if `text` is not valid JSON.
pub fn write_compact(out: &mut String, text: &str) -> bool {
    if already_compact(text) {
        // Validated without building a tree: the text is what
        // `write_value` would write for it.
        let valid = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        if valid {
            out.push_str(text);
        }
        return valid;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => {
            write_value(out, &v);
            true
        }
        Err(_) => false,
    }
}

/// `write_compact` into a new string; `None` if `text` is not valid JSON.
pub fn compact(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    write_compact(&mut out, text).then_some(out)
}

/// Nesting up to which `already_compact` vouches for a text: well within
/// serde_json's limit, which the tree-less validation does not apply.
const PLAIN_DEPTH: usize = 64;

/// Whether `text`, if valid JSON, is already byte for byte what parsing and
/// `write_value` would make of it, as a jansson dump of an object of strings
/// (jmapEmail, jmapStates) is: no whitespace between tokens, no escape, no
/// control character, no number (their spelling may change), no key twice
/// in an object (the tree keeps the last), shallow nesting. A `false` only
/// means taking the long way.
fn already_compact(text: &str) -> bool {
    let b = text.as_bytes();
    // Key spans of the open objects; usize::MAX marks where each begins.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                let Some(len) = b[start..].iter().position(|&c| c == b'"') else {
                    return false;
                };
                let end = start + len;
                if b[start..end].iter().any(|&c| c == b'\\' || c < 0x20) {
                    return false;
                }
                if b.get(end + 1) == Some(&b':') {
                    let object = keys
                        .iter()
                        .rposition(|k| k.0 == usize::MAX)
                        .map_or(0, |m| m + 1);
                    if keys[object..]
                        .iter()
                        .any(|&(s, e)| b[s..e] == b[start..end])
                    {
                        return false;
                    }
                    keys.push((start, end));
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > PLAIN_DEPTH {
                    return false;
                }
                if b[i] == b'{' {
                    keys.push((usize::MAX, 0));
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if b[i] == b'}' {
                    if let Some(m) = keys.iter().rposition(|k| k.0 == usize::MAX) {
                        keys.truncate(m);
                    }
                }
            }
            b',' | b':' | b't' | b'r' | b'u' | b'e' | b'f' | b'a' | b'l' | b's' | b'n' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

fn write_value(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            let _ = write!(out, "{n}");
        }
        J::String(s) => write_str(out, s),
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x);
            }
            out.push(']');
        }
        J::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, x);
            }
            out.push('}');
        }
    }
}

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
fn foreign_failed(p: Param) {
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
    use proptest::prelude::*;

    const ISO: TimestampFormat = TimestampFormat::Iso8601;

    fn s(x: &str) -> String {
        let mut o = String::new();
        write_str(&mut o, x);
        o
    }

    #[test]
    fn escapes_like_jansson() {
        assert_eq!(s("a/b"), "\"a/b\"");
        assert_eq!(s("\"\\"), "\"\\\"\\\\\"");
        assert_eq!(s("\u{8}\u{c}\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
        assert_eq!(s("\u{1}\u{1f}\u{0}"), "\"\\u0001\\u001F\\u0000\"");
        assert_eq!(s("\u{7f}é€😀"), "\"\u{7f}é€😀\"");
        assert_eq!(s("alice\tlrs\t"), "\"alice\\tlrs\\t\"");
    }

    #[test]
    fn every_character_is_escaped_as_the_table_says_wherever_it_stands() {
        // Long enough for two 16-byte steps of the scan and a tail.
        let plain = "abcdefghijklmnopqrstuvw\u{e9}xyz0123456789ABCDEFGHIJ";
        for c in (0u8..0x80).map(char::from).chain(['\u{e9}', '\u{20ac}']) {
            for at in (0..=plain.len()).filter(|&at| plain.is_char_boundary(at)) {
                let text = format!("{}{c}{}", &plain[..at], &plain[at..]);
                // One character at a time, as the table says.
                let mut want = String::from('"');
                for ch in text.chars() {
                    match ch {
                        '"' => want.push_str("\\\""),
                        '\\' => want.push_str("\\\\"),
                        '\n' => want.push_str("\\n"),
                        '\r' => want.push_str("\\r"),
                        '\t' => want.push_str("\\t"),
                        '\u{8}' => want.push_str("\\b"),
                        '\u{c}' => want.push_str("\\f"),
                        c if (c as u32) < 0x20 => want.push_str(&format!("\\u{:04X}", c as u32)),
                        c => want.push(c),
                    }
                }
                want.push('"');
                assert_eq!(s(&text), want, "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn parameter_names_need_no_escaping() {
        for p in crate::event::ALL_PARAMS {
            let names = match p.kind() {
                Kind::Address(h, port) => vec![h, port],
                _ => vec![p.json_name()],
            };
            for n in names {
                assert_eq!(s(n), format!("\"{n}\""));
            }
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(lossy(b"caf\xe9 ok"), "caf\u{fffd} ok");
    }

    /// What the tree makes of `text`, never taking the short way.
    fn via_tree(text: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let mut out = String::new();
        write_value(&mut out, &v);
        Some(out)
    }

    #[test]
    fn compact_keeps_order_and_style() {
        assert_eq!(
            compact("{ \"z\" : [1, 2.5, null, true], \"a\" : \"x/\\u0001\" }").as_deref(),
            Some("{\"z\":[1,2.5,null,true],\"a\":\"x/\\u0001\"}")
        );
        assert_eq!(compact("{"), None);
        assert_eq!(compact(""), None);
    }

    #[test]
    fn the_short_way_writes_what_the_tree_writes() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases = [
            r#"{"id":"M1","threadId":"T2","from":[{"name":"Sender é","email":"s@x.org"}],"cc":null,"ok":true}"#,
            r#"{"Mailbox":"5","Email":"7"}"#,
            r#"{"a":"1","a":"2"}"#,
            r#"{"a":{"b":"1"},"b":{"a":"2","b":"3"}}"#,
            r#"{"a":{"b":"1","b":"2"}}"#,
            r#"{"a":1,"b":-2.50,"c":1E3}"#,
            r#"{"a" :"x"}"#,
            r#"["x\/y","é","
"]"#,
            r#"{"a":"b"} x"#,
            r#"{"a":"b""#,
            r#"{"a":tru}"#,
            r#"[,]"#,
            "[\"tab\there\"]",
            "{\"k\":\"\u{7f}/\"}",
            &deep,
            "",
        ];
        for text in cases {
            assert_eq!(compact(text), via_tree(text), "{text}");
        }
        assert!(
            already_compact(cases[0]) && already_compact(cases[1]) && already_compact(cases[3])
        );
        assert!(
            !already_compact(cases[2]) && !already_compact(cases[4]) && !already_compact(cases[5])
        );
        assert!(!already_compact(&deep));
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
        b.set(
            Param::Midset,
            Value::List(crate::event::Span { start: 0, end: 2 }),
        );
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
        fn any_string_round_trips(x in any::<String>()) {
            let out = s(&x);
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, x);
        }

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
