//! Verified streaming in: reads a blob's bao encoding and checks every parent pair and every
//! chunk group against the blob ID before the caller may use it.
//!
//! A chunk group is read straight into the buffer the caller keeps it in (a file's write
//! buffer, or the whole blob in memory) and hashed there. bao-tree's decoder reads each
//! group into a buffer of its own, zeroed first, which the caller then copied out: on a
//! 1 GB transfer that was a memset and a copy of every byte on the receiving side.
//!
//! The order of the items, and which are sent, is bao-tree's
//! ([`BaoTree::ranges_pre_order_chunks_iter_ref`]): the same as its encoder on the serving
//! side. The hashing is BLAKE3's own subtree API (`blake3::hazmat`).

use std::io;

use bao_tree::io::{DecodeError, Parent};
use bao_tree::iter::{BaoChunk, ResponseIterRef};
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};

use photomesh_protocol::seal::BlobId;

use crate::blob::sealed::OUTBOARD_BLOCK_SIZE;

/// Reads the bao encoding of `ranges` of one blob, item by item, verifying as it goes.
pub struct Verifier<'a> {
    items: ResponseIterRef<'a>,
    /// The hashes the items still to come must have, the next one last; the blob ID first.
    /// Emptied by a failure, after which nothing more is read.
    expected: Vec<blake3::Hash>,
}

/// What the stream holds next.
pub enum Step {
    /// A parent pair, read and verified: its hashes are what the items below it must have.
    Parent(Parent),
    /// A chunk group: read it with [`Leaf::read_into`].
    Leaf(Leaf),
}

/// A chunk group the stream holds next, and the hash it must have.
pub struct Leaf {
    /// Where the group starts in the blob.
    pub offset: u64,
    /// How many bytes it has: [`crate::blob::partial::GROUP_BYTES`], less for the last.
    pub len: usize,
    start_chunk: ChunkNum,
    is_root: bool,
    hash: blake3::Hash,
}

/// The chunks of chunk groups `first..end` of a blob of `sealed_len` bytes, as the serving
/// side's encoder reads them: a range that reaches past the blob's last chunk is open-ended
/// (bao-tree's encoder makes it so, and its items differ from those of the closed range).
pub fn group_ranges(first: u64, end: u64, sealed_len: u64) -> ChunkRanges {
    let ranges = crate::blob::source::group_chunks(first, end);
    let last = ChunkNum(ChunkNum::chunks(sealed_len).0.saturating_sub(1));
    let bounds = ranges.boundaries();
    // How many boundaries stay: every range up to the last chunk, and the one holding
    // (or, past the end, following) the last chunk open-ended.
    let keep = match bounds.binary_search(&last) {
        Ok(i) if i % 2 == 0 => i + 1,
        Ok(i) if i + 1 == bounds.len() => i + 1,
        Ok(i) => i,
        Err(i) if i % 2 == 0 && i < bounds.len() => i + 1,
        Err(i) => i,
    };
    let mut kept = ChunkRanges::empty();
    for pair in bounds[..keep].chunks(2) {
        match *pair {
            [start, end] => kept |= ChunkRanges::from(start..end),
            [start] => kept |= ChunkRanges::from(start..),
            _ => {}
        }
    }
    kept
}

impl<'a> Verifier<'a> {
    /// A verifier of the encoding of `ranges` (chunks, from [`group_ranges`]) of the blob
    /// `blob_id`, `sealed_len` bytes long.
    pub fn new(blob_id: &BlobId, sealed_len: u64, ranges: &'a ChunkRanges) -> Self {
        let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
        Self {
            items: ResponseIterRef::new(tree, ranges),
            expected: vec![blake3::Hash::from_bytes(blob_id.0)],
        }
    }

