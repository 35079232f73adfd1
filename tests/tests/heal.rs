//! Damage found is healed by itself (issue 15, first part): a rotten or missing stored blob
//! that `verify` finds is quarantined, no longer held, and fetched again from the peers; a
//! server whose stored copy fails its check while serving it sets it aside the same way and
//! never sends bad data.

#![allow(clippy::unwrap_used)]

use std::fs;

use photomesh_tests::{Node, samples, stored_blob, wait_for_verified_blobs, wait_until};

/// A phone with a folder of sample photos and a laptop (with `laptop_config` as its
/// configuration file), both running, the laptop holding every blob.
struct Synced {
    phone: Node,
    laptop: Node,
    /// How many blobs the laptop holds.
    n: u64,
    /// The two running nodes, stopped when dropped.
    runs: [photomesh_tests::Spawned; 2],
}

fn synced(dir: &std::path::Path, seed: u64, laptop_config: &str) -> Synced {
    let (phone, laptop) = (Node::init(dir, "phone"), Node::init(dir, "laptop"));
    phone.invite(&laptop, "full");
    let pics = dir.join("pics");
    samples::write_library(&pics, 4, seed);
    phone.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    phone.ok(&["scan"]);
    let n = phone.json(&["photos"]).as_array().unwrap().len() as u64;
    let (phone_run, addr) = phone.start_run();
    laptop.ok(&["peer", "add", &addr]);
    fs::write(laptop.home.join("config.toml"), laptop_config).unwrap();
    let (laptop_run, _) = laptop.start_run();
    wait_for_verified_blobs(&laptop, n);
    Synced {
        phone,
        laptop,
        n,
        runs: [phone_run, laptop_run],
    }
}

#[test]
fn verify_quarantines_a_rotten_and_a_missing_blob_and_the_node_fetches_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let Synced {
        laptop,
        n,
        runs: _runs,
        ..
    } = synced(dir.path(), 101, "");

    // A byte rots in one stored blob; another is deleted by hand.
    let photos = laptop.json(&["photos"]);
    let blobs: Vec<&str> = photos
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["blob_id"].as_str().unwrap())
        .collect();
    let rotten = stored_blob(&laptop.home, blobs[0]);
    let mut bytes = fs::read(&rotten).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&rotten, &bytes).unwrap();
    fs::remove_file(stored_blob(&laptop.home, blobs[1])).unwrap();

    let run = laptop.run(&["verify"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout.matches("no longer held").count(), 2, "{run:?}");
    assert!(
        laptop
            .home
            .join("blobs/quarantine")
            .join(blobs[0])
            .is_file(),
        "the rotten copy is kept aside"
    );
    // The running node fetches both again from the phone, verified.
    wait_for_verified_blobs(&laptop, n);
    let mut back = Vec::new();
    fs::File::open(stored_blob(&laptop.home, blobs[0]))
        .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut back))
        .unwrap();
    assert_ne!(back, bytes, "a good copy replaced the rotten one");
}

