//! Replication with real nodes on loopback: running nodes reconcile their record sets and
//! their held-blob sets over nQUIC, fetch the records they lack, and fetch the blobs they
//! lack with verified streaming — a source serving its originals sealed on the fly.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use photomesh_tests::{Node, Spawned, WAIT, wait_until, wait_until_every};

/// Waits until `status` shows `field` at `want`.
fn wait_for_status(node: &Node, field: &str, want: u64) {
    wait_until(&format!("{field} = {want}"), || {
        let status = node.json(&["status"]);
        if status[field] == want {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
}

#[test]
fn records_reach_a_full_peer_and_a_vault_and_new_ones_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, pi) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "pi"),
    );
    let pics = dir.path().join("pics");
    // 200 photos (plus a screenshot and a short clip) and two 100 MiB videos.
    photomesh_tests::samples::write_library(&pics, 200, 11);
    let mut rng = photomesh_tests::samples::Rng::new(12);
    for (name, taken) in [("beach.mp4", 1_719_000_000), ("party.mp4", 1_720_000_000)] {
        let video = photomesh_tests::samples::mp4_like(&mut rng, taken, 100 << 20);
        std::fs::write(pics.join(name), video).unwrap();
    }
    const FILES: u64 = 204;
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    laptop.invite(&nas, "full");
    laptop.invite(&pi, "vault");
    let laptop_status = laptop.json(&["status"]);
    assert_eq!(laptop_status["photo_records"], FILES);

    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    pi.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = nas.start_run();
    let (_pi_run, _) = pi.start_run();

    // The NAS can read what it received; the vault holds it all sealed.
    wait_for_status(&nas, "photo_records", FILES);
    // Every record on all three (the photos', the members', and the key shares the NAS
    // writes for the laptop once it runs).
    let records = photomesh_tests::wait_same_records(&[&laptop, &nas, &pi]);
    assert_eq!(pi.json(&["status"])["photo_records"], 0);
    assert_lists_photo(&nas, "2024/01/IMG_0000.JPG");

    // The blobs follow: the NAS and the vault store every blob, verified.
    wait_for_blobs(&nas, FILES);
    wait_for_blobs(&pi, FILES);

    // The laptop sees every photo on three distinct devices: itself, the NAS and the vault.
    let status = wait_until("three copies of every photo", || {
        let status = laptop.json(&["status"]);
        if status["safety"]["at_goal"] == FILES {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    });
    let safety = &status["safety"];
    assert_eq!(safety["replica_goal"], 3);
    assert_eq!(safety["below_goal"].as_array().unwrap().len(), 0);
    let peers = status["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2);
    assert!(peers.iter().all(|p| p["blobs_held"] == FILES), "{status}");
    // A vault reads no record, so it reports no per-photo safety.
    assert_eq!(pi.json(&["status"])["safety"], serde_json::Value::Null);

    // The NAS restores byte-identical files with their mtimes, from its own replicas.
    let out = dir.path().join("restored");
    let report = nas.json(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(report["restored"], FILES, "{report}");
    let originals = photomesh_tests::snapshot(&pics);
    let restored = photomesh_tests::snapshot(&out.join("pics"));
    assert_eq!(originals.len(), restored.len());
    for (path, (bytes, secs, nanos)) in &originals {
        let rel = path.strip_prefix(&pics).unwrap();
        let (rb, rs, rn) = &restored[&out.join("pics").join(rel)];
        assert!(bytes == rb, "{} differs", rel.display());
        assert_eq!((secs, nanos), (rs, rn), "{} mtime", rel.display());
    }

    // Nothing under the vault's home holds a plaintext marker or a file name.
    for file in photomesh_tests::snapshot(&pi.home).keys() {
        let bytes = std::fs::read(file).unwrap();
        for needle in [photomesh_tests::samples::MARKER, b"IMG_0000", b"screenshot"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?}",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    // A photo written into the laptop's folder while everything runs follows with no
    // command: the watcher records it once it is renamed into place and announces it.
    let mut rng = photomesh_tests::samples::Rng::new(77);
    let partial = pics.join(".new.jpg.part");
    std::fs::write(
        &partial,
        photomesh_tests::samples::jpeg_with_exif(&mut rng, 16, 16, "2025:06:01 09:00:00", None),
    )
    .unwrap();
    std::fs::rename(&partial, pics.join("new.jpg")).unwrap();
    wait_for_status(&nas, "photo_records", FILES + 1);
    wait_for_status(&pi, "records", records + 1);
    wait_for_blobs(&nas, FILES + 1);
    wait_for_blobs(&pi, FILES + 1);
    let photos = nas.json(&["photos"]);
    let names: Vec<_> = photos
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["path"].as_str())
        .filter(|p| p.contains("new"))
        .collect();
    assert_eq!(names, ["new.jpg"], "only the final name is recorded");

    // The photo vanishing from the laptop's folder deletes nothing anywhere. (A later photo
    // is the barrier: once it has arrived, the watcher has seen the removal before it.)
    std::fs::remove_file(pics.join("new.jpg")).unwrap();
    std::fs::write(
        pics.join("later.jpg"),
        photomesh_tests::samples::jpeg_with_exif(&mut rng, 16, 16, "2025:06:02 09:00:00", None),
    )
    .unwrap();
    wait_for_status(&nas, "photo_records", FILES + 2);
    wait_for_blobs(&nas, FILES + 2);
    wait_for_blobs(&pi, FILES + 2);
    assert_lists_photo(&nas, "new.jpg");
    // The laptop's own scan reports it missing, and keeps its record.
    let scan = laptop.json(&["scan"]);
    assert_eq!(scan["missing_files"], 1, "{scan}");
    assert_eq!(laptop.json(&["status"])["photo_records"], FILES + 2);
}

/// Waits until `node` stores the one video blob, verified, then asserts that `restore` gives
/// back `video` byte for byte as `videos/NAME`.
fn assert_stores_and_restores_the_video(
    node: &Node,
    dir: &tempfile::TempDir,
    name: &str,
    video: &[u8],
) {
    wait_for_blobs(node, 1);
    let out = dir.path().join("restored");
    node.ok(&["restore", "--to", out.to_str().unwrap()]);
    assert!(std::fs::read(out.join("videos").join(name)).unwrap() == video);
}

/// Asserts that `node`'s `photos` lists one at `path`.
fn assert_lists_photo(node: &Node, path: &str) {
    let photos = node.json(&["photos"]);
    assert!(
        photos.as_array().unwrap().iter().any(|p| p["path"] == path),
        "no {path} in {photos}"
    );
}

/// Waits until `verify` has checked `want` stored blobs, all good.
fn wait_for_blobs(node: &Node, want: u64) {
    let report = wait_until(&format!("holding {want} blobs"), || {
        let report = node.json(&["verify"]);
        if report["blobs_checked"] == want {
            Ok(report)
        } else {
            Err(report.to_string())
        }
    });
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn photos_added_on_two_devices_apart_end_up_on_both_once_they_meet() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, phone) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
    );
    laptop.invite(&phone, "full");

    // Apart: each records photos of its own.
    let laptop_pics = dir.path().join("laptop-pics");
    let phone_pics = dir.path().join("phone-pics");
    photomesh_tests::samples::write_library(&laptop_pics, 3, 21);
    photomesh_tests::samples::write_library(&phone_pics, 4, 22);
    laptop.ok(&[
        "folder",
        "add",
        laptop_pics.to_str().unwrap(),
        "--label",
        "laptop",
    ]);
    phone.ok(&[
        "folder",
        "add",
        phone_pics.to_str().unwrap(),
        "--label",
        "camera",
    ]);
    laptop.ok(&["scan"]);
    phone.ok(&["scan"]);
    assert_eq!(laptop.json(&["status"])["photo_records"], 5);
    assert_eq!(phone.json(&["status"])["photo_records"], 6);

    // They meet: the phone knows where the laptop runs.
    let (_laptop_run, addr) = laptop.start_run();
    phone.ok(&["peer", "add", &addr]);
    let (_phone_run, _) = phone.start_run();
    for node in [&laptop, &phone] {
        wait_for_status(node, "photo_records", 11);
        wait_for_blobs(node, 11 - own_originals(node));
    }
    // Each can restore the other's photos, byte for byte.
    let out = dir.path().join("from-phone");
    laptop.ok(&[
        "restore",
        "--to",
        out.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    for (path, (bytes, ..)) in photomesh_tests::snapshot(&phone_pics) {
        let rel = path.strip_prefix(&phone_pics).unwrap();
        assert!(
            std::fs::read(out.join(rel)).unwrap() == bytes,
            "{}",
            rel.display()
        );
    }
}

/// How many photos a node holds as originals (it stores no blob for those).
fn own_originals(node: &Node) -> u64 {
    node.json(&["status"])["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["photos"].as_u64().unwrap())
        .sum()
}

#[test]
fn a_device_paired_elsewhere_is_learned_and_reached_and_a_revocation_reaches_all() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, tablet) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "tablet"),
    );
    laptop.invite(&nas, "full");
    let (_laptop_run, laptop_addr) = laptop.start_run();
    nas.ok(&["peer", "add", &laptop_addr]);
    let (_nas_run, nas_addr) = nas.start_run();
    photomesh_tests::wait_same_records(&[&laptop, &nas]);

    // The tablet is paired by the NAS only, and knows only where the NAS runs.
    nas.invite(&tablet, "full");
    tablet.ok(&["peer", "add", &nas_addr]);
    let (_tablet_run, _) = tablet.start_run();

    // The laptop learns of the tablet (membership) and where it runs (from the NAS), and
    // reaches it itself.
    let tablet_id = tablet.json(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until("the laptop reaches the tablet", || {
        let devices = laptop.json(&["devices"]);
        let seen = devices
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device_id"] == tablet_id.as_str() && !d["last_seen_ms"].is_null());
        if seen {
            Ok(())
        } else {
            Err(devices.to_string())
        }
    });

    // Revoked on the laptop, the tablet is soon refused by the NAS too.
    laptop.ok(&["revoke", &tablet_id]);
    wait_until("the NAS refuses the tablet", || {
        let ping = tablet.run(&["ping", &nas_addr]);
        if ping.code != 0 && ping.stderr.contains("not trusted") {
            Ok(())
        } else {
            Err(format!("{ping:?}"))
        }
    });
}

