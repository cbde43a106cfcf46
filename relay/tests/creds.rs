//! The relay into a nats-server in operator (JWT) mode, authenticating with
//! a creds file, as NATS's decentralised authentication hands users them.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use nkeys::KeyPair;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A JWT of `claims` about `subject`, issued and signed by `issuer`, as
/// nats-io/jwt v2 encodes them.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let jti = format!("{:x}", Sha256::digest(format!("{subject}{name}")));
    let claims = json!({
        "jti": jti, "iat": 1_700_000_000u64, "iss": issuer.public_key(),
        "name": name, "sub": subject, "nats": nats,
    });
    let body = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = issuer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn creds_file(user_jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[test]
fn a_creds_file_in_operator_mode() {
    let dir = TestDir::new("creds");
    let (operator, account, user) = (
        KeyPair::new_operator(),
        KeyPair::new_account(),
        KeyPair::new_user(),
    );
    let unlimited = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
        "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let op = jwt(
        &operator,
        &operator.public_key(),
        "cmev-test",
        json!({"type": "operator", "version": 2}),
    );
    let acc = jwt(
        &operator,
        &account.public_key(),
        "cyrus",
        json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    let usr = jwt(
        &account,
        &user.public_key(),
        "relay",
        json!({"subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    // JetStream in operator mode needs a system account.
    let system = KeyPair::new_account();
    let sys = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2}),
    );
    let nats = NatsServer::start_auth(
        &dir,
        &format!(
            "operator: \"{op}\"\nsystem_account: {}\nresolver: MEMORY\n\
             resolver_preload: {{ {}: \"{sys}\", {}: \"{acc}\" }}\n",
            system.public_key(),
            system.public_key(),
            account.public_key()
        ),
    );
    let creds = dir.path("relay.creds");
    std::fs::write(&creds, creds_file(&usr, &user.seed().unwrap())).unwrap();
    let wrong = dir.path("other.creds");
    let stranger = KeyPair::new_user();
    let unsigned = jwt(
        &stranger,
        &stranger.public_key(),
        "stranger",
        json!({"type": "user", "version": 2}),
    );
    std::fs::write(&wrong, creds_file(&unsigned, &stranger.seed().unwrap())).unwrap();

    let dgram = dir.path("notify");
    let toml = |f: &std::path::Path| {
        format!(
            "host = \"imap1.example.org\"\n[store]\ndir = \"{}\"\n[input]\ndatagram = \"{}\"\n\
             [nats]\nservers = [\"{}\"]\ncreds_file = \"{}\"\n",
            dir.path("store").display(),
            dgram.display(),
            nats.url(),
            f.display()
        )
    };
    // A creds file the operator never vouched for: refused, events kept.
    let mut relay = Relay::start(&dir, &toml(&wrong), std::slice::from_ref(&dgram));
    relay.refused(&dgram, 20, &["refused the relay's credentials"]);
    relay.stop();
    // The right one: the events kept in the store, and new ones, acknowledged.
    let relay = Relay::start(&dir, &toml(&creds), std::slice::from_ref(&dgram));
    send_datagrams(&dgram, 0, 20..40, Duration::ZERO);
    relay.wait_stat("nats_acked", 40, Duration::from_secs(20));
}
