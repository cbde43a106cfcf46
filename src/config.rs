//! Configuration, set option by option with the names and spellings of
//! imapd.conf. The adapter passes values in; the library never reads
//! imapd.conf itself. An invalid value is reported and the option keeps its
//! documented default.

use crate::catalogue::{
    mask, EventType, Param, ALL_PARAMS, ALL_TYPES_AND_COMBINATIONS, TYPE_SLOTS,
};
use crate::rules::{expected, Extras, EXTRA_NAMES};
use crate::timestamp::TimestampFormat;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The notifysocket prefix that selects `dlist:` stream connections.
const DLIST: &str = "dlist:";

/// Groups of `event_groups`, in the bit order of stock's BITFIELD.
pub const GROUP_NAMES: [&str; 9] = [
    "message",
    "quota",
    "flags",
    "access",
    "mailbox",
    "subscription",
    "calendar",
    "applepushservice",
    // Cyrus 3.8 on: MessagesUnscheduled.
    "jmap",
];

/// The largest datagram this library sends, whatever the socket buffer or
/// `event_max_datagram_size`: stock's cap, which notifyd reads at most.
pub(crate) const DATAGRAM_MAX: usize = 65536;

/// `event_content_inclusion_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentMode {
    Standard,
    Message,
    Header,
    Body,
    HeaderBody,
}

/// `event_queue_overflow`: what `notify` does when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Discard the oldest queued event to make room (the default: never
    /// waits, keeps what a push gateway cares about most, the latest).
    DropOldest,
    /// Discard the new event.
    DropNewest,
    /// Wait for room up to `event_queue_block_timeout`, then drop the new event.
    Block,
}

/// `event_delivery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queue and send from a background thread (the default).
    Queued,
    /// Send on the caller's thread, as stock does, on a persistent socket.
    Sync,
    /// Leave each event in the process's spool ring for cmev-relay, with no
    /// sender thread; sent as `Queued` when no relay reads the ring.
    Relay,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `event_notifier`: the notifyd method; `None` turns events off.
    pub notifier: Option<String>,
    /// Bitmask of enabled event types, from `event_groups`.
    pub enabled_types: u32,
    /// From `event_extra_params`.
    pub extra: Extras,
    pub exclude_flags: Vec<String>,
    pub exclude_specialuse: Vec<String>,
    pub content_mode: ContentMode,
    pub content_size: u64,
    pub timestamp_format: TimestampFormat,
    /// `notifysocket`; `None` means `<configdirectory>/socket/notify`.
    pub notifysocket: Option<String>,
    pub configdirectory: String,
    pub servername: String,
    /// The cyrus.conf service name (Cyrus's `config_ident`).
    pub service: String,
    /// Largest datagram sent, in bytes; 0 derives it from SO_SNDBUF like stock.
    pub max_datagram: usize,
    pub delivery: Delivery,
    /// Events the queue holds; read when the first event is queued.
    pub queue_size: usize,
    pub overflow: Overflow,
    pub block_timeout: Duration,
    /// How long an event may wait for an absent receiver before it is dropped.
    pub max_age: Duration,
    /// How long process exit waits for queued events to go out.
    pub flush_timeout: Duration,
    /// Bound on one `dlist:` exchange (connect, send, reply).
    pub dlist_timeout: Duration,
    /// `event_spool_dir`; `None` means `<configdirectory>/events`.
    pub spool_dir: Option<String>,
    /// Bytes of each process's spool ring (`event_spool_size`, in KB); 0
    /// keeps queued events in memory only.
    pub spool_size: usize,
    /// `rules::expected` for every type and parameter, as bitmasks by
    /// `EventType::slot()`: the hot path asks it many times per event.
    expected: [u128; TYPE_SLOTS],
}

pub const DEFAULT_GROUPS: &str = "message mailbox";
pub const DEFAULT_EXTRA: &str = "timestamp";
pub const DEFAULT_SPECIALUSE: &str = "\\Junk";

