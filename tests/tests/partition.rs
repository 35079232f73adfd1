//! Five real nodes on a LAN of network namespaces — a laptop and a desktop (full), a phone
//! that holds its own photos only, and two vaults — split into two halves that each go on
//! adding and editing photos, with 5% of the packets on two links dropped; once the halves
//! are joined again every device converges, every photo reaches the replica goal, and
//! `verify` is clean everywhere. Needs root (namespaces, nftables); skipped otherwise.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use photomesh_tests::netns::{Lan, is_root, photomesh_on};
use photomesh_tests::samples::take_photo;
use photomesh_tests::{Node, Spawned};

/// How long the mesh may take to get somewhere: a dial that failed through a partition backs
/// off for up to a minute.
const SETTLE: Duration = Duration::from_secs(150);

fn settle<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what} did not happen within {SETTLE:?}; last seen: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run_on(lan: &Lan, host: usize, node: &Node, extra: &[&str]) -> Spawned {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    let mut run = photomesh_on(lan, host, node, &args);
    run.wait_for_line(photomesh_tests::WAIT, |l| l.contains("listening on"));
    run
}

/// What `node` holds, once its `verify` found nothing wrong: the photo records it can read
/// (none on a vault) and the blobs in its store.
fn verified(node: &Node) -> Result<(u64, u64), String> {
    let report = node.json(&["verify"]);
    if !report["findings"].as_array().is_some_and(Vec::is_empty) {
        return Err(format!("verify found: {report}"));
    }
    let records = node.json(&["status"])["photo_records"]
        .as_u64()
        .unwrap_or(0);
    Ok((records, report["blobs_checked"].as_u64().unwrap_or(0)))
}

/// Waits until `node` reads `records` photo records (a full device) or stores `blobs` blobs
/// (a vault), with `verify` clean.
fn holds(node: &Node, records: Option<u64>, blobs: Option<u64>) {
    settle(
        &format!("{} holding what it should", node.home.display()),
        || {
            let (r, b) = verified(node)?;
            if records.is_none_or(|want| want == r) && blobs.is_none_or(|want| want == b) {
                Ok(())
            } else {
                Err(format!("{r} photo records, {b} blobs"))
            }
        },
    );
}

#[test]
fn a_partitioned_lossy_mesh_converges_and_every_photo_reaches_its_goal() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(5);
    let dir = tempfile::tempdir().unwrap();
    let names = ["laptop", "phone", "vault-a", "desktop", "vault-b"];
    let nodes: Vec<Node> = names.iter().map(|n| Node::init(dir.path(), n)).collect();
    let (laptop, phone, vault_a, desktop, vault_b) =
        (&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[4]);
    // Paired on this host (the homes are only folders); the nodes then run on the LAN and
    // find each other by mDNS.
    laptop.invite(phone, "full");
    laptop.invite(desktop, "full");
    laptop.invite(vault_a, "vault");
    laptop.invite(vault_b, "vault");
    let folders: Vec<_> = [laptop, phone, desktop]
        .iter()
        .map(|node| {
            let folder = node.home.with_extension("photos");
            std::fs::create_dir_all(&folder).unwrap();
            node.ok(&["folder", "add", folder.to_str().unwrap()]);
            folder
        })
        .collect();
    for (i, folder) in folders.iter().enumerate() {
        for j in 0..2 {
            take_photo(folder, &format!("IMG_{j}.JPG"), (i * 10 + j) as u64);
        }
    }
    let _runs: Vec<Spawned> = nodes
        .iter()
        .enumerate()
        .map(|(host, node)| {
            let hold: &[&str] = if host == 1 { &["--hold", "own"] } else { &[] };
            run_on(&lan, host, node, hold)
        })
        .collect();

    // Everyone has every record; the vaults store all six photos.
    for node in [laptop, phone, desktop] {
        holds(node, Some(6), None);
    }
    for vault in [vault_a, vault_b] {
        holds(vault, None, Some(6));
    }

    // Split: {laptop, phone, vault A} | {desktop, vault B}. Each side adds a photo and edits
    // one; the new versions reach the vault on their own side, and nothing crosses.
    lan.partition(&[0, 1, 2], &[3, 4]);
    take_photo(&folders[0], "IMG_9.JPG", 90);
    take_photo(&folders[0], "IMG_0.JPG", 91);
    take_photo(&folders[2], "IMG_9.JPG", 92);
    take_photo(&folders[2], "IMG_1.JPG", 93);
    holds(vault_a, None, Some(8));
    holds(vault_b, None, Some(8));
    holds(phone, Some(8), None);
    assert_eq!(verified(laptop).unwrap().0, 8);
    assert_eq!(verified(desktop).unwrap().0, 8);

    // Joined again, with 5% of the phone's and vault B's frames dropped: everyone converges.
    lan.lossy(1, 5);
    lan.lossy(4, 5);
    lan.heal();
    for node in [laptop, phone, desktop] {
        holds(node, Some(10), None);
    }
    for vault in [vault_a, vault_b] {
        holds(vault, None, Some(10));
    }
    // The phone holds its own photos only: no replica of anyone else's.
    assert_eq!(verified(phone).unwrap().1, 0);
    // Every photo (the newest version of each path: six paths and two new) at the goal of
    // three verified copies, as each full device counts them.
    for node in [laptop, desktop] {
        settle("every photo at the replica goal", || {
            let status = node.json(&["status"]);
            let safety = &status["safety"];
            if safety["photos"] == 8 && safety["below_goal_total"] == 0 {
                Ok(())
            } else {
                Err(safety.to_string())
            }
        });
    }
}