    /// The next item of `encoded`: a parent pair is read and verified here; a chunk group is
    /// returned unread. `Ok(None)` once the ranges are complete.
    pub fn next(&mut self, encoded: &mut impl io::Read) -> Result<Option<Step>, DecodeError> {
        // A stack emptied early is a failure already reported (or a tree bao-tree would
        // not build): nothing more is read.
        if self.expected.is_empty() {
            return Ok(None);
        }
        let step = match self.items.next() {
            None => return Ok(None),
            Some(BaoChunk::Parent {
                node,
                is_root,
                left,
                right,
                ..
            }) => {
                let mut pair = [0u8; 64];
                encoded
                    .read_exact(&mut pair)
                    .map_err(|e| missing(e, DecodeError::ParentNotFound(node)))?;
                let (l, r) = pair.split_at(32);
                let l: [u8; 32] = l
                    .try_into()
                    .map_err(|_| DecodeError::ParentNotFound(node))?;
                let r: [u8; 32] = r
                    .try_into()
                    .map_err(|_| DecodeError::ParentNotFound(node))?;
                let actual = if is_root {
                    merge_subtrees_root(&l, &r, Mode::Hash)
                } else {
                    blake3::Hash::from(merge_subtrees_non_root(&l, &r, Mode::Hash))
                };
                if self.expected.pop() != Some(actual) {
                    self.expected.clear();
                    return Err(DecodeError::ParentHashMismatch(node));
                }
                let (l, r) = (blake3::Hash::from(l), blake3::Hash::from(r));
                if right {
                    self.expected.push(r);
                }
                if left {
                    self.expected.push(l);
                }
                Step::Parent(Parent { node, pair: (l, r) })
            }
            Some(BaoChunk::Leaf {
                start_chunk,
                size,
                is_root,
                ..
            }) => {
                let Some(hash) = self.expected.pop() else {
                    return Ok(None);
                };
                Step::Leaf(Leaf {
                    offset: start_chunk.to_bytes(),
                    len: size,
                    start_chunk,
                    is_root,
                    hash,
                })
            }
        };
        Ok(Some(step))
    }
}

impl Leaf {
    /// Reads the chunk group from `encoded` into `slot`, which must be [`Leaf::len`] bytes,
    /// and checks it. After an error `slot` holds bytes that are not the blob's, and the
    /// stream is not to be read further.
    pub fn read_into(
        self,
        encoded: &mut impl io::Read,
        slot: &mut [u8],
    ) -> Result<(), DecodeError> {
        if slot.len() != self.len {
            return Err(DecodeError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the buffer for a chunk group is not its size",
            )));
        }
        encoded
            .read_exact(slot)
            .map_err(|e| missing(e, DecodeError::LeafNotFound(self.start_chunk)))?;
        let actual = if self.is_root {
            blake3::hash(slot)
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(self.start_chunk.to_bytes());
            hasher.update(slot);
            blake3::Hash::from(hasher.finalize_non_root())
        };
        if actual != self.hash {
            return Err(DecodeError::LeafHashMismatch(self.start_chunk));
        }
        Ok(())
    }
}

