//! The trash (issue 16): a delete reaches every device, vault included, as a signed
//! lifecycle record; `trash restore` brings the photo back everywhere; `trash empty` and the
//! retention purge every device's copies (never the originals in the folders); a device back
//! after the retention purges on arrival; deletions signed by a stranger or by a revoked
//! device count nowhere; and a restore and a delete made apart converge to the later one.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use photomesh::home::Home;
use photomesh_protocol::lifecycle::{Action, LifecycleRecord, Statement, Target};
use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;
use photomesh_tests::{Node, Spawned, samples, wait_until};

/// Where `node`'s blob store keeps `blob`, whether it is there or not.
fn blob_file(node: &Node, blob: &BlobId) -> std::path::PathBuf {
    let hex = blob.to_hex();
    node.home.join("blobs").join(&hex[..2]).join(hex)
}

/// How many blobs `node` stores, every one verified.
fn stored(node: &Node) -> u64 {
    node.json(&["verify"])["blobs_checked"].as_u64().unwrap()
}

fn wait_stored(node: &Node, n: u64) {
    wait_until(&format!("{} stores {n} blobs", node.home.display()), || {
        let got = stored(node);
        (got == n).then_some(()).ok_or(got.to_string())
    });
}

/// Versions (photo records) in `node`'s trash.
fn in_trash(node: &Node) -> u64 {
    node.json(&["trash", "list"])["versions"].as_u64().unwrap()
}

fn wait_in_trash(node: &Node, n: u64) {
    wait_until(
        &format!("{} has {n} in its trash", node.home.display()),
        || {
            let got = in_trash(node);
            (got == n).then_some(()).ok_or(got.to_string())
        },
    );
}

