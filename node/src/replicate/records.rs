//! Record replication: two members reconcile their record sets and fetch what they lack.
//!
//! Each running node keeps its record set as a `reconcile::FingerprintTree` of items
//! (timestamp, record ID) — the timestamp is readable without a key (`element::timestamp_of`),
//! so a vault orders the set exactly as full devices do. The tree is built from the index at
//! start and kept up to date by reading the records added since the last row it saw, so
//! records a `photomesh scan` beside the node adds are picked up too.
//!
//! A sync, run by each end of a connection on its own schedule: open a stream with
//! `Request::Reconcile`, run a `reconcile::Session` over it (initiator here, responder
//! there), then fetch every record the session found missing with `Request::Fetch`. A record is stored only if it was asked
//! for, hashes to the ID asked for, and is a valid record of the set (a membership record's
//! signature verifies; a sealed record's envelope parses). A `full` device also opens photo
//! records into its query tables; a vault stores them sealed. Blobs move in `blobs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::lock::Mutex;
use std::time::{Duration, Instant};

use photomesh_protocol::element::timestamp_of;
use photomesh_protocol::lifecycle::LifecycleRecord;
use photomesh_protocol::membership::MembershipRecord;
use photomesh_protocol::messages::{MAX_FETCH, ReconcileFrame, Records, Request};
use photomesh_protocol::reconcile::{Bound, Config, Event, FingerprintTree, Item, Session, Store};
use photomesh_protocol::record::{Record, RecordError, RecordId, record_id};

use crate::clock::now_ms;
use crate::home::Home;
use crate::index::{IndexError, StoredRecord};
use crate::net::frame::{self, NetError};
use crate::replicate::error::SyncError;

/// Records read from the index at once when the set is refreshed.
const RECORDS_PAGE: i64 = 4096;
/// Records per `Records` frame when answering a fetch.
const RECORDS_PER_FRAME: usize = 256;
/// Records fetched in one sync past which the set is compacted.
const COMPACT_AFTER: usize = 1024;
/// The most record bytes in one frame (half the frame limit).
const FRAME_BYTES: usize = photomesh_protocol::messages::MAX_FRAME_LEN / 2;
/// Fetched records are stored in transactions of up to this many records (several frames)…
const STORE_RECORDS: usize = 2048;
/// …or this many bytes of them, whichever comes first. Each commit writes every index page
/// its records touched; records land all over the photo indexes, so one commit per frame
/// wrote most pages again for every 256 records.
const STORE_BYTES: usize = 4 << 20;

/// This node's record set as reconciliation sees it.
pub struct RecordSet {
    tree: Mutex<(FingerprintTree, i64)>,
}

impl RecordSet {
    /// Builds the set from every record in the index.
    pub fn load(home: &Home) -> Result<Arc<Self>, IndexError> {
        let set = Arc::new(Self {
            tree: Mutex::new("the record set", (FingerprintTree::new(), 0)),
        });
        set.refresh(home)?;
        Ok(set)
    }

    /// A set over an already built tree (the held-blob set, which is rebuilt per sync). Its
    /// row mark is past every row, so `refresh` never mixes records into it.
    pub(crate) fn from_tree(tree: FingerprintTree) -> Self {
        Self {
            tree: Mutex::new("the held-blob set", (tree, i64::MAX)),
        }
    }

    /// Adds the records the index gained since the last refresh. Returns how many.
    pub fn refresh(&self, home: &Home) -> Result<usize, IndexError> {
        let mut after = self.tree.lock().1;
        // An empty set (at start) is built in one go from the items, which are a fifth of
        // the sealed records' bytes; later ones are inserted.
        let mut first_load = (self.tree.lock().0.is_empty()).then(Vec::new);
        let mut added = 0;
        loop {
            let page = home.index.records_page(after, RECORDS_PAGE)?;
            let Some(&(last, _)) = page.last() else { break };
            after = last;
            // A record that is not valid never entered the index through sync; one from a
            // damaged index is simply not offered.
            let items = page
                .iter()
                .filter_map(|(_, record)| stored_item(record).ok());
            match first_load.as_mut() {
                Some(all) => all.extend(items),
                None => {
                    let mut tree = self.tree.lock();
                    for item in items {
                        added += usize::from(tree.0.insert(item));
                    }
                    tree.1 = tree.1.max(after);
                }
            }
        }
        if let Some(all) = first_load {
            let mut set = self.tree.lock();
            if set.0.is_empty() {
                set.0 = FingerprintTree::from_items(all);
                added = usize::try_from(set.0.len()).unwrap_or(usize::MAX);
            } else {
                // A refresh beside this one filled the set first.
                for item in all {
                    added += usize::from(set.0.insert(item));
                }
            }
            set.1 = set.1.max(after);
        }
        Ok(added)
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&FingerprintTree) -> T) -> T {
        f(&self.tree.lock().0)
    }

    /// Packs the set's nodes after many records arrived at once ([`FingerprintTree::compact`]).
    fn compact(&self) {
        self.tree.lock().0.compact();
    }
}

