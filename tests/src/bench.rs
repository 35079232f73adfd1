//! What the benchmarks share: the machine they ran on, a process's CPU time, the page cache,
//! medians, and the generated photo library of the replication bench's case (a), kept under
//! `target/bench-data/` and reused by every bench that wants it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

const MIB: usize = 1024 * 1024;

/// The CPU model (`/proc/cpuinfo`), the number of cores and the memory, in one line.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "CPU unknown".into());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(
            || "memory unknown".into(),
            |kb| format!("{:.0} GiB RAM", kb / 1024.0 / 1024.0),
        );
    format!(
        "{cpu}, {} cores, {memory}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// The load averages over 1, 5 and 15 minutes (`/proc/loadavg`): other work on the machine
/// disturbs a bench's figures.
pub fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// utime + stime of a running process, in seconds (`/proc/PID/stat`).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    stat_seconds(&stat, 11)
}

/// utime + stime of the children this process has waited for, in seconds: the difference
/// around running one command is that command's CPU time.
pub fn children_cpu_seconds() -> Result<f64> {
    let stat = fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    stat_seconds(&stat, 13)
}

/// Two clock-tick fields of a `stat` line, starting at `first` counted from the field after
/// the command name (utime is 11, cutime 13), summed and in seconds.
fn stat_seconds(stat: &str, first: usize) -> Result<f64> {
    // The command name is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let a: u64 = fields.get(first).context("short stat")?.parse()?;
    let b: u64 = fields.get(first + 1).context("short stat")?.parse()?;
    Ok((a + b) as f64 / clock_ticks()?)
}

fn clock_ticks() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Writes back and drops the page cache (needs root); false if it could not.
pub fn drop_page_cache() -> bool {
    let synced = Command::new("sync").status().is_ok_and(|s| s.success());
    synced && fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}

/// The median, minimum and maximum of some figures (NaN when there are none).
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// The middle figure (the upper one of an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        match (v.first(), v.last()) {
            (Some(&min), Some(&max)) => Self {
                median: v[v.len() / 2],
                min,
                max,
            },
            _ => Self {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            },
        }
    }
}

/// A generated photo library.
#[derive(Debug, Clone)]
pub struct Library {
    /// Its folder.
    pub dir: PathBuf,
    /// Its files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// What it is, in words.
    pub title: String,
}

