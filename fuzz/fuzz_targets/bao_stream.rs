//! A blob's verified stream, as a peer (perhaps a bad one) sends it: a real encoding of a
//! blob of the length the input picks, with the input's changes applied (bytes flipped, cut
//! short) or, in the other mode, the input itself as the stream. Whatever arrives, the
//! receiver keeps only what verifies against the blob ID, and says bad data or a short
//! stream, never a panic; an unchanged encoding always decodes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, len_lo, len_hi, rest @ ..] = data else {
        return;
    };
    // Up to three chunk groups of 16 KiB and a part: every shape of tree the receiver meets,
    // at a size that keeps a run fast.
    let sealed_len = usize::from(u16::from_le_bytes([*len_lo, *len_hi])) % (3 * 16_384 + 1);
    photomesh::fuzzing::bao_stream(*mode, sealed_len, rest);
});
