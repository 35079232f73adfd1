//! Records: small, immutable, sealed descriptions of what the library holds.
//!
//! A [`Record`] says which photo (folder label, relative path, size, times, media type,
//! plaintext hash), which blob holds it, and which device added it when. It is encoded with
//! postcard and sealed under the record key of the current epoch; the [`RecordId`] is the
//! BLAKE3 hash of the sealed bytes. The mesh state is the *set* of sealed records, so a
//! `vault` device can store, count and relay them without reading any.
//!
//! Sealing is deterministic (a synthetic nonce, see `SEALING.md`), so sealing the same record
//! twice gives the same ID. Opening checks the envelope, the AEAD tag, and that the nonce is
//! the one the plaintext implies; any byte string that is not a valid record gives an error,
//! never a panic.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

use crate::identity::DeviceId;
use crate::keys::{Epoch, KeyRing, LibraryKey};
use crate::seal::{BlobId, hex_lower};

/// The four bytes every sealed record starts with.
pub const MAGIC: [u8; 4] = *b"pmsr";
/// The record format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the sealed record's header: magic, version, epoch, timestamp, nonce.
pub const HEADER_LEN: usize = 4 + 1 + 4 + 8 + NONCE_LEN;
/// Where the nonce starts in the header.
const NONCE_AT: usize = HEADER_LEN - NONCE_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The largest sealed record accepted; anything longer is refused before decryption.
pub const MAX_SEALED_LEN: usize = 16 * 1024;
/// The longest relative path or folder label a record may carry, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// The BLAKE3 hash of a sealed record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub [u8; 32]);

impl RecordId {
    /// The lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({}…)", &self.to_hex()[..12])
    }
}

/// The kind of media a photo file holds, told by its extension and its magic bytes.
///
/// New kinds are only ever appended, so older records keep their encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MediaType {
    /// JPEG image.
    Jpeg,
    /// HEIC or HEIF image.
    Heif,
    /// PNG image.
    Png,
    /// GIF image.
    Gif,
    /// WebP image.
    Webp,
    /// Adobe DNG raw image.
    Dng,
    /// Canon CR2 raw image.
    Cr2,
    /// Canon CR3 raw image.
    Cr3,
    /// Nikon NEF raw image.
    Nef,
    /// Sony ARW raw image.
    Arw,
    /// MPEG-4 video.
    Mp4,
    /// QuickTime video.
    Mov,
    /// Multi-picture JPEG (MPO: 3D or multi-frame photos).
    Mpo,
    /// AVIF image.
    Avif,
    /// JPEG XL image.
    Jxl,
    /// TIFF image.
    Tiff,
    /// BMP image.
    Bmp,
    /// Canon CRW raw image.
    Crw,
    /// Nikon NRW raw image.
    Nrw,
    /// Sony SR2 raw image.
    Sr2,
    /// Fujifilm RAF raw image.
    Raf,
    /// Panasonic RW2 raw image.
    Rw2,
    /// Olympus ORF raw image.
    Orf,
    /// Pentax PEF raw image.
    Pef,
    /// Samsung SRW raw image.
    Srw,
    /// Hasselblad 3FR raw image.
    ThreeFr,
    /// Phase One IIQ raw image.
    Iiq,
    /// Sigma X3F raw image.
    X3f,
    /// 3GPP video.
    ThreeGp,
    /// AVCHD / MPEG transport stream video (MTS, M2TS).
    Mts,
    /// AVI video.
    Avi,
    /// Matroska video.
    Mkv,
    /// WebM video.
    Webm,
    /// XMP sidecar (edits and metadata kept beside a photo).
    Xmp,
    /// Apple AAE sidecar (Photos edits).
    Aae,
    /// THM sidecar (a camera's thumbnail of a video).
    Thm,
    /// Any other file in a backed-up folder.
    Other,
}

/// What a kind of file is, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaClass {
    /// A photo (raw formats included).
    Photo,
    /// A video.
    Video,
    /// A sidecar kept beside a photo or video.
    Sidecar,
    /// Any other file.
    Other,
}

