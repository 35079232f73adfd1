//! Replication benchmark (issue 6, DESIGN §13): two real `photomesh` nodes on loopback, and
//! the real Syncthing on the same folder in the same run.
//!
//! Run with `cargo bench -p photomesh-tests --bench replicate`. It builds the release
//! `photomesh` binary first (`cargo build --release -p photomesh`).
//!
//! Cases:
//! - (a) 300 photos of 3 MiB plus two 100 MiB videos (1.15 GB);
//! - (a-lan) the same library between two network namespaces joined by a veth pair of MTU
//!   1500 (`netns::Link`), as on a home LAN: loopback lets QUIC send 64 KB datagrams, Ethernet
//!   1,500 bytes. Syncthing runs over the same link (`photomesh_tests::syncthing`). Needs
//!   root; skipped otherwise;
//! - (b) 20,000 files of 50 KiB (1.02 GB).
//!
//! Each library is generated once under `target/bench-data/replicate-*` and reused (a
//! marker beside it says it is complete), so later runs read it from the page cache; the
//! Syncthing baseline reads the same folder. Per run: two fresh homes; node A adds the
//! folder and scans it (timed on its own: "scan"); B joins A's mesh as a `full` device; A
//! runs, B is told A's address and runs, and the clock runs from B's start until B's index
//! says it stores every blob (each one verified as it arrived); "records" is when B's index
//! first held every photo record (the record path, inside that time). CPU is utime+stime of
//! both node processes over that time (`/proc/PID/stat`); peak RSS is each node's `VmHWM`;
//! B's bytes written to storage (`/proc/PID/io`) are given per byte of the library, and the
//! host's UDP receive errors (`/proc/net/snmp`) over the transfer. Case (a) runs a second time
//! with ChaCha20-Poly1305 forced on both ends (`PHOTOMESH_NO_AES=1`, a Pi 4's suite). Then
//! `shared/bench/syncthing-baseline.sh DIR --json` runs Syncthing on the folder. It first
//! prints what the figures depend on (kernel, crypto instructions, socket buffers, UDP
//! offloads, page cache). The table gives medians, photomesh against Syncthing, and the
//! budgets (issue 21): (a) at least 2× Syncthing's throughput at no more than 0.6× its CPU
//! per GB, a receiver no larger than Syncthing's, at most 1.2 bytes written per byte; (a-lan)
//! at least 1.5× at no more than 0.8×; (b) at least 8× Syncthing and 5,000 files/s.
//!
//! Environment:
//! - `PHOTOMESH_BENCH_CASE` = `a`, `a-lan`, `b`, `both` (a and b) or `all` (default);
//! - `PHOTOMESH_BENCH_RUNS` = runs per case (default 3; 1 in quick mode);
//! - `PHOTOMESH_BENCH_QUICK=1`: small libraries, to check the bench itself works;
//! - `PHOTOMESH_BENCH_SYNCTHING=0`: skip the Syncthing baseline;
//! - `PHOTOMESH_BENCH_CHACHA=0`: skip case (a)'s ChaCha20-Poly1305 runs;
//! - `PHOTOMESH_BENCH_CACHE=full|dropped|both` (default `both`): leave the library cached,
//!   or drop the page cache before each run of either tool (root), or each case both ways;
//! - `PHOTOMESH_BENCH_PERF=FILE`: record both nodes with `perf` during the transfer (for
//!   profiling; the figures of such a run are not to be quoted);
//! - `PHOTOMESH_BENCH_KEEP_RUNS=1`: leave the run directories in place (to look into them,
//!   or to run the bench again at once; deleting them later starts ext4's slow phase);
//! - `PHOTOMESH_SYNCTHING_BASELINE`: the script's path, if it is not found in a `shared/bench`
//!   folder above this crate; `ST_CASE_SENSITIVE=1` reaches the script (see its header).
//!
//! Run directories are removed only when the bench ends, not between timed runs: on ext4
//! without a journal, creating many files is slow for up to six minutes after deleting
//! many (`bench::Filesystem`). The bench prints the filesystem, and waits that window out
//! when an earlier invocation deleted its runs less than six minutes before.
//! It prints figures and never asserts on a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use photomesh::net::transport::NO_AES_ENV;
use photomesh_tests::netns::{Host, Link};
use photomesh_tests::{Node, Spawned};

const KIB: usize = 1024;

