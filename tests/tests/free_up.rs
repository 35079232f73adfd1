//! Free up space (issue 16): on a phone beside a laptop and a NAS that hold every photo,
//! `free-up-space` removes the originals with two verified copies elsewhere and nothing else;
//! the photos stay safe and in the library, the watcher, the scan and the running node do
//! not take them for deleted or fetch them back, and `restore` brings them back byte for byte
//! with their mtimes, after which the scan links them to their records again.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use photomesh_tests::{Node, Spawned, assert_has, samples, tree, wait_until};

/// The paths (`LABEL/PATH`) `photomesh photos` lists.
fn photos(node: &Node) -> BTreeSet<String> {
    node.json(&["photos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["folder"].as_str().unwrap(),
                p["path"].as_str().unwrap()
            )
        })
        .collect()
}

/// How many blobs `node` stores, every one verified.
fn stored(node: &Node) -> u64 {
    node.json(&["verify"])["blobs_checked"].as_u64().unwrap()
}

/// The paths (`LABEL/PATH`) `status` lists below the replica goal.
fn below_goal(status: &serde_json::Value) -> BTreeSet<String> {
    status["safety"]["below_goal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{}/{}",
                b["folder"].as_str().unwrap(),
                b["path"].as_str().unwrap()
            )
        })
        .collect()
}

/// The `folder/path` of each entry of a report list.
fn listed(list: &serde_json::Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["folder"].as_str().unwrap(),
                p["path"].as_str().unwrap()
            )
        })
        .collect()
}

/// Writes a new photo into `dir`.
fn new_photo(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    fs::write(
        &path,
        samples::png_like(&mut samples::Rng::new(seed), 6_000),
    )
    .unwrap();
    path
}

fn start(nodes: &[&Node]) -> Vec<Spawned> {
    nodes.iter().map(|n| n.start_run().0).collect()
}