#[test]
fn a_node_killed_mid_video_resumes_without_starting_over() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    laptop.invite(&nas, "full");
    let pics = dir.path().join("videos");
    std::fs::create_dir_all(&pics).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(5);
    let video = photomesh_tests::samples::mp4_like(&mut rng, 1_700_000_000, 100 << 20);
    std::fs::write(pics.join("holiday.mp4"), &video).unwrap();
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);

    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    let log = [("PHOTOMESH_LOG", "photomesh=info")];
    let (nas_run, _) = nas.start_run_with_env(&log);

    // Kill the NAS with SIGKILL as soon as it has persisted some verified progress.
    let partial_dir = nas.home.join("blobs/partial");
    let mut nas_run = Some(nas_run);
    let (persisted, received) = wait_until_every(
        "the transfer persists progress",
        Duration::from_millis(1),
        || {
            let progress = std::fs::read_dir(&partial_dir).ok().and_then(|entries| {
                entries
                    .filter_map(Result::ok)
                    .find(|e| e.path().extension().is_some_and(|x| x == "progress"))
            });
            let progress = progress.ok_or("no progress file yet")?;
            let persisted = photomesh_tests::progress_verified(
                &std::fs::read_to_string(progress.path()).unwrap_or_default(),
            );
            if persisted == 0 {
                return Err("nothing persisted yet".to_owned());
            }
            drop(nas_run.take()); // SIGKILL
            let received = std::fs::metadata(progress.path().with_extension(""))
                .map(|m| m.len())
                .unwrap_or(0);
            Ok((persisted, received))
        },
    );
    assert!(
        persisted < video.len() as u64,
        "the transfer finished before the kill"
    );

    // Restarted, it asks only for the rest, and ends with the exact video.
    let (mut nas_run, _) = nas.start_run_with_env(&log);
    let line = nas_run.wait_for_line(WAIT, |l| l.contains("resuming blob transfer"));
    let from: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("from="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no from= in {line:?}"));
    assert_eq!(from, persisted, "{line}");
    let verified = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("verified="))
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(verified, Some(persisted), "{line}");
    // Bytes fetched twice: what arrived after the last persisted mark, before the kill.
    let refetched = received.saturating_sub(from);
    assert!(
        refetched <= 8 << 20,
        "{refetched} bytes fetched again of {}",
        video.len()
    );
    assert_stores_and_restores_the_video(&nas, &dir, "holiday.mp4", &video);
}

