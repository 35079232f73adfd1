//! A record as the index stores it: sealed bytes, or, for a photo record this device opened,
//! its fields only.
//!
//! Sealing is deterministic (`protocol/SEALING.md`: the nonce is a keyed hash of the
//! plaintext), so the fields, the sealing epoch and that epoch's key give back the sealed
//! bytes exactly. A `full` device therefore keeps an opened photo record once, in `photos`,
//! with an empty `records.sealed` (about 190 bytes less a record), and seals it again when a
//! peer asks for it. It does so only when sealing the fields again gave the very bytes that
//! came ([`Index::add_photo_record`]); anything else (a record another encoder wrote, an
//! epoch not held) keeps its bytes.

use photomesh_protocol::element::timestamp_of;
use photomesh_protocol::identity::{DEVICE_ID_LEN, DeviceId};
use photomesh_protocol::keys::{Epoch, KeyRing};
use photomesh_protocol::record::{
    CaptureTime, FileTime, MediaType, PhotoRecord, Record, RecordError, RecordId, record_id,
    sealed_header,
};
use photomesh_protocol::seal::BlobId;
use rusqlite::Row;

#[cfg(doc)]
use super::Index;
use super::blob_id_from;

/// The columns [`StoredRecord::read`] reads, after `r.sealed`: the fields of the photo `p`
/// (`NULL` when the record is not an opened photo). Queries join `photos p`. A macro, for
/// `concat!` in constant queries.
macro_rules! photo_columns {
    () => {
        "p.folder, p.path, p.size, p.mtime_s, p.mtime_ns, p.capture_s, p.capture_offset, \
         p.media_type, p.plaintext_hash, p.blob_id, p.blob_epoch, p.added_by, p.created_at_ms, \
         p.seal_epoch"
    };
}

/// [`photo_columns!`], for queries built at run time.
pub(super) const PHOTO_COLUMNS: &str = photo_columns!();

/// Joins `records r` to the photo row `p` of a record kept as its fields (`r.sealed` empty)
/// and to nothing for any other record, without looking: a damaged `photo_rows` page costs
/// the records kept on it, never one kept sealed.
pub(super) const FIELDS_OF_COMPACT: &str =
    "LEFT JOIN photo_rows p ON p.rid = CASE WHEN length(r.sealed) = 0 THEN r.rowid END";

/// A record read from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRecord {
    /// Kept as the bytes that came.
    Sealed(Vec<u8>),
    /// A photo record kept as its fields, sealed under `epoch`.
    Photo {
        /// Its ID (the hash of the sealed bytes it gives).
        id: RecordId,
        /// Its fields.
        photo: Box<PhotoRecord>,
        /// The key epoch that sealed it.
        epoch: Epoch,
    },
}

