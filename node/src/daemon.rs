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
//! (`after_failure`); a failure on this device is logged once and retried. The trust set is
//! reloaded when the index changes (every [`TRUST_POLL`]), and a revoked device's connection
//! is closed. The home's control socket serves `status`, `devices` and restore fetches. A
//! stopping node resets its blob answers and gives its connections a few round trips to close.

pub mod discovery;
pub mod registry;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lock::Mutex;
use std::time::{Duration, Instant};

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::{Member, MembershipRecord};
use photomesh_protocol::messages::{Hello, Request};
use photomesh_protocol::nquic::{NoiseKey, Suite};
use photomesh_protocol::seal::BlobId;

use crate::clock::now_ms;
use crate::daemon::registry::{Adoption, Backoff, Link, Registry};
use crate::error::{Blame, Fault};
use crate::home::{Home, HomeError};
use crate::index::IndexError;
use crate::mesh::{self, MeshError, MeshTrust};
use crate::net::close::Close;
use crate::net::control::Dialler;
use crate::net::control::{ControlError, ControlSocket, FetchJob, LiveConnection, LiveStatus};
use crate::net::frame::{self, NetError};
use crate::net::transport;
use crate::replicate::records::{self, RecordSet};
use crate::replicate::transfers::Transfers;

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
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 7447);

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
    /// Addresses from the configuration file, dialled like those of `peer add`.
    pub peers: Vec<SocketAddr>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            watch: Some(crate::library::watch::WatchOptions::default()),
            discovery: crate::daemon::discovery::Settings::default(),
            peers: Vec::new(),
        }
    }
}

/// The blob IDs of a `fetch` request: `{"blobs": ["<hex>", …]}`.
fn parse_blob_list(args: &serde_json::Value) -> Result<Vec<BlobId>, String> {
    let list = args["blobs"]
        .as_array()
        .ok_or("\"fetch\" takes {\"blobs\": [\"<blob ID in hex>\", …]}")?;
    list.iter()
        .map(|v| {
            let text = v.as_str().ok_or("a blob ID must be a string of hex")?;
            let mut id = [0u8; 32];
            hex::decode_to_slice(text, &mut id)
                .map_err(|e| format!("{text:?} is not a blob ID: {e}"))?;
            Ok(BlobId(id))
        })
        .collect()
}

/// A running node, as the rest of the node process talks to it. Cheap to clone; every
/// method may be called from any thread.
#[derive(Clone)]
pub struct NodeHandle(Arc<Shared>);

struct Shared {
    home: Arc<tokio::sync::Mutex<Home>>,
    set: Arc<RecordSet>,
    holdings: crate::replicate::blobs::PeerHoldings,
    /// The blobs held, the hold policy and the fetching of blobs.
    engine: Arc<crate::replicate::held::BlobEngine>,
    /// The fetch a local command (`restore`) asked for, running or last finished.
    fetch_job: Mutex<Option<FetchJob>>,
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
    configured: Vec<SocketAddr>,
    dial_now: tokio::sync::Notify,
    next_link: AtomicU64,
    /// The tasks answering blob requests.
    serving: tokio_util::task::TaskTracker,
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
    let home = Home::open(home_path)?;
    // Before anything else: a second node on this home is refused here.
    let control = ControlSocket::bind(home_path)?;
    let trust = Arc::new(MeshTrust::new(mesh::trust_set(&home)?));
    let config = transport::server_config(
        home.device.noise_secret(),
        trust.clone(),
        None,
        transport::os_random(),
    );
    let listen = options.listen;
    let endpoint =
        transport::node_endpoint(listen, Some(config)).map_err(|source| NetError::Bind {
            addr: listen,
            source,
        })?;
    let local = endpoint.local_addr().map_err(|source| NetError::Bind {
        addr: listen,
        source,
    })?;
    tracing::info!(%local, device = %home.device.device_id().short(), "listening");