/// The paths `photomesh photos` lists.
fn paths(node: &Node) -> Vec<String> {
    node.json(&["photos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A photo as `photos --json` lists it: (path, record ID, blob ID).
fn photo(node: &Node, i: usize) -> (String, RecordId, BlobId) {
    let list = node.json(&["photos"]);
    let p = &list[i];
    let hex32 = |v: &serde_json::Value| -> [u8; 32] {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    (
        p["path"].as_str().unwrap().to_owned(),
        RecordId(hex32(&p["record_id"])),
        BlobId(hex32(&p["blob_id"])),
    )
}

/// A laptop with a folder of sample photos, a NAS (full) and a vault, every one holding
/// every blob, their nodes running (the laptop's first).
struct Mesh {
    laptop: Node,
    nas: Node,
    vault: Node,
    pics: std::path::PathBuf,
    n: u64,
    runs: Vec<Spawned>,
}

fn mesh(dir: &Path, seed: u64) -> Mesh {
    let (laptop, nas, vault) = (
        Node::init(dir, "laptop"),
        Node::init(dir, "nas"),
        Node::init(dir, "vault"),
    );
    laptop.invite(&nas, "full");
    laptop.invite(&vault, "vault");
    let pics = dir.join("pics");
    samples::write_library(&pics, 2, seed);
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    laptop.ok(&["scan"]);
    let n = paths(&laptop).len() as u64;
    // The vault acts on another device's purge after a second, the NAS after the default day.
    fs::write(
        vault.home.join("config.toml"),
        "[trash]\npurge_hold = \"1s\"\n",
    )
    .unwrap();
    let (laptop_run, addr) = laptop.start_run();
    let mut runs = vec![laptop_run];
    for node in [&nas, &vault] {
        node.ok(&["peer", "add", &addr]);
        runs.push(node.start_run().0);
    }
    wait_stored(&nas, n);
    wait_stored(&vault, n);
    Mesh {
        laptop,
        nas,
        vault,
        pics,
        n,
        runs,
    }
}

#[test]
fn a_delete_reaches_every_device_comes_back_and_is_purged_everywhere_but_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let Mesh {
        laptop,
        nas,
        vault,
        pics,
        n,
        mut runs,
    } = mesh(dir.path(), 161);
    let (victim, _, blob) = photo(&laptop, 0);
    let named = format!("camera/{victim}");

    // A dry run changes nothing.
    let dry = laptop.ok(&["delete", &named, "--dry-run"]);
    assert!(dry.contains("Would move 1 photo"), "{dry}");
    assert_eq!(in_trash(&laptop), 0);

    let out = laptop.ok(&["delete", &named]);
    assert!(out.contains("Moved 1 photo"), "{out}");
    assert!(out.contains("were not touched"), "{out}");
    assert!(
        pics.join(&victim).is_file(),
        "the original stays in the folder"
    );
    assert!(!paths(&laptop).contains(&victim));
    // In the trash everywhere within seconds, the vault included.
    wait_in_trash(&nas, 1);
    wait_in_trash(&vault, 1);
    assert!(!paths(&nas).contains(&victim));
    let list = nas.json(&["trash", "list"]);
    assert_eq!(list["photos"][0]["path"], victim.as_str(), "{list}");
    let status = nas.json(&["status"]);
    assert_eq!(status["safety"]["photos"], n - 1, "{status}");
    assert_eq!(status["trash"]["photos"], 1, "{status}");
    // Kept while in the trash.
    assert_eq!(stored(&vault), n);

    // Restored on the NAS: back everywhere.
    let out = nas.ok(&["trash", "restore", &named]);
    assert!(out.contains("Took 1 photo out of the trash"), "{out}");
    wait_in_trash(&laptop, 0);
    wait_in_trash(&vault, 0);
    assert!(paths(&laptop).contains(&victim));

    // Deleted again and the trash emptied: the vault drops its copy once the purge is held a
    // second; the NAS holds it a day (time to revoke a stolen laptop); the folder's original
    // stays.
    laptop.ok(&["delete", &named]);
    wait_in_trash(&vault, 1);
    let out = laptop.ok(&["trash", "empty"]);
    assert!(out.contains("Purged 1 photo"), "{out}");
    wait_in_trash(&nas, 0);
    wait_stored(&vault, n - 1);
    assert!(!blob_file(&vault, &blob).exists());
    assert!(
        blob_file(&nas, &blob).is_file(),
        "the NAS holds another's purge a day"
    );
    assert_eq!(stored(&nas), n);
    assert!(pics.join(&victim).is_file());
    let status = laptop.json(&["status"]);
    assert_eq!(status["safety"]["photos"], n - 1, "{status}");
    assert_eq!(status["trash"]["versions"], 0, "{status}");
    assert_eq!(status["holding"]["should_hold"], n - 1, "{status}");
    let status = nas.json(&["status"]);
    assert_eq!(status["safety"]["photos"], n - 1, "{status}");
    assert_eq!(status["holding"]["should_hold"], n, "{status}");

    // The vault is away through a short retention: back, it purges on arrival; the NAS, at
    // the default retention, keeps its copy in the trash.
    drop(runs.pop());
    let (next, _, next_blob) = photo(&laptop, 0);
    laptop.ok(&["delete", &format!("camera/{next}")]);
    wait_in_trash(&nas, 1);
    fs::write(
        vault.home.join("config.toml"),
        "[trash]\nretention = \"1s\"\npurge_hold = \"1s\"\n",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_vault_run, _) = vault.start_run();
    wait_stored(&vault, n - 2);
    assert!(!blob_file(&vault, &next_blob).exists());
    assert_eq!(stored(&nas), n, "the NAS keeps it in the trash");
}

/// Signs a trash record for `(record, blob)` with the keys of the device at `home`.
fn trash_signed_by(home: &Path, record: RecordId, blob: BlobId) -> Vec<u8> {
    let home = Home::open(home).unwrap();
    LifecycleRecord::sign(
        &home.device,
        Statement {
            action: Action::Trash,
            targets: vec![Target {
                record,
                blob: Some(blob),
            }],
            created_at_ms: 1_900_000_000_000,
        },
    )
    .unwrap()
    .bytes
}

#[test]
fn deletions_by_a_stranger_or_a_device_revoked_since_count_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let Mesh {
        laptop,
        nas,
        vault,
        n,
        runs,
        ..
    } = mesh(dir.path(), 162);
    drop(runs);
    let nas_id = nas.json(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stranger = Node::init(dir.path(), "stranger");
    let (_, forged_record, forged_blob) = photo(&laptop, 0);
    let (_, revoked_record, revoked_blob) = photo(&laptop, 1);
    let (kept, good_record, good_blob) = photo(&laptop, 2);
    let records = [
        trash_signed_by(&stranger.home, forged_record, forged_blob),
        trash_signed_by(&nas.home, revoked_record, revoked_blob),
        // And one the laptop signed, which does count: the way in works.
        trash_signed_by(&laptop.home, good_record, good_blob),
    ];
    // They reach the laptop and the vault as any record would.
    for node in [&laptop, &vault] {
        let home = Home::open(&node.home).unwrap();
        for bytes in &records {
            let id = photomesh_protocol::record::record_id(bytes);
            home.index.add_record(&id, bytes, 1).unwrap();
        }
    }
    // Then the NAS is revoked (lost, say), the laptop knowing of its deletion: a revoked
    // device's deletions stop counting. A stranger's never counted.
    laptop.ok(&["revoke", &nas_id]);
    let (_laptop_run, addr) = laptop.start_run();
    vault.ok(&["peer", "add", &addr]);
    let (_vault_run, _) = vault.start_run();
    for node in [&laptop, &vault] {
        wait_in_trash(node, 1);
    }
    let list = laptop.json(&["trash", "list"]);
    assert_eq!(list["photos"][0]["path"], kept.as_str(), "{list}");
    assert_eq!(paths(&laptop).len() as u64, n - 1);
    // The vault drops nothing on their word: everything stays stored, trashed or not.
    assert_eq!(stored(&vault), n);
}

#[test]
fn a_restore_and_a_delete_made_apart_converge_to_the_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    laptop.invite(&nas, "full");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 1, 163);
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    laptop.ok(&["scan"]);
    let (x, _, _) = photo(&laptop, 0);
    let (y, _, _) = photo(&laptop, 1);
    let (x, y) = (format!("camera/{x}"), format!("camera/{y}"));
    let sync = |what: &str| {
        let (_laptop_run, addr) = laptop.start_run();
        nas.ok(&["peer", "add", &addr]);
        let (_nas_run, _) = nas.start_run();
        let want = in_trash(&laptop);
        wait_until(what, || {
            let (a, b) = (in_trash(&laptop), in_trash(&nas));
            (a == want && b == want && paths(&laptop) == paths(&nas))
                .then_some(())
                .ok_or(format!("laptop {a}, nas {b}"))
        });
    };
    laptop.ok(&["delete", &x, &y]);
    sync("both in the trash on both");
    assert_eq!(in_trash(&nas), 2);

    // Apart. X: the NAS restores it, then the laptop restores and deletes it again (later).
    // Y: the laptop restores and deletes it again, then the NAS restores it (later).
    nas.ok(&["trash", "restore", &x]);
    laptop.ok(&["trash", "restore", &x, &y]);
    laptop.ok(&["delete", &x, &y]);
    nas.ok(&["trash", "restore", &y]);
    // Together again: the later word wins on both, whatever arrives first.
    let before = (in_trash(&laptop), in_trash(&nas));
    assert_eq!(before, (2, 0), "apart, each sees its own");
    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = nas.start_run();
    wait_until("the later word wins on both", || {
        let (a, b) = (paths(&laptop), paths(&nas));
        let has = |p: &Vec<String>, named: &str| p.iter().any(|q| format!("camera/{q}") == named);
        let x_gone = |p: &Vec<String>| !has(p, &x);
        let y_back = |p: &Vec<String>| has(p, &y);
        (x_gone(&a) && x_gone(&b) && y_back(&a) && y_back(&b))
            .then_some(())
            .ok_or(format!("laptop {a:?}, nas {b:?}"))
    });
    assert_eq!((in_trash(&laptop), in_trash(&nas)), (1, 1));
}

#[test]
fn every_version_of_an_edited_photo_comes_back_and_keep_purges_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, vault) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "vault"),
    );
    laptop.invite(&vault, "vault");
    fs::write(
        vault.home.join("config.toml"),
        "[trash]\npurge_hold = \"1s\"\n",
    )
    .unwrap();
    let pics = dir.path().join("pics");
    fs::create_dir_all(&pics).unwrap();
    let file = pics.join("edit.jpg");
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    let (laptop_run, addr) = laptop.start_run();
    vault.ok(&["peer", "add", &addr]);
    let (_vault_run, _) = vault.start_run();
    // The first version and three edits, each stored by the vault before the next.
    let contents: Vec<Vec<u8>> = (0..4u8)
        .map(|v| {
            (0..50_000u32)
                .map(|i| (i as u8) ^ v.wrapping_mul(37))
                .collect()
        })
        .collect();
    for (i, bytes) in contents.iter().enumerate() {
        fs::write(&file, bytes).unwrap();
        laptop.ok(&["scan"]);
        wait_stored(&vault, i as u64 + 1);
    }
    let versions = laptop.json(&["versions", "camera/edit.jpg"]);
    let list = versions.as_array().unwrap();
    assert_eq!(list.len(), 4, "{versions}");
    assert!(
        list[3]["current"] == true && list[0]["current"] == false,
        "{versions}"
    );
    assert_eq!(list[1]["size"], 50_000);
    assert_eq!(laptop.json(&["status"])["versions"]["earlier"], 3);

    // Each version, restored alone, is byte for byte what it was; the old ones come from the
    // vault (the laptop's file is the newest only).
    for (i, bytes) in contents.iter().enumerate() {
        let out = dir.path().join(format!("v{}", i + 1));
        let n = (i + 1).to_string();
        let run = laptop.run(&[
            "restore",
            "--to",
            out.to_str().unwrap(),
            "--path",
            "camera/edit.jpg",
            "--version",
            &n,
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(
            &fs::read(out.join("camera/edit.jpg")).unwrap(),
            bytes,
            "version {n}"
        );
    }
    // Every version at once: the newest at its path, the others beside it.
    let all = dir.path().join("all");
    laptop.ok(&["restore", "--to", all.to_str().unwrap(), "--all-versions"]);
    assert_eq!(fs::read(all.join("camera/edit.jpg")).unwrap(), contents[3]);
    for (i, bytes) in contents.iter().enumerate().take(3) {
        let old = all.join(format!("camera/edit.v{}.jpg", i + 1));
        assert_eq!(&fs::read(&old).unwrap(), bytes, "{}", old.display());
    }

    // Keep two versions: the node purges the two oldest everywhere, the vault's copies too.
    drop(laptop_run);
    fs::write(
        laptop.home.join("config.toml"),
        "[versions]\nkeep = \"2\"\n",
    )
    .unwrap();
    let (_laptop_run, _) = laptop.start_run();
    wait_stored(&vault, 2);
    let versions = laptop.json(&["versions", "camera/edit.jpg"]);
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 4], "{versions}");
    assert_eq!(laptop.json(&["status"])["versions"]["earlier"], 1);
    let run = laptop.run(&[
        "restore",
        "--to",
        dir.path().join("gone").to_str().unwrap(),
        "--path",
        "camera/edit.jpg",
        "--version",
        "1",
    ]);
    assert!(run.stdout.contains("was purged"), "{run:?}");
}

