//! A large blob from several peers at once: the link's peer streams it from the front, every
//! other connected peer that holds it sends ranges of chunk groups from the back, each
//! verified before it is written; a peer that fails leaves its unfinished part to the others.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use photomesh_protocol::messages::{BlobHeader, Request};

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::blob::partial::{GroupSet, groups_of};
use crate::net::close::Close;
use crate::net::frame::{self, NetError};
use crate::replicate::bad_peer;
use crate::replicate::error::SyncError;
use crate::replicate::fetcher::{FetchError, Fetcher, Received};
use crate::replicate::partial_blob::Partial;
use crate::replicate::receive::{ReceiveError, StreamReader, keep, receive_into};
use crate::replicate::transfers::TransferHandle;

/// How often a blob's fetch looks for more peers that can send it.
pub(crate) const HELPER_LOOK: Duration = Duration::from_millis(250);

/// How one peer's part of a blob ended.
pub(crate) enum WorkerEnd {
    /// Nothing more to claim.
    Idle,
    /// The peer's stream reached groups another peer has.
    Stopped,
    /// The peer does not hold the blob.
    NotHere,
    /// The peer sent data that does not verify.
    Bad(String),
    /// The connection failed.
    Failed(String),
    /// This device could not write what arrived (a full disk).
    Disk(io::Error),
}

impl WorkerEnd {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Stopped => "stopped",
            Self::NotHere => "not here",
            Self::Bad(_) => "bad data",
            Self::Failed(_) => "failed",
            Self::Disk(_) => "disk failed",
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
            Err(ReceiveError::Disk(e)) => Self::Disk(e),
        }
    }
}

/// Receives the stream the first peer opened, from group `from` to the end, claiming each
/// group as it arrives and stopping where another peer's part begins.
pub(crate) async fn stream_worker(
    partial: Arc<Partial>,
    peer: DeviceId,
    recv: quinn::RecvStream,
    from: u64,
) -> WorkerEnd {
    let recv = StreamReader::new(recv);
    let total = groups_of(partial.sealed_len);
    match tokio::task::spawn_blocking(move || receive_into(&partial, peer, recv, from, total, true))
        .await
    {
        Ok(result) => result.into(),
        Err(e) => WorkerEnd::Failed(e.to_string()),
    }
}

/// Fetches ranges of the blob from one peer until none is left to claim.
pub(crate) async fn range_worker(
    peer: DeviceId,
    connection: quinn::Connection,
    partial: Arc<Partial>,
    from_back: bool,
) -> WorkerEnd {
    loop {
        let claimed = partial.plan().claim(from_back);
        let Some((start, end)) = claimed else {
            return WorkerEnd::Idle;
        };
        let result = fetch_range(peer, &connection, &partial, start, end).await;
        partial.plan().release(start, end);
        match result {
            WorkerEnd::Idle | WorkerEnd::Stopped => {}
            other => return other,
        }
    }
}

/// Fetches chunk groups `start..end` of the blob from one peer with a range request.
pub(crate) async fn fetch_range(
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
            .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
        frame::write_frame(
            &mut send,
            &Request::BlobRange {
                blob_id: partial.blob_id.0,
                first_group: start,
                end_group: end,
            },
        )
        .await?;
        let _ = send.finish();
        let header = frame::read_frame::<BlobHeader>(&mut recv).await?;
        Ok::<_, NetError>((header, recv))
    };
    let recv = match opened.await {
        Ok((BlobHeader::NotHere, _)) => return WorkerEnd::NotHere,
        Ok((BlobHeader::Follows { .. }, recv)) => recv,
        Err(e) => return WorkerEnd::Failed(e.to_string()),
    };
    let recv = StreamReader::new(recv);
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
pub(crate) async fn fetch_large(
    fetcher: &Arc<Fetcher>,
    blob_id: BlobId,
    sealed_len: u64,
    done: GroupSet,
    stream: Option<(quinn::RecvStream, u64)>,
    transfer: TransferHandle,
    path: PathBuf,
) -> Result<Received, FetchError> {
    let io_failed = |source| partial_failed(blob_id, source);
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
    gather(fetcher, &partial, stream).await?;
    log_contributions(&partial);
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
        .map_err(SyncError::from)?;
    let (staged, outboard) = kept.map_err(|source| SyncError::Disk {
        what: format!("keeping the received blob {blob_id}"),
        source,
    })?;
    Ok(Received {
        staged,
        sealed_len,
        outboard,
    })
}

/// A failure of this device's partial file of `blob_id`.
fn partial_failed(blob_id: BlobId, source: io::Error) -> SyncError {
    SyncError::Disk {
        what: format!("the partial file of blob {blob_id}"),
        source,
    }
}

/// Runs workers for every peer that can send a part of the blob until the partial file is
/// complete: the link's own peer (from `stream` if it opened one), and helpers as they are
/// found.
async fn gather(
    fetcher: &Arc<Fetcher>,
    partial: &Arc<Partial>,
    stream: Option<(quinn::RecvStream, u64)>,
) -> Result<(), FetchError> {
    #[derive(PartialEq)]
    enum State {
        Idle,
        Busy,
        Out,
    }
    let blob_id = partial.blob_id;
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
            if *state != State::Idle || !partial.plan().claimable() {
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
        let (device, end) = joined.map_err(SyncError::from)?;
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
                    why = format!("{why} ({})", frame::describe_lost(&reason));
                }
                tracing::info!(blob = %blob_id, peer = %device.short(), "a peer stopped sending its part of a blob; the others take it over: {why}");
                last_error = why;
            }
            WorkerEnd::Disk(source) => {
                // This device's fault: no peer takes it over; what verified is persisted.
                return Err(partial_failed(blob_id, source).into());
            }
            WorkerEnd::Bad(why) if device == first => {
                // The link's own peer: recorded and disconnected by `fetch_all`. What
                // verified stays.
                return Err(FetchError::Bad(blob_id, why));
            }
            WorkerEnd::Bad(why) => {
                Close::BadData.close(connection);
                if let Some(helpers) = &fetcher.helpers {
                    bad_peer::record(&helpers.home, device, blob_id, &why).await?;
                }
                last_error = why;
            }
        }
    }
    Ok(())
}

/// Says who sent how much of a blob that came from several peers.
fn log_contributions(partial: &Partial) {
    let by_peer = partial.by_peer.lock().clone();
    if by_peer.len() > 1 {
        let bytes: Vec<String> = by_peer
            .iter()
            .map(|(d, n)| format!("{}:{n}", d.short()))
            .collect();
        tracing::info!(
            blob = %partial.blob_id,
            peers = by_peer.len(),
            bytes_by_peer = bytes.join(","),
            "blob received in ranges from several peers"
        );
    }
}

/// Tags a worker's end with its peer.
pub(crate) trait MapTo: std::future::Future<Output = WorkerEnd> + Sized {
    fn map_to(self, device: DeviceId) -> impl std::future::Future<Output = (DeviceId, WorkerEnd)> {
        async move { (device, self.await) }
    }
}

impl<F: std::future::Future<Output = WorkerEnd>> MapTo for F {}