/// The replication bench's case (a) under `data`: 300 photos of 3 MiB and two videos of
/// 100 MiB (1.15 GB), or in `quick` mode 20 of 1 MiB and two of 8 MiB; generated once, the
/// same bytes as `benches/replicate.rs` writes, so either bench reuses the other's.
pub fn library_a(data: &Path, quick: bool) -> Result<Library> {
    let (photos, photo_len, videos, video_len) = if quick {
        (20, MIB, 2, 8 * MIB)
    } else {
        (300, 3 * MIB, 2, 100 * MIB)
    };
    let dir = data.join(format!(
        "replicate-a-{photos}x{photo_len}-{videos}x{video_len}"
    ));
    let files = (photos + videos) as u64;
    let bytes = (photos * photo_len + videos * video_len) as u64;
    let marker = dir.with_extension("complete");
    if !marker.exists() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let start = Instant::now();
        let mut buf = vec![0u8; photo_len];
        for i in 0..photos {
            fill(&mut buf, i as u64);
            buf[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
            let sub = dir.join(format!("{:03}", i / 100));
            fs::create_dir_all(&sub)?;
            fs::write(sub.join(format!("IMG_{i:05}.JPG")), &buf)?;
        }
        let mut buf = vec![0u8; video_len];
        for i in 0..videos {
            fill(&mut buf, 1_000_000 + i as u64);
            buf[..12].copy_from_slice(b"\0\0\0\x18ftypisom");
            fs::write(dir.join(format!("VID_{i:02}.MP4")), &buf)?;
        }
        // Beside the folder, not in it, where the nodes would see it.
        fs::write(&marker, b"")?;
        println!(
            "(generated {files} files in {} in {:.1} s)",
            dir.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(Library {
        title: format!(
            "{photos} photos of {} MiB + {videos} videos of {} MiB = {files} files, {:.2} GB",
            photo_len / MIB,
            video_len / MIB,
            bytes as f64 / 1e9
        ),
        dir,
        files,
        bytes,
    })
}

/// Pseudo-random content (incompressible, different per `seed`).
fn fill(buf: &mut [u8], seed: u64) {
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(buf);
}

/// Peak resident set size of a running process (`VmHWM`), in KiB.
pub fn peak_rss_kb(pid: u32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no VmHWM value")?
        .parse()?)
}

/// How many photo records a node's index holds, and how many blobs it says are stored: read
/// only, on a connection kept in `db` between polls (until the index exists, an error).
pub fn index_progress(index: &Path, db: &mut Option<rusqlite::Connection>) -> Result<(u64, u64)> {
    count_rows(
        index,
        db,
        "SELECT (SELECT count(*) FROM photo_rows), (SELECT count(*) FROM blobs WHERE stored = 1)",
    )
}

/// Like [`index_progress`], with every sealed record counted (what a vault, which cannot
/// read them, receives) instead of photo records. Read from the index's tallies, which its
/// triggers keep: counting a million rows every poll would compete with the nodes measured.
pub fn index_records_progress(
    index: &Path,
    db: &mut Option<rusqlite::Connection>,
) -> Result<(u64, u64)> {
    count_rows(
        index,
        db,
        "SELECT (SELECT n FROM tallies WHERE name = 'records'),
                (SELECT n FROM tallies WHERE name = 'stored')",
    )
}

fn count_rows(
    index: &Path,
    db: &mut Option<rusqlite::Connection>,
    sql: &str,
) -> Result<(u64, u64)> {
    if db.is_none() {
        let conn = rusqlite::Connection::open_with_flags(
            index,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(1))?;
        *db = Some(conn);
    }
    let conn = db.as_ref().context("connection")?;
    let (a, b): (i64, i64) = conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((u64::try_from(a).unwrap_or(0), u64::try_from(b).unwrap_or(0)))
}

/// Where an index's bytes go: each table and index with its share of the file, in bytes per
/// record over `records` (SQLite's `dbstat`, pages counted whole, free space included),
/// largest first.
pub fn index_bytes_by_object(index: &Path, records: u64) -> Result<Vec<(String, f64)>> {
    let conn = rusqlite::Connection::open_with_flags(
        index,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let per = records.max(1) as f64;
    rows.map(|r| Ok(r.map(|(name, bytes)| (name, bytes as f64 / per))?))
        .collect()
}

/// What a transport benchmark's figures depend on besides the CPU model, a line each: the
/// kernel, the CPU's crypto instructions, the socket buffer limits, loopback's MTU, and the
/// UDP segmentation offloads quinn finds (GSO sends many datagrams in one call, GRO receives
/// them so).
pub fn transport_facts() -> Vec<String> {
    let read = |path: &str| {
        fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into())
    };
    let flags: Vec<String> = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("flags") || l.starts_with("Features"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, f)| f.split_whitespace().map(str::to_owned).collect())
        })
        .unwrap_or_default();
    let crypto: Vec<&str> = [
        "aes",
        "pclmulqdq",
        "vaes",
        "vpclmulqdq",
        "avx2",
        "avx512f",
        "sha_ni",
        "pmull",
        "sha2",
    ]
    .into_iter()
    .filter(|f| flags.iter().any(|g| g == f))
    .collect();
    let offloads = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| quinn::udp::UdpSocketState::new((&socket).into()))
        .map_or_else(
            |e| format!("unknown ({e})"),
            |state| {
                format!(
                    "GSO up to {} segments, GRO {} segments",
                    state.max_gso_segments(),
                    state.gro_segments()
                )
            },
        );
    vec![
        format!("kernel: {}", read("/proc/sys/kernel/osrelease")),
        format!(
            "CPU crypto instructions: {}",
            if crypto.is_empty() {
                "none".into()
            } else {
                crypto.join(" ")
            }
        ),
        format!(
            "socket buffers: rmem_max {}, wmem_max {}",
            read("/proc/sys/net/core/rmem_max"),
            read("/proc/sys/net/core/wmem_max")
        ),
        format!("loopback MTU: {}", read("/sys/class/net/lo/mtu")),
        format!("UDP offloads: {offloads}"),
        "allocator: the system's (glibc malloc)".into(),
    ]
}

/// The UDP datagrams this host's stack dropped on receipt so far (`/proc/net/snmp`:
/// `RcvbufErrors`, a socket's buffer full, and `InErrors`, which counts them too); with
/// `netns`, that network namespace's stack.
pub fn udp_receive_errors(netns: Option<&str>) -> Result<u64> {
    let snmp = match netns {
        None => fs::read_to_string("/proc/net/snmp")?,
        Some(netns) => {
            let out = Command::new("ip")
                .args(["netns", "exec", netns, "cat", "/proc/net/snmp"])
                .output()?;
            String::from_utf8(out.stdout)?
        }
    };
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (
        udp.next().context("no Udp header")?,
        udp.next().context("no Udp values")?,
    );
    let at = names
        .split_whitespace()
        .position(|n| n == "InErrors")
        .context("no InErrors")?;
    Ok(values
        .split_whitespace()
        .nth(at)
        .context("no InErrors value")?
        .parse()?)
}

