//! [`BlobSource`]: where this device can read a blob's sealed bytes — its blob store, or an
//! original sealed on the fly — with the blob's verification data. Serving, restore and
//! verify all read blobs through it.

use std::fs::File;
use std::io;

use bao_tree::io::EncodeError;
use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::ReadAt;
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};

use photomesh_protocol::record::Record;
use photomesh_protocol::seal::BlobId;

use crate::blob::sealed::OUTBOARD_BLOCK_SIZE;
use crate::blob::sealed::SealedOriginal;
use crate::home::Home;
use crate::index::{BlobInfo, IndexError};

/// A blob this device can serve: from the blob store, or sealed on the fly from its
/// original, with its verification data.
pub struct BlobSource {
    pub(crate) source: Source,
    pub(crate) outboard: PostOrderMemOutboard,
}

pub(crate) enum Source {
    Stored(File),
    Original(Box<SealedOriginal>),
}

impl BlobSource {
    /// Where this device can read a blob from, if it holds it.
    pub fn open(home: &Home, blob_id: &BlobId) -> Result<Option<Self>, IndexError> {
        Self::open_in(&home.index, &home.blobs, &home.keys, blob_id)
    }

    /// [`BlobSource::open`] from an index, a blob store and a key ring apart from a
    /// [`Home`]: an original whose record is sealed under an epoch `keys` lacks is passed
    /// over, as one that cannot be read.
    pub fn open_in(
        index: &crate::index::Index,
        blobs: &crate::blob::store::BlobStore,
        keys: &photomesh_protocol::keys::KeyRing,
        blob_id: &BlobId,
    ) -> Result<Option<Self>, IndexError> {
        let Some(BlobInfo {
            sealed_len,
            outboard,
            stored,
        }) = index.blob_info(blob_id)?
        else {
            return Ok(None);
        };
        let outboard = PostOrderMemOutboard {
            root: blake3::Hash::from_bytes(blob_id.0),
            tree: BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE),
            data: outboard,
        };
        if stored && let Ok(file) = File::open(blobs.path_of(blob_id)) {
            return Ok(Some(Self {
                source: Source::Stored(file),
                outboard,
            }));
        }
        for original in index.originals_of(blob_id)? {
            let Ok(Record::Photo(photo)) = original.record.open(keys) else {
                continue;
            };
            let Some(key) = keys.get(photo.blob_epoch) else {
                continue;
            };
            match SealedOriginal::open(
                &original.root,
                &original.rel,
                &key.content_key(),
                &photo.plaintext_hash,
                photo.size,
            ) {
                Ok(opened) => {
                    return Ok(Some(Self {
                        source: Source::Original(Box::new(opened)),
                        outboard,
                    }));
                }
                // A FIFO, a link, a vanished or changed file where the original was: not
                // served, and said (a scan or `verify` says it too).
                Err(e) => tracing::warn!(
                    "cannot read the original {}: {}",
                    original.root.join(&original.rel).display(),
                    match crate::original::not_a_file(&e) {
                        Some(not) => not.to_string(),
                        None => e.to_string(),
                    }
                ),
            }
        }
        Ok(None)
    }

    /// Whether the bytes come from the blob store (rather than an original sealed on the fly).
    pub fn is_stored(&self) -> bool {
        matches!(self.source, Source::Stored(_))
    }

    /// The blob's sealed bytes from the start, as they are read (not checked here: whoever
    /// reads them checks them against the blob ID, as `sealed::open_blob` does).
    pub fn sealed_reader(&self) -> impl io::Read + '_ {
        SealedReader {
            source: self,
            pos: 0,
        }
    }

    /// Opens the blob as `photo`'s content into `out`, checked against the photo's blob ID
    /// and content hash as it goes (restore, thumbnails).
    pub fn open_into(
        &self,
        keys: &photomesh_protocol::keys::KeyRing,
        photo: &photomesh_protocol::record::PhotoRecord,
        out: impl io::Write,
    ) -> Result<(), crate::blob::sealed::OpenError> {
        crate::blob::sealed::open_blob(
            io::BufReader::with_capacity(1 << 20, self.sealed_reader()),
            keys,
            &photo.blob_id,
            &photo.plaintext_hash,
            out,
        )
    }

    /// The blob's sealed length.
    pub fn sealed_len(&self) -> u64 {
        self.outboard.tree.size()
    }

    /// Writes the blob's bao encoding (16 KiB chunk groups) from chunk group `from_group` to
    /// the end, checking every chunk group against the blob ID as it is read: a blob that
    /// rotted on disk, or an original that changed, is never sent as good.
    pub fn encode(&self, from_group: u64, writer: impl io::Write) -> io::Result<()> {
        self.encode_groups(from_group..u64::MAX, writer)
    }

    /// Writes the bao encoding of chunk groups `groups` (clipped to the blob), checking
    /// every chunk group against the blob ID as it is read, like [`BlobSource::encode`].
    pub fn encode_groups(
        &self,
        groups: std::ops::Range<u64>,
        writer: impl io::Write,
    ) -> io::Result<()> {
        let ranges = group_chunks(groups.start, groups.end);
        let result = match &self.source {
            Source::Stored(file) => {
                bao_tree::io::sync::encode_ranges_validated(file, &self.outboard, &ranges, writer)
            }
            Source::Original(original) => bao_tree::io::sync::encode_ranges_validated(
                &**original,
                &self.outboard,
                &ranges,
                writer,
            ),
        };
        result.map_err(|e| match e {
            EncodeError::ParentHashMismatch(_)
            | EncodeError::LeafHashMismatch(_)
            | EncodeError::SizeMismatch => io::Error::new(io::ErrorKind::InvalidData, Damaged),
            EncodeError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })
    }
}

/// This device's copy of a blob failed its check while being read to serve: it is damaged
/// (a stored blob) or no longer the recorded content (an original).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this device's copy of the blob is damaged: it does not match the blob's ID")]
pub struct Damaged;

/// Whether an error from [`BlobSource::encode_groups`] says the copy is damaged.
pub fn is_damaged(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Damaged>())
}

/// Reads a [`BlobSource`]'s sealed bytes in order.
struct SealedReader<'a> {
    source: &'a BlobSource,
    pos: u64,
}

impl io::Read for SealedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &self.source.source {
            Source::Stored(file) => std::os::unix::fs::FileExt::read_at(file, buf, self.pos)?,
            Source::Original(original) => original.read_at(self.pos, buf)?,
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// The chunks of chunk groups `first..end`.
pub(crate) fn group_chunks(first: u64, end: u64) -> ChunkRanges {
    let log = OUTBOARD_BLOCK_SIZE.chunk_log();
    let max = u64::MAX >> log;
    ChunkRanges::from(ChunkNum(first.min(max) << log)..ChunkNum(end.min(max) << log))
}
