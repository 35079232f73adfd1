//! Nothing is left out, and whatever the mesh holds comes back: real nodes on loopback,
//! real folders, real QUIC. Restores from peers when a local copy is gone or rotten, a new
//! device restoring right after `join`, moves, FIFOs and symlinks where photos were, a closed
//! pipe, and private homes.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use photomesh_tests::{Node, WAIT, assert_has, samples, stored_blob, tree, wait_until};

/// Waits until `node` holds `want` verified blobs in its store.
fn wait_for_blobs(node: &Node, want: u64) {
    wait_until(&format!("holding {want} blobs"), || {
        let report = node.json(&["verify"]);
        if report["blobs_checked"] == want {
            Ok(())
        } else {
            Err(report.to_string())
        }
    });
}

/// A phone with a folder of `photos` sample photos (plus a screenshot and a clip), scanned,
/// and a laptop paired with it; neither runs.
fn phone_and_laptop(dir: &Path, photos: usize) -> (Node, Node, PathBuf) {
    let (phone, laptop) = (Node::init(dir, "phone"), Node::init(dir, "laptop"));
    phone.invite(&laptop, "full");
    let pics = dir.join("phone-pics");
    samples::write_library(&pics, photos, 31);
    phone.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    phone.ok(&["scan"]);
    (phone, laptop, pics)
}

