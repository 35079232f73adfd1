//! IPv6 where there is one (issue 18): a node listening on the IPv6 wildcard takes IPv6 and
//! IPv4 peers on one socket, and writes an IPv4 peer's address as IPv4.

#![allow(clippy::unwrap_used)]

use photomesh_tests::{Node, wait_until};

#[test]
fn one_dual_stack_socket_answers_ipv6_and_ipv4_peers() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (nas, laptop, phone) = (
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
    );
    nas.invite(&laptop, "full");
    nas.invite(&phone, "full");
    // No LAN discovery: each reaches the NAS only at the address it is given, so the laptop
    // uses IPv6 and the phone IPv4 (this machine's other interfaces stay out of it).
    for node in [&nas, &laptop, &phone] {
        std::fs::write(
            node.home.join("config.toml"),
            "[discovery]\nadvertise = false\nbrowse = false\n",
        )
        .unwrap();
    }
    let (_nas_run, listening) = nas.start_run_at("[::]:0", &[]);
    let port = listening.rsplit(':').next().unwrap().to_owned();
    assert!(listening.starts_with("[::]:"), "{listening}");

    // One peer over IPv6, one over IPv4, both to the same socket.
    let v6 = laptop.ok(&["ping", &format!("[::1]:{port}")]);
    assert!(v6.contains("nas"), "{v6}");
    let v4 = phone.ok(&["ping", &format!("127.0.0.1:{port}")]);
    assert!(v4.contains("nas"), "{v4}");

    // Running, each connects; the NAS shows the IPv4 one as IPv4, not IPv4-mapped IPv6.
    laptop.ok(&["peer", "add", &format!("[::1]:{port}")]);
    phone.ok(&["peer", "add", &format!("localhost:{port}")]);
    // The laptop's own node listens on both too, so it can dial an IPv6 address.
    let _laptop_run = laptop.start_run_at("[::]:0", &[]).0;
    let _phone_run = phone.start_run().0;
    wait_until("the NAS holds both connections", || {
        let status = nas.json(&["status"]);
        let addresses: Vec<String> = status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["connection"]["address"].as_str().map(str::to_owned))
            .collect();
        let v4 = addresses.iter().any(|a| a.starts_with("127.0.0.1:"));
        let v6 = addresses.iter().any(|a| a.starts_with("[::1]:"));
        if v4 && v6 && addresses.iter().all(|a| !a.contains("::ffff:")) {
            Ok(())
        } else {
            Err(status["peers"].to_string())
        }
    });
}
