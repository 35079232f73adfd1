//! Blob replication: which blobs each device holds, and moving them with BLAKE3 verified
//! streaming (bao, through `bao-tree`).
//!
//! A device *holds* a blob when its blob store has it, or when it is the source of the photo
//! and still has the original file: it serves those originals sealed on the fly
//! ([`SealedOriginal`]; sealing is deterministic, so the bytes are the blob's). The sets of
//! held blobs are reconciled like the record sets; a device that lacks a blob a peer holds
//! fetches it. `full` and `vault` devices hold every blob.
//!
//! On the wire a blob is its bao encoding with 16 KiB chunk groups: the receiver checks every
//! chunk group against the blob ID before writing it, so a peer that sends bad data is caught
//! within 16 KiB and nothing unverified is stored. The receiver writes into
//! `blobs/partial/`, then hashes the whole file once more while computing its outboard, and
//! only then moves it into the blob store.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

use crate::blobstore::BlobStore;
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

    fn sealed_segment(&self, index: u64) -> io::Result<Vec<u8>> {
        if let Ok(cache) = self.cache.lock()
            && let Some((i, bytes)) = cache.as_ref()
            && *i == index
        {
            return Ok(bytes.clone());
        }
        let header = self.cipher.header();
        let len = header
            .segment_plaintext_len(index)
            .ok_or_else(|| io::Error::other("read past the end of the blob"))?;
        let mut buf = vec![0u8; len];
        let start = index * photomesh_protocol::seal::SEGMENT_LEN as u64;
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut buf, start)?;
        self.cipher
            .seal_segment(index, &mut buf)
            .map_err(io::Error::other)?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((index, buf.clone()));
        }
        Ok(buf)
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
        let segment = self.sealed_segment(index)?;
        let bytes = segment.get(within..).unwrap_or_default();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

impl Size for SealedOriginal {
    fn size(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.cipher.header().sealed_len()))
    }
}

/// The blobs this device holds: stored replicas, and its own originals that still match
/// their records.
pub fn held_blobs(home: &Home) -> Result<FingerprintTree, IndexError> {
    Ok(FingerprintTree::from_items(
        home.index
            .held_blobs()?
            .into_iter()
            .map(|b| Item::new(0, b.0)),
    ))
}

/// Reconciles the held-blob sets as the initiator and fetches every blob this device lacks.
/// Returns the number of blobs stored.
pub async fn sync_blobs(
    home: &tokio::sync::Mutex<Home>,
    connection: &quinn::Connection,
    peer: &DeviceId,
    known: &PeerHoldings,
    transfers: &Transfers,
) -> Result<usize, SyncError> {
    let set = RecordSet::from_tree(held_blobs(&*home.lock().await)?);
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
    let mut stored = 0;
    for item in missing {
        let blob_id = BlobId(item.id);
        match fetch_blob(home, connection, &blob_id, peer, transfers).await {
            Ok(()) => stored += 1,
            Err(FetchError::NotHere) => {}
            Err(FetchError::Sync(e)) => return Err(e),
        }
    }
    Ok(stored)
}

