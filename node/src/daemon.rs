//! The running node (`photomesh run`) and the member-to-member hello (`photomesh ping`).
//!
//! One connection per pair of devices ([`registry`]): whichever side dialled it, it is
//! adopted into the registry and then served (the peer's `Request`s) and synced over (this
//! side's pull: hello, records, blobs, every [`SYNC_INTERVAL`] or at once when woken). When
//! dials cross, both ends keep the connection dialled by the smaller Noise key. Absent members
//! are dialled in the background, with a per-address backoff from 1 s to 60 s, at every
//! address known for them (last seen, seen by others, found by [`discovery`], configured).
//!
//! A failed exchange costs the peer its connection only if it was the peer's fault
//! (`link::after_failure`); a failure on this device is logged once and retried. The trust set is
//! reloaded when the index changes (every [`TRUST_POLL`]), and a revoked device's connection
//! is closed. The home's control socket serves `status`, `devices` and restore fetches. A
//! stopping node resets its blob answers and gives its connections a few round trips to close.
//! Under a service manager ([`notify`]) the node says when it is ready, pings the watchdog,
//! and says when it stops.

mod control;
mod dial;
pub mod discovery;
mod drill;
pub mod hello;
mod link;
pub mod notify;
pub mod registry;
pub mod scrub;
mod trash;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::lock::Mutex;
use std::time::Duration;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::messages::Request;

use crate::clock::now_ms;
use crate::daemon::registry::{Backoff, Link, Registry};
use crate::error::{Blame, Fault};
use crate::home::{Home, HomeError};
use crate::index::IndexError;
use crate::mesh::{self, MeshError, MeshTrust, ResponderKeys};
use crate::net::close::Close;
use crate::net::control::Dialler;
use crate::net::control::{ControlError, ControlSocket, FetchJob, LiveConnection, LiveStatus};
use crate::net::frame::{self, NetError};
use crate::net::transport;
use crate::replicate::records::RecordSet;
use crate::replicate::transfers::Transfers;
use dial::{dial_loop, watch_trust};
use link::connection_id;

/// How often the node checks the index for membership changes.
pub const TRUST_POLL: Duration = Duration::from_millis(200);
/// How often the node dials the members it is not connected to, and syncs with those it is.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long the running node waits for a member to answer a dial.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept connection may take to answer a hello before a newer connection from
/// the same peer replaces it (the peer restarted and forgot the old one).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Where `photomesh run` listens unless told otherwise.
/// Every address, IPv6 and IPv4 (one dual-stack socket); IPv4 alone where there is no IPv6.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 7447);

/// How long a link waits before it tries again after a failure on this device (a full disk,
/// an index error) or a failed exchange on a connection that is still up.
pub const RETRY_AFTER_LOCAL_FAILURE: Duration = Duration::from_secs(5);
/// The least and most a stopping node waits, after resetting its blob answers, before it
/// closes its connections (four round trips of its slowest connection, within these).
const STOP_GRACE_MIN: Duration = Duration::from_millis(5);
const STOP_GRACE_MAX: Duration = Duration::from_millis(250);