impl MediaType {
    /// A short lowercase name for output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Heif => "heif",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Dng => "dng",
            Self::Cr2 => "cr2",
            Self::Cr3 => "cr3",
            Self::Nef => "nef",
            Self::Arw => "arw",
            Self::Mp4 => "mp4",
            Self::Mov => "mov",
            Self::Mpo => "mpo",
            Self::Avif => "avif",
            Self::Jxl => "jxl",
            Self::Tiff => "tiff",
            Self::Bmp => "bmp",
            Self::Crw => "crw",
            Self::Nrw => "nrw",
            Self::Sr2 => "sr2",
            Self::Raf => "raf",
            Self::Rw2 => "rw2",
            Self::Orf => "orf",
            Self::Pef => "pef",
            Self::Srw => "srw",
            Self::ThreeFr => "3fr",
            Self::Iiq => "iiq",
            Self::X3f => "x3f",
            Self::ThreeGp => "3gp",
            Self::Mts => "mts",
            Self::Avi => "avi",
            Self::Mkv => "mkv",
            Self::Webm => "webm",
            Self::Xmp => "xmp",
            Self::Aae => "aae",
            Self::Thm => "thm",
            Self::Other => "other",
        }
    }

    /// Every kind, in encoding order.
    pub const ALL: [Self; 37] = [
        Self::Jpeg,
        Self::Heif,
        Self::Png,
        Self::Gif,
        Self::Webp,
        Self::Dng,
        Self::Cr2,
        Self::Cr3,
        Self::Nef,
        Self::Arw,
        Self::Mp4,
        Self::Mov,
        Self::Mpo,
        Self::Avif,
        Self::Jxl,
        Self::Tiff,
        Self::Bmp,
        Self::Crw,
        Self::Nrw,
        Self::Sr2,
        Self::Raf,
        Self::Rw2,
        Self::Orf,
        Self::Pef,
        Self::Srw,
        Self::ThreeFr,
        Self::Iiq,
        Self::X3f,
        Self::ThreeGp,
        Self::Mts,
        Self::Avi,
        Self::Mkv,
        Self::Webm,
        Self::Xmp,
        Self::Aae,
        Self::Thm,
        Self::Other,
    ];

    /// The kind [`MediaType::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this is a video.
    pub fn is_video(self) -> bool {
        self.class() == MediaClass::Video
    }

    /// Photo, video, sidecar or other.
    pub fn class(self) -> MediaClass {
        match self {
            Self::Mp4
            | Self::Mov
            | Self::ThreeGp
            | Self::Mts
            | Self::Avi
            | Self::Mkv
            | Self::Webm => MediaClass::Video,
            Self::Xmp | Self::Aae | Self::Thm => MediaClass::Sidecar,
            Self::Other => MediaClass::Other,
            _ => MediaClass::Photo,
        }
    }
}

/// When a photo was taken, as its metadata says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureTime {
    /// The wall-clock time of capture, as seconds since 1970-01-01 00:00:00 *in the time
    /// zone the camera was set to* (EXIF `DateTimeOriginal` carries no zone).
    pub local_seconds: i64,
    /// The camera's offset from UTC in minutes, when the file says it (EXIF
    /// `OffsetTimeOriginal`; QuickTime times are UTC, offset 0).
    pub utc_offset_minutes: Option<i16>,
}

/// A photo's modification time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileTime {
    /// Whole seconds since 1970-01-01 UTC (negative before).
    pub seconds: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

/// A photo in the library: one version of one file in one source folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoRecord {
    /// The label of the source folder the file is in.
    pub folder: String,
    /// The file's path relative to its folder, with `/` separators.
    pub path: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// The file's modification time when it was recorded.
    pub mtime: FileTime,
    /// When the photo was taken, if its metadata says.
    pub capture_time: Option<CaptureTime>,
    /// What kind of media it is.
    pub media_type: MediaType,
    /// BLAKE3 of the plaintext.
    pub plaintext_hash: [u8; 32],
    /// The blob that holds the sealed content.
    pub blob_id: BlobId,
    /// The key epoch the blob was sealed under: a source device re-seals its original with
    /// this epoch to serve the blob.
    pub blob_epoch: Epoch,
    /// The device that added the record.
    pub added_by: DeviceId,
    /// When the record was made, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// What a record says. New kinds (deletions, membership) are appended as later issues need
/// them, so older records keep their encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A photo or video was added or changed.
    Photo(PhotoRecord),
    /// A photo moved: the same content left one place and appeared at another (a renamed
    /// folder, a reorganised year). The old place is no longer a photo of the library; the
    /// new place has its own [`Record::Photo`].
    Move(MoveRecord),
}

