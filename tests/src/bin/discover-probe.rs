//! Runs one `Discovery` (advertising and browsing) and prints each member it finds, for the
//! multi-host tests: `discover-probe [--no-advertise] [--no-browse] [--stop-at-eof] MESH
//! PORT ME [MEMBER…]`.
//!
//! `MESH` is any string naming a test mesh (its first discovery key is derived from it as if
//! it were the founding record); each `/NAME` after it rotates the key as a revocation whose
//! record ID is the hash of NAME would. `PORT` is the port to advertise, `ME` and `MEMBER`
//! device IDs. A line `rotate NAME` on standard input rotates the keys the same way while it
//! runs (the node does so when it learns of a revocation). Prints `started`, then `found
//! DEVICE ADDRESS…` lines; logs (`PHOTOMESH_LOG`, default `photomesh=trace`) go to standard
//! error. Runs until killed, or with `--stop-at-eof` until its standard input closes: then it
//! drops the `Discovery`, prints `stopped` and exits.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use photomesh::daemon::discovery::{Discovery, Settings};
use photomesh_protocol::discovery::{DiscoveryKey, DiscoveryKeys};
use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::record::RecordId;

fn main() -> anyhow::Result<std::convert::Infallible> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PHOTOMESH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("photomesh=trace")),
        )
        .with_writer(std::io::stderr)
        .init();
    let usage = "usage: discover-probe [--no-advertise] [--no-browse] [--stop-at-eof] MESH \
                 PORT ME [MEMBER…]";
    let mut args = std::env::args().skip(1).peekable();
    let mut settings = Settings::default();
    let mut stop_at_eof = false;
    while let Some(flag) = args.next_if(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--no-advertise" => settings.advertise = false,
            "--no-browse" => settings.browse = false,
            "--stop-at-eof" => stop_at_eof = true,
            _ => anyhow::bail!("unknown option {flag}; {usage}"),
        }
    }
    let mesh = args.next().context(usage)?;
    let port: u16 = args.next().context(usage)?.parse().context("PORT")?;
    let me: DeviceId = args.next().context(usage)?.parse().context("ME")?;
    let members = args
        .map(|a| a.parse::<DeviceId>().with_context(|| format!("MEMBER {a}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let id = |name: &str| RecordId(*blake3::hash(name.as_bytes()).as_bytes());
    let mut parts = mesh.split('/');
    let mut keys = DiscoveryKeys::one(DiscoveryKey::from_founding_record(&id(parts
        .next()
        .unwrap_or(""))));
    for revocation in parts {
        keys = keys.then(&id(revocation));
    }
    let keys = Arc::new(Mutex::new(keys));
    let read_keys = keys.clone();
    let discovery = Discovery::start(
        me,
        move || {
            read_keys
                .lock()
                .map(|k| k.clone())
                .unwrap_or_else(|e| e.into_inner().clone())
        },
        port,
        settings,
        move || members.clone(),
        |device, addresses| {
            let shown: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "found {device} {}", shown.join(" "));
            let _ = out.flush();
        },
    )?;
    println!("started");
    let mut lines = std::io::stdin().lock().lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(name) = line.strip_prefix("rotate ") {
            let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
            *keys = keys.clone().then(&id(name.trim()));
        }
    }
    if stop_at_eof {
        drop(discovery);
        println!("stopped");
        std::process::exit(0);
    }
    // Until killed.
    loop {
        std::thread::park();
    }
}
