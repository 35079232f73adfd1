//! One node on real folders: every verb of the foundation issue, the bad inputs, and the
//! guarantee that source files are never touched. Runs the real `photomesh` binary.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use photomesh_tests::samples::{self, MARKER, Rng};
use photomesh_tests::{Node, snapshot};
use serde_json::Value;

/// A fresh node with one folder of sample photos added.
fn node_with_library(dir: &Path, photos: usize) -> Node {
    let node = Node::at(dir.join("home"));
    node.ok(&["init", "--name", "laptop"]);
    let pics = dir.join("pics");
    samples::write_library(&pics, photos, 7);
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    node
}

fn folder_stats<'a>(status: &'a Value, label: &str) -> &'a Value {
    status["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == label)
        .unwrap_or_else(|| panic!("no folder {label} in {status}"))
}

#[test]
fn init_scan_status_photos_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 10);
    let pics = dir.path().join("pics");

    let scan = node.json(&["scan"]);
    assert_eq!(scan["new_files"], 12, "{scan}");
    assert_eq!(scan["problems"].as_array().unwrap().len(), 0);

    let status = node.json(&["status"]);
    let camera = folder_stats(&status, "camera");
    assert_eq!(camera["photos"], 12);
    let on_disk: u64 = samples_size(&pics);
    assert_eq!(camera["bytes"], on_disk);
    assert_eq!(status["device_name"], "laptop");
    let id = status["device_id"].as_str().unwrap();
    assert_eq!(id.len(), 35, "{id}");

    // The EXIF capture time of a real JPEG, and the QuickTime time of the MP4, were read.
    let photos = node.json(&["photos"]);
    let photos = photos.as_array().unwrap();
    assert_eq!(photos.len(), 12);
    let img0 = photos
        .iter()
        .find(|p| p["path"] == "2024/01/IMG_0000.JPG")
        .unwrap();
    // 2024:01:01 10:00:00 local, +01:00.
    assert_eq!(img0["capture_local_seconds"], 1_704_103_200);
    assert_eq!(img0["capture_utc_offset_minutes"], 60);
    assert_eq!(img0["media_type"], "jpeg");
    let clip = photos.iter().find(|p| p["path"] == "clip.mp4").unwrap();
    assert_eq!(clip["capture_local_seconds"], 1_704_067_200);
    assert_eq!(clip["media_type"], "mp4");

    // Restore: byte-identical, same mtimes, at LABEL/PATH.
    let out = dir.path().join("restored");
    let report = node.json(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(report["restored"], 12, "{report}");
    assert_same_files(&pics, &out.join("camera"));

    // A second restore finds everything already there and writes nothing.
    let again = node.json(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(again["restored"], 0);
    assert_eq!(again["already_present"], 12);

    // --folder restores straight into the target.
    let out2 = dir.path().join("restored-camera");
    node.ok(&[
        "restore",
        "--to",
        out2.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert_same_files(&pics, &out2);
}

fn samples_size(dir: &Path) -> u64 {
    snapshot(dir).values().map(|(b, ..)| b.len() as u64).sum()
}

fn assert_same_files(original: &Path, restored: &Path) {
    let a = snapshot(original);
    let b = snapshot(restored);
    assert_eq!(a.len(), b.len(), "file count differs");
    for (path, (bytes, secs, nanos)) in &a {
        let rel = path.strip_prefix(original).unwrap();
        let (rbytes, rsecs, rnanos) = b
            .get(&restored.join(rel))
            .unwrap_or_else(|| panic!("{} not restored", rel.display()));
        assert!(bytes == rbytes, "{} differs", rel.display());
        assert_eq!((secs, nanos), (rsecs, rnanos), "{} mtime", rel.display());
    }
}

#[test]
fn source_files_are_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 6);
    let pics = dir.path().join("pics");
    // A non-photo and a photo with bad content sit in the folder too.
    fs::write(pics.join("notes.txt"), b"shopping list").unwrap();
    fs::write(pics.join("broken.jpg"), b"not really a jpeg").unwrap();
    let before = snapshot(&pics);

    node.run(&["scan"]);
    node.ok(&["status"]);
    node.ok(&["photos"]);
    node.ok(&["verify"]);
    node.run(&["restore", "--to", dir.path().join("out").to_str().unwrap()]);
    // Restoring onto the source folder itself must not change a byte either.
    node.ok(&[
        "restore",
        "--to",
        pics.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    node.run(&["scan"]);
    node.ok(&["folder", "remove", "camera"]);

    assert_eq!(snapshot(&pics), before, "a source file changed");
}

#[test]
fn rescan_skips_unchanged_and_keeps_old_versions() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 5);
    let pics = dir.path().join("pics");
    assert_eq!(node.json(&["scan"])["new_files"], 7);

    let again = node.json(&["scan"]);
    assert_eq!(again["unchanged_files"], 7);
    assert_eq!(again["bytes_read"], 0);

    // Edit one photo: a new record, the old one kept.
    let edited = pics.join("2024/01/IMG_0000.JPG");
    let mut rng = Rng::new(99);
    fs::write(
        &edited,
        samples::jpeg_with_exif(&mut rng, 32, 32, "2024:01:01 11:00:00", None),
    )
    .unwrap();
    let third = node.json(&["scan"]);
    assert_eq!(third["changed_files"], 1, "{third}");
    assert_eq!(third["unchanged_files"], 6);
    let status = node.json(&["status"]);
    assert_eq!(status["photo_records"], 8);
    let photos = node.json(&["photos"]);
    let img = photos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "2024/01/IMG_0000.JPG")
        .unwrap();
    assert_eq!(img["capture_local_seconds"], 1_704_106_800);

    // Touching a file without changing it records nothing new.
    let f = fs::File::options()
        .write(true)
        .open(pics.join("screenshot.png"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let fourth = node.json(&["scan"]);
    assert_eq!(fourth["changed_files"], 0);
    assert_eq!(fourth["new_files"], 0);
    assert_eq!(node.json(&["status"])["photo_records"], 8);

    // A vanished file is reported as missing and its record stays.
    fs::remove_file(pics.join("clip.mp4")).unwrap();
    let fifth = node.json(&["scan"]);
    assert_eq!(fifth["missing_files"], 1);
    assert_eq!(node.json(&["status"])["photo_records"], 8);
}

#[test]
fn verify_reports_missing_changed_and_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 4);
    let pics = dir.path().join("pics");
    node.ok(&["scan"]);
    let clean = node.json(&["verify"]);
    assert_eq!(clean["sources_checked"], 6);
    assert_eq!(clean["findings"].as_array().unwrap().len(), 0);

    // Bit rot: same size, same mtime, one byte different.
    let rotten = pics.join("2024/02/IMG_0001.JPG");
    let meta = fs::metadata(&rotten).unwrap();
    let mtime = meta.modified().unwrap();
    let mut bytes = fs::read(&rotten).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&rotten, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&rotten)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // Changed: rewritten with a new size.
    fs::write(pics.join("screenshot.png"), b"\x89PNG\r\n\x1a\nshorter").unwrap();
    // Missing.
    fs::remove_file(pics.join("clip.mp4")).unwrap();

    let run = node.run(&["verify", "--json"]);
    assert_eq!(
        run.code, 1,
        "verify must fail when something is wrong: {run:?}"
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let kind_of = |name: &str| -> String {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["item"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not reported: {report}"))["kind"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(kind_of("IMG_0001.JPG"), "corrupt");
    assert_eq!(kind_of("screenshot.png"), "changed");
    assert_eq!(kind_of("clip.mp4"), "missing");
    assert_eq!(report["findings"].as_array().unwrap().len(), 3);

    // Restoring the rotten photo refuses to write bad bytes.
    let out = dir.path().join("out");
    let run = node.run(&["restore", "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 1);
    assert!(!out.join("camera/2024/02/IMG_0001.JPG").exists());
    assert!(out.join("camera/2024/01/IMG_0000.JPG").exists());
}

#[test]
fn restore_never_overwrites_a_different_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 2);
    node.ok(&["scan"]);
    let out = dir.path().join("out");
    let target = out.join("camera/2024/01/IMG_0000.JPG");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, b"someone else's file").unwrap();
    let run = node.run(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("not overwritten"), "{}", run.stdout);
    assert_eq!(fs::read(&target).unwrap(), b"someone else's file");
    assert!(out.join("camera/2024/02/IMG_0001.JPG").exists());
}

#[test]
fn folder_add_list_remove_and_bad_folders() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 1);
    let listed = node.json(&["folder", "list"]);
    assert_eq!(listed[0]["label"], "camera");

    // A path that does not exist, a file, an overlapping folder, a taken label.
    let missing = node.run(&["folder", "add", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("nope"), "{}", missing.stderr);
    let file = dir.path().join("file.jpg");
    fs::write(&file, b"x").unwrap();
    let not_dir = node.run(&["folder", "add", file.to_str().unwrap()]);
    assert_eq!(not_dir.code, 2);
    assert!(
        not_dir.stderr.contains("not a folder"),
        "{}",
        not_dir.stderr
    );
    let inner = dir.path().join("pics/2024");
    let overlap = node.run(&["folder", "add", inner.to_str().unwrap()]);
    assert_eq!(overlap.code, 2);
    assert!(overlap.stderr.contains("overlaps"), "{}", overlap.stderr);
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let taken = node.run(&[
        "folder",
        "add",
        other.to_str().unwrap(),
        "--label",
        "camera",
    ]);
    assert_eq!(taken.code, 2);
    assert!(taken.stderr.contains("already used"), "{}", taken.stderr);
    node.ok(&["folder", "add", other.to_str().unwrap()]);
    assert_eq!(node.json(&["folder", "list"]).as_array().unwrap().len(), 2);

    node.ok(&["scan"]);
    node.ok(&["folder", "remove", "camera"]);
    let unknown = node.run(&["folder", "remove", "camera"]);
    assert_eq!(unknown.code, 2);
    let listed = node.json(&["folder", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["label"], "other");
    // Removing a folder forgets nothing already recorded.
    assert_eq!(node.json(&["status"])["photo_records"], 3);
}

#[test]
fn a_vanished_folder_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 3);
    node.ok(&["scan"]);
    let pics = dir.path().join("pics");
    let moved = dir.path().join("unmounted");
    fs::rename(&pics, &moved).unwrap();

    let run = node.run(&["scan", "--json"]);
    assert_eq!(run.code, 1);
    let scan: Value = serde_json::from_str(&run.stdout).unwrap();
    let problem = &scan["problems"][0];
    assert!(problem["path"].as_str().unwrap().ends_with("pics"));
    assert!(
        problem["reason"]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "{problem}"
    );
    // Nothing recorded was forgotten.
    let status = node.json(&["status"]);
    assert_eq!(folder_stats(&status, "camera")["photos"], 5);
    assert_eq!(status["photo_records"], 5);
    let verify = node.run(&["verify"]);
    assert_eq!(verify.code, 1);
    assert!(
        verify.stdout.contains("gone or not mounted"),
        "{}",
        verify.stdout
    );

    // The folder comes back: all is well again, nothing re-read.
    fs::rename(&moved, &pics).unwrap();
    let back = node.json(&["scan"]);
    assert_eq!(back["unchanged_files"], 5);
    node.ok(&["verify"]);
}

