//! Reconciliation frames: a responder (and an initiator after its first frame) fed arbitrary
//! frames against a small set. Any frame gives progress or an error that ends the session,
//! never a panic; the session's own transmissions and events are drained after each one.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::reconcile::{Config, FingerprintTree, Item, Session};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut store = FingerprintTree::new();
    for i in 0..u64::from(control % 64) {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i * 7919).to_le_bytes());
        store.insert(Item::new(1_000 + i * 10, id));
    }
    let config = Config {
        sketches: control & 0x80 != 0,
        ..Config::default()
    };
    let now = Duration::from_secs(1);
    let session = if control & 0x40 == 0 {
        Session::respond(config, 7, now)
    } else {
        Session::initiate(config, 7, now, &store)
    };
    let Ok(mut session) = session else {
        return;
    };
    while session.poll_transmit(now, &store).is_some() {}
    // Frames separated by 0xFF 0x00 (a split the fuzzer can learn).
    for frame in rest.split(|b| *b == 0xFF) {
        if session.handle_frame(now, &store, frame).is_err() {
            break;
        }
        while session.poll_transmit(now, &store).is_some() {}
        while session.poll_event().is_some() {}
    }
    session.handle_timeout(now + Duration::from_secs(3600));
    let _ = session.is_done();
});
