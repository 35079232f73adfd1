//! Fetching blobs from one peer: up to [`MAX_IN_FLIGHT_BLOBS`] streams at once, small blobs
//! received whole ([`crate::replicate::receive`]), large ones in ranges from several peers
//! ([`crate::replicate::ranges`]), staged and committed in batches while the next arrive: one
//! filesystem flush on each side of the renames and one index transaction per batch.

use std::sync::Arc;

use std::time::{Duration, Instant};

use photomesh_protocol::messages::{BlobHeader, Request};

use photomesh_protocol::seal::BlobId;

use crate::blob::partial::{GROUP_BYTES, GroupSet, groups_of, read_progress};
use crate::blob::store::{BlobStore, Staged};
use crate::home::Home;
use crate::net::close::Close;
use crate::net::frame::{self, NetError};
use crate::replicate::error::SyncError;
use crate::replicate::fetcher::{FetchError, Fetcher, Received, SMALL_BLOB, Wanted};
use crate::replicate::held::BlobEngine;
use crate::replicate::held::Coordinating;
use crate::replicate::ranges::fetch_large;
use crate::replicate::receive::fetch_small;

/// The most blobs in flight from one peer at once.
pub const MAX_IN_FLIGHT_BLOBS: usize = 64;
/// Received blobs are made durable and recorded in batches of at most this many…
pub(crate) const BATCH_BLOBS: usize = 2048;
/// …or after this long, while more are arriving (the last blobs are committed at once).
/// Every commit writes each index page its blobs touched, and blob IDs land all over the
/// index: fewer, larger commits write fewer pages per blob.
pub(crate) const BATCH_AFTER: Duration = Duration::from_millis(500);

/// The blobs received since the last commit.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) received: Vec<Received>,
    pub(crate) started: Option<Instant>,
}

impl Batch {
    pub(crate) fn push(&mut self, received: Received) {
        self.started.get_or_insert_with(Instant::now);
        self.received.push(received);
    }

    /// When the batch is due to be committed: at once when full, else [`BATCH_AFTER`]
    /// after its first blob.
    pub(crate) fn due(&self) -> Option<Instant> {
        let started = self.started?;
        if self.received.len() >= BATCH_BLOBS {
            return Some(started);
        }
        Some(started + BATCH_AFTER)
    }

    pub(crate) fn take(&mut self) -> Vec<Received> {
        std::mem::take(self).received
    }
}

/// Fetches blobs with up to [`MAX_IN_FLIGHT_BLOBS`] streams at once, and stores them in
/// batches: one filesystem flush and one index transaction per batch, committed while the
/// next blobs arrive.
pub(crate) async fn fetch_all(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    fetcher: Arc<Fetcher>,
    wanted: Vec<Wanted>,
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
            let Some(wanted) = queue.next() else { break };
            if engine.held.contains(&wanted.blob) {
                continue;
            }
            // Another link's fetch has it (and asks this peer for ranges of it too).
            let Some(coordinating) = Coordinating::take(&engine.fetching, wanted.blob) else {
                continue;
            };
            tasks.spawn(fetch_one(fetcher.clone(), wanted, coordinating));
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
                match joined.map_err(SyncError::from) {
                    Ok(Ok(received)) => batch.push(received),
                    Ok(Err(FetchError::NotHere)) => {}
                    Ok(Err(e @ FetchError::Bad(..))) => {
                        // Everything else from this peer stops; what already verified is kept.
                        Close::BadData.close(&fetcher.connection);
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
            crate::replicate::bad_peer::record(home, fetcher.peer, blob, &why).await?;
            Err(SyncError::BadData { blob, why })
        }
        Some(FetchError::NotHere) => Ok(stored),
        Some(FetchError::Sync(e)) => Err(e),
    }
}

/// Makes a batch of received blobs durable ([`BlobStore::commit_staged`]: one flush, the
/// renames, one more flush), records them in one transaction, and adds them to the held
/// set. Returns how many. If the commit fails, the batch's staged files are removed: its
/// blobs were not stored and will be fetched again.
pub(crate) async fn store_batch(
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
    .map_err(SyncError::from)?
    .map_err(SyncError::Store)?;
    let home = home.lock().await;
    crate::lock::long_work(received.len(), || {
        home.index.add_stored_blobs(
            received
                .iter()
                .map(|(blob_id, (len, outboard))| (blob_id, *len, &outboard[..])),
        )
    })?;
    drop(home);
    // In ID order: blobs are asked for in that order, and a set filled in order keeps its
    // nodes full.
    let mut ids: Vec<BlobId> = received.iter().map(|(blob_id, _)| *blob_id).collect();
    ids.sort_unstable();
    for blob_id in ids {
        engine.held.insert(blob_id);
    }
    Ok(received.len())
}

/// Fetches one blob, verifying every chunk group before writing it, and stages it. A large
/// blob is fetched in ranges from this peer and from every other connected peer that holds
/// it ([`fetch_large`]); `_coordinating` keeps other links from fetching it meanwhile.
pub(crate) async fn fetch_one(
    fetcher: Arc<Fetcher>,
    wanted: Wanted,
    _coordinating: Coordinating,
) -> Result<Received, FetchError> {
    let blob_id = wanted.blob;
    let partial = fetcher.partial_dir.join(blob_id.to_hex());
    // Resume from the verified ranges that were persisted, if an earlier try got that far.
    let (done, claimed_len) = read_progress(&partial);
    let asked = done.first_missing();
    // A small blob is asked for once there is room to receive it: quinn buffers a stream
    // window of every stream asked for and not read, so 64 blobs asked for at once while
    // there was room for five held 16 MiB more in the receiving node.
    let room = match wanted.size {
        Some(size) if done.is_empty() && size <= SMALL_BLOB => Some(fetcher.room(size).await?),
        _ => None,
    };
    let (mut send, mut recv) = fetcher
        .connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
    frame::write_frame(
        &mut send,
        &Request::Blob {
            blob_id: blob_id.0,
            from_group: asked,
        },
    )
    .await?;
    let _ = send.finish();
    let sealed_len = match frame::read_frame::<BlobHeader>(&mut recv).await? {
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
        return fetch_small(&fetcher, blob_id, sealed_len, recv, transfer, room).await;
    }
    drop(room);
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
