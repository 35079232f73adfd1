//! What the fetches of blobs from one peer share: the [`Fetcher`], the limits, the other peers
//! a large blob can come from at the same time ([`Helpers`]), what a fetch yields
//! ([`Received`]) and how it fails ([`FetchError`]).

use std::path::PathBuf;
use std::sync::Arc;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::blob::direct::Pool;
use crate::blob::store::{BlobStore, Staged};
use crate::home::Home;
use crate::replicate::bad_peer;
use crate::replicate::error::SyncError;
use crate::replicate::transfers::Transfers;

/// The most bytes of small blobs buffered in memory at once. 16 MiB holds at least four
/// small blobs; 64 MiB cost the receiver of the replication bench's case (a) 40 MB of peak
/// RSS (200 against 160 MiB) for no throughput.
pub(crate) const MAX_IN_FLIGHT_BYTES: u64 = 16 << 20;
/// A blob to fetch, and about how many bytes it takes when the index knows
/// ([`crate::index::Index::blob_size_hint`]): a small blob's room in [`MAX_IN_FLIGHT_BYTES`] is
/// then taken before it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The blob.
    pub blob: BlobId,
    /// About how many bytes it takes, if the index knows.
    pub size: Option<u64>,
}

impl Wanted {
    /// A blob whose size is not known here: its room is taken once the peer says it.
    pub fn unknown(blob: BlobId) -> Self {
        Wanted { blob, size: None }
    }
}

/// Blobs up to this size are received in memory and written once; larger ones stream into
/// a partial file with persisted progress.
pub(crate) const SMALL_BLOB: u64 = 4 << 20;

/// What the fetches from one peer share.
pub(crate) struct Fetcher {
    pub(crate) connection: quinn::Connection,
    pub(crate) peer: DeviceId,
    pub(crate) store: BlobStore,
    pub(crate) partial_dir: PathBuf,
    pub(crate) transfers: Transfers,
    /// KiB of small blobs that may be buffered at once.
    pub(crate) bytes: tokio::sync::Semaphore,
    /// Buffers for received blobs, reused.
    pub(crate) buffers: Arc<Pool>,
    /// Other peers a large blob can be fetched from at the same time, in a running node.
    pub(crate) helpers: Option<Helpers>,
}

impl Fetcher {
    /// Waits for room to receive a small blob of `len` bytes in [`Fetcher::bytes`].
    pub(crate) async fn room(
        &self,
        len: u64,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, SyncError> {
        self.bytes
            .acquire_many(kib(len))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))
    }
}

/// The room a small blob of `len` bytes takes in [`Fetcher::bytes`], in KiB.
pub(crate) fn kib(len: u64) -> u32 {
    u32::try_from((len >> 10).max(1)).unwrap_or(u32::MAX)
}

/// A blob received and verified, staged in the store, waiting for its batch.
pub(crate) struct Received {
    pub(crate) staged: Staged,
    pub(crate) sealed_len: u64,
    pub(crate) outboard: Vec<u8>,
}

/// Why one blob's fetch from a peer ended without the blob.
pub(crate) enum FetchError {
    /// The peer does not hold it (any more).
    NotHere,
    /// The peer sent data that does not match the blob ID.
    Bad(BlobId, String),
    /// Anything else, with whose fault it was ([`SyncError`]).
    Sync(SyncError),
}

impl<E: Into<SyncError>> From<E> for FetchError {
    fn from(e: E) -> Self {
        Self::Sync(e.into())
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
    pub(crate) async fn for_blob(
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
        links
            .into_iter()
            .filter(|(d, _)| {
                let may_hold = holders.contains(d) || matches!(home.index.peer_sync(d), Ok(None));
                may_hold && !bad_peer::is_avoided(&home, d).unwrap_or(false)
            })
            .collect()
    }
}
