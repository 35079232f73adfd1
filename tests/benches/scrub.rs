//! Scrub benchmark (issue 15): how fast the scrub checks a blob store and at what CPU cost,
//! and how much a node's scrub slows a replication it serves.
//!
//! Run with `cargo bench -p photomesh-tests --bench scrub`. It builds the release
//! `photomesh` binary first (`cargo build --release -p photomesh`).
//!
//! Setup, once: the replication bench's library (a) (300 photos of 3 MiB and two videos of
//! 100 MiB, 1.15 GB; `photomesh_tests::bench::library_a`, generated once under
//! `target/bench-data/` and shared with `benches/replicate.rs`); node A scans it and a full
//! device B receives all of it, so B's blob store holds every blob; then both stop.
//!
//! 1. `photomesh verify` on B, which checks every stored blob: MB/s (sealed bytes over wall
//!    time) and CPU-seconds per GB (the process's utime+stime), with the page cache cold
//!    (`sync; echo 3 > /proc/sys/vm/drop_caches` before each run; needs root, else skipped)
//!    and warm (the store read just before).
//! 2. B's node, running alone with nothing to do but scrub, `[scrub] period = "1s"` so a
//!    pass starts at once: at the default `max_rate` (10M = 10 MiB/s) over windows of
//!    `PHOTOMESH_BENCH_WINDOW_S` seconds (10) between two moments the scrub's cursor (in the
//!    index's `meta`) moved, the bytes whose pacing fell between them (the scrub sleeps for
//!    a blob after checking it: from the blob at the first moment to the one before the
//!    last), started cold; at `max_rate = "0"` over whole passes, the first cold, the others
//!    warm. CPU is the node's utime+stime (`/proc/PID/stat`) over the same window.
//! 3. The library replicated from B (A stays stopped) to a new full device C, while B's scrub
//!    is idle (a pass just ended, `period` 30d) and while B scrubs at the default rate
//!    (`period = "1s"`: a pass is under way throughout), alternating, the page cache dropped
//!    before each run when possible: MB/s (library bytes over the time from C's start until
//!    C's index stores every blob), B's CPU per GB, what B's scrub read meanwhile, and the
//!    slowdown of the median. C scrubs what it has received at its own default rate in both.
//!
//! Environment:
//! - `PHOTOMESH_BENCH_RUNS` = runs of (1) and of each side of (3), and warm passes of (2)
//!   (default 5; 1 in quick mode);
//! - `PHOTOMESH_BENCH_WINDOW_S` = one window of the rate-limited scrub, in seconds (10;
//!   three windows);
//! - `PHOTOMESH_BENCH_QUICK=1`: the small library (56 MiB) and 2 s windows, to check the
//!   bench itself works.
//!
//! It prints medians (with min and max) and never asserts on a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use photomesh_tests::bench::{self, Library, Spread};
use photomesh_tests::{Node, Spawned};

