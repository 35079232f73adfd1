//! A damaged index is named with the one command that mends it, `verify` reports it, and
//! `photomesh repair-index` rebuilds it (issue 15): what can still be read is kept, the blob
//! store is registered again, a scan records nothing twice, and everything restores
//! byte-identical from the mesh.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use photomesh_tests::{Node, Run, WAIT, assert_has, samples, tree, wait_until};

const PAGE: usize = 4096;

/// Asserts that `run` failed (exit 2) with the message a damaged index gets: the file named,
/// and the command that repairs it; never SQLite's raw words alone.
fn assert_names_damage(what: &str, run: &Run, index: &Path) {
    assert_eq!(run.code, 2, "{what}: {run:#?}");
    let index = index.display().to_string();
    assert!(run.stderr.contains(&index), "{what}: {run:#?}");
    assert!(
        run.stderr.contains("photomesh repair-index"),
        "{what}: {run:#?}"
    );
    assert!(!run.stderr.contains("Error code"), "{what}: {run:#?}");
}

/// Runs `photomesh run` on `node` and returns how it ended (it is expected to stop at once).
fn run_node(node: &Node) -> Run {
    let (code, output) = node.spawn(&["run", "--listen", "127.0.0.1:0"]).wait(WAIT);
    Run {
        code,
        stdout: String::new(),
        stderr: output,
    }
}

/// Overwrites the two leaves of the `records` table nearest the middle of the closed index
/// at `path` (found by SQLite's `dbstat`) that hold no membership record (`pmmr…`, so that
/// the mesh survives); returns how many rows they held.
fn overwrite_two_record_pages(path: &Path) -> u64 {
    let record_leaves: Vec<usize> = {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut stmt = conn
            .prepare("SELECT pageno FROM dbstat WHERE name = 'records' AND pagetype = 'leaf'")
            .unwrap();
        // `dbstat` counts pages from 1.
        stmt.query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|p| usize::try_from(p.unwrap() - 1).unwrap())
            .collect()
    };
    let count = |page: &[u8], what: &[u8]| page.windows(4).filter(|w| *w == what).count();
    let mut bytes = fs::read(path).unwrap();
    let pages = bytes.len() / PAGE;
    let mut leaves: Vec<usize> = record_leaves
        .into_iter()
        .filter(|&p| count(&bytes[p * PAGE..(p + 1) * PAGE], b"pmmr") == 0)
        .collect();
    leaves.sort_by_key(|&p| p.abs_diff(pages / 2));
    assert!(
        leaves.len() >= 3,
        "{} record pages of {pages}",
        leaves.len()
    );
    let mut rows = 0;
    for &p in &leaves[..2] {
        let page = &mut bytes[p * PAGE..(p + 1) * PAGE];
        rows += u64::from(u16::from_be_bytes([page[3], page[4]]));
        page.fill(0xA5);
    }
    fs::write(path, bytes).unwrap();
    rows
}

/// The index of `node`, checked closed (no WAL holding pages the file does not).
fn closed_index(node: &Node) -> PathBuf {
    let index = node.home.join("index.sqlite");
    let wal = node.home.join("index.sqlite-wal");
    assert!(
        fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "no node has the index open"
    );
    index
}

#[test]
fn an_index_replaced_by_garbage_is_named_and_repair_index_gives_a_working_home() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 3, 151);
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    node.ok(&["scan"]);
    let index = closed_index(&node);
    fs::write(&index, vec![0x5a; 16384]).unwrap();

    for verb in [&["status"][..], &["scan"], &["verify"], &["photos"]] {
        assert_names_damage(&format!("{verb:?}"), &node.run(verb), &index);
    }
    assert_names_damage("run", &run_node(&node), &index);
    // `init` points to the repair too, rather than at removing the home.
    let init = node.run(&["init", "--name", "laptop"]);
    assert_eq!(init.code, 2, "{init:#?}");
    assert!(init.stderr.contains("repair-index"), "{init:#?}");
    assert_eq!(fs::read(&index).unwrap(), vec![0x5a; 16384], "written to");

    // Nothing could be read: the folder must be added again (exit 1), then all works.
    let repair = node.run(&["repair-index", "--name", "laptop"]);
    assert_eq!(repair.code, 1, "{repair:#?}");
    assert!(
        repair.stdout.contains("photomesh folder add"),
        "{repair:#?}"
    );
    let aside: Vec<_> = fs::read_dir(&node.home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("index.sqlite.damaged-") && !name.contains("-wal"))
        .filter(|name| !name.ends_with("-shm"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        fs::read(node.home.join(&aside[0])).unwrap(),
        vec![0x5a; 16384],
        "the damaged file is kept as it was"
    );
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    node.ok(&["scan"]);
    let status = node.json(&["status"]);
    assert_eq!(status["device_name"], "laptop", "{status}");
    assert_eq!(status["photo_records"], 5, "{status}");
    assert!(node.run(&["verify"]).code == 0);
}

