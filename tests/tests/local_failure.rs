//! A failure on the receiving device is that device's own, not the sender's: with its blob
//! store on a tiny filesystem that fills up while photos arrive, the receiver warns that
//! replication is paused by a failure on this device (a few times, not once per failed blob),
//! keeps the sender's connection, never records the sender as a bad peer, and finishes the
//! replication over that same connection once there is room again.
//!
//! A small filesystem is a tmpfs, which needs root: the test is skipped with a message
//! otherwise (CI runs as root).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use photomesh_tests::netns::is_root;
use photomesh_tests::{Node, WAIT, wait_until, wait_until_every};

/// How many large photos the sender gets once the two are connected, and how large each is:
/// five times what the receiver's blob store has room for. Each stays a "small" blob (below
/// 4 MiB), received whole and staged in the blob store.
const LARGE_PHOTOS: usize = 20;
const PHOTO_BYTES: usize = 1 << 20;
/// The receiver's blob store: a tmpfs of this size while the photos arrive…
const FULL_SIZE: &str = "4m";
/// …and of this size once space is freed.
const FREED_SIZE: &str = "64m";
/// How long the receiver is kept on its full disk, retrying: past two retries.
const HOLD_FULL: Duration = Duration::from_secs(12);
/// How often the receiver retries after a failure on its side (unless woken sooner).
const RETRY_AFTER: Duration = photomesh::daemon::RETRY_AFTER_LOCAL_FAILURE;

/// A tmpfs mounted on a directory, unmounted when dropped (also when the test panics: the
/// nodes, started after it, are killed before it is dropped).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Grows (or shrinks) the mounted tmpfs, keeping its files.
    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "resizing the tmpfs on {}",
            self.dir.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still in use (a process that outlived its kill): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The peer entry named `name` in a `status --json`.
fn peer<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no peer {name} in {status}"))
}

/// The live connection to the peer named `name`, as (connection ID, adopted at), if any.
fn connection(status: &serde_json::Value, name: &str) -> Option<(String, u64)> {
    let c = &peer(status, name)["connection"];
    Some((
        c["connection_id"].as_str()?.to_owned(),
        c["since_ms"].as_u64()?,
    ))
}

/// Files the blob store should not hold once everything is stored: temporary files,
/// partial blobs, and staged blobs (hidden files beside where a blob lives).
fn leftovers(blobs: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![blobs.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let under = path.parent().unwrap().strip_prefix(blobs).unwrap();
            if name.starts_with('.') || under.starts_with("tmp") || under.starts_with("partial") {
                found.push((path, meta.len()));
            }
        }
    }
    found
}

