//! The running node (`photomesh run`) and the member-to-member hello (`photomesh ping`).
//!
//! The node accepts nQUIC connections from members and serves their requests (`Request`:
//! hello, record and blob-set reconciliation, record and blob fetches). Every
//! [`SYNC_INTERVAL`] it dials, in the background, the members it is not connected to, and
//! over each connection it dialled it greets (membership and addresses travel in the hello),
//! then syncs records (`sync`) and blobs (`blobs`).
//!
//! The trust set that the nQUIC layer consults is reloaded whenever the index changes
//! (SQLite's `data_version`, polled every [`TRUST_POLL`]): a `photomesh revoke` run beside a
//! running node takes effect within that time, and the node closes any open connection of
//! the revoked device.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::MembershipRecord;
use photomesh_protocol::messages::{Hello, Request};
use photomesh_protocol::nquic::{NoiseKey, Suite};
use photomesh_protocol::seal::BlobId;

use crate::blobs;
use crate::home::{Home, HomeError};
use crate::index::IndexError;
use crate::mesh::{self, MeshError, MeshTrust};
use crate::net::{self, NetError};
use crate::scan::now_ms;
use crate::sync::{self, RecordSet};
use crate::transport;

/// How often the node checks the index for membership changes.
pub const TRUST_POLL: Duration = Duration::from_millis(200);

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
    Sync(#[from] sync::SyncError),
}

/// Live connections, by the peer's Noise key, so a revocation can close them.
type Live = Arc<Mutex<BTreeMap<[u8; 32], quinn::Connection>>>;

/// Runs the node until `shutdown` resolves. `on_listening` is told the bound address.
pub async fn run(
    home_path: &Path,
    listen: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let home = Home::open(home_path)?;
    let trust = Arc::new(MeshTrust::new(mesh::trust_set(&home)?));
    let config = transport::server_config(
        home.device.noise_secret(),
        trust.clone(),
        None,
        transport::os_random(),
    );
    let endpoint = transport::endpoint(listen, Some(config)).map_err(|source| NetError::Bind {
        addr: listen,
        source,
    })?;
    let local = endpoint.local_addr().map_err(|source| NetError::Bind {
        addr: listen,
        source,
    })?;
    tracing::info!(%local, device = %home.device.device_id().short(), "listening");
    on_listening(local);

    let live: Live = Arc::default();
    let set = RecordSet::load(&home)?;
    let engine = Arc::new(blobs::BlobEngine::load(&home)?);
    let transfers = crate::transfers::Transfers::default();
    tracing::info!(hold = engine.policy.name(), "hold policy");
    let home = Arc::new(tokio::sync::Mutex::new(home));
    let watcher = tokio::spawn(watch_trust(
        home_path.to_owned(),
        trust.clone(),
        live.clone(),
    ));
    let dialer = tokio::spawn(dial_loop(
        endpoint.clone(),
        home.clone(),
        set.clone(),
        live.clone(),
        engine.clone(),
        transfers.clone(),
    ));
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            biased;
            () = &mut shutdown => break,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        let (home, live, set) = (home.clone(), live.clone(), set.clone());
        let engine = engine.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => {
                    if let Err(e) = serve(home, set, engine, live, connection, remote).await {
                        tracing::info!(%remote, "conversation ended: {e}");
                    }
                }
                Err(e) => tracing::info!(%remote, "refused a connection: {e}"),
            }
        });
    }
    watcher.abort();
    dialer.abort();
    endpoint.close(0u32.into(), b"shutting down");
    endpoint.wait_idle().await;
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the trust set when the index changes, and closes connections of devices that are
/// no longer trusted.
async fn watch_trust(home_path: std::path::PathBuf, trust: Arc<MeshTrust>, live: Live) {
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
        if let Ok(mut live) = live.lock() {
            live.retain(|key, connection| {
                let keep = current.by_noise_key(key).is_some();
                if !keep {
                    tracing::info!("closing the connection of a device that is no longer trusted");
                    connection.close(2u32.into(), net::REVOKED_REASON);
                }
                keep
            });
        }
    }
}

