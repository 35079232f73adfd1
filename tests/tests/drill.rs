//! Restore drills (issue 18): `photomesh drill` fetches a sample of photos from every other
//! device, vaults included, and checks each as a restore would; a rotten copy on the vault
//! fails that device's drill, and once the vault has healed it (it sets the copy aside when
//! asked for it, and fetches it again) the drill passes again.

#![allow(clippy::unwrap_used)]

use std::fs;

use photomesh_tests::{Node, samples, stored_blob, wait_for_verified_blobs, wait_until};

/// Runs a drill of every photo on each device; returns its exit code and report.
fn drill(node: &Node, sample: usize) -> (i32, serde_json::Value) {
    let run = node.run(&["drill", "--sample", &sample.to_string(), "--json"]);
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("drill printed no JSON ({e}): {run:?}"));
    (run.code, report)
}

fn device<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} not drilled: {report}"))
}

#[test]
fn a_drill_passes_on_every_device_and_finds_a_rotten_copy_on_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, phone, vault) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "vault"),
    );
    laptop.invite(&phone, "full");
    laptop.invite(&vault, "vault");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 6, 191);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    let photos = laptop.json(&["photos"]);
    let n = photos.as_array().unwrap().len() as u64;

    // Without a running node there is nothing to drill over: said plainly.
    let refused = laptop.run(&["drill"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("no node runs"), "{refused:?}");

    let (_laptop_run, addr) = laptop.start_run();
    phone.ok(&["peer", "add", &addr]);
    vault.ok(&["peer", "add", &addr]);
    // The phone drills by itself, every few seconds here (every 30 days by default).
    fs::write(
        phone.home.join("config.toml"),
        "[drill]\ninterval = \"3s\"\n",
    )
    .unwrap();
    let _phone_run = phone.start_run().0;
    let _vault_run = vault.start_run().0;
    wait_for_verified_blobs(&phone, n);
    wait_for_verified_blobs(&vault, n);
    // The laptop knows both hold everything once it has their held-blob sets.
    wait_until("the laptop knows what the others hold", || {
        let status = laptop.json(&["status"]);
        let peers = status["peers"].as_array().unwrap();
        if peers.len() == 2 && peers.iter().all(|p| p["blobs_held"] == n) {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });

    // The phone's own drill ran, over its connection to the laptop (the vault, which it
    // does not know where to find, is reported not drilled).
    wait_until("the phone drilled by itself", || {
        let status = phone.json(&["status"]);
        let laptop = status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "laptop")
            .cloned()
            .unwrap_or_default();
        if laptop["drill"]["checked"].as_u64().unwrap_or(0) > 0
            && laptop["drill"]["problems"]
                .as_array()
                .is_some_and(Vec::is_empty)
        {
            Ok(())
        } else {
            Err(status["peers"].to_string())
        }
    });

    // Every photo drawn from each device comes back intact.
    let (code, report) = drill(&laptop, n as usize);
    assert_eq!(code, 0, "{report}");
    for name in ["phone", "vault"] {
        let d = device(&report, name);
        assert_eq!(d["checked"], n, "{d}");
        assert_eq!(d["passed"], n, "{d}");
    }
    let status = laptop.json(&["status"]);
    for p in status["peers"].as_array().unwrap() {
        assert_eq!(p["drill"]["passed"], n, "{p}");
    }

    // A byte rots in one of the vault's stored copies: the drill names the vault and the photo.
    let blob = photos[0]["blob_id"].as_str().unwrap();
    let path = photos[0]["path"].as_str().unwrap().to_owned();
    let rotten = stored_blob(&vault.home, blob);
    let mut bytes = fs::read(&rotten).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&rotten, &bytes).unwrap();
    let (code, report) = drill(&laptop, n as usize);
    assert_ne!(code, 0, "{report}");
    let v = device(&report, "vault");
    assert_eq!(v["passed"], n - 1, "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert!(problems[0].as_str().unwrap().contains(&path), "{v}");
    assert_eq!(device(&report, "phone")["passed"], n);
    let text = laptop.ok(&["status"]);
    assert!(text.contains("restore drill FAILED"), "{text}");

    // The vault set the rotten copy aside when it was asked for it, and fetches it again:
    // the next drill passes.
    wait_for_verified_blobs(&vault, n);
    wait_until("a drill passes again", || {
        let (code, report) = drill(&laptop, n as usize);
        if code == 0 {
            Ok(())
        } else {
            Err(report.to_string())
        }
    });
}