/// Why the node or a ping failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The home could not be opened.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Membership could not be read.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A member could not be dialled.
    #[error(transparent)]
    Dial(#[from] crate::net::dial::DialError),
    /// No member answered.
    #[error("{0}")]
    NoAnswer(String),
    /// Replication failed.
    #[error(transparent)]
    Sync(#[from] crate::replicate::error::SyncError),
    /// The control socket could not be opened (another node runs on this home).
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl Blame for DaemonError {
    fn fault(&self) -> Fault {
        match self {
            DaemonError::Home(_)
            | DaemonError::Index(_)
            | DaemonError::Mesh(_)
            | DaemonError::Control(_) => Fault::Local,
            DaemonError::Net(e) => e.fault(),
            DaemonError::Dial(e) => e.fault(),
            DaemonError::NoAnswer(_) => Fault::Network,
            DaemonError::Sync(e) => e.fault(),
        }
    }
}

/// How to run the node.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where to listen for members (UDP).
    pub listen: SocketAddr,
    /// Whether and how to watch the folders; `None` leaves them to `photomesh scan`.
    pub watch: Option<crate::library::watch::WatchOptions>,
    /// Whether to advertise this device and look for members on the LAN (mDNS).
    pub discovery: crate::daemon::discovery::Settings,
    /// Addresses (`HOST:PORT`) from the configuration file, dialled like those of `peer add`
    /// and, like them, resolved again at every dial.
    pub peers: Vec<String>,
    /// Free space kept on the blob store's disk (`[storage] reserve`); `None`: 5% of the
    /// disk, at most 1 GiB.
    pub reserve: Option<u64>,
    /// The most bytes of blobs this device stores (`[storage] max_bytes`); `None`: no cap.
    pub max_bytes: Option<u64>,
    /// How long deleted photos stay in the trash before their blobs are purged.
    pub trash_retention: std::time::Duration,
    /// How long a purge another device signed is held before this one acts on it.
    pub purge_hold: std::time::Duration,
    /// Which earlier versions of edited photos are kept.
    pub keep_versions: crate::home::config::Keep,
    /// How the stored blobs are re-verified (`[scrub]`).
    pub scrub: crate::daemon::scrub::ScrubOptions,
    /// How often a restore drill runs by itself (`[drill] interval`); `None`: never.
    pub drill_every: Option<std::time::Duration>,
    /// Whether to ask the router for a port mapping (`[nat] map_port`), and which router
    /// (`None` inside: the default gateway).
    pub map_port: Option<Option<std::net::IpAddr>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            watch: Some(crate::library::watch::WatchOptions::default()),
            discovery: crate::daemon::discovery::Settings::default(),
            peers: Vec::new(),
            reserve: None,
            max_bytes: None,
            trash_retention: crate::home::config::DEFAULT_TRASH_RETENTION,
            purge_hold: crate::home::config::DEFAULT_PURGE_HOLD,
            keep_versions: crate::home::config::Keep::All,
            scrub: crate::daemon::scrub::ScrubOptions::default(),
            drill_every: None,
            map_port: None,
        }
    }
}

/// A running node, as the rest of the node process talks to it. Cheap to clone; every
/// method may be called from any thread.
#[derive(Clone)]
pub struct NodeHandle(Arc<Shared>);

struct Shared {
    home: Arc<tokio::sync::Mutex<Home>>,
    /// Becomes `true` once a records sync with a member succeeded.
    records_synced: tokio::sync::watch::Sender<bool>,
    set: Arc<RecordSet>,
    holdings: crate::replicate::blobs::PeerHoldings,
    /// The blobs held, the hold policy and the fetching of blobs.
    engine: Arc<crate::replicate::held::BlobEngine>,
    /// The fetch a local command (`restore`) asked for, running or last finished.
    fetch_job: Mutex<Option<FetchJob>>,
    /// The restore drill a local command asked for, if any (`daemon::drill`).
    drill_job: Mutex<Option<crate::net::control::DrillJob>>,
    /// The router's port mapping, when one is asked for (`net::portmap`).
    port_map: Option<Arc<crate::net::portmap::PortMap>>,
    /// Why the last dial of each member not connected failed, for `status`.
    unreached: Mutex<std::collections::BTreeMap<DeviceId, String>>,
    transfers: Transfers,
    own_key: [u8; 32],
    device: DeviceId,
    endpoint: quinn::Endpoint,
    local: SocketAddr,
    started_at_ms: u64,
    runtime: tokio::runtime::Handle,
    registry: Mutex<Registry>,
    backoff: Mutex<Backoff>,
    /// Addresses discovery found, by device.
    found: Mutex<BTreeMap<DeviceId, Vec<SocketAddr>>>,
    /// Peer addresses from the configuration file.
    configured: Vec<String>,
    dial_now: tokio::sync::Notify,
    next_link: AtomicU64,
    /// The tasks answering blob requests.
    serving: tokio_util::task::TaskTracker,
    /// What they read blobs through (`None`: the index could not be opened a second time;
    /// they read through the home).
    reader: Option<Arc<crate::replicate::serve::ServeReader>>,
    /// Cancelled when the node stops: every blob answer still running resets its stream
    /// before the connections close. quinn (0.11.19) does not send a connection's
    /// CONNECTION_CLOSE while the congestion window is full and stream data is still
    /// queued (quinn issue #2785), and the peer would then learn of the close only at its
    /// idle timeout.
    stopping: tokio_util::sync::CancellationToken,
}

