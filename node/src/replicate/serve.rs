//! Serving a blob, or a range of its chunk groups, as its bao encoding: from the blob store or
//! sealed on the fly from the original, small blobs encoded inline, large ones in pieces by a
//! blocking encoder.

use std::io;

use photomesh_protocol::messages::BlobHeader;

use photomesh_protocol::seal::BlobId;

use crate::blob::source::BlobSource;
use crate::home::Home;
use crate::net::frame::{self, NetError};
use crate::replicate::error::SyncError;
use crate::replicate::receive::encoded_len_limit;

/// Answers a blob request ([`Blob`]: the groups from `from_group` to the end) or a range
/// request ([`BlobRange`]): the bao encoding of chunk groups `groups` (clipped to the blob),
/// from the blob store or sealed on the fly from the original.
///
/// [`Blob`]: photomesh_protocol::messages::Request::Blob
/// [`BlobRange`]: photomesh_protocol::messages::Request::BlobRange
pub async fn serve_blob_range(
    home: &tokio::sync::Mutex<Home>,
    reader: Option<&ServeReader>,
    blob_id: BlobId,
    groups: std::ops::Range<u64>,
    send: &mut quinn::SendStream,
) -> Result<(), SyncError> {
    // Blob data gives way to everything else on the connection (see [`BLOB_PRIORITY`]).
    let _ = send.set_priority(BLOB_PRIORITY);
    let source = match reader.and_then(|r| r.open(&blob_id)) {
        Some(source) => Some(source),
        None => {
            let home = home.lock().await;
            let source = BlobSource::open(&home, &blob_id)?;
            if source.is_some()
                && let Some(reader) = reader
            {
                reader.keys_from(&home);
            }
            source
        }
    };
    let Some(source) = source else {
        frame::write_frame(send, &BlobHeader::NotHere).await?;
        let _ = send.finish();
        return Ok(());
    };
    frame::write_frame(
        send,
        &BlobHeader::Follows {
            sealed_len: source.sealed_len(),
        },
    )
    .await?;
    let stored = source.is_stored();
    let sending = |e: io::Error| NetError::Connection(format!("sending blob {blob_id}: {e}"));
    let capacity = encoded_len_limit(source.sealed_len()).min(SERVE_PIECE as u64) as usize;
    if source.sealed_len() <= INLINE_WORK {
        // At most a couple of hundred microseconds of work (sealing and hashing 256 KiB):
        // done here, no hand-off to another thread.
        let mut encoded = Vec::with_capacity(capacity);
        if let Err(e) = source.encode_groups(groups, &mut encoded) {
            return Err(damaged_or(home, &blob_id, stored, e, send).await);
        }
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
        if let Err(e) = encoder.await.map_err(SyncError::from)? {
            return Err(damaged_or(home, &blob_id, stored, e, send).await);
        }
    }
    let _ = send.finish();
    Ok(())
}

/// What serving reads blobs through: a read-only connection to the index of its own, the
/// blob store, and a copy of the key ring. Answering a blob request then does not wait for
/// the node's writes to the index (a peer's holdings, a batch of stored blobs, a scan),
/// which hold the home for up to a few hundred milliseconds while the peer's fetches stall.
/// What it cannot serve (not held, an original under a key epoch newer than its copy, a
/// failed read) is looked up again through the home.
pub struct ServeReader {
    index: crate::lock::Mutex<(crate::index::Index, photomesh_protocol::keys::KeyRing)>,
    blobs: crate::blob::store::BlobStore,
}

impl ServeReader {
    /// A reader of `home`'s index.
    pub fn new(home: &Home) -> Result<Self, crate::index::IndexError> {
        Ok(Self {
            index: crate::lock::Mutex::new(
                "the serving index",
                (
                    crate::index::Index::open_reader(home.index.path())?,
                    home.keys.clone(),
                ),
            ),
            blobs: home.blobs.clone(),
        })
    }

    /// Where to read a blob from, if this reader finds it.
    pub(crate) fn open(&self, blob_id: &BlobId) -> Option<BlobSource> {
        let guard = self.index.lock();
        let (index, keys) = &*guard;
        match BlobSource::open_in(index, &self.blobs, keys, blob_id) {
            Ok(source) => source,
            Err(e) => {
                tracing::debug!("the serving index could not look up blob {blob_id}: {e}");
                None
            }
        }
    }

    /// Takes the home's key ring, if it changed.
    fn keys_from(&self, home: &Home) {
        let mut guard = self.index.lock();
        if guard.1 != home.keys {
            guard.1 = home.keys.clone();
        }
    }
}

/// What an encoding failure costs. This device's copy failing its check is a local fault:
/// the copy is healed as far as this device can — a stored one quarantined, an original
/// marked gone, so it is no longer held and a good copy is fetched — and the stream is reset,
/// so the peer sees an interrupted answer (it asks elsewhere), never bad data.
async fn damaged_or(
    home: &tokio::sync::Mutex<Home>,
    blob_id: &BlobId,
    stored: bool,
    e: io::Error,
    send: &mut quinn::SendStream,
) -> SyncError {
    if !crate::blob::source::is_damaged(&e) {
        return NetError::Connection(format!("sending blob {blob_id}: {e}")).into();
    }
    let _ = send.reset(crate::net::close::Close::Done.code());
    let home = home.lock().await;
    let healed = if stored {
        home.blobs
            .quarantine(blob_id)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                home.index
                    .evict_stored_blob(blob_id)
                    .map_err(|e| e.to_string())
            })
    } else {
        home.index
            .mark_originals_gone(blob_id, crate::clock::now_ms())
            .map(drop)
            .map_err(|e| e.to_string())
    };
    match healed {
        Ok(()) => tracing::warn!(
            "blob {blob_id}: this device's {} failed its check while being served; it is no \
             longer held, and a good copy is fetched from the peers",
            if stored {
                "stored copy (now quarantined)"
            } else {
                "original"
            }
        ),
        Err(why) => tracing::warn!("blob {blob_id}: a damaged copy could not be set aside: {why}"),
    }
    SyncError::Disk {
        what: format!("serving blob {blob_id}"),
        source: e,
    }
}

/// The send priority of blob answers: below the conversation's other streams (hello,
/// record reconciliation and fetches, announcements, at quinn's default 0), so that a new
/// photo's record is not queued behind a video. Blob answers among themselves are sent one
/// after the other, not interleaved ([`crate::net::transport::transport_config`]).
pub const BLOB_PRIORITY: i32 = -1;

/// Blobs up to this sealed size are encoded on the async thread that serves them (tens to a
/// couple of hundred microseconds); larger ones on the blocking threads.
pub(crate) const INLINE_WORK: u64 = 256 << 10;
/// Larger ones are handed to the network in pieces of this many bytes.
pub(crate) const SERVE_PIECE: usize = 256 << 10;

/// An encoding on its way to the network, in pieces.
pub(crate) struct Pieces {
    pub(crate) piece: Vec<u8>,
    pub(crate) capacity: usize,
    pub(crate) pieces: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl Pieces {
    /// Hands the piece gathered so far to the network.
    pub(crate) fn send(&mut self) -> io::Result<()> {
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