    let set = RecordSet::load(&home)?;
    let discovery_key = crate::daemon::discovery::key(&home);
    let engine = Arc::new(crate::replicate::held::BlobEngine::load(&home)?);
    tracing::info!(hold = engine.policy.name(), "hold policy");
    let node = NodeHandle(Arc::new(Shared {
        own_key: home.device.noise_public(),
        device: home.device.device_id(),
        home: Arc::new(tokio::sync::Mutex::new(home)),
        set,
        holdings: crate::replicate::blobs::PeerHoldings::default(),
        engine,
        fetch_job: Mutex::default(),
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
        stopping: tokio_util::sync::CancellationToken::new(),
    }));
    on_listening(&node);

    // Members on the LAN: found by mDNS and dialled at once. Without it (port 5353 taken,
    // no multicast) the node still reaches configured and learned addresses.
    let discovery = match discovery_key {
        Ok(key) => {
            let (finder, members) = (node.clone(), trust.clone());
            crate::daemon::discovery::Discovery::start(
                node.0.device,
                key,
                local.port(),
                options.discovery,
                move || members.devices(),
                move |device, addrs| finder.found(device, addrs),
            )
            .map_err(|e| {
                tracing::warn!(
                    "LAN discovery is off: {e}; peers are dialled at configured addresses"
                )
            })
            .ok()
        }
        Err(e) => {
            tracing::warn!("LAN discovery is off: {e}");
            None
        }
    };

    let watcher = tokio::spawn(watch_trust(home_path.to_owned(), trust, node.clone()));
    // New photos in the folders are recorded once complete and announced to the peers.
    let folders = options.watch.map(|watch| {
        let announcer = node.clone();
        let home_path = home_path.to_owned();
        tokio::spawn(async move {
            let watching = crate::library::watch::run(home_path, watch, move |recorded| {
                tracing::info!(recorded, "recorded new photos; announcing");
                announcer.announce();
            });
            if let Err(e) = watching.await {
                tracing::warn!("the folders are not watched: {e}; use photomesh scan");
            }
        })
    });
    let dialer = tokio::spawn(dial_loop(node.clone()));
    let control = Arc::new(control);
    let controller = tokio::spawn({
        let (control, node) = (control.clone(), node.clone());
        async move {
            control
                .serve(move |verb, args| node.answer(verb, args))
                .await
        }
    });
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            biased;
            () = &mut shutdown => break,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        let node = node.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => node.adopt(connection, Dialler::There).await,
                Err(e) => tracing::info!(%remote, "refused a connection: {e}"),
            }
        });
    }
    watcher.abort();
    dialer.abort();
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
    Close::Done.close_endpoint(&endpoint);
    endpoint.wait_idle().await;
    // The socket file goes with the last reference (the server task's is gone).
    drop(control);
    tracing::info!("stopped");
    Ok(())
}

impl NodeHandle {
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
    fn helpers(&self) -> crate::replicate::ranges::Helpers {
        let node = Arc::downgrade(&self.0);
        crate::replicate::ranges::Helpers {
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

    /// This device recorded something new: sync with every connected peer at once, and
    /// tell each (`Request::Announce`) so that it pulls from this device at once too.
    pub fn announce(&self) {
        let links: Vec<Link> = self
            .0
            .registry
            .lock()
            .links()
            .map(|(_, l)| l.clone())
            .collect();
        for link in links {
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
        let links: Vec<Link> = self
            .0
            .registry
            .lock()
            .links()
            .filter(|(_, l)| l.connection.close_reason().is_none())
            .map(|(_, l)| l.clone())
            .collect();
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
                    address: l.connection.remote_address().to_string(),
                    since_ms: l.since_ms,
                    dialled: l.dialler,
                })
                .collect(),
            transfers: self.0.transfers.snapshot(),
        }
    }

    /// Answers a control socket request.
    fn answer(&self, verb: &str, args: &serde_json::Value) -> Result<serde_json::Value, String> {
        match verb {
            "status" => serde_json::to_value(self.live()).map_err(|e| e.to_string()),
            "announce" => {
                self.announce();
                Ok(serde_json::Value::Null)
            }
            "fetch" => {
                let wanted = parse_blob_list(args)?;
                self.start_fetch(wanted)?;
                Ok(serde_json::Value::Null)
            }
            "fetch_progress" => {
                let job = self.0.fetch_job.lock();
                serde_json::to_value(&*job).map_err(|e| e.to_string())
            }
            other => Err(format!(
                "unknown verb {other:?}; this node answers \"status\", \"announce\", \"fetch\" \
                 and \"fetch_progress\""
            )),
        }
    }