/// Runs the node until `shutdown` resolves. `on_listening` is given the node's handle once
/// it listens (and its control socket is open).
pub async fn run(
    home_path: &Path,
    options: RunOptions,
    on_listening: impl FnOnce(&NodeHandle),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut home = Home::open(home_path)?;
    // Before anything else: a second node on this home is refused here.
    let control = ControlSocket::bind(home_path)?;
    let responders = Arc::new(ResponderKeys::new(keep_keys(&mut home, true)));
    let trust = Arc::new(MeshTrust::new(mesh::trust_set(&home)?));
    let (endpoint, server, local) = listen(&home, &trust, &responders, options.listen)?;
    tracing::info!(%local, device = %home.device.device_id().short(), "listening");

    let set = RecordSet::load(&home)?;
    // The trash as the lifecycle records and the members say now (they may have changed
    // while no node ran: a record added by hand, a revocation).
    if let Err(e) = crate::mesh::trash::refresh(&home) {
        tracing::warn!("bringing the trash up to date: {e}");
    }
    let discovery_keys = crate::daemon::discovery::keys(&home);
    let mut engine = crate::replicate::held::BlobEngine::load(&home)?;
    engine.reserve = options.reserve;
    engine.quota = options.max_bytes;
    engine.retention = options.trash_retention;
    engine.purge_hold = options.purge_hold;
    let engine = Arc::new(engine);
    tracing::info!(hold = engine.policy.name(), "hold policy");
    // A vault holds no library key: it can seal no photo, so it has no folders to watch.
    let vault = home.keys.current().is_none();
    let reader = match crate::replicate::serve::ServeReader::new(&home) {
        Ok(reader) => Some(Arc::new(reader)),
        Err(e) => {
            tracing::warn!("blobs are served through the node's own index connection: {e}");
            None
        }
    };
    let node = NodeHandle(Arc::new(Shared {
        own_key: home.device.noise_public(),
        device: home.device.device_id(),
        home: Arc::new(tokio::sync::Mutex::new(home)),
        records_synced: tokio::sync::watch::Sender::new(false),
        set,
        holdings: crate::replicate::blobs::PeerHoldings::default(),
        engine,
        fetch_job: Mutex::default(),
        drill_job: Mutex::default(),
        port_map: options
            .map_port
            .map(|_| Arc::new(crate::net::portmap::PortMap::default())),
        unreached: Mutex::default(),
        transfers: Transfers::default(),
        endpoint: endpoint.clone(),
        local,
        started_at_ms: now_ms(),
        runtime: tokio::runtime::Handle::current(),
        registry: Mutex::default(),
        backoff: Mutex::default(),
        found: Mutex::default(),
        configured: options.peers.clone(),
        dial_now: tokio::sync::Notify::new(),
        next_link: AtomicU64::new(1),
        serving: tokio_util::task::TaskTracker::new(),
        reader,
        stopping: tokio_util::sync::CancellationToken::new(),
    }));
    on_listening(&node);

    // The keys follow the membership records, as the trust set does (`watch_trust`).
    let keys =
        discovery_keys.map(|keys| Arc::new(crate::lock::Mutex::new("the discovery keys", keys)));
    let discovery = match &keys {
        Ok(keys) => start_discovery(&node, &trust, keys.clone(), options.discovery),
        Err(e) => {
            tracing::warn!("LAN discovery is off: {e}");
            None
        }
    };
    let watcher = tokio::spawn(watch_trust(
        home_path.to_owned(),
        trust,
        responders,
        keys.ok(),
        node.clone(),
    ));
    let folders = options
        .watch
        .filter(|_| !vault)
        .map(|watch| watch_folders(&node, home_path.to_owned(), watch));
    let dialer = tokio::spawn(dial_loop(node.clone()));
    let scrubber = tokio::spawn(crate::daemon::scrub::scrub_loop(
        node.clone(),
        options.scrub,
    ));
    let mapper = match (options.map_port, &node.0.port_map) {
        (Some(gateway), Some(state)) => Some(tokio::spawn(crate::net::portmap::keep_mapped(
            local.port(),
            gateway,
            state.clone(),
            node.0.stopping.clone(),
        ))),
        _ => None,
    };
    let driller = tokio::spawn(crate::daemon::drill::drill_loop(
        node.clone(),
        options.drill_every,
    ));
    let purger = tokio::spawn(crate::daemon::trash::purge_loop(
        node.clone(),
        options.trash_retention,
        options.purge_hold,
        options.keep_versions,
    ));
    let control = Arc::new(control);
    let controller = tokio::spawn({
        let (control, node) = (control.clone(), node.clone());
        async move {
            control
                .serve(move |verb, args| node.answer(verb, args))
                .await
        }
    });
    // Ready: the endpoint listens and the control socket answers.
    let manager = notify::Manager::ready(&node);
    accept_until(&endpoint, &server, &node, shutdown).await;
    if let Some(manager) = &manager {
        manager.stopping();
    }
    watcher.abort();
    dialer.abort();
    scrubber.abort();
    purger.abort();
    driller.abort();
    controller.abort();
    if let Some(folders) = folders {
        // Dropping the watcher's future stops its thread.
        folders.abort();
        let _ = folders.await;
    }
    // Says goodbye on the LAN, so members forget this device's advert at once.
    drop(discovery);
    let _ = controller.await;
    node.stop_serving().await;
    // The port mapping is removed from the router (the token stopped it; bounded).
    if let Some(mapper) = mapper {
        let _ = mapper.await;
    }
    Close::Done.close_endpoint(&endpoint);
    endpoint.wait_idle().await;
    // The socket file goes with the last reference (the server task's is gone).
    drop(control);
    // The watchdog pings until here.
    drop(manager);
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the keys in step with the key shares, at start and whenever membership records
/// change: takes the library keys shared with this device, writes the shares members lack
/// and, at start (`at_start`), gives a mesh without a recovery key one (a mesh founded before
/// them; said loudly, since its phrase must be exported). Only at start: while records
/// arrive, a rotation's revocation may come before its new introduction. Returns the
/// recovery responder keys this device holds. Failures are logged: the node runs on with
/// what it has.
pub(crate) fn keep_keys(home: &mut Home, at_start: bool) -> Vec<[u8; 32]> {
    let now = now_ms();
    match mesh::shares::absorb(home) {
        Ok(added) if !added.is_empty() => open_held_records(home),
        Ok(_) => {}
        Err(e) => tracing::warn!("opening the key shares sealed to this device: {e}"),
    }
    let made = if at_start {
        mesh::recovery::ensure(home, now)
    } else {
        Ok(false)
    };
    match made {
        Ok(true) => tracing::warn!(
            "this mesh had no recovery key: made one. Export the recovery phrase now with \
             `photomesh recovery-key export`: until then nothing recovers the mesh if every \
             full device is lost"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!("making a recovery key: {e}"),
    }
    if let Err(e) = mesh::shares::fill(home, now) {
        tracing::warn!("writing key shares: {e}");
    }
    mesh::shares::responder_keys(home).unwrap_or_else(|e| {
        tracing::warn!("reading the recovery responder keys: {e}");
        Vec::new()
    })
}

/// Opens the records kept sealed for want of an epoch this device now holds.
pub(crate) fn open_held_records(home: &Home) {
    match crate::replicate::records::open_held_records(home) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(
                records = n,
                "opened records sealed under a newly received key"
            );
            if let Err(e) = crate::mesh::trash::refresh(home) {
                tracing::warn!("bringing the trash up to date: {e}");
            }
        }
        Err(e) => tracing::warn!("opening records under a newly received key: {e}"),
    }
}