#[test]
fn a_server_whose_copy_rotted_sets_it_aside_and_sends_no_bad_data() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop, tablet) = (
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "tablet"),
    );
    phone.invite(&laptop, "full");
    phone.invite(&tablet, "full");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 3, 102);
    phone.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    phone.ok(&["scan"]);
    let n = phone.json(&["photos"]).as_array().unwrap().len() as u64;
    let (laptop_run, laptop_addr) = laptop.start_run();
    {
        let (_phone_run, phone_addr) = phone.start_run();
        laptop.ok(&["peer", "add", &phone_addr]);
        wait_for_verified_blobs(&laptop, n);
    }
    // The phone is away. One of the laptop's stored blobs rots, unnoticed; the tablet
    // fetches everything from the laptop.
    let photos = laptop.json(&["photos"]);
    let hex = photos[0]["blob_id"].as_str().unwrap().to_owned();
    let rotten = stored_blob(&laptop.home, &hex);
    let mut bytes = fs::read(&rotten).unwrap();
    bytes[100] ^= 0x80;
    fs::write(&rotten, &bytes).unwrap();
    tablet.ok(&["peer", "add", &laptop_addr]);
    let (_tablet_run, _) = tablet.start_run();
    wait_until("the tablet holds every other blob", || {
        let report = tablet.json(&["verify"]);
        (report["blobs_checked"] == n - 1)
            .then_some(())
            .ok_or(report.to_string())
    });
    // The laptop set its copy aside rather than send it; the tablet never saw bad data,
    // so it holds nothing against the laptop.
    wait_until("the laptop quarantined its copy", || {
        laptop
            .home
            .join("blobs/quarantine")
            .join(&hex)
            .is_file()
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    });
    let status = tablet.json(&["status"]);
    let laptop_seen = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "laptop")
        .unwrap();
    assert!(laptop_seen["bad_data"].is_null(), "{status}");
    let (_, log) = laptop_run.terminate();
    assert!(log.contains("failed its check while being served"), "{log}");
}

#[test]
fn the_scrub_finds_rot_by_itself_and_the_blob_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    // A pass every two seconds, at no rate limit: the scrub runs while the test watches.
    let Synced {
        laptop,
        runs: _runs,
        ..
    } = synced(
        dir.path(),
        103,
        "[scrub]\nperiod = \"2s\"\nmax_rate = \"0\"\n",
    );

    let photos = laptop.json(&["photos"]);
    let hex = photos[0]["blob_id"].as_str().unwrap().to_owned();
    let stored = stored_blob(&laptop.home, &hex);
    let mut bytes = fs::read(&stored).unwrap();
    bytes[7] ^= 0x10;
    fs::write(&stored, &bytes).unwrap();
    // Nobody runs `verify`: the scrub sets the copy aside and a good one comes back.
    wait_until("the scrub found the rot and the blob came back", || {
        let status = laptop.json(&["status"]);
        let back = fs::read(&stored).ok();
        let good = back.is_some_and(|b| blake3::hash(&b).to_hex().as_str() == hex);
        (laptop.home.join("blobs/quarantine").join(&hex).is_file() && good)
            .then_some(())
            .ok_or(status["scrub"].to_string())
    });
    let status = laptop.json(&["status"]);
    assert!(status["scrub"]["last_pass_ms"].is_u64(), "{status}");
    let text = laptop.ok(&["status"]);
    assert!(text.contains("Scrub    last full pass"), "{text}");
}

/// A copy counts towards the replica goal only while its device keeps verifying it: each
/// hello says since when its sender has verified all it holds, so the phone's count drops
/// when the laptop's checks are older than the scrub period, and rises when the laptop's
/// scrub re-verifies its copies.
#[test]
fn a_copy_counts_only_while_its_device_keeps_verifying_it() {
    let dir = tempfile::tempdir().unwrap();
    let Synced {
        phone,
        laptop,
        n,
        runs: [_phone_run, laptop_run],
    } = synced(dir.path(), 103, "");
    let safety = |node: &Node| node.json(&["status"])["safety"].clone();
    wait_until("both copies counted on the phone", || {
        let s = safety(&phone);
        (s["at_goal"] == n && s["replica_goal"] == 2)
            .then_some(())
            .ok_or(s.to_string())
    });

    // As the phone counts with a scrub period of 5 s, every check is soon too old.
    fs::write(phone.home.join("config.toml"), "[scrub]\nperiod = \"5s\"\n").unwrap();
    wait_until("no copy counted on the phone", || {
        let s = safety(&phone);
        let below = s["below_goal"].as_array().unwrap();
        (s["at_goal"] == 0
            && below.len() as u64 == n
            && below
                .iter()
                .all(|b| b["copies"] == 0 && b["unverified"] == 2))
        .then_some(())
        .ok_or(s.to_string())
    });

    // The laptop scrubs without pause, a pass every second: its fresh checks reach the phone.
    drop(laptop_run);
    fs::write(
        laptop.home.join("config.toml"),
        "[scrub]\nperiod = \"1s\"\nmax_rate = \"0\"\n",
    )
    .unwrap();
    let (_laptop_run, _) = laptop.start_run();
    wait_until("the laptop's copies counted again on the phone", || {
        let s = safety(&phone);
        let below = s["below_goal"].as_array().unwrap();
        (below.len() as u64 == n && below.iter().all(|b| b["copies"] == 1))
            .then_some(())
            .ok_or(s.to_string())
    });
    let path = phone.json(&["photos"])[0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let copies = phone.json(&["status", "--photo", &format!("camera/{path}")]);
    let by: Vec<(String, bool)> = copies["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["device"].as_str().unwrap().to_owned(),
                c["counts"] == true,
            )
        })
        .collect();
    assert_eq!(
        by,
        [("phone".to_owned(), false), ("laptop".to_owned(), true)],
        "{copies}"
    );
    let text = phone.ok(&["status", "--photo", &format!("camera/{path}")]);
    assert!(text.contains("1 copy counted"), "{text}");
    assert!(text.contains("(not counted)"), "{text}");
}

