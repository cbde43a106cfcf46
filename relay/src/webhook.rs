//! The webhook output: stored events POSTed in batches of JSON, signed with
//! HMAC-SHA256 over `<timestamp>.<body>`; a batch is retried with doubling
//! waits until the webhook answers 2xx, or until its oldest event is
//! `discard_after` old, when it goes to the dead-letter file. The store's
//! cursor moves past a batch only once it is delivered or dead-lettered
//! (and the dead letter fsync'd), so a batch is never lost between them.

use crate::config::WebhookConfig;
use crate::event::with_id;
use crate::log;
use crate::stats::{add, STATS};
use crate::store::{Event, Reader, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const CURSOR: &str = "webhook";
pub const SIGNATURE_HEADER: &str = "X-Cmev-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Cmev-Timestamp";

pub struct Webhook {
    cfg: WebhookConfig,
    host: String,
    id_key: Option<String>,
    store: Arc<Store>,
    secret: Vec<u8>,
    client: reqwest::Client,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The signature a receiver checks: hex HMAC-SHA256 of `<ts>.<body>`.
pub fn sign(secret: &[u8], ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// `{"host":..,"events":[{"id":..,"event":..,"received_ms":..,"payload":<JSON>}]}`,
/// each payload the event JSON as stored (with the id inside only if asked).
pub fn body(host: &str, events: &[Event], id_key: Option<&str>) -> Vec<u8> {
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut b = Vec::with_capacity(events.iter().map(|e| e.json.len() + 128).sum());
    write!(b, "{{\"host\":{},\"events\":[", q(host)).expect("writes to a Vec");
    for (i, e) in events.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(
            b,
            "{sep}{{\"id\":{},\"event\":{},\"received_ms\":{},\"payload\":",
            q(&e.id),
            q(&e.name),
            e.received_ms
        )
        .expect("writes to a Vec");
        b.extend_from_slice(&with_id(&e.json, id_key, &e.id));
        b.push(b'}');
    }
    b.extend_from_slice(b"]}");
    b
}

impl Webhook {
    pub fn new(
        cfg: WebhookConfig,
        host: String,
        id_key: Option<String>,
        store: Arc<Store>,
    ) -> Result<Webhook, String> {
        let secret = match (&cfg.secret, &cfg.secret_file) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("[webhook] secret_file {}: {e}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .as_bytes()
                .to_vec(),
            (None, None) => unreachable!("checked with the configuration"),
        };
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("cmev-relay/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("[webhook] ca_file {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("[webhook] ca_file {}: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        let client = b.build().map_err(|e| format!("[webhook]: {e}"))?;
        Ok(Webhook {
            cfg,
            host,
            id_key,
            store,
            secret,
            client,
        })
    }

    /// Deliver for ever, one batch at a time, from `reader` (made by
    /// `main` before anything is stored or removed).
    pub async fn run(self, mut reader: Reader) {
        let mut batch: Vec<Event> = Vec::new();
        loop {
            batch.extend(std::iter::from_fn(|| reader.next()).take(self.cfg.batch));
            if batch.is_empty() {
                reader.wait().await;
                continue;
            }
            self.deliver(&batch).await;
            self.store.ack(CURSOR, batch[batch.len() - 1].seq + 1);
            batch.clear();
        }
    }

    /// Returns once `batch` is delivered or dead-lettered.
    async fn deliver(&self, batch: &[Event]) {
        let body = body(&self.host, batch, self.id_key.as_deref());
        let mut wait = self.cfg.retry_min;
        loop {
            let failure = match self.post(&body).await {
                Ok(()) => {
                    add(&STATS.webhook_delivered, batch.len() as u64);
                    return;
                }
                Err(f) => f,
            };
            add(&STATS.webhook_errors, 1);
            let age = Duration::from_millis(now_ms().saturating_sub(batch[0].received_ms));
            if age >= self.cfg.discard_after {
                match self.dead_letter(&body, &failure) {
                    Ok(()) => {
                        add(&STATS.webhook_dead_lettered, batch.len() as u64);
                        log::error(&format!(
                            "webhook {}: {} events written to {} after {:.0} s of failures \
                             (last: {failure})",
                            self.cfg.url,
                            batch.len(),
                            self.cfg.dead_letter.display(),
                            age.as_secs_f64()
                        ));
                        return;
                    }
                    Err(e) => log::error_limited(
                        "dead-letter",
                        &format!(
                            "{}: {e}; the batch stays in the store and is retried",
                            self.cfg.dead_letter.display()
                        ),
                    ),
                }
            } else {
                log::error_limited(
                    "webhook",
                    &format!(
                        "webhook {}: {failure}; retrying {} events in {:.1} s",
                        self.cfg.url,
                        batch.len(),
                        wait.as_secs_f64()
                    ),
                );
            }
            // Not past the moment the batch is due to be dead-lettered.
            let due = self.cfg.discard_after.saturating_sub(age);
            tokio::time::sleep(wait.min(due.max(Duration::from_millis(10)))).await;
            wait = (wait * 2).min(self.cfg.retry_max);
        }
    }

    async fn post(&self, body: &[u8]) -> Result<(), String> {
        let ts = now_ms() / 1000;
        let r = self
            .client
            .post(&self.cfg.url)
            .header("Content-Type", "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(&self.secret, ts, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {:?}", self.cfg.timeout)
                } else {
                    format!("{e}")
                }
            })?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }

    /// Append the batch to the dead-letter file, one JSON line, fsync'd.
    fn dead_letter(&self, body: &[u8], why: &str) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(body.len() + 128);
        write!(
            line,
            "{{\"dead_lettered_ms\":{},\"url\":{},\"error\":{},\"batch\":",
            now_ms(),
            serde_json::to_string(&self.cfg.url).expect("a string serialises"),
            serde_json::to_string(why).expect("a string serialises")
        )?;
        line.extend_from_slice(body);
        line.extend_from_slice(b"}\n");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.cfg.dead_letter)?;
        f.write_all(&line)?;
        f.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_keeps_each_payload_byte_for_byte() {
        let json = br#"{"event":"MessageNew","uri":"imap://h/\u00e9"}"#.to_vec();
        let e = Event {
            seq: 3,
            received_ms: 1700000000000,
            id: "h:1:3".into(),
            name: "MessageNew".into(),
            json: json.clone(),
        };
        let b = body("imap1", std::slice::from_ref(&e), None);
        let text = String::from_utf8(b.clone()).unwrap();
        assert!(text.contains(std::str::from_utf8(&json).unwrap()), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["events"][0]["id"], "h:1:3");
        assert_eq!(v["host"], "imap1");
        let with_key = body("imap1", &[e], Some("relayId"));
        let v: serde_json::Value = serde_json::from_slice(&with_key).unwrap();
        assert_eq!(v["events"][0]["payload"]["relayId"], "h:1:3");
    }

    #[test]
    fn signature_as_documented() {
        // Computed apart: python3's hmac.new(b"secret", b'1700000000.{...}', sha256).
        assert_eq!(
            sign(b"secret", 1_700_000_000, br#"{"host":"h","events":[]}"#),
            "v1=35f8b581df4c5a3d9c66a5926f58e8ea36a2ebf499704e0f91684f6a0f8633a1"
        );
        assert_eq!(body("h", &[], None), br#"{"host":"h","events":[]}"#);
    }
}
