//! The configuration file with the real binary: what it sets reaches the commands, a flag
//! wins over it, and a mistake in it stops every command with a message naming the file and
//! the key.

#![allow(clippy::unwrap_used)]

use photomesh_tests::{Node, WAIT};

#[test]
fn init_takes_its_name_from_the_file_and_run_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::at(dir.path().join("nas"));
    std::fs::create_dir_all(&node.home).unwrap();
    std::fs::write(
        node.home.join("config.toml"),
        "[node]\nname = \"nas\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    // `init` accepts a home that holds only its configuration file.
    node.ok(&["init"]);
    assert_eq!(node.json(&["status"])["device_name"], "nas");

    // `run` without --listen listens where the file says (loopback, a free port) …
    let (run, addr) = {
        let mut run = node.spawn(&["run"]);
        let line = run.wait_for_line(WAIT, |l| l.contains("listening on"));
        (run, line.rsplit(' ').next().unwrap().to_owned())
    };
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    drop(run);
    // … and --listen wins over the file.
    let mut run = node.spawn(&["run", "--listen", "127.0.0.2:0"]);
    let line = run.wait_for_line(WAIT, |l| l.contains("listening on"));
    assert!(line.contains("127.0.0.2:"), "{line}");

    let shown = node.ok(&["config", "show"]);
    assert!(shown.contains("name = \"nas\"  # from the file"), "{shown}");
    assert!(shown.contains("hold = \"all\"  # default"), "{shown}");
}

#[test]
fn a_mistake_in_the_file_stops_every_command_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let file = node.home.join("config.toml");
    std::fs::write(&file, "[storage]\nhold = \"everything\"\n").unwrap();
    let run = node.run(&["status"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains(&file.display().to_string()), "{run:#?}");
    assert!(
        run.stderr.contains("hold") && run.stderr.contains("\"own\""),
        "{run:#?}"
    );

    std::fs::write(&file, "[peers]\nadresses = []\n").unwrap();
    let run = node.run(&["status"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("unknown field `adresses`, expected `addresses`"),
        "{run:#?}"
    );

    // `config init` refuses to overwrite it; on another path it writes a file that parses.
    std::fs::remove_file(&file).unwrap();
    node.ok(&["config", "init"]);
    let again = node.run(&["config", "init"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already exists"), "{again:#?}");
    node.ok(&["status"]);
}

#[test]
fn the_replica_goal_in_the_file_is_the_one_status_counts_against() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    let pics = dir.path().join("pics");
    photomesh_tests::samples::write_library(&pics, 2, 3);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    laptop.invite(&nas, "full");
    // Two members and no replication yet: by default the goal is 2 (every member, being
    // fewer than 3) and nothing has reached it.
    let safety = laptop.json(&["status"])["safety"].clone();
    assert_eq!(safety["replica_goal"], 2, "{safety}");
    assert_eq!(safety["at_goal"], 0, "{safety}");
    // A goal of 1 in the file: every photo is at the goal with its one copy.
    std::fs::write(
        laptop.home.join("config.toml"),
        "[status]\nreplica_goal = 1\n",
    )
    .unwrap();
    let safety = laptop.json(&["status"])["safety"].clone();
    assert_eq!(safety["replica_goal"], 1, "{safety}");
    assert_eq!(safety["at_goal"], 4, "{safety}");
    assert_eq!(
        safety["below_goal"].as_array().unwrap().len(),
        0,
        "{safety}"
    );
}
