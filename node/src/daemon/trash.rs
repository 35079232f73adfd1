//! The running node's purge: blobs whose photos left the trash for good (emptied, or deleted
//! longer ago than `[trash] retention`) are removed from the blob store
//! (`library::trash::purge_due`). It looks every few seconds: the trash is small, and a
//! device back after longer than the retention purges as soon as the records arrive.

use std::time::Duration;

use crate::daemon::NodeHandle;

/// How often the node looks for blobs to purge.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Purges until the node stops (the task is aborted).
pub(super) async fn purge_loop(node: NodeHandle, retention: Duration) {
    loop {
        let purged = {
            let home = node.0.home.lock().await;
            crate::library::trash::purge_due(&home, retention)
        };
        match purged {
            Ok(p) if p.blobs > 0 => tracing::info!(
                blobs = p.blobs,
                bytes = p.bytes,
                "purged what left the trash for good"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("purging the trash: {e}"),
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
