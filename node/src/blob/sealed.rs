//! Streams between plaintext files and sealed blobs, driving `photomesh_protocol::seal`.
//!
//! [`SealingReader`] turns a plaintext reader into the blob's bytes on the fly, segment by
//! segment: this is how a source device computes a blob ID and its verification data without
//! storing a second copy of the photo, and (later) how it serves ranges of a blob straight
//! from the original file. [`open_blob`] does the reverse, checking every segment, the
//! plaintext hash and the blob ID.

use std::io::{self, Read, Write};

use crate::lock::Mutex;
use std::fs::File;
use std::path::Path;

use bao_tree::io::sync::{ReadAt, Size};
use bao_tree::{BaoTree, BlockSize};
use photomesh_protocol::keys::{ContentKey, KeyRing};
use photomesh_protocol::seal::{
    BlobId, HEADER_LEN, Header, SEALED_SEGMENT_LEN, SealError, SegmentCipher,
};

/// Chunk groups of 16 KiB (2^4 BLAKE3 chunks) for the bao outboard: 64 bytes of verification
/// data per 16 KiB, 0.4% of the blob.
pub const OUTBOARD_BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// Reads a plaintext of known length and yields the sealed blob.
pub struct SealingReader<R> {
    inner: R,
    cipher: SegmentCipher,
    next_segment: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> SealingReader<R> {
    /// Seals `inner`, which must yield exactly `plaintext_len` bytes, with the file key for
    /// `plaintext_hash`. If the plaintext is not what the caller said, the blob it yields
    /// will not match the recorded blob ID, and a short or long read is an error.
    pub fn new(
        inner: R,
        content_key: &ContentKey,
        plaintext_hash: &[u8; 32],
        plaintext_len: u64,
    ) -> Self {
        let cipher =
            SegmentCipher::for_sealing(&content_key.file_key(plaintext_hash), plaintext_len);
        let buf = cipher.header_bytes().to_vec();
        Self {
            inner,
            cipher,
            next_segment: 0,
            buf,
            pos: 0,
        }
    }

    /// The length of the blob this reader yields.
    pub fn sealed_len(&self) -> u64 {
        self.cipher.header().sealed_len()
    }

    fn fill(&mut self) -> io::Result<bool> {
        let inner = &mut self.inner;
        let sealed = seal_segment(&self.cipher, self.next_segment, &mut self.buf, |plain| {
            inner.read_exact(plain).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    changed_while_reading()
                } else {
                    e
                }
            })
        })?;
        if !sealed {
            // Past the last segment: the plaintext must end here too.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(changed_while_reading());
            }
            return Ok(false);
        }
        self.next_segment += 1;
        self.pos = 0;
        Ok(true)
    }
}

/// Puts sealed segment `index` in `buf` (reusing its allocation), its plaintext read by
/// `read_plaintext` into a buffer of the segment's plaintext length. `Ok(false)`: there is no
/// such segment. The one place where originals are sealed on the fly, for [`SealingReader`]
/// (in order) and [`SealedOriginal`] (at any offset).
fn seal_segment(
    cipher: &SegmentCipher,
    index: u64,
    buf: &mut Vec<u8>,
    read_plaintext: impl FnOnce(&mut [u8]) -> io::Result<()>,
) -> io::Result<bool> {
    let Some(len) = cipher.header().segment_plaintext_len(index) else {
        return Ok(false);
    };
    buf.clear();
    buf.resize(len, 0);
    read_plaintext(buf)?;
    cipher.seal_segment(index, buf).map_err(io::Error::other)?;
    Ok(true)
}

fn changed_while_reading() -> io::Error {
    io::Error::other(
        "the file changed size while it was being read; it will be read again on the next scan",
    )
}

impl<R: Read> Read for SealingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() && !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What sealing a plaintext produced: the blob's ID, length, and bao outboard.
pub struct SealedSummary {
    /// BLAKE3 of the sealed bytes.
    pub blob_id: BlobId,
    /// Length of the sealed blob.
    pub sealed_len: u64,
    /// The post-order bao outboard of the blob (chunk groups of [`OUTBOARD_BLOCK_SIZE`]).
    pub outboard: Vec<u8>,
}

/// Seals `plaintext` on the fly and computes the blob ID and outboard, keeping no copy.
pub fn summarize(
    plaintext: impl Read,
    content_key: &ContentKey,
    plaintext_hash: &[u8; 32],
    plaintext_len: u64,
) -> io::Result<SealedSummary> {
    let reader = SealingReader::new(plaintext, content_key, plaintext_hash, plaintext_len);
    let sealed_len = reader.sealed_len();
    let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
    let mut outboard = Vec::with_capacity(usize::try_from(tree.outboard_size()).unwrap_or(0));
    let root = bao_tree::io::sync::outboard_post_order(reader, tree, &mut outboard)?;
    Ok(SealedSummary {
        blob_id: BlobId(*root.as_bytes()),
        sealed_len,
        outboard,
    })
}

