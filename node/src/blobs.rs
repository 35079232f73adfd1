//! Blob replication: which blobs each device holds, and moving them with BLAKE3 verified
//! streaming (bao, through `bao-tree`).
//!
//! A device *holds* a blob when its blob store has it, or when it is the source of the photo
//! and still has the original file: it serves those originals sealed on the fly
//! ([`SealedOriginal`]; sealing is deterministic, so the bytes are the blob's). The running
//! node keeps its held set in memory ([`HeldBlobs`]): loaded once, grown as blobs are stored
//! and as scans record originals. The sets of held blobs are reconciled like the record
//! sets; a device that lacks a blob a peer holds fetches it, if its [`HoldPolicy`] wants it
//! (`full` devices hold every blob unless set to hold only their own photos; a vault holds
//! every blob).
//!
//! On the wire a blob is its bao encoding with 16 KiB chunk groups: the receiver checks every
//! chunk group against the blob ID before writing it, so a peer that sends bad data is caught
//! within 16 KiB and nothing unverified is stored; that peer is disconnected, recorded in the
//! index and not asked for blobs for [`BAD_PEER_COOLDOWN`].
//!
//! Throughput: up to [`MAX_IN_FLIGHT_BLOBS`] blobs are in flight from a peer at once, one
//! stream each. A small blob is received whole into memory (a byte budget bounds them),
//! decoded and verified off the async threads — its outboard rebuilt from the verified
//! parent hashes — and staged in the blob store with one write. A large one streams into
//! `blobs/partial/` with its verified length persisted every 4 MiB, so a killed node resumes
//! it; it is hashed once more as a whole and moved into staging. Staged blobs are committed
//! in batches: one filesystem flush on each side of the renames, one index transaction, and
//! only then are they marked stored.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::{ReadAt, Size};
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use photomesh_protocol::keys::ContentKey;
use photomesh_protocol::messages::{BlobHeader, Request};
use std::collections::BTreeSet;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::reconcile::{Bound, Config, FingerprintTree, Item, Session, Store};
use photomesh_protocol::record::Record;
use photomesh_protocol::seal::{BlobId, Header, SEALED_SEGMENT_LEN, SegmentCipher};

use crate::blobstore::{BlobStore, Staged};
use crate::home::Home;
use crate::index::IndexError;
use crate::net::{self, NetError};
use crate::sealed::OUTBOARD_BLOCK_SIZE;
use crate::sync::{RecordSet, SyncError, drive, random_seed};
use crate::transfers::{TransferHandle, Transfers};

/// A blob sealed on the fly from its original file, readable at any offset.
pub struct SealedOriginal {
    file: File,
    cipher: SegmentCipher,
    /// The last sealed segment, since bao reads each segment in several chunk groups.
    cache: Mutex<Option<(u64, Vec<u8>)>>,
}

impl SealedOriginal {
    /// Opens the original of a photo whose plaintext hash and size are known.
    pub fn open(
        path: &Path,
        content_key: &ContentKey,
        plaintext_hash: &[u8; 32],
        size: u64,
    ) -> io::Result<Self> {
        let file = File::open(path)?;
        if file.metadata()?.len() != size {
            return Err(io::Error::other(
                "the original changed size since it was recorded",
            ));
        }
        Ok(Self {
            file,
            cipher: SegmentCipher::for_sealing(&content_key.file_key(plaintext_hash), size),
            cache: Mutex::new(None),
        })
    }

    /// Copies the bytes of sealed segment `index` from offset `within` into `out`, sealing
    /// the segment first unless it is the one sealed last. Returns how many bytes it copied.
    fn copy_from_segment(&self, index: u64, within: usize, out: &mut [u8]) -> io::Result<usize> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("a thread sealing this original panicked"))?;
        if cache.as_ref().is_none_or(|(i, _)| *i != index) {
            let header = self.cipher.header();
            let len = header
                .segment_plaintext_len(index)
                .ok_or_else(|| io::Error::other("read past the end of the blob"))?;
            // Reuse the previous segment's buffer: one allocation per blob, not per segment.
            let mut buf = cache.take().map(|(_, buf)| buf).unwrap_or_default();
            buf.clear();
            buf.resize(len, 0);
            let start = index * photomesh_protocol::seal::SEGMENT_LEN as u64;
            std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, start)?;
            self.cipher
                .seal_segment(index, &mut buf)
                .map_err(io::Error::other)?;
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

/// Which blobs a device keeps a copy of (`photomesh run --hold`); a vault holds all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoldPolicy {
    /// Every blob of the library (the default).
    #[default]
    All,
    /// Only the blobs of the photos this device added; its originals are still served.
    Own,
}

/// Where the policy is kept in the index's `meta` table.
const HOLD_META: &str = "hold";

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
pub struct HeldBlobs(Mutex<HeldInner>);

struct HeldInner {
    tree: FingerprintTree,
    ids: HashSet<[u8; 32]>,
    /// The last `records` row whose originals are in the set.
    mark: i64,
}

impl HeldBlobs {
    /// Loads the set from the index.
    pub fn load(home: &Home) -> Result<Self, IndexError> {
        let mark = home.index.last_record_row()?;
        let ids: HashSet<[u8; 32]> = home.index.held_blobs()?.into_iter().map(|b| b.0).collect();
        let tree = FingerprintTree::from_items(ids.iter().map(|id| Item::new(0, *id)));
        Ok(Self(Mutex::new(HeldInner { tree, ids, mark })))
    }

