//! What this device knows of the other members: where they were seen, what they hold, how
//! the last sync went, and which sent bad data.

use photomesh_protocol::seal::BlobId;
use rusqlite::{OptionalExtension, params};

use super::blobs::blob_id_from;
use super::{Index, IndexError};

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

    /// Replaces what a peer is known to hold, and notes when it was last synced. Only the
    /// difference is written (the set goes through a temporary table), so the counts `status`
    /// reads are refreshed for the blobs that changed hands only.
    pub fn set_peer_blobs(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        blobs: impl Iterator<Item = BlobId>,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.transaction(|ix| -> Result<(), IndexError> {
            let id = &device.as_bytes()[..];
            ix.conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS new_peer_blobs (blob_id BLOB PRIMARY KEY)
                 WITHOUT ROWID;
                 DELETE FROM temp.new_peer_blobs;",
            )?;
            let mut insert = ix
                .conn
                .prepare("INSERT OR IGNORE INTO temp.new_peer_blobs (blob_id) VALUES (?1)")?;
            for blob in blobs {
                insert.execute([&blob.0[..]])?;
            }
            ix.conn.execute(
                "DELETE FROM peer_blobs WHERE device_id = ?1
                   AND blob_id NOT IN (SELECT blob_id FROM temp.new_peer_blobs)",
                [id],
            )?;
            ix.conn.execute(
                "INSERT OR IGNORE INTO peer_blobs (device_id, blob_id)
                 SELECT ?1, blob_id FROM temp.new_peer_blobs",
                [id],
            )?;
            ix.conn.execute("DELETE FROM temp.new_peer_blobs", [])?;
            ix.conn.execute(
                "INSERT INTO peer_sync (device_id, synced_at_ms) VALUES (?1, ?2)
                 ON CONFLICT(device_id) DO UPDATE SET synced_at_ms = excluded.synced_at_ms",
                params![id, now_ms as i64],
            )?;
            Ok(())
        })
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