    /// Starts fetching `wanted` over the connections the node holds, whatever the hold
    /// policy (a local command asked for these blobs by name). One such fetch at a time.
    fn start_fetch(&self, wanted: Vec<BlobId>) -> Result<(), String> {
        {
            let mut job = self.0.fetch_job.lock();
            if job.as_ref().is_some_and(|j| j.running) {
                return Err("a fetch is already running on this node; wait for it".into());
            }
            *job = Some(FetchJob {
                running: true,
                wanted: wanted.len(),
                fetched: 0,
                problems: Vec::new(),
            });
        }
        let node = self.clone();
        self.0
            .runtime
            .spawn(async move { node.run_fetch(wanted).await });
        Ok(())
    }

    async fn run_fetch(&self, mut left: Vec<BlobId>) {
        let total = left.len();
        let links: Vec<Link> = self
            .0
            .registry
            .lock()
            .links()
            .map(|(_, l)| l.clone())
            .collect();
        let mut problems = Vec::new();
        if links.is_empty() {
            problems.push("no member of the mesh is connected to this node".to_owned());
        }
        let engine = &self.0.engine;
        for link in links {
            left.retain(|b| !engine.held.contains(b));
            if left.is_empty() {
                break;
            }
            let fetched = crate::replicate::restore_fetch::fetch_from(
                &self.0.home,
                engine,
                &link.connection,
                link.device,
                &self.0.transfers,
                left.clone(),
                Some(self.helpers()),
            )
            .await;
            if let Err(e) = fetched {
                problems.push(format!("{}: {e}", link.device));
            }
            left.retain(|b| !engine.held.contains(b));
            if let Some(job) = self.0.fetch_job.lock().as_mut() {
                job.fetched = total - left.len();
            }
        }
        if let Some(job) = self.0.fetch_job.lock().as_mut() {
            job.fetched = total - left.len();
            job.problems = problems;
            job.running = false;
        }
    }

