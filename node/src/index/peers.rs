//! What this device knows of the other members: where they were seen, what they hold, how
//! the last sync went, and which sent bad data.

use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;
use rusqlite::{OptionalExtension, params};

use super::blob_id_from;
use super::stored::{PHOTO_COLUMNS, StoredRecord};
use super::{Index, IndexError};

/// A page of a peer's holdings, in ID order (the table's key: no sort).
pub(super) const PEER_BLOBS_AFTER: &str = "SELECT blob_id FROM peer_blobs
     WHERE device_id = ?1 AND blob_id > ?2 ORDER BY blob_id LIMIT ?3";

/// Rows of `peer_blobs` read at once when a peer's holdings are replaced.
#[cfg(not(test))]
const PEER_BLOBS_PAGE: i64 = 4096;
#[cfg(test)]
const PEER_BLOBS_PAGE: i64 = 3;

/// An ascending stream with the items that broke its order set aside (each one not above
/// the one before it), to be handled at the end.
struct Ascending<I: Iterator<Item = Vec<u8>>> {
    items: std::iter::Peekable<I>,
    last: Option<Vec<u8>>,
    late: Vec<Vec<u8>>,
}

impl<I: Iterator<Item = Vec<u8>>> Ascending<I> {
    fn new(items: I) -> Self {
        Self {
            items: items.peekable(),
            last: None,
            late: Vec::new(),
        }
    }

    /// The next item if it is in order and `take` accepts it.
    fn next_if(&mut self, take: impl Fn(&Vec<u8>) -> bool) -> Option<Vec<u8>> {
        loop {
            let item = self.items.peek()?;
            if self.last.as_ref().is_some_and(|last| item <= last) {
                let late = self.items.next()?;
                self.late.push(late);
                continue;
            }
            if !take(item) {
                return None;
            }
            let item = self.items.next()?;
            self.last = Some(item.clone());
            return Some(item);
        }
    }

    /// Every item not yet taken, the late ones included.
    fn rest(self) -> impl Iterator<Item = Vec<u8>> {
        self.late.into_iter().chain(self.items)
    }
}

/// A peer caught sending blob data that does not match the blob's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPeer {
    /// The device.
    pub device: photomesh_protocol::identity::DeviceId,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The blob it was sending.
    pub blob: BlobId,
    /// What failed.
    pub reason: String,
}

/// What a member last said in its hello beyond membership and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    /// Since when every copy it holds was verified (ms since the epoch, by its clock).
    pub verified_since_ms: Option<u64>,
    /// Its storage.
    pub storage: Option<photomesh_protocol::messages::StorageReport>,
    /// When it said so (ms since the epoch, by this device's clock).
    pub at_ms: u64,
}

