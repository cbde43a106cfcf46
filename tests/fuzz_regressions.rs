//! Inputs found by the fuzz targets in fuzz/ (and by tests/c/test_hostile.c),
//! kept as plain tests so `cargo test` holds the line without a fuzzer.

use cyrus_mboxevent::json::{compact, is_valid};
use cyrus_mboxevent::transport::dlist::{frame, parse_request, Request};
use std::process::Command;

/// json_writer target: `cmev_event_set_json` accepts what `is_valid` accepts,
/// and the sender writes `compact(text)`, falling back to `null`. Numbers
/// beyond f64 and nesting deeper than serde_json's recursion limit (128)
/// pass the first check and fail the second: the adapter's JSON silently
/// becomes `null` in the event. (jansson refuses both in stock's
/// `json_loads`, so refusing them here is stock-like.)
#[test]
fn json_accepted_by_set_json_can_be_written() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for text in [
        "1e400",
        "-1e400",
        "[1e999]",
        "{\"n\":-1e999}",
        deep.as_str(),
    ] {
        assert!(
            !is_valid(text) || compact(text).is_some(),
            "{:.20}... is accepted as valid JSON but written as null",
            text
        );
    }
}

/// json_writer target (fuzz/seeds/json_writer/regression-float-rounding):
/// serde_json's default float parsing is not correctly rounded, so a number
/// that is not an i64/u64 can come back from `compact` one unit in the
/// last place off: "999999999998999999994" was written as
/// 9.999999999989999e+20 (correct: 9.99999999999e+20). The adapter's
/// jmapEmail/jmapStates numbers must keep their value.
#[test]
fn compact_keeps_number_values() {
    for text in [
        "999999999998999999994",
        "123456789012345678901234567890",
        "0.1",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
    ] {
        let c = compact(text).unwrap();
        assert_eq!(
            text.parse::<f64>().unwrap(),
            c.parse::<f64>().unwrap(),
            "{text} written as {c}"
        );
    }
}

/// dlist_parsers target (fuzz/seeds/dlist_parsers/regression-deep-nesting,
/// 1,500 '(' on the target's 256 kB parser stack): the request parser
/// recurses once per nested list, so 100 kB of '(' overflow an 8 MB stack
/// (cmev-tap parses requests on its main thread, from whoever connects to
/// its socket). Run in a child process: a stack overflow aborts the whole
/// process.
#[test]
fn dlist_request_parser_survives_deep_nesting() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "deep_nesting_child", "--ignored", "--nocapture"])
        .env("CMEV_DEEP_NESTING_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parse_request on 1,000,000 nested '(' died: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by dlist_request_parser_survives_deep_nesting in a child process"]
fn deep_nesting_child() {
    if std::env::var_os("CMEV_DEEP_NESTING_CHILD").is_none() {
        return;
    }
    let mut req = b"NOTIFY %(METHOD log OPTIONS ".to_vec();
    req.resize(req.len() + 1_000_000, b'(');
    // The main thread's stack, as in cmev-tap.
    let r = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || parse_request(&req).map(|r| r.is_ok()))
        .unwrap()
        .join()
        .unwrap();
    // Incomplete (None) or refused; never Ok, never a crash.
    assert_ne!(r, Some(true));
}

/// dlist_parsers target: what frame() writes, parse_request() reads back,
/// for the values at the edges of the atom/literal choice.
#[test]
fn dlist_frame_round_trips_edge_values() {
    for (m, j) in [
        ("NIL", ""),
        ("", "NIL"),
        ("a b", "{\"x\":\"\r\n\"}"),
        ("é", "\0"),
    ] {
        let f = frame(m, j);
        let want = Request {
            method: m.into(),
            class: "EVENT".into(),
            message: j.as_bytes().to_vec(),
        };
        assert_eq!(parse_request(&f), Some(Ok((want, f.len()))), "{m:?} {j:?}");
    }
}