impl StoredRecord {
    /// Reads `r.sealed` at column `at`, then [`PHOTO_COLUMNS`], of the record `id`.
    pub(super) fn read(row: &Row<'_>, at: usize, id: RecordId) -> rusqlite::Result<Self> {
        let sealed: Vec<u8> = row.get(at)?;
        if !sealed.is_empty() {
            return Ok(Self::Sealed(sealed));
        }
        let bad = |column: usize, what: &str| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                format!("a photo kept as its fields has {what}").into(),
            )
        };
        let media: String = row.get(at + 8)?;
        let capture_s: Option<i64> = row.get(at + 6)?;
        let capture_offset: Option<i16> = row.get(at + 7)?;
        let photo = PhotoRecord {
            folder: row.get(at + 1)?,
            path: row.get(at + 2)?,
            size: u64::try_from(row.get::<_, i64>(at + 3)?).map_err(|_| bad(at + 3, "a size"))?,
            mtime: FileTime {
                seconds: row.get(at + 4)?,
                nanos: row.get(at + 5)?,
            },
            capture_time: capture_s.map(|local_seconds| CaptureTime {
                local_seconds,
                utc_offset_minutes: capture_offset,
            }),
            media_type: MediaType::from_name(&media)
                .ok_or_else(|| bad(at + 8, "an unknown kind"))?,
            plaintext_hash: blob_id_from(row.get(at + 9)?)?,
            blob_id: BlobId(blob_id_from(row.get(at + 10)?)?),
            blob_epoch: row.get(at + 11)?,
            added_by: DeviceId::from_bytes(
                <[u8; DEVICE_ID_LEN]>::try_from(row.get::<_, Vec<u8>>(at + 12)?)
                    .map_err(|_| bad(at + 12, "a device ID of another length"))?,
            ),
            created_at_ms: u64::try_from(row.get::<_, i64>(at + 13)?)
                .map_err(|_| bad(at + 13, "a time"))?,
        };
        Ok(Self::Photo {
            id,
            photo: Box::new(photo),
            epoch: row.get(at + 14)?,
        })
    }

    /// The record's ID.
    pub fn id(&self) -> RecordId {
        match self {
            Self::Sealed(bytes) => record_id(bytes),
            Self::Photo { id, .. } => *id,
        }
    }

    /// When the record was made (its place in the record set's order), whatever its kind.
    pub fn timestamp_ms(&self) -> Result<u64, RecordError> {
        match self {
            Self::Sealed(bytes) => timestamp_of(bytes),
            Self::Photo { photo, .. } => Ok(photo.created_at_ms),
        }
    }

    /// The sealed bytes: the ones kept, or the photo sealed again with its epoch's key.
    pub fn sealed(&self, keys: &KeyRing) -> Result<Vec<u8>, RecordError> {
        match self {
            Self::Sealed(bytes) => Ok(bytes.clone()),
            Self::Photo { photo, epoch, .. } => {
                let key = keys.get(*epoch).ok_or(RecordError::UnknownEpoch(*epoch))?;
                let (_, sealed) = Record::Photo((**photo).clone()).seal(key)?;
                Ok(sealed)
            }
        }
    }

    /// The record, opened with `keys` if it is kept sealed.
    pub fn open(&self, keys: &KeyRing) -> Result<Record, RecordError> {
        match self {
            Self::Sealed(bytes) => Record::open(bytes, keys),
            Self::Photo { photo, .. } => Ok(Record::Photo((**photo).clone())),
        }
    }

    /// The photo record, opened with `keys` if it is kept sealed.
    pub fn open_photo(&self, keys: &KeyRing) -> Result<PhotoRecord, RecordError> {
        match self.open(keys)? {
            Record::Photo(photo) => Ok(photo),
            Record::Move(_) => Err(RecordError::NotAPhoto),
        }
    }
}

/// The epoch under which `sealed` may be kept as the fields of `photo`: when sealing `photo`
/// again with that epoch's key (held in `keys`) gives exactly `sealed`.
pub(super) fn fields_suffice(sealed: &[u8], photo: &PhotoRecord, keys: &KeyRing) -> Option<Epoch> {
    // SQLite's integers are signed: a size or time past `i64::MAX` would not read back.
    i64::try_from(photo.size).ok()?;
    i64::try_from(photo.created_at_ms).ok()?;
    let epoch = sealed_header(sealed).ok()?.epoch;
    let key = keys.get(epoch)?;
    let (_, again) = Record::Photo(photo.clone()).seal(key).ok()?;
    (again == sealed).then_some(epoch)
}

#[cfg(test)]
mod tests {
    use photomesh_protocol::keys::LibraryKey;

    use super::*;
    use crate::index::Index;

    fn photo(i: u8, capture_time: Option<CaptureTime>) -> PhotoRecord {
        PhotoRecord {
            folder: "camera".into(),
            path: format!("2026/12/IMG_{i:04}.HEIC"),
            size: 3_000_000 + u64::from(i),
            mtime: FileTime {
                seconds: -5 + i64::from(i),
                nanos: 999_999_999,
            },
            capture_time,
            media_type: MediaType::Heif,
            plaintext_hash: [i; 32],
            blob_id: BlobId([i ^ 0xff; 32]),
            blob_epoch: 2,
            added_by: DeviceId::from_bytes([9; 20]),
            created_at_ms: 1_765_000_000_000 + u64::from(i),
        }
    }