#[test]
fn with_deletions_trash_a_photo_deleted_from_its_folder_goes_to_the_trash_a_moved_one_not() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    laptop.invite(&nas, "full");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 1, 164);
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    laptop.ok(&["scan"]);
    fs::write(
        laptop.home.join("config.toml"),
        "[watch]\ndeletions = \"trash\"\n",
    )
    .unwrap();
    let n = paths(&laptop).len() as u64;
    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = nas.start_run();
    wait_stored(&nas, n);
    let (deleted, _, _) = photo(&laptop, 0);
    let (moved, _, _) = photo(&laptop, 1);
    // One photo is deleted by hand, another moved to a new subfolder.
    fs::remove_file(pics.join(&deleted)).unwrap();
    fs::create_dir_all(pics.join("sorted")).unwrap();
    fs::rename(pics.join(&moved), pics.join("sorted/moved.bin")).unwrap();
    wait_in_trash(&nas, 1);
    let list = nas.json(&["trash", "list"]);
    assert_eq!(list["photos"][0]["path"], deleted.as_str(), "{list}");
    wait_until("the moved photo at its new place", || {
        let p = paths(&nas);
        p.contains(&"sorted/moved.bin".to_owned())
            .then_some(())
            .ok_or(format!("{p:?}"))
    });
    // Still only the deleted one, a while after the move.
    std::thread::sleep(photomesh::library::watch::MIRROR_AFTER * 2);
    assert_eq!(in_trash(&laptop), 1);
}
