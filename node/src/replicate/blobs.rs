//! Held-blob set reconciliation: two members compare the sets of blobs they hold, as they
//! compare record sets, and the initiator fetches what it lacks and its policy wants.

use crate::lock::Mutex;
use std::time::{Duration, Instant};

use photomesh_protocol::messages::Request;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::reconcile::{Bound, Config, Session, Store};
use photomesh_protocol::seal::BlobId;

use crate::home::Home;
use crate::net::frame::{self, NetError};
use crate::replicate::error::SyncError;
use crate::replicate::fetcher::Helpers;
use crate::replicate::held::{BlobEngine, HeldBlobs, HoldPolicy};
use crate::replicate::records::{Keep, drive, random_seed};
use crate::replicate::restore_fetch::fetch_from;
use crate::replicate::transfers::Transfers;

/// The most blobs one round fetches: a device that lacks more fetches them over several
/// rounds, one straight after another, so the list it holds stays a few megabytes however
/// large the library (each round reconciles again, and lists only what is still lacking).
const MAX_WANTED: usize = 65_536;

/// What a blob round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobRound {
    /// Blobs stored.
    pub stored: usize,
    /// More were wanted than a round fetches ([`MAX_WANTED`]): the next round is due now.
    pub more: bool,
}

/// Reconciles the held-blob sets as the initiator and fetches the blobs this device lacks
/// and its hold policy wants, many at once, up to [`MAX_WANTED`]. Every blob received is
/// registered in `transfers`.
pub async fn sync_blobs(
    home: &tokio::sync::Mutex<Home>,
    connection: &quinn::Connection,
    peer: &DeviceId,
    known: &PeerHoldings,
    engine: &BlobEngine,
    transfers: &Transfers,
    helpers: Option<Helpers>,
) -> Result<BlobRound, SyncError> {
    let me = {
        let home = home.lock().await;
        if crate::replicate::bad_peer::is_avoided(&home, peer)? {
            return Ok(BlobRound::default());
        }
        engine.held.refresh(&home)?;
        home.device.device_id()
    };
    let set = engine.held.snapshot();
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
    frame::write_frame(&mut send, &Request::ReconcileBlobs).await?;
    let mut session =
        set.with(|tree| Session::initiate(Config::default(), random_seed(), Duration::ZERO, tree))?;
    let (mut missing, lacks) = drive(
        &mut session,
        &set,
        &mut send,
        &mut recv,
        Instant::now(),
        Keep::Both,
    )
    .await?;
    let _ = send.finish();
    // What the peer holds: ours, less what it lacks, plus what we lack.
    let (count, sum) = set.with(|tree| tree.prefix(&Bound::MAX));
    let mut ours = sum.to_bytes().to_vec();
    ours.extend_from_slice(&count.to_le_bytes());
    // Held-blob items carry no time, so the snapshot is in blob-ID order; so is `missing`
    // once sorted, and the two never share a blob.
    missing.sort_unstable();
    if known.changed(peer, &ours, !missing.is_empty() || !lacks.is_empty()) {
        let home = home.lock().await;
        // Every row held for the peer is read, and the difference written.
        let rows = set.with(|tree| tree.len()) as usize + missing.len();
        crate::lock::long_work(rows, || {
            set.with(|tree| {
                let kept = (0..tree.len())
                    .filter(|&rank| !lacks.contains(rank))
                    .filter_map(|rank| tree.item_at(rank));
                home.index.set_peer_blobs(
                    peer,
                    crate::sorted::merge(kept.map(|item| item.id), missing.iter().copied())
                        .map(BlobId),
                    crate::clock::now_ms(),
                )
            })
        })?;
    }
    // The fetch below may take hours: it keeps only the list of blobs wanted.
    drop((lacks, set));
    let mut wanted: Vec<BlobId> = missing.into_iter().map(BlobId).collect();
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
        return Ok(BlobRound::default());
    }
    // Blobs whose photos left the trash for good are not fetched again.
    {
        let home = home.lock().await;
        let retention = u64::try_from(engine.retention.as_millis()).unwrap_or(u64::MAX);
        let purged = home.index.purgeable_blobs(
            crate::clock::now_ms(),
            retention,
            u64::try_from(engine.purge_hold.as_millis()).unwrap_or(u64::MAX),
        )?;
        wanted.retain(|b| !purged.contains(b));
        // Nor the originals this device released to free its space (`free-up-space`): they
        // are safe elsewhere, and `photomesh restore` brings them back.
        let released = home.index.released_blobs()?;
        wanted.retain(|b| !released.contains(b));
    }
    let (wanted, more) = {
        let home = home.lock().await;
        crate::lock::long_work(wanted.len(), || {
            engine.fit_to_disk(&home, wanted, MAX_WANTED)
        })
    };
    if wanted.is_empty() {
        return Ok(BlobRound::default());
    }
    let stored = fetch_from(home, engine, connection, *peer, transfers, wanted, helpers).await;
    engine.held.compact();
    Ok(BlobRound {
        stored: stored?,
        more,
    })
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
    drive(
        &mut session,
        &set,
        &mut send,
        &mut recv,
        Instant::now(),
        Keep::Nothing,
    )
    .await?;
    let _ = send.finish();
    Ok(())
}

/// What this device last told the index each peer holds, by a fingerprint of its own
/// held set at the time and whether the two sets differed: the peer's holdings are
/// rewritten unless both rounds found the peer holding exactly the same set as this device.
#[derive(Default)]
pub struct PeerHoldings(pub(crate) Mutex<std::collections::BTreeMap<DeviceId, (Vec<u8>, bool)>>);

impl PeerHoldings {
    pub(crate) fn changed(&self, peer: &DeviceId, ours: &[u8], differed: bool) -> bool {
        let mut map = self.0.lock();
        // Equal sets now and last time, with ours unchanged: the peer's set is unchanged.
        // (Equal now but different last time means the peer's set changed meanwhile.)
        if !differed && map.get(peer).is_some_and(|(last, d)| !d && last == ours) {
            return false;
        }
        map.insert(*peer, (ours.to_vec(), differed));
        true
    }
}