/// Serves one member's connection: every stream it opens starts with a `Request`.
async fn serve(
    home: Arc<tokio::sync::Mutex<Home>>,
    set: Arc<RecordSet>,
    engine: Arc<blobs::BlobEngine>,
    live: Live,
    connection: quinn::Connection,
    remote: SocketAddr,
) -> Result<(), DaemonError> {
    let peer = transport::peer_noise_key(&connection)
        .ok_or_else(|| NetError::Connection("no peer key".into()))?;
    if let Ok(mut live) = live.lock() {
        live.insert(peer.0, connection.clone());
    }
    let result = async {
        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
            let request = net::read_frame::<Request>(&mut recv).await?;
            tracing::debug!(?request, "request");
            match request {
                Request::Hello(theirs) => {
                    let ours = {
                        let home = home.lock().await;
                        absorb_hello(&home, &theirs, &peer, Some(remote))?;
                        hello(&home)?
                    };
                    net::write_frame(&mut send, &ours).await?;
                    let _ = send.finish();
                }
                Request::Reconcile => sync::serve_reconcile(&home, &set, send, recv).await?,
                Request::Fetch(ids) => sync::serve_fetch(&home, ids, send).await?,
                Request::ReconcileBlobs => {
                    blobs::serve_reconcile_blobs(&home, &engine.held, send, recv).await?
                }
                Request::Blob {
                    blob_id,
                    from_group,
                } => {
                    // Each blob on its own task, so one large transfer does not hold up the
                    // rest of the conversation.
                    let home = home.clone();
                    tokio::spawn(async move {
                        let id = BlobId(blob_id);
                        if let Err(e) = blobs::serve_blob(&home, id, from_group, send).await {
                            tracing::info!("serving blob {id}: {e}");
                        }
                    });
                }
            }
        }
        Ok::<(), DaemonError>(())
    }
    .await;
    if let Ok(mut live) = live.lock() {
        live.remove(&peer.0);
    }
    if result.is_err() {
        // A malformed message closes that connection; the node carries on.
        connection.close(3u32.into(), b"protocol error");
    }
    result
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

/// How often the node dials the members it is not connected to, and syncs with those it is.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How long the running node waits for a member to answer a dial.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps a connection to every member it can reach (at a configured peer address or where
/// it last saw it) and syncs the record sets over each, every [`SYNC_INTERVAL`].
async fn dial_loop(
    endpoint: quinn::Endpoint,
    home: Arc<tokio::sync::Mutex<Home>>,
    set: Arc<RecordSet>,
    live: Live,
    engine: Arc<blobs::BlobEngine>,
    transfers: crate::transfers::Transfers,
) {
    let mut dialled: BTreeMap<[u8; 32], (DeviceId, quinn::Connection)> = BTreeMap::new();
    let holdings = blobs::PeerHoldings::default();
    // Attempts run in the background, so a device that is away never holds up the syncs
    // with those that are here; each (device, address) is tried once at a time.
    type Attempt = (
        photomesh_protocol::membership::Member,
        SocketAddr,
        Result<quinn::Connection, DaemonError>,
    );
    let mut attempts: tokio::task::JoinSet<Attempt> = tokio::task::JoinSet::new();
    let mut attempting: BTreeSet<([u8; 32], SocketAddr)> = BTreeSet::new();
    // One client config per peer and suite, so nQUIC reuses what it may between connections.
    let mut configs: BTreeMap<([u8; 32], u32), quinn::ClientConfig> = BTreeMap::new();
    loop {
        dialled.retain(|_, (_, c)| c.close_reason().is_none());
        while let Some(Ok((member, addr, result))) = attempts.try_join_next() {
            attempting.remove(&(member.noise_key, addr));
            match result {
                Ok(connection) if !dialled.contains_key(&member.noise_key) => {
                    tracing::info!(%addr, peer = %member.device.short(), "connected");
                    if let Ok(mut live) = live.lock() {
                        live.insert(member.noise_key, connection.clone());
                    }
                    dialled.insert(member.noise_key, (member.device, connection));
                }
                Ok(extra) => extra.close(0u32.into(), b"duplicate"),
                Err(e) => tracing::debug!(%addr, "dial failed: {e}"),
            }
        }
        let targets = match dial_targets(&home, &dialled).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot list the devices to dial: {e}");
                Vec::new()
            }
        };
        for (member, addr) in targets {
            if !attempting.insert((member.noise_key, addr)) {
                continue;
            }
            let config = {
                let home = home.lock().await;
                let peer_aes = home
                    .index
                    .has_aes(&member.device)
                    .ok()
                    .flatten()
                    .unwrap_or(false);
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
            let (endpoint, home) = (endpoint.clone(), home.clone());
            attempts.spawn(async move {
                let result = connect(&endpoint, &home, &member, addr, config).await;
                (member, addr, result)
            });
        }
        for (key, (device, connection)) in &dialled {
            let synced = async {
                greet(&home, connection, &NoiseKey(*key), None).await?;
                let records = sync::sync(&home, &set, connection).await?;
                let blobs =
                    blobs::sync_blobs(&home, connection, device, &holdings, &engine, &transfers)
                        .await?;
                Ok::<_, DaemonError>((records, blobs))
            };
            match synced.await {
                Ok((0, 0)) => {}
                Ok((records, blobs)) => tracing::info!(records, blobs, "received"),
                Err(e) => {
                    tracing::info!("sync failed: {e}");
                    connection.close(3u32.into(), b"sync failed");
                    if let Ok(mut live) = live.lock() {
                        live.remove(key);
                    }
                }
            }
        }
        tokio::time::sleep(SYNC_INTERVAL).await;
    }
}

