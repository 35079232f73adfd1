//! Recovery phrases (typed by a person): any text gives a key ring or an error, and a ring
//! read back writes the same phrase's bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::keys::KeyRing;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ring) = KeyRing::from_recovery_phrase(text) {
        let again = KeyRing::from_recovery_phrase(&ring.to_recovery_phrase());
        assert_eq!(again.ok(), Some(ring));
    }
});
