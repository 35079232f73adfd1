//! A stranger floods a running node with protected handshake packets (real nQUIC Initials,
//! each a new connection to the node's key): past a few handshakes the node answers with
//! stateless Retries (and past those, with nothing), doing no Diffie-Hellman for addresses it
//! has not validated, and a member is served all the while.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use photomesh::home::Home;
use photomesh_tests::{Node, flood};

#[test]
fn a_handshake_flood_is_answered_with_retries_and_members_still_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Node::init(dir.path(), "nas"),
        Node::init(dir.path(), "laptop"),
    );
    a.invite(&b, "full");
    let key = Home::open(&a.home).unwrap().device.noise_public();
    let (_run, addr) = a.start_run();
    let target: SocketAddr = addr.parse().unwrap();
    // The stranger's own address: the members here all come from 127.0.0.1.
    let stranger: SocketAddr = "127.0.0.2:0".parse().unwrap();

    let packets = flood::initials(target, key, 3000);
    assert_eq!(packets.len(), 3000);
    // A member pings while the flood goes on, again and again until it is over.
    let flooding = std::thread::spawn(move || {
        flood::flood(stranger, target, &packets, Duration::from_millis(500)).unwrap()
    });
    let mut pings = 0;
    while pings == 0 || !flooding.is_finished() {
        let ping = b.run(&["ping", &addr]);
        assert_eq!(
            ping.code, 0,
            "a member was not served during the flood: {ping:?}"
        );
        pings += 1;
    }
    let answers = flooding.join().unwrap();

    // A few handshakes ran, where without the gate every Initial costs one (3,000 of 3,000);
    // the rest got a Retry, or past the Retries a member could need, nothing at all.
    eprintln!("{answers:?} after {pings} pings");
    assert_eq!(answers.sent, 3000);
    assert!(
        answers.retries >= 10 && answers.handshakes <= 100,
        "{answers:?}"
    );
    // And the node serves its member after the flood.
    b.ok(&["ping", &addr]);
}