impl Default for Config {
    fn default() -> Self {
        Config {
            notifier: None,
            enabled_types: groups_to_types(parse_words(DEFAULT_GROUPS, &GROUP_NAMES).unwrap_or(0)),
            extra: Extras(parse_words(DEFAULT_EXTRA, &EXTRA_NAMES).unwrap_or(0)),
            exclude_flags: Vec::new(),
            exclude_specialuse: split_words(DEFAULT_SPECIALUSE),
            content_mode: ContentMode::Standard,
            content_size: 0,
            timestamp_format: TimestampFormat::Iso8601,
            notifysocket: None,
            configdirectory: "/var/lib/cyrus".into(),
            servername: String::new(),
            service: String::new(),
            max_datagram: 0,
            delivery: Delivery::Queued,
            queue_size: 16384,
            overflow: Overflow::DropOldest,
            block_timeout: Duration::from_millis(100),
            max_age: Duration::from_secs(300),
            flush_timeout: Duration::from_secs(2),
            dlist_timeout: Duration::from_secs(5),
            spool_dir: None,
            spool_size: 1024 * 1024,
            expected: [0; TYPE_SLOTS],
        }
        .with_expected_table()
    }
}

/// Why an option could not be set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    UnknownOption(String),
    InvalidValue {
        option: String,
        value: String,
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownOption(o) => write!(f, "unknown option '{o}'"),
            ConfigError::InvalidValue {
                option,
                value,
                reason,
            } => {
                write!(
                    f,
                    "invalid value '{value}' for {option}: {reason}; using the default"
                )
            }
        }
    }
}

fn split_words(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_owned).collect()
}

/// A BITFIELD value: whitespace-separated words, matched case-sensitively as
/// stock does. Returns the first unknown word on error.
fn parse_words(s: &str, names: &[&str]) -> Result<u32, String> {
    s.split_ascii_whitespace()
        .try_fold(0u32, |acc, w| match names.iter().position(|n| *n == w) {
            Some(i) => Ok(acc | 1 << i),
            None => Err(w.to_owned()),
        })
}

fn groups_to_types(groups: u32) -> u32 {
    const BY_GROUP: [u32; GROUP_NAMES.len()] = [
        mask::MESSAGE,
        mask::QUOTA,
        mask::FLAGS,
        mask::ACCESS,
        mask::MAILBOX,
        mask::SUBSCRIPTION,
        mask::CALENDAR,
        mask::APPLEPUSHSERVICE,
        mask::JMAP,
    ];
    BY_GROUP
        .iter()
        .enumerate()
        .filter(|(i, _)| groups & (1 << i) != 0)
        .fold(0, |acc, (_, m)| acc | m)
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| "expected a non-negative integer".to_owned())
}

/// A size in bytes as Cyrus 3.10's `config_getbytesize` reads it: digits,
/// then optionally `B`, `K`, `M` or `G` (powers of 1024, any case).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err("expected bytes, optionally with a unit B, K, M or G".to_owned()),
    };
    parse_size(digits)?
        .checked_mul(1 << shift)
        .ok_or_else(|| "too large".to_owned())
}

