//! The relay's TOML configuration (relay/README.md documents every key).
//! Unknown keys are refused, so that a misspelt option is an error at start,
//! not an option silently left at its default.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This Cyrus host's name in subjects and event ids (default: the
    /// machine's host name).
    #[serde(default)]
    pub host: Option<String>,
    pub store: StoreConfig,
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub nats: Option<NatsConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Where the counters are written as JSON every second (optional).
    #[serde(default)]
    pub stats_file: Option<PathBuf>,
    /// Put the event id into the event JSON under this key (off: the JSON
    /// stays byte for byte as Cyrus wrote it).
    #[serde(default)]
    pub json_id_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Most bytes on disk; past it the oldest segment goes, its events not
    /// yet delivered counted as dropped.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Events older than this are dropped, counted, delivered or not.
    #[serde(default = "default_max_age", with = "secs")]
    pub max_age: Duration,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// A datagram socket as notifyd's (`notifysocket` in imapd.conf).
    #[serde(default)]
    pub datagram: Option<PathBuf>,
    /// A stream socket speaking `dlist:` (`notifysocket: dlist:PATH`).
    #[serde(default)]
    pub dlist: Option<PathBuf>,
    /// The library's spool directory (`event_spool_dir`): rings of dead
    /// processes are taken over.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Mode of the socket files: Cyrus's user alone by default.
    #[serde(default = "default_socket_mode", deserialize_with = "octal")]
    pub socket_mode: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs, e.g. `nats://127.0.0.1:4222` or `tls://nats.example:4222`.
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// JetStream's window for `Nats-Msg-Id` (when the relay makes the stream).
    #[serde(default = "default_duplicate_window", with = "secs")]
    pub duplicate_window: Duration,
    /// Publishes awaiting JetStream's acknowledgement at once.
    #[serde(default = "default_in_flight")]
    pub in_flight: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The HMAC-SHA256 key, or a file holding it.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_timeout", with = "secs")]
    pub timeout: Duration,
    #[serde(default = "default_retry_min", with = "secs")]
    pub retry_min: Duration,
    #[serde(default = "default_retry_max", with = "secs")]
    pub retry_max: Duration,
    /// A batch still failing this long after its oldest event arrived goes
    /// to the dead-letter file.
    #[serde(default = "default_discard_after", with = "secs")]
    pub discard_after: Duration,
    pub dead_letter: PathBuf,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_max_bytes() -> u64 {
    1 << 30
}
fn default_max_age() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_segment_bytes() -> u64 {
    16 << 20
}
fn default_socket_mode() -> u32 {
    0o600
}
fn default_stream() -> String {
    "CYRUS_EVENTS".into()
}
fn default_subject_prefix() -> String {
    "cyrus.events".into()
}
fn default_duplicate_window() -> Duration {
    Duration::from_secs(600)
}
fn default_in_flight() -> usize {
    512
}
fn default_batch() -> usize {
    100
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_min() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}
fn default_discard_after() -> Duration {
    Duration::from_secs(86400)
}

/// Durations are written in seconds, fractions allowed (`0.5`).
mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)
    }
}