/// Why a blob did not open to the expected photo.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Reading the sealed bytes failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Writing the plaintext out failed (the destination: a full disk, say).
    #[error("writing the photo out failed: {0}")]
    Write(io::Error),
    /// The sealed bytes are damaged (the error names the segment).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The blob was sealed under an epoch this device holds no key for.
    #[error("the blob was sealed with key epoch {0}, which this device does not hold")]
    UnknownEpoch(u32),
    /// Every segment opened but the result is not the recorded photo.
    #[error("the content does not match its record ({0} differs)")]
    Mismatch(&'static str),
}

/// Opens a blob streamed from `sealed`, writes the plaintext to `out`, and checks the blob ID
/// and the plaintext hash against the record. `out` may hold a partial result on error: the
/// caller writes to a temporary file and keeps it only on success.
pub fn open_blob(
    mut sealed: impl Read,
    keys: &KeyRing,
    expected_blob_id: &BlobId,
    expected_plaintext_hash: &[u8; 32],
    mut out: impl Write,
) -> Result<(), OpenError> {
    let mut header_bytes = [0u8; HEADER_LEN];
    sealed.read_exact(&mut header_bytes)?;
    let header = Header::decode(&header_bytes)?;
    let key = keys
        .get(header.epoch)
        .ok_or(OpenError::UnknownEpoch(header.epoch))?;
    let cipher = SegmentCipher::for_opening(
        &key.content_key().file_key(expected_plaintext_hash),
        &header_bytes,
    )?;
    let mut sealed_hash = blake3::Hasher::new();
    sealed_hash.update(&header_bytes);
    let mut plain_hash = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(SEALED_SEGMENT_LEN);
    for index in 0..header.segment_count() {
        let len = header
            .segment_plaintext_len(index)
            .ok_or(SealError::SegmentBounds { segment: index })?
            + photomesh_protocol::seal::TAG_LEN;
        buf.resize(len, 0);
        sealed.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                OpenError::Seal(SealError::Length {
                    expected: header.sealed_len(),
                    found: Header::segment_offset(index),
                    segment: index,
                })
            } else {
                OpenError::Io(e)
            }
        })?;
        sealed_hash.update(&buf);
        cipher.open_segment(index, &mut buf)?;
        plain_hash.update(&buf);
        out.write_all(&buf).map_err(OpenError::Write)?;
    }
    let mut probe = [0u8; 1];
    if sealed.read(&mut probe)? != 0 {
        return Err(OpenError::Seal(SealError::Length {
            expected: header.sealed_len(),
            found: header.sealed_len() + 1,
            segment: header.segment_count(),
        }));
    }
    if sealed_hash.finalize().as_bytes() != &expected_blob_id.0 {
        return Err(OpenError::Mismatch("blob ID"));
    }
    if plain_hash.finalize().as_bytes() != expected_plaintext_hash {
        return Err(OpenError::Mismatch("plaintext hash"));
    }
    Ok(())
}

/// A blob sealed on the fly from its original file, readable at any offset.
pub struct SealedOriginal {
    pub(crate) file: File,
    pub(crate) cipher: SegmentCipher,
    /// The last sealed segment, since bao reads each segment in several chunk groups.
    pub(crate) cache: Mutex<Option<(u64, Vec<u8>)>>,
}

impl SealedOriginal {
    /// Opens the original `rel` in folder `root` (a regular file only, see
    /// [`crate::original`]) of a photo whose plaintext hash and size are known.
    pub fn open(
        root: &Path,
        rel: &str,
        content_key: &ContentKey,
        plaintext_hash: &[u8; 32],
        size: u64,
    ) -> io::Result<Self> {
        let file = crate::original::open(root, rel)?;
        if file.metadata()?.len() != size {
            return Err(io::Error::other(
                "the original changed size since it was recorded",
            ));
        }
        Ok(Self {
            file,
            cipher: SegmentCipher::for_sealing(&content_key.file_key(plaintext_hash), size),
            cache: Mutex::new("the last sealed segment", None),
        })
    }