/// An integer option within `range`.
fn parse_in(s: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    match parse_size(s) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "expected an integer from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

impl Config {
    fn with_expected_table(mut self) -> Self {
        let mut table = [0u128; TYPE_SLOTS];
        for t in ALL_TYPES_AND_COMBINATIONS {
            table[t.slot()] = ALL_PARAMS
                .iter()
                .filter(|p| expected(t, **p, self.extra))
                .fold(0, |m, p| m | p.bit());
        }
        self.expected = table;
        self
    }

    /// Whether events of type `t` carry parameter `p` (stock's
    /// `mboxevent_expected_param`), from the table.
    pub fn expects(&self, t: EventType, p: Param) -> bool {
        self.expected[t.slot()] & p.bit() != 0
    }

    /// All parameters events of type `t` carry, as a set (`Param::bit`).
    pub fn expected_mask(&self, t: EventType) -> u128 {
        self.expected[t.slot()]
    }

    /// Where datagrams (or, with a `dlist:` prefix, stream connections) go.
    pub fn socket_path(&self) -> Cow<'_, str> {
        match &self.notifysocket {
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(format!("{}/socket/notify", self.configdirectory)),
        }
    }

    /// The directory of the processes' spool rings.
    pub fn spool_dir(&self) -> String {
        match &self.spool_dir {
            Some(d) => d.clone(),
            None => format!("{}/events", self.configdirectory),
        }
    }

    /// Where events go: the socket path without its `dlist:` prefix, and
    /// whether it had one (stream connections, not datagrams), as stock's
    /// notify() decides on the path it would use.
    pub fn target(&self) -> (String, bool) {
        let p = self.socket_path();
        match p.strip_prefix(DLIST) {
            Some(rest) => (rest.to_owned(), true),
            None => (p.into_owned(), false),
        }
    }

    /// `target().1` without building the path: whether events go over
    /// `dlist:` stream connections, which carry an event whole.
    pub fn is_dlist(&self) -> bool {
        match &self.notifysocket {
            Some(p) => p.starts_with(DLIST),
            None => self.configdirectory.starts_with(DLIST),
        }
    }

    /// Set one option. On an invalid value the option is reset to its
    /// default and the error says so.
    pub fn set(&mut self, option: &str, value: &str) -> Result<(), ConfigError> {
        let r = self.set_value(option, value);
        *self = std::mem::take(self).with_expected_table();
        r
    }

    /// Parse and store one option. On an invalid value the option takes
    /// the value it has in `Config::default()` and the error says why.
    fn set_value(&mut self, option: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.trim();
        let d = Config::default();
        let r: Result<(), String> = match option {
            "event_notifier" => {
                self.notifier = (!v.is_empty()).then(|| v.to_owned());
                Ok(())
            }
            "event_groups" => parse_words(value, &GROUP_NAMES)
                .map(|g| self.enabled_types = groups_to_types(g))
                .map_err(|w| {
                    self.enabled_types = d.enabled_types;
                    format!("unknown group '{w}'")
                }),
            "event_extra_params" => parse_words(value, &EXTRA_NAMES)
                .map(|x| self.extra = Extras(x))
                .map_err(|w| {
                    self.extra = d.extra;
                    format!("unknown parameter '{w}'")
                }),
            "event_exclude_flags" => {
                self.exclude_flags = split_words(value);
                Ok(())
            }
            "event_exclude_specialuse" => {
                self.exclude_specialuse = split_words(value);
                Ok(())
            }
            "event_content_inclusion_mode" => choose(
                &mut self.content_mode,
                d.content_mode,
                v,
                &[
                    ("standard", ContentMode::Standard),
                    ("message", ContentMode::Message),
                    ("header", ContentMode::Header),
                    ("body", ContentMode::Body),
                    ("headerbody", ContentMode::HeaderBody),
                ],
            ),
            "event_timestamp_format" => choose(
                &mut self.timestamp_format,
                d.timestamp_format,
                v,
                &[
                    ("iso8601", TimestampFormat::Iso8601),
                    ("epoch", TimestampFormat::Epoch),
                ],
            ),
            "event_delivery" => choose(
                &mut self.delivery,
                d.delivery,
                v,
                &[
                    ("queued", Delivery::Queued),
                    ("sync", Delivery::Sync),
                    ("relay", Delivery::Relay),
                ],
            ),
            "event_queue_overflow" => choose(
                &mut self.overflow,
                d.overflow,
                v,
                &[
                    ("drop-oldest", Overflow::DropOldest),
                    ("drop-newest", Overflow::DropNewest),
                    ("block", Overflow::Block),
                ],
            ),
            "event_content_size" => match parse_bytes(v) {
                Ok(n) => {
                    self.content_size = n;
                    Ok(())
                }
                Err(e) => {
                    self.content_size = d.content_size;
                    Err(e)
                }
            },
            "event_max_datagram_size" => match parse_size(v) {
                Ok(n) if n == 0 || (64..=DATAGRAM_MAX as u64).contains(&n) => {
                    self.max_datagram = n as usize;
                    Ok(())
                }
                _ => {
                    self.max_datagram = d.max_datagram;
                    Err("expected 0 (from SO_SNDBUF) or 64..65536".into())
                }
            },
            "event_queue_size" => {
                number(&mut self.queue_size, d.queue_size, v, 16..=4_194_304, |n| {
                    n as usize
                })
            }
            "event_queue_block_timeout" => number(
                &mut self.block_timeout,
                d.block_timeout,
                v,
                0..=60_000,
                Duration::from_millis,
            ),
            "event_queue_max_age" => number(
                &mut self.max_age,
                d.max_age,
                v,
                1..=86_400,
                Duration::from_secs,
            ),
            "event_flush_timeout" => number(
                &mut self.flush_timeout,
                d.flush_timeout,
                v,
                0..=600_000,
                Duration::from_millis,
            ),
            "event_dlist_timeout" => number(
                &mut self.dlist_timeout,
                d.dlist_timeout,
                v,
                1..=600_000,
                Duration::from_millis,
            ),
            "event_spool_dir" => {
                self.spool_dir = (!v.is_empty()).then(|| v.to_owned());
                Ok(())
            }
            "event_spool_size" => {
                number(&mut self.spool_size, d.spool_size, v, 0..=1_048_576, |kb| {
                    kb as usize * 1024
                })
            }
            "notifysocket" => {
                self.notifysocket = (!v.is_empty()).then(|| v.to_owned());
                Ok(())
            }
            "configdirectory" => {
                self.configdirectory = v.to_owned();
                Ok(())
            }
            "servername" => {
                self.servername = v.to_owned();
                Ok(())
            }
            "service" => {
                self.service = v.to_owned();
                Ok(())
            }
            _ => return Err(ConfigError::UnknownOption(option.to_owned())),
        };
        r.map_err(|reason| ConfigError::InvalidValue {
            option: option.to_owned(),
            value: value.to_owned(),
            reason,
        })
    }
}