    /// Adds the originals of records a scan added since the last look.
    pub fn refresh(&self, home: &Home) -> Result<(), IndexError> {
        let after = self.0.lock().map(|h| h.mark).unwrap_or(0);
        let (mark, new) = home.index.originals_after(after)?;
        if let Ok(mut held) = self.0.lock() {
            held.mark = held.mark.max(mark);
            for blob in new {
                held.add(blob);
            }
        }
        Ok(())
    }

    /// Adds a blob that is now stored.
    pub fn insert(&self, blob: BlobId) {
        if let Ok(mut held) = self.0.lock() {
            held.add(blob);
        }
    }

    /// Whether the set holds a blob.
    pub fn contains(&self, blob: &BlobId) -> bool {
        self.0.lock().is_ok_and(|h| h.ids.contains(&blob.0))
    }

    /// How many blobs the set holds.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |h| h.ids.len())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy for one reconciliation session, which must see a set that does not change
    /// under it.
    fn snapshot(&self) -> RecordSet {
        let items = self.0.lock().map(|h| h.tree.items()).unwrap_or_default();
        RecordSet::from_tree(FingerprintTree::from_items(items))
    }
}

impl HeldInner {
    fn add(&mut self, blob: BlobId) {
        if self.ids.insert(blob.0) {
            self.tree.insert(Item::new(0, blob.0));
        }
    }
}

/// The blob engine's state in a running node: what it holds and what it wants.
pub struct BlobEngine {
    /// The blobs this device holds.
    pub held: HeldBlobs,
    /// Which blobs it keeps copies of.
    pub policy: HoldPolicy,
}

impl BlobEngine {
    /// Loads the held-blob set and the hold policy.
    pub fn load(home: &Home) -> Result<Self, IndexError> {
        let policy = HoldPolicy::of(home)?;
        if policy == HoldPolicy::Own {
            // Photo records indexed before the index kept their adder.
            for row in home.index.photos_without_adder()? {
                if let Ok(Record::Photo(photo)) = Record::open(&row.sealed, &home.keys) {
                    home.index.set_added_by(&row.record_id, &photo.added_by)?;
                }
            }
        }
        Ok(Self {
            held: HeldBlobs::load(home)?,
            policy,
        })
    }
}

/// How long a peer caught sending bad blob data is not asked for blobs.
pub const BAD_PEER_COOLDOWN: Duration = Duration::from_secs(10 * 60);
/// The most blobs in flight from one peer at once.
pub const MAX_IN_FLIGHT_BLOBS: usize = 64;
/// The most bytes of small blobs buffered in memory at once.
const MAX_IN_FLIGHT_BYTES: u64 = 64 << 20;
/// Blobs up to this size are received in memory and written once; larger ones stream into
/// a partial file with persisted progress.
const SMALL_BLOB: u64 = 4 << 20;
/// Received blobs are made durable and recorded in batches of at most this many…
const BATCH_BLOBS: usize = 1024;
/// …or after this long.
const BATCH_AFTER: Duration = Duration::from_millis(200);

/// Reconciles the held-blob sets as the initiator and fetches every blob this device lacks
/// and its hold policy wants, many at once. Every blob received is registered in
/// `transfers`. Returns the number of blobs stored.
pub async fn sync_blobs(
    home: &tokio::sync::Mutex<Home>,
    connection: &quinn::Connection,
    peer: &DeviceId,
    known: &PeerHoldings,
    engine: &BlobEngine,
    transfers: &Transfers,
) -> Result<usize, SyncError> {
    let (store, partial_dir, me) = {
        let home = home.lock().await;
        if let Some(bad) = home.index.last_bad(peer)?
            && crate::scan::now_ms().saturating_sub(bad.at_ms)
                < BAD_PEER_COOLDOWN.as_millis() as u64
        {
            return Ok(0);
        }
        engine.held.refresh(&home)?;
        (
            home.blobs.clone(),
            home.path.join("blobs/partial"),
            home.device.device_id(),
        )
    };
    let set = engine.held.snapshot();
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(net::describe_lost(&e)))?;
    net::write_frame(&mut send, &Request::ReconcileBlobs).await?;
    let mut session = set
        .with(|tree| Session::initiate(Config::default(), random_seed(), Duration::ZERO, tree))
        .ok_or_else(|| SyncError::Protocol("blob set unavailable".into()))??;
    let (missing, peer_missing) =
        drive(&mut session, &set, &mut send, &mut recv, Instant::now()).await?;
    let _ = send.finish();
    // What the peer holds: ours, less what it lacks, plus what we lack.
    let (count, sum) = set
        .with(|tree| tree.prefix(&Bound::MAX))
        .ok_or_else(|| SyncError::Protocol("blob set unavailable".into()))?;
    let mut ours = sum.to_bytes().to_vec();
    ours.extend_from_slice(&count.to_le_bytes());
    if known.changed(peer, &ours, !missing.is_empty() || !peer_missing.is_empty()) {
        let lacks: BTreeSet<[u8; 32]> = peer_missing.iter().map(|i| i.id).collect();
        let mut holds: BTreeSet<[u8; 32]> = set
            .with(FingerprintTree::items)
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.id)
            .filter(|id| !lacks.contains(id))
            .collect();
        holds.extend(missing.iter().map(|i| i.id));
        let home = home.lock().await;
        home.index.set_peer_blobs(
            peer,
            holds.iter().map(|id| BlobId(*id)),
            crate::scan::now_ms(),
        )?;
    }
    let mut wanted: Vec<BlobId> = missing.iter().map(|i| BlobId(i.id)).collect();
    if engine.policy == HoldPolicy::Own && !wanted.is_empty() {
        let own = home.lock().await.index.blobs_added_by(&me)?;
        let before = wanted.len();
        wanted.retain(|b| own.contains(b));
        tracing::info!(
            skipped = before - wanted.len(),
            "blobs left to other devices by the hold policy (own)"
        );
    }
    if wanted.is_empty() {
        return Ok(0);
    }
    let fetcher = Arc::new(Fetcher {
        connection: connection.clone(),
        peer: *peer,
        store,
        partial_dir,
        transfers: transfers.clone(),
        bytes: tokio::sync::Semaphore::new((MAX_IN_FLIGHT_BYTES >> 10) as usize),
    });
    fetch_all(home, engine, fetcher, wanted).await
}

