//! Crash consistency of a receiver (issue 15): a full device killed with SIGKILL 20 times at
//! random moments of a 337 MB replication (48 photos of 1 to 6 MiB, on both sides of the
//! 4 MiB line between small blobs fetched whole and large ones fetched into partial files,
//! and videos of 64 and 96 MiB) and restarted each time ends holding every blob, with
//! `verify` clean on both devices, nothing left in its staging and partial folders, and a
//! byte-identical restore from its own store.
//!
//! The kill moments come from a seed, printed on every run (`PHOTOMESH_TEST_SEED=N` replays
//! the same targets): 20 targets spread over the library's bytes, sorted; each restart waits
//! until the receiver's verified bytes (blobs stored in its index, plus the chunk groups its
//! partial files' progress records) reach the next target, then kills it after a further 0
//! to 250 ms drawn from the seed, so kills land between and inside commits, at startup (when
//! a target is already passed), during reconciliation and mid-stream. The whole test takes
//! 25 to 30 s in a debug build on two cores.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use photomesh_tests::samples::{self, Rng};
use photomesh_tests::{Node, assert_has, tree, wait_until, wait_until_every};

/// How many times the receiver is killed.
const KILLS: usize = 20;
const MIB: usize = 1 << 20;

#[test]
fn a_receiver_killed_20_times_mid_replication_ends_whole_verified_and_tidy() {
    let seed = seed();
    println!("kill_receiver: seed {seed} (replay with PHOTOMESH_TEST_SEED={seed})");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    laptop.invite(&nas, "full");
    let pics = dir.path().join("pics");
    let (files, bytes) = write_library(&pics);
    println!("kill_receiver: {files} files, {:.1} MB", bytes as f64 / 1e6);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    let blobs: BTreeSet<String> = laptop
        .json(&["photos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["blob_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        blobs.len() as u64,
        files,
        "every photo has a blob of its own"
    );

    let (laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    // The NAS restarts where it ran, as a device does.
    let listen = photomesh_tests::free_udp_addr();

    // Kill targets: verified bytes on the NAS, spread over the library.
    let mut rng = Rng::new(seed);
    let mut targets: Vec<u64> = (0..KILLS).map(|_| rng.next_u64() % bytes).collect();
    targets.sort_unstable();
    for (i, target) in targets.iter().enumerate() {
        let (nas_run, _) = nas.start_run_at(&listen, &[]);
        let reached = wait_until_every(
            &format!("kill {i}: the NAS verifies {target} bytes"),
            Duration::from_millis(5),
            || {
                let now = verified_bytes(&nas.home);
                if now >= *target {
                    Ok(now)
                } else {
                    Err(format!("{now} bytes"))
                }
            },
        );
        // A random moment past the target: a chosen instant, not an awaited event.
        let jitter = rng.next_u64() % 250;
        std::thread::sleep(Duration::from_millis(jitter));
        drop(nas_run); // SIGKILL
        println!(
            "kill {i:>2}: target {:>5.1} MB, reached {:>5.1} MB, +{jitter:>3} ms, at {:>5.1} s",
            *target as f64 / 1e6,
            reached as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }

    // Started once more, it finishes: every blob stored, and the laptop counts two copies
    // of every photo (the goal of a mesh of two).
    let (nas_run, _) = nas.start_run_at(&listen, &[]);
    wait_until_every(
        "the NAS stores every blob",
        Duration::from_millis(50),
        || {
            let stored = stored_blobs(&nas.home);
            if stored.len() as u64 == files {
                Ok(())
            } else {
                Err(format!("{} of {files} stored", stored.len()))
            }
        },
    );
    println!(
        "kill_receiver: every blob stored at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    wait_until("two copies of every photo", || {
        let status = laptop.json(&["status"]);
        let safety = &status["safety"];
        if safety["replica_goal"] == 2 && safety["at_goal"] == files {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    let (code, out) = nas_run.terminate();
    assert_eq!(code, 0, "{out}");
    let (code, out) = laptop_run.terminate();
    assert_eq!(code, 0, "{out}");

    // Exactly the library's blobs, in the index and on disk, and nothing else: no staged,
    // temporary, partial or quarantined file (looked at before any command reopens the
    // store, which would clear a dead process's staged files).
    assert_eq!(stored_blobs(&nas.home), blobs, "the NAS's index");
    assert_store_holds_exactly(&nas.home.join("blobs"), &blobs);

    // `verify` is clean on both.
    let report = laptop.json(&["verify"]);
    assert_eq!(report["sources_checked"], files, "{report}");
    let report = nas.json(&["verify"]);
    assert_eq!(report["blobs_checked"], files, "{report}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");

    // With the laptop stopped, the NAS restores every photo from its own store, byte for
    // byte with its mtime.
    let out = dir.path().join("restored");
    let report = nas.json(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(report["restored"], files, "{report}");
    assert_eq!(report["fetched"], 0, "{report}");
    let (want, got) = (tree(&pics), tree(&out.join("pics")));
    assert_eq!(want.len(), got.len());
    assert_has(&got, &want);
    println!(
        "kill_receiver: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The run's seed: `PHOTOMESH_TEST_SEED`, or one drawn from the clock.
fn seed() -> u64 {
    std::env::var("PHOTOMESH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Writes the library (always the same bytes): 48 photos of 1 to 6 MiB, real JPEG headers
/// with EXIF padded with random bytes, and two videos. Returns its files and bytes.
fn write_library(dir: &Path) -> (u64, u64) {
    let mut rng = Rng::new(15);
    let mut bytes = 0;
    for i in 0..48 {
        let taken = format!("2024:{:02}:{:02} 12:00:00", i % 12 + 1, i % 28 + 1);
        let mut photo = samples::jpeg_with_exif(&mut rng, 16, 16, &taken, None);
        let len = MIB + rng.next_u64() as usize % (5 * MIB);
        let head = photo.len();
        photo.resize(len.max(head), 0);
        blake3::Hasher::new()
            .update(&(i as u64).to_le_bytes())
            .finalize_xof()
            .fill(&mut photo[head..]);
        write(
            &dir.join(format!("{:02}/IMG_{i:04}.JPG", i % 12 + 1)),
            &photo,
        );
        bytes += photo.len() as u64;
    }
    for (i, len) in [64 * MIB, 96 * MIB].into_iter().enumerate() {
        let video = samples::mp4_like(&mut rng, 1_720_000_000 + i as i64, len);
        write(&dir.join(format!("VID_{i:04}.MP4")), &video);
        bytes += video.len() as u64;
    }
    (50, bytes)
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// A read-only connection to a node's index (it may be running, or killed mid-write).
fn index(home: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_with_flags(
        home.join("index.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db
}

/// The blobs a node's index says are stored, in hex.
fn stored_blobs(home: &Path) -> BTreeSet<String> {
    let db = index(home);
    let mut query = db
        .prepare("SELECT blob_id FROM blobs WHERE stored = 1")
        .unwrap();
    query
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|id| hex(&id.unwrap()))
        .collect()
}

/// The bytes a node has verified: its stored blobs, and the ranges its partial files'
/// progress records.
fn verified_bytes(home: &Path) -> u64 {
    let stored: f64 = index(home)
        .query_row(
            "SELECT total(sealed_len) FROM blobs WHERE stored = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let partial: u64 = fs::read_dir(home.join("blobs/partial"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "progress"))
        .map(|e| {
            photomesh_tests::progress_verified(&fs::read_to_string(e.path()).unwrap_or_default())
        })
        .sum();
    stored as u64 + partial
}

/// Asserts that the blob store at `root` holds each of `blobs` where it belongs and no other
/// file: `tmp/` and `partial/` empty, no staged (hidden) file, no quarantine.
fn assert_store_holds_exactly(root: &Path, blobs: &BTreeSet<String>) {
    let mut found = BTreeSet::new();
    let mut stray: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !path.is_dir() {
            stray.push(path);
        } else if name == "tmp" || name == "partial" {
            stray.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if name.len() == 2 {
            for blob in fs::read_dir(&path).unwrap() {
                let blob = blob.unwrap().path();
                let file = blob.file_name().unwrap().to_str().unwrap().to_owned();
                if blob.is_file() && file.starts_with(&name) && blobs.contains(&file) {
                    found.insert(file);
                } else {
                    stray.push(blob);
                }
            }
        } else {
            // `quarantine/`, or anything else.
            stray.push(path);
        }
    }
    assert!(stray.is_empty(), "left in the blob store: {stray:?}");
    assert_eq!(&found, blobs, "the blob store's files");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