/// A generated library.
struct Case {
    name: &'static str,
    title: String,
    dir: PathBuf,
    files: u64,
    bytes: u64,
    /// Between two network namespaces over a veth pair of MTU 1500, not on loopback.
    lan: bool,
    /// Minimum throughput ratio against Syncthing.
    budget_throughput: f64,
    /// Maximum CPU-per-GB ratio against Syncthing, when the budget names one.
    budget_cpu: Option<f64>,
    /// Minimum files a second, when the budget names one.
    budget_files_per_s: Option<f64>,
}

/// One run's figures, for either tool.
#[derive(Clone, Copy, Default)]
struct Figures {
    scan_s: f64,
    /// Until the receiver held every record (photomesh only; NaN for Syncthing).
    records_s: f64,
    transfer_s: f64,
    mb_per_s: f64,
    files_per_s: f64,
    cpu_s_per_gb: f64,
    rss_sender_kb: f64,
    rss_receiver_kb: f64,
    /// Bytes the receiver wrote to storage per byte of the library (photomesh only).
    written_per_byte: f64,
    /// UDP datagrams the host dropped on receipt during the transfer (photomesh only).
    udp_drops: f64,
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("replicate bench: run with `cargo bench -p photomesh-tests --bench replicate`");
        return Ok(());
    }
    let quick = std::env::var_os("PHOTOMESH_BENCH_QUICK").is_some();
    let runs = photomesh_tests::env_u64("PHOTOMESH_BENCH_RUNS", if quick { 1 } else { 3 }).max(1);
    let which = std::env::var("PHOTOMESH_BENCH_CASE").unwrap_or_else(|_| "all".into());
    let syncthing = std::env::var("PHOTOMESH_BENCH_SYNCTHING").map_or(true, |v| v != "0");
    let chacha = std::env::var("PHOTOMESH_BENCH_CHACHA").map_or(true, |v| v != "0");
    let caches: &[bool] = match std::env::var("PHOTOMESH_BENCH_CACHE").as_deref() {
        Ok("dropped") => &[true],
        Ok("full") => &[false],
        Ok("both") | Err(_) => &[false, true],
        Ok(other) => bail!("PHOTOMESH_BENCH_CACHE must be full, dropped or both, not {other:?}"),
    };

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    photomesh_tests::build_release_binary()?;
    let data = root.join("target/bench-data");
    fs::create_dir_all(&data)?;
    let baseline = if syncthing {
        Some(baseline_script()?)
    } else {
        None
    };

    println!(
        "photomesh replication benchmark: {}, median of {runs} run(s){}",
        photomesh_tests::bench::machine(),
        if quick {
            ", QUICK mode (small libraries)"
        } else {
            ""
        }
    );
    for fact in photomesh_tests::bench::transport_facts() {
        println!("  {fact}");
    }
    let filesystem = photomesh_tests::bench::Filesystem::of(&data)?;
    println!("  filesystem: {}", filesystem.describe());
    for &drop_cache in caches {
        println!("  page cache: {}", cache_state(drop_cache));
    }
    println!(
        "  suite: AES-256-GCM when both CPUs have AES instructions{}",
        if chacha {
            "; case (a) again with ChaCha20-Poly1305 forced on both ends (PHOTOMESH_NO_AES=1)"
        } else {
            ""
        }
    );
    let mut cases = Vec::new();
    if ["a", "both", "all"].contains(&which.as_str()) {
        cases.push(case_a(&data, quick, false)?);
    }
    if ["a-lan", "all"].contains(&which.as_str()) {
        if photomesh_tests::netns::is_root() {
            cases.push(case_a(&data, quick, true)?);
        } else {
            println!("case (a-lan): SKIPPED (network namespaces need root)");
        }
    }
    if ["b", "both", "all"].contains(&which.as_str()) {
        cases.push(case_b(&data, quick)?);
    }
    if cases.is_empty() {
        bail!("PHOTOMESH_BENCH_CASE must be a, a-lan, b, both or all, not {which:?}");
    }

    // Every run's copy is kept until the end (deleting between runs would slow the next
    // ones, see `wait_out_deletions`): a disk that fills up midway leaves Syncthing retrying
    // for an hour, so the room is checked first.
    let copies: u64 = cases
        .iter()
        .map(|case| {
            let tools = 1 + u64::from(chacha && !case.lan);
            case.bytes * tools * runs * caches.len() as u64
        })
        .sum();
    let needed = copies + copies / 10 + 4 * cases.iter().map(|c| c.bytes).max().unwrap_or(0);
    if let Some(free) = free_bytes(&data) {
        ensure!(
            free >= needed,
            "{} has {} GB free; this invocation keeps every run's copy until it ends and needs \
             about {} GB (fewer runs with PHOTOMESH_BENCH_RUNS, one cache state with \
             PHOTOMESH_BENCH_CACHE, or one case with PHOTOMESH_BENCH_CASE need less)",
            data.display(),
            free / 1_000_000_000,
            needed.div_ceil(1_000_000_000)
        );
    }
    photomesh_tests::bench::wait_out_deletions(&data, &filesystem);
    let scratch = tempfile::Builder::new()
        .prefix("replicate-runs-")
        .tempdir_in(&data)?;
    for (case, &drop_cache) in cases
        .iter()
        .flat_map(|case| caches.iter().map(move |c| (case, c)))
    {
        println!();
        println!("{}; page cache {}", case.title, cache_state(drop_cache));
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut ours_chacha = Vec::new();
        let cache = || -> Result<()> {
            if drop_cache && !photomesh_tests::bench::drop_page_cache() {
                bail!("could not drop the page cache (it needs root)");
            }
            Ok(())
        };
        for run in 0..runs {
            let dir = scratch
                .path()
                .join(format!("{}-{drop_cache}-{run}", case.name));
            cache()?;
            let figures = run_photomesh(case, &dir, &[])
                .with_context(|| format!("photomesh run {run} of case {}", case.name))?;
            print_run("photomesh", run, &figures);
            ours.push(figures);
            if chacha && !case.lan {
                let dir = scratch
                    .path()
                    .join(format!("{}-{drop_cache}-{run}-chacha", case.name));
                cache()?;
                let figures = run_photomesh(case, &dir, &[(NO_AES_ENV, "1")])
                    .with_context(|| format!("photomesh ChaCha run {run} of case {}", case.name))?;
                print_run("p/chacha", run, &figures);
                ours_chacha.push(figures);
            }
            if let Some(script) = &baseline {
                cache()?;
                let dir = scratch
                    .path()
                    .join(format!("{}-{drop_cache}-{run}-syncthing", case.name));
                let figures = run_syncthing(script, case, &dir)
                    .with_context(|| format!("Syncthing run {run} of case {}", case.name))?;
                print_run("syncthing", run, &figures);
                theirs.push(figures);
            }
        }
        print_table(case, &ours, &theirs);
        if !ours_chacha.is_empty() {
            let m = |runs: &[Figures], f: fn(&Figures) -> f64| median(runs.iter().map(f));
            let (mb, cpu) = (
                m(&ours_chacha, |f| f.mb_per_s),
                m(&ours_chacha, |f| f.cpu_s_per_gb),
            );
            println!(
                "  ChaCha20-Poly1305 on both ends (a Pi 4's suite), medians: {mb:.1} MB/s \
                 ({:.2}x Syncthing), {cpu:.2} CPU-s per GB ({:.2}x Syncthing), \
                 {:.2} bytes written per byte",
                mb / m(&theirs, |f| f.mb_per_s),
                cpu / m(&theirs, |f| f.cpu_s_per_gb),
                m(&ours_chacha, |f| f.written_per_byte),
            );
        }
    }
    println!();
    let runs = scratch.keep();
    if std::env::var("PHOTOMESH_BENCH_KEEP_RUNS").is_ok_and(|v| v != "0") {
        println!("(the run directories are kept in {})", runs.display());
        return Ok(());
    }
    println!("(removing the run directories)");
    photomesh_tests::bench::remove_runs(&data, &runs)
}