impl Index {
    /// Adds a configured peer address. Returns `false` if it was already there.
    pub fn add_peer(&self, address: &str, now_ms: u64) -> Result<bool, IndexError> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO peers (address, added_at_ms) VALUES (?1, ?2)",
            params![address, now_ms as i64],
        )? == 1)
    }

    /// Every configured peer address.
    pub fn peers(&self) -> Result<Vec<String>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT address FROM peers ORDER BY address")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remembers that a device was just seen (connected), where, and whether it has AES
    /// instructions (which picks the cipher suite for the next connection).
    pub fn set_seen(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        now_ms: u64,
        address: Option<&str>,
        has_aes: Option<bool>,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO devices_seen (device_id, last_seen_ms, address, has_aes)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
               address = COALESCE(excluded.address, devices_seen.address),
               has_aes = COALESCE(excluded.has_aes, devices_seen.has_aes)",
            params![&device.as_bytes()[..], now_ms as i64, address, has_aes],
        )?;
        Ok(())
    }

    /// Whether a device was last seen to have AES instructions (`None`: not known).
    pub fn has_aes(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<bool>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT has_aes FROM devices_seen WHERE device_id = ?1",
                [&device.as_bytes()[..]],
                |r| r.get::<_, Option<bool>>(0),
            )
            .optional()?
            .flatten())
    }

    /// When a device was last seen, and at which address.
    pub fn seen(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<(u64, Option<String>)>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_seen_ms, address FROM devices_seen WHERE device_id = ?1",
                [&device.as_bytes()[..]],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    /// Records that a peer sent blob data that failed verification.
    pub fn record_bad_peer(&self, bad: &BadPeer) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO bad_peers (device_id, at_ms, blob_id, reason) VALUES (?1, ?2, ?3, ?4)",
            params![
                &bad.device.as_bytes()[..],
                bad.at_ms as i64,
                &bad.blob.0[..],
                bad.reason
            ],
        )?;
        Ok(())
    }

    /// The last time a peer was caught sending bad blob data, if ever.
    pub fn last_bad(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<BadPeer>, IndexError> {
        let row: Option<(i64, Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT at_ms, blob_id, reason FROM bad_peers WHERE device_id = ?1
                 ORDER BY at_ms DESC LIMIT 1",
                [&device.as_bytes()[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((at_ms, blob, reason)) = row else {
            return Ok(None);
        };
        Ok(Some(BadPeer {
            device: *device,
            at_ms: at_ms as u64,
            blob: BlobId(blob_id_from(blob)?),
            reason,
        }))
    }

    /// Every member address this device has seen, by device.
    pub fn seen_addresses(
        &self,
    ) -> Result<Vec<(photomesh_protocol::identity::DeviceId, String)>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, address FROM devices_seen WHERE address IS NOT NULL
             ORDER BY last_seen_ms DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, address) = row?;
            if let Ok(id) = <[u8; 20]>::try_from(id) {
                out.push((
                    photomesh_protocol::identity::DeviceId::from_bytes(id),
                    address,
                ));
            }
        }
        Ok(out)
    }

    /// Remembers an address another member gave for a device.
    pub fn learn_address(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        address: &str,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO learned_addresses (device_id, address, learned_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(device_id) DO UPDATE SET address = excluded.address,
               learned_at_ms = excluded.learned_at_ms",
            params![&device.as_bytes()[..], address, now_ms as i64],
        )?;
        Ok(())
    }

    /// The address another member last gave for a device.
    pub fn learned_address(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<String>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT address FROM learned_addresses WHERE device_id = ?1",
                [&device.as_bytes()[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Where a member is best dialled: where this device last saw it, else where another
    /// member saw it. An address that does not parse counts as none.
    pub fn last_known_address(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<std::net::SocketAddr>, IndexError> {
        let seen = self.seen(device)?.and_then(|(_, address)| address);
        let address = match seen {
            Some(address) => Some(address),
            None => self.learned_address(device)?,
        };
        Ok(address.and_then(|a| a.parse().ok()))
    }

    /// The addresses added with `peer add` that parse.
    pub fn peer_addresses(&self) -> Result<Vec<std::net::SocketAddr>, IndexError> {
        Ok(self
            .peers()?
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Replaces what a peer is known to hold, and notes when it was last synced. `blobs`
    /// should come in ascending ID order: the rows the index holds for the peer are read
    /// alongside, a page at a time, and only the difference is written, so the counts
    /// `status` reads change for the blobs that changed hands only, and memory stays flat
    /// however many blobs the peer holds. (One out of order is still recorded, at the end.)
    pub fn set_peer_blobs(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        blobs: impl Iterator<Item = BlobId>,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.transaction(|ix| -> Result<(), IndexError> {
            let id = &device.as_bytes()[..];
            let mut page_of = ix.conn.prepare_cached(PEER_BLOBS_AFTER)?;
            let mut insert = ix.conn.prepare_cached(
                "INSERT OR IGNORE INTO peer_blobs (device_id, blob_id) VALUES (?1, ?2)",
            )?;
            let mut delete = ix
                .conn
                .prepare_cached("DELETE FROM peer_blobs WHERE device_id = ?1 AND blob_id = ?2")?;
            let mut new = Ascending::new(blobs.map(|b| b.0.to_vec()));
            let mut after = Vec::new();
            loop {
                let page = page_of
                    .query_map(params![id, after, PEER_BLOBS_PAGE], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let last_page = page.len() < PEER_BLOBS_PAGE as usize;
                // Rows for this page are written after it is read; a new blob below the
                // page's last row is never read back by the next page.
                let (mut adds, mut drops) = (Vec::new(), Vec::new());
                for old in &page {
                    while let Some(b) = new.next_if(|b| b < old) {
                        adds.push(b);
                    }
                    if new.next_if(|b| b == old).is_none() {
                        drops.push(old);
                    }
                }
                for blob in &adds {
                    insert.execute(params![id, blob])?;
                }
                for blob in drops {
                    delete.execute(params![id, blob])?;
                }
                if last_page {
                    break;
                }
                if let Some(last) = page.last() {
                    after.clone_from(last);
                }
            }
            for blob in new.rest() {
                insert.execute(params![id, blob])?;
            }
            ix.conn.execute(
                "INSERT INTO peer_sync (device_id, synced_at_ms) VALUES (?1, ?2)
                 ON CONFLICT(device_id) DO UPDATE SET synced_at_ms = excluded.synced_at_ms",
                params![id, now_ms as i64],
            )?;
            Ok(())
        })
    }

    /// A photo whose blob `device` is known to hold, for a restore drill: the first such
    /// blob at or after `from` (a random point, so repeated calls sample the holdings), of
    /// a photo of at most `max_size` bytes, with that photo's sealed record. Wraps around.
    pub fn held_photo_from(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        from: &[u8; 32],
        max_size: u64,
    ) -> Result<Option<(BlobId, StoredRecord)>, IndexError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT pb.blob_id, r.record_id, r.sealed, {PHOTO_COLUMNS} FROM peer_blobs pb
             JOIN photo_rows p
               ON substr(p.blob_id, 1, 8) = substr(pb.blob_id, 1, 8) AND p.blob_id = pb.blob_id
             JOIN records r ON r.rowid = p.rid
             WHERE pb.device_id = ?1 AND pb.blob_id >= ?2 AND p.size <= ?3
             ORDER BY pb.blob_id LIMIT 1"
        ))?;
        let id = &device.as_bytes()[..];
        for start in [&from[..], &[0u8; 32][..]] {
            let row = stmt
                .query_row(params![id, start, max_size as i64], |r| {
                    let id = RecordId(super::blob_id_from(r.get(1)?)?);
                    Ok((
                        BlobId(super::blob_id_from(r.get(0)?)?),
                        StoredRecord::read(r, 2, id)?,
                    ))
                })
                .optional()?;
            if row.is_some() {
                return Ok(row);
            }
        }
        Ok(None)
    }

    /// The devices known to hold a blob.
    pub fn blob_holders(
        &self,
        blob_id: &BlobId,
    ) -> Result<Vec<photomesh_protocol::identity::DeviceId>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT device_id FROM peer_blobs WHERE blob_id = ?1")?;
        let rows = stmt.query_map([&blob_id.0[..]], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(bytes) = <[u8; 20]>::try_from(row?) {
                out.push(photomesh_protocol::identity::DeviceId::from_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// Notes what a member said in its hello of its checks and its storage.
    pub fn set_peer_report(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        report: &PeerReport,
    ) -> Result<(), IndexError> {
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        let storage = report.storage.as_ref();
        self.conn
            .prepare_cached(
                "INSERT INTO peer_reports (device_id, verified_since_ms, used, free, quota, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(device_id) DO UPDATE SET
                   verified_since_ms = excluded.verified_since_ms, used = excluded.used,
                   free = excluded.free, quota = excluded.quota, at_ms = excluded.at_ms",
            )?
            .execute(params![
                &device.as_bytes()[..],
                report.verified_since_ms.map(clamp),
                storage.map(|s| clamp(s.used)),
                storage.map(|s| clamp(s.free)),
                storage.and_then(|s| s.quota).map(clamp),
                clamp(report.at_ms)
            ])?;
        Ok(())
    }

    /// What a member last said in its hello of its checks and its storage.
    pub fn peer_report(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<PeerReport>, IndexError> {
        type Row = (Option<i64>, Option<i64>, Option<i64>, Option<i64>, i64);
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT verified_since_ms, used, free, quota, at_ms FROM peer_reports
                 WHERE device_id = ?1",
            )?
            .query_row([&device.as_bytes()[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let n = |v: i64| v.max(0) as u64;
        Ok(row.map(|(verified, used, free, quota, at)| PeerReport {
            verified_since_ms: verified.map(n),
            storage: used.zip(free).map(|(used, free)| {
                photomesh_protocol::messages::StorageReport {
                    used: n(used),
                    free: n(free),
                    quota: quota.map(n),
                }
            }),
            at_ms: n(at),
        }))
    }

    /// How many blobs a peer is known to hold, and when it was last synced.
    pub fn peer_sync(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<(u64, u64)>, IndexError> {
        let id = &device.as_bytes()[..];
        let synced: Option<i64> = self
            .conn
            .query_row(
                "SELECT synced_at_ms FROM peer_sync WHERE device_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(synced) = synced else {
            return Ok(None);
        };
        let count: i64 = self
            .conn
            .prepare_cached("SELECT blobs FROM peer_tallies WHERE device_id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        Ok(Some((count.max(0) as u64, synced as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use photomesh_protocol::identity::DeviceId;
    use std::collections::BTreeSet;

    fn held(ix: &Index, device: &DeviceId) -> BTreeSet<Vec<u8>> {
        let mut stmt = ix
            .conn
            .prepare("SELECT blob_id FROM peer_blobs WHERE device_id = ?1")
            .unwrap();
        stmt.query_map([&device.as_bytes()[..]], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_peers_holdings_become_exactly_the_set_given_across_pages_and_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let (peer, other) = (DeviceId::from_bytes([7; 20]), DeviceId::from_bytes([8; 20]));
        let blob = |n: u16| {
            let mut id = [0u8; 32];
            id[..2].copy_from_slice(&n.to_be_bytes());
            BlobId(id)
        };
        let ids = |set: &[u16]| -> BTreeSet<Vec<u8>> {
            set.iter().map(|&n| blob(n).0.to_vec()).collect()
        };
        ix.set_peer_blobs(&other, [1, 2, 50].map(blob).into_iter(), 1)
            .unwrap();
        // Each set replaces the one before: sets spanning many pages of three rows, rows
        // kept, dropped and added in every page, the empty set, and blobs out of order
        // (given twice, or below ones already given).
        let sets: [&[u16]; 6] = [
            &[1, 3, 4, 5, 9, 10, 11, 12, 20, 21, 30],
            &[0, 1, 4, 6, 9, 11, 13, 14, 15, 16, 17, 21, 31, 40],
            &[2, 40, 41],
            &[],
            &[5, 5, 9, 3, 4, 1, 12, 10, 11, 2],
            &[12, 1, 40, 2, 41],
        ];
        for (i, set) in sets.iter().enumerate() {
            ix.set_peer_blobs(&peer, set.iter().map(|&n| blob(n)), i as u64)
                .unwrap();
            assert_eq!(held(&ix, &peer), ids(set), "after set {i}");
            assert_eq!(
                held(&ix, &other),
                ids(&[1, 2, 50]),
                "the other peer's, untouched"
            );
        }
    }
}