/// How often the scrub's progress is read.
const POLL: Duration = Duration::from_millis(10);
/// How long any one wait of the bench may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(300);

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scrub bench: run with `cargo bench -p photomesh-tests --bench scrub`");
        return Ok(());
    }
    let quick = std::env::var_os("PHOTOMESH_BENCH_QUICK").is_some();
    let runs = photomesh_tests::env_u64("PHOTOMESH_BENCH_RUNS", if quick { 1 } else { 5 }).max(1);
    let window = Duration::from_secs(
        photomesh_tests::env_u64("PHOTOMESH_BENCH_WINDOW_S", if quick { 2 } else { 10 }).max(1),
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    photomesh_tests::build_release_binary()?;
    let data = root.join("target/bench-data");
    fs::create_dir_all(&data)?;
    let library = bench::library_a(&data, quick)?;
    let cold = bench::drop_page_cache();
    println!(
        "photomesh scrub benchmark: {}{}",
        bench::machine(),
        if quick { ", QUICK mode" } else { "" }
    );
    println!("library: {}; load average {}", library.title, bench::load());
    println!(
        "page cache: {}",
        if cold {
            "cold = dropped (sync; echo 3 > /proc/sys/vm/drop_caches) just before, warm = read just before"
        } else {
            "cannot be dropped (not root): warm figures only"
        }
    );

    let scratch = tempfile::Builder::new()
        .prefix("scrub-runs-")
        .tempdir_in(&data)?;
    let started = Instant::now();
    let b = setup(scratch.path(), &library)?;
    let store = Store::read(&b.home)?;
    ensure!(
        store.blobs.len() as u64 == library.files,
        "B stores {} blobs, not {}",
        store.blobs.len(),
        library.files
    );
    println!(
        "B's blob store: {} blobs, {:.2} GB sealed (set up in {:.0} s)",
        store.blobs.len(),
        store.total as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );

    let mut table = Table::default();

    println!();
    println!("(1) photomesh verify on B");
    if cold {
        let rates = (0..runs)
            .map(|run| {
                bench::drop_page_cache();
                verify(&b, &store, &format!("cold run {run}"))
            })
            .collect::<Result<Vec<_>>>()?;
        table.rates("(1) verify, cold", &rates);
    }
    verify(&b, &store, "warming the cache")?;
    let rates = (0..runs)
        .map(|run| verify(&b, &store, &format!("warm run {run}")))
        .collect::<Result<Vec<_>>>()?;
    table.rates("(1) verify, warm", &rates);

    println!();
    println!("(2) the scrub of B's running node, alone");
    finish_pass(&b)?;
    if cold {
        bench::drop_page_cache();
    }
    let rates = scrub_windows(&b, &store, window, 3)?;
    let cache = if cold { "from cold" } else { "warm" };
    table.rates(&format!("(2) scrub at 10M, {cache}"), &rates);
    finish_pass(&b)?;
    if cold {
        bench::drop_page_cache();
    }
    let rates = scrub_passes(&b, &store, 1 + runs as usize)?;
    let (first, warm) = rates.split_at(1);
    table.rates(
        &format!(
            "(2) scrub, no limit, {}",
            if cold { "cold" } else { "warm" }
        ),
        first,
    );
    table.rates("(2) scrub, no limit, warm", warm);

    println!();
    println!("(3) replication from B to a new full device");
    let mut idle = Vec::new();
    let mut scrubbing = Vec::new();
    for run in 0..runs {
        for scrub in [false, true] {
            let c = Node::at(scratch.path().join(format!("c{run}-{}", u8::from(scrub))));
            let figures = replicate(&b, &c, &library, &store, scrub, cold)
                .with_context(|| format!("replication run {run}"))?;
            println!(
                "  run {run} B scrub {:<5}  {:>6.2} s  {:>6.1} MB/s  B {:>5.2} CPU-s/GB  B's scrub read {:>5.1} MB/s",
                if scrub { "10M" } else { "idle" },
                figures.secs,
                figures.mb_per_s,
                figures.b_cpu_s_per_gb,
                figures.scrub_mb_per_s
            );
            if scrub {
                scrubbing.push(figures);
            } else {
                idle.push(figures);
            }
            // Its 1 GB is not needed again.
            fs::remove_dir_all(&c.home)?;
        }
    }
    table.replication("(3) replication, B idle", &idle);
    table.replication("(3) replication, B scrubs 10M", &scrubbing);
    let (was, now) = (
        Spread::of(idle.iter().map(|f| f.mb_per_s)).median,
        Spread::of(scrubbing.iter().map(|f| f.mb_per_s)).median,
    );
    println!();
    println!(
        "medians of {runs} run(s) of (1) and (3); (2) at 10M over {} s windows; cache {}; \
         {:.0} s in all; load average now {}",
        window.as_secs(),
        if cold { "as labelled" } else { "warm" },
        started.elapsed().as_secs_f64(),
        bench::load()
    );
    table.print();
    println!(
        "  replication slowdown while B scrubs at the default rate: {:.1} % ({:.1} → {:.1} MB/s, medians)",
        (1.0 - now / was) * 100.0,
        was,
        now
    );
    println!();
    println!("(removing the run directories)");
    Ok(())
}

/// A scrub or verify measurement: bytes checked, over how long, for how much CPU.
#[derive(Debug, Clone, Copy)]
struct Rate {
    bytes: u64,
    secs: f64,
    cpu_s: f64,
}