/// Answers a peer's blob-set reconciliation.
pub async fn serve_reconcile_blobs(
    home: &tokio::sync::Mutex<Home>,
    held: &HeldBlobs,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), SyncError> {
    held.refresh(&*home.lock().await)?;
    let set = held.snapshot();
    let mut session = Session::respond(Config::default(), random_seed(), Duration::ZERO)?;
    drive(&mut session, &set, &mut send, &mut recv, Instant::now()).await?;
    let _ = send.finish();
    Ok(())
}

/// What this device last told the index each peer holds, by a fingerprint of its own
/// held set at the time and whether the two sets differed: the peer's holdings are
/// rewritten unless both rounds found the peer holding exactly the same set as this device.
#[derive(Default)]
pub struct PeerHoldings(Mutex<std::collections::BTreeMap<DeviceId, (Vec<u8>, bool)>>);

impl PeerHoldings {
    fn changed(&self, peer: &DeviceId, ours: &[u8], differed: bool) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        // Equal sets now and last time, with ours unchanged: the peer's set is unchanged.
        // (Equal now but different last time means the peer's set changed meanwhile.)
        if !differed && map.get(peer).is_some_and(|(last, d)| !d && last == ours) {
            return false;
        }
        map.insert(*peer, (ours.to_vec(), differed));
        true
    }
}

/// What the fetches from one peer share.
struct Fetcher {
    connection: quinn::Connection,
    peer: DeviceId,
    store: BlobStore,
    partial_dir: PathBuf,
    transfers: Transfers,
    /// KiB of small blobs that may be buffered at once.
    bytes: tokio::sync::Semaphore,
}

/// A blob received and verified, staged in the store, waiting for its batch.
struct Received {
    staged: Staged,
    sealed_len: u64,
    outboard: Vec<u8>,
}

enum FetchError {
    NotHere,
    /// The peer sent data that does not match the blob ID.
    Bad(BlobId, String),
    Sync(SyncError),
}

impl<E: Into<SyncError>> From<E> for FetchError {
    fn from(e: E) -> Self {
        Self::Sync(e.into())
    }
}

/// Fetches blobs with up to [`MAX_IN_FLIGHT_BLOBS`] streams at once, and stores them in
/// batches: one filesystem flush and one index transaction per batch.
async fn fetch_all(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    fetcher: Arc<Fetcher>,
    wanted: Vec<BlobId>,
) -> Result<usize, SyncError> {
    let mut queue = wanted.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    let mut batch: Vec<Received> = Vec::new();
    let mut batch_started = Instant::now();
    let mut stored = 0;
    let mut failure: Option<FetchError> = None;
    loop {
        while failure.is_none() && tasks.len() < MAX_IN_FLIGHT_BLOBS {
            let Some(blob) = queue.next() else { break };
            if engine.held.contains(&blob) {
                continue;
            }
            tasks.spawn(fetch_one(fetcher.clone(), blob));
        }
        if tasks.is_empty() {
            break;
        }
        let joined = if batch.is_empty() {
            tasks.join_next().await
        } else {
            let left = BATCH_AFTER.saturating_sub(batch_started.elapsed());
            match tokio::time::timeout(left, tasks.join_next()).await {
                Ok(joined) => joined,
                Err(_) => {
                    stored += store_batch(home, engine, &fetcher.store, &mut batch).await?;
                    continue;
                }
            }
        };
        let Some(joined) = joined else { break };
        match joined.map_err(|e| SyncError::Protocol(e.to_string())) {
            Ok(Ok(received)) => {
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                batch.push(received);
                if batch.len() >= BATCH_BLOBS {
                    stored += store_batch(home, engine, &fetcher.store, &mut batch).await?;
                }
            }
            Ok(Err(FetchError::NotHere)) => {}
            Ok(Err(e @ FetchError::Bad(..))) => {
                // Everything else from this peer stops; what already verified is kept.
                fetcher.connection.close(4u32.into(), b"bad data");
                failure = Some(e);
            }
            Ok(Err(e)) => {
                if failure.is_none() {
                    failure = Some(e);
                }
            }
            Err(e) => {
                if failure.is_none() {
                    failure = Some(FetchError::Sync(e));
                }
            }
        }
    }
    stored += store_batch(home, engine, &fetcher.store, &mut batch).await?;
    match failure {
        None => Ok(stored),
        Some(FetchError::Bad(blob, why)) => {
            let bad = crate::index::BadPeer {
                device: fetcher.peer,
                at_ms: crate::scan::now_ms(),
                blob,
                reason: why.clone(),
            };
            home.lock().await.index.record_bad_peer(&bad)?;
            tracing::warn!(peer = %fetcher.peer, %blob, "a peer sent blob data that does not match the blob ID; it is not asked for blobs for {:?}: {why}", BAD_PEER_COOLDOWN);
            Err(SyncError::Protocol(format!("blob {blob}: {why}")))
        }
        Some(FetchError::NotHere) => Ok(stored),
        Some(FetchError::Sync(e)) => Err(e),
    }
}