    fn sealed_row(ix: &Index, id: &RecordId) -> Vec<u8> {
        ix.conn
            .query_row(
                "SELECT sealed FROM records WHERE record_id = ?1",
                [&id.0[..]],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn setup() -> (tempfile::TempDir, Index, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let mut keys = KeyRing::new(LibraryKey::new(1, [1; 32]));
        keys.insert(LibraryKey::new(3, [3; 32])).unwrap();
        (dir, ix, keys)
    }

    #[test]
    fn a_photo_record_is_kept_as_its_fields_and_sealed_again_byte_for_byte() {
        let (_dir, ix, keys) = setup();
        let captures = [
            None,
            Some(CaptureTime {
                local_seconds: 1_700_000_000,
                utc_offset_minutes: None,
            }),
            Some(CaptureTime {
                local_seconds: -86_400,
                utc_offset_minutes: Some(-570),
            }),
        ];
        for (i, capture) in captures.into_iter().enumerate() {
            let photo = photo(i as u8, capture);
            // Sealed under an older epoch than the newest: the row keeps which.
            let (id, sealed) = Record::Photo(photo.clone())
                .seal(keys.get(1).unwrap())
                .unwrap();
            ix.add_photo_record(&id, &sealed, &photo, &keys, 5).unwrap();
            assert!(sealed_row(&ix, &id).is_empty(), "not kept twice");
            let stored = ix.record(&id).unwrap().unwrap();
            assert!(matches!(stored, StoredRecord::Photo { epoch: 1, .. }));
            assert_eq!(stored.id(), id);
            assert_eq!(stored.timestamp_ms().unwrap(), photo.created_at_ms);
            assert_eq!(stored.sealed(&keys).unwrap(), sealed);
            assert_eq!(stored.open_photo(&keys).unwrap(), photo);
            // The record set's page gives the same.
            let page = ix.records_after(0).unwrap();
            assert!(page.iter().any(|(_, r)| *r == stored));
        }
    }

    #[test]
    fn every_kind_of_record_has_its_place_in_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photo = photo(4, None);
        let (id, sealed) = Record::Photo(photo.clone())
            .seal(home.keys.current().unwrap())
            .unwrap();
        home.index
            .add_photo_record(&id, &sealed, &photo, &home.keys, 5)
            .unwrap();
        let all = home.index.records_after(0).unwrap();
        // The founding membership record and the photo, kept as its fields.
        assert!(all.len() >= 2);
        for (_, record) in &all {
            let bytes = record.sealed(&home.keys).unwrap();
            assert_eq!(
                record.timestamp_ms().unwrap(),
                timestamp_of(&bytes).unwrap()
            );
            assert_eq!(record.id(), record_id(&bytes));
        }
    }

    #[test]
    fn a_record_its_fields_do_not_seal_again_keeps_its_bytes() {
        let (_dir, ix, keys) = setup();
        // Fields that are not what the bytes hold (another encoder, a newer field): the
        // bytes stay, and are what is served.
        let photo = photo(1, None);
        let (id, sealed) = Record::Photo(photo.clone())
            .seal(keys.get(3).unwrap())
            .unwrap();
        let mut other = photo.clone();
        other.size += 1;
        ix.add_photo_record(&id, &sealed, &other, &keys, 5).unwrap();
        assert_eq!(sealed_row(&ix, &id), sealed);
        let stored = ix.record(&id).unwrap().unwrap();
        assert_eq!(stored, StoredRecord::Sealed(sealed.clone()));
        assert_eq!(stored.sealed(&KeyRing::default()).unwrap(), sealed);
        // A size SQLite cannot hold as it is: kept sealed too.
        let mut huge = photo.clone();
        huge.size = u64::MAX;
        let (id, sealed) = Record::Photo(huge.clone())
            .seal(keys.get(3).unwrap())
            .unwrap();
        ix.add_photo_record(&id, &sealed, &huge, &keys, 5).unwrap();
        assert_eq!(sealed_row(&ix, &id), sealed);
        assert_eq!(
            ix.record(&id).unwrap().unwrap().open_photo(&keys).unwrap(),
            huge
        );
    }

    #[test]
    fn without_the_epoch_s_key_the_bytes_stay_until_a_key_opens_them() {
        let (_dir, ix, keys) = setup();
        let photo = photo(2, None);
        let (id, sealed) = Record::Photo(photo.clone())
            .seal(keys.get(3).unwrap())
            .unwrap();
        let older = KeyRing::new(keys.get(1).unwrap().clone());
        ix.add_photo_record(&id, &sealed, &photo, &older, 5)
            .unwrap();
        assert_eq!(sealed_row(&ix, &id), sealed);
        // Kept sealed as a vault keeps it, then opened when the key came.
        let (id2, sealed2) = Record::Photo(self::photo(3, None))
            .seal(keys.get(3).unwrap())
            .unwrap();
        ix.add_record(&id2, &sealed2, 5).unwrap();
        ix.add_photo_record(&id2, &sealed2, &self::photo(3, None), &keys, 6)
            .unwrap();
        assert!(sealed_row(&ix, &id2).is_empty());
        assert_eq!(
            ix.record(&id2).unwrap().unwrap().sealed(&keys).unwrap(),
            sealed2
        );
        // A handle whose ring lacks the epoch cannot seal it again, and says which.
        assert_eq!(
            ix.record(&id2).unwrap().unwrap().sealed(&older),
            Err(RecordError::UnknownEpoch(3))
        );
    }
}