/// A photo that moved from one place to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRecord {
    /// The folder label it left.
    pub folder: String,
    /// The path it left.
    pub path: String,
    /// The record of the photo at the place it left.
    pub from: RecordId,
    /// The record of the photo at its new place.
    pub to: RecordId,
    /// The device that saw the move.
    pub added_by: DeviceId,
    /// When the record was made, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// Why bytes are not a record this device can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Too short to hold a header and a tag, or too long to be a record.
    #[error("not a photomesh record: {len} bytes is not a possible record length")]
    Length {
        /// The length given.
        len: usize,
    },
    /// Does not start with the record magic.
    #[error("not a photomesh record: wrong magic bytes")]
    Magic,
    /// A format version this code does not know.
    #[error(
        "record format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version(u8),
    /// Sealed under an epoch this device holds no key for.
    #[error("the record was sealed with key epoch {0}, which this device does not hold")]
    UnknownEpoch(Epoch),
    /// The AEAD tag or the synthetic nonce did not check: corrupt or forged.
    #[error("the record failed authentication: corrupt or forged")]
    Authentication,
    /// It opened, but the content is not a record this version understands.
    #[error("the record's content does not decode: {0}")]
    Decode(String),
    /// A path or label longer than [`MAX_PATH_LEN`].
    #[error("the record's path or folder label is longer than {MAX_PATH_LEN} bytes")]
    PathTooLong,
    /// A record of another kind where a photo record was expected.
    #[error("the record is not a photo record")]
    NotAPhoto,
    /// Encoding failed (only for a record too large to seal).
    #[error("the record is too large to seal ({len} bytes; at most {MAX_SEALED_LEN})")]
    TooLarge {
        /// Sealed length it would have had.
        len: usize,
    },
}

impl Record {
    /// Encodes the record's plaintext (postcard).
    pub fn encode_plain(&self) -> Result<Vec<u8>, RecordError> {
        self.check_limits()?;
        postcard::to_stdvec(self).map_err(|e| RecordError::Decode(e.to_string()))
    }

    /// Decodes a record's plaintext. Any bytes give a record or an error, never a panic.
    pub fn decode_plain(bytes: &[u8]) -> Result<Self, RecordError> {
        let (record, rest): (Self, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| RecordError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RecordError::Decode(format!(
                "{} trailing bytes after the record",
                rest.len()
            )));
        }
        record.check_limits()?;
        Ok(record)
    }

    fn check_limits(&self) -> Result<(), RecordError> {
        match self {
            Self::Photo(p) if p.path.len() > MAX_PATH_LEN || p.folder.len() > MAX_PATH_LEN => {
                Err(RecordError::PathTooLong)
            }
            Self::Move(m) if m.path.len() > MAX_PATH_LEN || m.folder.len() > MAX_PATH_LEN => {
                Err(RecordError::PathTooLong)
            }
            Self::Photo(_) | Self::Move(_) => Ok(()),
        }
    }

    /// When the record was made, in ms since the Unix epoch. It also travels in the clear in
    /// the sealed header, so that devices without the key (vaults) can order the record set
    /// for reconciliation.
    pub fn timestamp_ms(&self) -> u64 {
        match self {
            Self::Photo(p) => p.created_at_ms,
            Self::Move(m) => m.created_at_ms,
        }
    }

    /// Seals the record under `key`, giving its sealed bytes and its ID.
    pub fn seal(&self, key: &LibraryKey) -> Result<(RecordId, Vec<u8>), RecordError> {
        let plain = self.encode_plain()?;
        let sealed_len = HEADER_LEN + plain.len() + TAG_LEN;
        if sealed_len > MAX_SEALED_LEN {
            return Err(RecordError::TooLarge { len: sealed_len });
        }
        let nonce = synthetic_nonce(key, &plain);
        let mut out = Vec::with_capacity(sealed_len);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&key.epoch().to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms().to_le_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plain;
        let tag = aead_key(key)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&out[..HEADER_LEN]),
                &mut body,
            )
            .map_err(|_| RecordError::TooLarge { len: sealed_len })?;
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        Ok((record_id(&out), out))
    }

    /// Opens sealed bytes that should be a photo record.
    pub fn open_photo(sealed: &[u8], keys: &KeyRing) -> Result<PhotoRecord, RecordError> {
        match Self::open(sealed, keys)? {
            Self::Photo(photo) => Ok(photo),
            Self::Move(_) => Err(RecordError::NotAPhoto),
        }
    }

    /// Opens sealed record bytes with whichever epoch of `keys` sealed them.
    pub fn open(sealed: &[u8], keys: &KeyRing) -> Result<Self, RecordError> {
        let header = sealed_header(sealed)?;
        let key = keys
            .get(header.epoch)
            .ok_or(RecordError::UnknownEpoch(header.epoch))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[NONCE_AT..HEADER_LEN]);
        let mut body = sealed[HEADER_LEN..].to_vec();
        let plain = aead_key(key)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&sealed[..HEADER_LEN]),
                &mut body,
            )
            .map_err(|_| RecordError::Authentication)?;
        if synthetic_nonce(key, plain) != nonce {
            return Err(RecordError::Authentication);
        }
        let record = Self::decode_plain(plain)?;
        // The sealer wrote the record's own time in the header; anything else is forged.
        if record.timestamp_ms() != header.timestamp_ms {
            return Err(RecordError::Authentication);
        }
        Ok(record)
    }
}

