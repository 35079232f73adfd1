//! Replication, first step: running nodes reconcile their record sets over nQUIC and fetch
//! the records they lack. (Blobs move in the next step of the replication issue.)

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use photomesh_tests::{Node, Spawned};

const WAIT: Duration = Duration::from_secs(30);

fn node(dir: &Path, name: &str) -> Node {
    let node = Node::at(dir.join(name));
    node.ok(&["init", "--name", name]);
    node
}

fn pair(inviter: &Node, joiner: &Node, role: &str) {
    let mut pair = inviter.spawn(&["pair", "--listen", "127.0.0.1:0", "--role", role]);
    let line = pair.wait_for_line(WAIT, |l| l.starts_with("Code: "));
    pair.wait_for_line(WAIT, |l| l.contains("listening on"));
    joiner.ok(&["join", line.trim_start_matches("Code: ").trim()]);
    assert_eq!(pair.wait(WAIT).0, 0);
}

fn run(node: &Node) -> (Spawned, String) {
    let mut run = node.spawn(&["run", "--listen", "127.0.0.1:0"]);
    let line = run.wait_for_line(WAIT, |l| l.contains("listening on"));
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    (run, addr)
}

/// Polls `status` until `field` reaches `want`, bounded.
fn wait_for_status(node: &Node, field: &str, want: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = node.json(&["status"]);
        if status[field] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} never reached {want}: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn records_reach_a_full_peer_and_a_vault_and_new_ones_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas, pi) = (
        node(dir.path(), "laptop"),
        node(dir.path(), "nas"),
        node(dir.path(), "pi"),
    );
    let pics = dir.path().join("pics");
    photomesh_tests::samples::write_library(&pics, 5, 11);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    pair(&laptop, &nas, "full");
    pair(&laptop, &pi, "vault");
    let laptop_status = laptop.json(&["status"]);
    let records = laptop_status["records"].as_u64().unwrap();
    assert_eq!(laptop_status["photo_records"], 7);

    let (_laptop_run, addr) = run(&laptop);
    nas.ok(&["peer", "add", &addr]);
    pi.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = run(&nas);
    let (_pi_run, _) = run(&pi);

    // The NAS can read what it received; the vault holds it all sealed.
    wait_for_status(&nas, "photo_records", 7);
    wait_for_status(&nas, "records", records);
    wait_for_status(&pi, "records", records);
    assert_eq!(pi.json(&["status"])["photo_records"], 0);
    let photos = nas.json(&["photos"]);
    assert!(
        photos
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == "2024/01/IMG_0000.JPG"),
        "{photos}"
    );

    // A photo added on the laptop while everything runs follows within seconds.
    let mut rng = photomesh_tests::samples::Rng::new(77);
    std::fs::write(
        pics.join("new.jpg"),
        photomesh_tests::samples::jpeg_with_exif(&mut rng, 16, 16, "2025:06:01 09:00:00", None),
    )
    .unwrap();
    laptop.ok(&["scan"]);
    wait_for_status(&nas, "photo_records", 8);
    wait_for_status(&pi, "records", records + 1);
}
