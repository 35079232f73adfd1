//! Sealed blobs as a peer serves them and a restore opens them: the header decoder, and the
//! whole-blob opener with a fixed file key. A blob sealed by us opens to what was sealed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::keys::LibraryKey;
use photomesh_protocol::seal::{self, Header, SegmentCipher};

fuzz_target!(|data: &[u8]| {
    let file_key = LibraryKey::new(1, [5; 32]).content_key().file_key(&[9; 32]);
    if let Ok(header) = Header::decode(data) {
        let _ = (header.segment_count(), header.sealed_len());
        let _ = header.segment_plaintext_len(header.segment_count().saturating_sub(1));
    }
    let _ = SegmentCipher::for_opening(&file_key, data);
    let _ = seal::open(&file_key, data);
    // The bytes as a plaintext: sealed and opened, the same bytes.
    let sealed = seal::seal(&file_key, data);
    assert_eq!(seal::open(&file_key, &sealed).ok().as_deref(), Some(data));
});