#[test]
fn unreadable_files_are_reported_and_the_scan_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 3);
    let pics = dir.path().join("pics");
    fs::write(pics.join("fake.jpg"), b"this is text, not a JPEG").unwrap();
    let locked = pics.join("locked.jpg");
    let mut rng = Rng::new(5);
    fs::write(
        &locked,
        samples::jpeg_with_exif(&mut rng, 8, 8, "2020:01:01 00:00:00", None),
    )
    .unwrap();
    // Unreadable by permissions; root reads anything, so only a non-root run can check it.
    let root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(true);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();

    let run = node.run(&["scan", "--json"]);
    assert_eq!(run.code, if root { 0 } else { 1 }, "{run:?}");
    let scan: Value = serde_json::from_str(&run.stdout).unwrap();
    let problems = scan["problems"].as_array().unwrap();
    // A file whose content is not what its name says is kept all the same, as what its
    // content is: nothing in a folder is left out for its name.
    assert!(
        !problems
            .iter()
            .any(|p| p["path"].as_str().unwrap().ends_with("fake.jpg")),
        "{problems:?}"
    );
    let photos = node.json(&["photos"]);
    let fake = photos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "fake.jpg")
        .expect("fake.jpg recorded");
    assert_eq!(fake["media_type"], "other");
    if !root {
        let locked = problems
            .iter()
            .find(|p| p["path"].as_str().unwrap().ends_with("locked.jpg"))
            .expect("locked.jpg reported");
        assert!(
            locked["reason"]
                .as_str()
                .unwrap()
                .contains("permission denied")
        );
    }
    // The readable files were all recorded.
    let expected_new = if root { 7 } else { 6 };
    assert_eq!(scan["new_files"], expected_new, "{scan}");
    let status = node.json(&["status"]);
    assert_eq!(
        status["last_scan"]["problems"].as_array().unwrap().len(),
        problems.len()
    );
}