fn item_of(bytes: &[u8]) -> Result<Item, photomesh_protocol::record::RecordError> {
    Ok(Item::new(timestamp_of(bytes)?, record_id(bytes).0))
}

/// The set item of a record as the index keeps it: one kept as its fields needs no sealing
/// for that.
fn stored_item(record: &StoredRecord) -> Result<Item, photomesh_protocol::record::RecordError> {
    Ok(Item::new(record.timestamp_ms()?, record.id().0))
}

/// Reconciles with the peer on `connection` as the initiator and fetches what this node
/// lacks. Returns the number of records stored.
pub async fn sync(
    home: &tokio::sync::Mutex<Home>,
    set: &RecordSet,
    connection: &quinn::Connection,
) -> Result<usize, SyncError> {
    {
        let home = home.lock().await;
        set.refresh(&home)?;
    }
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
    frame::write_frame(&mut send, &Request::Reconcile).await?;
    let start = Instant::now();
    let mut session =
        set.with(|tree| Session::initiate(Config::default(), random_seed(), Duration::ZERO, tree))?;
    let (missing, _) = drive(
        &mut session,
        set,
        &mut send,
        &mut recv,
        start,
        Keep::Missing,
    )
    .await?;
    let _ = send.finish();
    fetch(home, set, connection, missing).await
}

/// Answers a peer's reconciliation on a stream it opened.
pub async fn serve_reconcile(
    home: &tokio::sync::Mutex<Home>,
    set: &RecordSet,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), SyncError> {
    {
        let home = home.lock().await;
        set.refresh(&home)?;
    }
    let mut session = Session::respond(Config::default(), random_seed(), Duration::ZERO)?;
    // What the responder lacks, the initiator's fetches will not bring; the responder's own
    // sync over the same connection (each end pulls) covers that direction.
    let _ = drive(
        &mut session,
        set,
        &mut send,
        &mut recv,
        Instant::now(),
        Keep::Nothing,
    )
    .await?;
    let _ = send.finish();
    Ok(())
}

/// Which of a session's findings [`drive`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The items this side lacks.
    Missing,
    /// Those, and the items the peer lacks (for what the peer holds).
    Both,
    /// Neither (a responder: its peer fetches what it lacks).
    Nothing,
}

/// The items of a session's snapshot that the peer lacks, as one bit per rank in the
/// snapshot: an eighth of a byte per item held, where a list of the items took forty (a
/// source's first sync with a new device lists every item it holds).
#[derive(Debug, Default)]
pub(crate) struct Lacks {
    /// Grown only to set a bit: empty while the peer lacks nothing.
    bits: Vec<u64>,
}

impl Lacks {
    fn add(&mut self, rank: u64) {
        let Ok(word) = usize::try_from(rank / 64) else {
            return;
        };
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1u64 << (rank % 64);
    }

