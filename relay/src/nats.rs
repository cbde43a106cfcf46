//! The NATS JetStream output: each stored event published to
//! `<subject_prefix>.<host>.<Event>` with its id as `Nats-Msg-Id`, many
//! awaiting their acknowledgements at once, the store's cursor moved only
//! past events JetStream acknowledged. After any failure the output starts
//! again from the cursor: events already stored come again with the same
//! id, and JetStream's duplicate window drops them.

use crate::config::{subject_token, NatsConfig};
use crate::event::with_id;
use crate::log;
use crate::stats::{add, STATS};
use crate::store::{Reader, Store};
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use async_nats::{ConnectErrorKind, ConnectOptions, HeaderMap};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The store's name for this output's cursor.
pub const CURSOR: &str = "nats";
/// How long a publish waits for JetStream's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

pub struct Nats {
    cfg: NatsConfig,
    host: String,
    id_key: Option<String>,
    store: Arc<Store>,
}

impl Nats {
    pub fn new(cfg: NatsConfig, host: String, id_key: Option<String>, store: Arc<Store>) -> Nats {
        Nats {
            cfg,
            host,
            id_key,
            store,
        }
    }

    /// Relay for ever from `reader` (made by `main` before anything is
    /// stored or removed): connect, make sure of the stream, publish; on any
    /// failure log it, wait (doubling up to `RETRY_MAX`) and go on.
    pub async fn run(self, mut reader: Reader) {
        let mut delay = RETRY_MIN;
        let mut js = None;
        loop {
            let r = match js.take() {
                // Only a failure ends `pump`, and drops the connection: the
                // next one checks the stream again (it may have been deleted).
                Some(c) => self.pump(&c, &mut reader, &mut delay).await,
                None => self.connect().await.map(|c| {
                    log::info(&format!(
                        "connected to NATS at {}, stream {}",
                        self.cfg.servers.join(","),
                        self.cfg.stream
                    ));
                    js = Some(c);
                }),
            };
            if let Err(e) = r {
                add(&STATS.nats_errors, 1);
                log::error_limited("nats", &e);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }

    async fn connect(&self) -> Result<jetstream::Context, String> {
        let c = &self.cfg;
        let servers = c.servers.join(",");
        let mut o = ConnectOptions::new()
            .name("cmev-relay")
            .connection_timeout(Duration::from_secs(5))
            .require_tls(c.tls)
            .event_callback(|e| async move {
                match e {
                    async_nats::Event::Connected => log::info("NATS: connected"),
                    async_nats::Event::Disconnected => log::warn("NATS: disconnected"),
                    other => log::warn(&format!("NATS: {other}")),
                }
            });
        if let (Some(user), Some(pass)) = (&c.user, self.password()?) {
            o = o.user_and_password(user.clone(), pass);
        }
        if let Some(f) = &c.creds_file {
            o = o
                .credentials_file(f)
                .await
                .map_err(|e| format!("NATS creds_file {}: {e}", f.display()))?;
        }
        if let Some(ca) = &c.ca_file {
            o = o.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&c.client_cert, &c.client_key) {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        let client = o.connect(servers.as_str()).await.map_err(|e| {
            let hint = match e.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    " (the server refused the relay's credentials: check [nats] user and \
                     password, or creds_file; events wait in the store)"
                }
                ConnectErrorKind::Tls => " (check [nats] tls, ca_file, client_cert)",
                // async-nats reports a certificate rustls rejects as an I/O error.
                ConnectErrorKind::Io if e.to_string().contains("certificate") => {
                    " (the TLS handshake failed: check [nats] tls, ca_file, client_cert; events \
                     wait in the store)"
                }
                _ => " (events wait in the store)",
            };
            format!("NATS at {servers}: {e}{hint}")
        })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .max_ack_inflight(c.in_flight * 2)
            .build(client);
        js.get_or_create_stream(stream::Config {
            name: c.stream.clone(),
            subjects: vec![format!("{}.>", c.subject_prefix)],
            duplicate_window: c.duplicate_window,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("NATS stream {}: {e}", c.stream))?;
        Ok(js)
    }

    fn password(&self) -> Result<Option<String>, String> {
        match (&self.cfg.password, &self.cfg.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| format!("NATS password_file {}: {e}", f.display())),
            (None, None) => Ok(None),
        }
    }

    /// Publish from the cursor on until something fails, then rewind the
    /// reader to the oldest event not acknowledged. Invariant: every event
    /// before the store's cursor was acknowledged by JetStream, and every
    /// event between the cursor and the reader's position is in
    /// `in_flight`, so rewinding to its front (or to the event whose
    /// publish failed) loses nothing.
    async fn pump(
        &self,
        js: &jetstream::Context,
        reader: &mut Reader,
        delay: &mut Duration,
    ) -> Result<(), String> {
        let host = subject_token(&self.host);
        let mut in_flight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        loop {
            while in_flight.len() < self.cfg.in_flight {
                let Some(e) = reader.next() else { break };
                let subject = format!(
                    "{}.{host}.{}",
                    self.cfg.subject_prefix,
                    subject_token(&e.name)
                );
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", e.id.as_str());
                let payload = match self.id_key.as_deref() {
                    Some(key) => with_id(&e.json, Some(key), &e.id).into_owned(),
                    None => e.json,
                };
                match js
                    .publish_with_headers(subject, headers, payload.into())
                    .await
                {
                    Ok(fut) => {
                        add(&STATS.nats_published, 1);
                        in_flight.push_back((e.seq, fut));
                    }
                    Err(err) => {
                        reader.rewind(in_flight.front().map_or(e.seq, |f| f.0));
                        return Err(format!("NATS publish of {}: {err}", e.id));
                    }
                }
            }
            let Some((seq, fut)) = in_flight.pop_front() else {
                reader.wait().await;
                continue;
            };
            match fut.await {
                Ok(ack) => {
                    if ack.duplicate {
                        add(&STATS.nats_duplicates, 1);
                    }
                    add(&STATS.nats_acked, 1);
                    self.store.ack(CURSOR, seq + 1);
                    *delay = RETRY_MIN;
                }
                Err(err) => {
                    reader.rewind(seq);
                    return Err(format!(
                        "NATS: no acknowledgement from stream {} for event {seq}: {err} \
                         ({} more in flight are sent again)",
                        self.cfg.stream,
                        in_flight.len()
                    ));
                }
            }
        }
    }
}