impl Rate {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }

    fn cpu_s_per_gb(&self) -> f64 {
        self.cpu_s / (self.bytes as f64 / 1e9)
    }

    fn core_percent(&self) -> f64 {
        self.cpu_s / self.secs * 100.0
    }

    fn print(&self, what: &str) {
        println!(
            "  {what:<28} {:>7.1} MB in {:>6.2} s  {:>7.1} MB/s  {:>5.2} CPU-s/GB  {:>5.1} % of a core",
            self.bytes as f64 / 1e6,
            self.secs,
            self.mb_per_s(),
            self.cpu_s_per_gb(),
            self.core_percent()
        );
    }
}

/// One replication's figures.
#[derive(Debug, Clone, Copy)]
struct Replication {
    secs: f64,
    mb_per_s: f64,
    b_cpu_s_per_gb: f64,
    scrub_mb_per_s: f64,
}

/// B's stored blobs (hex ID, sealed length) in ID order, the order a scrub pass takes.
struct Store {
    blobs: Vec<(String, u64)>,
    total: u64,
}

impl Store {
    fn read(home: &Path) -> Result<Self> {
        let db = index(home)?;
        let mut query = db.prepare("SELECT blob_id, sealed_len FROM blobs WHERE stored = 1")?;
        let mut blobs = query
            .query_map([], |r| {
                Ok((
                    hex(&r.get::<_, Vec<u8>>(0)?),
                    r.get::<_, i64>(1)?.max(0) as u64,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        blobs.sort();
        let total = blobs.iter().map(|(_, len)| len).sum();
        Ok(Self { blobs, total })
    }

    /// The bytes of the blobs after `from` up to `to` inclusive (IDs in hex; `""` is before
    /// the first): what a pass read between the moments its cursor was at each.
    fn between(&self, from: &str, to: &str) -> u64 {
        self.blobs
            .iter()
            .filter(|(id, _)| id.as_str() > from && id.as_str() <= to)
            .map(|(_, len)| len)
            .sum()
    }

    /// The bytes of the blobs from `from` inclusive up to `to`: what a paced pass paid for
    /// between the moments its cursor was at each, since the scrub sleeps for a blob after
    /// checking it.
    fn paced_between(&self, from: &str, to: &str) -> u64 {
        self.blobs
            .iter()
            .filter(|(id, _)| id.as_str() >= from && id.as_str() < to)
            .map(|(_, len)| len)
            .sum()
    }
}

/// A and B set up: A scanned the library, B (a full device) received every blob; both
/// stopped. Returns B.
fn setup(dir: &Path, library: &Library) -> Result<Node> {
    let a = Node::at(dir.join("a"));
    let b = Node::at(dir.join("b"));
    a.ok(&["init", "--name", "a"]);
    b.ok(&["init", "--name", "b"]);
    a.ok(&["folder", "add", path_str(&library.dir)?, "--label", "bench"]);
    a.ok(&["scan"]);
    a.invite(&b, "full");
    let (a_run, addr) = a.start_run();
    b.ok(&["peer", "add", &addr]);
    let (b_run, _) = b.start_run();
    wait_for_blobs(&b, library.files)?;
    b_run.terminate();
    a_run.terminate();
    Ok(b)
}

/// Waits until `node`'s index stores `files` blobs, giving up after two minutes without a
/// new one.
fn wait_for_blobs(node: &Node, files: u64) -> Result<()> {
    let mut stored = 0;
    let mut last_progress = Instant::now();
    while stored < files {
        let now = index(&node.home)
            .and_then(|db| {
                let n: i64 =
                    db.query_row("SELECT count(*) FROM blobs WHERE stored = 1", [], |r| {
                        r.get(0)
                    })?;
                Ok(n.max(0) as u64)
            })
            .unwrap_or(stored);
        if now > stored {
            stored = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > Duration::from_secs(120) {
            bail!(
                "{} stored no new blob for 120 s ({stored} of {files})",
                node.home.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One `photomesh verify` of B, which must find every blob good.
fn verify(b: &Node, store: &Store, what: &str) -> Result<Rate> {
    let cpu = bench::children_cpu_seconds()?;
    let start = Instant::now();
    let report = b.json(&["verify"]);
    let secs = start.elapsed().as_secs_f64();
    let cpu_s = bench::children_cpu_seconds()? - cpu;
    ensure!(
        report["blobs_checked"] == store.blobs.len() as u64
            && report["findings"].as_array().is_some_and(Vec::is_empty),
        "verify did not find the store whole: {report}"
    );
    let rate = Rate {
        bytes: store.total,
        secs,
        cpu_s,
    };
    rate.print(what);
    Ok(rate)
}

/// Writes B's configuration file: `[scrub]` with these lines.
fn configure_scrub(b: &Node, scrub: &str) -> Result<()> {
    fs::write(b.home.join("config.toml"), format!("[scrub]\n{scrub}"))?;
    Ok(())
}

/// Runs B until no scrub pass is under way (one that was is finished at full speed), so
/// that the next start with a long period is idle.
fn finish_pass(b: &Node) -> Result<()> {
    configure_scrub(b, "period = \"30d\"\nmax_rate = \"0\"\n")?;
    let (run, _) = b.start_run();
    let db = index(&b.home)?;
    let deadline = Instant::now() + PATIENCE;
    while scrub_meta(&db)?.pass_started.is_some() {
        ensure!(Instant::now() < deadline, "the scrub pass did not end");
        std::thread::sleep(POLL);
    }
    run.terminate();
    Ok(())
}

/// The rate-limited scrub (the default `max_rate`) over `windows` windows of at least
/// `window` each.
fn scrub_windows(b: &Node, store: &Store, window: Duration, windows: usize) -> Result<Vec<Rate>> {
    configure_scrub(b, "period = \"1s\"\n")?;
    let (run, _) = b.start_run();
    let db = index(&b.home)?;
    let deadline = Instant::now() + PATIENCE;
    let mut rates = Vec::new();
    let mut previous = sample(&db, &run)?;
    let mut anchor: Option<Sample> = None;
    while rates.len() < windows {
        ensure!(Instant::now() < deadline, "the scrub did not progress");
        std::thread::sleep(POLL);
        let now = sample(&db, &run)?;
        let moved = now.cursor != previous.cursor && now.pass_started.is_some();
        if moved {
            match &anchor {
                Some(a) if a.pass_started != now.pass_started => anchor = Some(now.clone()),
                Some(a) if now.at - a.at >= window => {
                    let rate = Rate {
                        bytes: store.paced_between(&a.cursor, &now.cursor),
                        secs: (now.at - a.at).as_secs_f64(),
                        cpu_s: now.cpu - a.cpu,
                    };
                    rate.print(&format!("10M window {}", rates.len()));
                    rates.push(rate);
                    anchor = Some(now.clone());
                }
                Some(_) => {}
                None => anchor = Some(now.clone()),
            }
        }
        if now.last_pass != previous.last_pass {
            // A pass ended (a small library): windows do not span two passes.
            anchor = None;
        }
        previous = now;
    }
    run.terminate();
    Ok(rates)
}

/// The scrub at no limit over `passes` whole passes (from the first moment each is seen
/// under way to its end).
fn scrub_passes(b: &Node, store: &Store, passes: usize) -> Result<Vec<Rate>> {
    configure_scrub(b, "period = \"1s\"\nmax_rate = \"0\"\n")?;
    let (run, _) = b.start_run();
    let db = index(&b.home)?;
    let deadline = Instant::now() + PATIENCE;
    let mut rates = Vec::new();
    let mut anchor: Option<Sample> = None;
    while rates.len() < passes {
        ensure!(Instant::now() < deadline, "the scrub did not progress");
        let now = sample(&db, &run)?;
        match &anchor {
            None if now.pass_started.is_some() => anchor = Some(now),
            Some(a) if now.last_pass != a.last_pass => {
                let last = store.blobs.last().map_or("", |(id, _)| id.as_str());
                let rate = Rate {
                    bytes: store.between(&a.cursor, last),
                    secs: (now.at - a.at).as_secs_f64(),
                    cpu_s: now.cpu - a.cpu,
                };
                rate.print(&format!("no-limit pass {}", rates.len()));
                rates.push(rate);
                anchor = None;
            }
            _ => {}
        }
        std::thread::sleep(POLL);
    }
    run.terminate();
    Ok(rates)
}

/// Replicates the library from B to the new full device `c`, with B's scrub idle or at the
/// default rate.
fn replicate(
    b: &Node,
    c: &Node,
    library: &Library,
    store: &Store,
    scrub: bool,
    cold: bool,
) -> Result<Replication> {
    if scrub {
        configure_scrub(b, "period = \"1s\"\n")?;
    } else {
        finish_pass(b)?;
        configure_scrub(b, "period = \"30d\"\n")?;
    }
    c.ok(&["init", "--name", "c"]);
    b.invite(c, "full");
    if cold {
        bench::drop_page_cache();
    }
    let (b_run, addr) = b.start_run();
    c.ok(&["peer", "add", &addr]);
    let db = index(&b.home)?;
    let before = sample(&db, &b_run)?;
    let start = Instant::now();
    let c_run = c.spawn(&["run", "--listen", "127.0.0.1:0"]);
    wait_for_blobs(c, library.files)?;
    let secs = start.elapsed().as_secs_f64();
    let after = sample(&db, &b_run)?;
    c_run.terminate();
    b_run.terminate();
    ensure!(
        scrub || (before.pass_started.is_none() && after.pass_started.is_none()),
        "B's scrub was not idle"
    );
    let scrubbed = if after.pass_started == before.pass_started {
        store.between(&before.cursor, &after.cursor)
    } else {
        // The pass started meanwhile (B's start): from the first blob.
        store.between("", &after.cursor)
    };
    Ok(Replication {
        secs,
        mb_per_s: library.bytes as f64 / 1e6 / secs,
        b_cpu_s_per_gb: (after.cpu - before.cpu) / (library.bytes as f64 / 1e9),
        scrub_mb_per_s: scrubbed as f64 / 1e6 / secs,
    })
}

/// Where B's scrub is, and B's CPU time, at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    cpu: f64,
    /// The last blob checked in the pass under way (hex), `""` before the first.
    cursor: String,
    pass_started: Option<u64>,
    last_pass: Option<u64>,
}

fn sample(db: &rusqlite::Connection, run: &Spawned) -> Result<Sample> {
    let meta = scrub_meta(db)?;
    Ok(Sample {
        at: Instant::now(),
        cpu: bench::cpu_seconds(run.pid())?,
        ..meta
    })
}

/// The scrub's state in the index's `meta` (`library::scrub` keeps it there).
fn scrub_meta(db: &rusqlite::Connection) -> Result<Sample> {
    let mut query = db.prepare_cached(
        "SELECT key, value FROM meta
         WHERE key IN ('scrub_cursor', 'scrub_pass_started_ms', 'scrub_last_pass_ms')",
    )?;
    let rows = query
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let value = |key: &str| {
        rows.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(Sample {
        at: Instant::now(),
        cpu: 0.0,
        cursor: value("scrub_cursor"),
        pass_started: value("scrub_pass_started_ms").parse().ok(),
        last_pass: value("scrub_last_pass_ms").parse().ok(),
    })
}

/// A read-only connection to a node's index.
fn index(home: &Path) -> Result<rusqlite::Connection> {
    let db = rusqlite::Connection::open_with_flags(
        home.join("index.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.busy_timeout(Duration::from_secs(5))?;
    Ok(db)
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The summary table's rows: a label, a unit, the figures.
#[derive(Default)]
struct Table {
    rows: Vec<(String, &'static str, Vec<f64>)>,
}

impl Table {
    fn rates(&mut self, label: &str, rates: &[Rate]) {
        self.row(label, "MB/s", rates.iter().map(Rate::mb_per_s));
        self.row(label, "CPU-s/GB", rates.iter().map(Rate::cpu_s_per_gb));
        self.row(label, "% of a core", rates.iter().map(Rate::core_percent));
    }

    fn replication(&mut self, label: &str, runs: &[Replication]) {
        self.row(label, "MB/s", runs.iter().map(|r| r.mb_per_s));
        self.row(label, "B CPU-s/GB", runs.iter().map(|r| r.b_cpu_s_per_gb));
        self.row(label, "B scrub MB/s", runs.iter().map(|r| r.scrub_mb_per_s));
    }

    fn row(&mut self, label: &str, unit: &'static str, values: impl Iterator<Item = f64>) {
        self.rows.push((label.to_owned(), unit, values.collect()));
    }

    fn print(&self) {
        println!(
            "  {:<34} {:<13} {:>8} {:>8} {:>8} {:>3}",
            "", "", "median", "min", "max", "n"
        );
        for (label, unit, values) in &self.rows {
            let s = Spread::of(values.iter().copied());
            println!(
                "  {label:<34} {unit:<13} {:>8.2} {:>8.2} {:>8.2} {:>3}",
                s.median,
                s.min,
                s.max,
                values.len()
            );
        }
    }
}
