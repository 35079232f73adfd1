//! Sealed records as a vault stores them and a full device opens them: the sealed form with a
//! fixed key ring, and the plaintext decoder behind the AEAD directly. A record that decodes
//! encodes back to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::keys::{KeyRing, LibraryKey};
use photomesh_protocol::record::Record;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::new(LibraryKey::new(1, [5; 32]));
    let _ = Record::open(data, &ring);
    let _ = Record::open_photo(data, &ring);
    if let Ok(record) = Record::decode_plain(data) {
        let _ = record.timestamp_ms();
        if let Ok(again) = record.encode_plain() {
            assert_eq!(Record::decode_plain(&again).ok(), Some(record.clone()));
        }
        // Sealed and opened again, it is the same record.
        if let Ok((_, sealed)) = record.seal(&LibraryKey::new(1, [5; 32])) {
            assert_eq!(Record::open(&sealed, &ring).ok(), Some(record));
        }
    }
});