    /// Whether the peer lacks the snapshot's item at `rank`.
    pub(crate) fn contains(&self, rank: u64) -> bool {
        usize::try_from(rank / 64)
            .ok()
            .and_then(|word| self.bits.get(word))
            .is_some_and(|w| w & (1u64 << (rank % 64)) != 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }
}

/// Runs a session over a stream until it ends; returns the IDs of the items this side lacks
/// and the items of `set` the peer lacks, as `keep` says. Frames are written one at a time as the
/// session makes them, so an answer listing a million items is never held whole.
pub(crate) async fn drive(
    session: &mut Session,
    set: &RecordSet,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    start: Instant,
    keep: Keep,
) -> Result<(Vec<[u8; 32]>, Lacks), SyncError> {
    let mut missing = Vec::new();
    let mut lacks = Lacks::default();
    loop {
        let now = start.elapsed();
        while let Some(frame) = set.with(|tree| session.poll_transmit(now, tree)) {
            frame::write_frame(send, &ReconcileFrame(frame)).await?;
            take_events(session, set, keep, &mut missing, &mut lacks);
        }
        take_events(session, set, keep, &mut missing, &mut lacks);
        if let Some(e) = session.error() {
            return Err(e.clone().into());
        }
        if session.is_done() {
            return Ok((missing, lacks));
        }
        let ReconcileFrame(frame) = frame::read_frame(recv).await?;
        let now = start.elapsed();
        set.with(|tree| session.handle_frame(now, tree, &frame))?;
    }
}

/// Moves the session's findings into `missing` and `lacks`, as `keep` says.
fn take_events(
    session: &mut Session,
    set: &RecordSet,
    keep: Keep,
    missing: &mut Vec<[u8; 32]>,
    lacks: &mut Lacks,
) {
    set.with(|tree| {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Missing(item) if keep != Keep::Nothing => missing.push(item.id),
                // An item the peer lacks is one of this side's: its rank names it.
                Event::PeerMissing(item) if keep == Keep::Both && tree.contains(&item) => {
                    lacks.add(tree.prefix(&Bound::at(&item)).0);
                }
                _ => {}
            }
        }
    });
}

/// Fetches records by ID and stores the valid ones.
///
/// In record-ID order: each fetch then asks for a run of neighbouring IDs, so the serving
/// index reads its ID index a leaf page after the next rather than one page per record, and
/// this index adds its IDs next to each other (a new device: at the end) rather than
/// rewriting a page per record — at a million records, random order made both ends read and
/// write pages several times per record.
async fn fetch(
    home: &tokio::sync::Mutex<Home>,
    set: &RecordSet,
    connection: &quinn::Connection,
    mut missing: Vec<[u8; 32]>,
) -> Result<usize, SyncError> {
    missing.sort_unstable();
    missing.dedup();
    let mut stored = 0;
    let mut chunks = missing.chunks(MAX_FETCH);
    let mut next = ask(connection, chunks.next()).await?;
    while let Some((mut left, mut recv)) = next.take() {
        // The next fetch is asked for before this one's records are stored: the serving
        // node reads it from its index while this one writes.
        next = ask(connection, chunks.next()).await?;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut pending_bytes = 0;
        while !left.is_empty() {
            // What arrived before a failure is kept, as when every frame was stored apart.
            let records = match frame::read_frame(&mut recv).await {
                Ok(Records(records)) => records,
                Err(e) => {
                    store_fetched(home, set, &pending).await?;
                    return Err(e.into());
                }
            };
            if records.is_empty() {
                break;
            }
            if records
                .iter()
                .any(|bytes| !left.remove(&record_id(bytes).0))
            {
                store_fetched(home, set, &pending).await?;
                return Err(SyncError::Protocol(
                    "it sent a record that was not asked for".into(),
                ));
            }
            pending_bytes += records.iter().map(Vec::len).sum::<usize>();
            pending.extend(records);
            if pending.len() >= STORE_RECORDS || pending_bytes >= STORE_BYTES {
                stored += store_fetched(home, set, &std::mem::take(&mut pending)).await?;
                pending_bytes = 0;
            }
        }
        stored += store_fetched(home, set, &pending).await?;
    }
    // Fetched by ID, the records entered the set (ordered by time) in random order.
    if stored > COMPACT_AFTER {
        set.compact();
    }
    Ok(stored)
}

/// Stores fetched records ([`store_records`]: one transaction) and brings the set up to date.
async fn store_fetched(
    home: &tokio::sync::Mutex<Home>,
    set: &RecordSet,
    records: &[Vec<u8>],
) -> Result<usize, SyncError> {
    if records.is_empty() {
        return Ok(0);
    }
    let home = home.lock().await;
    crate::lock::long_work(records.len(), || {
        let stored = store_records(&home, records)?;
        set.refresh(&home)?;
        Ok(stored)
    })
}

