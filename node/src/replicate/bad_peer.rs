//! Peers caught sending blob data that does not match its blob ID: recorded in the index and
//! not asked for blobs for [`BAD_PEER_COOLDOWN`]. Only a `Peer` fault ever lands here.

use std::time::Duration;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::clock::now_ms;
use crate::home::Home;
use crate::index::{BadPeer, IndexError};

/// How long a peer caught sending bad blob data is not asked for blobs.
pub const BAD_PEER_COOLDOWN: Duration = Duration::from_secs(10 * 60);

/// Whether a peer recorded as `bad` is still not asked for blobs at `now_ms`.
pub fn avoided(bad: &BadPeer, now_ms: u64) -> bool {
    now_ms.saturating_sub(bad.at_ms) < BAD_PEER_COOLDOWN.as_millis() as u64
}

/// Whether `peer` is not asked for blobs now.
pub fn is_avoided(home: &Home, peer: &DeviceId) -> Result<bool, IndexError> {
    Ok(home
        .index
        .last_bad(peer)?
        .is_some_and(|bad| avoided(&bad, now_ms())))
}

/// Records that `peer` sent data for `blob` that did not verify, and says so.
pub async fn record(
    home: &tokio::sync::Mutex<Home>,
    peer: DeviceId,
    blob: BlobId,
    why: &str,
) -> Result<(), IndexError> {
    let bad = BadPeer {
        device: peer,
        at_ms: now_ms(),
        blob,
        reason: why.to_owned(),
    };
    home.lock().await.index.record_bad_peer(&bad)?;
    tracing::warn!(peer = %peer, %blob, "a peer sent blob data that does not match the blob ID; it is not asked for blobs for {BAD_PEER_COOLDOWN:?}: {why}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_peer_is_avoided_for_the_cooldown_and_no_longer() {
        let bad = BadPeer {
            device: DeviceId::from_bytes([1; 20]),
            at_ms: 1_000_000,
            blob: BlobId([2; 32]),
            reason: "verification failed".into(),
        };
        let cooldown = BAD_PEER_COOLDOWN.as_millis() as u64;
        assert!(avoided(&bad, bad.at_ms));
        assert!(avoided(&bad, bad.at_ms + cooldown - 1));
        assert!(!avoided(&bad, bad.at_ms + cooldown));
        // A clock that went back does not lift it early.
        assert!(avoided(&bad, bad.at_ms - 5));
    }
}