/// Answers a peer's blob-set reconciliation.
pub async fn serve_reconcile_blobs(
    home: &tokio::sync::Mutex<Home>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<(), SyncError> {
    let set = RecordSet::from_tree(held_blobs(&*home.lock().await)?);
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

enum FetchError {
    NotHere,
    Sync(SyncError),
}

impl<E: Into<SyncError>> From<E> for FetchError {
    fn from(e: E) -> Self {
        Self::Sync(e.into())
    }
}

/// Fetches one blob, verifying every chunk group before writing it, and stores it.
async fn fetch_blob(
    home: &tokio::sync::Mutex<Home>,
    connection: &quinn::Connection,
    blob_id: &BlobId,
    peer: &DeviceId,
    transfers: &Transfers,
) -> Result<(), FetchError> {
    let (partial, blobs) = {
        let home = home.lock().await;
        let dir = home.path.join("blobs/partial");
        fs::create_dir_all(&dir).map_err(|e| NetError::Connection(e.to_string()))?;
        (dir.join(blob_id.to_hex()), home.blobs.clone())
    };
    // Resume from the last verified byte that was persisted, if an earlier try got that far.
    let from = read_progress(&partial);
    let (mut send, mut recv) = connection
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
    if from > 0 {
        tracing::info!(blob = %blob_id, from, sealed_len, "resuming blob transfer");
    }
    let progress = transfers.start(*blob_id, sealed_len, from);
    progress.add_peer(*peer);
    let id = *blob_id;
    let target = partial.clone();
    let recv = tokio_util::io::SyncIoBridge::new(recv);
    let received = tokio::task::spawn_blocking(move || {
        receive(recv, &id, sealed_len, &target, from, &progress)
    })
    .await
    .map_err(|e| SyncError::Protocol(e.to_string()))?;
    match received {
        Ok(()) => {}
        Err(ReceiveError::BadData(why)) => {
            // Nothing unverified was written, but start over rather than trust this peer's
            // earlier bytes either; and drop the peer.
            remove_partial(&partial);
            connection.close(4u32.into(), b"bad data");
            tracing::warn!(blob = %blob_id, "a peer sent data that does not match the blob ID: {why}");
            return Err(SyncError::Protocol(format!("blob {blob_id}: {why}")).into());
        }
        Err(ReceiveError::Interrupted(e)) => {
            // What was verified and persisted stays for the next try.
            return Err(NetError::Connection(format!("blob {blob_id} interrupted: {e}")).into());
        }
    }
    // Hashing the whole file again and storing it is blocking work: off the async threads.
    let id = *blob_id;
    let kept = tokio::task::spawn_blocking(move || keep(&blobs, &partial, &id, sealed_len))
        .await
        .map_err(|e| SyncError::Protocol(e.to_string()))?;
    let outboard = kept.map_err(|e| SyncError::Protocol(format!("blob {blob_id}: {e}")))?;
    let home = home.lock().await;
    home.index.add_blob(blob_id, sealed_len, &outboard)?;
    home.index.set_blob_stored(blob_id, true)?;
    Ok(())
}

/// Checks a completely received blob as a whole (computing its outboard) and moves it into
/// the blob store; the partial file is gone afterwards either way. Returns the outboard.
fn keep(
    blobs: &BlobStore,
    partial: &Path,
    blob_id: &BlobId,
    sealed_len: u64,
) -> io::Result<Vec<u8>> {
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
        Ok((_, outboard)) => File::open(partial)
            .and_then(|f| {
                blobs
                    .put(blob_id, io::BufReader::with_capacity(1 << 20, f))
                    .map_err(io::Error::other)
            })
            .map(|_| outboard),
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
    progress: &TransferHandle,
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
                progress.advance(leaf.data.len() as u64);
                verified = verified.max(leaf.offset + leaf.data.len() as u64);
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
    let source = {
        let home = home.lock().await;
        open_source(&home, &blob_id)?
    };
    let Some((source, sealed_len, outboard)) = source else {
        net::write_frame(&mut send, &BlobHeader::NotHere).await?;
        let _ = send.finish();
        return Ok(());
    };
    net::write_frame(&mut send, &BlobHeader::Follows { sealed_len }).await?;
    let tree = BaoTree::new(sealed_len, OUTBOARD_BLOCK_SIZE);
    let outboard = PostOrderMemOutboard {
        root: blake3::Hash::from_bytes(blob_id.0),
        tree,
        data: outboard,
    };
    let first = ChunkNum(from_group << OUTBOARD_BLOCK_SIZE.chunk_log());
    let writer = tokio_util::io::SyncIoBridge::new(send);
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut writer = io::BufWriter::with_capacity(1 << 20, writer);
        let ranges = ChunkRanges::from(first..);
        let result = match source {
            Source::Stored(file) => {
                bao_tree::io::sync::encode_ranges_validated(&file, &outboard, &ranges, &mut writer)
            }
            Source::Original(original) => bao_tree::io::sync::encode_ranges_validated(
                &original,
                &outboard,
                &ranges,
                &mut writer,
            ),
        };
        result.map_err(|e| io::Error::other(e.to_string()))?;
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

enum Source {
    Stored(File),
    Original(Box<SealedOriginal>),
}

/// Where this device can read a blob from, with its length and outboard.
fn open_source(
    home: &Home,
    blob_id: &BlobId,
) -> Result<Option<(Source, u64, Vec<u8>)>, IndexError> {
    let Some((sealed_len, outboard)) = home.index.blob_info(blob_id)? else {
        return Ok(None);
    };
    if home.index.blob_stored(blob_id)?
        && let Ok(file) = File::open(home.blobs.path_of(blob_id))
    {
        return Ok(Some((Source::Stored(file), sealed_len, outboard)));
    }
    for (path, sealed) in home.index.originals_of(blob_id)? {
        let Ok(Record::Photo(photo)) = Record::open(&sealed, &home.keys) else {
            continue;
        };
        let Some(key) = home.keys.get(photo.blob_epoch) else {
            continue;
        };
        if let Ok(source) =
            SealedOriginal::open(&path, &key.content_key(), &photo.plaintext_hash, photo.size)
        {
            return Ok(Some((
                Source::Original(Box::new(source)),
                sealed_len,
                outboard,
            )));
        }
    }
    Ok(None)
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

    /// A transfer handle for `receive` in tests that do not look at it.
    fn progress() -> TransferHandle {
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
                &progress()
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
                &progress()
            )
            .is_ok()
        );
        assert!(fs::read(&target).unwrap() == data);
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
                &progress()
            )
            .is_ok()
        );
        assert_eq!(fs::read(&target).unwrap(), data);
        let mut bad = encoded.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        let other = dir.path().join("other");
        assert!(matches!(
            receive(
                &bad[..],
                &blob_id,
                data.len() as u64,
                &other,
                0,
                &progress()
            ),
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
                &progress()
            ),
            Err(ReceiveError::Interrupted(_))
        ));
    }
}
