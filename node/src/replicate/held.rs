//! Which blobs this device holds and wants: the [`HoldPolicy`], the in-memory held set
//! ([`HeldBlobs`]), and the [`BlobEngine`] a running node shares between its links.

use std::collections::HashSet;
use std::sync::Arc;

use crate::lock::Mutex;

use photomesh_protocol::reconcile::{FingerprintTree, Item, Store};
use photomesh_protocol::seal::BlobId;

use crate::blob::direct::Pool;
use crate::home::Home;
use crate::index::IndexError;
use crate::net::control::DiskShort;
use crate::replicate::fetcher::{MAX_IN_FLIGHT_BYTES, Wanted};
use crate::replicate::records::RecordSet;

/// Which blobs a device keeps a copy of (`photomesh run --hold`); a vault holds all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoldPolicy {
    /// Every blob of the library (the default).
    #[default]
    All,
    /// Only the blobs of the photos this device added; its originals are still served.
    Own,
}

/// Set in `meta` once the photo rows of older records have their adder and kind.
const BACKFILLED_META: &str = "photos_backfilled";

/// Where the policy is kept in the index's `meta` table.
pub(crate) const HOLD_META: &str = "hold";

impl HoldPolicy {
    /// The policy's name, as `--hold` and `status` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Own => "own",
        }
    }

    /// Parses `all` or `own`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "own" => Some(Self::Own),
            _ => None,
        }
    }

    /// The policy in force on a device: a vault (which reads no record) holds all.
    pub fn of(home: &Home) -> Result<Self, IndexError> {
        if home.keys.current().is_none() {
            return Ok(Self::All);
        }
        Ok(home
            .index
            .meta(HOLD_META)?
            .as_deref()
            .and_then(Self::parse)
            .unwrap_or_default())
    }

    /// Sets the policy of a device. A vault cannot hold only its own photos: it adds none.
    pub fn set(self, home: &Home) -> Result<(), String> {
        if self == Self::Own && home.keys.current().is_none() {
            return Err(
                "a vault holds every blob of the library (it adds no photos of its \
                 own); run it without `--hold own`"
                    .into(),
            );
        }
        home.index
            .set_meta(HOLD_META, self.name())
            .map_err(|e| e.to_string())
    }
}

/// The set of blobs this device holds — stored replicas, and its own originals that still
/// match their records — kept in memory: loaded once, then grown as blobs are stored and as
/// scans (in this process or beside it) record originals.
///
/// Items carry no time (0): two devices holding the same blobs hold equal sets, which is what
/// keeps reconciling them cheap. How fresh a device's checks are travels in its hello
/// ([`BlobEngine::verified_since`]).
pub struct HeldBlobs(pub(crate) Mutex<HeldInner>);

pub(crate) struct HeldInner {
    pub(crate) tree: FingerprintTree,
    /// The last `records` row whose originals are in the set.
    pub(crate) mark: i64,
    /// The index's count of sources found gone when the set was loaded.
    pub(crate) gone_version: Option<String>,
}

impl HeldBlobs {
    /// Loads the set from the index.
    pub fn load(home: &Home) -> Result<Self, IndexError> {
        Ok(Self(Mutex::new("the held blobs", HeldInner::load(home)?)))
    }

    /// Adds the originals of records a scan added since the last look; after originals were
    /// found gone from their folders (which are no longer held unless stored), reloads.
    pub fn refresh(&self, home: &Home) -> Result<(), IndexError> {
        let gone_version = home.index.meta(crate::index::GONE_VERSION)?;
        if self.0.lock().gone_version != gone_version {
            let fresh = HeldInner::load(home)?;
            *self.0.lock() = fresh;
            return Ok(());
        }
        let after = self.0.lock().mark;
        let (mark, new) = home.index.originals_after(after)?;
        {
            let mut held = self.0.lock();
            held.mark = held.mark.max(mark);
            for blob in new {
                held.add(blob);
            }
        }
        Ok(())
    }

    /// Adds a blob that is now stored.
    pub fn insert(&self, blob: BlobId) {
        self.0.lock().add(blob);
    }

    /// Packs the set's nodes after a round that stored many blobs
    /// ([`FingerprintTree::compact`]).
    pub(crate) fn compact(&self) {
        self.0.lock().tree.compact();
    }

    /// Whether the set holds a blob.
    pub fn contains(&self, blob: &BlobId) -> bool {
        self.0.lock().tree.contains(&Item::new(0, blob.0))
    }

    /// How many blobs the set holds.
    pub fn len(&self) -> usize {
        usize::try_from(self.0.lock().tree.len()).unwrap_or(usize::MAX)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy for one reconciliation session, which must see a set that does not change
    /// under it (it shares the set's nodes until either changes).
    pub(crate) fn snapshot(&self) -> RecordSet {
        RecordSet::from_tree(self.0.lock().tree.clone())
    }
}

impl HeldInner {
    fn load(home: &Home) -> Result<Self, IndexError> {
        // Read first: a change after it reloads again on the next refresh.
        let gone_version = home.index.meta(crate::index::GONE_VERSION)?;
        let mark = home.index.last_record_row()?;
        let tree = home.index.with_held_blobs(|blobs| {
            FingerprintTree::from_sorted(blobs.map(|b| Item::new(0, b.0)))
        })?;
        Ok(Self {
            tree,
            mark,
            gone_version,
        })
    }