#[test]
fn a_deleted_photo_and_a_rotten_stored_copy_come_back_byte_identical_from_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop, pics) = phone_and_laptop(dir.path(), 4);
    let original = tree(&pics);
    let n = original.len() as u64;
    let (laptop_run, laptop_addr) = laptop.start_run();
    phone.ok(&["peer", "add", &laptop_addr]);
    {
        let (_phone_run, _) = phone.start_run();
        wait_for_blobs(&laptop, n);
        // … and the phone has seen that the laptop holds them.
        wait_until("the phone sees the laptop's copies", || {
            let s = phone.json(&["status"]);
            (s["peers"][0]["blobs_held"] == n)
                .then_some(())
                .ok_or(s.to_string())
        });
    }

    // The phone deletes a photo to free space. With no node of its own running, restore
    // dials the laptop and gets it back, byte for byte and with its mtime.
    let gone = original.keys().next().unwrap().clone();
    fs::remove_file(pics.join(&gone)).unwrap();
    // Its status tells the truth: the original is gone, the laptop has a copy, and this
    // device no longer holds every blob it should.
    phone.ok(&["scan"]);
    let status = phone.json(&["status"]);
    let gone_list = status["originals_gone"].as_array().unwrap();
    assert_eq!(gone_list.len(), 1, "{status}");
    assert_eq!(gone_list[0]["path"], gone.to_str().unwrap());
    assert_eq!(gone_list[0]["copies_on"][0], "laptop", "{status}");
    assert_eq!(status["holding"]["should_hold"], n, "{status}");
    assert_eq!(status["holding"]["holds"], n - 1, "{status}");
    let text = phone.ok(&["status"]);
    assert!(text.contains(&format!("{} of {n} blobs", n - 1)), "{text}");
    assert!(text.contains("copies on laptop"), "{text}");
    let out = dir.path().join("phone-restore");
    let run = phone.run(&[
        "restore",
        "--to",
        out.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("from copies fetched from the mesh"),
        "{run:?}"
    );
    assert_has(&tree(&out), &original);
    let status = phone.json(&["status"]);
    assert_eq!(status["holding"]["holds"], n, "fetched back: {status}");

    // The laptop's stored copy of a photo rots. Restoring through its running node finds
    // it, evicts it and fetches a good copy from the phone.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (_phone_run, _) = phone.start_run();
    // A photo taken while the node runs is counted as recorded since the last scan (the
    // node's own rescan at start, not the earlier one by hand).
    wait_until("the node's first rescan", || {
        let s = phone.json(&["status"]);
        let ours = s["last_scan"]["started_at_ms"]
            .as_u64()
            .is_some_and(|t| t >= started);
        (s["node_running"] == true && ours && s["last_scan"]["finished_at_ms"].is_u64())
            .then_some(())
            .ok_or(s.to_string())
    });
    let scanned_at = phone.json(&["status"])["last_scan"]["started_at_ms"].clone();
    samples::write_library(&dir.path().join("new"), 1, 32);
    let new_one = tree(&dir.path().join("new")).into_keys().next().unwrap();
    fs::copy(
        dir.path().join("new").join(&new_one),
        pics.join("new-photo.jpg"),
    )
    .unwrap();
    wait_until("the watcher records the new photo", || {
        let s = phone.json(&["status"]);
        (s["recorded_since_scan"] == 1 && s["last_scan"]["started_at_ms"] == scanned_at)
            .then_some(())
            .ok_or(s.to_string())
    });
    let photos = laptop.json(&["photos"]);
    let victim = photos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] != gone.to_str().unwrap())
        .unwrap();
    let blob_hex = victim["blob_id"].as_str().unwrap();
    let stored = stored_blob(&laptop.home, blob_hex);
    let mut bytes = fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&stored, &bytes).unwrap();
    let out = dir.path().join("laptop-restore");
    let run = laptop.run(&[
        "restore",
        "--to",
        out.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("missing, changed or damaged"),
        "{run:?}"
    );
    assert_has(&tree(&out), &original);
    assert_eq!(
        laptop.json(&["verify"])["findings"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "the rotten copy was replaced"
    );
    drop(laptop_run);
}

#[test]
fn a_new_device_restores_everything_right_after_join_and_never_claims_a_restore_it_did_not_do() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("laptop-pics");
    samples::write_library(&pics, 3, 41);
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    laptop.ok(&["scan"]);
    let original = tree(&pics);

    // A tablet joins while nothing runs: with no member reachable, restore says so and fails.
    let tablet = Node::init(dir.path(), "tablet");
    laptop.invite(&tablet, "full");
    let out = dir.path().join("tablet-restore");
    let run = tablet.run(&["restore", "--to", out.to_str().unwrap()]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("no member of the mesh could be reached"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("Restored"), "{run:?}");

    // The laptop's node runs: the tablet (whose node never ran) dials it, catches up with
    // its records and restores every photo. (Found here by its configured address: mDNS
    // does not cross loopback; `lan.rs` finds it by mDNS across hosts.)
    let (_laptop_run, addr) = laptop.start_run();
    tablet.ok(&["peer", "add", &addr]);
    let run = tablet.run(&[
        "restore",
        "--to",
        out.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("Caught up with laptop"), "{run:?}");
    assert_has(&tree(&out), &original);
}

#[test]
fn a_renamed_folder_counts_the_same_photos_and_restores_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    samples::write_library(&pics.join("2024"), 3, 51);
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    node.ok(&["scan"]);
    let before = node.json(&["status"]);
    let photos = node.json(&["photos"]).as_array().unwrap().len();

    fs::rename(pics.join("2024"), pics.join("2024 Trip")).unwrap();
    let scan = node.json(&["scan"]);
    assert_eq!(scan["moved_files"], photos as u64, "{scan}");
    assert_eq!(scan["new_files"], 0, "{scan}");
    assert_eq!(scan["missing_files"], 0, "{scan}");
    let after = node.json(&["status"]);
    assert_eq!(after["safety"]["photos"], before["safety"]["photos"]);
    assert_eq!(after["safety"]["bytes"], before["safety"]["bytes"]);
    assert_eq!(after["folders"], before["folders"]);
    let listed = node.json(&["photos"]);
    assert_eq!(listed.as_array().unwrap().len(), photos);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["path"].as_str().unwrap().starts_with("2024 Trip/"))
    );

    let out = dir.path().join("restored");
    node.ok(&[
        "restore",
        "--to",
        out.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert!(!out.join("2024").exists(), "the old place is not restored");
    assert_has(&tree(&out), &tree(&pics));
    assert_eq!(tree(&out).len(), tree(&pics).len());
}

#[test]
fn every_file_is_kept_or_counted_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 2, 61);
    fs::write(pics.join("2024/02/IMG_0001.xmp"), b"<x:xmpmeta/>").unwrap();
    fs::write(pics.join("notes.txt"), b"trip notes").unwrap();
    fs::write(pics.join(".hidden.jpg"), b"\xFF\xD8\xFF\xE0 not much").unwrap();
    fs::write(pics.join(".DS_Store"), b"litter").unwrap();
    fs::create_dir(pics.join("@eaDir")).unwrap();
    fs::write(pics.join("@eaDir/thumb.jpg"), b"thumb").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", pics.join("link.jpg")).unwrap();
    make_fifo(&pics.join("pipe.jpg"));
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);

    let scan = node.json(&["scan"]);
    // 2 photos, a screenshot and a clip; the sidecar, the text file, the hidden photo.
    assert_eq!(scan["new_files"], 7, "{scan}");
    assert_eq!(scan["kinds"]["xmp"], 1, "{scan}");
    assert_eq!(scan["kinds"]["other"], 1, "{scan}");
    assert_eq!(scan["left_out"]["ignored"], 2, "{scan}");
    assert_eq!(scan["left_out"]["symlinks"], 1, "{scan}");
    assert_eq!(scan["left_out"]["not_regular"], 1, "{scan}");
    let text = node.ok(&["scan"]);
    assert!(
        text.contains("not backed up: 2 ignored by pattern, 1 symbolic link, 1 other"),
        "{text}"
    );
    let status = node.json(&["status"]);
    assert_eq!(status["last_scan"]["left_out"]["symlinks"], 1, "{status}");
    assert_eq!(status["safety"]["kinds"]["xmp"]["photos"], 1, "{status}");
    // The sidecar is kept and linked to its photo.
    let photos = node.json(&["photos"]);
    let photo = photos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "2024/02/IMG_0001.JPG")
        .expect("the photo");
    assert_eq!(photo["sidecars"][0], "2024/02/IMG_0001.xmp", "{photo}");

    // A pattern of the configuration leaves out what it names.
    fs::write(
        node.home.join("config.toml"),
        "[folders]\nignore = [\"*.txt\", \".DS_Store\", \"@eaDir\"]\n",
    )
    .unwrap();
    fs::write(pics.join("more.txt"), b"more").unwrap();
    let scan = node.json(&["scan"]);
    assert_eq!(scan["new_files"], 0, "{scan}");
    assert_eq!(scan["left_out"]["ignored"], 4, "{scan}");
    let show = node.ok(&["config", "show"]);
    assert!(show.contains("ignore = [\"*.txt\""), "{show}");
}

fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_and_a_symlink_where_photos_were_block_nothing_and_open_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop, pics) = phone_and_laptop(dir.path(), 3);
    let names: Vec<PathBuf> = tree(&pics).into_keys().collect();
    // Two recorded photos are replaced: one by a FIFO, one by a link to a file outside.
    let secret = dir.path().join("secret.jpg");
    fs::write(&secret, b"not for the mesh").unwrap();
    fs::remove_file(pics.join(&names[0])).unwrap();
    make_fifo(&pics.join(&names[0]));
    fs::remove_file(pics.join(&names[1])).unwrap();
    std::os::unix::fs::symlink(&secret, pics.join(&names[1])).unwrap();
    let opened = OpenWatch::new(&secret);

    // The phone's watcher is off, so nothing notices the swap: the node serves the blobs
    // of those two photos from what is now a FIFO and a link, or its scrub finds them first.
    fs::write(phone.home.join("config.toml"), "[watch]\nenabled = false\n").unwrap();
    let (phone_run, phone_addr) = phone.start_run();
    laptop.ok(&["peer", "add", &phone_addr]);
    let (_laptop_run, _) = laptop.start_run();
    // Every other photo replicates: nothing blocks on the FIFO.
    wait_for_blobs(&laptop, names.len() as u64 - 2);
    assert!(
        !opened.was_opened(),
        "the file outside the folder was opened"
    );
    // The node is alive and answers; the problem is said in its log, and by verify.
    assert_eq!(phone.json(&["status"])["node_running"], true);
    let verify = phone.run(&["verify"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(
        verify.stdout.contains("a FIFO, not a regular file"),
        "{verify:?}"
    );
    assert!(verify.stdout.contains("symbolic link"), "{verify:?}");
    let (_, log) = phone_run.terminate();
    assert!(log.contains("a FIFO, not a regular file"), "{log}");
    assert!(log.contains("symbolic link"), "{log}");
    assert!(
        !opened.was_opened(),
        "the file outside the folder was opened"
    );
}

/// Watches a file for opens (inotify `IN_OPEN`), to show that nothing opened it.
struct OpenWatch {
    events: std::sync::mpsc::Receiver<()>,
    _watcher: photomesh_tests::FileWatcher,
}

impl OpenWatch {
    fn new(path: &Path) -> Self {
        let (tx, events) = std::sync::mpsc::channel();
        let watcher = photomesh_tests::FileWatcher::on_open(path, move || {
            let _ = tx.send(());
        });
        Self {
            events,
            _watcher: watcher,
        }
    }

    fn was_opened(&self) -> bool {
        self.events.try_recv().is_ok()
    }
}

#[test]
fn a_closed_pipe_ends_a_listing_quietly_and_the_home_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 3, 71);
    node.ok(&["folder", "add", pics.to_str().unwrap()]);
    node.ok(&["scan"]);

    // `photomesh photos | head -1`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = std::process::Command::new(photomesh_tests::photomesh_bin())
        .arg("--home")
        .arg(&node.home)
        .arg("photos")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert!(status.stderr.is_empty(), "{status:?}");

    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&node.home), 0o700);
    assert_eq!(mode(&node.home.join("index.sqlite")), 0o600);
    assert_eq!(mode(&node.home.join("blobs")), 0o700);
    let _ = WAIT;
}

