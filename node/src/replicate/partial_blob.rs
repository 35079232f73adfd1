//! A large blob being received into its partial file ([`Partial`]), possibly from several
//! peers at once: who fetches which chunk groups ([`Plan`]) and the parent hashes verified so
//! far ([`Parents`]), from which its outboard is built without reading it back.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bao_tree::BaoTree;
use bao_tree::io::outboard::PostOrderMemOutboard;
use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::blob::direct::{DirectFile, Pool};
use crate::blob::partial::{GroupSet, groups_of, write_progress};
use crate::blob::sealed::OUTBOARD_BLOCK_SIZE;
use crate::lock::Mutex;
use crate::replicate::transfers::TransferHandle;

/// Chunk groups asked of one peer at a time: 4 MiB.
pub(crate) const PIECE_GROUPS: u64 = 256;

/// A large blob being received into its partial file, possibly from several peers at once.
pub(crate) struct Partial {
    pub(crate) blob_id: BlobId,
    pub(crate) sealed_len: u64,
    pub(crate) file: DirectFile,
    pub(crate) path: PathBuf,
    pub(crate) plan: Mutex<Plan>,
    pub(crate) transfer: TransferHandle,
    /// Verified bytes received from each peer.
    pub(crate) by_peer: Mutex<std::collections::BTreeMap<DeviceId, u64>>,
    /// Buffers for runs of verified chunk groups on their way to the file.
    pub(crate) buffers: Arc<Pool>,
    /// The parent hashes verified on the way, when this process receives the whole blob
    /// (not a resumed one): then the finished blob needs no second hashing.
    pub(crate) parents: Mutex<Option<Parents>>,
}
impl Partial {
    pub(crate) fn open(
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
            plan: Mutex::new(
                "a partial blob's plan",
                Plan::new(groups_of(sealed_len), done),
            ),
            transfer,
            by_peer: Mutex::default(),
            buffers,
            parents: Mutex::new("a partial blob's parent hashes", parents),
        })
    }

    pub(crate) fn plan(&self) -> crate::lock::MutexGuard<'_, Plan> {
        self.plan.lock()
    }

    /// Makes groups `start..end` durable and records them as verified in the progress file.
    pub(crate) fn persist(&self, start: u64, end: u64) -> io::Result<()> {
        if start >= end {
            return Ok(());
        }
        self.file.file().sync_data()?;
        let mut plan = self.plan();
        plan.finish(start, end);
        write_progress(&self.path, &plan.done, self.sealed_len)
    }

    pub(crate) fn complete(&self) -> bool {
        self.plan().complete()
    }

    /// Keeps a verified parent hash pair.
    pub(crate) fn save_parent(&self, parent: &bao_tree::io::Parent) {
        if let Some(parents) = self.parents.lock().as_mut() {
            parents.save(parent);
        }
    }

    /// The blob's outboard, if every parent hash of it was verified by this process.
    pub(crate) fn verified_outboard(&self) -> Option<Vec<u8>> {
        self.parents.lock().take()?.outboard()
    }
}

/// Who is fetching which chunk groups of one blob, and which are verified and persisted.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) total: u64,
    /// Verified, written and made durable.
    pub(crate) done: GroupSet,
    /// Being fetched by some peer.
    pub(crate) claimed: GroupSet,
}
impl Plan {
    pub(crate) fn new(total: u64, done: GroupSet) -> Self {
        Self {
            total,
            done,
            claimed: GroupSet::default(),
        }
    }

    pub(crate) fn free(&self) -> Vec<(u64, u64)> {
        let mut taken = self.done.clone();
        for &(s, e) in &self.claimed.0 {
            taken.insert(s, e);
        }
        taken.gaps(self.total)
    }

    /// Claims up to [`PIECE_GROUPS`] groups nobody has: the first ones free, or (for a peer
    /// helping the one streaming from the front) the last ones, so that the two meet.
    pub(crate) fn claim(&mut self, from_back: bool) -> Option<(u64, u64)> {
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
    pub(crate) fn claim_group(&mut self, group: u64) -> bool {
        if group >= self.total || self.done.contains(group) || self.claimed.contains(group) {
            return false;
        }
        self.claimed.insert(group, group + 1);
        true
    }

    /// Groups that are verified and durable.
    pub(crate) fn finish(&mut self, start: u64, end: u64) {
        self.claimed.remove(start, end);
        self.done.insert(start, end);
    }

    /// Groups a peer no longer fetches (done or not): free for the others again.
    pub(crate) fn release(&mut self, start: u64, end: u64) {
        self.claimed.remove(start, end);
    }

    pub(crate) fn claimable(&self) -> bool {
        !self.free().is_empty()
    }

    pub(crate) fn complete(&self) -> bool {
        self.done.len() >= self.total
    }
}

/// The parent hash pairs of a blob as they verify, towards its outboard.
pub(crate) struct Parents {
    pub(crate) outboard: PostOrderMemOutboard,
    pub(crate) seen: Vec<bool>,
    pub(crate) missing: usize,
}
impl Parents {
    pub(crate) fn new(blob_id: BlobId, sealed_len: u64) -> Self {
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

    pub(crate) fn save(&mut self, parent: &bao_tree::io::Parent) {
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
    pub(crate) fn outboard(self) -> Option<Vec<u8>> {
        (self.missing == 0).then_some(self.outboard.data)
    }
}
