//! The sealing format: how a photo's content becomes a *blob* (specified in `SEALING.md`).
//!
//! A blob is a 20-byte header followed by the plaintext cut into 64 KiB segments, each sealed
//! on its own with ChaCha20-Poly1305 under the photo's [`FileKey`]. Because a segment's nonce
//! is its index (plus a last-segment flag) and every segment authenticates the header, any
//! range of segments can be sealed or opened without the rest, and truncation, reordering and
//! any flipped byte are caught and reported with the segment number.
//!
//! Sealing is deterministic: the same plaintext under the same epoch always gives the same
//! blob, so the [`BlobId`] (BLAKE3 of the sealed bytes) names the content on every device,
//! and a vault can verify what it stores without any key.
//!
//! This module seals and opens buffers; reading files and streaming them through it is the
//! node's job.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use serde::{Deserialize, Serialize};

use crate::keys::{Epoch, FileKey};

/// The four bytes every blob starts with.
pub const MAGIC: [u8; 4] = *b"pmsb";
/// The sealing format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 20;
/// Plaintext bytes per segment (all but the last segment are this long).
pub const SEGMENT_LEN: usize = 64 * 1024;
/// Bytes the AEAD tag adds to each segment.
pub const TAG_LEN: usize = 16;
/// Length of a full sealed segment.
pub const SEALED_SEGMENT_LEN: usize = SEGMENT_LEN + TAG_LEN;

/// The BLAKE3 hash of a blob's sealed bytes: its name everywhere in the mesh.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// Hashes sealed bytes held in memory.
    pub fn of_sealed(sealed: &[u8]) -> Self {
        Self(*blake3::hash(sealed).as_bytes())
    }

    /// The lowercase hex form used in file names and output.
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({}…)", &self.to_hex()[..12])
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Why sealed bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The header is shorter than [`HEADER_LEN`] or does not start with [`MAGIC`].
    #[error("not a photomesh blob: the header is missing or damaged")]
    NotABlob,
    /// The blob was written by a format version this code does not know.
    #[error("blob format version {0} is not supported (this build reads version {FORMAT_VERSION})")]
    Version(u8),
    /// The header's reserved bytes are not zero.
    #[error("the blob header is damaged (reserved bytes are set)")]
    Reserved,
    /// The header names a different key epoch than the key given to open it.
    #[error("the blob was sealed with key epoch {found}, not epoch {expected}")]
    Epoch {
        /// The epoch of the key given.
        expected: Epoch,
        /// The epoch written in the header.
        found: Epoch,
    },
    /// The sealed bytes are shorter or longer than the header's length says.
    #[error(
        "the blob is {found} bytes long but its header says {expected}: \
         it is truncated or extended from segment {segment} on"
    )]
    Length {
        /// Sealed length the header implies.
        expected: u64,
        /// Sealed length found.
        found: u64,
        /// The first segment that is missing or damaged by the difference.
        segment: u64,
    },
    /// A segment failed authentication: a flipped byte, a reordered or swapped segment, or a
    /// damaged header.
    #[error("segment {segment} of the blob failed authentication (corrupt, reordered or forged)")]
    Segment {
        /// The segment's index, from 0.
        segment: u64,
    },
    /// A segment index beyond the end, or a buffer of the wrong length for that segment.
    #[error("segment {segment} does not exist or has the wrong length for this blob")]
    SegmentBounds {
        /// The segment's index, from 0.
        segment: u64,
    },
}

/// The parsed header of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The key epoch the blob was sealed under.
    pub epoch: Epoch,
    /// Length of the plaintext in bytes.
    pub plaintext_len: u64,
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = FORMAT_VERSION;
        // h[5..8] reserved, zero.
        h[8..12].copy_from_slice(&self.epoch.to_le_bytes());
        h[12..20].copy_from_slice(&self.plaintext_len.to_le_bytes());
        h
    }

    /// Parses a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, SealError> {
        let h = bytes.get(..HEADER_LEN).ok_or(SealError::NotABlob)?;
        if h[..4] != MAGIC {
            return Err(SealError::NotABlob);
        }
        if h[4] != FORMAT_VERSION {
            return Err(SealError::Version(h[4]));
        }
        if h[5..8] != [0, 0, 0] {
            return Err(SealError::Reserved);
        }
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&h[8..12]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&h[12..20]);
        Ok(Self {
            epoch: Epoch::from_le_bytes(epoch),
            plaintext_len: u64::from_le_bytes(len),
        })
    }

    /// Number of segments: at least one, so an empty photo still carries a tag.
    pub fn segment_count(&self) -> u64 {
        self.plaintext_len.div_ceil(SEGMENT_LEN as u64).max(1)
    }

    /// Total length of the sealed blob.
    pub fn sealed_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + self.segment_count() * TAG_LEN as u64
    }

    /// Plaintext length of segment `index`, or `None` past the end.
    pub fn segment_plaintext_len(&self, index: u64) -> Option<usize> {
        let count = self.segment_count();
        if index >= count {
            return None;
        }
        let start = index * SEGMENT_LEN as u64;
        // Bounded by SEGMENT_LEN, so the cast cannot truncate.
        Some((self.plaintext_len - start).min(SEGMENT_LEN as u64) as usize)
    }

    /// Offset of sealed segment `index` within the blob.
    pub fn segment_offset(index: u64) -> u64 {
        HEADER_LEN as u64 + index * SEALED_SEGMENT_LEN as u64
    }
}