/// An enumerated option: one of `choices` by name, else the default.
fn choose<T: Copy>(
    field: &mut T,
    default: T,
    v: &str,
    choices: &[(&str, T)],
) -> Result<(), String> {
    match choices.iter().find(|(name, _)| *name == v) {
        Some((_, x)) => {
            *field = *x;
            Ok(())
        }
        None => {
            *field = default;
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            Err(format!("expected one of: {}", names.join(", ")))
        }
    }
}

/// An integer option within `range`, converted; else the default.
fn number<T>(
    field: &mut T,
    default: T,
    v: &str,
    range: std::ops::RangeInclusive<u64>,
    conv: impl Fn(u64) -> T,
) -> Result<(), String> {
    match parse_in(v, range) {
        Ok(n) => {
            *field = conv(n);
            Ok(())
        }
        Err(r) => {
            *field = default;
            Err(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::EventType as T;
    use crate::rules::Extra;

    #[test]
    fn defaults_match_stock() {
        let c = Config::default();
        assert!(c.notifier.is_none());
        assert!(c.enabled_types & T::MessageNew as u32 != 0);
        assert!(c.enabled_types & T::MailboxCreate as u32 != 0);
        assert!(c.enabled_types & T::FlagsSet as u32 == 0);
        assert!(c.enabled_types & T::Login as u32 == 0);
        assert!(c.extra.has(Extra::Timestamp));
        assert!(!c.extra.has(Extra::Service));
        assert_eq!(c.exclude_specialuse, vec!["\\Junk".to_string()]);
        assert_eq!(c.socket_path(), "/var/lib/cyrus/socket/notify");
    }

    #[test]
    fn every_extra_word_maps_to_its_bit() {
        for (i, w) in EXTRA_NAMES.iter().enumerate() {
            let mut c = Config::default();
            c.set("event_extra_params", w).unwrap();
            assert_eq!(c.extra, Extras(1 << i), "{w}");
        }
        assert_eq!(EXTRA_NAMES[Extra::ThreadId as usize], "vnd.cmu.threadid");
        assert_eq!(EXTRA_NAMES[Extra::Midset as usize], "vnd.cmu.midset");
    }

    #[test]
    fn access_group_includes_acl_change() {
        let mut c = Config::default();
        c.set("event_groups", "access").unwrap();
        assert_eq!(
            c.enabled_types,
            T::Login as u32 | T::Logout as u32 | T::AclChange as u32
        );
        c.set("event_groups", "").unwrap();
        assert_eq!(c.enabled_types, 0);
    }

    #[test]
    fn invalid_values_name_option_and_value_and_restore_default() {
        let mut c = Config::default();
        c.set("event_groups", "quota").unwrap();
        let e = c.set("event_groups", "message bogus").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'message bogus' for event_groups: unknown group 'bogus'; using the default"
        );
        assert_eq!(c.enabled_types, Config::default().enabled_types);

        c.set("event_extra_params", "service").unwrap();
        let e = c.set("event_extra_params", "Timestamp").unwrap_err();
        assert!(e.to_string().contains("unknown parameter 'Timestamp'"));
        assert!(c.extra.has(Extra::Timestamp) && !c.extra.has(Extra::Service));

        c.set("event_content_size", "100").unwrap();
        for (v, n) in [
            ("12k", 12 << 10),
            ("1M", 1 << 20),
            ("3g", 3 << 30),
            ("7B", 7),
        ] {
            c.set("event_content_size", v).unwrap();
            assert_eq!(c.content_size, n);
        }
        for bad in [
            "12x",
            "-1",
            "",
            "1KB",
            "18446744073709551616",
            "17179869184G",
        ] {
            assert!(c.set("event_content_size", bad).is_err(), "{bad}");
            assert_eq!(c.content_size, 0);
        }
        c.set("event_content_size", "18446744073709551615").unwrap();

        assert!(c.set("event_content_inclusion_mode", "full").is_err());
        assert_eq!(c.content_mode, ContentMode::Standard);
        assert!(c.set("event_timestamp_format", "rfc822").is_err());
        assert!(c.set("event_max_datagram_size", "10").is_err());
        for (o, bad) in [
            ("event_delivery", "async"),
            ("event_queue_overflow", "drop"),
            ("event_queue_size", "8"),
            ("event_queue_block_timeout", "-5"),
            ("event_queue_max_age", "0"),
            ("event_flush_timeout", "soon"),
            ("event_dlist_timeout", "0"),
        ] {
            let e = c.set(o, bad).unwrap_err().to_string();
            assert!(e.contains(o) && e.contains(bad), "{e}");
        }
        let d = Config::default();
        assert_eq!(
            (c.delivery, c.overflow, c.queue_size, c.block_timeout),
            (d.delivery, d.overflow, d.queue_size, d.block_timeout)
        );
        assert_eq!(
            (c.max_age, c.flush_timeout, c.dlist_timeout),
            (d.max_age, d.flush_timeout, d.dlist_timeout)
        );
        c.set("event_delivery", "relay").unwrap();
        assert_eq!(c.delivery, Delivery::Relay);
        c.set("event_queue_overflow", "block").unwrap();
        c.set("event_queue_block_timeout", "250").unwrap();
        assert_eq!(
            (c.overflow, c.block_timeout),
            (Overflow::Block, Duration::from_millis(250))
        );
        assert_eq!(
            c.set("event_nonsense", "1").unwrap_err(),
            ConfigError::UnknownOption("event_nonsense".into())
        );
    }

    #[test]
    fn notifier_and_socket() {
        let mut c = Config::default();
        c.set("event_notifier", "log").unwrap();
        assert_eq!(c.notifier.as_deref(), Some("log"));
        c.set("event_notifier", "").unwrap();
        assert!(c.notifier.is_none());
        c.set("configdirectory", "/tmp/x").unwrap();
        assert_eq!(c.socket_path(), "/tmp/x/socket/notify");
        assert_eq!(c.target(), ("/tmp/x/socket/notify".into(), false));
        c.set("notifysocket", "dlist:/tmp/n").unwrap();
        assert_eq!(c.socket_path(), "dlist:/tmp/n");
        assert_eq!(c.target(), ("/tmp/n".into(), true));
    }

    #[test]
    fn is_dlist_agrees_with_target() {
        for (dir, socket) in [
            ("/tmp/x", None),
            ("dlist:/tmp/x", None),
            ("/tmp/x", Some("/tmp/n")),
            ("dlist:/tmp/x", Some("/tmp/n")),
            ("/tmp/x", Some("dlist:/tmp/n")),
        ] {
            let mut c = Config::default();
            c.set("configdirectory", dir).unwrap();
            if let Some(s) = socket {
                c.set("notifysocket", s).unwrap();
            }
            assert_eq!(c.is_dlist(), c.target().1, "{dir} {socket:?}");
        }
    }
}