    /// Takes a new connection into the registry (or closes it as a duplicate), then serves
    /// and syncs over it until it closes.
    async fn adopt(&self, connection: quinn::Connection, dialler: Dialler) {
        let Some(peer) = transport::peer_noise_key(&connection) else {
            Close::ProtocolError.close(&connection);
            return;
        };
        let device = {
            let home = self.0.home.lock().await;
            mesh::trust_set(&home)
                .ok()
                .and_then(|t| t.by_noise_key(&peer.0).map(|m| m.device))
        };
        let Some(device) = device else {
            Close::Revoked.close(&connection);
            return;
        };
        let link = Link {
            id: self.0.next_link.fetch_add(1, Ordering::Relaxed),
            connection,
            device,
            dialler,
            since_ms: now_ms(),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        let offered = self
            .0
            .registry
            .lock()
            .offer(&self.0.own_key, peer.0, link.clone());
        match offered {
            Adoption::Adopted { replaced } => {
                if let Some(old) = replaced {
                    tracing::debug!(peer = %device.short(), "closing the duplicate connection");
                    Close::Duplicate.close(&old.connection);
                }
            }
            Adoption::KeepExisting(kept) => {
                // The rule keeps the connection held; but if the peer restarted, that one is
                // dead and the peer will never use it again. Keep it only if it answers.
                let answers = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    greet(&self.0.home, &kept.connection, &peer, None),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                let mut registry = self.0.registry.lock();
                let still_kept = registry.is_current(&peer.0, kept.id);
                if (answers && still_kept) || (!still_kept && registry.holds(&peer.0)) {
                    tracing::debug!(peer = %device.short(), "closing the duplicate connection");
                    Close::Duplicate.close(&link.connection);
                    return;
                }
                if still_kept {
                    tracing::info!(peer = %device.short(), "the old connection did not answer; replaced");
                    Close::Duplicate.close(&kept.connection);
                }
                registry.replace(peer.0, link.clone());
            }
        }
        {
            let mut backoff = self.0.backoff.lock();
            backoff.reset(&device);
        }
        tracing::info!(
            peer = %device.short(),
            remote = %link.connection.remote_address(),
            dialled = ?dialler,
            "connected"
        );
        let node = self.clone();
        tokio::spawn(async move { node.drive(peer, link).await });
    }

    /// Serves and syncs over an adopted connection until it closes, then forgets it.
    async fn drive(self, peer: NoiseKey, link: Link) {
        let ((), ()) = tokio::join!(self.serve(&peer, &link), self.sync_loop(&peer, &link));
        {
            let mut registry = self.0.registry.lock();
            registry.remove(&peer.0, link.id);
        }
        match link.connection.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c))
                if Close::from_code(c.error_code) == Some(Close::Duplicate) =>
            {
                tracing::debug!(peer = %link.device.short(), "closed by the peer as a duplicate");
            }
            Some(quinn::ConnectionError::LocallyClosed) => {
                tracing::debug!(peer = %link.device.short(), "closed here");
            }
            reason => {
                tracing::info!(peer = %link.device.short(), "disconnected: {reason:?}");
            }
        }
    }

    /// Serves the peer's requests on a connection: every stream it opens starts with a
    /// `Request`.
    async fn serve(&self, peer: &NoiseKey, link: &Link) {
        let connection = &link.connection;
        let mut reported: Option<Fault> = None;
        while let Ok((send, mut recv)) = connection.accept_bi().await {
            let answered = async {
                let request = frame::read_frame::<Request>(&mut recv).await?;
                tracing::trace!(?request, "request");
                self.answer_request(peer, link, request, send, recv).await
            }
            .await;
            let Err(e) = answered else {
                reported = None;
                continue;
            };
            match after_failure(e.fault(), connection.close_reason().is_some()) {
                AfterFailure::Close => {
                    // A malformed message closes that connection; the node carries on.
                    tracing::info!(peer = %link.device.short(), "the other device broke the protocol: {e}");
                    Close::ProtocolError.close(connection);
                    return;
                }
                AfterFailure::Stop => return,
                AfterFailure::Retry => {
                    // Said once until it clears: a full disk fails every request alike.
                    if reported != Some(e.fault()) {
                        tracing::warn!(peer = %link.device.short(), "could not answer a request ({}): {e}", e.fault());
                        reported = Some(e.fault());
                    }
                }
            }
        }
    }

    /// Answers one request of the peer's.
    async fn answer_request(
        &self,
        peer: &NoiseKey,
        link: &Link,
        request: Request,
        mut send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) -> Result<(), DaemonError> {
        let home = &self.0.home;
        let connection = &link.connection;
        match request {
            Request::Hello(theirs) => {
                let ours = {
                    let home = home.lock().await;
                    absorb_hello(&home, &theirs, peer, Some(connection.remote_address()))?;
                    hello(&home)?
                };
                frame::write_frame(&mut send, &ours).await?;
                let _ = send.finish();
            }
            Request::Reconcile => {
                records::serve_reconcile(home, &self.0.set, send, recv).await?;
            }
            Request::Fetch(ids) => records::serve_fetch(home, ids, send).await?,
            Request::ReconcileBlobs => {
                crate::replicate::blobs::serve_reconcile_blobs(
                    home,
                    &self.0.engine.held,
                    send,
                    recv,
                )
                .await?;
            }
            Request::Blob {
                blob_id,
                from_group,
            } => self.answer_blob(link, BlobId(blob_id), from_group..u64::MAX, send),
            Request::BlobRange {
                blob_id,
                first_group,
                end_group,
            } => self.answer_blob(link, BlobId(blob_id), first_group..end_group, send),
            Request::Announce => {
                tracing::debug!(peer = %link.device.short(), "announced new records");
                link.wake.notify_one();
                let _ = send.finish();
            }
        }
        Ok(())
    }

    /// Answers a blob request on a task of its own, so one large transfer does not hold up
    /// the rest of the conversation. A stopping node resets the stream (see
    /// [`Shared::stopping`]).
    fn answer_blob(
        &self,
        link: &Link,
        id: BlobId,
        groups: std::ops::Range<u64>,
        mut send: quinn::SendStream,
    ) {
        let (home, stopping) = (self.0.home.clone(), self.0.stopping.clone());
        let to = link.device.short();
        self.0.serving.spawn(async move {
            let served = tokio::select! {
                biased;
                () = stopping.cancelled() => {
                    let _ = send.reset(Close::Stopping.code());
                    return;
                }
                served = crate::replicate::serve::serve_blob_range(&home, id, groups.clone(), &mut send) => served,
            };
            match served {
                Ok(()) => tracing::debug!(blob = %id, ?groups, peer = %to, "served a blob"),
                Err(e) => tracing::info!(peer = %to, "serving blob {id}: {e}"),
            }
        });
    }

    /// This side's pull over a connection: hello, records, blobs; every [`SYNC_INTERVAL`],
    /// or at once when woken.
    async fn sync_loop(&self, peer: &NoiseKey, link: &Link) {
        let home = &self.0.home;
        let connection = &link.connection;
        // What was last reported, so a failure that repeats (a full disk fails every round
        // alike, with another staging file named each time) is said once until it clears.
        let mut reported: Option<Fault> = None;
        loop {
            let round = async {
                greet(home, connection, peer, None).await?;
                let records = records::sync(home, &self.0.set, connection).await?;
                let blobs = crate::replicate::blobs::sync_blobs(
                    home,
                    connection,
                    &link.device,
                    &self.0.holdings,
                    &self.0.engine,
                    &self.0.transfers,
                    Some(self.helpers()),
                )
                .await?;
                Ok::<_, DaemonError>((records, blobs))
            };
            let mut wait = SYNC_INTERVAL;
            match round.await {
                Ok((0, 0)) => reported = None,
                Ok((records, blobs)) => {
                    reported = None;
                    tracing::info!(records, blobs, "received");
                }
                Err(e) => match after_failure(e.fault(), connection.close_reason().is_some()) {
                    AfterFailure::Close => {
                        tracing::info!(peer = %link.device.short(), "the other device broke the protocol: {e}");
                        Close::ProtocolError.close(connection);
                        return;
                    }
                    AfterFailure::Stop => {
                        tracing::debug!(peer = %link.device.short(), "sync ended with the connection: {e}");
                        return;
                    }
                    AfterFailure::Retry => {
                        // The peer did nothing wrong: keep its connection, say it once.
                        if reported != Some(e.fault()) {
                            tracing::warn!(peer = %link.device.short(), "replication paused ({}): {e}; trying again every {:?}", e.fault(), RETRY_AFTER_LOCAL_FAILURE);
                            reported = Some(e.fault());
                        } else {
                            tracing::debug!(peer = %link.device.short(), "replication still paused: {e}");
                        }
                        wait = RETRY_AFTER_LOCAL_FAILURE;
                    }
                },
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = link.wake.notified() => {}
                _ = connection.closed() => return,
            }
        }
    }
}