#[test]
fn a_full_disk_on_the_receiver_pauses_replication_and_is_not_blamed_on_the_sender() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (tmpfs)");
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (sender, receiver) = (
        Node::init(dir.path(), "sender"),
        Node::init(dir.path(), "receiver"),
    );
    sender.invite(&receiver, "full");
    // The receiver's blob store (and only it: its index stays on the ordinary disk) on a
    // small filesystem. Mounted before any node runs, so the nodes are stopped before it is
    // unmounted.
    let blobs_dir = receiver.home.join("blobs");
    let blobs = Tmpfs::mount(&blobs_dir, FULL_SIZE);
    // No reserve: this test is about the disk really filling up (the reserve is below).
    std::fs::write(
        receiver.home.join("config.toml"),
        "[storage]\nreserve = \"0\"\n",
    )
    .unwrap();

    // One small photo first: replication works, and the connection it went over is known
    // before the disk fills.
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(41);
    std::fs::write(
        pics.join("first.jpg"),
        photomesh_tests::samples::jpeg_with_exif(&mut rng, 32, 24, "2025:03:04 05:06:07", None),
    )
    .unwrap();
    sender.ok(&["folder", "add", pics.to_str().unwrap()]);
    sender.ok(&["scan"]);
    let log = [("PHOTOMESH_LOG", "photomesh=info")];
    let (sender_run, addr) = sender.start_run_with_env(&log);
    receiver.ok(&["peer", "add", &addr]);
    let (mut receiver_run, _) = receiver.start_run_with_env(&log);
    let before = wait_until("the first photo stored over one connection", || {
        let status = receiver.json(&["status"]);
        let stored = receiver.json(&["verify"])["blobs_checked"] == 1;
        let theirs = connection(&sender.json(&["status"]), "receiver");
        match connection(&status, "sender") {
            Some(ours) if stored && theirs.as_ref().is_some_and(|t| t.0 == ours.0) => Ok(ours),
            _ => Err(format!("{status}; the sender's side: {theirs:?}")),
        }
    });

    // Twenty times 1 MiB arrive in the sender's watched folder, renamed into place at once
    // (one batch, one announcement): five times the room the receiver has.
    let written: Vec<_> = (0..LARGE_PHOTOS)
        .map(|i| {
            let partial = pics.join(format!(".shot-{i:02}.png.part"));
            let png = photomesh_tests::samples::png_like(&mut rng, PHOTO_BYTES);
            std::fs::write(&partial, png).unwrap();
            (partial, pics.join(format!("shot-{i:02}.png")))
        })
        .collect();
    for (partial, path) in written {
        std::fs::rename(partial, path).unwrap();
    }
    let all = 1 + LARGE_PHOTOS as u64;

    // 1. The receiver runs out of space, and says so as its own failure.
    // (A receiver that blamed the sender would say so instead: that line is caught too.)
    let paused = receiver_run.wait_for_line(WAIT, |l| {
        l.contains("replication paused") || l.contains("broke the protocol")
    });
    let full_at = Instant::now();
    assert!(paused.contains("replication paused"), "{paused}");
    assert!(paused.contains("WARN"), "{paused}");
    assert!(paused.contains("a failure on this device"), "{paused}");
    assert!(paused.contains("storing received blobs"), "{paused}");
    assert!(paused.contains("No space left on device"), "{paused}");
    assert!(!paused.contains("broke the protocol"), "{paused}");

    // 2. and 3. While the disk stays full and the receiver retries, the sender is never
    // recorded as bad, and the connection from before the disk filled stays up on both
    // sides: the receiver does not close it.
    let mut checks = 0;
    while full_at.elapsed() < HOLD_FULL {
        let status = receiver.json(&["status"]);
        let sender_seen = peer(&status, "sender");
        assert!(sender_seen["bad_data"].is_null(), "{status}");
        assert_eq!(
            connection(&status, "sender").as_ref(),
            Some(&before),
            "the receiver's connection to the sender changed: {status}"
        );
        assert_eq!(
            connection(&sender.json(&["status"]), "receiver").map(|c| c.0),
            Some(before.0.clone()),
            "the sender's connection to the receiver changed"
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(checks >= 5, "only {checks} checks in {HOLD_FULL:?}");
    let held_while_full = receiver.json(&["verify"])["blobs_checked"]
        .as_u64()
        .unwrap();
    assert!(
        held_while_full < all,
        "the receiver stored all {all} blobs on a {FULL_SIZE} disk"
    );

    // 4. With room again, the next retry completes the replication over the same
    // connection.
    blobs.resize(FREED_SIZE);
    let freed_at = Instant::now();
    let report = wait_until("the receiver holds every blob", || {
        let report = receiver.json(&["verify"]);
        if report["blobs_checked"] == all {
            Ok(report)
        } else {
            Err(report.to_string())
        }
    });
    let recovered_in = freed_at.elapsed();
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    let status = receiver.json(&["status"]);
    assert!(peer(&status, "sender")["bad_data"].is_null(), "{status}");
    assert_eq!(
        connection(&status, "sender"),
        Some(before.clone()),
        "{status}"
    );
    assert_eq!(peer(&status, "sender")["blobs_held"], all, "{status}");
    // A failed attempt leaves nothing behind in the store.
    let debris = leftovers(&blobs_dir);
    let debris_bytes: u64 = debris.iter().map(|(_, len)| len).sum();

    // The logs: the sender never saw its connection closed (a receiver that blamed it would
    // have closed it as a protocol error), and the receiver neither blamed the sender nor
    // warned more than once per attempt.
    let (_, sender_log) = sender_run.terminate();
    let (_, receiver_log) = receiver_run.terminate();
    drop(blobs);
    for bad in [
        "broke the protocol",
        "protocol error",
        "bad data",
        "disconnected",
    ] {
        assert!(
            !sender_log.contains(bad),
            "the sender's log has {bad:?}:\n{sender_log}"
        );
    }
    for bad in ["broke the protocol", "does not match the blob ID"] {
        assert!(
            !receiver_log.contains(bad),
            "the receiver's log has {bad:?}:\n{receiver_log}"
        );
    }
    let warnings: Vec<&str> = receiver_log
        .lines()
        .filter(|l| l.contains("replication paused"))
        .collect();
    let full_for = freed_at.duration_since(full_at);
    let announced = sender_log
        .lines()
        .filter(|l| l.contains("recorded new photos; announcing"))
        .count();
    eprintln!(
        "{} warning(s) over {full_for:?} of full disk, {announced} announcement(s); \
         {held_while_full} of {all} blobs held while full; recovered {recovered_in:?} after \
         the remount; {} file(s) of {debris_bytes} bytes left over in the blob store; {:?} in \
         all",
        warnings.len(),
        debris.len(),
        started.elapsed()
    );
    for w in &warnings {
        eprintln!("  {w}");
    }
    assert!(debris.is_empty(), "left over in the blob store: {debris:?}");
    // The receiver retries every RETRY_AFTER_LOCAL_FAILURE, or at once when the sender
    // announces new records, and says so once until the failure clears: one warning however
    // many attempts failed (each names another staging file).
    let attempts = 2 + announced + (full_for.as_secs() / RETRY_AFTER.as_secs()) as usize;
    assert_eq!(
        warnings.len(),
        1,
        "\"replication paused\" warnings over up to {attempts} attempts:\n{}",
        warnings.join("\n")
    );
}

/// With a reserve, a nearly full disk stops the fetching before any write fails: said once,
/// shown by `status`, nothing left behind, and resumed by itself when there is room.
#[test]
fn a_nearly_full_disk_keeps_its_reserve_says_so_once_and_resumes() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (tmpfs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sender, receiver) = (
        Node::init(dir.path(), "sender"),
        Node::init(dir.path(), "receiver"),
    );
    sender.invite(&receiver, "full");
    let blobs_dir = receiver.home.join("blobs");
    let blobs = Tmpfs::mount(&blobs_dir, "16m");
    std::fs::write(
        receiver.home.join("config.toml"),
        "[storage]\nreserve = \"8M\"\n",
    )
    .unwrap();
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(43);
    for i in 0..LARGE_PHOTOS {
        let png = photomesh_tests::samples::png_like(&mut rng, PHOTO_BYTES);
        std::fs::write(pics.join(format!("shot-{i:02}.png")), png).unwrap();
    }
    sender.ok(&["folder", "add", pics.to_str().unwrap()]);
    sender.ok(&["scan"]);
    let log = [("PHOTOMESH_LOG", "photomesh=info")];
    let (_sender_run, addr) = sender.start_run_with_env(&log);
    receiver.ok(&["peer", "add", &addr]);
    let (receiver_run, _) = receiver.start_run_with_env(&log);

    // It stops short of the reserve (what it fetched is stored, and no more comes) and says
    // so in `status`.
    let mut last = u64::MAX;
    let status = wait_until_every(
        "the receiver short of room, its fetching over",
        Duration::from_secs(1),
        || {
            let status = receiver.json(&["status"]);
            let stored = receiver.json(&["verify"])["blobs_checked"]
                .as_u64()
                .unwrap();
            let settled = stored > 0 && stored == std::mem::replace(&mut last, stored);
            (settled && status["disk_short"]["blobs_waiting"].as_u64().unwrap_or(0) > 0)
                .then_some(status.clone())
                .ok_or(status.to_string())
        },
    );
    let short = &status["disk_short"];
    assert_eq!(short["reserve"], 8 << 20, "{status}");
    let stored = receiver.json(&["verify"])["blobs_checked"]
        .as_u64()
        .unwrap();
    assert!(
        stored > 0 && stored < LARGE_PHOTOS as u64,
        "{stored} stored"
    );
    assert!(
        short["free"].as_u64().unwrap() >= 7 << 20,
        "the reserve kept: {status}"
    );
    let text = receiver.ok(&["status"]);
    assert!(text.contains("Disk     nearly full"), "{text}");
    // Nothing half-written, and the stall costs no retries that fail.
    std::thread::sleep(RETRY_AFTER * 2);
    assert_eq!(leftovers(&blobs_dir), vec![]);

    // Room appears: it carries on by itself, and the note goes.
    blobs.resize("64m");
    wait_until("every blob stored", || {
        let report = receiver.json(&["verify"]);
        (report["blobs_checked"] == LARGE_PHOTOS as u64
            && report["findings"].as_array().unwrap().is_empty())
        .then_some(())
        .ok_or(report.to_string())
    });
    assert!(receiver.json(&["status"])["disk_short"].is_null());
    let (_, out) = receiver_run.terminate();
    assert_eq!(out.matches("the disk is nearly full").count(), 1, "{out}");
    assert!(!out.contains("No space left on device"), "{out}");
    assert!(out.contains("there is room on the disk again"), "{out}");
}