    /// Copies the bytes of sealed segment `index` from offset `within` into `out`, sealing
    /// the segment first unless it is the one sealed last. Returns how many bytes it copied.
    pub(crate) fn copy_from_segment(
        &self,
        index: u64,
        within: usize,
        out: &mut [u8],
    ) -> io::Result<usize> {
        let mut cache = self.cache.lock();
        if cache.as_ref().is_none_or(|(i, _)| *i != index) {
            // Reuse the previous segment's buffer: one allocation per blob, not per segment.
            let mut buf = cache.take().map(|(_, buf)| buf).unwrap_or_default();
            let start = index * photomesh_protocol::seal::SEGMENT_LEN as u64;
            let sealed = seal_segment(&self.cipher, index, &mut buf, |plain| {
                std::os::unix::fs::FileExt::read_exact_at(&self.file, plain, start)
            })?;
            if !sealed {
                return Err(io::Error::other("read past the end of the blob"));
            }
            *cache = Some((index, buf));
        }
        let segment = cache.as_ref().map(|(_, buf)| &buf[..]).unwrap_or_default();
        let bytes = segment.get(within..).unwrap_or_default();
        let n = bytes.len().min(out.len());
        out[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

impl ReadAt for SealedOriginal {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let header = *self.cipher.header();
        let total = header.sealed_len();
        if pos >= total || buf.is_empty() {
            return Ok(0);
        }
        let header_len = photomesh_protocol::seal::HEADER_LEN as u64;
        if pos < header_len {
            let bytes = &self.cipher.header_bytes()[pos as usize..];
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            return Ok(n);
        }
        let index = (pos - header_len) / SEALED_SEGMENT_LEN as u64;
        let within = ((pos - Header::segment_offset(index)) as usize).min(SEALED_SEGMENT_LEN);
        self.copy_from_segment(index, within, buf)
    }
}

impl Size for SealedOriginal {
    fn size(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.cipher.header().sealed_len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bao_tree::io::outboard::PostOrderMemOutboard;
    use photomesh_protocol::keys::LibraryKey;
    use photomesh_protocol::seal;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    #[test]
    fn streaming_matches_in_memory_sealing_and_opens_back() {
        let library = LibraryKey::new(1, [8; 32]);
        let ring = KeyRing::new(library.clone());
        for len in [0, 10, 64 * 1024, 200_000, 1_000_000] {
            let plain = data(len);
            let hash = *blake3::hash(&plain).as_bytes();
            let ck = library.content_key();
            let mut streamed = Vec::new();
            SealingReader::new(&plain[..], &ck, &hash, len as u64)
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(
                streamed,
                seal::seal(&ck.file_key(&hash), &plain),
                "len {len}"
            );
            let summary = summarize(&plain[..], &ck, &hash, len as u64).unwrap();
            assert_eq!(summary.blob_id, BlobId::of_sealed(&streamed));
            // The outboard is complete and is the one bao-tree computes for these bytes.
            let expected = PostOrderMemOutboard::create(&streamed, OUTBOARD_BLOCK_SIZE);
            assert_eq!(expected.root.as_bytes(), &summary.blob_id.0);
            assert_eq!(expected.data, summary.outboard);
            let mut back = Vec::new();
            open_blob(&streamed[..], &ring, &summary.blob_id, &hash, &mut back).unwrap();
            assert_eq!(back, plain);
        }
    }

    #[test]
    fn a_plaintext_of_the_wrong_length_is_an_error() {
        let library = LibraryKey::new(1, [8; 32]);
        let plain = data(100_000);
        let hash = *blake3::hash(&plain).as_bytes();
        let ck = library.content_key();
        let mut out = Vec::new();
        let short = SealingReader::new(&plain[..], &ck, &hash, 200_000).read_to_end(&mut out);
        assert!(short.is_err());
        let long = SealingReader::new(&plain[..], &ck, &hash, 50_000).read_to_end(&mut out);
        assert!(long.is_err());
    }

    #[test]
    fn opening_names_the_damaged_segment_and_checks_ids() {
        let library = LibraryKey::new(1, [8; 32]);
        let ring = KeyRing::new(library.clone());
        let plain = data(300_000);
        let hash = *blake3::hash(&plain).as_bytes();
        let sealed = seal::seal(&library.content_key().file_key(&hash), &plain);
        let id = BlobId::of_sealed(&sealed);
        let mut bad = sealed.clone();
        bad[Header::segment_offset(2) as usize + 5] ^= 1;
        match open_blob(&bad[..], &ring, &id, &hash, io::sink()) {
            Err(OpenError::Seal(SealError::Segment { segment: 2 })) => {}
            other => panic!("{other:?}"),
        }
        match open_blob(&sealed[..100_000], &ring, &id, &hash, io::sink()) {
            Err(OpenError::Seal(SealError::Length { segment: 1, .. })) => {}
            other => panic!("{other:?}"),
        }
        match open_blob(&sealed[..], &ring, &BlobId([1; 32]), &hash, io::sink()) {
            Err(OpenError::Mismatch("blob ID")) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sealed_original_reads_as_the_blob_at_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("photo.jpg");
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &plain).unwrap();
        let key = LibraryKey::new(1, [4; 32]).content_key();
        let hash = *blake3::hash(&plain).as_bytes();
        let blob = seal::seal(&key.file_key(&hash), &plain);
        let original =
            SealedOriginal::open(dir.path(), "photo.jpg", &key, &hash, plain.len() as u64).unwrap();
        assert_eq!(original.size().unwrap(), Some(blob.len() as u64));
        for (pos, len) in [
            (0, 5),
            (3, 40),
            (20, 100),
            (65_550, 20),
            (131_000, 5_000),
            (199_990, 1_000),
        ] {
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                let n = original.read_at(pos + got as u64, &mut buf[got..]).unwrap();
                if n == 0 {
                    break;
                }
                got += n;
            }
            let end = (pos as usize + len).min(blob.len());
            assert_eq!(&buf[..got], &blob[pos as usize..end], "at {pos}");
        }
    }
}