/// A node at `home`.
fn node(home: PathBuf) -> Node {
    Node::at(home)
}

/// Finds `syncthing-baseline.sh` in a `shared/bench` folder above this crate.
fn baseline_script() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PHOTOMESH_SYNCTHING_BASELINE") {
        return Ok(PathBuf::from(path));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|d| d.join("shared/bench/syncthing-baseline.sh"))
        .find(|p| p.is_file())
        .context(
            "no shared/bench/syncthing-baseline.sh above this crate: set \
             PHOTOMESH_SYNCTHING_BASELINE to its path, or PHOTOMESH_BENCH_SYNCTHING=0 to skip it",
        )
}

/// What the page cache is during the runs.
fn cache_state(dropped: bool) -> &'static str {
    if dropped {
        "dropped before each run of either tool (written back, then `drop_caches`)"
    } else {
        "full: the library was read before, and stays cached"
    }
}

/// Case (a): the library `photomesh_tests::bench::library_a` writes (the scrub bench reads
/// the same one); with `lan`, case (a-lan): the same over a veth pair of MTU 1500.
fn case_a(data: &Path, quick: bool, lan: bool) -> Result<Case> {
    let library = photomesh_tests::bench::library_a(data, quick)?;
    Ok(Case {
        name: if lan { "a-lan" } else { "a" },
        title: if lan {
            format!(
                "case (a-lan): {}, between two network namespaces over a veth pair, MTU 1500",
                library.title
            )
        } else {
            format!("case (a): {}", library.title)
        },
        dir: library.dir,
        files: library.files,
        bytes: library.bytes,
        lan,
        budget_throughput: if lan { 1.5 } else { 2.0 },
        budget_cpu: Some(if lan { 0.8 } else { 0.6 }),
        budget_files_per_s: None,
    })
}

