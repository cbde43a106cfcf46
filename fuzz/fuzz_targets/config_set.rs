//! The option parser, `Config::set`, with random option names and values:
//! never panics; an unknown option changes nothing; an invalid value is an
//! error naming the option and the value, and leaves that option exactly
//! at its default (nothing else changed); a valid value is idempotent.
#![no_main]

use arbitrary::Arbitrary;
use cyrus_mboxevent::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

/// Every option, with the imapd.conf text of its default; `None` for
/// options that take any string.
const OPTIONS: [(&str, Option<&str>); 20] = [
    ("event_notifier", None),
    ("event_groups", Some("message mailbox")),
    ("event_extra_params", Some("timestamp")),
    ("event_exclude_flags", None),
    ("event_exclude_specialuse", None),
    ("event_content_inclusion_mode", Some("standard")),
    ("event_content_size", Some("0")),
    ("event_timestamp_format", Some("iso8601")),
    ("event_max_datagram_size", Some("0")),
    ("notifysocket", None),
    ("configdirectory", None),
    ("servername", None),
    ("service", None),
    ("event_delivery", Some("queued")),
    ("event_queue_size", Some("16384")),
    ("event_queue_overflow", Some("drop-oldest")),
    ("event_queue_block_timeout", Some("100")),
    ("event_queue_max_age", Some("300")),
    ("event_flush_timeout", Some("2000")),
    ("event_dlist_timeout", Some("5000")),
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Val {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Padded(u32, u8),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Text(s) => s.clone(),
            Val::Unsigned(n) => n.to_string(),
            Val::Signed(n) => n.to_string(),
            Val::Padded(n, pad) => format!(
                "{}{n}{}",
                " ".repeat(usize::from(pad % 3)),
                "\t".repeat(usize::from(pad / 85))
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    before: Vec<(u8, Val)>,
    name: Name,
    value: Val,
}

fn name_of(n: &Name) -> String {
    match n {
        Name::Known(i) => OPTIONS[*i as usize % OPTIONS.len()].0.to_owned(),
        Name::Other(s) => s.clone(),
    }
}

fuzz_target!(|input: Input| {
    // Some state first, so "back to the default" is not trivially true.
    let mut cfg = Config::default();
    for (i, v) in input.before.iter().take(8) {
        let _ = cfg.set(OPTIONS[*i as usize % OPTIONS.len()].0, &v.text());
    }
    let option = name_of(&input.name);
    let value = input.value.text();
    let mut after = cfg.clone();
    let known = OPTIONS.iter().find(|(o, _)| *o == option);
    match after.set(&option, &value) {
        Ok(()) => {
            assert!(known.is_some(), "unknown option {option:?} accepted");
            let mut twice = after.clone();
            twice.set(&option, &value).unwrap();
            assert_eq!(twice, after, "setting {option}={value:?} twice differs");
        }
        Err(e @ ConfigError::UnknownOption(_)) => {
            assert!(known.is_none(), "{option} refused as unknown");
            assert_eq!(e, ConfigError::UnknownOption(option.clone()));
            assert_eq!(after, cfg, "an unknown option changed the configuration");
        }
        Err(e @ ConfigError::InvalidValue { .. }) => {
            let (_, default) = known.expect("invalid value for an unknown option");
            let default =
                default.unwrap_or_else(|| panic!("{option} takes any string, refused {value:?}"));
            let text = e.to_string();
            assert!(text.contains(&option) && text.contains(&value), "{text}");
            let mut expected = cfg.clone();
            expected.set(&option, default).unwrap();
            assert_eq!(
                after, expected,
                "{option} not back at its default after {value:?}"
            );
        }
    }
});