/// Asks the peer for the records of `chunk` (if any) on a stream of its own; returns the IDs
/// asked for and the stream their records come on.
async fn ask(
    connection: &quinn::Connection,
    chunk: Option<&[[u8; 32]]>,
) -> Result<Option<(BTreeSet<[u8; 32]>, quinn::RecvStream)>, SyncError> {
    let Some(chunk) = chunk else { return Ok(None) };
    let (mut send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
    frame::write_frame(&mut send, &Request::Fetch(chunk.to_vec())).await?;
    let _ = send.finish();
    Ok(Some((chunk.iter().copied().collect(), recv)))
}

/// The sealed bytes of records read from the index. One kept as its fields and sealed under
/// an epoch this handle's ring lacks (another process on this home took a key since) is
/// sealed after reading the ring again; failing that, it is not sent.
fn sealed_again(home: &mut Home, stored: Vec<StoredRecord>) -> Vec<Vec<u8>> {
    let mut reloaded = false;
    let mut out = Vec::with_capacity(stored.len());
    for record in stored {
        let mut sealed = record.sealed(&home.keys);
        if matches!(sealed, Err(RecordError::UnknownEpoch(_))) && !reloaded {
            reloaded = true;
            if let Err(e) = home.reload_keys() {
                tracing::warn!("reading the key ring again: {e}");
            }
            sealed = record.sealed(&home.keys);
        }
        match sealed {
            Ok(bytes) => out.push(bytes),
            Err(e) => tracing::warn!("record {:?} not sent: {e}", record.id()),
        }
    }
    out
}

/// Answers a fetch: the records asked for that this node holds, then an empty frame.
pub async fn serve_fetch(
    home: &tokio::sync::Mutex<Home>,
    ids: Vec<[u8; 32]>,
    mut send: quinn::SendStream,
) -> Result<(), SyncError> {
    if ids.len() > MAX_FETCH {
        return Err(SyncError::Protocol(format!(
            "it asked for {} records at once",
            ids.len()
        )));
    }
    // The index is read a frame's worth at a time, under one lock and one read
    // transaction, and the frame is sent without holding the lock.
    for chunk in ids.chunks(RECORDS_PER_FRAME) {
        let batch = {
            let mut home = home.lock().await;
            let stored = home.index.transaction(|index| {
                let mut stored = Vec::with_capacity(chunk.len());
                for id in chunk {
                    stored.extend(index.record(&RecordId(*id))?);
                }
                Ok::<_, IndexError>(stored)
            })?;
            sealed_again(&mut home, stored)
        };
        // Membership and lifecycle records may be 64 KiB each: a frame carries at most
        // FRAME_BYTES of them, well inside the frame limit.
        let mut frame_batch = Vec::new();
        let mut bytes = 0;
        for record in batch {
            if bytes + record.len() > FRAME_BYTES && !frame_batch.is_empty() {
                frame::write_frame(&mut send, &Records(std::mem::take(&mut frame_batch))).await?;
                bytes = 0;
            }
            bytes += record.len();
            frame_batch.push(record);
        }
        if !frame_batch.is_empty() {
            frame::write_frame(&mut send, &Records(frame_batch)).await?;
        }
    }
    frame::write_frame(&mut send, &Records(Vec::new())).await?;
    let _ = send.finish();
    Ok(())
}

/// Stores the valid records among `records` (a frame from a peer) in one transaction: one
/// commit per frame rather than per record. A full device opens photo records into its query
/// tables; a record it cannot open is kept sealed. Returns how many were valid (one already
/// held counts, and is not stored twice).
pub fn store_records<B: AsRef<[u8]>>(home: &Home, records: &[B]) -> Result<usize, IndexError> {
    let now = now_ms();
    let mut changes_trash = false;
    let stored = home
        .index
        .transaction(|index| -> Result<usize, IndexError> {
            let mut stored = 0;
            for bytes in records {
                let bytes = bytes.as_ref();
                let Ok(item) = item_of(bytes) else {
                    continue;
                };
                let id = RecordId(item.id);
                if MembershipRecord::is_membership(bytes) || LifecycleRecord::is_lifecycle(bytes) {
                    // What the lifecycle records say depends on them and on the members.
                    changes_trash = true;
                    index.add_record(&id, bytes, now)?;
                } else {
                    match Record::open(bytes, &home.keys) {
                        Ok(Record::Photo(photo)) => {
                            index.add_photo_record(&id, bytes, &photo, &home.keys, now)?
                        }
                        Ok(Record::Move(moved)) => {
                            index.add_move_record(&id, bytes, &moved, now)?
                        }
                        // A vault, or an epoch this device does not hold: kept sealed, served on.
                        Err(_) => {
                            index.add_record(&id, bytes, now)?;
                        }
                    }
                }
                stored += 1;
            }
            Ok(stored)
        })?;
    if changes_trash && let Err(e) = crate::mesh::trash::refresh(home) {
        tracing::warn!("bringing the trash up to date: {e}");
    }
    Ok(stored)
}

/// Opens the photo and move records kept sealed because this device lacked their epoch
/// when they came, after new epochs arrived by key share. Walks the sealed ones a page at a
/// time; returns how many it opened.
pub fn open_held_records(home: &Home) -> Result<u64, IndexError> {
    const PAGE: i64 = 1024;
    let now = now_ms();
    let (mut after, mut opened) = (0, 0);
    loop {
        let page = home.index.unopened_records(after, PAGE)?;
        let Some(&(last, ..)) = page.last() else {
            return Ok(opened);
        };
        home.index.transaction(|index| -> Result<(), IndexError> {
            for (_, id, bytes) in &page {
                match Record::open(bytes, &home.keys) {
                    Ok(Record::Photo(photo)) => {
                        index.add_photo_record(id, bytes, &photo, &home.keys, now)?
                    }
                    Ok(Record::Move(moved)) => index.add_move_record(id, bytes, &moved, now)?,
                    Err(_) => continue,
                }
                opened += 1;
            }
            Ok(())
        })?;
        after = last;
    }
}

/// A seed for a session's split points: they only need to differ between sessions.
pub(crate) fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // A failed OS generator falls back to the clock, which still differs each session.
    if getrandom::fill(&mut b).is_err() {
        return now_ms();
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::progress::Silent;

    fn device(dir: &std::path::Path, name: &str) -> Home {
        crate::mesh::create_device(&dir.join(name), name, None, 1).unwrap()
    }

    #[test]
    fn lacks_hold_each_rank_once() {
        let mut lacks = Lacks::default();
        assert!(lacks.is_empty() && !lacks.contains(0));
        for rank in [0, 63, 64, 1000, 64, 0] {
            lacks.add(rank);
        }
        assert!(!lacks.is_empty());
        assert_eq!(lacks.bits.iter().map(|w| w.count_ones()).sum::<u32>(), 4);
        for rank in [0, 63, 64, 1000] {
            assert!(lacks.contains(rank), "{rank}");
        }
        for rank in [1, 62, 65, 999, 1001, u64::MAX] {
            assert!(!lacks.contains(rank), "{rank}");
        }
    }

    #[test]
    fn only_valid_records_of_the_set_are_stored_and_the_set_grows_by_them() {
        let dir = tempfile::tempdir().unwrap();
        let laptop = device(dir.path(), "laptop");
        let photos = dir.path().join("photos");
        crate::demo::samples::write_library(&photos, 1, 3).unwrap();
        crate::library::folders::add(&laptop, &photos, None).unwrap();
        crate::library::scan::scan(&laptop, &mut Silent).unwrap();
        let sealed: Vec<Vec<u8>> = laptop
            .index
            .records_after(0)
            .unwrap()
            .into_iter()
            .map(|(_, record)| record.sealed(&laptop.keys).unwrap())
            .filter(|bytes| !MembershipRecord::is_membership(bytes))
            .collect();
        assert_eq!(sealed.len(), 3, "a JPEG, a PNG and an MP4");

        // Another device, holding another key: it keeps them sealed, as a vault would.
        let nas = device(dir.path(), "nas");
        let set = RecordSet::load(&nas).unwrap();
        let before = set.with(|tree| tree.items().len());
        let mut damaged = sealed[0].clone();
        damaged[2] ^= 1;
        let offered = [
            sealed[0].clone(),
            b"pmmr not a membership record".to_vec(),
            damaged,
            b"junk".to_vec(),
        ];
        assert_eq!(store_records(&nas, &offered).unwrap(), 1);
        assert_eq!(store_records(&nas, &sealed[..1]).unwrap(), 1, "still valid");
        assert_eq!(set.refresh(&nas).unwrap(), 1, "but held once");
        assert_eq!(set.with(|tree| tree.items().len()), before + 1);
        assert_eq!(set.refresh(&nas).unwrap(), 0, "nothing new since");
    }
}