/// Three full devices (the laptop invited the NAS and the desktop) and a 100 MiB video named
/// `name` in the laptop's scanned folder. Returns the devices and the video.
fn three_full_devices_and_a_video(
    dir: &tempfile::TempDir,
    seed: u64,
    name: &str,
) -> (Node, Node, Node, Vec<u8>) {
    let (laptop, nas, desktop) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "desktop"),
    );
    laptop.invite(&nas, "full");
    laptop.invite(&desktop, "full");
    let pics = dir.path().join("videos");
    std::fs::create_dir_all(&pics).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(seed);
    let video = photomesh_tests::samples::mp4_like(&mut rng, 1_710_000_000, 100 << 20);
    std::fs::write(pics.join(name), &video).unwrap();
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    (laptop, nas, desktop, video)
}

/// Runs the laptop and the NAS until the NAS holds the laptop's blob, then the desktop
/// (logging at info) with both their addresses. Returns the three running nodes.
fn run_replica_then_desktop(
    laptop: &Node,
    nas: &Node,
    desktop: &Node,
) -> (Spawned, Spawned, Spawned) {
    let (laptop_run, laptop_addr) = laptop.start_run();
    nas.ok(&["peer", "add", &laptop_addr]);
    let (nas_run, nas_addr) = nas.start_run();
    wait_for_blobs(nas, 1);
    desktop.ok(&["peer", "add", &laptop_addr]);
    desktop.ok(&["peer", "add", &nas_addr]);
    let (desktop_run, _) = desktop.start_run_with_env(&[("PHOTOMESH_LOG", "photomesh=info")]);
    (laptop_run, nas_run, desktop_run)
}