#[test]
fn two_overwritten_pages_are_reported_repaired_and_nothing_is_recorded_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop) = (
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "laptop"),
    );
    phone.invite(&laptop, "full");
    let pics = dir.path().join("phone-pics");
    // Enough for several pages of records, each kept as its photo's fields (~50 bytes).
    samples::write_library(&pics, 700, 152);
    phone.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    phone.ok(&["scan"]);
    let laptop_pics = dir.path().join("laptop-pics");
    samples::write_library(&laptop_pics, 1, 153);
    laptop.ok(&[
        "folder",
        "add",
        laptop_pics.to_str().unwrap(),
        "--label",
        "desk",
    ]);
    laptop.ok(&["scan"]);
    let (phone_files, laptop_files) = (tree(&pics), tree(&laptop_pics));

    // Each holds a copy of the other's photos.
    let (_laptop_run, laptop_addr) = laptop.start_run();
    phone.ok(&["peer", "add", &laptop_addr]);
    let holding = |node: &Node, n: usize| {
        wait_until(&format!("{} holds {n} blobs", node.home.display()), || {
            let report = node.json(&["verify"]);
            (report["blobs_checked"] == n as u64)
                .then_some(())
                .ok_or(report.to_string())
        });
    };
    let (phone_run, _) = phone.start_run();
    holding(&laptop, phone_files.len());
    holding(&phone, laptop_files.len());
    // Stopped cleanly, so that its index is closed and whole in its file.
    assert_eq!(phone_run.terminate().0, 0);
    let before = phone.json(&["status"]);
    let photos_before = phone.json(&["photos"]).as_array().unwrap().len();
    assert_eq!(photos_before, phone_files.len() + laptop_files.len());

    let index = closed_index(&phone);
    let lost = overwrite_two_record_pages(&index);
    // `verify` reports the damage as a finding, naming the file and the repair.
    let verify = phone.run(&["verify"]);
    assert_eq!(verify.code, 1, "{verify:#?}");
    assert!(
        verify.stdout.contains(&index.display().to_string())
            && verify.stdout.contains("photomesh repair-index"),
        "{verify:#?}"
    );
    for verb in [&["scan"][..], &["photos"]] {
        assert_names_damage(&format!("{verb:?}"), &phone.run(verb), &index);
    }
    // `status` reads the counts the index keeps, not every record (issue 17): it does not
    // meet these pages, and still answers from what it reads.
    assert_eq!(phone.run(&["status"]).code, 0);
    assert_names_damage("run", &run_node(&phone), &index);

    // The repair keeps every record it can read, the folder, the peer, the blobs.
    let run = phone.run(&["repair-index", "--json"]);
    assert_eq!(run.code, 1, "records were lost: {run:#?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["records_lost"], lost, "{report}");
    assert_eq!(
        report["records_recovered"].as_u64().unwrap() + lost,
        before["records"].as_u64().unwrap(),
        "{report}"
    );
    assert_eq!(report["folders"][0]["label"], "camera", "{report}");
    assert_eq!(report["new_mesh"], false, "{report}");
    assert_eq!(report["peers_recovered"], 1, "{report}");
    assert_eq!(report["blobs_registered"], laptop_files.len(), "{report}");
    let text = phone.run(&["repair-index"]);
    assert!(text.stdout.contains("nothing to repair"), "{text:#?}");

    // The node catches up with the mesh: the laptop sends the records lost here, and only
    // then does the node's watcher rescan the folder (else it would record those files anew).
    let (phone_run, _) = phone.start_run_with_env(&[("PHOTOMESH_LOG", "photomesh=info")]);
    wait_until("the lost records are back", || {
        let status = phone.json(&["status"]);
        (status["records"] == before["records"])
            .then_some(())
            .ok_or(status["records"].to_string())
    });
    wait_until("the node's rescan after the catch-up", || {
        let status = phone.json(&["status"]);
        let last = status["last_scan"]["started_at_ms"].as_u64().unwrap_or(0);
        (last > before["last_scan"]["started_at_ms"].as_u64().unwrap())
            .then_some(())
            .ok_or(status["last_scan"].to_string())
    });
    let (code, log) = phone_run.terminate();
    assert_eq!(code, 0);
    assert!(
        log.contains("waiting for a member to send them back"),
        "{log}"
    );
    assert!(!log.contains("rescanning anyway"), "{log}");
    let after_run = phone.json(&["status"]);
    assert_eq!(
        after_run["photo_records"], before["photo_records"],
        "{after_run}"
    );
    // The scan links every file to its record: nothing new, nothing recorded twice.
    let scan = phone.json(&["scan"]);
    assert_eq!(scan["new_files"], 0, "{scan}");
    assert_eq!(scan["changed_files"], 0, "{scan}");
    assert_eq!(scan["unchanged_files"], phone_files.len(), "{scan}");
    let after = phone.json(&["status"]);
    assert_eq!(after["records"], before["records"], "{after}");
    assert_eq!(after["photo_records"], before["photo_records"], "{after}");
    assert_eq!(
        phone.json(&["photos"]).as_array().unwrap().len(),
        photos_before
    );
    assert_eq!(phone.run(&["verify"]).code, 0);

    // One original is gone from the phone: the restore fetches it from the laptop. The
    // laptop's photos come from the phone's own blob store, registered again.
    let gone = phone_files.keys().next().unwrap().clone();
    fs::remove_file(pics.join(&gone)).unwrap();
    let out = dir.path().join("restored");
    for (label, want) in [("camera", &phone_files), ("desk", &laptop_files)] {
        let to = out.join(label);
        phone.ok(&["restore", "--to", to.to_str().unwrap(), "--folder", label]);
        assert_has(&tree(&to), want);
    }
}

#[test]
fn repair_index_refuses_while_the_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let index = node.home.join("index.sqlite");
    let (running, _) = node.start_run();
    let run = node.run(&["repair-index"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("node runs on this home"), "{run:#?}");
    assert!(run.stderr.contains("stop it first"), "{run:#?}");
    let (code, _) = running.terminate();
    assert_eq!(code, 0);
    let moved_aside = fs::read_dir(&node.home)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().contains("damaged"));
    assert!(!moved_aside && index.is_file());
    // Stopped, and the index sound: nothing to repair, nothing changed.
    let run = node.run(&["repair-index"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("nothing to repair"), "{run:#?}");
}
