//! The JSON writer: bytes exactly as stock's jansson `json_dumps(...,
//! JSON_PRESERVE_ORDER|JSON_COMPACT)` writes an event. Compact separators,
//! UTF-8 output, `/` left alone, `"` `\` and the short escapes `\b \f \n \r
//! \t`, every other control character as `\u00XX` in uppercase hex.

use std::fmt::Write;

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
/// or where fewer than sixteen are left: strings are mostly plain, and this
/// scan is the sender's commonest loop.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn any_string_round_trips(x in any::<String>()) {
            let out = s(&x);
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, x);
        }
    }
}