/// What a link does after a failed exchange.
#[derive(Debug, PartialEq, Eq)]
enum AfterFailure {
    /// The peer broke the protocol: close the connection as a protocol error.
    Close,
    /// The connection is gone: end the link (the dialler reconnects).
    Stop,
    /// This device failed, or one exchange failed on a connection that is still up: keep
    /// the connection and try again after [`RETRY_AFTER_LOCAL_FAILURE`].
    Retry,
}

/// The one rule for a failed exchange: only the peer's fault costs it its connection.
fn after_failure(fault: Fault, connection_closed: bool) -> AfterFailure {
    match (fault, connection_closed) {
        (_, true) => AfterFailure::Stop,
        (Fault::Peer, false) => AfterFailure::Close,
        (Fault::Local | Fault::Network, false) => AfterFailure::Retry,
    }
}

/// An ID both ends of a connection derive alike from its keys (hex).
fn connection_id(connection: &quinn::Connection) -> String {
    let mut id = [0u8; 8];
    match connection.export_keying_material(&mut id, b"photomesh connection id", b"") {
        Ok(()) => hex::encode(id),
        Err(_) => format!("local-{}", connection.stable_id()),
    }
}

/// Reloads the trust set when the index changes, and closes connections of devices that are
/// no longer trusted.
async fn watch_trust(home_path: std::path::PathBuf, trust: Arc<MeshTrust>, node: NodeHandle) {
    let Ok(home) = Home::open(&home_path) else {
        return;
    };
    let mut version = home.index.data_version().ok();
    loop {
        tokio::time::sleep(TRUST_POLL).await;
        let now = home.index.data_version().ok();
        if now == version {
            continue;
        }
        version = now;
        let Ok(current) = mesh::trust_set(&home) else {
            continue;
        };
        trust.update(current.clone());
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
async fn dial_loop(node: NodeHandle) {
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
                    Ok(()) => {}
                    Err(e) => {
                        let wait = node
                            .0
                            .backoff
                            .lock()
                            .failed(member.device, addr, Instant::now(), jitter());
                        tracing::debug!(%addr, peer = %member.device.short(), ?wait, "dial failed: {e}");
                    }
                }
            }
        }
    }
}