/// The node's endpoint, accepting the members of `trust`, its server configuration, and the
/// address it listens on.
fn listen(
    home: &Home,
    trust: &Arc<MeshTrust>,
    responders: &Arc<ResponderKeys>,
    listen: SocketAddr,
) -> Result<(quinn::Endpoint, quinn::ServerConfig, SocketAddr), DaemonError> {
    let config = transport::server_config(
        home.device.noise_secret(),
        trust.clone(),
        None,
        Some(responders.clone()),
        transport::os_random(),
    );
    let bind_failed = |source| NetError::Bind {
        addr: listen,
        source,
    };
    let endpoint = match transport::node_endpoint(listen, Some(config.clone())) {
        // The IPv6 wildcard on a host without IPv6: the IPv4 one, on the same port.
        Err(e) if listen.is_ipv6() && listen.ip().is_unspecified() => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], listen.port()));
            tracing::info!("no IPv6 here ({e}): listening on IPv4 only");
            transport::node_endpoint(v4, Some(config.clone()))
                .map_err(|source| NetError::Bind { addr: v4, source })?
        }
        bound => bound.map_err(bind_failed)?,
    };
    let local = endpoint.local_addr().map_err(bind_failed)?;
    Ok((endpoint, config, local))
}

/// Members on the LAN: found by mDNS and dialled at once. Without it (port 5353 taken, no
/// multicast) the node still reaches configured and learned addresses.
fn start_discovery(
    node: &NodeHandle,
    trust: &Arc<MeshTrust>,
    keys: Arc<crate::lock::Mutex<photomesh_protocol::discovery::DiscoveryKeys>>,
    settings: crate::daemon::discovery::Settings,
) -> Option<crate::daemon::discovery::Discovery> {
    let (finder, members) = (node.clone(), trust.clone());
    crate::daemon::discovery::Discovery::start(
        node.0.device,
        move || keys.lock().clone(),
        node.0.local.port(),
        settings,
        move || members.devices(),
        move |device, addrs| finder.found(device, addrs),
    )
    .map_err(|e| {
        tracing::warn!("LAN discovery is off: {e}; peers are dialled at configured addresses")
    })
    .ok()
}

