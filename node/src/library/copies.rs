//! Which copies of a blob count: this device's, by its own check times, and each other
//! member's, by the time since which its hello says it has verified all it holds — each only
//! if verified within the scrub period, and only a current member's (a revoked device's copy
//! is none). `status` counts them against the replica goal, `free-up-space` against
//! `[storage] free_up_copies`.

use std::collections::HashMap;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::home::Home;
use crate::index::IndexError;

/// One device's copy of a photo's blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyOf {
    /// The device's name (its ID if it is no member).
    pub device: String,
    /// When the copy was last verified, at the latest (ms since the epoch, by that device's
    /// clock; 0: not known): this device's own check of it, or for another device the time
    /// since which it has verified everything it holds (from its hello).
    pub verified_at_ms: u64,
    /// Whether the copy counts towards the replica goal: a member's, verified within the
    /// scrub period.
    pub counts: bool,
}

/// What makes a copy count: the members, their names, the oldest verification that still
/// counts, and since when each other member has verified all it holds (its hello's say).
pub(crate) struct Copies {
    me: DeviceId,
    names: HashMap<DeviceId, String>,
    since_ms: u64,
    within_ms: u64,
    verified_since: HashMap<DeviceId, u64>,
}

impl Copies {
    /// What counts now, when a copy must have been verified within `verified_within`.
    pub(crate) fn new(
        home: &Home,
        verified_within: std::time::Duration,
    ) -> Result<Self, IndexError> {
        let names: HashMap<DeviceId, String> = crate::mesh::trust_set(home)
            .map(|t| t.devices().map(|m| (m.device, m.name.clone())).collect())
            .unwrap_or_default();
        let mut verified_since = HashMap::new();
        for device in names.keys() {
            if let Some(at) = home
                .index
                .peer_report(device)?
                .and_then(|r| r.verified_since_ms)
            {
                verified_since.insert(*device, at);
            }
        }
        let within = u64::try_from(verified_within.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            me: home.device.device_id(),
            names,
            since_ms: crate::clock::now_ms().saturating_sub(within),
            within_ms: within,
            verified_since,
        })
    }

    /// How many members the mesh has (this device included).
    pub(crate) fn members(&self) -> u64 {
        self.names.len() as u64
    }

    /// How recent a verification must be to count (ms).
    pub(crate) fn within_ms(&self) -> u64 {
        self.within_ms
    }

    /// The oldest check that still counts (ms since the epoch).
    pub(crate) fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Of the devices last seen holding a blob, how many are other devices, and how many
    /// of those have a copy that counts.
    pub(crate) fn peers_among(&self, holders: &[DeviceId]) -> (u64, u64) {
        let peers = holders.iter().filter(|d| **d != self.me);
        let (mut all, mut counted) = (0, 0);
        for d in peers {
            all += 1;
            let at = self.verified_since.get(d).copied().unwrap_or(0);
            if self.counts(d, at) {
                counted += 1;
            }
        }
        (all, counted)
    }

    fn counts(&self, device: &DeviceId, verified_at_ms: u64) -> bool {
        self.names.contains_key(device) && verified_at_ms >= self.since_ms
    }

    /// This device's copy, if it holds one (last verified at `held`).
    pub(crate) fn mine(&self, held: Option<u64>) -> Option<CopyOf> {
        held.map(|at| CopyOf {
            device: self
                .names
                .get(&self.me)
                .cloned()
                .unwrap_or_else(|| "this device".into()),
            verified_at_ms: at,
            counts: at >= self.since_ms,
        })
    }

    /// The other devices' copies of a blob, as last reconciled with them.
    pub(crate) fn of_peers(&self, home: &Home, blob: &BlobId) -> Result<Vec<CopyOf>, IndexError> {
        let mut out: Vec<CopyOf> = home
            .index
            .blob_holders(blob)?
            .into_iter()
            .filter(|d| *d != self.me)
            .map(|d| {
                let at = self.verified_since.get(&d).copied().unwrap_or(0);
                CopyOf {
                    device: self.names.get(&d).cloned().unwrap_or_else(|| d.to_string()),
                    verified_at_ms: at,
                    counts: self.counts(&d, at),
                }
            })
            .collect();
        out.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(out)
    }
}