/// Seals and opens the segments of one blob.
pub struct SegmentCipher {
    key: LessSafeKey,
    header: Header,
    header_bytes: [u8; HEADER_LEN],
}

impl SegmentCipher {
    /// A cipher that seals a plaintext of `plaintext_len` bytes under `file_key`.
    pub fn for_sealing(file_key: &FileKey, plaintext_len: u64) -> Self {
        Self::new(
            file_key,
            Header {
                epoch: file_key.epoch(),
                plaintext_len,
            },
        )
    }

    /// A cipher that opens the blob whose header starts `sealed`.
    pub fn for_opening(file_key: &FileKey, sealed: &[u8]) -> Result<Self, SealError> {
        let header = Header::decode(sealed)?;
        if header.epoch != file_key.epoch() {
            return Err(SealError::Epoch {
                expected: file_key.epoch(),
                found: header.epoch,
            });
        }
        Ok(Self::new(file_key, header))
    }

    fn new(file_key: &FileKey, header: Header) -> Self {
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        #[allow(clippy::expect_used)]
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, file_key.as_bytes()).expect("32-byte key");
        Self {
            key: LessSafeKey::new(unbound),
            header,
            header_bytes: header.encode(),
        }
    }

    /// The blob's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The encoded header: the first [`HEADER_LEN`] bytes of the blob.
    pub fn header_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.header_bytes
    }

    fn nonce(&self, index: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&index.to_be_bytes());
        n[11] = u8::from(index + 1 == self.header.segment_count());
        Nonce::assume_unique_for_key(n)
    }

    /// Seals segment `index` in place: `buf` holds exactly that segment's plaintext and gets
    /// the tag appended.
    pub fn seal_segment(&self, index: u64, buf: &mut Vec<u8>) -> Result<(), SealError> {
        if self.header.segment_plaintext_len(index) != Some(buf.len()) {
            return Err(SealError::SegmentBounds { segment: index });
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index), Aad::from(&self.header_bytes), buf)
            .map_err(|_| SealError::SegmentBounds { segment: index })?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens segment `index` in place: `buf` holds that sealed segment and is left holding
    /// its plaintext.
    pub fn open_segment(&self, index: u64, buf: &mut Vec<u8>) -> Result<(), SealError> {
        let plain_len = self
            .header
            .segment_plaintext_len(index)
            .ok_or(SealError::SegmentBounds { segment: index })?;
        if buf.len() != plain_len + TAG_LEN {
            return Err(SealError::SegmentBounds { segment: index });
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[plain_len..]);
        buf.truncate(plain_len);
        self.key
            .open_in_place_separate_tag(
                self.nonce(index),
                Aad::from(&self.header_bytes),
                Tag::from(tag),
                buf,
                0..,
            )
            .map_err(|_| SealError::Segment { segment: index })?;
        Ok(())
    }
}

/// Seals a whole plaintext held in memory.
pub fn seal(file_key: &FileKey, plaintext: &[u8]) -> Vec<u8> {
    let cipher = SegmentCipher::for_sealing(file_key, plaintext.len() as u64);
    let mut out = Vec::with_capacity(cipher.header().sealed_len() as usize);
    out.extend_from_slice(cipher.header_bytes());
    let mut buf = Vec::with_capacity(SEALED_SEGMENT_LEN);
    for index in 0..cipher.header().segment_count() {
        let start = (index as usize) * SEGMENT_LEN;
        let end = (start + SEGMENT_LEN).min(plaintext.len());
        buf.clear();
        buf.extend_from_slice(&plaintext[start..end]);
        // The lengths come from the header computed above, so this cannot fail.
        if cipher.seal_segment(index, &mut buf).is_err() {
            unreachable!("segment lengths follow the header");
        }
        out.extend_from_slice(&buf);
    }
    out
}

