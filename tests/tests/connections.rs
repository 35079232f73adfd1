//! The connection manager and the control socket, with real nodes on loopback: one
//! connection per pair of devices however the dials cross, reconnection after a peer is
//! killed, live status (connections and transfers) read through the control socket, and the
//! socket's own behaviour (bad requests, a second node, a stale socket).

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use photomesh_tests::{Node, WAIT, free_udp_addr, wait_until, wait_until_every};
use serde_json::Value;

/// The connection to the one other device, as `node`'s status shows it, if connected.
fn the_connection(status: &Value) -> Option<&Value> {
    let peers = status["peers"].as_array()?;
    assert_eq!(peers.len(), 1, "{status}");
    peers[0]["connection"].as_object()?;
    Some(&peers[0]["connection"])
}

/// Waits until `a` and `b` each hold exactly one connection, the same one (both ends derive
/// the same connection ID from its keys), other than `not`; returns its ID.
fn wait_for_one_shared_connection(a: &Node, b: &Node, not: Option<&str>) -> String {
    wait_until("one connection, the same at both ends", || {
        let (sa, sb) = (a.json(&["status"]), b.json(&["status"]));
        let seen = format!("a: {sa}\nb: {sb}");
        let (Some(ca), Some(cb)) = (the_connection(&sa), the_connection(&sb)) else {
            return Err(seen);
        };
        let id = ca["connection_id"].as_str().unwrap().to_owned();
        let one_each = sa["open_connections"] == 1 && sb["open_connections"] == 1;
        if one_each && cb["connection_id"] == id.as_str() && Some(id.as_str()) != not {
            // Each end says the other dialled it, or itself: never both.
            assert_ne!(ca["dialled"], cb["dialled"], "{seen}");
            assert!(sa["peers"][0]["online"] == true && sb["peers"][0]["online"] == true);
            Ok(id)
        } else {
            Err(seen)
        }
    })
}

#[test]
fn two_nodes_that_dial_each_other_keep_one_connection_and_reconnect_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Node::init(dir.path(), "a"), Node::init(dir.path(), "b"));
    a.invite(&b, "full");
    // Each knows where the other will run, so both dial at once when they start.
    let (addr_a, addr_b) = (free_udp_addr(), free_udp_addr());
    a.ok(&["peer", "add", &addr_b]);
    b.ok(&["peer", "add", &addr_a]);
    let log = [("PHOTOMESH_LOG", "photomesh=debug")];
    let (_run_a, _) = a.start_run_at(&addr_a, &log);
    let (run_b, _) = b.start_run_at(&addr_b, &log);
    let first = wait_for_one_shared_connection(&a, &b, None);

    // B is killed and comes back at the same address: the pair reconnects, again with one
    // connection.
    drop(run_b); // SIGKILL
    let (mut run_b, _) = b.start_run_at(&addr_b, &log);
    let second = wait_for_one_shared_connection(&a, &b, Some(&first));
    assert_ne!(first, second);
    // `devices` shows the live connection too.
    let devices = a.json(&["devices"]);
    let entry = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "b")
        .unwrap();
    assert_eq!(entry["online"], true, "{devices}");
    assert_eq!(entry["connection"]["connection_id"], second.as_str());
    assert!(a.ok(&["devices"]).contains("connected via"));

    // A scan beside A's node makes it announce to B, which pulls at once.
    a.ok(&["scan"]);
    run_b.wait_for_line(WAIT, |l| l.contains("announced new records"));
}