#[test]
fn a_video_two_peers_hold_is_fetched_in_ranges_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, desktop, video) = three_full_devices_and_a_video(&dir, 8, "wedding.mp4");

    // The laptop holds the original, the NAS a replica of it.
    // The desktop, started afterwards, fetches it from both at once.
    let (_laptop_run, _nas_run, mut desktop_run) =
        run_replica_then_desktop(&laptop, &nas, &desktop);
    let line = desktop_run.wait_for_line(WAIT, |l| {
        l.contains("blob received in ranges from several peers")
    });
    let by_peer: Vec<u64> = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes_by_peer="))
        .unwrap_or_else(|| panic!("no bytes_by_peer= in {line:?}"))
        .trim_matches('"')
        .split(',')
        .map(|entry| entry.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(by_peer.len(), 2, "{line}");
    assert!(by_peer.iter().all(|&n| n > 0), "{line}");
    // Every verified byte came from one of them, none twice.
    let sealed: u64 = by_peer.iter().sum();
    assert!(sealed >= video.len() as u64, "{line}");
    assert!(sealed < video.len() as u64 + (1 << 20), "{line}");
    // The whole blob verified and stored.
    assert_stores_and_restores_the_video(&desktop, &dir, "wedding.mp4", &video);
}

/// The three devices running, the desktop fetching the video from both others, and which
/// of them is the helper (sending ranges from the back): `(helper, helper's short ID, the
/// other, the desktop)`, as soon as the helper has started.
fn desktop_fetching_from_two(
    laptop: &Node,
    nas: &Node,
    desktop: &Node,
) -> (Spawned, String, Spawned, Spawned) {
    let short =
        |node: &Node| node.json(&["status"])["device_id"].as_str().unwrap()[..8].to_string();
    let laptop_id = short(laptop);
    let (laptop_run, nas_run, mut desktop_run) = run_replica_then_desktop(laptop, nas, desktop);
    let line = desktop_run.wait_for_line(WAIT, |l| {
        l.contains("fetching ranges of a blob from another peer too")
    });
    let helper = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))
        .unwrap_or_else(|| panic!("no peer= in {line:?}"))
        .to_string();
    if helper == laptop_id {
        (laptop_run, helper, nas_run, desktop_run)
    } else {
        (nas_run, helper, laptop_run, desktop_run)
    }
}

#[test]
fn a_peer_dropping_out_mid_video_leaves_its_part_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, desktop, video) = three_full_devices_and_a_video(&dir, 9, "concert.mp4");
    let (helper_run, helper, _still_running, mut desktop_run) =
        desktop_fetching_from_two(&laptop, &nas, &desktop);
    // As soon as the second peer sends ranges, it shuts down (its connection closes).
    helper_run.terminate();
    // Its unfinished part goes to the one left, which ends the video. The stopping peer
    // said so (it reset its answer and closed): not left to QUIC's idle timeout.
    let over = desktop_run.wait_for_line(WAIT, |l| {
        l.contains("the others take it over") && l.contains(&format!("peer={helper}"))
    });
    assert!(!over.contains("timed out"), "{over}");
    assert_stores_and_restores_the_video(&desktop, &dir, "concert.mp4", &video);
}

#[test]
fn a_peer_vanishing_mid_video_without_a_word_is_given_up_within_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, desktop, video) = three_full_devices_and_a_video(&dir, 10, "recital.mp4");
    let (helper_run, helper, _still_running, mut desktop_run) =
        desktop_fetching_from_two(&laptop, &nas, &desktop);
    // The helper freezes, as a phone leaving the network does: no close, no packet.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &helper_run.pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    // Its part goes to the other once the connection's idle timeout (10 s) passes; with
    // quinn's default (30 s) this wait would run out first.
    let over = desktop_run.wait_for_line(Duration::from_secs(20), |l| {
        l.contains("the others take it over") && l.contains(&format!("peer={helper}"))
    });
    assert!(over.contains("timed out"), "{over}");
    assert_stores_and_restores_the_video(&desktop, &dir, "recital.mp4", &video);
    // (Dropping `helper_run` kills the frozen process.)
}