/// Opens a whole blob held in memory, checking every segment and the total length.
pub fn open(file_key: &FileKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = SegmentCipher::for_opening(file_key, sealed)?;
    let header = *cipher.header();
    let expected = header.sealed_len();
    if sealed.len() as u64 != expected {
        let available = (sealed.len() as u64).min(expected);
        let segment = available.saturating_sub(HEADER_LEN as u64) / SEALED_SEGMENT_LEN as u64;
        return Err(SealError::Length {
            expected,
            found: sealed.len() as u64,
            segment,
        });
    }
    let mut out = Vec::with_capacity(header.plaintext_len as usize);
    let mut buf = Vec::with_capacity(SEALED_SEGMENT_LEN);
    for index in 0..header.segment_count() {
        let start = Header::segment_offset(index) as usize;
        let end = (start + SEALED_SEGMENT_LEN).min(sealed.len());
        buf.clear();
        buf.extend_from_slice(&sealed[start..end]);
        cipher.open_segment(index, &mut buf)?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LibraryKey;

    fn file_key(plaintext: &[u8]) -> FileKey {
        LibraryKey::new(1, [3; 32])
            .content_key()
            .file_key(blake3::hash(plaintext).as_bytes())
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_segment_boundaries() {
        for len in [
            0,
            1,
            SEGMENT_LEN - 1,
            SEGMENT_LEN,
            SEGMENT_LEN + 1,
            3 * SEGMENT_LEN + 7,
        ] {
            let plain = sample(len);
            let key = file_key(&plain);
            let sealed = seal(&key, &plain);
            let header = Header::decode(&sealed).unwrap();
            assert_eq!(sealed.len() as u64, header.sealed_len(), "len {len}");
            assert_eq!(open(&key, &sealed).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn sealing_is_deterministic() {
        let plain = sample(100_000);
        let key = file_key(&plain);
        assert_eq!(seal(&key, &plain), seal(&key, &plain));
    }

    #[test]
    fn every_flipped_byte_is_reported_with_its_segment() {
        let plain = sample(2 * SEGMENT_LEN + 100);
        let key = file_key(&plain);
        let sealed = seal(&key, &plain);
        // Every header byte and a spread of bytes across the segments.
        let positions = (0..HEADER_LEN).chain((HEADER_LEN..sealed.len()).step_by(997));
        for pos in positions {
            let mut bad = sealed.clone();
            bad[pos] ^= 0x20;
            let err = open(&key, &bad).expect_err("flipped byte accepted");
            if pos >= HEADER_LEN {
                let segment = ((pos - HEADER_LEN) / SEALED_SEGMENT_LEN) as u64;
                assert_eq!(err, SealError::Segment { segment }, "pos {pos}");
            }
        }
    }

    #[test]
    fn truncation_is_reported_with_the_first_missing_segment() {
        let plain = sample(3 * SEGMENT_LEN);
        let key = file_key(&plain);
        let sealed = seal(&key, &plain);
        let cut = Header::segment_offset(2) as usize;
        match open(&key, &sealed[..cut]) {
            Err(SealError::Length { segment, .. }) => assert_eq!(segment, 2),
            other => panic!("{other:?}"),
        }
        match open(&key, &sealed[..cut + 10]) {
            Err(SealError::Length { segment, .. }) => assert_eq!(segment, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(open(&key, &sealed[..5]), Err(SealError::NotABlob));
    }

    #[test]
    fn reordered_segments_are_refused() {
        let plain = sample(3 * SEGMENT_LEN);
        let key = file_key(&plain);
        let mut sealed = seal(&key, &plain);
        let a = Header::segment_offset(0) as usize;
        let b = Header::segment_offset(1) as usize;
        let (first, rest) = sealed[a..].split_at_mut(SEALED_SEGMENT_LEN);
        first.swap_with_slice(&mut rest[..SEALED_SEGMENT_LEN]);
        assert_eq!(b - a, SEALED_SEGMENT_LEN);
        assert_eq!(open(&key, &sealed), Err(SealError::Segment { segment: 0 }));
    }

    #[test]
    fn dropping_the_last_segment_and_shortening_the_header_is_refused() {
        // An attacker who cuts the last segment and rewrites the length in the header still
        // fails: the header is authenticated by every segment, and the last-segment flag
        // is in the nonce.
        let plain = sample(2 * SEGMENT_LEN);
        let key = file_key(&plain);
        let sealed = seal(&key, &plain);
        let mut cut = sealed[..Header::segment_offset(1) as usize].to_vec();
        cut[12..20].copy_from_slice(&(SEGMENT_LEN as u64).to_le_bytes());
        assert_eq!(open(&key, &cut), Err(SealError::Segment { segment: 0 }));
    }

    #[test]
    fn any_segment_opens_on_its_own() {
        let plain = sample(3 * SEGMENT_LEN + 5);
        let key = file_key(&plain);
        let sealed = seal(&key, &plain);
        let cipher = SegmentCipher::for_opening(&key, &sealed).unwrap();
        let start = Header::segment_offset(3) as usize;
        let mut buf = sealed[start..].to_vec();
        cipher.open_segment(3, &mut buf).unwrap();
        assert_eq!(buf, &plain[3 * SEGMENT_LEN..]);
    }

    #[test]
    fn wrong_epoch_is_named() {
        let plain = sample(10);
        let sealed = seal(&file_key(&plain), &plain);
        let other = LibraryKey::new(2, [3; 32])
            .content_key()
            .file_key(blake3::hash(&plain).as_bytes());
        assert_eq!(
            open(&other, &sealed),
            Err(SealError::Epoch {
                expected: 2,
                found: 1
            })
        );
    }
}
