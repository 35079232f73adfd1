//! Blob transfers in progress, as the running node reports them in `status`.
//!
//! The blob engine registers each blob it is receiving and advances it as verified bytes
//! arrive; the control socket reads a [`Transfers::snapshot`]. A transfer leaves the
//! registry when its [`TransferHandle`] is dropped, however the transfer ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lock::Mutex;
use std::time::Instant;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::net::control::TransferStatus;

/// The transfers of one running node.
#[derive(Default, Clone)]
pub struct Transfers(Arc<Inner>);

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<Transfer>>>,
}

struct Transfer {
    blob: BlobId,
    total: u64,
    /// Verified bytes when this try started (resumed from earlier progress).
    resumed_from: u64,
    done: AtomicU64,
    started: Instant,
    peers: Mutex<Vec<DeviceId>>,
}

/// One blob being received; dropping it removes the transfer from the registry.
pub struct TransferHandle {
    key: u64,
    transfer: Arc<Transfer>,
    owner: Arc<Inner>,
}

impl Transfers {
    /// Registers a blob of `total` sealed bytes of which `done` are already verified.
    pub fn start(&self, blob: BlobId, total: u64, done: u64) -> TransferHandle {
        let key = self.0.next.fetch_add(1, Ordering::Relaxed);
        let transfer = Arc::new(Transfer {
            blob,
            total,
            resumed_from: done,
            done: AtomicU64::new(done),
            started: Instant::now(),
            peers: Mutex::default(),
        });
        {
            let mut live = self.0.live.lock();
            live.insert(key, transfer.clone());
        }
        TransferHandle {
            key,
            transfer,
            owner: self.0.clone(),
        }
    }

    /// The transfers in progress, oldest first.
    pub fn snapshot(&self) -> Vec<TransferStatus> {
        let now = Instant::now();
        let live = self.0.live.lock();
        live.values().map(|t| t.status(now)).collect()
    }
}

impl Transfer {
    fn status(&self, now: Instant) -> TransferStatus {
        let done = self.done.load(Ordering::Relaxed).min(self.total);
        let secs = now.duration_since(self.started).as_secs_f64();
        let moved = done.saturating_sub(self.resumed_from) as f64;
        let rate = if secs > 0.0 { moved / secs } else { 0.0 };
        let eta = (rate > 0.0).then(|| (self.total - done) as f64 / rate);
        TransferStatus {
            blob: self.blob.to_hex(),
            peers: self.peers.lock().iter().map(ToString::to_string).collect(),
            done,
            total: self.total,
            bytes_per_s: rate,
            eta_s: eta,
        }
    }
}

impl TransferHandle {
    /// Notes that `peer` is sending part of this blob.
    pub fn add_peer(&self, peer: DeviceId) {
        let mut peers = self.transfer.peers.lock();
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }

    /// Adds `bytes` newly verified bytes.
    pub fn advance(&self, bytes: u64) {
        self.transfer.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for TransferHandle {
    fn drop(&mut self) {
        {
            let mut live = self.owner.live.lock();
            live.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_listed_until_its_handle_drops() {
        let transfers = Transfers::default();
        let handle = transfers.start(BlobId([7; 32]), 1000, 200);
        handle.add_peer(DeviceId::from_bytes([1; 20]));
        handle.add_peer(DeviceId::from_bytes([1; 20]));
        handle.advance(300);
        let snapshot = transfers.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].done, 500);
        assert_eq!(snapshot[0].total, 1000);
        assert_eq!(snapshot[0].peers.len(), 1);
        assert_eq!(snapshot[0].blob, BlobId([7; 32]).to_hex());
        drop(handle);
        assert!(transfers.snapshot().is_empty());
    }

    #[test]
    fn rate_counts_only_bytes_moved_in_this_try() {
        let transfers = Transfers::default();
        let handle = transfers.start(BlobId([1; 32]), 1000, 900);
        let status = transfers.snapshot().remove(0);
        // Nothing moved yet: no rate, and so no ETA, even though 900 bytes are verified.
        assert_eq!(status.bytes_per_s, 0.0);
        assert_eq!(status.eta_s, None);
        handle.advance(10_000);
        // Never more than the blob.
        assert_eq!(transfers.snapshot()[0].done, 1000);
    }
}
