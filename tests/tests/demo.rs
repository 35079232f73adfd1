//! `photomesh demo` (issue 7): the real command, run as a user would, must show every photo
//! reach the phone, the laptop and the NAS with three copies, and leave nothing behind.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use photomesh_tests::photomesh_bin;

#[test]
fn issue_7_the_demo_replicates_every_photo_to_every_device_and_cleans_up() {
    let parent = tempfile::tempdir().unwrap();
    let out = Command::new(photomesh_bin())
        .args(["demo", "--photos", "12", "--dir"])
        .arg(parent.path())
        .env_remove("PHOTOMESH_HOME")
        .env_remove("PHOTOMESH_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the demo failed:\n{stdout}\n{stderr}"
    );
    // Both joins went through the QR code file.
    assert!(
        stdout.contains("phone   joined as a full device (QR code"),
        "{stdout}"
    );
    assert!(
        stdout.contains("nas     joined as a vault device (QR code"),
        "{stdout}"
    );
    // The phone's watcher recorded 12 photos and a video with no command run; each full
    // device's `status` says all 13 have 3 verified copies, and the NAS stores them all,
    // sealed.
    assert!(!stdout.contains("$ photomesh scan"), "{stdout}");
    assert!(
        stdout.contains("Camera                13 photos"),
        "{stdout}"
    );
    let safe = "Safety   13 of 13 photos";
    assert_eq!(stdout.matches(safe).count(), 2, "{stdout}");
    assert!(
        stdout.contains("have 3 verified copies on distinct devices; 0 below"),
        "{stdout}"
    );
    // The vault holds every record the full devices hold (13 photos, the members, the key
    // shares), all sealed.
    let all = stdout
        .split("photo records (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no record count: {stdout}"));
    assert!(
        stdout.contains(&format!(
            "Library  {all} records, all sealed: this device holds no library key"
        )),
        "{stdout}"
    );
    for device in ["phone", "laptop", "nas"] {
        assert!(
            stdout.contains(&format!("(on the {device})")),
            "no status of the {device}: {stdout}"
        );
    }
    assert!(
        stdout.contains("Demo complete: all 13 photos and videos reached"),
        "{stdout}"
    );
    // Nothing is left: no directory, no running node.
    let left: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?}");
}

#[test]
fn the_demo_keeps_its_directory_when_asked_and_says_where() {
    let parent = tempfile::tempdir().unwrap();
    let out = Command::new(photomesh_bin())
        .args(["demo", "--keep", "--photos", "2", "--dir"])
        .arg(parent.path())
        .env_remove("PHOTOMESH_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let kept: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        stdout.contains(&format!("Kept the demo directory {}", kept[0].display())),
        "{stdout}"
    );
    for home in ["phone", "laptop", "nas"] {
        assert!(kept[0].join(home).join("config.toml").is_file());
    }
    // The kept homes are ordinary homes: the laptop's status reads.
    let laptop = photomesh_tests::Node::at(kept[0].join("laptop"));
    assert_eq!(laptop.json(&["status"])["photo_records"], 3);
}

#[test]
fn the_demo_says_clearly_when_its_directory_cannot_be_made() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(photomesh_bin())
        .args(["demo", "--dir"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot prepare the demo directory") && stderr.contains("--dir"),
        "{stderr}"
    );
}

#[test]
fn an_interrupted_demo_stops_its_nodes_and_removes_its_directory() {
    use std::io::BufRead;
    let parent = tempfile::tempdir().unwrap();
    let mut demo = Command::new(photomesh_bin())
        .args(["demo", "--dir"])
        .arg(parent.path())
        .env_remove("PHOTOMESH_HOME")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the nodes run, Ctrl-C — sent to the demo alone, so it must stop its nodes itself.
    let mut stdout = std::io::BufReader::new(demo.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("nas     listening on") {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    let status = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut stderr).unwrap();
    let code = demo.wait().unwrap().code();
    assert_eq!(code, Some(2), "{seen}{rest}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?}");
    // No node of the demo is still running.
    let dir = parent.path().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !(cmdline.contains(&dir) && cmdline.contains("run")),
                "still running: {cmdline}"
            );
        }
    }
}