/// Makes a batch of received blobs durable, records them in one transaction, and adds them
/// to the held set. Returns how many.
async fn store_batch(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    store: &BlobStore,
    batch: &mut Vec<Received>,
) -> Result<usize, SyncError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let received = std::mem::take(batch);
    let store = store.clone();
    let (received, committed) = tokio::task::spawn_blocking(move || {
        let staged: Vec<&Staged> = received.iter().map(|r| &r.staged).collect();
        let result = store.commit_staged(&staged);
        (received, result)
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?;
    committed.map_err(|e| SyncError::Protocol(format!("storing received blobs: {e}")))?;
    home.lock().await.index.add_stored_blobs(
        received
            .iter()
            .map(|r| (&r.staged.blob_id, r.sealed_len, &r.outboard[..])),
    )?;
    for r in &received {
        engine.held.insert(r.staged.blob_id);
    }
    Ok(received.len())
}

/// Fetches one blob, verifying every chunk group before writing it, and stages it.
async fn fetch_one(fetcher: Arc<Fetcher>, blob_id: BlobId) -> Result<Received, FetchError> {
    let partial = fetcher.partial_dir.join(blob_id.to_hex());
    // Resume from the last verified byte that was persisted, if an earlier try got that far.
    let from = read_progress(&partial);
    let (mut send, mut recv) = fetcher
        .connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(net::describe_lost(&e)))?;
    net::write_frame(
        &mut send,
        &Request::Blob {
            blob_id: blob_id.0,
            from_group: from / GROUP_BYTES,
        },
    )
    .await?;
    let _ = send.finish();
    let sealed_len = match net::read_frame::<BlobHeader>(&mut recv).await? {
        BlobHeader::NotHere => return Err(FetchError::NotHere),
        BlobHeader::Follows { sealed_len } => sealed_len,
    };
    let from = if from <= sealed_len { from } else { 0 };
    let transfer = fetcher.transfers.start(blob_id, sealed_len, from);
    transfer.add_peer(fetcher.peer);
    if from == 0 && sealed_len <= SMALL_BLOB {
        return fetch_small(&fetcher, blob_id, sealed_len, recv, transfer).await;
    }
    if from > 0 {
        tracing::info!(blob = %blob_id, from, sealed_len, "resuming blob transfer");
    }
    fs::create_dir_all(&fetcher.partial_dir).map_err(|e| NetError::Connection(e.to_string()))?;
    let target = partial.clone();
    let recv = tokio_util::io::SyncIoBridge::new(recv);
    let received = tokio::task::spawn_blocking(move || {
        receive(recv, &blob_id, sealed_len, &target, from, &transfer)
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?;
    match received {
        Ok(()) => {}
        Err(ReceiveError::BadData(why)) => {
            // Nothing unverified was written, but start over rather than trust this peer's
            // earlier bytes either.
            remove_partial(&partial);
            return Err(FetchError::Bad(blob_id, why));
        }
        Err(ReceiveError::Interrupted(e)) => {
            // What was verified and persisted stays for the next try.
            return Err(NetError::Connection(format!("blob {blob_id} interrupted: {e}")).into());
        }
    }
    // Hashing the whole file again is blocking work: off the async threads.
    let store = fetcher.store.clone();
    let kept = tokio::task::spawn_blocking(move || keep(&store, &partial, &blob_id, sealed_len))
        .await
        .map_err(|e| SyncError::Protocol(e.to_string()))?;
    let (staged, outboard) =
        kept.map_err(|e| SyncError::Protocol(format!("blob {blob_id}: {e}")))?;
    Ok(Received {
        staged,
        sealed_len,
        outboard,
    })
}

/// The most bytes a bao encoding of a blob of `sealed_len` bytes can take: the blob, its
/// length prefix, and 64 bytes of parent hashes per chunk group.
fn encoded_len_limit(sealed_len: u64) -> u64 {
    sealed_len + 8 + (sealed_len / GROUP_BYTES + 1) * 64
}

/// Receives a small blob whole into memory, verifies it, and stages it with one write.
async fn fetch_small(
    fetcher: &Fetcher,
    blob_id: BlobId,
    sealed_len: u64,
    mut recv: quinn::RecvStream,
    transfer: TransferHandle,
) -> Result<Received, FetchError> {
    let kib = (sealed_len >> 10).max(1) as u32;
    let _permit = fetcher
        .bytes
        .acquire_many(kib)
        .await
        .map_err(|e| SyncError::Protocol(e.to_string()))?;
    let limit = encoded_len_limit(sealed_len) as usize;
    let encoded = recv
        .read_to_end(limit)
        .await
        .map_err(|e| NetError::Connection(format!("blob {blob_id}: {e}")))?;
    let store = fetcher.store.clone();
    tokio::task::spawn_blocking(move || -> Result<Received, FetchError> {
        let (data, outboard) = decode_in_memory(&encoded, &blob_id, sealed_len, &transfer)?;
        let staged = store
            .stage(&blob_id, &data)
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        Ok(Received {
            staged,
            sealed_len,
            outboard,
        })
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?
}

/// Decodes a whole bao encoding held in memory, checking every chunk group. Returns the
/// blob and its outboard, built from the parent hashes the decoding verified (so the blob
/// is not hashed a second time).
fn decode_in_memory(
    encoded: &[u8],
    blob_id: &BlobId,
    sealed_len: u64,
    transfer: &TransferHandle,
) -> Result<(Vec<u8>, Vec<u8>), FetchError> {
    use bao_tree::io::BaoContentItem;
    use bao_tree::io::DecodeError;
    use bao_tree::io::sync::OutboardMut;
    let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
    let ranges = ChunkRanges::all();
    let items = bao_tree::io::sync::DecodeResponseIter::new(
        blake3::Hash::from_bytes(blob_id.0),
        tree,
        encoded,
        &ranges,
    );
    let mut data = vec![0u8; sealed_len as usize];
    let mut outboard = PostOrderMemOutboard {
        root: blake3::Hash::from_bytes(blob_id.0),
        tree,
        data: vec![0u8; tree.outboard_size() as usize],
    };
    let mut verified = 0u64;
    for item in items {
        match item {
            Ok(BaoContentItem::Parent(parent)) => {
                outboard
                    .save(parent.node, &parent.pair)
                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
            }
            Ok(BaoContentItem::Leaf(leaf)) => {
                let start = leaf.offset as usize;
                let end = start + leaf.data.len();
                let Some(slot) = data.get_mut(start..end) else {
                    return Err(FetchError::Bad(*blob_id, "a chunk past the end".into()));
                };
                slot.copy_from_slice(&leaf.data);
                verified += leaf.data.len() as u64;
                transfer.advance(leaf.data.len() as u64);
            }
            Err(e @ (DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_))) => {
                return Err(FetchError::Bad(
                    *blob_id,
                    format!("verification failed: {e}"),
                ));
            }
            Err(e) => {
                return Err(NetError::Connection(format!("blob {blob_id}: {e}")).into());
            }
        }
    }
    if verified < sealed_len {
        return Err(NetError::Connection(format!("blob {blob_id}: the stream ended early")).into());
    }
    Ok((data, outboard.data))
}

/// Checks a completely received blob as a whole (computing its outboard) and stages it for
/// the blob store (moved, not copied); the partial file is gone afterwards either way.
/// Returns the staged blob and its outboard.
fn keep(
    blobs: &BlobStore,
    partial: &Path,
    blob_id: &BlobId,
    sealed_len: u64,
) -> io::Result<(Staged, Vec<u8>)> {
    let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
    let finished = File::open(partial).and_then(|f| {
        let mut outboard = Vec::new();
        let root = bao_tree::io::sync::outboard_post_order(
            io::BufReader::with_capacity(1 << 20, f),
            tree,
            &mut outboard,
        )?;
        Ok((root, outboard))
    });
    let result = match finished {
        // A resumed file that does not hash to its ID was damaged on disk meanwhile; it is
        // dropped and fetched again.
        Ok((root, _)) if root.as_bytes() != &blob_id.0 => Err(io::Error::other(
            "it did not verify as a whole and will be fetched again",
        )),
        Ok((_, outboard)) => blobs
            .stage_file(blob_id, partial)
            .map(|staged| (staged, outboard))
            .map_err(io::Error::other),
        Err(e) => Err(e),
    };
    remove_partial(partial);
    result
}

/// Bytes per chunk group: the unit of verification and of resumption.
const GROUP_BYTES: u64 = 16 * 1024;
/// How much verified data may arrive between two persisted progress marks.
const PERSIST_EVERY: u64 = 4 * 1024 * 1024;

fn progress_path(partial: &Path) -> PathBuf {
    partial.with_extension("progress")
}

/// The verified length persisted for a partial blob (a multiple of [`GROUP_BYTES`]), or 0.
fn read_progress(partial: &Path) -> u64 {
    let claimed = fs::read_to_string(progress_path(partial))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let on_disk = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    (claimed.min(on_disk) / GROUP_BYTES) * GROUP_BYTES
}

fn write_progress(partial: &Path, verified: u64) -> io::Result<()> {
    let path = progress_path(partial);
    let tmp = path.with_extension("progress-tmp");
    fs::write(&tmp, verified.to_string())?;
    fs::rename(&tmp, &path)
}

fn remove_partial(partial: &Path) {
    let _ = fs::remove_file(partial);
    let _ = fs::remove_file(progress_path(partial));
}

/// Why receiving a blob stopped.
enum ReceiveError {
    /// The data does not match the blob ID: the peer is bad.
    BadData(String),
    /// The stream or the disk failed; verified progress is kept.
    Interrupted(io::Error),
}

/// Decodes a bao stream of the blob from byte `from` (a multiple of [`GROUP_BYTES`]) into
/// `target`, writing every chunk group only after it verified against `blob_id`, and
/// persisting the verified length every [`PERSIST_EVERY`] bytes.
fn receive(
    encoded: impl io::Read,
    blob_id: &BlobId,
    sealed_len: u64,
    target: &Path,
    from: u64,
    transfer: &TransferHandle,
) -> Result<(), ReceiveError> {
    use bao_tree::io::BaoContentItem;
    use bao_tree::io::DecodeError;
    use std::os::unix::fs::FileExt;
    let interrupted = ReceiveError::Interrupted;
    let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target)
        .map_err(interrupted)?;
    let ranges = ChunkRanges::from(ChunkNum(from / 1024)..);
    let items = bao_tree::io::sync::DecodeResponseIter::new(
        blake3::Hash::from_bytes(blob_id.0),
        tree,
        io::BufReader::with_capacity(1 << 20, encoded),
        &ranges,
    );
    let mut verified = from;
    let mut persisted = from;
    for item in items {
        match item {
            Ok(BaoContentItem::Parent(_)) => {}
            Ok(BaoContentItem::Leaf(leaf)) => {
                file.write_all_at(&leaf.data, leaf.offset)
                    .map_err(interrupted)?;
                verified = verified.max(leaf.offset + leaf.data.len() as u64);
                transfer.advance(leaf.data.len() as u64);
                if verified - persisted >= PERSIST_EVERY {
                    file.sync_data().map_err(interrupted)?;
                    write_progress(target, verified).map_err(interrupted)?;
                    persisted = verified;
                }
            }
            Err(e @ (DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_))) => {
                return Err(ReceiveError::BadData(format!("verification failed: {e}")));
            }
            Err(e) => return Err(interrupted(io::Error::other(e.to_string()))),
        }
    }
    if verified < sealed_len {
        return Err(interrupted(io::Error::other(
            "the stream ended before the blob did",
        )));
    }
    file.set_len(sealed_len).map_err(interrupted)?;
    file.sync_all().map_err(interrupted)?;
    Ok(())
}

/// Answers a blob request: from the blob store, or sealed on the fly from the original.
pub async fn serve_blob(
    home: &tokio::sync::Mutex<Home>,
    blob_id: BlobId,
    from_group: u64,
    mut send: quinn::SendStream,
) -> Result<(), SyncError> {
    let source = BlobSource::open(&*home.lock().await, &blob_id)?;
    let Some(source) = source else {
        net::write_frame(&mut send, &BlobHeader::NotHere).await?;
        let _ = send.finish();
        return Ok(());
    };
    net::write_frame(
        &mut send,
        &BlobHeader::Follows {
            sealed_len: source.sealed_len(),
        },
    )
    .await?;
    let writer = tokio_util::io::SyncIoBridge::new(send);
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        let capacity = encoded_len_limit(source.sealed_len()).min(1 << 20) as usize;
        let mut writer = io::BufWriter::with_capacity(capacity, writer);
        source.encode(from_group, &mut writer)?;
        io::Write::flush(&mut writer)?;
        let mut bridge = writer.into_inner().map_err(|e| e.into_error())?;
        bridge.shutdown()?;
        Ok(())
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?
    .map_err(|e| NetError::Connection(format!("sending blob {blob_id}: {e}")))?;
    Ok(())
}

/// A blob this device can serve: from the blob store, or sealed on the fly from its
/// original, with its verification data.
pub struct BlobSource {
    source: Source,
    outboard: PostOrderMemOutboard,
}

enum Source {
    Stored(File),
    Original(Box<SealedOriginal>),
}

impl BlobSource {
    /// Where this device can read a blob from, if it holds it.
    pub fn open(home: &Home, blob_id: &BlobId) -> Result<Option<Self>, IndexError> {
        let Some((sealed_len, outboard)) = home.index.blob_info(blob_id)? else {
            return Ok(None);
        };
        let outboard = PostOrderMemOutboard {
            root: blake3::Hash::from_bytes(blob_id.0),
            tree: BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE),
            data: outboard,
        };
        if home.index.blob_stored(blob_id)?
            && let Ok(file) = File::open(home.blobs.path_of(blob_id))
        {
            return Ok(Some(Self {
                source: Source::Stored(file),
                outboard,
            }));
        }
        for (path, sealed) in home.index.originals_of(blob_id)? {
            let Ok(Record::Photo(photo)) = Record::open(&sealed, &home.keys) else {
                continue;
            };
            let Some(key) = home.keys.get(photo.blob_epoch) else {
                continue;
            };
            if let Ok(original) =
                SealedOriginal::open(&path, &key.content_key(), &photo.plaintext_hash, photo.size)
            {
                return Ok(Some(Self {
                    source: Source::Original(Box::new(original)),
                    outboard,
                }));
            }
        }
        Ok(None)
    }

    /// The blob's sealed length.
    pub fn sealed_len(&self) -> u64 {
        self.outboard.tree.size()
    }

    /// Writes the blob's bao encoding (16 KiB chunk groups) from chunk group `from_group` to
    /// the end, checking every chunk group against the blob ID as it is read: a blob that
    /// rotted on disk, or an original that changed, is never sent as good.
    pub fn encode(&self, from_group: u64, writer: impl io::Write) -> io::Result<()> {
        let first = ChunkNum(from_group << OUTBOARD_BLOCK_SIZE.chunk_log());
        let ranges = ChunkRanges::from(first..);
        let result = match &self.source {
            Source::Stored(file) => {
                bao_tree::io::sync::encode_ranges_validated(file, &self.outboard, &ranges, writer)
            }
            Source::Original(original) => bao_tree::io::sync::encode_ranges_validated(
                &**original,
                &self.outboard,
                &ranges,
                writer,
            ),
        };
        result.map_err(|e| io::Error::other(e.to_string()))
    }
}