/// The members to dial now: those not connected, at each configured peer address and at
/// the address each was last seen at.
async fn dial_targets(
    home: &tokio::sync::Mutex<Home>,
    dialled: &BTreeMap<[u8; 32], (DeviceId, quinn::Connection)>,
) -> Result<Vec<(photomesh_protocol::membership::Member, SocketAddr)>, DaemonError> {
    let home = home.lock().await;
    let trust = mesh::trust_set(&home)?;
    let me = home.device.device_id();
    let peers: Vec<SocketAddr> = home
        .index
        .peers()?
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
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
    let claimed: BTreeSet<SocketAddr> = seen_at.values().copied().collect();
    let mut targets = Vec::new();
    for member in trust.members() {
        if member.device == me || dialled.contains_key(&member.noise_key) {
            continue;
        }
        // Where the member was last seen, then every configured peer address no member is
        // known to answer at (whose device only the handshake can tell).
        let own = seen_at.get(&member.device);
        let unclaimed = peers.iter().filter(|p| !claimed.contains(p));
        for addr in own.into_iter().chain(unclaimed) {
            targets.push((member.clone(), *addr));
        }
    }
    Ok(targets)
}

/// Dials one member at one address and greets it.
async fn connect(
    endpoint: &quinn::Endpoint,
    home: &tokio::sync::Mutex<Home>,
    member: &photomesh_protocol::membership::Member,
    addr: SocketAddr,
    config: quinn::ClientConfig,
) -> Result<quinn::Connection, DaemonError> {
    let connecting = endpoint
        .connect_with(config, addr, "photomesh")
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let connection = tokio::time::timeout(DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| NetError::Timeout(DIAL_TIMEOUT))?
        .map_err(|e| NetError::Connection(net::describe_connect_error(&e, addr, false)))?;
    greet(home, &connection, &NoiseKey(member.noise_key), Some(addr)).await?;
    Ok(connection)
}

/// Exchanges hellos on a connection this device dialled (at connect, and before every
/// sync, so membership and addresses keep flowing).
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
        .map_err(|e| NetError::Connection(net::describe_lost(&e)))?;
    net::write_frame(&mut send, &Request::Hello(ours)).await?;
    let _ = send.finish();
    let theirs: Hello = net::read_frame(&mut recv).await?;
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
    let endpoint = net::client_endpoint(&addr)?;
    let mut failures = Vec::new();
    for member in candidates {
        let peer_aes = home.index.has_aes(&member.device)?.unwrap_or(false);
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
        let connection = match tokio::time::timeout(net::CONNECT_TIMEOUT, connecting).await {
            Err(_) => {
                failures.push(format!(
                    "no answer from {addr} within {:?}",
                    net::CONNECT_TIMEOUT
                ));
                break;
            }
            Ok(Err(e)) => {
                failures.push(net::describe_connect_error(&e, addr, false));
                continue;
            }
            Ok(Ok(c)) => c,
        };
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(net::describe_lost(&e)))?;
        net::write_frame(&mut send, &Request::Hello(hello(home)?)).await?;
        let _ = send.finish();
        let theirs: Hello = net::read_frame(&mut recv).await?;
        let took = start.elapsed();
        absorb_hello(home, &theirs, &NoiseKey(member.noise_key), Some(addr))?;
        connection.close(0u32.into(), b"bye");
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