#[test]
fn init_refuses_an_existing_home_and_a_damaged_index_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 1);
    node.ok(&["scan"]);
    let again = node.run(&["init", "--name", "other"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(node.json(&["status"])["device_name"], "laptop");

    let nowhere = Node::at(dir.path().join("no-home"));
    let run = nowhere.run(&["status"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("photomesh init"), "{}", run.stderr);

    let index = node.home.join("index.sqlite");
    let _ = fs::remove_file(node.home.join("index.sqlite-wal"));
    let _ = fs::remove_file(node.home.join("index.sqlite-shm"));
    let garbage = vec![0x5a; 16384];
    fs::write(&index, &garbage).unwrap();
    for verb in [&["status"][..], &["scan"], &["verify"]] {
        let run = node.run(verb);
        assert_eq!(run.code, 2, "{verb:?}: {run:?}");
        assert!(run.stderr.contains("index.sqlite"), "{}", run.stderr);
        assert!(run.stderr.contains("damaged"), "{}", run.stderr);
    }
    assert_eq!(
        fs::read(&index).unwrap(),
        garbage,
        "the damaged index was written to"
    );
}

#[test]
fn home_files_hold_no_plaintext() {
    // The index holds sealed records and hashes, never photo bytes or file names in clear.
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_library(dir.path(), 3);
    node.ok(&["scan"]);
    for entry in fs::read_dir(&node.home).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = fs::read(&path).unwrap();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER),
                "{} holds photo plaintext",
                path.display()
            );
        }
    }
}

#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::at(dir.path().join("home"));
    node.ok(&["init", "--name", "pi"]);
    for f in ["device.key", "library.keys"] {
        let mode = fs::metadata(node.home.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}
