//! Fetching what a restore needs that this device does not hold: through the node running on
//! this home when there is one (it holds the connections), else by dialling the members
//! itself and storing what arrives, verified, exactly as a running node does.

use std::net::SocketAddr;
use std::sync::Arc;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use std::path::Path;
use std::time::Duration;

use photomesh_protocol::record::Record;

use crate::home::Home;
use crate::index::IndexError;
use crate::net::close::Close;
use crate::net::control::{self, ControlError, FetchJob};
use crate::net::dial;
use crate::replicate::error::SyncError;
use crate::replicate::fetch::fetch_all;
use crate::replicate::fetcher::Helpers;
use crate::replicate::fetcher::{Fetcher, MAX_IN_FLIGHT_BYTES};
use crate::replicate::held::BlobEngine;
use crate::replicate::transfers::Transfers;

/// How often a restore asks the running node how its fetch is going.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Why the fetch before a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreFetchError {
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The running node could not be asked.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Fetching from the members failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The running node stopped while it fetched for this restore.
    #[error("the node running on this home stopped during the fetch")]
    NodeStopped,
    /// The running node's answer was not a fetch report.
    #[error("the running node's answer to fetch_progress: {0}")]
    Answer(#[from] serde_json::Error),
    /// No async runtime could be started.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the fetch before a restore tells its caller as it goes.
#[derive(Debug)]
pub enum RestoreFetchEvent<'a> {
    /// `done` of `of` blobs fetched so far.
    Progress {
        /// Blobs fetched.
        done: usize,
        /// Blobs wanted.
        of: usize,
        /// Whether the node running on this home fetches them.
        through_node: bool,
    },
    /// A member could not supply what it was asked for.
    Unreachable(&'a str),
}

/// The blobs of the photos a restore of `folder` (or of everything) writes that this device
/// holds neither in its blob store nor as originals. A vault reads no records: none.
pub fn blobs_missing_for_restore(
    home: &Home,
    folder: Option<&str>,
) -> Result<Vec<BlobId>, IndexError> {
    if home.keys.current().is_none() {
        return Ok(Vec::new());
    }
    let held = crate::replicate::held::HeldBlobs::load(home)?;
    Ok(home
        .index
        .latest_photos(folder)?
        .iter()
        .filter_map(|row| Record::open_photo(&row.sealed, &home.keys).ok())
        .map(|p| p.blob_id)
        .filter(|b| !held.contains(b))
        .collect())
}

/// Before a restore: fetches from the members what [`blobs_missing_for_restore`] lists,
/// through the running node if one runs on this home (a second connection from this device
/// would be refused as a duplicate), else by dialling them. Returns the home back.
pub fn fetch_for_restore(
    home: Home,
    folder: Option<&str>,
    on_event: &mut (dyn FnMut(RestoreFetchEvent<'_>) + Send),
) -> Result<Home, RestoreFetchError> {
    let wanted = blobs_missing_for_restore(&home, folder)?;
    if wanted.is_empty() {
        return Ok(home);
    }
    let blobs: Vec<String> = wanted.iter().map(|b| b.to_hex()).collect();
    if control::ask_with(&home.path, "fetch", serde_json::json!({ "blobs": blobs }))?.is_some() {
        follow_node_fetch(&home.path, wanted.len(), on_event)?;
        return Ok(home);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RestoreFetchError::Runtime)?;
    let home = tokio::sync::Mutex::new(home);
    let progress = crate::lock::Mutex::new("the restore's progress", &mut *on_event);
    let report = runtime.block_on(fetch_missing_for_restore(&home, &wanted, &|done, of| {
        (progress.lock())(RestoreFetchEvent::Progress {
            done,
            of,
            through_node: false,
        });
    }))?;
    for problem in &report.unreachable {
        on_event(RestoreFetchEvent::Unreachable(problem));
    }
    Ok(home.into_inner())
}

/// Follows the fetch the running node does for a restore until it ends.
fn follow_node_fetch(
    home: &Path,
    wanted: usize,
    on_event: &mut (dyn FnMut(RestoreFetchEvent<'_>) + Send),
) -> Result<(), RestoreFetchError> {
    let mut shown = usize::MAX;
    loop {
        let job: FetchJob = match control::ask(home, "fetch_progress")? {
            Some(v) => serde_json::from_value(v)?,
            None => return Err(RestoreFetchError::NodeStopped),
        };
        if job.fetched != shown {
            shown = job.fetched;
            on_event(RestoreFetchEvent::Progress {
                done: job.fetched,
                of: wanted,
                through_node: true,
            });
        }
        if !job.running {
            for problem in &job.problems {
                on_event(RestoreFetchEvent::Unreachable(problem));
            }
            return Ok(());
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

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
    use photomesh_protocol::nquic::NoiseKey;
    let (engine, targets, secret) = {
        let home = home.lock().await;
        let engine = BlobEngine::load(&home)?;
        let trust = crate::mesh::trust_set(&home)?;
        let me = home.device.device_id();
        let peers = home.index.peer_addresses()?;
        let mut targets = Vec::new();
        for member in trust.members().filter(|m| m.device != me) {
            let mut addrs: Vec<SocketAddr> = home
                .index
                .last_known_address(&member.device)?
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
            let endpoint = match dial::client_endpoint(&addr) {
                Ok(e) => e,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let config = dial::member_config(secret, NoiseKey(member.noise_key), aes);
            match dial::connect(&endpoint, config, addr, dial::CONNECT_TIMEOUT).await {
                Ok(c) => {
                    connection = Some((endpoint, c));
                    break;
                }
                Err(e) => why = e.describe(false),
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
