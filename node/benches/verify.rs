//! Receive-side verification benchmark: `cargo bench -p photomesh --bench verify`.
//!
//! Decodes a 256 MiB blob's bao encoding from memory into a buffer as long as the blob, the
//! way a receiving node keeps a blob: with bao-tree's decoder (each chunk group read into its
//! own buffer, then copied out) and with `blob::verify` (read into place and hashed there).
//! Prints the CPU model and the median of 7 runs of each, as milliseconds per GiB; nothing
//! here touches a disk or the network. `PHOTOMESH_BENCH_QUICK=1`: a 16 MiB blob.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bao_tree::io::BaoContentItem;
use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::{BaoTree, ChunkRanges};
use photomesh::blob::sealed::OUTBOARD_BLOCK_SIZE;
use photomesh::blob::verify::{Step, Verifier, group_ranges};
use photomesh_protocol::seal::BlobId;

fn main() {
    let len: usize = if std::env::var_os("PHOTOMESH_BENCH_QUICK").is_some() {
        16 << 20
    } else {
        256 << 20
    };
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(7) % 251) as u8).collect();
    let ranges = group_ranges(0, u64::MAX, len as u64);
    let outboard = PreOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
    let mut encoded = Vec::new();
    bao_tree::io::sync::encode_ranges_validated(&data[..], &outboard, &ranges, &mut encoded)
        .unwrap();
    let id = BlobId(*outboard.root.as_bytes());
    let mut into = vec![0u8; len];
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        into.fill(0);
        theirs.push(time(|| {
            bao_tree_decoder(&outboard, &ranges, &encoded, &mut into)
        }));
        assert!(into == data, "bao-tree's decoder kept other bytes");
        into.fill(0);
        ours.push(time(|| in_place(&id, &ranges, &encoded, &mut into)));
        assert!(into == data, "the in-place decoder kept other bytes");
    }
    let per_gib = |runs: &mut Vec<Duration>| {
        runs.sort();
        runs[runs.len() / 2].as_secs_f64() * 1e3 * (1u64 << 30) as f64 / len as f64
    };
    println!(
        "receive-side verification, {} MiB blob, median of 7",
        len >> 20
    );
    println!("  CPU: {}", cpu_model());
    println!(
        "  bao-tree decoder, then copied into place  {:7.1} ms/GiB",
        per_gib(&mut theirs)
    );
    println!(
        "  blob::verify, read and hashed in place    {:7.1} ms/GiB",
        per_gib(&mut ours)
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// What the receiving node did before `blob::verify`: a 1 MiB `BufReader` over the stream,
/// bao-tree's decoder, each verified chunk group copied to its place.
fn bao_tree_decoder(
    outboard: &PreOrderMemOutboard,
    ranges: &ChunkRanges,
    encoded: &[u8],
    into: &mut [u8],
) {
    let tree = BaoTree::new(into.len() as u64, OUTBOARD_BLOCK_SIZE);
    let reader = std::io::BufReader::with_capacity(1 << 20, encoded);
    let items = bao_tree::io::sync::DecodeResponseIter::new(outboard.root, tree, reader, ranges);
    for item in items {
        if let BaoContentItem::Leaf(leaf) = item.unwrap() {
            let start = leaf.offset as usize;
            into[start..start + leaf.data.len()].copy_from_slice(&leaf.data);
        }
    }
}

fn in_place(id: &BlobId, ranges: &ChunkRanges, mut encoded: &[u8], into: &mut [u8]) {
    let mut verifier = Verifier::new(id, into.len() as u64, ranges);
    while let Some(step) = verifier.next(&mut encoded).unwrap() {
        if let Step::Leaf(leaf) = step {
            let start = leaf.offset as usize;
            let end = start + leaf.len;
            leaf.read_into(&mut encoded, &mut into[start..end]).unwrap();
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
