//! Hold policies: a device set to hold only its own photos (`run --hold own`) receives the
//! other devices' records but not their blobs, while the others still get its photos; and
//! `restore` on it fetches the photos it does not hold from the mesh.

#![allow(clippy::unwrap_used)]

use photomesh_tests::{Node, WAIT, wait_until};

#[test]
fn a_device_holding_only_its_own_photos_gets_records_but_not_blobs_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, nas, pi) = (
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "pi"),
    );
    phone.invite(&nas, "full");
    phone.invite(&pi, "vault");
    let phone_pics = dir.path().join("phone-pics");
    let nas_pics = dir.path().join("nas-pics");
    photomesh_tests::samples::write_library(&phone_pics, 2, 31);
    photomesh_tests::samples::write_library(&nas_pics, 3, 32);
    phone.ok(&["folder", "add", phone_pics.to_str().unwrap()]);
    nas.ok(&["folder", "add", nas_pics.to_str().unwrap()]);
    phone.ok(&["scan"]);
    nas.ok(&["scan"]);
    let own = |node: &Node| -> u64 {
        node.json(&["status"])["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["photos"].as_u64().unwrap())
            .sum()
    };
    let (phone_own, nas_own) = (own(&phone), own(&nas));
    assert!(phone_own > 0 && nas_own > 0);

    // A vault holds every blob: it cannot be set to hold its own only.
    let refused = pi.run(&["run", "--listen", "127.0.0.1:0", "--hold", "own"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("vault"), "{refused:?}");

    let mut phone_run = phone.spawn_with_env(
        &["run", "--listen", "127.0.0.1:0", "--hold", "own"],
        &[("PHOTOMESH_LOG", "photomesh=info")],
    );
    let line = phone_run.wait_for_line(WAIT, |l| l.contains("listening on"));
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    nas.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = nas.start_run();

    // The phone reads every record, and leaves the NAS's blobs to the NAS…
    let all = phone_own + nas_own;
    wait_until("the phone has every record", || {
        let status = phone.json(&["status"]);
        if status["photo_records"] == all {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    let skipped = format!("skipped={nas_own}");
    phone_run.wait_for_line(WAIT, |l| l.contains("hold policy") && l.contains(&skipped));
    assert_eq!(phone.json(&["verify"])["blobs_checked"], 0);
    assert_eq!(phone.json(&["status"])["hold"], "own");

    // …while the NAS, holding all, gets the phone's photos.
    wait_until("the NAS holds the phone's blobs", || {
        let report = nas.json(&["verify"]);
        if report["blobs_checked"] == phone_own {
            Ok(())
        } else {
            Err(report.to_string())
        }
    });
    assert_eq!(nas.json(&["status"])["hold"], "all");
    // The phone never stored one of the NAS's blobs meanwhile.
    assert_eq!(phone.json(&["verify"])["blobs_checked"], 0);

    // Restoring on the phone fetches the photos it does not hold from the NAS, verified,
    // and writes them byte for byte. With no node running on the phone, `restore` dials the
    // members itself.
    drop(phone_run);
    let out = dir.path().join("restored");
    let restore = phone.run(&["restore", "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert!(
        restore.stderr.contains(&format!("{nas_own} of {nas_own}")),
        "{restore:?}"
    );
    assert!(
        !restore.stderr.contains("through the running node"),
        "{restore:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&restore.stdout).unwrap();
    assert_eq!(report["restored"], all, "{report}");
    for (path, (bytes, ..)) in photomesh_tests::snapshot(&nas_pics) {
        let rel = path.strip_prefix(&nas_pics).unwrap();
        assert!(
            std::fs::read(out.join("nas-pics").join(rel)).unwrap() == bytes,
            "{} differs",
            rel.display()
        );
    }

    // With the phone's node running, `restore` asks it to fetch over the connection it
    // already holds (a second connection from the phone would be refused as a duplicate).
    let mut phone_run = phone.spawn_with_env(
        &["run", "--listen", "127.0.0.1:0", "--hold", "own"],
        &[("PHOTOMESH_LOG", "photomesh=info")],
    );
    phone_run.wait_for_line(WAIT, |l| l.contains("listening on"));
    let mut rng = photomesh_tests::samples::Rng::new(33);
    let late =
        photomesh_tests::samples::jpeg_with_exif(&mut rng, 32, 24, "2025:02:03 04:05:06", None);
    std::fs::write(nas_pics.join("late.jpg"), &late).unwrap();
    wait_until("the phone has the late photo's record", || {
        let status = phone.json(&["status"]);
        let online = status["peers"].as_array().is_some_and(|peers| {
            peers
                .iter()
                .any(|p| p["name"] == "nas" && p["online"] == true)
        });
        if status["photo_records"] == all + 1 && online {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    let again = dir.path().join("restored-again");
    let restore = phone.run(&["restore", "--to", again.to_str().unwrap(), "--json"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert!(
        restore.stderr.contains("through the running node"),
        "{restore:?}"
    );
    assert!(restore.stderr.contains("1 of 1"), "{restore:?}");
    assert_eq!(
        std::fs::read(again.join("nas-pics/late.jpg")).unwrap(),
        late
    );
    drop(phone_run);
}
