//! New-photo latency (issue 7, DESIGN §13): how long from the moment a camera app closes a
//! new photo in a watched folder until it is present and verified on an online peer.
//!
//! Run with `cargo bench -p photomesh-tests --bench latency`. It builds the release
//! `photomesh` binary first. Two real nodes on loopback — the laptop (`full`, with a watched
//! folder) and the NAS (`full`) — are paired and running; then, one at a time, a 1600×1200 JPEG (~1.6 MB)
//! is written into the laptop's folder and closed, and the clock runs until the NAS's index
//! lists the blob as stored (a blob is stored only after every chunk group, and then the
//! whole file, verified against its ID). It prints every write and the median and worst.
//! Budget: median under 2 s (Syncthing waits 10 s by default before it even scans).
//!
//! Environment: `PHOTOMESH_BENCH_WRITES` (default 20). It prints figures and asserts no time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use photomesh::home::Home;
use photomesh_tests::{Node, wait_until};

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency bench: run with `cargo bench -p photomesh-tests --bench latency`");
        return Ok(());
    }
    let writes = photomesh_tests::env_u64("PHOTOMESH_BENCH_WRITES", 20) as usize;
    photomesh_tests::build_release_binary()?;
    let dir = tempfile::tempdir()?;
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    let camera = dir.path().join("camera");
    std::fs::create_dir_all(&camera)?;
    laptop.ok(&["folder", "add", camera.to_str().context("path")?]);
    laptop.invite(&nas, "full");
    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = nas.start_run();
    wait_until("the NAS online at the laptop", || {
        let status = laptop.json(&["status"]);
        if status["peers"][0]["online"] == true {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });

    // The NAS's index, read as the node writes it (SQLite WAL: readers see each commit).
    let watcher = Home::open(&nas.home)?;
    let held = || watcher.index.held_blobs().map(|b| b.len()).unwrap_or(0);
    let mut rng = photomesh_tests::samples::Rng::new(2026);
    let mut times = Vec::new();
    println!("new-photo latency: laptop's watched folder → verified on the NAS (loopback)");
    for i in 0..writes {
        let photo = photomesh_tests::samples::jpeg_with_exif(
            &mut rng,
            1600,
            1200,
            "2025:08:01 10:00:00",
            None,
        );
        let before = held();
        let path = camera.join(format!("IMG_{i:04}.JPG"));
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&photo)?;
        drop(file);
        let closed = Instant::now();
        let deadline = closed + Duration::from_secs(30);
        while held() <= before {
            anyhow::ensure!(
                Instant::now() < deadline,
                "write {i} did not reach the NAS in 30 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = closed.elapsed();
        println!(
            "  write {:>2}: {:>7.1} ms  ({:.1} MB)",
            i + 1,
            took.as_secs_f64() * 1000.0,
            photo.len() as f64 / 1e6
        );
        times.push(took);
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "median {:.1} ms, worst {:.1} ms over {} writes (budget: median < 2000 ms)",
        median.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0,
        times.len()
    );
    Ok(())
}