#[test]
fn a_vault_backs_up_no_folder_and_config_init_without_a_home_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Node::init(dir.path(), "laptop");
    let nas = Node::init(dir.path(), "nas");
    laptop.invite(&nas, "vault");
    let pics = dir.path().join("pics");
    fs::create_dir_all(&pics).unwrap();
    let add = nas.run(&["folder", "add", pics.to_str().unwrap()]);
    assert_eq!(add.code, 2, "{add:?}");
    assert!(add.stderr.contains("this device is a vault"), "{add:?}");
    let status = nas.ok(&["status"]);
    assert!(
        status.contains("Vault    stores every photo sealed"),
        "{status}"
    );
    assert!(!status.contains("folder add"), "{status}");
    assert!(!status.contains("photomesh scan"), "{status}");

    let nowhere = Node::at(dir.path().join("no-home"));
    let run = nowhere.run(&["config", "init"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("run `photomesh init` first"), "{run:?}");
    assert_eq!(
        run.stderr.matches("No such file").count(),
        0,
        "no raw OS error, and not twice: {run:?}"
    );
}

#[test]
fn a_folder_renamed_under_a_running_node_is_recorded_as_moved() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    samples::write_library(&pics.join("2024"), 3, 91);
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    node.ok(&["scan"]);
    let count = node.json(&["photos"]).as_array().unwrap().len();
    let manual = node.json(&["status"])["last_scan"]["started_at_ms"].clone();
    let (_run, _) = node.start_run();
    wait_until("the node's own first rescan", || {
        let s = node.json(&["status"]);
        let ours = &s["last_scan"];
        (ours["started_at_ms"] != manual && ours["finished_at_ms"].is_u64())
            .then_some(())
            .ok_or(s.to_string())
    });
    let rescanned = node.json(&["status"])["last_scan"]["started_at_ms"].clone();

    fs::rename(pics.join("2024"), pics.join("2024 Trip")).unwrap();
    // The watcher sees the folder go and come back under its new name: every photo in it
    // is the same photo, moved.
    wait_until("the photos listed at their new place", || {
        let photos = node.json(&["photos"]);
        let list = photos.as_array().unwrap();
        let moved = list
            .iter()
            .all(|p| p["path"].as_str().unwrap().starts_with("2024 Trip/"));
        (moved && list.len() == count)
            .then_some(())
            .ok_or(photos.to_string())
    });
    let status = node.json(&["status"]);
    assert_eq!(
        status["last_scan"]["started_at_ms"], rescanned,
        "the watcher, not a rescan, saw the move"
    );
    assert_eq!(status["safety"]["photos"], count as u64, "{status}");
    assert_eq!(
        status["originals_gone"].as_array().unwrap().len(),
        0,
        "{status}"
    );
}

#[test]
fn a_file_name_reaches_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    let written = samples::write_library(&pics, 1, 62);
    // A name that would clear the screen and forge a line of its own, written as it is.
    let evil = "evil\n\u{1b}[2JAll photos are safe.jpg";
    fs::copy(&written[0], pics.join(evil)).unwrap();
    node.ok(&["folder", "add", pics.to_str().unwrap()]);
    node.ok(&["scan"]);
    let text = node.ok(&["photos"]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.lines()
            .any(|l| l.contains("evil\\n\\u{1b}[2JAll photos are safe.jpg")),
        "{text}"
    );
    // The JSON keeps the name as it is (JSON escapes it).
    let photos = node.json(&["photos"]);
    assert!(
        photos.as_array().unwrap().iter().any(|p| p["path"] == evil),
        "{photos}"
    );
}
