//! The trash: lifecycle records (they replicate in `records`) and what they say of each photo
//! record they name (`trash`, rewritten from them whenever one arrives), and the versions of a
//! photo that a deletion names.

use std::collections::{BTreeMap, BTreeSet};

use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;
use rusqlite::params;

use super::blob_id_from;
use super::records::LIFECYCLE_RECORDS;
use super::{Index, IndexError};

/// A photo record the lifecycle records name, and what they say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashRow {
    /// The photo record (one version of a photo).
    pub record_id: RecordId,
    /// Purged for good (else in the trash).
    pub purged: bool,
    /// In the trash since (ms since the epoch, the deciding record's time); for a purged one,
    /// when this device first held a counting purge of it (0: one it signed itself).
    pub since_ms: u64,
    /// The blob a vault may drop with it (`None`: shared with a photo still live).
    pub blob: Option<BlobId>,
}

/// One version of a photo: a photo record at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The photo record.
    pub record_id: RecordId,
    /// Its blob.
    pub blob: BlobId,
    /// Its size.
    pub size: u64,
    /// When it was recorded (ms since the epoch).
    pub created_at_ms: u64,
    /// Whether it is in the trash (or purged).
    pub trashed: bool,
    /// Whether it left the trash for good.
    pub purged: bool,
}

/// A path with several versions: its folder, its path, and who recorded the newest.
pub type VersionedPath = (String, String, Option<Vec<u8>>);

/// A photo record in the trash, as a full device lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trashed {
    /// The photo record.
    pub record_id: RecordId,
    /// Its folder label and path.
    pub folder: String,
    /// Its path in the folder.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// When it was recorded.
    pub created_at_ms: u64,
    /// In the trash since.
    pub since_ms: u64,
    /// Its blob.
    pub blob: BlobId,
}

