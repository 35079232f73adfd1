//! Scale benchmark (issue 17, DESIGN §13): a library of a million small photos, as a family's
//! archive on a Raspberry Pi.
//!
//! Run with `cargo bench -p photomesh-tests --bench scale`. It builds the release `photomesh`
//! binary first (`cargo build --release -p photomesh`).
//!
//! For each n (100,000 and 1,000,000 by default) a library of n small files (about 90 bytes
//! each, a thousand to a folder) is generated once under `target/bench-data/scale-N` and
//! reused (a marker beside it says it is complete). Per n, in fresh homes under
//! `target/bench-runs/scale-N`:
//! - **scan**: device A adds the folder and scans it; **rescan**: scans it again, nothing
//!   changed;
//! - **status** and **status --json** on A, no node running;
//! - **sync**: a new device B joins as a `vault`; A runs, B is told A's address and runs; the
//!   clock runs from B's start until B's index holds every record ("records/s") and stores
//!   every blob ("blobs/s"), each blob verified as it arrived;
//! - peak RSS of every command (`VmHWM`, sampled every 10 ms while it runs, so a peak in
//!   its last 10 ms can be missed) and of both nodes over the sync;
//! - index bytes per record: A's `index.sqlite` (with its WAL) over n, and each table's and
//!   index's share (SQLite's `dbstat`).
//!
//! Environment: `PHOTOMESH_SCALE_N` = the sizes, comma-separated (default
//! `100000,1000000`). It prints figures beside the budgets and never asserts on a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use photomesh_tests::Node;
use photomesh_tests::bench::{
    index_bytes_by_object, index_records_progress, load, machine, peak_rss_kb,
};

/// Files to a folder in the generated library.
const PER_FOLDER: u64 = 1000;
/// The budget for every process's peak RSS (DESIGN §13 and issue 17), in MB.
const RSS_BUDGET_MB: f64 = 150.0;

fn main() -> Result<()> {
    let sizes: Vec<u64> = std::env::var("PHOTOMESH_SCALE_N")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("PHOTOMESH_SCALE_N: numbers, comma-separated")
        })
        .collect::<Result<_>>()?;
    photomesh_tests::build_release_binary()?;
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    println!("scale bench: photomesh, release build");
    println!("machine: {}", machine());
    println!("load before: {}", load());
    let mut all = Vec::new();
    for &n in &sizes {
        let library = target.join(format!("bench-data/scale-{n}"));
        generate(&library, n)?;
        let runs = target.join(format!("bench-runs/scale-{n}"));
        let _ = fs::remove_dir_all(&runs);
        fs::create_dir_all(&runs)?;
        let figures = measure(&library, &runs, n)?;
        print_figures(n, &figures);
        let _ = fs::remove_dir_all(&runs);
        all.push((n, figures));
    }
    println!("load after: {}", load());
    print_table(&all);
    Ok(())
}

/// One command's wall time and peak RSS.
#[derive(Clone, Copy)]
struct Timed {
    secs: f64,
    rss_mb: f64,
}

struct Figures {
    scan: Timed,
    rescan: Timed,
    status: Timed,
    status_json: Timed,
    records_per_s: f64,
    blobs_per_s: f64,
    sync_secs: f64,
    rss_source_mb: f64,
    rss_vault_mb: f64,
    index_bytes_per_record: f64,
    /// Each table and index of A's index, in bytes per record, largest first.
    index_parts: Vec<(String, f64)>,
}

