//! The blobs this device knows: their verification data, whether the store holds them, and
//! which originals they are sealed from.

use std::path::PathBuf;

use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;
use rusqlite::{OptionalExtension, params};

use super::records::ADDED_BY;
use super::stored::StoredRecord;
use super::{Index, IndexError, blob_id_from};

/// The original files whose recorded content is blob `?1` (see [`Index::originals_of`]).
pub(super) const ORIGINALS_OF: &str = concat!(
    "SELECT f.path, p.path, r.record_id, r.sealed, ",
    photo_columns!(),
    "
     FROM source_files s
     JOIN photo_rows p ON p.rid = s.photo
     JOIN records r ON r.rowid = s.photo
     JOIN folders f ON f.label = p.folder
     WHERE substr(p.blob_id, 1, 8) = substr(?1, 1, 8) AND p.blob_id = ?1
       AND s.gone_since_ms IS NULL"
);

/// A blob's length, outboard (an empty one has no row) and whether it is stored.
pub(super) const BLOB_INFO: &str = "SELECT b.sealed_len, COALESCE(o.outboard, X''), b.stored
     FROM blobs b LEFT JOIN outboards o USING (blob_id) WHERE b.blob_id = ?1";

/// An original file whose recorded content is a given blob.
#[derive(Debug)]
pub struct OriginalRow {
    /// Its folder.
    pub root: PathBuf,
    /// Its path below the folder, `/`-separated.
    pub rel: String,
    /// The record that describes it.
    pub record: StoredRecord,
}

/// What the index knows of a blob.
#[derive(Debug)]
pub struct BlobInfo {
    /// Its sealed length.
    pub sealed_len: u64,
    /// Its bao outboard.
    pub outboard: Vec<u8>,
    /// Whether the blob store holds it.
    pub stored: bool,
}

/// A row of a record ID and a count or size (negative read as 0).
pub(super) fn record_and_number(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(photomesh_protocol::record::RecordId, u64)> {
    Ok((
        photomesh_protocol::record::RecordId(blob_id_from(r.get(0)?)?),
        r.get::<_, i64>(1)?.max(0) as u64,
    ))
}

/// Every blob this device holds, stored or as an original that is there, in ID order, with
/// when it was last verified (the later of the two when both).
const HELD_BLOBS: &str = "SELECT blob_id, MAX(verified) FROM (
         SELECT blob_id, verified_at_ms AS verified FROM blobs WHERE stored = 1
         UNION ALL
         SELECT p.blob_id, s.verified_at_ms FROM source_files s
         JOIN photo_rows p ON p.rid = s.photo WHERE s.gone_since_ms IS NULL)
     GROUP BY blob_id ORDER BY blob_id";

/// The blobs the store holds, in ID order (the table's key: no sort).
pub(super) const STORED_IN_ORDER: &str =
    "SELECT blob_id FROM blobs WHERE stored = 1 ORDER BY blob_id";
/// The blobs of this device's originals that are there, in ID order, once per photo: in the
/// order of `photos_by_blob` (the first 8 bytes of each ID), only the IDs that share those
/// sorted among themselves.
pub(super) const ORIGINALS_IN_ORDER: &str = "SELECT blob_id FROM photo_rows p
     WHERE EXISTS (SELECT 1 FROM source_files s
                   WHERE s.photo = p.rid AND s.gone_since_ms IS NULL)
     ORDER BY substr(blob_id, 1, 8), blob_id";