fn case_b(data: &Path, quick: bool) -> Result<Case> {
    let (count, len) = if quick {
        (1_000, 50 * KIB)
    } else {
        (20_000, 50 * KIB)
    };
    let dir = data.join(format!("replicate-b-{count}x{len}"));
    let bytes = (count * len) as u64;
    generate(&dir, count as u64, || {
        let mut buf = vec![0u8; len];
        for i in 0..count {
            let sub = dir.join(format!("{:03}", i / 1000));
            if i % 1000 == 0 {
                fs::create_dir_all(&sub)?;
            }
            fill(&mut buf, 2_000_000 + i as u64);
            buf[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
            fs::write(sub.join(format!("IMG_{i:06}.JPG")), &buf)?;
        }
        Ok(())
    })?;
    Ok(Case {
        name: "b",
        title: format!(
            "case (b): {count} files of {} KiB = {:.2} GB",
            len / KIB,
            bytes as f64 / 1e9
        ),
        dir,
        files: count as u64,
        bytes,
        lan: false,
        budget_throughput: 8.0,
        budget_cpu: None,
        budget_files_per_s: Some(5000.0),
    })
}

/// Pseudo-random content (incompressible, different per `seed`).
fn fill(buf: &mut [u8], seed: u64) {
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(buf);
}

/// Writes a library once: a marker beside it (not in it, where both tools would see it)
/// says it is complete.
fn generate(dir: &Path, files: u64, write: impl FnOnce() -> Result<()>) -> Result<()> {
    let marker = dir.with_extension("complete");
    if marker.exists() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let start = Instant::now();
    write()?;
    fs::write(&marker, b"")?;
    println!(
        "(generated {files} files in {} in {:.1} s)",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `photomesh --home HOME ARGS…` for `node`, run inside `host`'s network namespace, with
/// `env` (as the loopback runs have it).
fn in_netns(host: &Host, node: &Node, args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let env: Vec<_> = [("NO_COLOR", "1")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    photomesh_tests::netns::photomesh_in_with_env(host, node, args, &env)
}

/// One photomesh run in `dir`: fresh homes, scan on A, replicate to B.
fn run_photomesh(case: &Case, dir: &Path, env: &[(&str, &str)]) -> Result<Figures> {
    fs::create_dir_all(dir)?;
    let a = node(dir.join("a"));
    let b = node(dir.join("b"));
    a.ok(&["init", "--name", "a"]);
    b.ok(&["init", "--name", "b"]);
    a.ok(&["folder", "add", path_str(&case.dir)?, "--label", "bench"]);
    let start = Instant::now();
    a.ok(&["scan"]);
    let scan_s = start.elapsed().as_secs_f64();
    a.invite(&b, "full");

    // Over a link, each node runs in its own namespace and listens on its end.
    let link = case.lan.then(|| Link::new(1500));
    let hosts = link.as_ref().map(|l| [l.host(0), l.host(1)]);
    let (a_run, addr) = match hosts {
        None => a.start_run_with_env(env),
        Some([host, _]) => {
            let listen = format!("{}:0", host.address);
            let mut run = in_netns(host, &a, &["run", "--listen", &listen], env);
            let line = run.wait_for_line(Duration::from_secs(60), |l| l.contains("listening on"));
            let addr = line.rsplit(' ').next().unwrap_or_default().to_owned();
            (run, addr)
        }
    };
    b.ok(&["peer", "add", &addr]);
    let a_cpu = cpu_ticks(a_run.pid())?;
    let udp_errors = || -> Result<u64> {
        match hosts {
            None => photomesh_tests::bench::udp_receive_errors(None),
            Some(hosts) => hosts.iter().try_fold(0, |sum, h| {
                Ok(sum + photomesh_tests::bench::udp_receive_errors(Some(&h.netns))?)
            }),
        }
    };
    let udp_errors_before = udp_errors()?;
    let start = Instant::now();
    let b_run = match hosts {
        None => b.spawn_with_env(&["run", "--listen", "127.0.0.1:0"], env),
        Some([_, host]) => {
            let listen = format!("{}:0", host.address);
            in_netns(host, &b, &["run", "--listen", &listen], env)
        }
    };
    let b_pid = b_run.pid();
    let perf = std::env::var_os("PHOTOMESH_BENCH_PERF").map(|out| {
        Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                "199",
                "--call-graph",
                "dwarf,8192",
                "-o",
            ])
            .arg(out)
            .arg("-p")
            .arg(format!("{},{b_pid}", a_run.pid()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    });
    let index = b.home.join("index.sqlite");
    let mut stored = 0;
    let mut records_s = f64::NAN;
    let mut last_progress = Instant::now();
    let mut db = None;
    while stored < case.files {
        // Until B's index exists and can be read, nothing has arrived.
        let (photos, now) =
            photomesh_tests::bench::index_progress(&index, &mut db).unwrap_or((0, stored));
        if records_s.is_nan() && photos >= case.files {
            records_s = start.elapsed().as_secs_f64();
        }
        if now > stored {
            stored = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > Duration::from_secs(120) {
            bail!(
                "B stored no new blob for 120 s ({stored} of {} stored)",
                case.files
            );
        }
        if stored < case.files {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let transfer_s = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(a_run.pid())? - a_cpu) + cpu_ticks(b_pid)?;
    let rss_sender_kb = photomesh_tests::bench::peak_rss_kb(a_run.pid())?;
    let rss_receiver_kb = photomesh_tests::bench::peak_rss_kb(b_pid)?;
    let written = photomesh_tests::bench::written_bytes(b_pid)?;
    let udp_drops = udp_errors()? - udp_errors_before;
    drop(db);
    if let Some(Ok(mut perf)) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    b_run.terminate();
    a_run.terminate();
    let ticks = clock_ticks()?;
    Ok(Figures {
        scan_s,
        records_s,
        transfer_s,
        mb_per_s: case.bytes as f64 / 1e6 / transfer_s,
        files_per_s: case.files as f64 / transfer_s,
        cpu_s_per_gb: cpu as f64 / ticks / (case.bytes as f64 / 1e9),
        rss_sender_kb,
        rss_receiver_kb,
        written_per_byte: written as f64 / case.bytes as f64,
        udp_drops: udp_drops as f64,
    })
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn clock_ticks() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// One Syncthing run on the case's folder: the shared script on loopback, or over a link
/// (in `dir`).
fn run_syncthing(script: &Path, case: &Case, dir: &Path) -> Result<Figures> {
    if case.lan {
        let link = Link::new(1500);
        let run = photomesh_tests::syncthing::replicate_over(&link, &case.dir, dir, case.files)?;
        return Ok(Figures {
            scan_s: run.scan_s,
            records_s: f64::NAN,
            transfer_s: run.transfer_s,
            mb_per_s: case.bytes as f64 / 1e6 / run.transfer_s,
            files_per_s: case.files as f64 / run.transfer_s,
            cpu_s_per_gb: run.cpu_s / (case.bytes as f64 / 1e9),
            rss_sender_kb: run.rss_sender_kb,
            rss_receiver_kb: run.rss_receiver_kb,
            written_per_byte: f64::NAN,
            udp_drops: f64::NAN,
        });
    }
    let out = Command::new("bash")
        .arg(script)
        .arg(&case.dir)
        .arg("--json")
        .output()
        .context("running the Syncthing baseline")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(line) = line else {
        bail!(
            "the Syncthing baseline printed no figures (exit {:?}): {}{}",
            out.status.code(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let v: serde_json::Value = serde_json::from_str(line)?;
    if v["verify"] != "ok" || v["files"] != case.files || v["bytes"] != case.bytes {
        bail!("the Syncthing baseline did not replicate the folder exactly: {v}");
    }
    let num = |k: &str| v[k].as_f64().with_context(|| format!("no {k} in {v}"));
    Ok(Figures {
        scan_s: num("scan_s")?,
        records_s: f64::NAN,
        transfer_s: num("transfer_s")?,
        mb_per_s: num("mb_per_s")?,
        files_per_s: num("files_per_s")?,
        cpu_s_per_gb: num("cpu_s_per_gb")?,
        rss_sender_kb: num("rss_sender_kb")?,
        rss_receiver_kb: num("rss_receiver_kb")?,
        written_per_byte: f64::NAN,
        udp_drops: f64::NAN,
    })
}

fn print_run(tool: &str, run: u64, f: &Figures) {
    println!(
        "  run {run} {tool:<9}  scan {:>6.2} s  records {:>6.2} s  transfer {:>7.2} s  {:>7.1} MB/s  {:>7.0} files/s  \
         {:>5.2} CPU-s/GB  peak RSS {:.0}/{:.0} MiB",
        f.scan_s,
        f.records_s,
        f.transfer_s,
        f.mb_per_s,
        f.files_per_s,
        f.cpu_s_per_gb,
        f.rss_sender_kb / 1024.0,
        f.rss_receiver_kb / 1024.0
    );
}

/// The bytes free to an unprivileged writer on `dir`'s filesystem, as `df` says.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A table row: label, figure, which budget applies.
type Row = (&'static str, fn(&Figures) -> f64, &'static str);

fn print_table(case: &Case, ours: &[Figures], theirs: &[Figures]) {
    let m = |runs: &[Figures], f: fn(&Figures) -> f64| median(runs.iter().map(f));
    let rows: [Row; 10] = [
        ("scan s (not in transfer)", |f| f.scan_s, ""),
        ("all records on B s", |f| f.records_s, ""),
        ("transfer wall s", |f| f.transfer_s, ""),
        ("MB/s", |f| f.mb_per_s, "throughput"),
        ("files/s", |f| f.files_per_s, "files"),
        ("CPU-s per GB (both)", |f| f.cpu_s_per_gb, "cpu"),
        ("peak RSS sender MiB", |f| f.rss_sender_kb / 1024.0, ""),
        (
            "peak RSS receiver MiB",
            |f| f.rss_receiver_kb / 1024.0,
            "rss",
        ),
        ("bytes written per byte", |f| f.written_per_byte, "written"),
        ("UDP receive drops", |f| f.udp_drops, ""),
    ];
    println!(
        "  medians of {} run(s)     {:>11} {:>11} {:>8}  budget",
        ours.len(),
        "photomesh",
        "syncthing",
        "ratio"
    );
    for (label, f, budget) in rows {
        let (o, t) = (m(ours, f), m(theirs, f));
        let ratio = o / t;
        let verdict = match budget {
            "files" => case.budget_files_per_s.map_or(String::new(), |min| {
                format!("≥ {min:.0}: {}", if o >= min { "met" } else { "NOT met" })
            }),
            "written" => format!("≤ 1.2: {}", if o <= 1.2 { "met" } else { "NOT met" }),
            _ if ratio.is_nan() => String::new(),
            "throughput" => format!(
                "≥ {:.1}x: {}",
                case.budget_throughput,
                if ratio >= case.budget_throughput {
                    "met"
                } else {
                    "NOT met"
                }
            ),
            "rss" => format!("≤ 1.0x: {}", if ratio <= 1.0 { "met" } else { "NOT met" }),
            "cpu" => case.budget_cpu.map_or(String::new(), |max| {
                format!(
                    "≤ {max:.1}x: {}",
                    if ratio <= max { "met" } else { "NOT met" }
                )
            }),
            _ => String::new(),
        };
        let ranges: Vec<String> = [("", ours), ("Syncthing ", theirs)]
            .into_iter()
            .filter_map(|(who, runs)| {
                let (low, high) = spread(runs, f)?;
                Some(format!("{who}{low:.2}–{high:.2}"))
            })
            .collect();
        let spread = if ranges.is_empty() {
            String::new()
        } else {
            format!("  (runs {})", ranges.join("; "))
        };
        println!("  {label:<24} {o:>11.2} {t:>11.2} {ratio:>7.2}x  {verdict}{spread}");
    }
}

/// The lowest and highest of a figure over several runs, printed beside their median: single
/// runs on this kind of machine move by a quarter, and Syncthing's by up to a half.
fn spread(runs: &[Figures], f: fn(&Figures) -> f64) -> Option<(f64, f64)> {
    let (low, high) = runs
        .iter()
        .map(f)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    (runs.len() > 1 && low < high).then_some((low, high))
}
