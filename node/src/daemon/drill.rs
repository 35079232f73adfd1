//! Restore drills on the running node (`crate::replicate::drill`): on demand through the
//! control socket (`photomesh drill`), and every `[drill] interval` by itself.

use std::time::Duration;

use crate::clock::now_ms;
use crate::net::control::DrillJob;
use crate::replicate::drill;

use super::NodeHandle;

/// How often the loop looks whether a drill is due (more often for a shorter interval).
const LOOK_EVERY: Duration = Duration::from_secs(3600);
/// How long after the node starts the loop looks first, so the connections come up first
/// (less for a shorter interval).
const FIRST_LOOK: Duration = Duration::from_secs(120);

impl NodeHandle {
    /// Starts a drill of `sample` photos per device over the connections the node holds.
    /// One drill at a time.
    pub(super) fn start_drill(&self, sample: usize) -> Result<(), String> {
        {
            let mut job = self.0.drill_job.lock();
            if job.as_ref().is_some_and(|j| j.running) {
                return Err("a drill is already running on this node; wait for it".into());
            }
            *job = Some(DrillJob {
                running: true,
                devices: Vec::new(),
                problem: None,
            });
        }
        let node = self.clone();
        self.0.runtime.spawn(async move {
            let outcome = node.run_drill(sample).await;
            if let Some(job) = node.0.drill_job.lock().as_mut() {
                match outcome {
                    Ok(devices) => job.devices = devices,
                    Err(e) => job.problem = Some(e),
                }
                job.running = false;
            }
        });
        Ok(())
    }

    /// Drills every other device of the mesh that holds copies: each over the node's
    /// connection to it, or reported unreachable.
    async fn run_drill(&self, sample: usize) -> Result<Vec<drill::DeviceDrill>, String> {
        let devices: Vec<_> = {
            let home = self.0.home.lock().await;
            crate::mesh::trust_set(&home)
                .map_err(|e| e.to_string())?
                .devices()
                .filter(|m| m.device != self.0.device)
                .map(|m| (m.device, m.name.clone(), m.noise_key))
                .collect()
        };
        let links: Vec<_> = {
            let registry = self.0.registry.lock();
            devices
                .into_iter()
                .map(|(device, name, key)| {
                    let connection = registry
                        .links()
                        .find(|(k, _)| **k == key)
                        .map(|(_, link)| link.connection.clone())
                        .ok_or_else(|| "not connected to this node now".to_owned());
                    (device, name, connection)
                })
                .collect()
        };
        drill::drill(&self.0.home, &self.0.transfers, links, sample)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Runs a drill whenever the last one is older than `interval` (`None`: never by itself).
pub(super) async fn drill_loop(node: NodeHandle, interval: Option<Duration>) {
    let Some(interval) = interval else {
        return;
    };
    tokio::time::sleep(FIRST_LOOK.min(interval)).await;
    loop {
        let last = {
            let home = node.0.home.lock().await;
            drill::last_run_ms(&home)
        };
        let due = match last {
            Ok(Some(at)) => now_ms().saturating_sub(at) >= interval.as_millis() as u64,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!("drill: reading the index failed: {e}");
                false
            }
        };
        if due {
            match node.run_drill(drill::DEFAULT_SAMPLE).await {
                Ok(devices) => {
                    for d in devices.iter().filter(|d| !d.passed()) {
                        tracing::warn!(
                            device = %d.name,
                            problems = ?d.problems,
                            unreachable = ?d.unreachable,
                            "restore drill failed"
                        );
                    }
                    tracing::info!(devices = devices.len(), "restore drill done");
                }
                Err(e) => tracing::warn!("drill: {e}"),
            }
        }
        tokio::time::sleep(LOOK_EVERY.min(interval)).await;
    }
}
