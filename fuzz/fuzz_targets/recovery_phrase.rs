//! Recovery phrases (typed by a person): any text gives a phrase or an error, and a phrase
//! read back writes the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::keys::KeyRing;
use photomesh_protocol::recovery::Phrase;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Phrase::parse(text) {
        Ok(Phrase::KeyRing(ring)) => {
            let again = KeyRing::from_recovery_phrase(&ring.to_recovery_phrase());
            assert_eq!(again.ok(), Some(ring));
        }
        Ok(Phrase::Recovery(key)) => {
            assert_eq!(Phrase::parse(&key.to_phrase()).ok(), Some(Phrase::Recovery(key)));
        }
        Err(_) => {}
    }
});
