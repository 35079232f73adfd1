//! The running node's purge: blobs whose photos left the trash for good (emptied, or deleted
//! longer ago than `[trash] retention`) are removed from the blob store
//! (`library::trash::purge_due`). It looks every few seconds: the trash is small, and a
//! device back after longer than the retention purges as soon as the records arrive. At start
//! and every hour it also purges the earlier versions `[versions] keep` no longer keeps
//! (`library::trash::expire_versions`).

use std::time::Duration;

use crate::daemon::NodeHandle;

/// How often the node looks for blobs to purge.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// How often it looks for versions to expire.
const VERSIONS_EVERY: Duration = Duration::from_secs(3600);

/// Purges until the node stops (the task is aborted).
pub(super) async fn purge_loop(
    node: NodeHandle,
    retention: Duration,
    hold: Duration,
    keep: crate::home::config::Keep,
) {
    let mut versions_due = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= versions_due {
            versions_due += VERSIONS_EVERY;
            let expired = {
                let home = node.0.home.lock().await;
                crate::library::trash::expire_versions(&home, keep)
            };
            match expired {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(versions = n, keep = %keep.name(), "purged earlier versions");
                    node.announce();
                }
                Err(e) => tracing::warn!("expiring earlier versions: {e}"),
            }
        }
        let purged = {
            let home = node.0.home.lock().await;
            crate::library::trash::purge_due(&home, retention, hold)
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
