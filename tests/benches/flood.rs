//! A stranger's handshake flood against a release node on loopback, and what it costs the
//! node and a member replicating at the same time:
//! `cargo bench -p photomesh-tests --bench flood`.
//!
//! 1. The node (A, a full device with the replication bench's library (a)) runs idle; a
//!    stranger sends it `PHOTOMESH_FLOOD_N` (100,000) protected Initials, each a new
//!    connection to A's key. Printed: A's peak RSS before and after, its CPU time, and how
//!    it answered (Retry, or a handshake run). Budget: peak RSS + ≤ 30 MB.
//! 2. A member (B1) replicates the library from A with no flood; another (B2) replicates it
//!    while the stranger floods at `PHOTOMESH_FLOOD_PPS` (20,000) Initials a second. Budget:
//!    B2's throughput ≥ 80% of B1's.
//!
//! `PHOTOMESH_FLOOD_QUICK=1` uses the small library (a smoke run, not a figure).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use photomesh::home::Home;
use photomesh_tests::bench::{self, Library};
use photomesh_tests::{Node, build_release_binary, env_u64, flood};

fn main() -> Result<()> {
    build_release_binary()?;
    let n = env_u64("PHOTOMESH_FLOOD_N", 100_000) as usize;
    let quick = env_u64("PHOTOMESH_FLOOD_QUICK", 0) == 1;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace")?
        .join("target");
    let library = bench::library_a(&root.join("bench-data"), quick)?;
    println!("machine: {} (load {})", bench::machine(), bench::load());
    println!("library: {}", library.title);

    let dir = tempfile::tempdir_in(&root)?;
    let (a, b1, b2) = (
        Node::at(dir.path().join("a")),
        Node::at(dir.path().join("b1")),
        Node::at(dir.path().join("b2")),
    );
    for (node, name) in [(&a, "a"), (&b1, "b1"), (&b2, "b2")] {
        node.ok(&["init", "--name", name]);
    }
    let folder = library.dir.to_str().context("library path")?;
    a.ok(&["folder", "add", folder, "--label", "bench"]);
    a.ok(&["scan"]);
    a.invite(&b1, "full");
    a.invite(&b2, "full");
    let key = Home::open(&a.home)?.device.noise_public();
    let (a_run, addr) = a.start_run();
    let target = addr.parse()?;
    // The stranger's own address: the members come from 127.0.0.1.
    let stranger: std::net::SocketAddr = "127.0.0.2:0".parse()?;

    // 1. The flood alone.
    let start = Instant::now();
    let packets = Arc::new(flood::initials(target, key, n));
    println!(
        "made {} Initials in {:.1} s",
        packets.len(),
        start.elapsed().as_secs_f64()
    );
    let (peak_before, cpu_before) = (
        bench::peak_rss_kb(a_run.pid())?,
        bench::cpu_seconds(a_run.pid())?,
    );
    let start = Instant::now();
    let answers = flood::flood(stranger, target, &packets, Duration::from_secs(1))?;
    let flood_s = start.elapsed().as_secs_f64();
    let (peak_after, cpu_after) = (
        bench::peak_rss_kb(a_run.pid())?,
        bench::cpu_seconds(a_run.pid())?,
    );
    let rise_mb = (peak_after - peak_before) / 1024.0;
    println!(
        "flood: {} Initials in {flood_s:.1} s; answered {} with a Retry, {} with a handshake",
        answers.sent, answers.retries, answers.handshakes
    );
    println!(
        "  node peak RSS {:.1} → {:.1} MB (+{rise_mb:.1}; budget ≤ +30: {}), node CPU {:.2} s",
        peak_before / 1024.0,
        peak_after / 1024.0,
        met(rise_mb <= 30.0),
        cpu_after - cpu_before
    );

    // 2. A member's replication, without and with the flood.
    let calm = replicate(&b1, &addr, &library)?;
    let stop = Arc::new(AtomicBool::new(false));
    let pps = env_u64("PHOTOMESH_FLOOD_PPS", 20_000).max(1_000);
    let flooding = std::thread::spawn({
        let (stop, packets) = (stop.clone(), packets.clone());
        move || {
            // A thousand at a time, paced to `pps`: the stranger shares this machine's two
            // cores, and a flooder spinning on one would measure the flooder.
            let (mut sent, start) = (0, Instant::now());
            for chunk in packets.chunks(1000).cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent += flood::flood(stranger, target, chunk, Duration::from_millis(1))
                    .map_or(0, |a| a.sent);
                let due = Duration::from_secs_f64(sent as f64 / pps as f64);
                std::thread::sleep(due.saturating_sub(start.elapsed()));
            }
            sent
        }
    });
    let stormy = replicate(&b2, &addr, &library);
    stop.store(true, Ordering::Relaxed);
    let sent = flooding
        .join()
        .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?;
    let stormy = stormy?;
    let ratio = stormy / calm;
    println!(
        "replication to a member: {calm:.0} MB/s alone, {stormy:.0} MB/s under a flood of {sent} Initials at {pps}/s ({:.0}%; budget ≥ 80%: {})",
        ratio * 100.0,
        met(ratio >= 0.8)
    );
    a_run.terminate();
    Ok(())
}

/// Starts `node`, which replicates the library from the node at `addr`; its throughput in
/// MB/s once it stores every file.
fn replicate(node: &Node, addr: &str, library: &Library) -> Result<f64> {
    node.ok(&["peer", "add", addr]);
    let index = node.home.join("index.sqlite");
    let start = Instant::now();
    let run = node.spawn(&["run", "--listen", "127.0.0.1:0"]);
    let (mut db, mut stored, mut progress) = (None, 0, Instant::now());
    while stored < library.files {
        let (_, now) = bench::index_progress(&index, &mut db).unwrap_or((0, stored));
        if now > stored {
            (stored, progress) = (now, Instant::now());
        }
        if progress.elapsed() > Duration::from_secs(120) {
            bail!(
                "no new blob for 120 s ({stored} of {} stored)",
                library.files
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mb_s = library.bytes as f64 / 1e6 / start.elapsed().as_secs_f64();
    drop(db);
    run.terminate();
    Ok(mb_s)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
