//! When the house burns down (issue 18): with every full device lost, the recovery phrase
//! and one surviving vault's address bring the same mesh back on a new device, and every
//! photo with it. And when a phone is revoked, the new library key reaches the other full
//! devices through the mesh, without a new pairing.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use photomesh_tests::{
    Node, samples, snapshot, wait_for_verified_blobs, wait_same_records, wait_until,
};

/// Waits until `status` shows `field` at `want`.
fn wait_for_status(node: &Node, field: &str, want: u64) {
    wait_until(&format!("{} {field} = {want}", node.home.display()), || {
        let status = node.json(&["status"]);
        if status[field] == want {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
}

/// The phrase `recovery-key export` (or `rotate`) printed.
fn phrase_in(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Recovery phrase: "))
        .unwrap_or_else(|| panic!("no phrase in: {out}"))
        .trim()
        .to_owned()
}

/// Asserts that `restored` holds every file of `originals`, byte for byte, with its mtime.
fn assert_same_files(originals: &Path, restored: &Path) {
    let (a, b) = (snapshot(originals), snapshot(restored));
    assert_eq!(a.len(), b.len(), "{} files restored", b.len());
    for (path, (bytes, secs, nanos)) in &a {
        let rel = path.strip_prefix(originals).unwrap();
        let (rb, rs, rn) = &b[&restored.join(rel)];
        assert!(bytes == rb, "{} differs", rel.display());
        assert_eq!((secs, nanos), (rs, rn), "{} mtime", rel.display());
    }
}

#[test]
fn the_phrase_and_a_surviving_vault_bring_back_the_same_mesh_and_every_photo() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, phone, vault) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "vault"),
    );
    let phrase = phrase_in(&laptop.ok(&["recovery-key", "export"]));
    laptop.invite(&phone, "full");
    laptop.invite(&vault, "vault");

    // The laptop's generated library and the phone's real camera and phone files.
    let (pics, camera) = (dir.path().join("pics"), dir.path().join("camera"));
    samples::write_library(&pics, 20, 181);
    let real = photomesh_tests::copy_corpus(&camera) as u64;
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "pics"]);
    laptop.ok(&["scan"]);
    phone.ok(&[
        "folder",
        "add",
        camera.to_str().unwrap(),
        "--label",
        "camera",
    ]);
    phone.ok(&["scan"]);
    let photos = laptop.json(&["photos"]).as_array().unwrap().len() as u64
        + phone.json(&["photos"]).as_array().unwrap().len() as u64;
    assert!(
        photos >= 20 + real / 2,
        "{photos} photos of {real} real files"
    );

    let (vault_run, vault_addr) = vault.start_run();
    laptop.ok(&["peer", "add", &vault_addr]);
    phone.ok(&["peer", "add", &vault_addr]);
    let laptop_run = laptop.start_run().0;
    let phone_run = phone.start_run().0;
    let records = wait_same_records(&[&laptop, &phone]);
    wait_for_status(&vault, "records", records);
    // Every photo's blob (two photos may share one).
    let blobs = laptop
        .json(&["photos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["blob_id"].as_str().unwrap().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    wait_for_verified_blobs(&vault, blobs);

    // The house burns down: both full devices are gone, with their homes.
    drop((laptop_run, phone_run));
    fs::remove_dir_all(&laptop.home).unwrap();
    fs::remove_dir_all(&phone.home).unwrap();

    // A phrase of another mesh is refused, and leaves no home behind.
    let stranger = Node::init(dir.path(), "stranger");
    let wrong = phrase_in(&stranger.ok(&["recovery-key", "export"]));
    let attempt = Node::at(dir.path().join("attempt"));
    let refused = attempt.run(&[
        "init",
        "--name",
        "attempt",
        "--recover",
        &wrong,
        "--from",
        &vault_addr,
    ]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("does not answer to this recovery phrase"),
        "{refused:?}"
    );
    assert!(!attempt.home.exists(), "a refused recovery wrote a home");
    // A phrase with a typo is refused before anything is sent.
    let mut typo: Vec<char> = phrase.chars().collect();
    typo[2] = if typo[2] == 'Q' { 'R' } else { 'Q' };
    let typo: String = typo.into_iter().collect();
    let refused = attempt.run(&[
        "init",
        "--name",
        "attempt",
        "--recover",
        &typo,
        "--from",
        &vault_addr,
    ]);
    assert!(refused.stderr.contains("typo"), "{refused:?}");

    // The phrase and the vault's address: the same mesh, as a new full device.
    let new = Node::at(dir.path().join("new-laptop"));
    let out = new.ok(&[
        "init",
        "--name",
        "new-laptop",
        "--recover",
        &phrase,
        "--from",
        &vault_addr,
    ]);
    assert!(out.contains("Recovered the mesh"), "{out}");
    let devices = new.json(&["devices"]);
    let names: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    for name in ["laptop", "phone", "vault", "new-laptop", "recovery key"] {
        assert!(names.contains(&name), "{name} missing from {devices}");
    }
    let _new_run = new.start_run().0;
    wait_for_status(&new, "photo_records", photos);
    wait_for_verified_blobs(&new, blobs);
    let out = dir.path().join("restored");
    let report = new.json(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(report["restored"], photos, "{report}");
    assert_same_files(&pics, &out.join("pics"));
    assert_same_files(&camera, &out.join("camera"));

    // The phrase is replaced (say it was seen): the old one is refused from then on, by the
    // vault too once it has the new records.
    let rotated = new.ok(&["recovery-key", "rotate"]);
    let newer = phrase_in(&rotated);
    assert_ne!(newer, phrase);
    let want = new.json(&["status"])["records"].as_u64().unwrap();
    wait_for_status(&vault, "records", want);
    let late = Node::at(dir.path().join("late"));
    wait_until("the vault refuses the old phrase", || {
        let run = late.run(&[
            "init",
            "--name",
            "late",
            "--recover",
            &phrase,
            "--from",
            &vault_addr,
        ]);
        if run.code != 0
            && run
                .stderr
                .contains("does not answer to this recovery phrase")
        {
            Ok(())
        } else {
            Err(format!("{run:?}"))
        }
    });
    assert!(!late.home.exists());
    drop(vault_run);
}

#[test]
fn photos_added_after_a_revocation_are_readable_on_the_other_full_device_only() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, phone) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "phone"),
    );
    laptop.invite(&nas, "full");
    laptop.invite(&phone, "full");
    let phone_id = phone.json(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    laptop.ok(&["revoke", &phone_id]);

    // Taken after the revocation: sealed with epoch 2, which the NAS never got by pairing.
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 5, 182);
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "pics"]);
    laptop.ok(&["scan"]);
    let photos = laptop.json(&["photos"]).as_array().unwrap().len() as u64;
    assert!(
        !fs::read_to_string(nas.home.join("library.keys"))
            .unwrap()
            .contains("epoch 2")
    );

    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    phone.ok(&["peer", "add", &addr]);
    let _nas_run = nas.start_run().0;
    let _phone_run = phone.start_run().0;
    wait_for_status(&nas, "photo_records", photos);
    assert!(
        fs::read_to_string(nas.home.join("library.keys"))
            .unwrap()
            .contains("epoch 2")
    );
    wait_for_verified_blobs(&nas, photos);
    let out = dir.path().join("restored");
    let report = nas.json(&["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(report["restored"], photos, "{report}");
    assert_same_files(&pics, &out.join("pics"));

    // The phone is refused, and never holds the new epoch.
    wait_until("the laptop refuses the phone", || {
        let ping = phone.run(&["ping", &addr]);
        if ping.code != 0 && ping.stderr.contains("not trusted") {
            Ok(())
        } else {
            Err(format!("{ping:?}"))
        }
    });
    assert!(
        !fs::read_to_string(phone.home.join("library.keys"))
            .unwrap()
            .contains("epoch 2")
    );
    assert_eq!(phone.json(&["status"])["photo_records"], 0);
}