/// A number in `[0, 1)` from the OS random number generator (0 if it fails).
fn jitter() -> f64 {
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
    let mut peers: Vec<SocketAddr> = home
        .index
        .peers()?
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    for addr in &node.0.configured {
        if !peers.contains(addr) {
            peers.push(*addr);
        }
    }
    let mut seen_at = BTreeMap::new();
    for member in trust.members() {
        let addr = home
            .index
            .seen(&member.device)?
            .and_then(|(_, a)| a)
            .or(home.index.learned_address(&member.device)?)
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if let Some(addr) = addr {
            seen_at.insert(member.device, addr);
        }
    }
    drop(home);
    let found = node.0.found.lock().clone();
    let claimed: BTreeSet<SocketAddr> = seen_at
        .values()
        .copied()
        .chain(found.values().flatten().copied())
        .collect();
    let held: BTreeSet<[u8; 32]> = {
        let registry = node.0.registry.lock();
        trust
            .members()
            .map(|m| m.noise_key)
            .filter(|k| registry.holds(k))
            .collect()
    };
    let mut targets = Vec::new();
    for member in trust.members() {
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
    let connecting = endpoint
        .connect_with(config, addr, "photomesh")
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let connection = tokio::time::timeout(DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| NetError::Timeout(DIAL_TIMEOUT))?
        .map_err(|e| NetError::Connection(frame::describe_connect_error(&e, addr, false)))?;
    Ok(connection)
}

/// This device's hello.
fn hello(home: &Home) -> Result<Hello, DaemonError> {
    Ok(Hello {
        device: home.device.device_id(),
        name: home.device_name()?,
        has_aes: transport::has_aes_hardware(),
        membership: home.index.membership_records()?,
        addresses: home
            .index
            .seen_addresses()?
            .into_iter()
            .take(photomesh_protocol::messages::MAX_ADDRESSES)
            .collect(),
    })
}

/// Takes in a peer's hello: stores the valid membership records it carries, and notes when
/// and where the peer was seen. A hello whose device does not match the connection's Noise
/// key is refused.
fn absorb_hello(
    home: &Home,
    hello: &Hello,
    peer: &NoiseKey,
    remote: Option<SocketAddr>,
) -> Result<(), DaemonError> {
    let now = now_ms();
    let before = mesh::trust_set(home)?;
    let claimed = before.by_noise_key(&peer.0).map(|m| m.device);
    home.index.transaction(|ix| -> Result<(), DaemonError> {
        for bytes in &hello.membership {
            // Anything malformed or badly signed is dropped; the trust evaluation decides
            // what the valid ones mean.
            if let Ok(record) = MembershipRecord::decode(bytes) {
                ix.add_record(&record.record_id, &record.bytes, now)?;
            }
        }
        if claimed == Some(hello.device) {
            let address = remote.map(|a| a.to_string());
            ix.set_seen(&hello.device, now, address.as_deref(), Some(hello.has_aes))?;
        }
        // Addresses of other members this device has never reached itself.
        let me = home.device.device_id();
        for (device, address) in hello
            .addresses
            .iter()
            .take(photomesh_protocol::messages::MAX_ADDRESSES)
        {
            let usable = address.parse::<SocketAddr>().is_ok();
            if usable
                && *device != me
                && Some(*device) != claimed
                && before.get(device).is_some()
                && ix.seen(device)?.and_then(|(_, a)| a).is_none()
            {
                ix.learn_address(device, address, now)?;
            }
        }
        Ok(())
    })
}

/// Exchanges hellos on a connection (before every sync round, so membership and addresses
/// keep flowing; and to check that a kept connection still answers).
async fn greet(
    home: &tokio::sync::Mutex<Home>,
    connection: &quinn::Connection,
    peer: &NoiseKey,
    addr: Option<SocketAddr>,
) -> Result<(), DaemonError> {
    let ours = hello(&*home.lock().await)?;
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
    frame::write_frame(&mut send, &Request::Hello(ours)).await?;
    let _ = send.finish();
    let theirs: Hello = frame::read_frame(&mut recv).await?;
    let home = home.lock().await;
    absorb_hello(
        &home,
        &theirs,
        peer,
        addr.or(Some(connection.remote_address())),
    )
}

/// What a ping found.
#[derive(Debug, serde::Serialize)]
pub struct Pong {
    /// The device that answered.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// The address it answered at.
    pub address: String,
    /// Connection and hello, in milliseconds.
    pub round_trip_ms: f64,
}

/// Connects to the member at `addr` (the one named, or whichever member it turns out to be)
/// and exchanges hellos.
pub async fn ping(
    home: &Home,
    addr: SocketAddr,
    device: Option<DeviceId>,
) -> Result<Pong, DaemonError> {
    let trust = mesh::trust_set(home)?;
    let me = home.device.device_id();
    let candidates: Vec<_> = trust
        .members()
        .filter(|m| m.device != me && device.is_none_or(|d| d == m.device))
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Err(DaemonError::NoAnswer(match device {
            Some(d) => format!("{d} is not a member of this device's mesh"),
            None => "this device knows no other member of its mesh".into(),
        }));
    }
    let endpoint = frame::client_endpoint(&addr)?;
    let mut failures = Vec::new();
    for member in candidates {
        let peer_aes = home.index.has_aes(&member.device)?;
        let config = transport::client_config(
            home.device.noise_secret(),
            NoiseKey(member.noise_key),
            Suite::choose(transport::has_aes_hardware(), peer_aes),
            None,
            transport::os_random(),
        );
        let start = Instant::now();
        let connecting = endpoint
            .connect_with(config, addr, "photomesh")
            .map_err(|e| NetError::Connection(e.to_string()))?;
        let connection = match tokio::time::timeout(frame::CONNECT_TIMEOUT, connecting).await {
            Err(_) => {
                failures.push(format!(
                    "no answer from {addr} within {:?}",
                    frame::CONNECT_TIMEOUT
                ));
                break;
            }
            Ok(Err(e)) => {
                failures.push(frame::describe_connect_error(&e, addr, false));
                continue;
            }
            Ok(Ok(c)) => c,
        };
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
        frame::write_frame(&mut send, &Request::Hello(hello(home)?)).await?;
        let _ = send.finish();
        let theirs: Hello = frame::read_frame(&mut recv).await?;
        let took = start.elapsed();
        absorb_hello(home, &theirs, &NoiseKey(member.noise_key), Some(addr))?;
        Close::Done.close(&connection);
        endpoint.wait_idle().await;
        return Ok(Pong {
            device_id: theirs.device.to_string(),
            name: theirs.name,
            address: addr.to_string(),
            round_trip_ms: took.as_secs_f64() * 1000.0,
        });
    }
    // The refusal that names the problem best is the one about trust, if any.
    failures.sort_by_key(|f| !f.contains("not trusted"));
    failures.dedup();
    Err(DaemonError::NoAnswer(failures.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_peer_fault_closes_a_live_connection() {
        assert_eq!(after_failure(Fault::Peer, false), AfterFailure::Close);
        assert_eq!(after_failure(Fault::Local, false), AfterFailure::Retry);
        assert_eq!(after_failure(Fault::Network, false), AfterFailure::Retry);
        for fault in [Fault::Peer, Fault::Local, Fault::Network] {
            assert_eq!(after_failure(fault, true), AfterFailure::Stop);
        }
    }

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
