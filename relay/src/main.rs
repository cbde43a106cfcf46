//! cmev-relay: takes Cyrus's events where they are left (notifyd's datagram
//! socket, a `dlist:` socket, the library's spool), keeps them in a durable
//! store, and delivers them to NATS JetStream and HTTP webhooks, at least
//! once, each with a stable id. relay/README.md documents its configuration.
//!
//! ```text
//! cmev-relay [--check] CONFIG.toml
//! ```

mod config;
mod event;
mod input;
mod log;
mod nats;
mod spool;
mod stats;
mod store;
mod webhook;

use config::Config;
use stats::STATS;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "usage: cmev-relay [--check] CONFIG.toml";
/// How often cursors are saved, the store trimmed and the stats written.
const MAINTAIN_EVERY: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, path) = match args.as_slice() {
        [p] if !p.starts_with('-') => (false, p),
        [c, p] if c == "--check" => (true, p),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match Config::load(Path::new(path)) {
        Ok(c) => c,
        Err(e) => {
            log::error(&e);
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{path}: configuration OK");
        return ExitCode::SUCCESS;
    }
    // The store, stats and dead letters hold message contents and addresses.
    // SAFETY: sets the process's file mode mask; cannot fail.
    unsafe { libc::umask(0o077) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&e);
            ExitCode::FAILURE
        }
    }
}

fn write_stats(path: &Path) {
    let tmp = PathBuf::from(format!("{}.new", path.display()));
    let r = std::fs::write(&tmp, STATS.json()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        log::error_limited("stats", &format!("stats_file {}: {e}", path.display()));
    }
}

async fn run(cfg: Config) -> Result<(), String> {
    let host = cfg.host();
    let store = Arc::new(Store::open(&cfg.store, &host)?);
    // Readers first: their cursors keep the store from removing what they
    // have not delivered. Outputs run for ever; one that ends has panicked,
    // and the relay exits so that its supervisor starts it again.
    let mut outputs = tokio::task::JoinSet::new();
    if let Some(n) = cfg.nats {
        let reader = store.reader(nats::CURSOR);
        let out = nats::Nats::new(n, host.clone(), cfg.json_id_key.clone(), Arc::clone(&store));
        outputs.spawn(out.run(reader));
    }
    if let Some(w) = cfg.webhook {
        let reader = store.reader(webhook::CURSOR);
        let out =
            webhook::Webhook::new(w, host.clone(), cfg.json_id_key.clone(), Arc::clone(&store))?;
        outputs.spawn(out.run(reader));
    }
    let mode = cfg.input.socket_mode;
    let mut inputs = Vec::new();
    let mut sockets = Vec::new();
    if let Some(p) = &cfg.input.datagram {
        let s = input::bind_datagram(p, mode)?;
        inputs.push(tokio::spawn(input::serve_datagrams(s, Arc::clone(&store))));
        sockets.push(p.clone());
    }
    if let Some(p) = &cfg.input.dlist {
        let l = input::bind_dlist(p, mode)?;
        inputs.push(tokio::spawn(input::serve_dlist(l, Arc::clone(&store))));
        sockets.push(p.clone());
    }
    if let Some(dir) = &cfg.input.spool_dir {
        inputs.push(tokio::spawn(spool::serve(
            dir.clone(),
            host.clone(),
            Arc::clone(&store),
        )));
    }
    let maintainer = {
        let store = Arc::clone(&store);
        let stats_file = cfg.stats_file.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAINTAIN_EVERY).await;
                store.maintain();
                if let Some(p) = &stats_file {
                    write_stats(p);
                }
            }
        })
    };
    let spool = cfg
        .input
        .spool_dir
        .iter()
        .map(|d| format!("spool {}", d.display()));
    let named: Vec<String> = sockets
        .iter()
        .map(|p| p.display().to_string())
        .chain(spool)
        .collect();
    log::info(&format!(
        "relaying events of host {host}: store {}, inputs {}",
        cfg.store.dir.display(),
        named.join(", ")
    ));
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let failed = tokio::select! {
        _ = term.recv() => None,
        _ = int.recv() => None,
        Some(r) = outputs.join_next() => Some(format!("an output stopped: {r:?}")),
    };
    for i in &inputs {
        i.abort();
    }
    for p in &sockets {
        input::remove_stale_socket(p);
    }
    // Everything taken before the inputs stopped is fsync'd after this.
    let _ = store.append(Vec::new()).await;
    maintainer.abort();
    store.maintain();
    if let Some(p) = &cfg.stats_file {
        write_stats(p);
    }
    log::info(&format!("stopped: {}", STATS.json()));
    failed.map_or(Ok(()), Err)
}