/// An item the stream ended before (`not_found`), or the read's own error.
fn missing(e: io::Error, not_found: DecodeError) -> DecodeError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        not_found
    } else {
        DecodeError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::source::group_chunks;
    use bao_tree::io::BaoContentItem;
    use bao_tree::io::outboard::PreOrderMemOutboard;
    use proptest::prelude::*;

    fn blob(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn encode(data: &[u8], ranges: &ChunkRanges) -> (BlobId, Vec<u8>) {
        let outboard = PreOrderMemOutboard::create(data, OUTBOARD_BLOCK_SIZE);
        let mut encoded = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(data, &outboard, ranges, &mut encoded).unwrap();
        (BlobId(*outboard.root.as_bytes()), encoded)
    }

    /// Every item this verifier reads, as (offset or node, bytes), or the error.
    fn ours(id: &BlobId, len: u64, ranges: &ChunkRanges, mut encoded: &[u8]) -> Vec<String> {
        let mut verifier = Verifier::new(id, len, ranges);
        let mut out = Vec::new();
        loop {
            match verifier.next(&mut encoded) {
                Ok(None) => break,
                Ok(Some(Step::Parent(p))) => out.push(format!("parent {:?} {:?}", p.node, p.pair)),
                Ok(Some(Step::Leaf(leaf))) => {
                    let mut slot = vec![0xEE; leaf.len];
                    let offset = leaf.offset;
                    match leaf.read_into(&mut encoded, &mut slot) {
                        Ok(()) => out.push(format!("leaf {offset} {}", blake3::hash(&slot))),
                        Err(e) => {
                            out.push(format!("error {e}"));
                            break;
                        }
                    }
                }
                Err(e) => {
                    out.push(format!("error {e}"));
                    break;
                }
            }
        }
        out
    }

    /// The same, by bao-tree's own decoder.
    fn theirs(id: &BlobId, len: u64, ranges: &ChunkRanges, encoded: &[u8]) -> Vec<String> {
        let tree = BaoTree::new(len, OUTBOARD_BLOCK_SIZE);
        let items = bao_tree::io::sync::DecodeResponseIter::new(
            blake3::Hash::from_bytes(id.0),
            tree,
            encoded,
            ranges,
        );
        let mut out = Vec::new();
        for item in items {
            match item {
                Ok(BaoContentItem::Parent(p)) => {
                    out.push(format!("parent {:?} {:?}", p.node, p.pair))
                }
                Ok(BaoContentItem::Leaf(l)) => {
                    out.push(format!("leaf {} {}", l.offset, blake3::hash(&l.data)))
                }
                Err(e) => {
                    out.push(format!("error {e}"));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn reads_what_bao_tree_reads_for_whole_blobs_and_ranges() {
        let group = 16 * 1024;
        for len in [
            20,
            1024,
            1025,
            group - 1,
            group,
            group + 1,
            5 * group + 300,
            64 * group,
        ] {
            let data = blob(len, len as u8);
            let groups = (len as u64).div_ceil(group as u64);
            for (first, end) in [(0, u64::MAX), (0, groups), (groups / 2, groups), (1, 2)] {
                if first >= groups {
                    continue;
                }
                let ranges = group_ranges(first, end, len as u64);
                let (id, encoded) = encode(&data, &group_chunks(first, end));
                let got = ours(&id, len as u64, &ranges, &encoded);
                assert_eq!(
                    got,
                    theirs(&id, len as u64, &ranges, &encoded),
                    "{len} {first}..{end}"
                );
                assert!(
                    got.iter().all(|i| !i.starts_with("error")),
                    "{len}: {got:?}"
                );
                assert!(got.iter().any(|i| i.starts_with("leaf")), "{len}: {got:?}");
            }
        }
    }

    #[test]
    fn a_leaf_is_written_only_into_the_slot_and_checked_there() {
        let data = blob(3 * 16 * 1024 + 7, 3);
        let ranges = group_ranges(0, u64::MAX, data.len() as u64);
        let (id, encoded) = encode(&data, &ranges);
        let mut verifier = Verifier::new(&id, data.len() as u64, &ranges);
        let mut into = vec![0u8; data.len()];
        let mut reader = &encoded[..];
        while let Some(step) = verifier.next(&mut reader).unwrap() {
            if let Step::Leaf(leaf) = step {
                let at = leaf.offset as usize;
                let len = leaf.len;
                leaf.read_into(&mut reader, &mut into[at..at + len])
                    .unwrap();
            }
        }
        assert!(into == data);
        assert!(reader.is_empty(), "the whole encoding was read");
    }

    #[test]
    fn a_slot_of_the_wrong_size_is_refused() {
        let data = blob(100, 1);
        let ranges = group_ranges(0, u64::MAX, 100);
        let (id, encoded) = encode(&data, &ranges);
        let mut reader = &encoded[..];
        let Some(Step::Leaf(leaf)) = Verifier::new(&id, 100, &ranges).next(&mut reader).unwrap()
        else {
            panic!("a one-group blob starts with its leaf");
        };
        let mut slot = vec![0; 99];
        assert!(matches!(
            leaf.read_into(&mut reader, &mut slot),
            Err(DecodeError::Io(_))
        ));
    }

    #[test]
    fn a_wrong_blob_id_fails_at_the_first_item() {
        for len in [100, 100_000] {
            let data = blob(len, 9);
            let ranges = group_ranges(0, u64::MAX, len as u64);
            let (mut id, encoded) = encode(&data, &ranges);
            id.0[0] ^= 1;
            let got = ours(&id, len as u64, &ranges, &encoded);
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(got[0].contains("HashMismatch"), "{got:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any flipped byte, and any cut, gives the same items and the same failure as
        /// bao-tree's decoder: nothing after the damage is accepted.
        #[test]
        fn damage_fails_where_bao_tree_fails(
            len in 1usize..200_000,
            flip in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
            first in 0u64..4,
        ) {
            let data = blob(len, 7);
            let groups = (len as u64).div_ceil(16 * 1024);
            let first = first.min(groups - 1);
            let ranges = group_ranges(first, u64::MAX, len as u64);
            let (id, encoded) = encode(&data, &group_chunks(first, u64::MAX));
            let mut flipped = encoded.clone();
            flipped[flip.index(encoded.len())] ^= 0x40;
            let got = ours(&id, len as u64, &ranges, &flipped);
            prop_assert_eq!(&got, &theirs(&id, len as u64, &ranges, &flipped));
            prop_assert!(got.last().is_some_and(|i| i.starts_with("error")));
            let short = &encoded[..cut.index(encoded.len())];
            let got = ours(&id, len as u64, &ranges, short);
            prop_assert_eq!(&got, &theirs(&id, len as u64, &ranges, short));
            prop_assert!(got.last().is_some_and(|i| i.starts_with("error")));
        }
    }
}