#[test]
fn free_up_space_removes_only_originals_safe_elsewhere_and_restore_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop, nas) = (
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    phone.invite(&laptop, "full");
    phone.invite(&nas, "full");
    let camera = dir.path().join("camera");
    let screens = dir.path().join("screens");
    samples::write_library(&camera, 4, 161);
    samples::write_library(&screens, 2, 162);
    for (folder, label) in [(&camera, "camera"), (&screens, "screens")] {
        phone.ok(&["folder", "add", folder.to_str().unwrap(), "--label", label]);
    }
    phone.ok(&["scan"]);
    let library = photos(&phone);
    let camera_photos: BTreeSet<String> = library
        .iter()
        .filter(|p| p.starts_with("camera/"))
        .cloned()
        .collect();
    let (phone_run, addr) = phone.start_run();
    for node in [&laptop, &nas] {
        node.ok(&["peer", "add", &addr]);
    }
    let peers = start(&[&laptop, &nas]);
    let total = library.len() as u64;
    wait_until("every photo on three devices, as the phone counts", || {
        let s = phone.json(&["status"]);
        (s["safety"]["at_goal"] == total && s["safety"]["replica_goal"] == 3)
            .then_some(())
            .ok_or(s["safety"].to_string())
    });
    let camera_before = tree(&camera);
    let screens_before = tree(&screens);

    // The laptop and the NAS go away; the phone takes one more photo, which no other device
    // holds.
    for run in peers {
        run.terminate();
    }
    new_photo(&camera, "late.png", 1);
    wait_until("the watcher records late.png", || {
        photos(&phone)
            .contains("camera/late.png")
            .then_some(())
            .ok_or("not yet".to_owned())
    });

    // With the default --older-than (24h) everything is too recent.
    let dry = phone.json(&["free-up-space", "--dry-run"]);
    assert_eq!(dry["removed"].as_array().unwrap().len(), 0, "{dry}");
    assert!(
        dry["kept"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["reason"] == "too_recent"),
        "{dry}"
    );
    // Once late.png is older than 1 s, a dry run names every other camera photo, and keeps
    // late.png for its lack of copies.
    let args = ["free-up-space", "--folder", "camera", "--older-than", "1s"];
    let dry = wait_until("late.png is older than a second", || {
        let mut with = args.to_vec();
        with.push("--dry-run");
        let dry = phone.json(&with);
        let late = dry["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["path"] == "late.png")
            .cloned();
        match late {
            Some(k) if k["reason"] == "below_copies" => Ok(dry),
            other => Err(format!("{other:?}")),
        }
    });
    let eligible: BTreeSet<String> = camera_photos.clone();
    assert_eq!(listed(&dry["removed"]), eligible, "{dry}");
    assert_eq!(
        listed(&dry["kept"]),
        BTreeSet::from(["camera/late.png".to_owned()])
    );
    assert!(
        dry["kept"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("0 verified copies"),
        "{dry}"
    );
    assert_eq!(dry["dry_run"], true);
    let before_dry = tree(&camera);
    let text = phone.ok(&[&args[..], &["--dry-run"][..]].concat());
    assert!(text.contains("Would free"), "{text}");
    assert!(text.contains("Nothing was changed"), "{text}");
    assert_eq!(tree(&camera), before_dry, "a dry run changes nothing");
    assert_eq!(before_dry.len(), camera_before.len() + 1);

    // The real run, with the phone's node (and its watcher) running.
    let done = phone.json(&args);
    assert_eq!(done["dry_run"], false);
    assert_eq!(listed(&done["removed"]), eligible, "{done}");
    let freed: u64 = camera_before
        .iter()
        .map(|(_, (bytes, _, _))| bytes.len() as u64)
        .sum();
    assert_eq!(done["bytes_freed"], freed, "{done}");
    for removed in done["removed"].as_array().unwrap() {
        assert_eq!(removed["copies_on"], serde_json::json!(["laptop", "nas"]));
    }
    let restore = done["restore"][0].as_str().unwrap();
    assert!(
        restore.contains(&format!(
            "restore --folder camera --to {}",
            camera.display()
        )),
        "{restore}"
    );
    let left: Vec<PathBuf> = tree(&camera).into_keys().collect();
    assert_eq!(left, vec![PathBuf::from("late.png")], "only late.png stays");
    assert_eq!(
        tree(&screens),
        screens_before,
        "the other folder is untouched"
    );

    // One more photo: once the watcher has recorded it, it has seen the removals before it.
    new_photo(&camera, "after.png", 2);
    wait_until("the watcher records after.png", || {
        photos(&phone)
            .contains("camera/after.png")
            .then_some(())
            .ok_or("not yet".to_owned())
    });
    let status = phone.json(&["status"]);
    assert_eq!(status["originals_gone"], serde_json::json!([]), "{status}");
    assert_eq!(status["released"]["photos"], eligible.len() as u64);
    assert_eq!(status["released"]["bytes"], freed);
    assert_eq!(status["free_up_now"]["photos"], 0, "all recorded today");
    assert_eq!(
        below_goal(&status),
        BTreeSet::from(["camera/after.png".to_owned(), "camera/late.png".to_owned()]),
        "the released photos are safe with two copies elsewhere"
    );
    let text = phone.ok(&["status"]);
    assert!(text.contains("Freed    "), "{text}");
    assert!(!text.contains("Gone     "), "{text}");
    // A full scan takes nothing for missing, moved or new, and records nothing.
    let records = status["photo_records"].clone();
    let scan = phone.json(&["scan"]);
    assert_eq!(
        (
            &scan["missing_files"],
            &scan["moved_files"],
            &scan["new_files"]
        ),
        (&0.into(), &0.into(), &0.into()),
        "{scan}"
    );
    let status = phone.json(&["status"]);
    assert_eq!(status["photo_records"], records);
    assert_eq!(status["originals_gone"], serde_json::json!([]));
    assert_eq!(status["released"]["photos"], eligible.len() as u64);

    // The others come back. The phone does not fetch the photos it released (it holds
    // every photo otherwise): a photo the NAS adds is the only blob it stores.
    let _peers = start(&[&laptop, &nas]);
    wait_until("late.png and after.png on three devices", || {
        let s = phone.json(&["status"]);
        below_goal(&s)
            .is_empty()
            .then_some(())
            .ok_or(s["safety"].to_string())
    });
    // The phone told the mesh what it released (a `Release` record): the laptop, too, counts
    // those photos safe with their two copies, not below a goal of three.
    wait_until("the laptop counts the released photos safe", || {
        let s = laptop.json(&["status"]);
        below_goal(&s)
            .is_empty()
            .then_some(())
            .ok_or(s["safety"].to_string())
    });
    let nas_pics = dir.path().join("nas-pics");
    fs::create_dir_all(&nas_pics).unwrap();
    new_photo(&nas_pics, "nas.png", 3);
    nas.ok(&[
        "folder",
        "add",
        nas_pics.to_str().unwrap(),
        "--label",
        "nas",
    ]);
    nas.ok(&["scan"]);
    wait_until("the phone stores the NAS's photo", || {
        let n = stored(&phone);
        (n >= 1).then_some(()).ok_or(n.to_string())
    });
    assert_eq!(stored(&phone), 1, "released photos are not fetched back");

    // `restore` fetches them, byte for byte with their mtimes.
    let back = dir.path().join("back");
    let out = phone.json(&[
        "restore",
        "--to",
        back.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert_eq!(out["not_restored"], serde_json::json!([]), "{out}");
    assert_has(&tree(&back), &camera_before);

    // Restored into the folder (the node still running), the next scan takes them back as
    // they were: the same photos, held here again.
    let records = phone.json(&["status"])["photo_records"].clone();
    phone.ok(&[
        "restore",
        "--to",
        camera.to_str().unwrap(),
        "--folder",
        "camera",
    ]);
    assert_has(&tree(&camera), &camera_before);
    let scan = phone.json(&["scan"]);
    assert_eq!(
        (
            &scan["new_files"],
            &scan["changed_files"],
            &scan["missing_files"]
        ),
        (&0.into(), &0.into(), &0.into()),
        "{scan}"
    );
    let status = phone.json(&["status"]);
    assert_eq!(status["photo_records"], records, "no photo recorded again");
    assert_eq!(status["originals_gone"], serde_json::json!([]));
    assert_eq!(status["released"]["photos"], 0, "{status}");
    assert_eq!(
        status["holding"]["holds"], status["holding"]["should_hold"],
        "held here again"
    );

    // With no node running, another folder is freed the same way, and a scan is quiet.
    phone_run.terminate();
    let done = phone.json(&["free-up-space", "--folder", "screens", "--older-than", "1s"]);
    let screens_photos: BTreeSet<String> = library
        .iter()
        .filter(|p| p.starts_with("screens/"))
        .cloned()
        .collect();
    assert_eq!(listed(&done["removed"]), screens_photos, "{done}");
    assert!(tree(&screens).is_empty());
    let scan = phone.json(&["scan"]);
    assert_eq!(
        (&scan["missing_files"], &scan["new_files"]),
        (&0.into(), &0.into()),
        "{scan}"
    );
    let status = phone.json(&["status"]);
    assert_eq!(status["released"]["photos"], screens_photos.len() as u64);
    assert_eq!(status["originals_gone"], serde_json::json!([]));
    let unchanged: BTreeMap<_, _> = tree(&camera)
        .into_iter()
        .filter(|(p, _)| camera_before.contains_key(p))
        .collect();
    assert_eq!(unchanged, camera_before, "the camera folder is left alone");
}

#[test]
fn a_copy_goal_of_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let phone = Node::init(dir.path(), "phone");
    fs::write(
        phone.home.join("config.toml"),
        "[storage]\nfree_up_copies = 0\n",
    )
    .unwrap();
    let run = phone.run(&["free-up-space", "--dry-run"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("free_up_copies"), "{run:?}");
    assert!(run.stderr.contains("from 1"), "{run:?}");
}