impl Index {
    /// Remembers a blob's verification data (a no-op if it is already known).
    pub fn add_blob(
        &self,
        blob_id: &BlobId,
        sealed_len: u64,
        outboard: &[u8],
    ) -> Result<(), IndexError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO blobs (blob_id, sealed_len) VALUES (?1, ?2)")?
            .execute(params![&blob_id.0[..], sealed_len as i64])?;
        self.add_outboard(blob_id, outboard)
    }

    /// Keeps a blob's outboard, unless it is empty (a blob of one chunk group): no row
    /// stands for that.
    fn add_outboard(&self, blob_id: &BlobId, outboard: &[u8]) -> Result<(), IndexError> {
        if !outboard.is_empty() {
            self.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO outboards (blob_id, outboard) VALUES (?1, ?2)",
                )?
                .execute(params![&blob_id.0[..], outboard])?;
        }
        Ok(())
    }

    /// Marks whether the blob store holds a blob.
    pub fn set_blob_stored(&self, blob_id: &BlobId, stored: bool) -> Result<(), IndexError> {
        self.conn
            .prepare_cached("UPDATE blobs SET stored = ?2 WHERE blob_id = ?1")?
            .execute(params![&blob_id.0[..], stored])?;
        Ok(())
    }

    /// Forgets that the blob store holds a blob whose stored copy was found damaged (the
    /// caller removes the file): it is no longer held, so a fetch replaces it. A running
    /// node's held set reloads (see [`super::GONE_VERSION`]).
    pub fn evict_stored_blob(&self, blob_id: &BlobId) -> Result<(), IndexError> {
        self.set_blob_stored(blob_id, false)?;
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            )?
            .execute([super::GONE_VERSION])?;
        Ok(())
    }

    /// About how many bytes a blob takes once stored: its sealed length when known, else
    /// its photo's size plus the sealing overhead (16 bytes a 64 KiB segment, a header).
    /// `None` when neither is known (a vault reads no record).
    pub fn blob_size_hint(&self, blob_id: &BlobId) -> Result<Option<u64>, IndexError> {
        // One statement for both lookups: a round asks this of every blob it wants.
        let (sealed, size): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT (SELECT sealed_len FROM blobs WHERE blob_id = ?1),
                        (SELECT MAX(size) FROM photo_rows
                         WHERE substr(blob_id, 1, 8) = substr(?1, 1, 8) AND blob_id = ?1)",
            )?
            .query_row([&blob_id.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(match (sealed, size) {
            (Some(sealed), _) => Some(sealed.max(0) as u64),
            (None, Some(s)) => {
                let s = s.max(0) as u64;
                Some(s + s / 4096 + 4096)
            }
            (None, None) => None,
        })
    }

    /// Whether the blob store is known to hold a blob.
    pub fn blob_stored(&self, blob_id: &BlobId) -> Result<bool, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT stored FROM blobs WHERE blob_id = ?1")?
            .query_row([&blob_id.0[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Every blob this device holds — stored replicas, and blobs of its own originals that
    /// are there — with when this device last verified it (ms since the epoch; 0: not known
    /// verified): the later of its stored copy's and its originals' checks.
    pub fn held_blobs(&self) -> Result<Vec<(BlobId, u64)>, IndexError> {
        let mut stmt = self.conn.prepare(HELD_BLOBS)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                BlobId(blob_id_from(r.get(0)?)?),
                r.get::<_, i64>(1)?.max(0) as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `f` with every held blob ([`Index::held_blobs`]) in ID order, read as `f` goes
    /// rather than gathered first (a million IDs are 32 MB): the stored blobs and the blobs
    /// of originals that are there, each read in ID order from an index and merged, so
    /// SQLite sorts nothing (its sorter held 72 MB at a million). A blob may come more than
    /// once (stored and an original, or the original of two photos). A row that cannot be
    /// read ends the blobs `f` sees, and is the error returned.
    pub fn with_held_blobs<T>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = BlobId>) -> T,
    ) -> Result<T, IndexError> {
        let mut stored = self.conn.prepare(STORED_IN_ORDER)?;
        let mut originals = self.conn.prepare(ORIGINALS_IN_ORDER)?;
        let failed = std::cell::Cell::new(None);
        let id = |r: &rusqlite::Row<'_>| blob_id_from(r.get(0)?);
        let read = |row: rusqlite::Result<[u8; 32]>| row.map_err(|e| failed.set(Some(e))).ok();
        let stored = stored.query_map([], id)?.map_while(read).map(BlobId);
        let originals = originals.query_map([], id)?.map_while(read).map(BlobId);
        let mut blobs = crate::sorted::merge(stored, originals);
        let out = f(&mut blobs);
        drop(blobs);
        match failed.take() {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// Notes that the stored copy of a blob was found good at `at_ms`.
    pub fn set_blob_verified(&self, blob_id: &BlobId, at_ms: u64) -> Result<(), IndexError> {
        self.conn
            .prepare_cached("UPDATE blobs SET verified_at_ms = ?2 WHERE blob_id = ?1")?
            .execute(params![&blob_id.0[..], at_ms as i64])?;
        Ok(())
    }

    /// Records blobs whose bytes are durable in the blob store, with their verification
    /// data, in one transaction. They were verified as they arrived: verified now.
    pub fn add_stored_blobs<'a>(
        &self,
        blobs: impl IntoIterator<Item = (&'a BlobId, u64, &'a [u8])>,
    ) -> Result<(), IndexError> {
        let now = crate::clock::now_ms() as i64;
        self.transaction(|ix| -> Result<(), IndexError> {
            let mut insert = ix.conn.prepare(
                "INSERT INTO blobs (blob_id, sealed_len, stored, verified_at_ms)
                 VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT(blob_id) DO UPDATE SET stored = 1, verified_at_ms = ?3",
            )?;
            for (id, len, outboard) in blobs {
                insert.execute(params![&id.0[..], len as i64, now])?;
                ix.add_outboard(id, outboard)?;
            }
            Ok(())
        })
    }

    /// The blobs of this device's own originals whose records were added after row `after`
    /// of `records`, and the last such row (or `after`).
    pub fn originals_after(&self, after: i64) -> Result<(i64, Vec<BlobId>), IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.photo, p.blob_id FROM source_files s JOIN photo_rows p ON p.rid = s.photo
             WHERE s.photo > ?1 AND s.gone_since_ms IS NULL",
        )?;
        let rows = stmt.query_map([after], |r| {
            Ok((r.get::<_, i64>(0)?, BlobId(blob_id_from(r.get(1)?)?)))
        })?;
        let mut mark = after;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, blob) = row?;
            mark = mark.max(rowid);
            out.push(blob);
        }
        Ok((mark, out))
    }

    /// Since when every copy this device holds was verified: the oldest check among its
    /// stored blobs and its originals that are there (`None`: it holds nothing). Found
    /// through `blobs_verified` and `sources_verified`, so a hello can say it every time.
    pub fn held_verified_since(&self) -> Result<Option<u64>, IndexError> {
        let oldest: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT MIN(m) FROM (
                 SELECT MIN(verified_at_ms) AS m FROM blobs WHERE stored = 1
                 UNION ALL
                 SELECT MIN(verified_at_ms) FROM source_files WHERE gone_since_ms IS NULL)",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(oldest.map(|m| m.max(0) as u64))
    }

    /// The blobs of the photos a device added.
    pub fn blobs_added_by(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<std::collections::HashSet<BlobId>, IndexError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT blob_id FROM photo_rows WHERE {ADDED_BY}"))?;
        let rows = stmt.query_map([&device.as_bytes()[..]], |r| {
            Ok(BlobId(blob_id_from(r.get(0)?)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A known blob's sealed length, bao outboard, and whether the blob store holds it.
    pub fn blob_info(&self, blob_id: &BlobId) -> Result<Option<BlobInfo>, IndexError> {
        Ok(self
            .conn
            .prepare_cached(BLOB_INFO)?
            .query_row([&blob_id.0[..]], |r| {
                Ok(BlobInfo {
                    sealed_len: r.get::<_, i64>(0)? as u64,
                    outboard: r.get(1)?,
                    stored: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// The original files on this device whose recorded content is this blob: their full
    /// paths and the sealed records that describe them. A source asks this for every blob it
    /// serves, so it is found through `photos_by_blob`, then each photo row's source file.
    pub fn originals_of(&self, blob_id: &BlobId) -> Result<Vec<OriginalRow>, IndexError> {
        let mut stmt = self.conn.prepare_cached(ORIGINALS_OF)?;
        let rows = stmt.query_map([&blob_id.0[..]], |r| {
            Ok(OriginalRow {
                root: PathBuf::from(r.get::<_, String>(0)?),
                rel: r.get(1)?,
                record: StoredRecord::read(r, 3, RecordId(blob_id_from(r.get(2)?)?))?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored blob that follows `after` in ID order (the scrub's next), with its length.
    pub fn next_stored_blob(
        &self,
        after: Option<&BlobId>,
    ) -> Result<Option<(BlobId, u64)>, IndexError> {
        let after = after.map_or_else(Vec::new, |b| b.0.to_vec());
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached(
                "SELECT blob_id, sealed_len FROM blobs WHERE stored = 1 AND blob_id > ?1
                 ORDER BY blob_id LIMIT 1",
            )?
            .query_row([after], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((id, len)) => Ok(Some((BlobId(blob_id_from(id)?), len.max(0) as u64))),
            None => Ok(None),
        }
    }

    /// The bytes of the blobs the store holds (a tally, kept as blobs are stored).
    pub fn stored_bytes(&self) -> Result<u64, IndexError> {
        Ok(self.stored_tally()?.1)
    }

    /// How many blobs the store holds (a tally, kept as blobs are stored).
    pub fn stored_blob_count(&self) -> Result<u64, IndexError> {
        Ok(self.stored_tally()?.0)
    }

    fn stored_tally(&self) -> Result<(u64, u64), IndexError> {
        let tally: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT n, bytes FROM tallies WHERE name = 'stored'")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (n, bytes) = tally.unwrap_or_default();
        Ok((n.max(0) as u64, bytes.max(0) as u64))
    }

    /// Every blob the blob store should hold.
    pub fn stored_blobs(&self) -> Result<Vec<BlobId>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT blob_id FROM blobs WHERE stored = 1 ORDER BY blob_id")?;
        let rows = stmt.query_map([], |r| Ok(BlobId(blob_id_from(r.get(0)?)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