/// A vault's rotten and missing copies are healed as a full device's are, and every member's
/// count shows it: while the vault cannot fetch them again (its quota is full), the phone
/// counts those photos below the goal; once it can, they come back and the count with them.
#[test]
fn a_vault_s_damaged_copies_drop_the_count_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, vault) = (
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "vault"),
    );
    phone.invite(&vault, "vault");
    let pics = dir.path().join("pics");
    samples::write_library(&pics, 3, 104);
    phone.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    phone.ok(&["scan"]);
    let photos = phone.json(&["photos"]);
    let n = photos.as_array().unwrap().len() as u64;
    let (_phone_run, addr) = phone.start_run();
    vault.ok(&["peer", "add", &addr]);
    let at_goal = |want: u64| {
        wait_until(&format!("{want} photos at the goal on the phone"), || {
            let s = phone.json(&["status"])["safety"].clone();
            (s["at_goal"] == want).then_some(()).ok_or(s.to_string())
        })
    };
    {
        let (_vault_run, _) = vault.start_run();
        wait_for_verified_blobs(&vault, n);
        at_goal(n);
    }
    let blobs: Vec<&str> = photos
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["blob_id"].as_str().unwrap())
        .collect();
    // Its quota leaves no room for either of the two copies about to be lost, even once
    // they no longer count: what it stores now, less the larger of them, less a byte.
    // (Less only a byte, the smaller one fits back as soon as both are gone, and the phone
    // may never see the count at n - 2.)
    let used = vault.json(&["status"])["storage"]["used"].as_u64().unwrap();
    let size = |blob: &str| fs::metadata(stored_blob(&vault.home, blob)).unwrap().len();
    let largest = size(blobs[0]).max(size(blobs[1]));
    fs::write(
        vault.home.join("config.toml"),
        format!("[storage]\nmax_bytes = \"{}\"\n", used - largest - 1),
    )
    .unwrap();
    let rotten = stored_blob(&vault.home, blobs[0]);
    let mut bytes = fs::read(&rotten).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&rotten, &bytes).unwrap();
    fs::remove_file(stored_blob(&vault.home, blobs[1])).unwrap();

    let (vault_run, _) = vault.start_run();
    let run = vault.run(&["verify"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout.matches("no longer held").count(), 2, "{run:?}");
    // The phone sees the vault without them: two photos below the goal.
    at_goal(n - 2);
    drop(vault_run);

    // Room again: the vault fetches good copies, and the count comes back.
    fs::remove_file(vault.home.join("config.toml")).unwrap();
    let (_vault_run, _) = vault.start_run();
    wait_for_verified_blobs(&vault, n);
    at_goal(n);
}