/// Bytes a process caused to be written to storage so far (`/proc/PID/io`, `write_bytes`:
/// counted as it dirties pages, so writeback after it exits is included).
pub fn written_bytes(pid: u32) -> Result<u64> {
    let io = fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("reading /proc/{pid}/io"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .context("no write_bytes")?
        .trim()
        .parse()
        .context("write_bytes")
}

/// The filesystem a bench writes to, as far as it changes the figures.
pub struct Filesystem {
    /// `ext4`, `xfs`, `tmpfs`…
    pub kind: String,
    /// The block device's name (`vda`), when it is one.
    pub device: Option<String>,
    /// For ext4, whether it has a journal (jbd2 lists a journaled ext4 in `/proc/fs/jbd2`).
    pub journal: Option<bool>,
}

impl Filesystem {
    /// The filesystem mounted where `dir` is (`/proc/self/mountinfo`: the longest mount point
    /// that holds it).
    pub fn of(dir: &Path) -> Result<Self> {
        let dir = fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
        let mounts = fs::read_to_string("/proc/self/mountinfo")?;
        let (kind, source) = mounts
            .lines()
            .filter_map(|line| {
                // ID parent major:minor root MOUNT-POINT options [optional…] - TYPE SOURCE …
                let (before, after) = line.split_once(" - ")?;
                let point = before.split(' ').nth(4)?;
                let mut after = after.split(' ');
                Some((point, after.next()?, after.next()?))
            })
            .filter(|(point, ..)| dir.starts_with(point))
            .max_by_key(|(point, ..)| point.len())
            .map(|(_, kind, source)| (kind.to_owned(), source.to_owned()))
            .context("no mount holds the bench's data folder")?;
        let device = source.strip_prefix("/dev/").map(str::to_owned);
        let journal = match (&*kind, &device) {
            ("ext4", Some(device)) => Some(
                fs::read_dir("/proc/fs/jbd2")
                    .map(|entries| {
                        entries.flatten().any(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with(&format!("{device}-"))
                        })
                    })
                    .unwrap_or(false),
            ),
            _ => None,
        };
        Ok(Self {
            kind,
            device,
            journal,
        })
    }

    /// Whether creating files here is slow for a while after deleting many: ext4 without
    /// a journal does not reuse an inode freed in the last 60 s, or in the last 360 s while
    /// its inode-table block is dirty (`recently_deleted` in `fs/ext4/ialloc.c`), and it
    /// reads every such inode while looking for a free one. Creating files beside many
    /// freed ones dirties their blocks again, so the slow phase lasts minutes.
    pub fn slow_after_deletions(&self) -> bool {
        self.journal == Some(false)
    }

    /// One line for a bench's header.
    pub fn describe(&self) -> String {
        let device = self.device.as_deref().unwrap_or("no block device");
        match self.journal {
            Some(true) => format!("{} on {device}, with a journal", self.kind),
            Some(false) => format!(
                "{} on {device}, without a journal: files are created slowly for up to \
                 {} s after many were deleted",
                self.kind,
                DELETION_WINDOW.as_secs()
            ),
            None => format!("{} on {device}", self.kind),
        }
    }
}

/// How long ext4 without a journal passes over freed inodes whose block was dirtied again:
/// `RECENTCY_MIN + RECENTCY_DIRTY` in `fs/ext4/ialloc.c` (60 + 300 s since Linux 5.8), and
/// a second.
pub const DELETION_WINDOW: std::time::Duration = std::time::Duration::from_secs(361);

/// The marker in which a bench notes when it deleted many files under `data`.
fn deletion_marker(data: &Path) -> PathBuf {
    data.join(".mass-deletion")
}

/// Removes a bench's run folder and notes when (for [`wait_out_deletions`]).
pub fn remove_runs(data: &Path, runs: &Path) -> Result<()> {
    fs::remove_dir_all(runs).with_context(|| format!("removing {}", runs.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    fs::write(deletion_marker(data), now.as_secs().to_string())?;
    Ok(())
}

/// On a filesystem that is slow after deletions ([`Filesystem::slow_after_deletions`]),
/// waits until [`DELETION_WINDOW`] has passed since a bench last removed its runs under
/// `data`, saying so; returns the time waited.
pub fn wait_out_deletions(data: &Path, filesystem: &Filesystem) -> std::time::Duration {
    let waited = Instant::now();
    if !filesystem.slow_after_deletions() {
        return waited.elapsed();
    }
    let Some(deleted) = fs::read_to_string(deletion_marker(data))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return waited.elapsed();
    };
    let deleted = std::time::UNIX_EPOCH + std::time::Duration::from_secs(deleted);
    let until = deleted + DELETION_WINDOW;
    // A marker from the future (the clock was set back) waits one window at most.
    if let Ok(left) = until.duration_since(std::time::SystemTime::now()) {
        let left = left.min(DELETION_WINDOW);
        println!(
            "  (waiting {} s: the last bench deleted its runs {} s ago, and new files are \
             slow until {} s after that)",
            left.as_secs(),
            DELETION_WINDOW.as_secs() - left.as_secs(),
            DELETION_WINDOW.as_secs()
        );
        std::thread::sleep(left);
    }
    waited.elapsed()
}