    pub(crate) fn add(&mut self, blob: BlobId) {
        self.tree.insert(Item::new(0, blob.0));
    }
}

/// How often a running node reads its storage afresh for its hello.
const STORAGE_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The blob engine's state in a running node: what it holds and what it wants.
pub struct BlobEngine {
    /// The blobs this device holds.
    pub held: HeldBlobs,
    /// Which blobs it keeps copies of.
    pub policy: HoldPolicy,
    /// The blobs being fetched: each by one fetch, which asks every peer holding it.
    pub(crate) fetching: Arc<Mutex<HashSet<[u8; 32]>>>,
    /// Buffers for received blobs, reused.
    pub(crate) buffers: Arc<Pool>,
    /// Free space kept on the blob store's disk: no blob is fetched into it. `None`: 5% of
    /// the disk, at most 1 GiB.
    pub reserve: Option<u64>,
    /// The most bytes of blobs stored (`[storage] max_bytes`); `None`: no cap.
    pub quota: Option<u64>,
    /// How long deleted photos stay in the trash: their blobs are not fetched once past it.
    pub retention: std::time::Duration,
    /// How long a purge another device signed is held before it is acted on.
    pub purge_hold: std::time::Duration,
    /// Blobs waiting for room, when the disk is nearly full.
    pub short: Mutex<Option<DiskShort>>,
    /// What the last hello said of this device's storage, and when it was read: the sum of
    /// the stored blobs' sizes is a scan of the blob table, not to be made every round.
    storage_read: Mutex<
        Option<(
            std::time::Instant,
            photomesh_protocol::messages::StorageReport,
        )>,
    >,
}

impl BlobEngine {
    /// Loads the held-blob set and the hold policy.
    pub fn load(home: &Home) -> Result<Self, IndexError> {
        let policy = HoldPolicy::of(home)?;
        // Photo records indexed before the index kept their adder and kind: filled in once
        // (records indexed since carry both), not searched for at every start.
        if home.index.meta(BACKFILLED_META)?.is_none() {
            for row in home.index.photos_without_adder()? {
                if let Ok(photo) = row.record.open_photo(&home.keys) {
                    home.index.set_added_by(&row.record_id, &photo)?;
                }
            }
            home.index.set_meta(BACKFILLED_META, "1")?;
        }
        Ok(Self {
            held: HeldBlobs::load(home)?,
            policy,
            fetching: Arc::default(),
            buffers: Arc::new(Pool::new(MAX_IN_FLIGHT_BYTES as usize)),
            reserve: None,
            quota: None,
            retention: crate::home::config::DEFAULT_TRASH_RETENTION,
            purge_hold: crate::home::config::DEFAULT_PURGE_HOLD,
            short: Mutex::new("the disk-space state", None),
            storage_read: Mutex::new("the storage last read", None),
        })
    }

    /// Since when every copy this device holds was verified (ms since the epoch: the oldest
    /// check among its stored blobs and present originals), as its hello tells it; `None`
    /// when it holds nothing or the index could not say.
    pub fn verified_since(&self, home: &Home) -> Option<u64> {
        home.index.held_verified_since().ok().flatten()
    }

    /// This device's storage, as its hello tells it: read at most every
    /// [`STORAGE_READ_EVERY`].
    pub fn storage(&self, home: &Home) -> Option<photomesh_protocol::messages::StorageReport> {
        if let Some((at, report)) = *self.storage_read.lock()
            && at.elapsed() < STORAGE_READ_EVERY
        {
            return Some(report);
        }
        let report = photomesh_protocol::messages::StorageReport {
            used: home.index.stored_bytes().ok()?,
            free: home.blobs.space().ok()?.0,
            quota: self.quota,
        };
        *self.storage_read.lock() = Some((std::time::Instant::now(), report));
        Some(report)
    }

