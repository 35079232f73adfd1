//! Receiving a blob's bao encoding: every 16 KiB chunk group is checked against the blob ID
//! before it is written, so nothing unverified is ever stored; the outboard is rebuilt from
//! the parent hashes verified on the way.

use std::fs::File;
use std::io;
use std::path::Path;

use bao_tree::BaoTree;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::blob::direct::Aligned;
use crate::blob::partial::{GROUP_BYTES, PERSIST_EVERY, groups_of, remove_partial};
use crate::blob::sealed::OUTBOARD_BLOCK_SIZE;
use crate::blob::store::{BlobStore, Staged};
use crate::blob::verify::{Step, Verifier, group_ranges};
use crate::net::frame::NetError;
use crate::replicate::error::SyncError;
use crate::replicate::fetcher::{FetchError, Fetcher, Received, kib};
use crate::replicate::partial_blob::{Parents, Partial};
use crate::replicate::transfers::TransferHandle;

/// The most bytes a bao encoding of a blob of `sealed_len` bytes can take: the blob, its
/// length prefix, and 64 bytes of parent hashes per chunk group.
pub(crate) fn encoded_len_limit(sealed_len: u64) -> u64 {
    sealed_len + 8 + (sealed_len / GROUP_BYTES + 1) * 64
}

/// Receives a small blob whole into memory, verifies it, and stages it with one write.
/// The stream's chunks are kept as quinn hands them over (no copy) and decoded from there
/// into a reused buffer.
pub(crate) async fn fetch_small(
    fetcher: &Fetcher,
    blob_id: BlobId,
    sealed_len: u64,
    mut recv: quinn::RecvStream,
    transfer: TransferHandle,
    room: Option<tokio::sync::SemaphorePermit<'_>>,
) -> Result<Received, FetchError> {
    // The room taken before asking, unless the blob is larger than the index said: that is
    // given back and the whole taken again (never waiting while holding part of it).
    let _permit = match room {
        Some(room) if room.num_permits() >= kib(sealed_len) as usize => room,
        room => {
            drop(room);
            fetcher.room(sealed_len).await?
        }
    };
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
                let staged = store.stage(&blob_id, &data).map_err(SyncError::Store)?;
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
    .map_err(SyncError::from)?
}

/// A stream's chunks as received, read in order.
#[derive(Default)]
pub(crate) struct Chunks {
    pub(crate) chunks: std::collections::VecDeque<bytes::Bytes>,
    pub(crate) len: usize,
}

impl io::Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(front) = self.chunks.front_mut() {
            if front.is_empty() {
                self.chunks.pop_front();
                continue;
            }
            return Ok(take_into(front, buf));
        }
        Ok(0)
    }
}

/// Moves as many bytes as fit from the front of `chunk` into `buf`; how many.
fn take_into(chunk: &mut bytes::Bytes, buf: &mut [u8]) -> usize {
    let n = chunk.len().min(buf.len());
    buf[..n].copy_from_slice(&chunk[..n]);
    bytes::Buf::advance(chunk, n);
    n
}

/// A stream read from a blocking thread: quinn's received chunks are taken as they are,
/// up to [`StreamReader::BATCH`] at once, and copied only into the reader's buffer (for a
/// chunk group, where it is kept), with no buffer of its own between.
pub(crate) struct StreamReader {
    recv: quinn::RecvStream,
    runtime: tokio::runtime::Handle,
    chunks: [bytes::Bytes; Self::BATCH],
    /// `chunks[next..held]` are still to be read.
    next: usize,
    held: usize,
}

impl StreamReader {
    /// Chunks taken from quinn at once: one lock of the connection per batch, not per chunk
    /// (a chunk is one datagram's frame: 1.4 KB on an Ethernet LAN).
    const BATCH: usize = 32;

    /// A reader of `recv`, to be read on a blocking thread of the current runtime.
    pub(crate) fn new(recv: quinn::RecvStream) -> Self {
        Self {
            recv,
            runtime: tokio::runtime::Handle::current(),
            chunks: Default::default(),
            next: 0,
            held: 0,
        }
    }
}

impl io::Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.next == self.held {
            let read = self
                .runtime
                .block_on(self.recv.read_chunks(&mut self.chunks));
            match read.map_err(io::Error::from)? {
                Some(n) => (self.next, self.held) = (0, n),
                None => return Ok(0),
            }
        }
        let chunk = &mut self.chunks[self.next];
        let n = take_into(chunk, buf);
        if chunk.is_empty() {
            *chunk = bytes::Bytes::new();
            self.next += 1;
        }
        Ok(n)
    }
}

