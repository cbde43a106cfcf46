//! A JetStream consumer for the relay's stream: prints one JSON line per
//! event as it arrives, `{"subject":..,"id":..,"message":<event JSON>}`
//! (the `message` key as `cmev-tap --envelope` writes it, so that
//! tests/e2e/pretty.py reads both). `make demo-relay` runs it.
//!
//! ```text
//! NATS_USER=u NATS_PASSWORD=p consume nats://127.0.0.1:4222 [STREAM]
//! ```

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), async_nats::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: consume NATS_URL [STREAM] (NATS_USER, NATS_PASSWORD)")?;
    let stream = args.next().unwrap_or_else(|| "CYRUS_EVENTS".into());
    let mut o = async_nats::ConnectOptions::new();
    if let (Ok(u), Ok(p)) = (std::env::var("NATS_USER"), std::env::var("NATS_PASSWORD")) {
        o = o.user_and_password(u, p);
    }
    let js = jetstream::new(o.connect(url).await?);
    // The relay makes the stream on its first connection: wait for it.
    let stream = loop {
        match js.get_stream(&stream).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = std::io::stdout().lock();
    while let Some(m) = messages.next().await {
        let m = m?;
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map_or("", |v| v.as_str());
        let message: serde_json::Value = serde_json::from_slice(&m.payload)
            .unwrap_or_else(|_| String::from_utf8_lossy(&m.payload).into());
        let line = serde_json::json!({"subject": m.subject.as_str(), "id": id, "message": message});
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}
