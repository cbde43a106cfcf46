//! The JSON writer: any bytes → `json::lossy` → `render` (and the datagram
//! cut) → output that serde_json parses, with every value round-tripping
//! exactly. Valid UTF-8 comes back byte for byte; invalid UTF-8 comes back as
//! `lossy` made it.
#![no_main]

use arbitrary::Arbitrary;
use cyrus_mboxevent::body::{Body, Span, Value};
use cyrus_mboxevent::catalogue::{Param, ALL_TYPES_AND_COMBINATIONS};
use cyrus_mboxevent::config::Config;
use cyrus_mboxevent::frame::{datagram, fit_datagram, Fitted};
use cyrus_mboxevent::json::{compact, is_valid, lossy, write_str};
use cyrus_mboxevent::outgoing::Outgoing;
use cyrus_mboxevent::render::{render, render_limited};
use cyrus_mboxevent::timestamp::TimestampFormat;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as J;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    text: Vec<u8>,
    address: Vec<u8>,
    items: Vec<Vec<u8>>,
    number: u64,
    seconds: u32,
    limit: u16,
    epoch: bool,
    with_content: bool,
}

fn parse(json: &str) -> serde_json::Map<String, J> {
    match serde_json::from_str::<J>(json) {
        Ok(J::Object(m)) => m,
        other => panic!("not a JSON object: {other:?}\n{json}"),
    }
}

fuzz_target!(|input: Input| {
    let s = lossy(&input.text);
    if let Ok(valid) = std::str::from_utf8(&input.text) {
        assert_eq!(s, valid, "valid UTF-8 must be kept as is");
    } else {
        assert!(s.contains('\u{fffd}'));
    }

    // A lone string literal round-trips exactly.
    let mut lit = String::new();
    write_str(&mut lit, &s);
    assert_eq!(
        serde_json::from_str::<String>(&lit).expect("literal parses"),
        s
    );
    assert!(
        !lit.bytes().any(|b| b < 0x20),
        "raw control character in output"
    );

    // JSON text given by the adapter: checked, then written compactly.
    if is_valid(&s) {
        let c = compact(&s);
        assert!(
            c.is_some(),
            "accepted as valid JSON but cannot be rendered: {s:?}"
        );
        let c = c.unwrap();
        let a: J = serde_json::from_str(&s).unwrap();
        let b: J = serde_json::from_str(&c).expect("compact output parses");
        assert_eq!(a, b);
        assert_eq!(
            compact(&c).as_deref(),
            Some(c.as_str()),
            "compact is not idempotent"
        );
    }

    let kind = ALL_TYPES_AND_COMBINATIONS[input.kind as usize % ALL_TYPES_AND_COMBINATIONS.len()];
    let addr = lossy(&input.address);
    let items: Vec<String> = input.items.iter().map(|i| lossy(i)).collect();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(input.seconds));
    let mut body = Body::default();
    body.set(Param::Timestamp, Value::Time(when));
    body.set_str(Param::ClientAddress, &addr);
    body.set(Param::Uidnext, Value::Int(input.number));
    let first = body.list.len();
    for i in &items {
        let span = body.push(i);
        body.list.push(span);
    }
    let list = Span {
        start: first,
        end: body.list.len(),
    };
    body.set(Param::Midset, Value::List(list));
    body.set_str(Param::Envelope, &s);
    let json_ok = is_valid(&s);
    if json_ok {
        let span = body.push(&s);
        body.set(Param::JmapEmail, Value::Json(span));
    }
    if input.with_content {
        body.set_str(Param::MessageContent, &s);
    }
    let ts = if input.epoch {
        TimestampFormat::Epoch
    } else {
        TimestampFormat::Iso8601
    };

    let r = render(kind, &body, ts);
    assert!(!r.content_cut);
    let m = parse(&r.json);
    assert_eq!(m.keys().next().map(String::as_str), Some("event"));
    assert_eq!(m["event"], kind.name());
    assert!(m["timestamp"].is_string());
    let (host, _) = addr.split_once(';').unwrap_or((&addr, ""));
    assert_eq!(m["clientIP"], host);
    if let Some(port) = m.get("clientPort") {
        assert!(port
            .as_i64()
            .is_some_and(|p| (0..=i64::from(i32::MAX)).contains(&p)));
    }
    assert_eq!(m["uidnext"].as_i64(), Some(input.number as i64));
    let back: Vec<String> = serde_json::from_value(m["vnd.cmu.midset"].clone()).unwrap();
    assert_eq!(back, items);
    assert_eq!(m["vnd.cmu.envelope"], s.as_str());
    if json_ok {
        assert_eq!(
            m["vnd.fastmail.jmapEmail"],
            serde_json::from_str::<J>(&s).unwrap()
        );
    }
    match r.content_at {
        Some(at) => {
            assert!(input.with_content);
            assert!(r.json[at..].starts_with(",\"messageContent\":\""));
            assert_eq!(m["messageContent"], s.as_str());
        }
        None => assert!(!input.with_content),
    }

    // The cut for a datagram: at most `max` bytes, still valid, content a
    // prefix of the original, everything else intact.
    let max = usize::from(input.limit);
    match r.clone().fit(max) {
        Some(cut) => {
            assert!(cut.len() <= max);
            let c = parse(&cut);
            assert_eq!(c["vnd.cmu.envelope"], m["vnd.cmu.envelope"]);
            if let Some(content) = c.get("messageContent") {
                assert!(s.starts_with(content.as_str().unwrap()));
            }
        }
        None => assert!(r.json.len() > max),
    }
    // Rendering only what a datagram can carry gives the same result.
    let limited = render_limited(String::new(), kind, &body, ts, max);
    assert_eq!(limited.content_cut, input.with_content && s.len() > max);
    let lm = parse(&limited.json);
    if let Some(content) = lm.get("messageContent") {
        let c = content.as_str().unwrap();
        assert!(c.len() <= max && s.starts_with(c));
    }

    // And framed as notifyd datagrams.
    let mut cfg = Config::default();
    cfg.set("event_notifier", "log").unwrap();
    cfg.set(
        "event_timestamp_format",
        if input.epoch { "epoch" } else { "iso8601" },
    )
    .unwrap();
    let out = Outgoing::new(kind, Box::new(body.clone()), Arc::new(cfg));
    match fit_datagram("log", &out, max, Vec::new()) {
        Fitted::Whole(d) => {
            assert_eq!(d, datagram("log", &r.json));
            assert!(d.len() <= max);
        }
        Fitted::ContentCut(d) => {
            assert!(d.len() <= max && input.with_content);
            // method, EVENT, three empty fields, "0", then the JSON and a NUL
            let head = b"log\0EVENT\0\0\0\0".len() + 2;
            let json = std::str::from_utf8(&d[head..d.len() - 1]).unwrap();
            parse(json);
        }
        Fitted::TooBig => assert!(datagram("log", &r.json).len() > max),
    }
});