/// What [`fetch_missing_for_restore`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct MeshFetch {
    /// Blobs the photos needed that this device did not hold.
    pub missing: usize,
    /// Of those, blobs fetched from members.
    pub fetched: usize,
    /// Members that could not be reached, with the reason.
    pub unreachable: Vec<String>,
}

/// Fetches, from the members that hold them, the blobs of `photos` this device holds
/// neither in its blob store nor as originals: it connects itself to every member at the
/// address the index knows for it (where it, or another member, last saw it) and at the
/// configured peer addresses, and stores what arrives, verified, like a running node.
/// `on_progress` hears the number of blobs fetched so far.
pub async fn fetch_missing_for_restore(
    home: &tokio::sync::Mutex<Home>,
    blobs: &[BlobId],
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MeshFetch, SyncError> {
    use photomesh_protocol::nquic::{NoiseKey, Suite};
    let (engine, targets, secret) = {
        let home = home.lock().await;
        let engine = BlobEngine::load(&home)?;
        let trust = crate::mesh::trust_set(&home)
            .map_err(|e| SyncError::Protocol(format!("membership: {e}")))?;
        let me = home.device.device_id();
        let peers: Vec<SocketAddr> = home
            .index
            .peers()?
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        let mut targets = Vec::new();
        for member in trust.members().filter(|m| m.device != me) {
            let mut addrs: Vec<SocketAddr> = home
                .index
                .seen(&member.device)?
                .and_then(|(_, a)| a)
                .or(home.index.learned_address(&member.device)?)
                .and_then(|a| a.parse().ok())
                .into_iter()
                .collect();
            for p in &peers {
                if !addrs.contains(p) {
                    addrs.push(*p);
                }
            }
            let aes = home.index.has_aes(&member.device)?;
            targets.push((member.clone(), addrs, aes));
        }
        (engine, targets, home.device.noise_secret())
    };
    let mut report = MeshFetch::default();
    let mut left: Vec<BlobId> = blobs
        .iter()
        .filter(|b| !engine.held.contains(b))
        .copied()
        .collect();
    left.sort();
    left.dedup();
    report.missing = left.len();
    on_progress(0, report.missing);
    let transfers = Transfers::default();
    for (member, addrs, aes) in targets {
        if left.is_empty() {
            break;
        }
        let mut connection = None;
        let mut why = String::from("no known address");
        for addr in addrs {
            let endpoint = match net::client_endpoint(&addr) {
                Ok(e) => e,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let config = crate::transport::client_config(
                secret,
                NoiseKey(member.noise_key),
                Suite::choose(crate::transport::has_aes_hardware(), aes),
                None,
                crate::transport::os_random(),
            );
            let Ok(connecting) = endpoint.connect_with(config, addr, "photomesh") else {
                continue;
            };
            match tokio::time::timeout(net::CONNECT_TIMEOUT, connecting).await {
                Ok(Ok(c)) => {
                    connection = Some((endpoint, c));
                    break;
                }
                Ok(Err(e)) => why = net::describe_connect_error(&e, addr, false),
                Err(_) => why = format!("no answer from {addr}"),
            }
        }
        let Some((endpoint, connection)) = connection else {
            report
                .unreachable
                .push(format!("{} ({}): {why}", member.name, member.device));
            continue;
        };
        let (store, partial_dir) = {
            let home = home.lock().await;
            (home.blobs.clone(), home.path.join("blobs/partial"))
        };
        let fetcher = Arc::new(Fetcher {
            connection: connection.clone(),
            peer: member.device,
            store,
            partial_dir,
            transfers: transfers.clone(),
            bytes: tokio::sync::Semaphore::new((MAX_IN_FLIGHT_BYTES >> 10) as usize),
        });
        let result = fetch_all(home, &engine, fetcher, left.clone()).await;
        connection.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        left.retain(|b| !engine.held.contains(b));
        report.fetched = report.missing - left.len();
        on_progress(report.fetched, report.missing);
        if let Err(e) = result {
            report
                .unreachable
                .push(format!("{} ({}): {e}", member.name, member.device));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_holdings_are_rewritten_once_the_sets_become_equal_after_differing() {
        let known = super::PeerHoldings::default();
        let peer =
            photomesh_protocol::identity::DeviceKeys::from_secrets([1; 32], [2; 32]).device_id();
        let ours = b"fingerprint-and-count".to_vec();
        assert!(known.changed(&peer, &ours, false), "first sight is written");
        assert!(!known.changed(&peer, &ours, false), "nothing changed");
        // The peer lacks some of ours: written as ours less what it lacks.
        assert!(known.changed(&peer, &ours, true));
        // It fetched them: the sets are equal again, and ours did not change, yet what the
        // peer holds did, so it must be written (the demo's phone showed 0 copies before).
        assert!(known.changed(&peer, &ours, false));
        assert!(!known.changed(&peer, &ours, false));
    }

    use super::*;
    use photomesh_protocol::keys::LibraryKey;
    use photomesh_protocol::seal;

    fn handle() -> TransferHandle {
        Transfers::default().start(BlobId([0; 32]), 0, 0)
    }

    #[test]
    fn peer_holdings_are_rewritten_when_the_peer_catches_up() {
        let known = PeerHoldings::default();
        let peer = DeviceId::from_bytes([3; 20]);
        // The peer lacks some of ours: written.
        assert!(known.changed(&peer, b"ours", true));
        // Next round the peer holds all of ours (no difference): written again.
        assert!(known.changed(&peer, b"ours", false));
        // Nothing changed on either side since: not written.
        assert!(!known.changed(&peer, b"ours", false));
        // Our set changed: written.
        assert!(known.changed(&peer, b"more", false));
    }

    #[test]
    fn a_sealed_original_reads_as_the_blob_at_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("photo.jpg");
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &plain).unwrap();
        let key = LibraryKey::new(1, [4; 32]).content_key();
        let hash = *blake3::hash(&plain).as_bytes();
        let blob = seal::seal(&key.file_key(&hash), &plain);
        let original = SealedOriginal::open(&path, &key, &hash, plain.len() as u64).unwrap();
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

    #[test]
    fn a_transfer_resumes_from_the_persisted_progress() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 249) as u8).collect();
        let ob = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
        let blob_id = BlobId(*ob.root.as_bytes());
        let encode_from = |from: u64| {
            let mut encoded = Vec::new();
            bao_tree::io::sync::encode_ranges_validated(
                &data[..],
                &ob,
                &ChunkRanges::from(ChunkNum(from / 1024)..),
                &mut encoded,
            )
            .unwrap();
            encoded
        };
        let target = dir.path().join("partial");
        // The first try is cut after about two thirds: progress was persisted on the way.
        let full = encode_from(0);
        assert!(matches!(
            receive(
                &full[..full.len() * 2 / 3],
                &blob_id,
                data.len() as u64,
                &target,
                0,
                &handle()
            ),
            Err(ReceiveError::Interrupted(_))
        ));
        let from = read_progress(&target);
        assert!(from >= 4 << 20, "progress {from}");
        assert_eq!(from % GROUP_BYTES, 0);
        // The second try asks only for the rest, and the file ends complete.
        let rest = encode_from(from);
        assert!((rest.len() as u64) < full.len() as u64 - from + 64 * 1024);
        assert!(
            receive(
                &rest[..],
                &blob_id,
                data.len() as u64,
                &target,
                from,
                &handle()
            )
            .is_ok()
        );
        assert!(fs::read(&target).unwrap() == data);
    }

    #[test]
    fn an_in_memory_decode_rebuilds_the_outboard_and_catches_a_flipped_byte() {
        let data: Vec<u8> = (0..250_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let ob = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
        let blob_id = BlobId(*ob.root.as_bytes());
        let mut encoded = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(
            &data[..],
            &ob,
            &ChunkRanges::all(),
            &mut encoded,
        )
        .unwrap();
        let Ok((got, outboard)) =
            decode_in_memory(&encoded, &blob_id, data.len() as u64, &handle())
        else {
            panic!("a good encoding did not decode");
        };
        assert!(got == data);
        assert_eq!(outboard, ob.data);
        let mut bad = encoded.clone();
        bad[100_000] ^= 4;
        assert!(matches!(
            decode_in_memory(&bad, &blob_id, data.len() as u64, &handle()),
            Err(FetchError::Bad(..))
        ));
        assert!(matches!(
            decode_in_memory(&encoded[..50_000], &blob_id, data.len() as u64, &handle()),
            Err(FetchError::Sync(_))
        ));
    }

    #[test]
    fn receiving_a_corrupted_stream_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let ob = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
        let blob_id = BlobId(*ob.root.as_bytes());
        let mut encoded = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(
            &data[..],
            &ob,
            &ChunkRanges::from(ChunkNum(0)..),
            &mut encoded,
        )
        .unwrap();
        let target = dir.path().join("partial");
        assert!(
            receive(
                &encoded[..],
                &blob_id,
                data.len() as u64,
                &target,
                0,
                &handle()
            )
            .is_ok()
        );
        assert_eq!(fs::read(&target).unwrap(), data);
        let mut bad = encoded.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        let other = dir.path().join("other");
        assert!(matches!(
            receive(&bad[..], &blob_id, data.len() as u64, &other, 0, &handle()),
            Err(ReceiveError::BadData(_))
        ));
        // What arrived before the bad chunk group is verified data, and nothing after it.
        let written = fs::read(&other).unwrap();
        assert!(written.len() < data.len());
        assert_eq!(written[..], data[..written.len()]);
        // A stream cut short is an interruption, not bad data.
        assert!(matches!(
            receive(
                &encoded[..encoded.len() / 3],
                &blob_id,
                data.len() as u64,
                &other,
                0,
                &handle()
            ),
            Err(ReceiveError::Interrupted(_))
        ));
    }
}