    /// The part of `wanted` that fits on the blob store's disk above the reserve, and within
    /// the quota (blobs of unknown size are taken while there is room at all), at most
    /// `cap` of them, and whether more fit than that (left for the next round, unchecked
    /// while none has failed to fit). When some do not fit, says so once (and in `status`)
    /// until they do.
    pub(crate) fn fit_to_disk(
        &self,
        home: &Home,
        wanted: Vec<BlobId>,
        cap: usize,
    ) -> (Vec<Wanted>, bool) {
        // A reserve of 0 turns the disk check off: a full disk is then met as a write error.
        let (free, disk) = match home.blobs.space() {
            Ok(space) if self.reserve != Some(0) => space,
            Ok(_) => (u64::MAX, u64::MAX),
            Err(e) => {
                tracing::debug!("reading the free space of the blob store's disk: {e}");
                (u64::MAX, u64::MAX)
            }
        };
        let reserve = match self.reserve {
            _ if disk == u64::MAX => 0,
            Some(reserve) => reserve,
            None => crate::home::config::default_reserve(disk),
        };
        let on_disk = free.saturating_sub(reserve);
        let (quota, stored) = match self.quota {
            Some(quota) => (Some(quota), home.index.stored_bytes().unwrap_or(0)),
            None => (None, 0),
        };
        let in_quota = quota.map_or(u64::MAX, |q| q.saturating_sub(stored));
        let budget = on_disk.min(in_quota);
        // Which limit binds, for what is said.
        let quota = quota.filter(|_| in_quota < on_disk);
        let (mut used, mut waiting, mut bytes_waiting) = (0u64, 0u64, 0u64);
        let (mut taken, mut more) = (0, false);
        let mut fits = Vec::with_capacity(wanted.len().min(cap));
        for blob in wanted {
            if taken >= cap && waiting == 0 {
                more = true;
                break;
            }
            let hint = home.index.blob_size_hint(&blob).ok().flatten();
            let size = hint.unwrap_or(0);
            if budget > 0 && used.saturating_add(size) <= budget {
                used += size;
                taken += 1;
                more |= taken > cap;
                if taken <= cap {
                    fits.push(Wanted { blob, size: hint });
                }
            } else {
                waiting += 1;
                bytes_waiting += size;
            }
        }
        let take = (fits, more);
        let mut short = self.short.lock();
        if waiting == 0 {
            match short.take() {
                Some(DiskShort { quota: Some(_), .. }) => {
                    tracing::info!("there is room within the quota again: fetching blobs");
                }
                Some(_) => tracing::info!("there is room on the disk again: fetching blobs"),
                None => {}
            }
            return take;
        }
        if short.is_none() {
            match quota {
                Some(quota) => tracing::warn!(
                    "this device stores {} MB of its {} MB quota ([storage] max_bytes); \
                     {waiting} blobs ({} MB) are left to other devices until there is room \
                     (raise max_bytes); records are still received and blobs served",
                    stored / 1_000_000,
                    quota / 1_000_000,
                    bytes_waiting / 1_000_000
                ),
                None => tracing::warn!(
                    "the disk is nearly full: {} MB free, {} MB kept in reserve; {waiting} \
                     blobs ({} MB) wait until there is room (free some space, or lower \
                     [storage] reserve); records are still received and blobs served",
                    free / 1_000_000,
                    reserve / 1_000_000,
                    bytes_waiting / 1_000_000
                ),
            }
        }
        *short = Some(DiskShort {
            free,
            reserve,
            quota,
            used: stored,
            blobs_waiting: waiting,
            bytes_waiting,
        });
        take
    }
}

/// A blob being coordinated by one fetch: removed from the engine's set when dropped.
pub(crate) struct Coordinating(pub(crate) Arc<Mutex<HashSet<[u8; 32]>>>, pub(crate) BlobId);
impl Coordinating {
    /// Takes the blob for this fetch, unless another fetch coordinates it already.
    pub(crate) fn take(set: &Arc<Mutex<HashSet<[u8; 32]>>>, blob: BlobId) -> Option<Self> {
        let mut held = set.lock();
        held.insert(blob.0).then(|| Self(set.clone(), blob))
    }
}
impl Drop for Coordinating {
    fn drop(&mut self) {
        {
            let mut set = self.0.lock();
            set.remove(&self.1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_takes_at_most_its_cap_and_counts_every_blob_that_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("vault"), "vault", None, 1).unwrap();
        let mut engine = BlobEngine::load(&home).unwrap();
        let blobs: Vec<BlobId> = (0..10u8).map(|n| BlobId([n; 32])).collect();
        for blob in &blobs {
            home.index.add_blob(blob, 1000, &[]).unwrap();
        }
        let waiting = |engine: &BlobEngine| engine.short.lock().map(|s| s.blobs_waiting);
        // The blobs taken, each with the size the index knows (1000 bytes, stored).
        let fit = |engine: &BlobEngine, cap| {
            let (wanted, more) = engine.fit_to_disk(&home, blobs.clone(), cap);
            assert!(wanted.iter().all(|w| w.size == Some(1000)), "{wanted:?}");
            (wanted.into_iter().map(|w| w.blob).collect::<Vec<_>>(), more)
        };

        // Room for all: the cap binds, and the rest is left unchecked for the next round.
        assert_eq!(fit(&engine, 4), (blobs[..4].to_vec(), true));
        assert_eq!(fit(&engine, 10), (blobs.clone(), false));
        assert_eq!(waiting(&engine), None);

        // Room for three (a quota): within the cap, what does not fit is counted, every one.
        engine.quota = Some(3500);
        assert_eq!(fit(&engine, 10), (blobs[..3].to_vec(), false));
        assert_eq!(waiting(&engine), Some(7));
        // The cap reached while there is room: the rest is not looked at.
        assert_eq!(fit(&engine, 2), (blobs[..2].to_vec(), true));
        // Room for one, cap two: the second does not fit, so every later one is counted.
        engine.quota = Some(1500);
        assert_eq!(fit(&engine, 2), (blobs[..1].to_vec(), false));
        assert_eq!(waiting(&engine), Some(9));
    }
}
