//! The relay into a nats-server that requires TLS with client certificates
//! (and a password), as an operator with a private CA configures it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA, a certificate for the server at 127.0.0.1 and one for the
/// relay as a client, all signed by it (P-256 keys, PKCS#8).
fn certificates(dir: &TestDir) -> PathBuf {
    let d = dir.path("pki");
    std::fs::create_dir_all(&d).unwrap();
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=cmev test CA"];
    ca.extend(key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&d, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        let (k, csr, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("/CN=cmev test {name}"),
        );
        let mut req = vec!["req", "-subj", &subj];
        req.extend(key);
        req.extend(["-keyout", &k, "-out", &csr]);
        openssl(&d, &req);
        let extfile = format!("{name}.ext");
        openssl(
            &d,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &extfile,
                "-out",
                &pem,
            ],
        );
    }
    d
}

fn start(dir: &TestDir) -> (NatsServer, PathBuf) {
    let pki = certificates(dir);
    let p = |f: &str| pki.join(f).display().to_string();
    let tls = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true, timeout: 2 }}\n",
        p("server.pem"),
        p("server.key"),
        p("ca.pem")
    );
    (NatsServer::start_with(dir, &tls), pki)
}

/// A relay sending to that server over TLS, `keys` naming the `[nats]`
/// section's certificate keys and the files of `pki` they point at.
fn relay(dir: &TestDir, nats: &NatsServer, pki: &Path, keys: &[(&str, &str)]) -> Relay {
    let mut tls = String::from("tls = true\n");
    for (key, file) in keys {
        tls += &format!("{key} = \"{}\"\n", pki.join(file).display());
    }
    let toml = format!(
        "host = \"imap1.example.org\"\n[store]\ndir = \"{}\"\n[input]\ndatagram = \"{}\"\n\
         [nats]\nservers = [\"tls://127.0.0.1:{}\"]\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n{tls}",
        dir.path("store").display(),
        dir.path("notify").display(),
        nats.port
    );
    Relay::start(dir, &toml, &[dir.path("notify")])
}

#[test]
fn tls_with_a_private_ca_and_a_client_certificate() {
    let dir = TestDir::new("tls");
    let (nats, pki) = start(&dir);
    let relay = relay(
        &dir,
        &nats,
        &pki,
        &[
            ("ca_file", "ca.pem"),
            ("client_cert", "client.pem"),
            ("client_key", "client.key"),
        ],
    );
    let dgram = dir.path("notify");
    send_datagrams(&dgram, 0, 0..50, Duration::ZERO);
    relay.wait_stat("nats_acked", 50, Duration::from_secs(20));
    assert_eq!(relay.stat("nats_errors"), 0, "{}", relay.log_text());
}

#[test]
fn an_unknown_server_certificate_is_a_clear_error() {
    let dir = TestDir::new("tls-noca");
    let (nats, pki) = start(&dir);
    // The client certificate, but not the CA that signed the server's.
    let relay = relay(
        &dir,
        &nats,
        &pki,
        &[("client_cert", "client.pem"), ("client_key", "client.key")],
    );
    relay.refused(
        &dir.path("notify"),
        10,
        &["UnknownIssuer", "check [nats] tls, ca_file, client_cert"],
    );
}
