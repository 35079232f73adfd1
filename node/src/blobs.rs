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
//! parent hashes — and staged in the blob store with one direct write ([`crate::direct`]:
//! received blobs bypass the page cache). A large one is received
//! into `blobs/partial/`, from every connected peer that holds it at once ([`Helpers`]): the
//! link's peer streams it from the front and the others send ranges of chunk groups from the
//! back ([`Request::BlobRange`]), each verified against the blob ID before it is written.
//! The verified ranges are persisted beside the partial file every 4 MiB and whenever a
//! stream stops, so a killed node or a dropped peer resumes exactly what is missing, and a
//! peer that fails leaves its unfinished part to the others. A blob received whole by this
//! process gets its outboard from the parent hashes verified on the way; a resumed one is
//! hashed once more as a whole. Either is moved into staging. Staged blobs are committed in
//! batches, while the next blobs arrive: one filesystem flush on each side of the renames,
//! one index transaction, and only then are they marked stored.

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
use crate::direct::{Aligned, DirectFile, Pool};
use crate::home::Home;
use crate::index::{BlobInfo, IndexError};
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
    /// The blobs being fetched: each by one fetch, which asks every peer holding it.
    fetching: Arc<Mutex<HashSet<[u8; 32]>>>,
    /// Buffers for received blobs, reused.
    buffers: Arc<Pool>,
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
            fetching: Arc::default(),
            buffers: Arc::new(Pool::new(MAX_IN_FLIGHT_BYTES as usize)),
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
    helpers: Option<Helpers>,
) -> Result<usize, SyncError> {
    let me = {
        let home = home.lock().await;
        if let Some(bad) = home.index.last_bad(peer)?
            && crate::scan::now_ms().saturating_sub(bad.at_ms)
                < BAD_PEER_COOLDOWN.as_millis() as u64
        {
            return Ok(0);
        }
        engine.held.refresh(&home)?;
        home.device.device_id()
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
    fetch_from(home, engine, connection, *peer, transfers, wanted, helpers).await
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
    /// Buffers for received blobs, reused.
    buffers: Arc<Pool>,
    /// Other peers a large blob can be fetched from at the same time, in a running node.
    helpers: Option<Helpers>,
}

/// A blob received and verified, staged in the store, waiting for its batch.
struct Received {
    staged: Staged,
    sealed_len: u64,
    outboard: Vec<u8>,
}

/// The blobs received since the last commit.
#[derive(Default)]
struct Batch {
    received: Vec<Received>,
    started: Option<Instant>,
}

impl Batch {
    fn push(&mut self, received: Received) {
        self.started.get_or_insert_with(Instant::now);
        self.received.push(received);
    }

    /// When the batch is due to be committed: at once when full, else [`BATCH_AFTER`]
    /// after its first blob.
    fn due(&self) -> Option<Instant> {
        let started = self.started?;
        if self.received.len() >= BATCH_BLOBS {
            return Some(started);
        }
        Some(started + BATCH_AFTER)
    }

    fn take(&mut self) -> Vec<Received> {
        std::mem::take(self).received
    }
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
/// batches: one filesystem flush and one index transaction per batch, committed while the
/// next blobs arrive.
async fn fetch_all(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    fetcher: Arc<Fetcher>,
    wanted: Vec<BlobId>,
) -> Result<usize, SyncError> {
    type Commit<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, SyncError>> + Send + 'a>>;
    let mut queue = wanted.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    let mut batch = Batch::default();
    let mut committing: Option<Commit<'_>> = None;
    let mut stored = 0;
    let mut failure: Option<FetchError> = None;
    loop {
        while failure.is_none() && tasks.len() < MAX_IN_FLIGHT_BLOBS {
            let Some(blob) = queue.next() else { break };
            if engine.held.contains(&blob) {
                continue;
            }
            // Another link's fetch has it (and asks this peer for ranges of it too).
            let Some(coordinating) = Coordinating::take(&engine.fetching, blob) else {
                continue;
            };
            tasks.spawn(fetch_one(fetcher.clone(), blob, coordinating));
        }
        // The last blobs are committed as soon as the previous commit is done.
        let due = if tasks.is_empty() {
            batch.started
        } else {
            batch.due()
        };
        if committing.is_none()
            && let Some(due) = due
            && due <= Instant::now()
        {
            committing = Some(Box::pin(store_batch(
                home,
                engine,
                &fetcher.store,
                batch.take(),
            )));
        }
        if tasks.is_empty() && committing.is_none() && batch.received.is_empty() {
            break;
        }
        let wait_until = due.filter(|_| committing.is_none());
        tokio::select! {
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                match joined.map_err(|e| SyncError::Protocol(e.to_string())) {
                    Ok(Ok(received)) => batch.push(received),
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
            done = async { committing.as_mut().expect("guarded").await }, if committing.is_some() => {
                committing = None;
                stored += done?;
            }
            () = async {
                match wait_until {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
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

/// Makes a batch of received blobs durable ([`BlobStore::commit_staged`]: one flush, the
/// renames, one more flush), records them in one transaction, and adds them to the held
/// set. Returns how many. If the commit fails, the batch's staged files are removed: its
/// blobs were not stored and will be fetched again.
async fn store_batch(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    store: &BlobStore,
    received: Vec<Received>,
) -> Result<usize, SyncError> {
    if received.is_empty() {
        return Ok(0);
    }
    let store = store.clone();
    let received = tokio::task::spawn_blocking(move || {
        let (staged, records): (Vec<Staged>, Vec<_>) = received
            .into_iter()
            .map(|r| (r.staged, (r.sealed_len, r.outboard)))
            .unzip();
        match store.commit_staged(&staged.iter().collect::<Vec<_>>()) {
            Ok(()) => Ok(staged
                .into_iter()
                .map(|s| s.blob_id)
                .zip(records)
                .collect::<Vec<_>>()),
            Err(e) => {
                staged.into_iter().for_each(Staged::discard);
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?
    .map_err(|e| SyncError::Protocol(format!("storing received blobs: {e}")))?;
    home.lock().await.index.add_stored_blobs(
        received
            .iter()
            .map(|(blob_id, (len, outboard))| (blob_id, *len, &outboard[..])),
    )?;
    for (blob_id, _) in &received {
        engine.held.insert(*blob_id);
    }
    Ok(received.len())
}

/// Fetches one blob, verifying every chunk group before writing it, and stages it. A large
/// blob is fetched in ranges from this peer and from every other connected peer that holds
/// it ([`fetch_large`]); `_coordinating` keeps other links from fetching it meanwhile.
async fn fetch_one(
    fetcher: Arc<Fetcher>,
    blob_id: BlobId,
    _coordinating: Coordinating,
) -> Result<Received, FetchError> {
    let partial = fetcher.partial_dir.join(blob_id.to_hex());
    // Resume from the verified ranges that were persisted, if an earlier try got that far.
    let (done, claimed_len) = read_progress(&partial);
    let asked = done.first_missing();
    let (mut send, mut recv) = fetcher
        .connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(net::describe_lost(&e)))?;
    net::write_frame(
        &mut send,
        &Request::Blob {
            blob_id: blob_id.0,
            from_group: asked,
        },
    )
    .await?;
    let _ = send.finish();
    let sealed_len = match net::read_frame::<BlobHeader>(&mut recv).await? {
        BlobHeader::NotHere => return Err(FetchError::NotHere),
        BlobHeader::Follows { sealed_len } => sealed_len,
    };
    // Progress of a blob of another length is no progress.
    let done = if claimed_len == Some(sealed_len) && done.end() <= groups_of(sealed_len) {
        done
    } else {
        GroupSet::default()
    };
    let from = done.first_missing();
    let verified = done.bytes(sealed_len);
    let transfer = fetcher.transfers.start(blob_id, sealed_len, verified);
    transfer.add_peer(fetcher.peer);
    if done.is_empty() && sealed_len <= SMALL_BLOB {
        return fetch_small(&fetcher, blob_id, sealed_len, recv, transfer).await;
    }
    if verified > 0 {
        tracing::info!(
            blob = %blob_id,
            from = from * GROUP_BYTES,
            verified,
            sealed_len,
            "resuming blob transfer"
        );
    }
    // The stream asked for is this peer's first part, if it starts where the gap does.
    let stream = (from == asked).then_some((recv, from));
    fetch_large(
        &fetcher, blob_id, sealed_len, done, stream, transfer, partial,
    )
    .await
}

/// A blob being coordinated by one fetch: removed from the engine's set when dropped.
struct Coordinating(Arc<Mutex<HashSet<[u8; 32]>>>, BlobId);

impl Coordinating {
    /// Takes the blob for this fetch, unless another fetch coordinates it already.
    fn take(set: &Arc<Mutex<HashSet<[u8; 32]>>>, blob: BlobId) -> Option<Self> {
        let mut held = set.lock().ok()?;
        held.insert(blob.0).then(|| Self(set.clone(), blob))
    }
}

impl Drop for Coordinating {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&self.1.0);
        }
    }
}

/// How a blob's fetch finds other peers to fetch ranges from: the running node's other live
/// connections, and the index (what those peers hold, whether they sent bad data).
#[derive(Clone)]
pub struct Helpers {
    /// The node's home.
    pub home: Arc<tokio::sync::Mutex<Home>>,
    /// The node's live connections, by device.
    pub links: Arc<dyn Fn() -> Vec<(DeviceId, quinn::Connection)> + Send + Sync>,
}

impl Helpers {
    /// The connected peers other than `except` that may hold `blob`: those whose reconciled
    /// holdings include it, and those not reconciled with yet; not those in their bad-data
    /// cooldown.
    async fn for_blob(
        &self,
        blob: &BlobId,
        except: &DeviceId,
    ) -> Vec<(DeviceId, quinn::Connection)> {
        let all = (self.links)();
        tracing::debug!(links = all.len(), "live links");
        let links: Vec<_> = all
            .into_iter()
            .filter(|(d, c)| d != except && c.close_reason().is_none())
            .collect();
        if links.is_empty() {
            return links;
        }
        let home = self.home.lock().await;
        let holders = home.index.blob_holders(blob).unwrap_or_default();
        let now = crate::scan::now_ms();
        links
            .into_iter()
            .filter(|(d, _)| {
                let may_hold = holders.contains(d) || matches!(home.index.peer_sync(d), Ok(None));
                let bad = home.index.last_bad(d).ok().flatten().is_some_and(|b| {
                    now.saturating_sub(b.at_ms) < BAD_PEER_COOLDOWN.as_millis() as u64
                });
                may_hold && !bad
            })
            .collect()
    }
}

/// Chunk groups asked of one peer at a time: 4 MiB.
const PIECE_GROUPS: u64 = 256;
/// How often a blob's fetch looks for more peers that can send it.
const HELPER_LOOK: Duration = Duration::from_millis(250);

/// The number of chunk groups of a blob of `sealed_len` bytes.
fn groups_of(sealed_len: u64) -> u64 {
    sealed_len.div_ceil(GROUP_BYTES)
}

/// A set of chunk groups, as sorted, disjoint, non-adjacent ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct GroupSet(Vec<(u64, u64)>);

impl GroupSet {
    fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.0.push((start, end));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for (s, e) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }

    fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(s, e) in &self.0 {
            if e <= start || s >= end {
                kept.push((s, e));
                continue;
            }
            if s < start {
                kept.push((s, start));
            }
            if e > end {
                kept.push((end, e));
            }
        }
        self.0 = kept;
    }

    fn contains(&self, group: u64) -> bool {
        self.0.iter().any(|&(s, e)| s <= group && group < e)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of groups in the set.
    fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// The group after the last one in the set (0 when empty).
    fn end(&self) -> u64 {
        self.0.last().map_or(0, |r| r.1)
    }

    /// The first group not in the set.
    fn first_missing(&self) -> u64 {
        match self.0.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }

    /// The verified bytes the set stands for in a blob of `sealed_len` bytes.
    fn bytes(&self, sealed_len: u64) -> u64 {
        self.0
            .iter()
            .map(|&(s, e)| (e * GROUP_BYTES).min(sealed_len) - (s * GROUP_BYTES).min(sealed_len))
            .sum()
    }

    /// The ranges of `0..total` outside the set.
    fn gaps(&self, total: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.0 {
            if s > at {
                gaps.push((at, s.min(total)));
            }
            at = at.max(e);
        }
        if at < total {
            gaps.push((at, total));
        }
        gaps.retain(|(s, e)| s < e);
        gaps
    }
}

/// Who is fetching which chunk groups of one blob, and which are verified and persisted.
#[derive(Debug)]
struct Plan {
    total: u64,
    /// Verified, written and made durable.
    done: GroupSet,
    /// Being fetched by some peer.
    claimed: GroupSet,
}

impl Plan {
    fn new(total: u64, done: GroupSet) -> Self {
        Self {
            total,
            done,
            claimed: GroupSet::default(),
        }
    }

    fn free(&self) -> Vec<(u64, u64)> {
        let mut taken = self.done.clone();
        for &(s, e) in &self.claimed.0 {
            taken.insert(s, e);
        }
        taken.gaps(self.total)
    }

    /// Claims up to [`PIECE_GROUPS`] groups nobody has: the first ones free, or (for a peer
    /// helping the one streaming from the front) the last ones, so that the two meet.
    fn claim(&mut self, from_back: bool) -> Option<(u64, u64)> {
        let free = self.free();
        let (s, e) = if from_back {
            let &(s, e) = free.last()?;
            (s.max(e.saturating_sub(PIECE_GROUPS)), e)
        } else {
            let &(s, e) = free.first()?;
            (s, e.min(s + PIECE_GROUPS))
        };
        self.claimed.insert(s, e);
        Some((s, e))
    }

    /// Claims one group for the peer streaming from the front, if nobody else has it.
    fn claim_group(&mut self, group: u64) -> bool {
        if group >= self.total || self.done.contains(group) || self.claimed.contains(group) {
            return false;
        }
        self.claimed.insert(group, group + 1);
        true
    }

    /// Groups that are verified and durable.
    fn finish(&mut self, start: u64, end: u64) {
        self.claimed.remove(start, end);
        self.done.insert(start, end);
    }

    /// Groups a peer no longer fetches (done or not): free for the others again.
    fn release(&mut self, start: u64, end: u64) {
        self.claimed.remove(start, end);
    }

    fn claimable(&self) -> bool {
        !self.free().is_empty()
    }

    fn complete(&self) -> bool {
        self.done.len() >= self.total
    }
}

/// A large blob being received into its partial file, possibly from several peers at once.
struct Partial {
    blob_id: BlobId,
    sealed_len: u64,
    file: DirectFile,
    path: PathBuf,
    plan: Mutex<Plan>,
    transfer: TransferHandle,
    /// Verified bytes received from each peer.
    by_peer: Mutex<std::collections::BTreeMap<DeviceId, u64>>,
    /// Buffers for runs of verified chunk groups on their way to the file.
    buffers: Arc<Pool>,
    /// The parent hashes verified on the way, when this process receives the whole blob
    /// (not a resumed one): then the finished blob needs no second hashing.
    parents: Mutex<Option<Parents>>,
}

impl Partial {
    fn open(
        path: &Path,
        blob_id: BlobId,
        sealed_len: u64,
        done: GroupSet,
        transfer: TransferHandle,
        buffers: Arc<Pool>,
    ) -> io::Result<Self> {
        let file = DirectFile::open(
            path,
            OpenOptions::new().create(true).truncate(false).write(true),
        )?;
        let parents = done.is_empty().then(|| Parents::new(blob_id, sealed_len));
        Ok(Self {
            blob_id,
            sealed_len,
            file,
            path: path.to_path_buf(),
            plan: Mutex::new(Plan::new(groups_of(sealed_len), done)),
            transfer,
            by_peer: Mutex::default(),
            buffers,
            parents: Mutex::new(parents),
        })
    }

    fn plan(&self) -> io::Result<std::sync::MutexGuard<'_, Plan>> {
        self.plan
            .lock()
            .map_err(|_| io::Error::other("the transfer's plan is poisoned"))
    }

    /// Makes groups `start..end` durable and records them as verified in the progress file.
    fn persist(&self, start: u64, end: u64) -> io::Result<()> {
        if start >= end {
            return Ok(());
        }
        self.file.file().sync_data()?;
        let mut plan = self.plan()?;
        plan.finish(start, end);
        write_progress(&self.path, &plan.done, self.sealed_len)
    }

    fn complete(&self) -> bool {
        self.plan().is_ok_and(|p| p.complete())
    }

    /// Keeps a verified parent hash pair.
    fn save_parent(&self, parent: &bao_tree::io::Parent) {
        if let Ok(mut parents) = self.parents.lock()
            && let Some(parents) = parents.as_mut()
        {
            parents.save(parent);
        }
    }

    /// The blob's outboard, if every parent hash of it was verified by this process.
    fn verified_outboard(&self) -> Option<Vec<u8>> {
        self.parents.lock().ok()?.take()?.outboard()
    }
}

/// The parent hash pairs of a blob as they verify, towards its outboard.
struct Parents {
    outboard: PostOrderMemOutboard,
    seen: Vec<bool>,
    missing: usize,
}

impl Parents {
    fn new(blob_id: BlobId, sealed_len: u64) -> Self {
        let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
        let pairs = (tree.outboard_size() / 64) as usize;
        Self {
            outboard: PostOrderMemOutboard {
                root: blake3::Hash::from_bytes(blob_id.0),
                tree,
                data: vec![0; pairs * 64],
            },
            seen: vec![false; pairs],
            missing: pairs,
        }
    }

    fn save(&mut self, parent: &bao_tree::io::Parent) {
        use bao_tree::io::sync::OutboardMut;
        let Some(at) = self.outboard.tree.post_order_offset(parent.node) else {
            return;
        };
        let Some(seen) = self.seen.get_mut(at.value() as usize) else {
            return;
        };
        if self.outboard.save(parent.node, &parent.pair).is_ok() && !*seen {
            *seen = true;
            self.missing -= 1;
        }
    }

    /// The outboard, if every parent hash pair was saved.
    fn outboard(self) -> Option<Vec<u8>> {
        (self.missing == 0).then_some(self.outboard.data)
    }
}

/// How one peer's part of a blob ended.
enum WorkerEnd {
    /// Nothing more to claim.
    Idle,
    /// The peer's stream reached groups another peer has.
    Stopped,
    /// The peer does not hold the blob.
    NotHere,
    /// The peer sent data that does not verify.
    Bad(String),
    /// The connection or the disk failed.
    Failed(String),
}

impl WorkerEnd {
    fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Stopped => "stopped",
            Self::NotHere => "not here",
            Self::Bad(_) => "bad data",
            Self::Failed(_) => "failed",
        }
    }
}

impl From<Result<bool, ReceiveError>> for WorkerEnd {
    fn from(result: Result<bool, ReceiveError>) -> Self {
        match result {
            Ok(true) => Self::Idle,
            Ok(false) => Self::Stopped,
            Err(ReceiveError::BadData(why)) => Self::Bad(why),
            Err(ReceiveError::Interrupted(e)) => Self::Failed(e.to_string()),
        }
    }
}

/// Receives the stream the first peer opened, from group `from` to the end, claiming each
/// group as it arrives and stopping where another peer's part begins.
async fn stream_worker(
    partial: Arc<Partial>,
    peer: DeviceId,
    recv: quinn::RecvStream,
    from: u64,
) -> WorkerEnd {
    let recv = tokio_util::io::SyncIoBridge::new(recv);
    let total = groups_of(partial.sealed_len);
    match tokio::task::spawn_blocking(move || receive_into(&partial, peer, recv, from, total, true))
        .await
    {
        Ok(result) => result.into(),
        Err(e) => WorkerEnd::Failed(e.to_string()),
    }
}

/// Fetches ranges of the blob from one peer until none is left to claim.
async fn range_worker(
    peer: DeviceId,
    connection: quinn::Connection,
    partial: Arc<Partial>,
    from_back: bool,
) -> WorkerEnd {
    loop {
        let claimed = partial.plan().ok().and_then(|mut p| p.claim(from_back));
        let Some((start, end)) = claimed else {
            return WorkerEnd::Idle;
        };
        let result = fetch_range(peer, &connection, &partial, start, end).await;
        if let Ok(mut plan) = partial.plan() {
            plan.release(start, end);
        }
        match result {
            WorkerEnd::Idle | WorkerEnd::Stopped => {}
            other => return other,
        }
    }
}

/// Fetches chunk groups `start..end` of the blob from one peer with a range request.
async fn fetch_range(
    peer: DeviceId,
    connection: &quinn::Connection,
    partial: &Arc<Partial>,
    start: u64,
    end: u64,
) -> WorkerEnd {
    let opened = async {
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(net::describe_lost(&e)))?;
        net::write_frame(
            &mut send,
            &Request::BlobRange {
                blob_id: partial.blob_id.0,
                first_group: start,
                end_group: end,
            },
        )
        .await?;
        let _ = send.finish();
        let header = net::read_frame::<BlobHeader>(&mut recv).await?;
        Ok::<_, NetError>((header, recv))
    };
    let recv = match opened.await {
        Ok((BlobHeader::NotHere, _)) => return WorkerEnd::NotHere,
        Ok((BlobHeader::Follows { .. }, recv)) => recv,
        Err(e) => return WorkerEnd::Failed(e.to_string()),
    };
    let recv = tokio_util::io::SyncIoBridge::new(recv);
    let partial = partial.clone();
    match tokio::task::spawn_blocking(move || receive_into(&partial, peer, recv, start, end, false))
        .await
    {
        Ok(result) => result.into(),
        Err(e) => WorkerEnd::Failed(e.to_string()),
    }
}

/// Fetches a large blob into its partial file: the first peer from the stream it opened,
/// every other connected peer that holds it with range requests from the end backwards; a
/// peer that fails leaves its unfinished part to the others, one that sends bad data is
/// recorded and dropped. Then the blob is checked as a whole and staged.
async fn fetch_large(
    fetcher: &Arc<Fetcher>,
    blob_id: BlobId,
    sealed_len: u64,
    done: GroupSet,
    stream: Option<(quinn::RecvStream, u64)>,
    transfer: TransferHandle,
    path: PathBuf,
) -> Result<Received, FetchError> {
    #[derive(PartialEq)]
    enum State {
        Idle,
        Busy,
        Out,
    }
    let io_failed = |e: io::Error| NetError::Connection(format!("blob {blob_id}: {e}"));
    fs::create_dir_all(&fetcher.partial_dir).map_err(io_failed)?;
    let partial = Partial::open(
        &path,
        blob_id,
        sealed_len,
        done,
        transfer,
        fetcher.buffers.clone(),
    );
    let partial = Arc::new(partial.map_err(io_failed)?);
    let first = fetcher.peer;
    let mut peers: std::collections::BTreeMap<DeviceId, (quinn::Connection, State)> =
        std::collections::BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut first_state = State::Idle;
    if let Some((recv, from)) = stream {
        tasks.spawn(stream_worker(partial.clone(), first, recv, from).map_to(first));
        first_state = State::Busy;
    }
    peers.insert(first, (fetcher.connection.clone(), first_state));
    let mut tick = tokio::time::interval(HELPER_LOOK);
    let mut look = true;
    let mut helped = HashSet::new();
    let mut last_error = String::from("no peer could send it");
    while !partial.complete() {
        if look && let Some(helpers) = &fetcher.helpers {
            let found = helpers.for_blob(&blob_id, &first).await;
            tracing::debug!(blob = %blob_id, helpers = found.len(), "peers to fetch ranges from");
            for (device, connection) in found {
                peers.entry(device).or_insert((connection, State::Idle));
            }
        }
        look = false;
        for (device, (connection, state)) in peers.iter_mut() {
            if *state != State::Idle || !partial.plan().is_ok_and(|p| p.claimable()) {
                continue;
            }
            *state = State::Busy;
            partial.transfer.add_peer(*device);
            if *device != first && helped.insert(*device) {
                tracing::info!(blob = %blob_id, peer = %device.short(), "fetching ranges of a blob from another peer too");
            }
            let worker = range_worker(
                *device,
                connection.clone(),
                partial.clone(),
                *device != first,
            );
            tasks.spawn(worker.map_to(*device));
        }
        if tasks.is_empty() {
            return Err(NetError::Connection(format!("blob {blob_id}: {last_error}")).into());
        }
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            _ = tick.tick() => { look = true; continue; }
        };
        let Some(joined) = joined else { continue };
        let (device, end) = joined.map_err(|e| SyncError::Protocol(e.to_string()))?;
        let Some((connection, state)) = peers.get_mut(&device) else {
            continue;
        };
        *state = State::Out;
        tracing::debug!(blob = %blob_id, peer = %device.short(), end = end.name(), "a peer's part ended");
        match end {
            WorkerEnd::Idle | WorkerEnd::Stopped => *state = State::Idle,
            WorkerEnd::NotHere => {}
            WorkerEnd::Failed(mut why) => {
                // A lost stream says only "connection lost"; the connection knows why.
                if let Some(reason) = connection.close_reason() {
                    why = format!("{why} ({})", net::describe_lost(&reason));
                }
                tracing::info!(blob = %blob_id, peer = %device.short(), "a peer stopped sending its part of a blob; the others take it over: {why}");
                last_error = why;
            }
            WorkerEnd::Bad(why) if device == first => {
                // The link's own peer: recorded and disconnected by `fetch_all`. What
                // verified stays.
                return Err(FetchError::Bad(blob_id, why));
            }
            WorkerEnd::Bad(why) => {
                connection.close(4u32.into(), b"bad data");
                if let Some(helpers) = &fetcher.helpers {
                    let bad = crate::index::BadPeer {
                        device,
                        at_ms: crate::scan::now_ms(),
                        blob: blob_id,
                        reason: why.clone(),
                    };
                    helpers.home.lock().await.index.record_bad_peer(&bad)?;
                }
                tracing::warn!(peer = %device, %blob_id, "a peer sent blob data that does not match the blob ID; it is not asked for blobs for {:?}: {why}", BAD_PEER_COOLDOWN);
                last_error = why;
            }
        }
    }
    drop(tasks);
    let by_peer = partial
        .by_peer
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    if by_peer.len() > 1 {
        let bytes: Vec<String> = by_peer
            .iter()
            .map(|(d, n)| format!("{}:{n}", d.short()))
            .collect();
        tracing::info!(
            blob = %blob_id,
            peers = by_peer.len(),
            bytes_by_peer = bytes.join(","),
            "blob received in ranges from several peers"
        );
    }
    let file = partial.file.file();
    file.set_len(sealed_len)
        .and_then(|()| file.sync_all())
        .map_err(io_failed)?;
    let outboard = partial.verified_outboard();
    drop(partial);
    // Hashing the whole file again (a resumed blob) is blocking work: off the async threads.
    let store = fetcher.store.clone();
    let kept = tokio::task::spawn_blocking(move || keep(&store, &path, &blob_id, outboard))
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

/// Tags a worker's end with its peer.
trait MapTo: std::future::Future<Output = WorkerEnd> + Sized {
    fn map_to(self, device: DeviceId) -> impl std::future::Future<Output = (DeviceId, WorkerEnd)> {
        async move { (device, self.await) }
    }
}

impl<F: std::future::Future<Output = WorkerEnd>> MapTo for F {}

/// The most bytes a bao encoding of a blob of `sealed_len` bytes can take: the blob, its
/// length prefix, and 64 bytes of parent hashes per chunk group.
fn encoded_len_limit(sealed_len: u64) -> u64 {
    sealed_len + 8 + (sealed_len / GROUP_BYTES + 1) * 64
}

/// Receives a small blob whole into memory, verifies it, and stages it with one write.
/// The stream's chunks are kept as quinn hands them over (no copy) and decoded from there
/// into a reused buffer.
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
    let mut encoded = Chunks::default();
    while let Some(chunk) = recv
        .read_chunk(usize::MAX, true)
        .await
        .map_err(|e| NetError::Connection(format!("blob {blob_id}: {e}")))?
    {
        encoded.len += chunk.bytes.len();
        if encoded.len > limit {
            return Err(NetError::Connection(format!(
                "blob {blob_id}: the peer sent more than the blob's encoding"
            ))
            .into());
        }
        encoded.chunks.push_back(chunk.bytes);
    }
    // Decoded and written with one hand-off to a blocking thread: the write is direct I/O,
    // and many of them in parallel keep the disk busy.
    let store = fetcher.store.clone();
    let buffers = fetcher.buffers.clone();
    tokio::task::spawn_blocking(move || -> Result<Received, FetchError> {
        let mut data = buffers.take(sealed_len as usize);
        let staged =
            decode_in_memory(encoded, &blob_id, &transfer, &mut data).and_then(|outboard| {
                let staged = store
                    .stage(&blob_id, &data)
                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
                Ok(Received {
                    staged,
                    sealed_len,
                    outboard,
                })
            });
        buffers.give(data);
        staged
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?
}

/// A stream's chunks as received, read in order.
#[derive(Default)]
struct Chunks {
    chunks: std::collections::VecDeque<bytes::Bytes>,
    len: usize,
}

impl io::Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(front) = self.chunks.front_mut() {
            if front.is_empty() {
                self.chunks.pop_front();
                continue;
            }
            let n = front.len().min(buf.len());
            buf[..n].copy_from_slice(&front[..n]);
            bytes::Buf::advance(front, n);
            return Ok(n);
        }
        Ok(0)
    }
}

/// Decodes a whole bao encoding into `data` (as long as the blob), checking every chunk
/// group. Returns the blob's outboard, built from the parent hashes the decoding verified
/// (so the blob is not hashed a second time).
fn decode_in_memory(
    encoded: impl io::Read,
    blob_id: &BlobId,
    transfer: &TransferHandle,
    data: &mut Aligned,
) -> Result<Vec<u8>, FetchError> {
    use bao_tree::io::BaoContentItem;
    use bao_tree::io::DecodeError;
    let sealed_len = data.len() as u64;
    let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
    let ranges = ChunkRanges::all();
    let items = bao_tree::io::sync::DecodeResponseIter::new(
        blake3::Hash::from_bytes(blob_id.0),
        tree,
        encoded,
        &ranges,
    );
    let data = data.bytes_mut();
    let mut parents = Parents::new(*blob_id, sealed_len);
    let mut verified = 0u64;
    for item in items {
        match item {
            Ok(BaoContentItem::Parent(parent)) => parents.save(&parent),
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
    parents.outboard().ok_or_else(|| {
        NetError::Connection(format!(
            "blob {blob_id}: parent hashes missing from the stream"
        ))
        .into()
    })
}

/// Stages a completely received blob for the blob store (moved, not copied); the partial
/// file is gone afterwards either way. Its `outboard`, if every parent hash was verified as
/// it arrived; else (a resumed blob, part of it written by an earlier process) the file is
/// checked as a whole, computing the outboard. Returns the staged blob and its outboard.
fn keep(
    blobs: &BlobStore,
    partial: &Path,
    blob_id: &BlobId,
    outboard: Option<Vec<u8>>,
) -> io::Result<(Staged, Vec<u8>)> {
    let checked = match outboard {
        Some(outboard) => Ok(outboard),
        None => File::open(partial).and_then(|f| {
            let tree = BaoTree::new(f.metadata()?.len(), OUTBOARD_BLOCK_SIZE);
            let mut outboard = Vec::new();
            let root = bao_tree::io::sync::outboard_post_order(
                io::BufReader::with_capacity(1 << 20, f),
                tree,
                &mut outboard,
            )?;
            // A resumed file that does not hash to its ID was damaged on disk meanwhile;
            // it is dropped and fetched again.
            if root.as_bytes() != &blob_id.0 {
                return Err(io::Error::other(
                    "it did not verify as a whole and will be fetched again",
                ));
            }
            Ok(outboard)
        }),
    };
    let result = checked.and_then(|outboard| {
        blobs
            .stage_file(blob_id, partial)
            .map(|staged| (staged, outboard))
            .map_err(io::Error::other)
    });
    remove_partial(partial);
    result
}

/// Bytes per chunk group: the unit of verification and of resumption.
const GROUP_BYTES: u64 = 16 * 1024;
/// How much verified data one peer's stream may bring between two persisted progress marks.
const PERSIST_EVERY: u64 = 4 * 1024 * 1024;
/// The first line of a progress file.
const PROGRESS_MAGIC: &str = "photomesh partial v1";

fn progress_path(partial: &Path) -> PathBuf {
    partial.with_extension("progress")
}

/// The verified chunk groups persisted for a partial blob, and the blob's sealed length.
/// A progress file that does not parse, or claims ranges out of order, counts as nothing
/// verified; ranges past the partial file's length on disk are cut to it.
fn read_progress(partial: &Path) -> (GroupSet, Option<u64>) {
    let nothing = (GroupSet::default(), None);
    let Ok(text) = fs::read_to_string(progress_path(partial)) else {
        return nothing;
    };
    let mut lines = text.lines();
    let Some(sealed_len) = lines
        .next()
        .and_then(|l| l.strip_prefix(PROGRESS_MAGIC))
        .and_then(|l| l.trim().parse::<u64>().ok())
    else {
        return nothing;
    };
    let on_disk = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let mut set = GroupSet::default();
    let mut last_end = 0;
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some(Ok(start)), Some(Ok(end)), None) = (
            words.next().map(str::parse::<u64>),
            words.next().map(str::parse::<u64>),
            words.next(),
        ) else {
            return nothing;
        };
        let aligned = start % GROUP_BYTES == 0 && (end % GROUP_BYTES == 0 || end == sealed_len);
        if !aligned || start >= end || start < last_end || end > sealed_len {
            return nothing;
        }
        last_end = end;
        // Never trust more than what is on disk.
        let end_group = if end <= on_disk {
            groups_of(end)
        } else {
            on_disk / GROUP_BYTES
        };
        set.insert(start / GROUP_BYTES, end_group);
    }
    (set, Some(sealed_len))
}

/// Replaces the progress file, atomically, with the verified groups `done`.
fn write_progress(partial: &Path, done: &GroupSet, sealed_len: u64) -> io::Result<()> {
    let path = progress_path(partial);
    let tmp = path.with_extension("progress-tmp");
    let mut text = format!("{PROGRESS_MAGIC} {sealed_len}\n");
    for &(s, e) in &done.0 {
        let (start, end) = (
            (s * GROUP_BYTES).min(sealed_len),
            (e * GROUP_BYTES).min(sealed_len),
        );
        text.push_str(&format!("{start} {end}\n"));
    }
    fs::write(&tmp, text)?;
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

/// Decodes a bao stream of chunk groups `first..end` of the blob into its partial file,
/// writing every chunk group only after it verified against the blob ID and persisting the
/// verified groups every [`PERSIST_EVERY`] bytes and when the stream stops, however it
/// stops. With `claim_each`, every group is claimed in the plan before it is written, and
/// the stream stops (`Ok(false)`) at the first group another peer has. `Ok(true)`: the
/// whole range arrived.
fn receive_into(
    partial: &Partial,
    peer: DeviceId,
    encoded: impl io::Read,
    first: u64,
    end: u64,
    claim_each: bool,
) -> Result<bool, ReceiveError> {
    use bao_tree::io::BaoContentItem;
    use bao_tree::io::DecodeError;
    let interrupted = ReceiveError::Interrupted;
    let total = groups_of(partial.sealed_len);
    let end = end.min(total);
    let tree = BaoTree::new(partial.sealed_len, OUTBOARD_BLOCK_SIZE);
    let ranges = group_chunks(first, end);
    let mut items = bao_tree::io::sync::DecodeResponseIter::new(
        blake3::Hash::from_bytes(partial.blob_id.0),
        tree,
        io::BufReader::with_capacity(1 << 20, encoded),
        &ranges,
    );
    // Verified since the last persisted mark: `pending..verified`; the run of verified
    // groups not yet in the file starts at byte `run_start` and is `run_len` long.
    let mut pending = first;
    let mut verified = first;
    let mut claimed_to = first;
    let mut run = partial.buffers.take(RUN_BYTES);
    let mut run_start = first * GROUP_BYTES;
    let mut run_len = 0;
    let result = loop {
        let Some(item) = items.next() else {
            if verified < end {
                break Err(interrupted(io::Error::other(
                    "the stream ended before the range did",
                )));
            }
            break Ok(true);
        };
        match item {
            Ok(BaoContentItem::Parent(parent)) => partial.save_parent(&parent),
            Ok(BaoContentItem::Leaf(leaf)) => {
                let group = leaf.offset / GROUP_BYTES;
                let group_end = (leaf.offset + leaf.data.len() as u64).div_ceil(GROUP_BYTES);
                if group != verified {
                    break Err(interrupted(io::Error::other("a chunk group out of order")));
                }
                if claim_each {
                    let mine = match partial.plan() {
                        Ok(mut plan) => (group..group_end).all(|g| plan.claim_group(g)),
                        Err(e) => break Err(interrupted(e)),
                    };
                    if !mine {
                        break Ok(false);
                    }
                    claimed_to = group_end;
                }
                if run_len + leaf.data.len() > RUN_BYTES {
                    if let Err(e) = write_run(partial, &mut run, run_start, run_len) {
                        break Err(interrupted(e));
                    }
                    run_start += run_len as u64;
                    run_len = 0;
                }
                run.bytes_mut()[run_len..run_len + leaf.data.len()].copy_from_slice(&leaf.data);
                run_len += leaf.data.len();
                verified = group_end;
                partial.transfer.advance(leaf.data.len() as u64);
                if let Ok(mut by_peer) = partial.by_peer.lock() {
                    *by_peer.entry(peer).or_default() += leaf.data.len() as u64;
                }
                if (verified - pending) * GROUP_BYTES >= PERSIST_EVERY {
                    if let Err(e) = write_run(partial, &mut run, run_start, run_len)
                        .and_then(|()| partial.persist(pending, verified))
                    {
                        break Err(interrupted(e));
                    }
                    run_start += run_len as u64;
                    run_len = 0;
                    pending = verified;
                }
            }
            Err(e @ (DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_))) => {
                break Err(ReceiveError::BadData(format!("verification failed: {e}")));
            }
            Err(DecodeError::Io(e)) => break Err(interrupted(e)),
            Err(e) => break Err(interrupted(io::Error::other(e.to_string()))),
        }
    };
    // What verified is kept, whatever stopped the stream: written, then persisted.
    let persisted = match write_run(partial, &mut run, run_start, run_len) {
        Ok(()) => partial.persist(pending, verified),
        Err(e) => partial
            .persist(pending, run_start / GROUP_BYTES)
            .and(Err(e)),
    };
    partial.buffers.give(run);
    if claim_each && let Ok(mut plan) = partial.plan() {
        plan.release(first, claimed_to);
    }
    match (result, persisted) {
        (Ok(_), Err(e)) => Err(interrupted(e)),
        (result, _) => result,
    }
}

/// Verified chunk groups gathered for one write to a partial file.
const RUN_BYTES: usize = 1 << 20;

/// Writes the first `len` bytes of `run` at `start` in the partial file.
fn write_run(partial: &Partial, run: &mut Aligned, start: u64, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    run.set_len(len);
    let written = partial.file.write_at(run, start, partial.sealed_len);
    run.set_len(RUN_BYTES);
    written
}

/// Answers a blob request ([`Request::Blob`]: the groups from `from_group` to the end) or a
/// range request ([`Request::BlobRange`]): the bao encoding of chunk groups `groups`
/// (clipped to the blob), from the blob store or sealed on the fly from the original.
pub async fn serve_blob_range(
    home: &tokio::sync::Mutex<Home>,
    blob_id: BlobId,
    groups: std::ops::Range<u64>,
    send: &mut quinn::SendStream,
) -> Result<(), SyncError> {
    // Blob data gives way to everything else on the connection (see [`BLOB_PRIORITY`]).
    let _ = send.set_priority(BLOB_PRIORITY);
    let source = BlobSource::open(&*home.lock().await, &blob_id)?;
    let Some(source) = source else {
        net::write_frame(send, &BlobHeader::NotHere).await?;
        let _ = send.finish();
        return Ok(());
    };
    net::write_frame(
        send,
        &BlobHeader::Follows {
            sealed_len: source.sealed_len(),
        },
    )
    .await?;
    let sending = |e: io::Error| NetError::Connection(format!("sending blob {blob_id}: {e}"));
    let capacity = encoded_len_limit(source.sealed_len()).min(SERVE_PIECE as u64) as usize;
    if source.sealed_len() <= INLINE_WORK {
        // At most a couple of hundred microseconds of work (sealing and hashing 256 KiB):
        // done here, no hand-off to another thread.
        let mut encoded = Vec::with_capacity(capacity);
        source
            .encode_groups(groups, &mut encoded)
            .map_err(sending)?;
        send.write_chunk(encoded.into())
            .await
            .map_err(|e| sending(e.into()))?;
    } else {
        // Encoded off the async threads, a piece at a time, a piece ahead of the network;
        // the pieces are handed to quinn whole (no copy). The encoder thread waits only
        // for a free piece slot, never for the network itself.
        let (pieces, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let encoder = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut writer = Pieces {
                piece: Vec::with_capacity(capacity),
                capacity,
                pieces,
            };
            source.encode_groups(groups, &mut writer)?;
            writer.send()
        });
        while let Some(piece) = next.recv().await {
            send.write_chunk(piece.into())
                .await
                .map_err(|e| sending(e.into()))?;
        }
        encoder
            .await
            .map_err(|e| SyncError::Protocol(e.to_string()))?
            .map_err(sending)?;
    }
    let _ = send.finish();
    Ok(())
}

/// The send priority of blob answers: below the conversation's other streams (hello,
/// record reconciliation and fetches, announcements, at quinn's default 0), so that a new
/// photo's record is not queued behind a video. Blob answers among themselves are sent one
/// after the other, not interleaved ([`crate::transport::transport_config`]).
pub const BLOB_PRIORITY: i32 = -1;

/// Blobs up to this sealed size are encoded on the async thread that serves them (tens to a
/// couple of hundred microseconds); larger ones on the blocking threads.
const INLINE_WORK: u64 = 256 << 10;
/// Larger ones are handed to the network in pieces of this many bytes.
const SERVE_PIECE: usize = 256 << 10;

/// An encoding on its way to the network, in pieces.
struct Pieces {
    piece: Vec<u8>,
    capacity: usize,
    pieces: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl Pieces {
    /// Hands the piece gathered so far to the network.
    fn send(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(self.capacity));
        self.pieces
            .blocking_send(piece)
            .map_err(|_| io::Error::other("the stream was closed"))
    }
}

impl io::Write for Pieces {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.piece.len() >= self.capacity {
            self.send()?;
        }
        let n = buf.len().min(self.capacity - self.piece.len());
        self.piece.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
        let Some(BlobInfo {
            sealed_len,
            outboard,
            stored,
        }) = home.index.blob_info(blob_id)?
        else {
            return Ok(None);
        };
        let outboard = PostOrderMemOutboard {
            root: blake3::Hash::from_bytes(blob_id.0),
            tree: BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE),
            data: outboard,
        };
        if stored && let Ok(file) = File::open(home.blobs.path_of(blob_id)) {
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
        self.encode_groups(from_group..u64::MAX, writer)
    }

    /// Writes the bao encoding of chunk groups `groups` (clipped to the blob), checking
    /// every chunk group against the blob ID as it is read, like [`BlobSource::encode`].
    pub fn encode_groups(
        &self,
        groups: std::ops::Range<u64>,
        writer: impl io::Write,
    ) -> io::Result<()> {
        let ranges = group_chunks(groups.start, groups.end);
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

/// The chunks of chunk groups `first..end`.
fn group_chunks(first: u64, end: u64) -> ChunkRanges {
    let log = OUTBOARD_BLOCK_SIZE.chunk_log();
    let max = u64::MAX >> log;
    ChunkRanges::from(ChunkNum(first.min(max) << log)..ChunkNum(end.min(max) << log))
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

/// Fetches `wanted` (those not held yet) from `peer` over `connection` — large blobs also
/// in ranges from `helpers` — whatever the hold policy says: the caller chose the blobs.
/// Returns how many were stored.
pub async fn fetch_from(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    connection: &quinn::Connection,
    peer: DeviceId,
    transfers: &Transfers,
    wanted: Vec<BlobId>,
    helpers: Option<Helpers>,
) -> Result<usize, SyncError> {
    let (store, partial_dir) = {
        let home = home.lock().await;
        (home.blobs.clone(), home.path.join("blobs/partial"))
    };
    let fetcher = Arc::new(Fetcher {
        connection: connection.clone(),
        peer,
        store,
        partial_dir,
        transfers: transfers.clone(),
        bytes: tokio::sync::Semaphore::new((MAX_IN_FLIGHT_BYTES >> 10) as usize),
        buffers: engine.buffers.clone(),
        helpers,
    });
    fetch_all(home, engine, fetcher, wanted).await
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
        let result = fetch_from(
            home,
            &engine,
            &connection,
            member.device,
            &transfers,
            left.clone(),
            None,
        )
        .await;
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

    /// A blob's data, its ID, and a function giving the bao encoding of a group range.
    fn blob(len: u32, seed: u32) -> (Vec<u8>, BlobId, impl Fn(u64, u64) -> Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| ((i * seed) % 251) as u8).collect();
        let ob = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
        let blob_id = BlobId(*ob.root.as_bytes());
        let d = data.clone();
        let encode = move |first: u64, end: u64| {
            let mut encoded = Vec::new();
            bao_tree::io::sync::encode_ranges_validated(
                &d[..],
                &ob,
                &group_chunks(first, end),
                &mut encoded,
            )
            .unwrap();
            encoded
        };
        (data, blob_id, encode)
    }

    static PEER: std::sync::LazyLock<DeviceId> =
        std::sync::LazyLock::new(|| DeviceId::from_bytes([7; 20]));

    fn partial(path: &Path, blob_id: BlobId, len: u64) -> Partial {
        let (done, claimed) = read_progress(path);
        let done = if claimed == Some(len) {
            done
        } else {
            GroupSet::default()
        };
        Partial::open(path, blob_id, len, done, handle(), Arc::new(Pool::new(0))).unwrap()
    }

    #[test]
    fn a_transfer_resumes_from_the_persisted_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (data, blob_id, encode) = blob(9 << 20, 1);
        let len = data.len() as u64;
        let total = groups_of(len);
        let target = dir.path().join("partial");
        // The first try is cut after about two thirds: progress was persisted on the way.
        let full = encode(0, total);
        let first = partial(&target, blob_id, len);
        assert!(matches!(
            receive_into(&first, *PEER, &full[..full.len() * 2 / 3], 0, total, true),
            Err(ReceiveError::Interrupted(_))
        ));
        drop(first);
        let (done, claimed) = read_progress(&target);
        assert_eq!(claimed, Some(len));
        let from = done.first_missing();
        assert_eq!(done.0, vec![(0, from)], "one verified range from the start");
        assert!(from * GROUP_BYTES >= 4 << 20, "progress {from}");
        // The second try asks only for the rest, and the file ends complete.
        let rest = encode(from, total);
        assert!((rest.len() as u64) < full.len() as u64 - from * GROUP_BYTES + 64 * 1024);
        let second = partial(&target, blob_id, len);
        assert!(matches!(
            receive_into(&second, *PEER, &rest[..], from, total, true),
            Ok(true)
        ));
        assert!(second.complete());
        assert!(fs::read(&target).unwrap() == data);
        // Resumed: the parent hashes of the first part were verified by another process,
        // so the finished blob is hashed again as a whole.
        assert!(second.verified_outboard().is_none());
    }

    #[test]
    fn ranges_from_two_peers_make_the_whole_blob() {
        let dir = tempfile::tempdir().unwrap();
        let (data, blob_id, encode) = blob((10 << 20) + 5_000, 3);
        let len = data.len() as u64;
        let target = dir.path().join("partial");
        let p = partial(&target, blob_id, len);
        // One peer streams from the front, the other takes pieces from the back.
        let back = p.plan.lock().unwrap().claim(true).unwrap();
        assert_eq!(back.1, groups_of(len));
        assert_eq!(back.1 - back.0, PIECE_GROUPS);
        let front = encode(0, groups_of(len));
        // The front stream stops where the back piece begins.
        assert!(matches!(
            receive_into(&p, *PEER, &front[..], 0, groups_of(len), true),
            Ok(false)
        ));
        assert!(matches!(
            receive_into(
                &p,
                *PEER,
                &encode(back.0, back.1)[..],
                back.0,
                back.1,
                false
            ),
            Ok(true)
        ));
        p.plan.lock().unwrap().release(back.0, back.1);
        assert!(p.complete(), "{:?}", p.plan.lock().unwrap());
        assert!(fs::read(&target).unwrap() == data);
        let (done, _) = read_progress(&target);
        assert_eq!(done.0, vec![(0, groups_of(len))]);
        // The parent hashes verified by the two parts make the whole outboard: the
        // finished blob needs no second hashing.
        let outboard = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
        assert!(p.verified_outboard() == Some(outboard.data));
    }

    #[test]
    fn a_peer_failing_mid_range_leaves_its_unfinished_part_to_the_others() {
        let mut plan = Plan::new(1000, GroupSet::default());
        let a = plan.claim(false).unwrap();
        let b = plan.claim(true).unwrap();
        assert_eq!(a, (0, PIECE_GROUPS));
        assert_eq!(b, (1000 - PIECE_GROUPS, 1000));
        // Peer A verified 100 groups of its piece, then its connection dropped.
        plan.finish(0, 100);
        plan.release(a.0, a.1);
        // The next claim from the front is exactly what A did not finish…
        assert_eq!(plan.claim(false), Some((100, 100 + PIECE_GROUPS)));
        // …and claims never overlap what is claimed or done.
        let c = plan.claim(true).unwrap();
        assert_eq!(c, (1000 - 2 * PIECE_GROUPS, 1000 - PIECE_GROUPS));
        let d = plan.claim(true).unwrap();
        assert_eq!(d, (100 + PIECE_GROUPS, 1000 - 2 * PIECE_GROUPS));
        assert_eq!(plan.claim(false), None);
        assert!(
            !plan.claim_group(150),
            "a claimed group is not claimed twice"
        );
        for (s, e) in [(100, 100 + PIECE_GROUPS), b, c, d] {
            plan.finish(s, e);
        }
        assert!(plan.complete());
    }

    #[test]
    fn group_sets_merge_split_and_list_their_gaps() {
        let mut set = GroupSet::default();
        set.insert(10, 20);
        set.insert(30, 40);
        set.insert(20, 25);
        assert_eq!(set.0, vec![(10, 25), (30, 40)]);
        assert_eq!(set.gaps(50), vec![(0, 10), (25, 30), (40, 50)]);
        set.remove(12, 35);
        assert_eq!(set.0, vec![(10, 12), (35, 40)]);
        assert_eq!(set.len(), 7);
        assert_eq!(set.first_missing(), 0);
        set.insert(0, 10);
        assert_eq!(set.first_missing(), 12);
        assert_eq!(
            set.bytes(39 * GROUP_BYTES + 5),
            12 * GROUP_BYTES + 4 * GROUP_BYTES + 5
        );
    }

    #[test]
    fn a_progress_file_is_trusted_no_further_than_the_data_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("partial");
        let len = 100 * GROUP_BYTES + 7;
        let mut done = GroupSet::default();
        done.insert(0, 10);
        done.insert(50, 101);
        write_progress(&target, &done, len).unwrap();
        // No partial file at all: nothing is verified.
        assert_eq!(read_progress(&target).0, GroupSet::default());
        // The partial file holds the whole blob: all of it is as written.
        fs::write(&target, vec![0u8; len as usize]).unwrap();
        assert_eq!(read_progress(&target), (done.clone(), Some(len)));
        // Truncated on disk to 60 groups and a bit: only what is there counts.
        fs::write(&target, vec![0u8; (60 * GROUP_BYTES + 100) as usize]).unwrap();
        assert_eq!(read_progress(&target).0.0, vec![(0, 10), (50, 60)]);
        fs::write(&target, vec![0u8; len as usize]).unwrap();
        // Damaged progress files count as nothing verified.
        let progress = progress_path(&target);
        let good = fs::read_to_string(&progress).unwrap();
        for bad in [
            String::new(),
            "garbage".to_string(),
            good.replace("photomesh partial v1", "photomesh partial v9"),
            format!("{PROGRESS_MAGIC} {len}\n0 100\n"),
            format!("{PROGRESS_MAGIC} {len}\n{} 0\n", 4 * GROUP_BYTES),
            format!(
                "{PROGRESS_MAGIC} {len}\n0 {}\n0 {}\n",
                2 * GROUP_BYTES,
                GROUP_BYTES
            ),
            format!("{PROGRESS_MAGIC} {len}\n0 {}\n", len + GROUP_BYTES),
            format!("{PROGRESS_MAGIC} {len}\n0 {} 5\n", GROUP_BYTES),
            good[..good.len() - 3].to_string() + "x\n",
        ] {
            fs::write(&progress, &bad).unwrap();
            assert_eq!(read_progress(&target).0, GroupSet::default(), "{bad:?}");
        }
    }

    #[test]
    fn a_range_encoding_covering_a_small_blob_is_its_whole_encoding() {
        // Small blobs are fetched whole; a range request clipped to the blob gives the
        // same bytes, so either request serves them.
        let (data, _, encode) = blob(300_000, 5);
        let ob = PostOrderMemOutboard::create(&data, OUTBOARD_BLOCK_SIZE);
        let mut whole = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(
            &data[..],
            &ob,
            &ChunkRanges::all(),
            &mut whole,
        )
        .unwrap();
        assert!(encode(0, PIECE_GROUPS) == whole);
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
        let pool = Pool::new(0);
        let decode = |encoded: &[u8]| {
            let mut into = pool.take(data.len());
            decode_in_memory(encoded, &blob_id, &handle(), &mut into)
                .map(|outboard| (into.bytes().to_vec(), outboard))
        };
        let Ok((got, outboard)) = decode(&encoded) else {
            panic!("a good encoding did not decode");
        };
        assert!(got == data);
        assert_eq!(outboard, ob.data);
        let mut bad = encoded.clone();
        bad[100_000] ^= 4;
        assert!(matches!(decode(&bad), Err(FetchError::Bad(..))));
        assert!(matches!(
            decode(&encoded[..50_000]),
            Err(FetchError::Sync(_))
        ));
        // Chunks as quinn hands them over read as the one encoding.
        let mut chunks = Chunks::default();
        for piece in encoded.chunks(1200) {
            chunks
                .chunks
                .push_back(bytes::Bytes::copy_from_slice(piece));
        }
        let mut into = pool.take(data.len());
        assert_eq!(
            decode_in_memory(chunks, &blob_id, &handle(), &mut into).ok(),
            Some(ob.data)
        );
        assert!(into.bytes() == data);
    }

    #[test]
    fn receiving_a_corrupted_stream_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (data, blob_id, encode) = blob(300_000, 7);
        let len = data.len() as u64;
        let total = groups_of(len);
        let encoded = encode(0, total);
        let target = dir.path().join("partial");
        let good = partial(&target, blob_id, len);
        assert!(matches!(
            receive_into(&good, *PEER, &encoded[..], 0, total, true),
            Ok(true)
        ));
        assert_eq!(fs::read(&target).unwrap(), data);
        let mut bad = encoded.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        let other = dir.path().join("other");
        let p = partial(&other, blob_id, len);
        assert!(matches!(
            receive_into(&p, *PEER, &bad[..], 0, total, true),
            Err(ReceiveError::BadData(_))
        ));
        // What arrived before the bad chunk group is verified data, and nothing after it;
        // the progress file claims only that.
        let written = fs::read(&other).unwrap();
        assert!(written.len() < data.len());
        assert_eq!(written[..], data[..written.len()]);
        let (done, _) = read_progress(&other);
        assert!(done.bytes(len) <= written.len() as u64);
        drop(p);
        // A stream cut short is an interruption, not bad data.
        let p = partial(&other, blob_id, len);
        let from = p.plan.lock().unwrap().done.first_missing();
        let rest = encode(from, total);
        assert!(matches!(
            receive_into(&p, *PEER, &rest[..rest.len() / 3], from, total, true),
            Err(ReceiveError::Interrupted(_))
        ));
    }
}