/// The ID of sealed record bytes.
pub fn record_id(sealed: &[u8]) -> RecordId {
    RecordId(*blake3::hash(sealed).as_bytes())
}

/// What the envelope of a sealed record says in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// The key epoch that sealed it.
    pub epoch: Epoch,
    /// When the record was made (ms since the Unix epoch): its place in the record set's order.
    pub timestamp_ms: u64,
}

/// Checks the envelope of sealed record bytes without any key (what a vault can check) and
/// returns what it says in the clear.
pub fn sealed_header(sealed: &[u8]) -> Result<SealedHeader, RecordError> {
    if sealed.len() < HEADER_LEN + TAG_LEN || sealed.len() > MAX_SEALED_LEN {
        return Err(RecordError::Length { len: sealed.len() });
    }
    if sealed[..4] != MAGIC {
        return Err(RecordError::Magic);
    }
    if sealed[4] != FORMAT_VERSION {
        return Err(RecordError::Version(sealed[4]));
    }
    let mut epoch = [0u8; 4];
    epoch.copy_from_slice(&sealed[5..9]);
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&sealed[9..NONCE_AT]);
    Ok(SealedHeader {
        epoch: Epoch::from_le_bytes(epoch),
        timestamp_ms: u64::from_le_bytes(timestamp),
    })
}

fn synthetic_nonce(key: &LibraryKey, plain: &[u8]) -> [u8; NONCE_LEN] {
    let hash = blake3::keyed_hash(&key.record_nonce_key(), plain);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&hash.as_bytes()[..NONCE_LEN]);
    nonce
}

