//! The mesh as a restore sees it ([`Mesh`]): what a restore needs that this device does not
//! hold intact is fetched from the members that hold it — through the node running on this
//! home when there is one (it holds the connections; a second connection from this device
//! would be refused as a duplicate), else by dialling every member itself, catching up with
//! their records first, and storing what arrives, verified, exactly as a running node does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::seal::BlobId;

use crate::home::Home;
use crate::index::IndexError;
use crate::net::close::Close;
use crate::net::control::{self, ControlError, FetchJob, LiveStatus};
use crate::net::dial;
use crate::replicate::error::SyncError;
use crate::replicate::fetch::fetch_all;
use crate::replicate::fetcher::{Fetcher, Helpers, MAX_IN_FLIGHT_BYTES, Wanted};
use crate::replicate::held::BlobEngine;
use crate::replicate::records::{self, RecordSet};
use crate::replicate::transfers::Transfers;

/// How often a restore asks the running node how its fetch is going.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Why the mesh could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RestoreFetchError {
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The home could not be opened for the mesh session.
    #[error(transparent)]
    Home(#[from] crate::home::HomeError),
    /// The running node could not be asked.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Fetching from the members failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The running node stopped while it fetched for this restore.
    #[error("the node running on this home stopped during the fetch")]
    NodeStopped,
    /// The running node's answer was not what was asked for.
    #[error("the running node's answer: {0}")]
    Answer(#[from] serde_json::Error),
    /// No async runtime could be started.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the mesh session tells its caller as it goes.
#[derive(Debug)]
pub enum MeshEvent<'a> {
    /// A member was reached (and this device caught up with its records).
    Reached {
        /// Its name.
        name: &'a str,
        /// Records it had that this device lacked.
        new_records: usize,
    },
    /// A member could not be reached or could not supply what it was asked for.
    Unreachable(&'a str),
    /// `done` of `of` blobs fetched so far.
    Progress {
        /// Blobs fetched.
        done: usize,
        /// Blobs wanted.
        of: usize,
    },
}

/// The members a restore fetches from.
pub struct Mesh {
    way: Way,
    /// Members reached (for a running node: those it is connected to).
    pub reached: Vec<String>,
    /// Members that could not be reached, with the reason.
    pub unreachable: Vec<String>,
}

enum Way {
    /// The node running on this home fetches.
    Node(PathBuf),
    /// This process dialled the members itself.
    Direct(Box<Direct>),
}

struct Direct {
    runtime: tokio::runtime::Runtime,
    home: Arc<tokio::sync::Mutex<Home>>,
    engine: BlobEngine,
    links: Vec<Link>,
}

struct Link {
    name: String,
    device: DeviceId,
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
}

impl Mesh {
    /// Whether a node runs on the home at `home_path` (it answers on the control socket).
    pub fn node_runs(home_path: &Path) -> bool {
        matches!(control::ask(home_path, "status"), Ok(Some(_)))
    }

    /// Reaches the mesh for a restore of the home at `home_path`: through the node running
    /// there, or by dialling every member — at the addresses `found` gives for it (on the
    /// LAN, now), where it was last seen, and at `extra` (the configured peer addresses) —
    /// catching up with each one's records. A member that cannot be reached is reported,
    /// not an error.
    pub fn connect(
        home_path: &Path,
        extra: &[SocketAddr],
        found: &HashMap<DeviceId, Vec<SocketAddr>>,
        on_event: &mut dyn FnMut(MeshEvent<'_>),
    ) -> Result<Self, RestoreFetchError> {
        if let Some(status) = control::ask(home_path, "status")? {
            let status: LiveStatus = serde_json::from_value(status)?;
            let reached: Vec<String> = status
                .connections
                .iter()
                .map(|c| c.device_id.clone())
                .collect();
            let mut unreachable = Vec::new();
            if reached.is_empty() {
                unreachable.push("the node running on this home is connected to no member".into());
            }
            for r in &reached {
                on_event(MeshEvent::Reached {
                    name: r,
                    new_records: 0,
                });
            }
            return Ok(Self {
                way: Way::Node(home_path.to_owned()),
                reached,
                unreachable,
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(RestoreFetchError::Runtime)?;
        let home = Home::open(home_path)?;
        let engine = BlobEngine::load(&home)?;
        let set = RecordSet::load(&home)?;
        let home = Arc::new(tokio::sync::Mutex::new(home));
        let mut unreachable = Vec::new();
        let links = runtime.block_on(dial_members(
            &home,
            &set,
            extra,
            found,
            &mut unreachable,
            on_event,
        ))?;
        Ok(Self {
            reached: links.iter().map(|l| l.name.clone()).collect(),
            unreachable,
            way: Way::Direct(Box::new(Direct {
                runtime,
                home,
                engine,
                links,
            })),
        })
    }

    /// Whether the node running on this home is the way to the mesh.
    pub fn through_node(&self) -> bool {
        matches!(self.way, Way::Node(_))
    }

    /// Fetches `wanted` from the members that hold them, verified, into the blob store;
    /// returns how many arrived. Blobs this device already holds are not fetched again (a
    /// damaged stored copy must be evicted first: `Index::evict_stored_blob`).
    pub fn fetch(
        &mut self,
        wanted: &[BlobId],
        on_event: &mut (dyn FnMut(MeshEvent<'_>) + Send),
    ) -> Result<usize, RestoreFetchError> {
        if wanted.is_empty() {
            return Ok(0);
        }
        match &mut self.way {
            Way::Node(home_path) => follow_node_fetch(home_path, wanted, on_event),
            Way::Direct(direct) => {
                let Direct {
                    runtime,
                    home,
                    engine,
                    links,
                } = &mut **direct;
                {
                    let home = home.blocking_lock();
                    engine.held.refresh(&home)?;
                }
                let progress = crate::lock::Mutex::new("the restore's progress", &mut *on_event);
                let (fetched, problems) =
                    runtime.block_on(fetch_over(home, engine, links, wanted, &|done, of| {
                        (progress.lock())(MeshEvent::Progress { done, of })
                    }));
                for p in &problems {
                    on_event(MeshEvent::Unreachable(p));
                }
                Ok(fetched)
            }
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Way::Direct(direct) = &self.way {
            for link in &direct.links {
                Close::Done.close(&link.connection);
            }
            direct.runtime.block_on(async {
                for link in &direct.links {
                    link.endpoint.wait_idle().await;
                }
            });
        }
    }
}

/// Dials every other member, and catches up with the records of each one reached; those
/// not reached are added to `unreachable` with the reason.
async fn dial_members(
    home: &Arc<tokio::sync::Mutex<Home>>,
    set: &RecordSet,
    extra: &[SocketAddr],
    found: &HashMap<DeviceId, Vec<SocketAddr>>,
    unreachable: &mut Vec<String>,
    on_event: &mut dyn FnMut(MeshEvent<'_>),
) -> Result<Vec<Link>, SyncError> {
    use photomesh_protocol::nquic::NoiseKey;
    let (targets, secret) = {
        let home = home.lock().await;
        let trust = crate::mesh::trust_set(&home)?;
        let me = home.device.device_id();
        let mut peers = home.index.peer_addresses()?;
        peers.extend(extra.iter().copied());
        let names: Vec<String> = home
            .index
            .peers()?
            .into_iter()
            .filter(|p| p.parse::<SocketAddr>().is_err())
            .collect();
        for addr in crate::net::resolve::resolve_all(&names).await {
            if !peers.contains(&addr) {
                peers.push(addr);
            }
        }
        let mut targets = Vec::new();
        for member in trust.devices().filter(|m| m.device != me) {
            let mut addrs: Vec<SocketAddr> = found.get(&member.device).cloned().unwrap_or_default();
            if let Some(a) = home.index.last_known_address(&member.device)?
                && !addrs.contains(&a)
            {
                addrs.push(a);
            }
            for p in &peers {
                if !addrs.contains(p) {
                    addrs.push(*p);
                }
            }
            let aes = home.index.has_aes(&member.device)?;
            targets.push((member.clone(), addrs, aes));
        }
        (targets, home.device.noise_secret())
    };
    // Every member is dialled at once: an offline one costs one connect timeout in all,
    // not one each.
    let mut dials = tokio::task::JoinSet::new();
    for (order, (member, addrs, aes)) in targets.into_iter().enumerate() {
        dials.spawn(async move {
            let mut why = String::from("no address is known for it");
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
                    Ok(c) => return (order, member, Ok((endpoint, c))),
                    Err(e) => why = e.describe(false),
                }
            }
            (order, member, Err(why))
        });
    }
    let mut dialled = dials.join_all().await;
    dialled.sort_by_key(|(order, ..)| *order);
    let mut links = Vec::new();
    for (_, member, connected) in dialled {
        let label = format!("{} ({})", member.name, member.device.short());
        let (endpoint, connection) = match connected {
            Ok(c) => c,
            Err(why) => {
                let line = format!("{label}: {why}");
                on_event(MeshEvent::Unreachable(&line));
                unreachable.push(line);
                continue;
            }
        };
        match records::sync(home, set, &connection).await {
            Ok(new_records) => on_event(MeshEvent::Reached {
                name: &label,
                new_records,
            }),
            Err(e) => {
                let line = format!("{label}: catching up with its records failed: {e}");
                on_event(MeshEvent::Unreachable(&line));
                unreachable.push(line);
            }
        }
        links.push(Link {
            name: label,
            device: member.device,
            endpoint,
            connection,
        });
    }
    Ok(links)
}

/// Fetches `wanted` over `links`, one member after another, each large blob also in ranges
/// from the others. Returns how many blobs arrived and the problems met.
async fn fetch_over(
    home: &Arc<tokio::sync::Mutex<Home>>,
    engine: &BlobEngine,
    links: &[Link],
    wanted: &[BlobId],
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> (usize, Vec<String>) {
    let mut left: Vec<BlobId> = wanted
        .iter()
        .filter(|b| !engine.held.contains(b))
        .copied()
        .collect();
    left.sort();
    left.dedup();
    let total = left.len();
    on_progress(0, total);
    let mut problems = Vec::new();
    if links.is_empty() && total > 0 {
        problems.push("no member of the mesh could be reached".to_owned());
    }
    let all: Vec<(DeviceId, quinn::Connection)> = links
        .iter()
        .map(|l| (l.device, l.connection.clone()))
        .collect();
    let helpers = Helpers {
        home: home.clone(),
        links: Arc::new(move || all.clone()),
    };
    let transfers = Transfers::default();
    for link in links {
        if left.is_empty() {
            break;
        }
        let result = fetch_from(
            home,
            engine,
            &link.connection,
            link.device,
            &transfers,
            left.iter().map(|&b| Wanted::unknown(b)).collect(),
            Some(helpers.clone()),
        )
        .await;
        left.retain(|b| !engine.held.contains(b));
        on_progress(total - left.len(), total);
        if let Err(e) = result {
            problems.push(format!("{}: {e}", link.name));
        }
    }
    (total - left.len(), problems)
}

/// Asks the running node to fetch `wanted` and follows it until it ends.
fn follow_node_fetch(
    home: &Path,
    wanted: &[BlobId],
    on_event: &mut dyn FnMut(MeshEvent<'_>),
) -> Result<usize, RestoreFetchError> {
    let blobs: Vec<String> = wanted.iter().map(|b| b.to_hex()).collect();
    if control::ask_with(home, "fetch", serde_json::json!({ "blobs": blobs }))?.is_none() {
        return Err(RestoreFetchError::NodeStopped);
    }
    let mut shown = usize::MAX;
    loop {
        let job: FetchJob = match control::ask(home, "fetch_progress")? {
            Some(v) => serde_json::from_value(v)?,
            None => return Err(RestoreFetchError::NodeStopped),
        };
        if job.fetched != shown {
            shown = job.fetched;
            on_event(MeshEvent::Progress {
                done: job.fetched,
                of: wanted.len(),
            });
        }
        if !job.running {
            for problem in &job.problems {
                on_event(MeshEvent::Unreachable(problem));
            }
            return Ok(job.fetched);
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
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
    wanted: Vec<Wanted>,
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