/// New photos in the folders are recorded once complete and announced to the peers. After a
/// `repair-index` that lost records, the first rescan waits until a member sent them back (or
/// [`crate::library::repair::CATCH_UP_WAIT`]): rescanned first, their files would be recorded
/// anew.
fn watch_folders(
    node: &NodeHandle,
    home_path: std::path::PathBuf,
    watch: crate::library::watch::WatchOptions,
) -> tokio::task::JoinHandle<()> {
    let announcer = node.clone();
    let waiter = node.clone();
    tokio::spawn(async move {
        waiter.catch_up_before_scan().await;
        let watching = crate::library::watch::run(home_path, watch, move |recorded| {
            tracing::info!(recorded, "recorded new photos; announcing");
            announcer.announce();
        });
        if let Err(e) = watching.await {
            tracing::warn!("the folders are not watched: {e}; use photomesh scan");
        }
    })
}

/// Takes every incoming connection to the registry, until `shutdown`; each is accepted with
/// `server` and datagrams as large as the route to its peer carries.
async fn accept_until(
    endpoint: &quinn::Endpoint,
    server: &quinn::ServerConfig,
    node: &NodeHandle,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let gate = crate::net::gate::Gate::default();
    loop {
        let incoming = tokio::select! {
            biased;
            () = &mut shutdown => return,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { return };
        // Past a few handshakes in progress, a stranger proves its address before the
        // responder does any Diffie-Hellman for it (`net::gate`).
        let Some((incoming, ticket)) = gate.admit(incoming) else {
            continue;
        };
        let node = node.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let remote = transport::canonical(incoming.remote_address());
            // The route lookup happens here, not in the accept loop a flood goes through.
            let config = transport::server_config_for(&server, incoming.remote_address());
            let handshake = match incoming.accept_with(config) {
                Ok(connecting) => connecting.await,
                Err(e) => Err(e),
            };
            drop(ticket);
            match handshake {
                Ok(connection) => node.adopt(connection, Dialler::There).await,
                Err(e) => tracing::info!(%remote, "refused a connection: {e}"),
            }
        });
    }
}