/// A mode as a string of octal digits (`"0660"`).
fn octal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    u32::from_str_radix(&s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not an octal file mode")))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let i = &self.input;
        if i.datagram.is_none() && i.dlist.is_none() && i.spool_dir.is_none() {
            return Err("[input] names no datagram, dlist or spool_dir: nothing to relay".into());
        }
        if self.nats.is_none() && self.webhook.is_none() {
            return Err("neither [nats] nor [webhook]: nowhere to relay to".into());
        }
        if let Some(n) = &self.nats {
            if n.servers.is_empty() {
                return Err("[nats] servers is empty".into());
            }
            if n.password.is_some() && n.password_file.is_some() {
                return Err("[nats] has both password and password_file".into());
            }
            if (n.password.is_some() || n.password_file.is_some()) != n.user.is_some() {
                return Err("[nats] user and password go together".into());
            }
            if n.creds_file.is_some() && n.user.is_some() {
                return Err("[nats] has both creds_file and user".into());
            }
            if n.client_cert.is_some() != n.client_key.is_some() {
                return Err("[nats] client_cert and client_key go together".into());
            }
            if n.in_flight == 0 {
                return Err("[nats] in_flight must be at least 1".into());
            }
            if !subject_token_ok(&n.subject_prefix.replace('.', "_")) {
                return Err("[nats] subject_prefix has a space, '*' or '>'".into());
            }
        }
        if let Some(w) = &self.webhook {
            if w.secret.is_some() == w.secret_file.is_some() {
                return Err("[webhook] needs one of secret and secret_file".into());
            }
            if w.batch == 0 {
                return Err("[webhook] batch must be at least 1".into());
            }
            if w.retry_min.is_zero() || w.retry_max < w.retry_min {
                return Err("[webhook] needs 0 < retry_min <= retry_max".into());
            }
        }
        if self.store.segment_bytes < 4096 || self.store.max_bytes < 2 * self.store.segment_bytes {
            return Err("[store] needs segment_bytes >= 4096 and max_bytes >= 2 segments".into());
        }
        if let Some(k) = &self.json_id_key {
            if k.is_empty() || k.contains(['"', '\\']) || k.chars().any(char::is_control) {
                return Err("json_id_key must be a plain, non-empty key".into());
            }
        }
        Ok(())
    }

    /// The host name events are relayed under.
    pub fn host(&self) -> String {
        match &self.host {
            Some(h) => h.clone(),
            None => hostname(),
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a buffer of the length given; gethostname NUL-terminates
    // within it when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if rc != 0 || end == 0 {
        return "localhost".into();
    }
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A NATS subject token: no separator, wildcard or white space.
pub fn subject_token_ok(t: &str) -> bool {
    !t.is_empty() && !t.contains(['.', '*', '>']) && !t.chars().any(char::is_whitespace)
}

/// A host name or event name as one subject token: dots become `_`.
pub fn subject_token(t: &str) -> String {
    t.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(s).map_err(|e| e.to_string())?;
        c.check().map(|()| c)
    }

    const MIN: &str = "[store]\ndir = \"/x\"\n[input]\ndatagram = \"/s\"\n";

    #[test]
    fn minimal_and_defaults() {
        let c = parse(&format!(
            "{MIN}[nats]\nservers = [\"nats://127.0.0.1:4222\"]\n"
        ))
        .unwrap();
        assert_eq!(c.input.socket_mode, 0o600);
        let n = c.nats.unwrap();
        assert_eq!(n.stream, "CYRUS_EVENTS");
        assert_eq!(n.duplicate_window, Duration::from_secs(600));
    }

    #[test]
    fn mistakes_are_errors() {
        let nats = "[nats]\nservers = [\"nats://h\"]\n";
        for (bad, why) in [
            (format!("{MIN}{nats}colour = 1\n"), "unknown field"),
            (MIN.to_string(), "nowhere"),
            (
                "[store]\ndir = \"/x\"\n[nats]\nservers = [\"n\"]\n".into(),
                "nothing to relay",
            ),
            (format!("{MIN}{nats}user = \"u\"\n"), "go together"),
            (
                format!("{MIN}[webhook]\nurl = \"http://h\"\ndead_letter = \"/d\"\n"),
                "secret",
            ),
            (
                format!("{MIN}{nats}[input]\nsocket_mode = \"999\"\n"),
                "duplicate key",
            ),
            (
                "[store]\ndir = \"/x\"\n[input]\ndatagram = \"/s\"\nsocket_mode = \"8\"\n".into(),
                "octal",
            ),
            (format!("json_id_key = \"a\\\"b\"\n{MIN}{nats}"), "plain"),
        ] {
            let e = parse(&bad).err().unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(subject_token("imap1.example.org"), "imap1_example_org");
        assert!(subject_token_ok("cyrus_events"));
        assert!(!subject_token_ok("a>b"));
    }
}
