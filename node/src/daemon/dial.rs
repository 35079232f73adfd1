//! Keeping a connection to every member: the dialling loop, where each member may be, and
//! the trust set reloaded when membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Instant;

use photomesh_protocol::discovery::DiscoveryKeys;
use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::Member;
use photomesh_protocol::nquic::{NoiseKey, Suite};

use super::{DIAL_TIMEOUT, DaemonError, NodeHandle, SYNC_INTERVAL, TRUST_POLL};
use crate::home::Home;
use crate::mesh::{self, MeshTrust};
use crate::net::close::Close;
use crate::net::control::Dialler;
use crate::net::dial;
use crate::net::transport;

/// Reloads the trust set (and the discovery keys, which a revocation rotates) when the index
/// changes, and closes connections of devices that are no longer trusted.
pub(super) async fn watch_trust(
    home_path: std::path::PathBuf,
    trust: Arc<MeshTrust>,
    responders: Arc<crate::mesh::ResponderKeys>,
    discovery_keys: Option<Arc<crate::lock::Mutex<DiscoveryKeys>>>,
    node: NodeHandle,
) {
    let Ok(mut home) = Home::open(&home_path) else {
        return;
    };
    let mut version = home.index.data_version().ok();
    let mut membership: Vec<photomesh_protocol::record::RecordId> = Vec::new();
    loop {
        tokio::time::sleep(TRUST_POLL).await;
        let now = home.index.data_version().ok();
        if now == version {
            continue;
        }
        version = now;
        // The membership records, read once for the trust set and the discovery keys.
        let (Ok(founder), Ok(records)) = (mesh::founder(&home), mesh::records(&home)) else {
            continue;
        };
        let current = photomesh_protocol::membership::TrustSet::evaluate(&founder, &records);
        trust.update(current.clone());
        let ids: Vec<_> = records.iter().map(|r| r.record_id).collect();
        if ids != membership {
            membership = ids;
            // Keys shared with this device, shares members lack, the responder keys.
            let epochs = home.keys.iter().count();
            responders.update(super::keep_keys(&mut home, false));
            if home.keys.iter().count() != epochs {
                node.0.home.lock().await.keys = home.keys.clone();
                // Records that came between the key's arrival and now were stored sealed.
                super::open_held_records(&home);
            }
        }
        if let (Some(shared), Some(keys)) =
            (&discovery_keys, DiscoveryKeys::for_mesh(&founder, &records))
        {
            *shared.lock() = keys;
        }
        {
            let mut registry = node.0.registry.lock();
            registry.retain(|key, link| {
                let keep = current.by_noise_key(key).is_some();
                if !keep {
                    tracing::info!("closing the connection of a device that is no longer trusted");
                    Close::Revoked.close(&link.connection);
                }
                keep
            });
        }
    }
}

/// Keeps a connection to every member it can reach: dials, in the background, each member
/// the registry holds no connection to, at every address it may be at that is not backing
/// off; every [`SYNC_INTERVAL`], and at once when discovery finds a member.
pub(super) async fn dial_loop(node: NodeHandle) {
    type Attempt = (Member, SocketAddr, Result<(), DaemonError>);
    let mut attempts: tokio::task::JoinSet<Attempt> = tokio::task::JoinSet::new();
    // Each (device, address) is tried once at a time.
    let mut attempting: BTreeSet<(DeviceId, SocketAddr)> = BTreeSet::new();
    // One client config per peer and suite, so nQUIC reuses what it may between connections.
    let mut configs: BTreeMap<([u8; 32], u32), quinn::ClientConfig> = BTreeMap::new();
    loop {
        let targets = match dial_targets(&node).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot list the devices to dial: {e}");
                Vec::new()
            }
        };
        let now = Instant::now();
        for (member, addr) in targets {
            let due = node.0.backoff.lock().due(&member.device, addr, now);
            if !due || !attempting.insert((member.device, addr)) {
                continue;
            }
            let config = {
                let home = node.0.home.lock().await;
                let peer_aes = home.index.has_aes(&member.device).ok().flatten();
                let suite = Suite::choose(transport::has_aes_hardware(), peer_aes);
                configs
                    .entry((member.noise_key, suite.version()))
                    .or_insert_with(|| {
                        transport::client_config(
                            home.device.noise_secret(),
                            NoiseKey(member.noise_key),
                            suite,
                            None,
                            transport::os_random(),
                        )
                    })
                    .clone()
            };
            let node = node.clone();
            attempts.spawn(async move {
                // Adopted before the attempt ends, so that the next round sees the
                // connection and does not dial the member again.
                let result = match connect(&node.0.endpoint, addr, config).await {
                    Ok(connection) => {
                        node.adopt(connection, Dialler::Here).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                (member, addr, result)
            });
        }
        tokio::select! {
            () = tokio::time::sleep(SYNC_INTERVAL) => {}
            () = node.0.dial_now.notified() => {}
            Some(Ok((member, addr, result))) = attempts.join_next(), if !attempts.is_empty() => {
                attempting.remove(&(member.device, addr));
                match result {
                    Ok(()) => {
                        node.0.unreached.lock().remove(&member.device);
                    }
                    Err(e) => {
                        let wait = node
                            .0
                            .backoff
                            .lock()
                            .failed(member.device, addr, Instant::now(), jitter());
                        tracing::debug!(%addr, peer = %member.device.short(), ?wait, "dial failed: {e}");
                        node.0.unreached.lock().insert(member.device, e.to_string());
                    }
                }
            }
        }
    }
}

/// A number in `[0, 1)` from the OS random number generator (0 if it fails).
pub(super) fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// The members to dial now: those not connected, where each was last seen (or another
/// member saw it), where discovery found it, and at every configured peer address no member
/// is known to answer at.
async fn dial_targets(node: &NodeHandle) -> Result<Vec<(Member, SocketAddr)>, DaemonError> {
    let home = node.0.home.lock().await;
    let trust = mesh::trust_set(&home)?;
    let me = home.device.device_id();
    let mut names = home.index.peers()?;
    names.extend(node.0.configured.iter().cloned());
    let mut seen_at = BTreeMap::new();
    for member in trust.devices() {
        if let Some(addr) = home.index.last_known_address(&member.device)? {
            seen_at.insert(member.device, addr);
        }
    }
    drop(home);
    // Names are resolved at every round: an address behind a name may have changed.
    let peers = crate::net::resolve::resolve_all(&names).await;
    let found = node.0.found.lock().clone();
    let claimed: BTreeSet<SocketAddr> = seen_at
        .values()
        .copied()
        .chain(found.values().flatten().copied())
        .collect();
    let held: BTreeSet<[u8; 32]> = {
        let registry = node.0.registry.lock();
        trust
            .devices()
            .map(|m| m.noise_key)
            .filter(|k| registry.holds(k))
            .collect()
    };
    let mut targets = Vec::new();
    for member in trust.devices() {
        if member.device == me || held.contains(&member.noise_key) {
            continue;
        }
        let own = seen_at.get(&member.device).into_iter();
        let discovered = found.get(&member.device).into_iter().flatten();
        let unclaimed = peers.iter().filter(|p| !claimed.contains(p));
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in own.chain(discovered).chain(unclaimed) {
            if !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
        targets.extend(addrs.into_iter().map(|a| (member.clone(), a)));
    }
    Ok(targets)
}

/// Dials one member at one address.
async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    config: quinn::ClientConfig,
) -> Result<quinn::Connection, DaemonError> {
    Ok(dial::connect(endpoint, config, addr, DIAL_TIMEOUT).await?)
}