impl NodeHandle {
    /// Waits, after a repair that lost records, for a records sync with a member (at most
    /// [`crate::library::repair::CATCH_UP_WAIT`]), then clears the repair's mark.
    async fn catch_up_before_scan(&self) {
        use crate::library::repair::{CATCH_UP_BEFORE_SCAN, CATCH_UP_WAIT};
        let marked = self.0.home.lock().await.index.meta(CATCH_UP_BEFORE_SCAN);
        if !matches!(marked, Ok(Some(_))) {
            return;
        }
        tracing::info!(
            "the index was repaired and lost records: waiting for a member to send them back \
             before rescanning the folders"
        );
        let mut synced = self.0.records_synced.subscribe();
        if tokio::time::timeout(CATCH_UP_WAIT, synced.wait_for(|done| *done))
            .await
            .is_err()
        {
            tracing::warn!(
                "no member sent records within {}s: rescanning anyway; a file whose lost record \
                 comes back later is recorded a second time (no second copy is stored)",
                CATCH_UP_WAIT.as_secs()
            );
        }
        let home = self.0.home.lock().await;
        if let Err(e) = home.index.delete_meta(CATCH_UP_BEFORE_SCAN) {
            tracing::warn!("clearing the repair's mark: {e}");
        }
    }
    /// Stops answering blob requests before the connections close: each answer resets its
    /// stream (dropping what quinn still had queued of it), then the node gives the
    /// connections a few round trips to get the resets out and the data in flight
    /// acknowledged, so that the close that follows is not held back by the congestion
    /// window (see [`Shared::stopping`]). Bounded: a peer that does not answer only
    /// delays the close by [`STOP_GRACE_MAX`].
    async fn stop_serving(&self) {
        self.0.stopping.cancel();
        self.0.serving.close();
        self.0.serving.wait().await;
        let rtt = self
            .0
            .registry
            .lock()
            .links()
            .map(|(_, link)| link.connection.rtt())
            .max()
            .unwrap_or_default();
        if rtt > Duration::ZERO {
            tokio::time::sleep((rtt * 4).clamp(STOP_GRACE_MIN, STOP_GRACE_MAX)).await;
        }
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// How a blob's fetch finds the node's other live connections, to fetch ranges of a
    /// large blob from every peer that holds it.
    fn helpers(&self) -> crate::replicate::fetcher::Helpers {
        let node = Arc::downgrade(&self.0);
        crate::replicate::fetcher::Helpers {
            home: self.0.home.clone(),
            links: Arc::new(move || {
                let Some(node) = node.upgrade() else {
                    return Vec::new();
                };
                node.registry
                    .lock()
                    .links()
                    .map(|(_, l)| (l.device, l.connection.clone()))
                    .collect()
            }),
        }
    }

    /// The blob transfers in progress.
    pub fn transfers(&self) -> &Transfers {
        &self.0.transfers
    }

    /// The links the node holds now (a copy: the registry is not held while they are used).
    fn links(&self) -> Vec<Link> {
        self.0
            .registry
            .lock()
            .links()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// This device recorded something new: sync with every connected peer at once, and
    /// tell each (`Request::Announce`) so that it pulls from this device at once too.
    pub fn announce(&self) {
        for link in self.links() {
            link.wake.notify_one();
            self.0.runtime.spawn(async move {
                let sent = async {
                    let (mut send, _recv) = link
                        .connection
                        .open_bi()
                        .await
                        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
                    frame::write_frame(&mut send, &Request::Announce).await?;
                    let _ = send.finish();
                    // Wait until the peer has read it, so the stream is not reset first.
                    let _ = send.stopped().await;
                    Ok::<_, NetError>(())
                };
                if let Err(e) = sent.await {
                    tracing::debug!(peer = %link.device.short(), "announcing: {e}");
                }
            });
        }
    }

    /// Discovery found `device` at `addrs`: remember them, and dial it now if it is not
    /// connected. Addresses not known before reset the device's backoff.
    pub fn found(&self, device: DeviceId, addrs: Vec<SocketAddr>) {
        let new = {
            let mut found = self.0.found.lock();
            let known = found.entry(device).or_default();
            let mut new = false;
            for addr in addrs {
                if !known.contains(&addr) {
                    known.push(addr);
                    new = true;
                }
            }
            new
        };
        if new {
            self.0.backoff.lock().reset(&device);
        }
        self.0.dial_now.notify_one();
    }

    /// What the node reports live through the control socket.
    pub fn live(&self) -> LiveStatus {
        let mut links = self.links();
        links.retain(|l| l.connection.close_reason().is_none());
        LiveStatus {
            device_id: self.0.device.to_string(),
            listening: self.0.local.to_string(),
            started_at_ms: self.0.started_at_ms,
            open_connections: self.0.endpoint.open_connections() as u64,
            connections: links
                .iter()
                .map(|l| LiveConnection {
                    device_id: l.device.to_string(),
                    connection_id: connection_id(&l.connection),
                    address: transport::remote(&l.connection).to_string(),
                    since_ms: l.since_ms,
                    dialled: l.dialler,
                })
                .collect(),
            transfers: self.0.transfers.snapshot(),
            disk_short: *self.0.engine.short.lock(),
            port_mapping: self.0.port_map.as_ref().and_then(|m| m.state()),
            unreached: self
                .0
                .unreached
                .lock()
                .iter()
                .map(|(device, why)| (device.to_string(), why.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use photomesh_protocol::seal::BlobId;

    use super::*;

    #[test]
    fn a_full_disk_or_a_store_failure_is_this_devices_fault() {
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let store = crate::blob::store::BlobStoreError::Io {
            path: "blobs/ab/cd".into(),
            source: full,
        };
        let e = DaemonError::Sync(crate::replicate::error::SyncError::Store(store));
        assert_eq!(e.fault(), Fault::Local);
        assert!(!e.to_string().contains("broke the protocol"), "{e}");
        let bad = DaemonError::Sync(crate::replicate::error::SyncError::BadData {
            blob: BlobId([7; 32]),
            why: "verification failed".into(),
        });
        assert_eq!(bad.fault(), Fault::Peer);
    }
}
