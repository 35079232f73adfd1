//! Fetching blobs for a restore when no node runs on this home: dial the members, fetch what
//! the restore needs, verified, exactly as a running node stores it.

use std::net::SocketAddr;
use std::sync::Arc;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::home::Home;
use crate::net::close::Close;
use crate::net::frame::{self};
use crate::replicate::error::SyncError;
use crate::replicate::fetch::{Fetcher, MAX_IN_FLIGHT_BYTES, fetch_all};
use crate::replicate::held::BlobEngine;
use crate::replicate::ranges::Helpers;
use crate::replicate::transfers::Transfers;

/// What [`fetch_missing_for_restore`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct MeshFetch {
    /// Blobs the photos needed that this device did not hold.
    pub missing: usize,
    /// Of those, blobs fetched from members.
    pub fetched: usize,
    /// Members that could not be reached, with the reason.
    pub unreachable: Vec<String>,
}

/// Fetches `wanted` (those not held yet) from `peer` over `connection` — large blobs also
/// in ranges from `helpers` — whatever the hold policy says: the caller chose the blobs.
/// Returns how many were stored.
pub async fn fetch_from(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    connection: &quinn::Connection,
    peer: DeviceId,
    transfers: &Transfers,
    wanted: Vec<BlobId>,
    helpers: Option<Helpers>,
) -> Result<usize, SyncError> {
    let (store, partial_dir) = {
        let home = home.lock().await;
        (home.blobs.clone(), home.path.join("blobs/partial"))
    };
    let fetcher = Arc::new(Fetcher {
        connection: connection.clone(),
        peer,
        store,
        partial_dir,
        transfers: transfers.clone(),
        bytes: tokio::sync::Semaphore::new((MAX_IN_FLIGHT_BYTES >> 10) as usize),
        buffers: engine.buffers.clone(),
        helpers,
    });
    fetch_all(home, engine, fetcher, wanted).await
}

/// Fetches, from the members that hold them, the blobs of `photos` this device holds
/// neither in its blob store nor as originals: it connects itself to every member at the
/// address the index knows for it (where it, or another member, last saw it) and at the
/// configured peer addresses, and stores what arrives, verified, like a running node.
/// `on_progress` hears the number of blobs fetched so far.
pub async fn fetch_missing_for_restore(
    home: &tokio::sync::Mutex<Home>,
    blobs: &[BlobId],
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MeshFetch, SyncError> {
    use photomesh_protocol::nquic::{NoiseKey, Suite};
    let (engine, targets, secret) = {
        let home = home.lock().await;
        let engine = BlobEngine::load(&home)?;
        let trust = crate::mesh::trust_set(&home)?;
        let me = home.device.device_id();
        let peers: Vec<SocketAddr> = home
            .index
            .peers()?
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        let mut targets = Vec::new();
        for member in trust.members().filter(|m| m.device != me) {
            let mut addrs: Vec<SocketAddr> = home
                .index
                .seen(&member.device)?
                .and_then(|(_, a)| a)
                .or(home.index.learned_address(&member.device)?)
                .and_then(|a| a.parse().ok())
                .into_iter()
                .collect();
            for p in &peers {
                if !addrs.contains(p) {
                    addrs.push(*p);
                }
            }
            let aes = home.index.has_aes(&member.device)?;
            targets.push((member.clone(), addrs, aes));
        }
        (engine, targets, home.device.noise_secret())
    };
    let mut report = MeshFetch::default();
    let mut left: Vec<BlobId> = blobs
        .iter()
        .filter(|b| !engine.held.contains(b))
        .copied()
        .collect();
    left.sort();
    left.dedup();
    report.missing = left.len();
    on_progress(0, report.missing);
    let transfers = Transfers::default();
    for (member, addrs, aes) in targets {
        if left.is_empty() {
            break;
        }
        let mut connection = None;
        let mut why = String::from("no known address");
        for addr in addrs {
            let endpoint = match frame::client_endpoint(&addr) {
                Ok(e) => e,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let config = crate::net::transport::client_config(
                secret,
                NoiseKey(member.noise_key),
                Suite::choose(crate::net::transport::has_aes_hardware(), aes),
                None,
                crate::net::transport::os_random(),
            );
            let Ok(connecting) = endpoint.connect_with(config, addr, "photomesh") else {
                continue;
            };
            match tokio::time::timeout(frame::CONNECT_TIMEOUT, connecting).await {
                Ok(Ok(c)) => {
                    connection = Some((endpoint, c));
                    break;
                }
                Ok(Err(e)) => why = frame::describe_connect_error(&e, addr, false),
                Err(_) => why = format!("no answer from {addr}"),
            }
        }
        let Some((endpoint, connection)) = connection else {
            report
                .unreachable
                .push(format!("{} ({}): {why}", member.name, member.device));
            continue;
        };
        let result = fetch_from(
            home,
            &engine,
            &connection,
            member.device,
            &transfers,
            left.clone(),
            None,
        )
        .await;
        Close::Done.close(&connection);
        endpoint.wait_idle().await;
        left.retain(|b| !engine.held.contains(b));
        report.fetched = report.missing - left.len();
        on_progress(report.fetched, report.missing);
        if let Err(e) = result {
            report
                .unreachable
                .push(format!("{} ({}): {e}", member.name, member.device));
        }
    }
    Ok(report)
}
