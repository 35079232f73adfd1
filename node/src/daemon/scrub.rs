//! The running node's scrub (the steps are `library::scrub`): one stored blob after another,
//! then one original after another, read and verified on a blocking thread without holding
//! the home, paced to at most [`ScrubOptions::max_rate`] bytes a second (within each file, and
//! across files), a new pass every [`ScrubOptions::period`]. A blob found bad is set aside
//! and the peers are told at once, so it is fetched again.

use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::daemon::NodeHandle;
use crate::library::scrub::{self, Next};

/// How the scrub runs (`[scrub]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubOptions {
    /// A new pass over every stored blob starts this long after the last one started
    /// finishing. Default 30 days.
    pub period: Duration,
    /// At most this many bytes read a second. Default 10 MiB.
    pub max_rate: u64,
}

impl Default for ScrubOptions {
    fn default() -> Self {
        Self {
            period: crate::home::config::DEFAULT_SCRUB_PERIOD,
            max_rate: 10 << 20,
        }
    }
}

/// How long the scrub waits after the index failed, or at most between two looks when idle.
const RETRY: Duration = Duration::from_secs(60);
const IDLE_LOOK: Duration = Duration::from_secs(3600);

/// Runs the scrub until the node stops (the task is aborted).
pub(super) async fn scrub_loop(node: NodeHandle, options: ScrubOptions) {
    let period_ms = options.period.as_millis() as u64;
    let rate = options.max_rate.max(1) as f64;
    loop {
        let next = {
            let home = node.0.home.lock().await;
            scrub::next(&home, period_ms, now_ms())
        };
        let (blob, len) = match next {
            Ok(Next::Check(blob, len)) => (blob, len),
            Ok(Next::CheckOriginal(original)) => {
                let started = Instant::now();
                let len = original.row.size;
                check_original(&node, original, options.max_rate).await;
                pace(started, len, rate).await;
                continue;
            }
            Ok(Next::PassDone) => {
                tracing::info!("scrub: every stored blob and original was verified");
                continue;
            }
            Ok(Next::IdleUntil(at)) => {
                let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                tokio::time::sleep(wait.min(IDLE_LOOK)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("scrub: reading the index failed: {e}; trying again in 60s");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let store = node.0.home.lock().await.blobs.clone();
        let started = Instant::now();
        let result =
            match tokio::task::spawn_blocking(move || store.verify_paced(&blob, options.max_rate))
                .await
            {
                Ok(result) => result,
                Err(e) => {
                    tracing::warn!("scrub: checking blob {blob} failed: {e}");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
        let found = {
            let home = node.0.home.lock().await;
            scrub::checked(&home, &blob, result)
        };
        match found {
            Ok(Some(finding)) => {
                tracing::warn!("scrub: {}: {}", finding.item, finding.detail);
                node.announce();
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("scrub: recording the check of blob {blob} failed: {e}"),
        }
        pace(started, len, rate).await;
    }
}

/// Checks one original against its record, reading it on a blocking thread; a good one is
/// verified now, a bad one no longer held (and the peers told).
async fn check_original(node: &NodeHandle, original: scrub::Original, rate: u64) {
    let (root, row, expected) = (
        original.root.clone(),
        original.row.clone(),
        original.expected,
    );
    let finding = match tokio::task::spawn_blocking(move || {
        crate::library::verify::check_original(&root, &row, expected, rate)
    })
    .await
    {
        Ok(finding) => finding,
        Err(e) => {
            tracing::warn!("scrub: checking {} failed: {e}", original.row.path);
            tokio::time::sleep(RETRY).await;
            return;
        }
    };
    let recorded = {
        let home = node.0.home.lock().await;
        scrub::checked_original(&home, &original, finding.as_ref())
    };
    if let Err(e) = recorded {
        tracing::warn!(
            "scrub: recording the check of {} failed: {e}",
            original.row.path
        );
        return;
    }
    if let Some(finding) = finding {
        tracing::warn!("scrub: {}: {}", finding.item, finding.detail);
        node.announce();
    }
}

/// Sleeps what is left of the time `len` bytes take at `rate` bytes a second.
async fn pace(started: Instant, len: u64, rate: f64) {
    let paced = Duration::from_secs_f64(len as f64 / rate);
    if let Some(rest) = paced.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}