#[test]
fn a_member_found_by_discovery_is_dialled_at_once_and_hears_announcements() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Node::init(dir.path(), "a"), Node::init(dir.path(), "b"));
    a.invite(&b, "full");
    // Neither knows where the other runs (pairing records no address), so only discovery
    // can bring them together: A learns B's address through `NodeHandle::found`.
    let (mut run_b, addr_b) = b.start_run_with_env(&[("PHOTOMESH_LOG", "photomesh=debug")]);
    let b_id: photomesh_protocol::identity::DeviceId = b.json(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let home = a.home.clone();
    let node = runtime.spawn(async move {
        let options = photomesh::daemon::RunOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            watch: None,
            discovery: photomesh::daemon::discovery::Settings {
                advertise: false,
                browse: false,
            },
            peers: Vec::new(),
            ..Default::default()
        };
        photomesh::daemon::run(
            &home,
            options,
            |handle| handle_tx.send(handle.clone()).unwrap(),
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    let handle = handle_rx.recv_timeout(WAIT).unwrap();
    assert!(handle.live().connections.is_empty());
    handle.found(b_id, vec![addr_b.parse().unwrap()]);
    wait_until("A connected to B", || {
        let live = handle.live();
        match live.connections.first() {
            Some(c) if c.device_id == b_id.to_string() => Ok(()),
            _ => Err(format!("{live:?}")),
        }
    });
    // B agrees that A dialled.
    wait_until("B sees the connection A dialled", || {
        let status = b.json(&["status"]);
        match the_connection(&status) {
            Some(c) if c["dialled"] == "there" => Ok(()),
            _ => Err(status.to_string()),
        }
    });
    handle.announce();
    run_b.wait_for_line(WAIT, |l| l.contains("announced new records"));
    stop.send(()).unwrap();
    runtime.block_on(node).unwrap().unwrap();
    assert!(!a.home.join("control.sock").exists());
}

#[test]
fn status_through_the_socket_shows_a_large_transfer_with_rate_and_eta() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, nas) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "nas"),
    );
    laptop.invite(&nas, "full");
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(9);
    let video = photomesh_tests::samples::mp4_like(&mut rng, 1_700_000_000, 100 << 20);
    std::fs::write(videos.join("holiday.mp4"), &video).unwrap();
    laptop.ok(&["folder", "add", videos.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    let (_laptop_run, addr) = laptop.start_run();
    nas.ok(&["peer", "add", &addr]);
    let (_nas_run, _) = nas.start_run();

    // Read the NAS's status as often as it answers, until it shows the video under way.
    let (status, transfer) = wait_until_every(
        "a transfer under way shown",
        std::time::Duration::ZERO,
        || {
            let status = nas.json(&["status"]);
            let under_way = status["transfers"].as_array().and_then(|t| {
                t.iter()
                    .find(|t| {
                        let (done, total) =
                            (t["done"].as_u64().unwrap(), t["total"].as_u64().unwrap());
                        done > 0 && done < total && t["bytes_per_s"].as_f64().unwrap() > 0.0
                    })
                    .cloned()
            });
            under_way
                .map(|transfer| (status.clone(), transfer))
                .ok_or_else(|| status.to_string())
        },
    );
    assert!(
        transfer["total"].as_u64().unwrap() > 100 << 20,
        "{transfer}"
    );
    assert!(transfer["eta_s"].as_f64().unwrap() >= 0.0, "{transfer}");
    let laptop_id = laptop.json(&["status"])["device_id"].clone();
    assert_eq!(transfer["peers"][0], laptop_id, "{transfer}");
    assert_eq!(status["node_running"], true);
    assert_eq!(status["peers"][0]["online"], true, "{status}");
    assert!(status["peers"][0]["connection"]["address"].is_string());

    // When it is done, no transfer is left.
    wait_until("the video stored", || {
        let status = nas.json(&["status"]);
        let report = nas.json(&["verify"]);
        if report["blobs_checked"] == 1 && status["transfers"].as_array().unwrap().is_empty() {
            Ok(())
        } else {
            Err(format!("{status}\n{report}"))
        }
    });
}

#[test]
fn the_control_socket_refuses_bad_requests_a_second_node_and_outlives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "solo");
    let socket = node.home.join("control.sock");

    // No node: status reads the home and says so.
    let status = node.json(&["status"]);
    assert_eq!(status["node_running"], false);
    assert_eq!(status["device_name"], "solo");
    assert!(node.ok(&["status"]).contains("not running"));
    assert!(node.ok(&["devices"]).contains("not running"));

    let (run, addr) = node.start_run();
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let status = node.json(&["status"]);
    assert_eq!(status["node_running"], true);
    assert_eq!(status["listening"], addr.as_str());
    assert!(node.ok(&["status"]).contains("running, listening on"));

    // Malformed requests get an error each, and the node carries on.
    for (request, says) in [
        (&b"hello\n"[..], "not JSON"),
        (b"{\"version\":1,\"verb\":\"dance\"}\n", "unknown verb"),
        (b"{\"version\":9,\"verb\":\"status\"}\n", "version"),
        (b"[]\n", "JSON object"),
    ] {
        let answer: Value = serde_json::from_str(&node.control_line(request)).unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(answer["version"], 1, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let mut huge = vec![b'x'; 100 * 1024];
    huge.push(b'\n');
    let answer: Value = serde_json::from_str(&node.control_line(&huge)).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("longer than"),
        "{answer}"
    );
    let answer: Value =
        serde_json::from_str(&node.control_line(b"{\"version\":1,\"verb\":\"status\"}\n")).unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["result"]["listening"], addr.as_str());
    assert_eq!(node.json(&["status"])["node_running"], true);

    // A second node on the same home is refused, and the first keeps running.
    let second = node.run(&["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.code, 2, "{second:?}");
    assert!(
        second.stderr.contains("already runs on this home"),
        "{second:?}"
    );
    assert_eq!(node.json(&["status"])["node_running"], true);

    // Killed, the node leaves its socket behind: nothing answers there, and status says so.
    drop(run); // SIGKILL
    assert!(socket.exists());
    assert_eq!(node.json(&["status"])["node_running"], false);
    // The next node replaces the stale socket; stopped cleanly, it removes it.
    let (run, _) = node.start_run();
    assert_eq!(node.json(&["status"])["node_running"], true);
    let (code, out) = run.terminate();
    assert_eq!(code, 0, "{out}");
    assert!(!socket.exists());
}

#[test]
fn a_node_signalled_the_moment_it_listens_stops_cleanly() {
    // The signal handlers are in place before the node says it listens: SIGTERM sent at
    // once ends it with its clean shutdown (exit 0, socket removed), not the default action.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let socket = node.home.join("control.sock");
    for attempt in 0..5 {
        let (run, _) = node.start_run();
        let (code, out) = run.terminate();
        assert_eq!(code, 0, "attempt {attempt}: {out}");
        assert!(
            !socket.exists(),
            "attempt {attempt}: the socket was left behind"
        );
    }
}
