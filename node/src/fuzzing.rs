//! Entry points for the fuzz targets in `fuzz/`: the node's decoders of what comes from the
//! network or the disk that are not public otherwise. Each checks what must hold of its
//! result, so that the fuzzer finds wrong answers as well as panics. Not an API.

use bao_tree::ChunkRanges;
use bao_tree::io::outboard::PostOrderMemOutboard;
use photomesh_protocol::seal::BlobId;

use crate::blob::direct::Pool;
use crate::blob::partial::{groups_of, parse_progress};
use crate::blob::sealed::OUTBOARD_BLOCK_SIZE;
use crate::replicate::receive::decode_in_memory;
use crate::replicate::transfers::Transfers;

/// Reads a progress file's `text` with `on_disk` bytes of partial file: whatever it says,
/// the groups it yields lie within the blob and within what is on disk.
pub fn progress_file(text: &str, on_disk: u64) {
    let (set, sealed_len) = parse_progress(text, on_disk);
    match sealed_len {
        None => assert!(set.is_empty(), "nothing verified without a length"),
        Some(len) => {
            let limit = groups_of(len).min(groups_of(on_disk));
            assert!(set.end() <= limit, "{set:?} past {limit} groups");
            assert!(set.bytes(len) <= len);
        }
    }
}

/// Decodes a blob's stream: a real encoding of a `sealed_len`-byte blob with `edits` applied
/// (byte flips as (offset u16 LE, xor) triples, then a cut) when `mode` is even, or `edits`
/// itself as the stream when odd. Whatever is accepted is the blob byte for byte, and an
/// unchanged encoding is accepted.
pub fn bao_stream(mode: u8, sealed_len: usize, edits: &[u8]) {
    let data: Vec<u8> = (0..sealed_len).map(|i| (i * 31 % 251) as u8).collect();
    let outboard = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
    let blob_id = BlobId(*outboard.root.as_bytes());
    let mut encoded = Vec::new();
    if bao_tree::io::sync::encode_ranges_validated(
        &data[..],
        &outboard,
        &ChunkRanges::all(),
        &mut encoded,
    )
    .is_err()
    {
        return;
    }
    if mode % 2 == 1 {
        return check(&blob_id, &data, &outboard.data, edits, false);
    }
    let whole = encoded.clone();
    let mut triples = edits.chunks_exact(3);
    for t in &mut triples {
        if let Some(byte) = encoded.get_mut(usize::from(u16::from_le_bytes([t[0], t[1]]))) {
            *byte ^= t[2];
        }
    }
    if let [cut, ..] = triples.remainder() {
        encoded.truncate(encoded.len() * usize::from(*cut) / 256);
    }
    check(&blob_id, &data, &outboard.data, &encoded, encoded == whole);
}

fn check(blob_id: &BlobId, data: &[u8], outboard: &[u8], encoded: &[u8], unchanged: bool) {
    let pool = Pool::new(0);
    let mut into = pool.take(data.len());
    let handle = Transfers::default().start(*blob_id, 0, 0);
    match decode_in_memory(encoded, blob_id, &handle, &mut into) {
        Ok(got) => {
            assert!(into.bytes() == data, "accepted bytes that are not the blob");
            assert!(
                got == outboard,
                "accepted an outboard that is not the blob's"
            );
        }
        Err(_) => assert!(!unchanged, "an unchanged encoding was refused"),
    }
}