impl Index {
    /// When this device first held each lifecycle record (ms since the epoch).
    pub fn lifecycle_arrivals(&self) -> Result<BTreeMap<RecordId, u64>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT record_id, received_at_ms FROM records
             WHERE substr(sealed, 1, 4) = X'706d6c63'",
        )?;
        let rows = stmt.query_map([], super::blobs::record_and_number)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every lifecycle record (`pmlc`), in record-ID order.
    pub fn lifecycle_records(&self) -> Result<Vec<Vec<u8>>, IndexError> {
        let mut stmt = self.conn.prepare_cached(LIFECYCLE_RECORDS)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces what the lifecycle records say (the rows of every record not live). Only
    /// the difference is written (the rows go through a temporary table), so the counts
    /// `status` reads are refreshed for the photos that entered or left the trash only.
    pub fn set_trash(&self, rows: &[TrashRow]) -> Result<(), IndexError> {
        self.transaction(|ix| -> Result<(), IndexError> {
            ix.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS new_trash (
                     record_id BLOB PRIMARY KEY, purged INTEGER NOT NULL,
                     since_ms INTEGER NOT NULL, blob_id BLOB) WITHOUT ROWID;
                 DELETE FROM temp.new_trash;",
            )?;
            let mut insert = ix.conn.prepare(
                "INSERT OR REPLACE INTO temp.new_trash (record_id, purged, since_ms, blob_id)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for row in rows {
                insert.execute(params![
                    &row.record_id.0[..],
                    row.purged,
                    row.since_ms.min(i64::MAX as u64) as i64,
                    row.blob.as_ref().map(|b| b.0.to_vec()),
                ])?;
            }
            ix.conn.execute_batch(
                "DELETE FROM trash WHERE record_id NOT IN (SELECT record_id FROM temp.new_trash);
                 INSERT INTO trash (record_id, purged, since_ms, blob_id)
                 SELECT record_id, purged, since_ms, blob_id FROM temp.new_trash WHERE true
                 ON CONFLICT (record_id) DO UPDATE SET purged = excluded.purged,
                   since_ms = excluded.since_ms, blob_id = excluded.blob_id;
                 DELETE FROM temp.new_trash;",
            )?;
            Ok(())
        })
    }

    /// Replaces which members released their original of which photo records (only the
    /// difference is written, as [`Self::set_trash`] does).
    pub fn set_released_by(
        &self,
        rows: &[(RecordId, photomesh_protocol::identity::DeviceId)],
    ) -> Result<(), IndexError> {
        self.transaction(|ix| -> Result<(), IndexError> {
            ix.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS new_released_by (
                     record_id BLOB NOT NULL, device_id BLOB NOT NULL,
                     PRIMARY KEY (record_id, device_id)) WITHOUT ROWID;
                 DELETE FROM temp.new_released_by;",
            )?;
            let mut insert = ix.conn.prepare(
                "INSERT OR IGNORE INTO temp.new_released_by (record_id, device_id) VALUES (?1, ?2)",
            )?;
            for (record, device) in rows {
                insert.execute(params![&record.0[..], &device.as_bytes()[..]])?;
            }
            ix.conn.execute_batch(
                "DELETE FROM released_by WHERE (record_id, device_id) NOT IN
                   (SELECT record_id, device_id FROM temp.new_released_by);
                 INSERT OR IGNORE INTO released_by (record_id, device_id)
                 SELECT record_id, device_id FROM temp.new_released_by;
                 DELETE FROM temp.new_released_by;",
            )?;
            Ok(())
        })
    }

    /// The photo records a member released its original of (`device`'s only, if given).
    pub fn released_by(
        &self,
        device: Option<&photomesh_protocol::identity::DeviceId>,
    ) -> Result<BTreeSet<RecordId>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT record_id FROM released_by WHERE ?1 IS NULL OR device_id = ?1",
        )?;
        let rows = stmt.query_map([device.map(|d| d.as_bytes().to_vec())], |r| {
            Ok(RecordId(blob_id_from(r.get(0)?)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every photo record the lifecycle records put in the trash or purged.
    pub fn trash_rows(&self) -> Result<Vec<TrashRow>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record_id, purged, since_ms, blob_id FROM trash")?;
        let rows = stmt.query_map([], |r| {
            Ok(TrashRow {
                record_id: RecordId(blob_id_from(r.get(0)?)?),
                purged: r.get(1)?,
                since_ms: r.get::<_, i64>(2)?.max(0) as u64,
                blob: match r.get::<_, Option<Vec<u8>>>(3)? {
                    Some(bytes) => Some(BlobId(blob_id_from(bytes)?)),
                    None => None,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The photo records in the trash (not purged) that this device can read, oldest deletion
    /// first.
    pub fn trashed_photos(&self) -> Result<Vec<Trashed>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.record_id, p.folder, p.path, p.size, p.created_at_ms, t.since_ms, p.blob_id
             FROM trash t JOIN photos p USING (record_id) WHERE t.purged = 0
             ORDER BY t.since_ms, p.folder, p.path, p.created_at_ms",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Trashed {
                record_id: RecordId(blob_id_from(r.get(0)?)?),
                folder: r.get(1)?,
                path: r.get(2)?,
                size: r.get::<_, i64>(3)?.max(0) as u64,
                created_at_ms: r.get::<_, i64>(4)?.max(0) as u64,
                since_ms: r.get::<_, i64>(5)?.max(0) as u64,
                blob: BlobId(blob_id_from(r.get(6)?)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every version of the photo at `folder`/`path` (its photo records), oldest first.
    pub fn versions(&self, folder: &str, path: &str) -> Result<Vec<Version>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.record_id, p.blob_id, p.size, p.created_at_ms,
                    EXISTS (SELECT 1 FROM trash t WHERE t.record_id = p.record_id),
                    EXISTS (SELECT 1 FROM trash t WHERE t.record_id = p.record_id AND t.purged)
             FROM photos p WHERE p.folder = ?1 AND p.path = ?2
             ORDER BY p.created_at_ms, p.record_id",
        )?;
        let rows = stmt.query_map([folder, path], |r| {
            Ok(Version {
                record_id: RecordId(blob_id_from(r.get(0)?)?),
                blob: BlobId(blob_id_from(r.get(1)?)?),
                size: r.get::<_, i64>(2)?.max(0) as u64,
                created_at_ms: r.get::<_, i64>(3)?.max(0) as u64,
                trashed: r.get(4)?,
                purged: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The paths with more than one version not in the trash: (folder, path, the device ID
    /// bytes of who recorded the newest).
    pub fn paths_with_versions(&self) -> Result<Vec<VersionedPath>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT p.folder, p.path,
                    (SELECT q.added_by FROM photos q WHERE q.folder = p.folder AND q.path = p.path
                     ORDER BY q.created_at_ms DESC LIMIT 1)
             FROM photos p
             WHERE NOT EXISTS (SELECT 1 FROM trash t WHERE t.record_id = p.record_id)
             GROUP BY p.folder, p.path HAVING COUNT(*) > 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether a photo record not in the trash has this blob (besides those in `except`).
    pub fn blob_live(
        &self,
        blob: &BlobId,
        except: &BTreeSet<RecordId>,
    ) -> Result<bool, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.record_id FROM photos p
             WHERE substr(p.blob_id, 1, 8) = substr(?1, 1, 8) AND p.blob_id = ?1
               AND NOT EXISTS (SELECT 1 FROM trash t WHERE t.record_id = p.record_id)",
        )?;
        let rows = stmt.query_map([&blob.0[..]], |r| r.get::<_, Vec<u8>>(0))?;
        for row in rows {
            let id = RecordId(blob_id_from(row?)?);
            if !except.contains(&id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The blobs this device may drop at `now_ms` when the trash keeps photos `retention_ms`
    /// and another device's purge is held `hold_ms`: every photo record naming the blob
    /// (through a lifecycle record's target, or, on a full device, its own `photos` row) is
    /// purged (and held long enough) or in the trash past the retention, and no photo record
    /// still live has it.
    pub fn purgeable_blobs(
        &self,
        now_ms: u64,
        retention_ms: u64,
        hold_ms: u64,
    ) -> Result<BTreeSet<BlobId>, IndexError> {
        let rows = self.trash_rows()?;
        let expired: BTreeMap<RecordId, bool> = rows
            .iter()
            .map(|r| {
                let due = if r.purged {
                    r.since_ms == 0 || r.since_ms.saturating_add(hold_ms) <= now_ms
                } else {
                    r.since_ms.saturating_add(retention_ms) <= now_ms
                };
                (r.record_id, due)
            })
            .collect();
        // Each blob with whether every trashed record naming it is due.
        let mut blobs: BTreeMap<BlobId, bool> = BTreeMap::new();
        let mut name = |blob: BlobId, due: bool| {
            let all = blobs.entry(blob).or_insert(true);
            *all &= due;
        };
        for row in &rows {
            if let Some(blob) = row.blob {
                name(blob, expired[&row.record_id]);
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.record_id, p.blob_id FROM trash t JOIN photos p USING (record_id)",
        )?;
        let photo_blobs = stmt.query_map([], |r| {
            Ok((
                RecordId(blob_id_from(r.get(0)?)?),
                BlobId(blob_id_from(r.get(1)?)?),
            ))
        })?;
        for row in photo_blobs {
            let (record, blob) = row?;
            name(blob, expired.get(&record).copied().unwrap_or(false));
        }
        let mut out = BTreeSet::new();
        for (blob, due) in blobs {
            if due && !self.blob_live(&blob, &BTreeSet::new())? {
                out.insert(blob);
            }
        }
        Ok(out)
    }
}