/// Writes `n` small unique files under `dir`, once.
fn generate(dir: &Path, n: u64) -> Result<()> {
    let marker = dir.with_extension("complete");
    if marker.exists() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(dir);
    let start = Instant::now();
    for i in 0..n {
        let folder = dir.join(format!("{:04}", i / PER_FOLDER));
        if i % PER_FOLDER == 0 {
            fs::create_dir_all(&folder)?;
        }
        let mut file = fs::File::create(folder.join(format!("IMG_{i:07}.jpg")))?;
        // A JPEG's first bytes, then what makes each file unique.
        file.write_all(b"\xff\xd8\xff\xe0")?;
        write!(file, "photomesh scale bench, photo {i} of {n}: ")?;
        file.write_all(blake3::hash(&i.to_le_bytes()).to_hex().as_bytes())?;
    }
    fs::write(&marker, b"")?;
    println!(
        "(generated {n} files in {} in {:.0} s)",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn measure(library: &Path, runs: &Path, n: u64) -> Result<Figures> {
    let a = Node::at(runs.join("a"));
    let b = Node::at(runs.join("b"));
    a.ok(&["init", "--name", "a"]);
    b.ok(&["init", "--name", "b"]);
    let library_str = library.to_str().context("library path is not UTF-8")?;
    a.ok(&["folder", "add", library_str, "--label", "photos"]);
    let scan = timed(&a, &["scan"])?;
    let rescan = timed(&a, &["scan"])?;
    let status = timed(&a, &["status"])?;
    let status_json = timed(&a, &["status", "--json"])?;
    let index_bytes = ["index.sqlite", "index.sqlite-wal"]
        .iter()
        .filter_map(|f| fs::metadata(a.home.join(f)).ok())
        .map(|m| m.len())
        .sum::<u64>();
    // Where they go, while no node has the index open.
    let index_parts = index_bytes_by_object(&a.home.join("index.sqlite"), n)?;

    a.invite(&b, "vault");
    let (a_run, addr) = a.start_run();
    b.ok(&["peer", "add", &addr]);
    let start = Instant::now();
    let b_run = b.spawn(&["run", "--listen", "127.0.0.1:0"]);
    let index = b.home.join("index.sqlite");
    let mut db = None;
    let (mut records_at, mut stored) = (None, 0);
    let mut last_progress = Instant::now();
    // A's own records (its membership) count too: a full set is n photos and more.
    while stored < n {
        let (records, now) = index_records_progress(&index, &mut db).unwrap_or((0, stored));
        if records_at.is_none() && records >= n {
            records_at = Some(start.elapsed().as_secs_f64());
        }
        if now > stored {
            stored = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > Duration::from_secs(300) {
            bail!("the vault stored no new blob for 300 s ({stored} of {n} stored)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sync_secs = start.elapsed().as_secs_f64();
    let rss_source_mb = peak_rss_kb(a_run.pid())? / 1024.0;
    let rss_vault_mb = peak_rss_kb(b_run.pid())? / 1024.0;
    drop(db);
    b_run.terminate();
    a_run.terminate();
    Ok(Figures {
        scan,
        rescan,
        status,
        status_json,
        records_per_s: n as f64 / records_at.unwrap_or(sync_secs),
        blobs_per_s: n as f64 / sync_secs,
        sync_secs,
        rss_source_mb,
        rss_vault_mb,
        index_bytes_per_record: index_bytes as f64 / n as f64,
        index_parts,
    })
}

/// Runs one command on `node` to its end, sampling its peak RSS.
fn timed(node: &Node, args: &[&str]) -> Result<Timed> {
    let start = Instant::now();
    let mut child = Command::new(photomesh_tests::photomesh_bin())
        .arg("--home")
        .arg(&node.home)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut peak_kb: f64 = 0.0;
    let status = loop {
        if let Ok(kb) = peak_rss_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        bail!("photomesh {} failed: {status}", args.join(" "));
    }
    Ok(Timed {
        secs: start.elapsed().as_secs_f64(),
        rss_mb: peak_kb / 1024.0,
    })
}

fn print_figures(n: u64, f: &Figures) {
    println!(
        "n={n}: scan {:.1} s ({:.0} MB), rescan {:.2} s ({:.0} MB), status {:.2} s ({:.0} MB), \
         status --json {:.2} s ({:.0} MB), sync {:.1} s: {:.0} records/s, {:.0} blobs/s, \
         peak RSS source {:.0} MB, vault {:.0} MB; index {:.0} B/record",
        f.scan.secs,
        f.scan.rss_mb,
        f.rescan.secs,
        f.rescan.rss_mb,
        f.status.secs,
        f.status.rss_mb,
        f.status_json.secs,
        f.status_json.rss_mb,
        f.sync_secs,
        f.records_per_s,
        f.blobs_per_s,
        f.rss_source_mb,
        f.rss_vault_mb,
        f.index_bytes_per_record
    );
    let parts: Vec<String> = f
        .index_parts
        .iter()
        .filter(|(_, bytes)| *bytes >= 1.0)
        .map(|(name, bytes)| format!("{name} {bytes:.0}"))
        .collect();
    println!(
        "  index bytes per record, where they go: {}",
        parts.join(", ")
    );
}

fn print_table(all: &[(u64, Figures)]) {
    print!("\n| what |");
    for (n, _) in all {
        print!(" n = {n} |");
    }
    println!(" budget (at 1M) |");
    print!("|---|");
    for _ in all {
        print!("---|");
    }
    println!("---|");
    let rss = format!("≤ {RSS_BUDGET_MB:.0} MB");
    let rows: [Row<'_>; 10] = [
        ("first scan", &|f| t(f.scan), &rss),
        (
            "rescan, nothing changed",
            &|f| t(f.rescan),
            "≤ 10 s, ≤ 150 MB",
        ),
        ("status, no node running", &|f| t(f.status), "≤ 1 s"),
        ("status --json", &|f| t(f.status_json), "≤ 1 s"),
        (
            "records to a new device",
            &|f| format!("{:.0}/s", f.records_per_s),
            "≥ 50,000/s",
        ),
        (
            "blobs to a new device",
            &|f| format!("{:.0}/s", f.blobs_per_s),
            "–",
        ),
        (
            "source node, peak RSS in the sync",
            &|f| mb(f.rss_source_mb),
            &rss,
        ),
        (
            "vault node, peak RSS in the sync",
            &|f| mb(f.rss_vault_mb),
            &rss,
        ),
        ("whole sync", &|f| format!("{:.0} s", f.sync_secs), "–"),
        (
            "index bytes per record",
            &|f| format!("{:.0} B", f.index_bytes_per_record),
            "≤ 500 B",
        ),
    ];
    for (what, value, budget) in rows {
        print!("| {what} |");
        for (_, f) in all {
            print!(" {} |", value(f));
        }
        println!(" {budget} |");
    }
}

/// A row of the table: what, how to print it from a run's figures, its budget.
type Row<'a> = (&'a str, &'a dyn Fn(&Figures) -> String, &'a str);

fn t(timed: Timed) -> String {
    format!("{:.2} s, {}", timed.secs, mb(timed.rss_mb))
}

fn mb(v: f64) -> String {
    format!("{v:.0} MB")
}