/// Decodes a whole bao encoding into `data` (as long as the blob), checking every chunk
/// group. Returns the blob's outboard, built from the parent hashes the decoding verified
/// (so the blob is not hashed a second time).
pub(crate) fn decode_in_memory(
    mut encoded: impl io::Read,
    blob_id: &BlobId,
    transfer: &TransferHandle,
    data: &mut Aligned,
) -> Result<Vec<u8>, FetchError> {
    let sealed_len = data.len() as u64;
    let ranges = group_ranges(0, u64::MAX, sealed_len);
    let mut items = Verifier::new(blob_id, sealed_len, &ranges);
    let data = data.bytes_mut();
    let mut parents = Parents::new(*blob_id, sealed_len);
    let mut verified = 0u64;
    let failed = |e| match decode_failure(e) {
        ReceiveError::BadData(why) => FetchError::Bad(*blob_id, why),
        failed => NetError::Connection(format!("blob {blob_id}: {failed}")).into(),
    };
    while let Some(step) = items.next(&mut encoded).map_err(failed)? {
        match step {
            Step::Parent(parent) => parents.save(&parent),
            Step::Leaf(leaf) => {
                let len = leaf.len;
                let Some(slot) = usize::try_from(leaf.offset)
                    .ok()
                    .and_then(|start| data.get_mut(start..start.checked_add(len)?))
                else {
                    return Err(FetchError::Bad(*blob_id, "a chunk past the end".into()));
                };
                leaf.read_into(&mut encoded, slot).map_err(failed)?;
                verified += len as u64;
                transfer.advance(len as u64);
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
pub(crate) fn keep(
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

/// What a failed decode says: data that does not verify is the peer's; anything else (the
/// stream broke, ended, or was cut mid-item) is an interruption.
fn decode_failure(e: bao_tree::io::DecodeError) -> ReceiveError {
    use bao_tree::io::DecodeError;
    match e {
        DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_) => {
            ReceiveError::BadData(format!("verification failed: {e}"))
        }
        DecodeError::Io(e) => ReceiveError::Interrupted(e),
        e => ReceiveError::Interrupted(io::Error::other(e.to_string())),
    }
}

/// Why receiving a blob stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveError {
    /// The data does not match the blob ID: the peer is bad.
    #[error("{0}")]
    BadData(String),
    /// The stream failed or ended early; verified progress is kept.
    #[error("{0}")]
    Interrupted(io::Error),
    /// Writing the partial file on this device failed (a full disk); verified progress
    /// persisted before it is kept.
    #[error("writing the partial file: {0}")]
    Disk(io::Error),
}

/// Decodes a bao stream of chunk groups `first..end` of the blob into its partial file,
/// writing every chunk group only after it verified against the blob ID and persisting the
/// verified groups every [`PERSIST_EVERY`] bytes and when the stream stops, however it
/// stops. With `claim_each`, every group is claimed in the plan before it is written, and
/// the stream stops (`Ok(false)`) at the first group another peer has. `Ok(true)`: the
/// whole range arrived.
pub(crate) fn receive_into(
    partial: &Partial,
    peer: DeviceId,
    mut encoded: impl io::Read,
    first: u64,
    end: u64,
    claim_each: bool,
) -> Result<bool, ReceiveError> {
    let interrupted = ReceiveError::Interrupted;
    let total = groups_of(partial.sealed_len);
    let end = end.min(total);
    let ranges = group_ranges(first, end, partial.sealed_len);
    let mut items = Verifier::new(&partial.blob_id, partial.sealed_len, &ranges);
    // Verified since the last persisted mark: `pending..verified`; the run of verified
    // groups not yet in the file starts at byte `run_start` and is `run_len` long.
    let mut pending = first;
    let mut verified = first;
    let mut claimed_to = first;
    let mut run = partial.buffers.take(RUN_BYTES);
    let mut run_start = first * GROUP_BYTES;
    let mut run_len = 0;
    let result = loop {
        let leaf = match items.next(&mut encoded) {
            Ok(Some(Step::Parent(parent))) => {
                partial.save_parent(&parent);
                continue;
            }
            Ok(Some(Step::Leaf(leaf))) => leaf,
            Ok(None) if verified < end => {
                break Err(interrupted(io::Error::other(
                    "the stream ended before the range did",
                )));
            }
            Ok(None) => break Ok(true),
            Err(e) => break Err(decode_failure(e)),
        };
        let len = leaf.len;
        let group = leaf.offset / GROUP_BYTES;
        let group_end = (leaf.offset + len as u64).div_ceil(GROUP_BYTES);
        if group != verified || len > RUN_BYTES {
            break Err(interrupted(io::Error::other("a chunk group out of order")));
        }
        if run_len + len > RUN_BYTES {
            if let Err(e) = write_run(partial, &mut run, run_start, run_len) {
                break Err(ReceiveError::Disk(e));
            }
            run_start += run_len as u64;
            run_len = 0;
        }
        // Read and checked in place, at the end of the run: only counted in it (and so
        // only written) once it verified.
        if let Err(e) = leaf.read_into(&mut encoded, &mut run.bytes_mut()[run_len..run_len + len]) {
            break Err(decode_failure(e));
        }
        if claim_each {
            let mine = {
                let mut plan = partial.plan();
                (group..group_end).all(|g| plan.claim_group(g))
            };
            if !mine {
                break Ok(false);
            }
            claimed_to = group_end;
        }
        run_len += len;
        verified = group_end;
        partial.transfer.advance(len as u64);
        {
            let mut by_peer = partial.by_peer.lock();
            *by_peer.entry(peer).or_default() += len as u64;
        }
        if (verified - pending) * GROUP_BYTES >= PERSIST_EVERY {
            if let Err(e) = write_run(partial, &mut run, run_start, run_len)
                .and_then(|()| partial.persist(pending, verified))
            {
                break Err(ReceiveError::Disk(e));
            }
            run_start += run_len as u64;
            run_len = 0;
            pending = verified;
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
    if claim_each {
        partial.plan().release(first, claimed_to);
    }
    match (result, persisted) {
        (Ok(_), Err(e)) => Err(ReceiveError::Disk(e)),
        (result, _) => result,
    }
}

/// Verified chunk groups gathered for one write to a partial file.
pub(crate) const RUN_BYTES: usize = 1 << 20;

/// Writes the first `len` bytes of `run` at `start` in the partial file.
pub(crate) fn write_run(
    partial: &Partial,
    run: &mut Aligned,
    start: u64,
    len: usize,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    run.set_len(len);
    let written = partial.file.write_at(run, start);
    run.set_len(RUN_BYTES);
    written
}