/// `[storage] max_bytes` caps what a device stores: it fetches up to its quota and no more,
/// says so once and in `status`, and every member's `status` shows it running out (its hello
/// tells its used, free and quota bytes). Raised, the quota lets the rest in. Needs no root.
#[test]
fn a_quota_caps_what_a_device_stores_and_every_member_sees_it_running_out() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, receiver) = (
        Node::init(dir.path(), "sender"),
        Node::init(dir.path(), "receiver"),
    );
    sender.invite(&receiver, "full");
    // Nine of the 1 MiB photos fit in 10,000,000 bytes: less than a tenth is left.
    let config = |max: &str| format!("[storage]\nmax_bytes = \"{max}\"\n");
    std::fs::write(receiver.home.join("config.toml"), config("10000000")).unwrap();
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(44);
    for i in 0..LARGE_PHOTOS {
        let png = photomesh_tests::samples::png_like(&mut rng, PHOTO_BYTES);
        std::fs::write(pics.join(format!("shot-{i:02}.png")), png).unwrap();
    }
    sender.ok(&["folder", "add", pics.to_str().unwrap()]);
    sender.ok(&["scan"]);
    let log = [("PHOTOMESH_LOG", "photomesh=info")];
    let (_sender_run, addr) = sender.start_run_with_env(&log);
    receiver.ok(&["peer", "add", &addr]);
    let (receiver_run, _) = receiver.start_run_with_env(&log);

    let status = wait_until("the receiver at its quota", || {
        let status = receiver.json(&["status"]);
        let stored = status["storage"]["used"].as_u64().unwrap_or(0);
        (stored > 9 * PHOTO_BYTES as u64 && status["disk_short"]["quota"] == 10_000_000)
            .then_some(status.clone())
            .ok_or(status.to_string())
    });
    assert!(
        status["storage"]["used"].as_u64().unwrap() <= 10_000_000,
        "{status}"
    );
    let text = receiver.ok(&["status"]);
    assert!(text.contains("Storage  quota reached"), "{text}");
    // The sender sees the receiver running out, from the receiver's hello.
    wait_until("the sender sees the receiver's quota", || {
        let status = sender.json(&["status"]);
        let storage = &peer(&status, "receiver")["storage"];
        (storage["quota"] == 10_000_000 && storage["used"].as_u64().unwrap_or(0) > 0)
            .then_some(())
            .ok_or(status.to_string())
    });
    let text = sender.ok(&["status"]);
    assert!(text.contains("quota 10.0 MB — running out"), "{text}");
    // The quota is the limit, not the disk: nothing is staged past it and no fetch fails.
    std::thread::sleep(RETRY_AFTER);
    assert_eq!(leftovers(&receiver.home.join("blobs")), vec![]);
    let (_, out) = receiver_run.terminate();
    assert_eq!(out.matches("of its 10 MB quota").count(), 1, "{out}");

    // A larger quota lets the rest in.
    std::fs::write(receiver.home.join("config.toml"), config("1G")).unwrap();
    let (_receiver_run, _) = receiver.start_run();
    wait_until("every blob stored", || {
        let report = receiver.json(&["verify"]);
        (report["blobs_checked"] == LARGE_PHOTOS as u64
            && report["findings"].as_array().unwrap().is_empty())
        .then_some(())
        .ok_or(report.to_string())
    });
}