fn aead_key(key: &LibraryKey) -> LessSafeKey {
    // A 32-byte key is always valid for ChaCha20-Poly1305.
    #[allow(clippy::expect_used)]
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key.record_key()).expect("32-byte key");
    LessSafeKey::new(unbound)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> Record {
        Record::Photo(PhotoRecord {
            folder: "camera".into(),
            path: "2026/11/IMG_0001.JPG".into(),
            size: 3_145_728,
            mtime: FileTime {
                seconds: 1_763_000_000,
                nanos: 123_456_789,
            },
            capture_time: Some(CaptureTime {
                local_seconds: 1_762_990_000,
                utc_offset_minutes: Some(60),
            }),
            media_type: MediaType::Jpeg,
            plaintext_hash: [0xab; 32],
            blob_id: BlobId([0xcd; 32]),
            blob_epoch: 1,
            added_by: DeviceId::from_bytes([0x11; 20]),
            created_at_ms: 1_763_000_001_000,
        })
    }

    fn ring() -> (LibraryKey, KeyRing) {
        let key = LibraryKey::new(1, [5; 32]);
        (key.clone(), KeyRing::new(key))
    }

    #[test]
    fn seal_open_round_trip_is_deterministic() {
        let (key, ring) = ring();
        let (id, sealed) = sample().seal(&key).unwrap();
        let (id2, sealed2) = sample().seal(&key).unwrap();
        assert_eq!((id, &sealed), (id2, &sealed2));
        assert_eq!(id, record_id(&sealed));
        assert_eq!(Record::open(&sealed, &ring).unwrap(), sample());
    }

    #[test]
    fn the_header_carries_the_time_in_the_clear() {
        let (key, _) = ring();
        let (_, sealed) = sample().seal(&key).unwrap();
        assert_eq!(
            sealed_header(&sealed).unwrap(),
            SealedHeader {
                epoch: 1,
                timestamp_ms: sample().timestamp_ms()
            }
        );
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let (key, ring) = ring();
        let (_, sealed) = sample().seal(&key).unwrap();
        for pos in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[pos] ^= 1;
            assert!(Record::open(&bad, &ring).is_err(), "flip at {pos} accepted");
        }
    }

    #[test]
    fn unknown_epoch_and_other_key_are_refused() {
        let (key, _) = ring();
        let (_, sealed) = sample().seal(&key).unwrap();
        let other = KeyRing::new(LibraryKey::new(2, [5; 32]));
        assert_eq!(
            Record::open(&sealed, &other),
            Err(RecordError::UnknownEpoch(1))
        );
        let wrong = KeyRing::new(LibraryKey::new(1, [6; 32]));
        assert_eq!(
            Record::open(&sealed, &wrong),
            Err(RecordError::Authentication)
        );
    }

    #[test]
    fn over_long_paths_are_refused() {
        let Record::Photo(mut photo) = sample() else {
            unreachable!()
        };
        photo.path = "a".repeat(MAX_PATH_LEN + 1);
        assert_eq!(
            Record::Photo(photo).encode_plain(),
            Err(RecordError::PathTooLong)
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_plaintext_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(record) = Record::decode_plain(&bytes) {
                let again = Record::decode_plain(&record.encode_plain().unwrap()).unwrap();
                prop_assert_eq!(again, record);
            }
        }

        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (_, ring) = ring();
            prop_assert!(Record::open(&bytes, &ring).is_err());
        }

        #[test]
        fn mutated_plaintext_decodes_or_errors(pos in 0usize..200, byte in any::<u8>()) {
            let mut plain = sample().encode_plain().unwrap();
            let pos = pos % plain.len();
            plain[pos] = byte;
            if let Ok(record) = Record::decode_plain(&plain) {
                let again = Record::decode_plain(&record.encode_plain().unwrap()).unwrap();
                prop_assert_eq!(again, record);
            }
        }

        #[test]
        fn arbitrary_ciphertext_under_the_real_key_is_refused(body in proptest::collection::vec(any::<u8>(), 16..512)) {
            let (key, ring) = ring();
            let mut sealed = MAGIC.to_vec();
            sealed.push(FORMAT_VERSION);
            sealed.extend_from_slice(&key.epoch().to_le_bytes());
            sealed.extend_from_slice(&7u64.to_le_bytes());
            sealed.extend_from_slice(&[0; NONCE_LEN]);
            sealed.extend_from_slice(&body);
            prop_assert_eq!(Record::open(&sealed, &ring), Err(RecordError::Authentication));
        }
    }

    #[test]
    fn media_kinds_keep_their_encoding_and_names() {
        // The discriminant is the encoding: kinds are only appended, so a record made before
        // a kind was added reads the same after.
        for (i, kind) in MediaType::ALL.into_iter().enumerate() {
            assert_eq!(
                postcard::to_allocvec(&kind).unwrap(),
                vec![i as u8],
                "{kind:?}"
            );
            assert_eq!(MediaType::from_name(kind.name()), Some(kind));
        }
        assert_eq!(MediaType::Mov.class(), MediaClass::Video);
        assert_eq!(MediaType::Raf.class(), MediaClass::Photo);
        assert_eq!(MediaType::Xmp.class(), MediaClass::Sidecar);
    }

    #[test]
    fn a_move_record_seals_and_opens() {
        let key = LibraryKey::new(1, [7; 32]);
        let ring = KeyRing::new(key.clone());
        let moved = Record::Move(MoveRecord {
            folder: "phone".into(),
            path: "2024/a.jpg".into(),
            from: RecordId([1; 32]),
            to: RecordId([2; 32]),
            added_by: DeviceId::from_bytes([0x11; 20]),
            created_at_ms: 1_763_000_002_000,
        });
        let (id, sealed) = moved.seal(&key).unwrap();
        assert_eq!(Record::open(&sealed, &ring).unwrap(), moved);
        assert_eq!(id, RecordId(*blake3::hash(&sealed).as_bytes()));
        assert_eq!(moved.timestamp_ms(), 1_763_000_002_000);
        // A photo record's encoding is unchanged by the new kind: its tag is still 0.
        assert_eq!(sample().encode_plain().unwrap()[0], 0);
        assert_eq!(moved.encode_plain().unwrap()[0], 1);
    }
}
