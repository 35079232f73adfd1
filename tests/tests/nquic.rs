//! nQUIC over real quinn endpoints on 127.0.0.1: transfers in both suites, refusals,
//! pairing, key update, and a UDP relay that flips bits and looks for plaintext.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use photomesh::net::transport;
use photomesh_protocol::nquic::{NoiseKey, Suite, TrustSet};
use tokio::{net::UdpSocket, sync::mpsc};

const MIB: u64 = 1024 * 1024;
const CLIENT_KEY: [u8; 32] = [0xc1; 32];
const SERVER_KEY: [u8; 32] = [0x5e; 32];
const PSK: [u8; 32] = [0x77; 32];
/// How long any single test may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(120);
/// A marker the application sends in the clear; it must never appear on the wire.
const MARKER: &[u8] = b"PHOTOMESH-PLAINTEXT-MARKER-7f3a9c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_both_ways_on_four_streams_in_each_suite() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let server = Server::start(trusting(&[CLIENT_KEY]), None)?;
        let client = client_endpoint()?;
        let connection = connect(&client, server.addr, suite, SERVER_KEY, None).await?;
        // The suite in use is the one the initiator chose, on both ends.
        let data = transport::handshake_data(&connection).context("handshake data")?;
        assert_eq!(data.suite, suite);
        assert_eq!(data.peer, NoiseKey::from_private(&SERVER_KEY));
        let server_connection = server.next_connection().await?;
        let server_data = transport::handshake_data(&server_connection).context("server data")?;
        assert_eq!(server_data.suite, suite);
        assert_eq!(
            transport::peer_noise_key(&server_connection),
            Some(NoiseKey::from_private(&CLIENT_KEY))
        );
        tokio::time::timeout(DEADLINE, transfer(&connection, &server, 4, 25 * MIB, None))
            .await
            .context("transfer timed out")??;
        connection.close(0u32.into(), b"done");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_key_updates_mid_transfer_in_each_suite() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let server = Server::start(trusting(&[CLIENT_KEY]), None)?;
        let client = client_endpoint()?;
        let connection = connect(&client, server.addr, suite, SERVER_KEY, None).await?;
        let server_connection = server.next_connection().await?;
        let updater = {
            let (a, b) = (connection.clone(), server_connection.clone());
            tokio::spawn(async move {
                for round in 0..6 {
                    // Alternate which side starts the update; wait for traffic in between so
                    // that each update is confirmed before the next.
                    let conn = if round % 2 == 0 { &a } else { &b };
                    let before = conn.stats().udp_rx.datagrams;
                    while conn.stats().udp_rx.datagrams < before + 200 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        if conn.close_reason().is_some() {
                            return;
                        }
                    }
                    conn.force_key_update();
                }
            })
        };
        tokio::time::timeout(DEADLINE, transfer(&connection, &server, 2, 16 * MIB, None))
            .await
            .context("transfer timed out")??;
        updater.abort();
        assert!(connection.close_reason().is_none());
    }
    Ok(())
}

/// Loopback carries 64 KiB datagrams: MTU discovery finds them, and a bulk transfer in
/// batches of them loses nothing to the kernel refusing a batch (quinn then judges the path
/// a black hole and falls back to 1,200-byte datagrams for a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_transfer_keeps_the_large_datagrams_loopback_carries() -> Result<()> {
    let server = Server::start(trusting(&[CLIENT_KEY]), None)?;
    let client = client_endpoint()?;
    let connection = connect(&client, server.addr, Suite::AesGcm, SERVER_KEY, None).await?;
    let server_connection = server.next_connection().await?;
    // Probes go out while a connection has nothing else to send: right after the handshake.
    for conn in [&connection, &server_connection] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while conn.stats().path.current_mtu <= 1500 {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "MTU discovery stayed at {} bytes",
                conn.stats().path.current_mtu
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tokio::time::timeout(DEADLINE, transfer(&connection, &server, 4, 25 * MIB, None))
        .await
        .context("transfer timed out")??;
    for conn in [&connection, &server_connection] {
        let path = conn.stats().path;
        assert_eq!(path.black_holes_detected, 0, "{path:?}");
        assert!(path.current_mtu > 1500, "{path:?}");
    }
    connection.close(0u32.into(), b"done");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_initiator_is_refused_and_never_seen_by_the_application() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let server = Server::start(trusting(&[[0x01; 32]]), None)?;
        let client = client_endpoint()?;
        let err = connect(&client, server.addr, suite, SERVER_KEY, None)
            .await
            .expect_err("an untrusted initiator is refused");
        assert!(format!("{err:#}").contains("not trusted"), "{err:#}");
        server.wait_refused(1).await?;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
        assert_eq!(server.streams.load(Ordering::SeqCst), 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_expecting_the_wrong_responder_key_fails() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let server = Server::start(trusting(&[CLIENT_KEY]), None)?;
        let client = client_endpoint()?;
        let err = connect(&client, server.addr, suite, [0x99; 32], None)
            .await
            .expect_err("the wrong responder key fails");
        assert!(format!("{err:#}").contains("Noise"), "{err:#}");
        server.wait_refused(1).await?;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_connects_with_the_right_secret_and_fails_with_a_wrong_one() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        // The new device is in nobody's trust set yet.
        let server = Server::start(trusting(&[]), Some(PSK))?;
        let client = client_endpoint()?;
        let connection = connect(&client, server.addr, suite, SERVER_KEY, Some(PSK)).await?;
        let server_connection = server.next_connection().await?;
        let data = transport::handshake_data(&server_connection).context("data")?;
        assert!(data.pairing);
        assert_eq!(data.peer, NoiseKey::from_private(&CLIENT_KEY));
        transfer(&connection, &server, 1, MIB, None).await?;

        let mut wrong = PSK;
        wrong[0] ^= 1;
        let err = connect(&client, server.addr, suite, SERVER_KEY, Some(wrong))
            .await
            .expect_err("a wrong pairing secret fails");
        // The responder fails on message 1 with decrypt_error (0x133), so the initiator
        // never gets a message 2 to fail on itself.
        assert!(
            format!("{err:#}").contains("Noise handshake failed"),
            "{err:#}"
        );
        server.wait_refused(1).await?;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sees_no_plaintext_and_bit_flips_only_drop_packets() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let server = Server::start(trusting(&[CLIENT_KEY]), None)?;
        // One packet in 29: 16 MiB in datagrams of up to 64 KiB (loopback) is ~1,000 packets.
        let relay = Relay::start(server.addr, 29).await?;
        let client = client_endpoint()?;
        let connection = connect(&client, relay.addr, suite, SERVER_KEY, None).await?;
        tokio::time::timeout(
            DEADLINE,
            transfer(&connection, &server, 2, 8 * MIB, Some(MARKER)),
        )
        .await
        .context("transfer timed out")??;
        assert!(
            connection.close_reason().is_none(),
            "the connection survived"
        );
        let relayed = relay.stats.relayed.load(Ordering::SeqCst);
        let flipped = relay.stats.flipped.load(Ordering::SeqCst);
        let marked = relay.stats.marked.load(Ordering::SeqCst);
        assert!(relayed > 500, "relayed only {relayed} datagrams");
        assert!(flipped >= 10, "flipped only {flipped} packets");
        assert_eq!(marked, 0, "the plaintext marker appeared on the wire");
        let lost = connection.stats().path.lost_packets;
        assert!(
            lost >= 1,
            "a packet with a flipped bit was not dropped (lost = {lost})"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_integrity_tags_and_exported_keys_work_through_quinn() -> Result<()> {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let server = Server::start_with(trusting(&[CLIENT_KEY]), None, true)?;
        let client = client_endpoint()?;
        let connection = connect(&client, server.addr, suite, SERVER_KEY, None).await?;
        assert_eq!(server.retried.load(Ordering::SeqCst), 1);
        let server_connection = server.next_connection().await?;
        transfer(&connection, &server, 1, MIB, None).await?;
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        connection
            .export_keying_material(&mut a, b"photomesh", b"ctx")
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        server_connection
            .export_keying_material(&mut b, b"photomesh", b"ctx")
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert_eq!(a, b);
        assert_ne!(a, [0; 32]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_quic_and_nquic_do_not_interoperate() -> Result<()> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    // A TLS QUIC v1 client gets Version Negotiation from an nQUIC server.
    let server = Server::start(trusting(&[CLIENT_KEY]), None)?;
    let tls_client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone())?;
    let config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
    let err = tls_client
        .connect_with(config, server.addr, "localhost")?
        .await
        .expect_err("TLS QUIC cannot reach an nQUIC server");
    assert!(
        matches!(err, quinn::ConnectionError::VersionMismatch),
        "{err:?}"
    );

    // An nQUIC client gets Version Negotiation from a TLS QUIC server.
    let tls_config = quinn::ServerConfig::with_single_cert(
        vec![cert.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
    )?;
    let tls_server = quinn::Endpoint::server(tls_config, "127.0.0.1:0".parse()?)?;
    let client = client_endpoint()?;
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let err = connect(&client, tls_server.local_addr()?, suite, SERVER_KEY, None)
            .await
            .expect_err("nQUIC cannot reach a TLS QUIC server");
        let err = err.downcast::<quinn::ConnectionError>()?;
        assert!(
            matches!(err, quinn::ConnectionError::VersionMismatch),
            "{err:?}"
        );
    }
    Ok(())
}

#[test]
fn the_relay_marker_search_finds_a_marker() {
    let mut datagram = vec![0u8; 100];
    datagram[40..40 + MARKER.len()].copy_from_slice(MARKER);
    assert!(contains(&datagram, MARKER));
    assert!(!contains(&datagram[..50], MARKER));
}

// ---- helpers -------------------------------------------------------------------------

fn trusting(keys: &[[u8; 32]]) -> Arc<dyn TrustSet> {
    let set: BTreeSet<[u8; 32]> = keys
        .iter()
        .map(|k| *NoiseKey::from_private(k).as_bytes())
        .collect();
    Arc::new(set)
}

fn client_endpoint() -> Result<quinn::Endpoint> {
    Ok(transport::endpoint("127.0.0.1:0".parse()?, None)?)
}

async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    suite: Suite,
    server_private_key: [u8; 32],
    psk: Option<[u8; 32]>,
) -> Result<quinn::Connection> {
    let mut config = transport::client_config(
        CLIENT_KEY,
        NoiseKey::from_private(&server_private_key),
        suite,
        psk,
        transport::os_random(),
    );
    // As a node dials: datagrams as large as the route carries (loopback: 65,000 bytes).
    config.transport_config(transport::transport_config_for(addr));
    let connecting = endpoint.connect_with(config, addr, "photomesh")?;
    Ok(tokio::time::timeout(DEADLINE, connecting)
        .await
        .context("handshake timed out")??)
}

/// A server endpoint whose accept loop counts refusals, hands established connections to
/// the test and serves every stream it is given.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    retried: Arc<AtomicUsize>,
    connections: tokio::sync::Mutex<mpsc::UnboundedReceiver<quinn::Connection>>,
    verified: tokio::sync::Mutex<mpsc::UnboundedReceiver<Result<()>>>,
    _endpoint: quinn::Endpoint,
}

impl Server {
    fn start(trust: Arc<dyn TrustSet>, psk: Option<[u8; 32]>) -> Result<Self> {
        Self::start_with(trust, psk, false)
    }

    /// Like `start`, but sends every client a Retry first if `retry` is set.
    fn start_with(trust: Arc<dyn TrustSet>, psk: Option<[u8; 32]>, retry: bool) -> Result<Self> {
        let mut config =
            transport::server_config(SERVER_KEY, trust, psk, None, transport::os_random());
        // Every client is on loopback: as a node accepts them (`transport::server_config_for`).
        config.transport_config(transport::transport_config_for("127.0.0.1:1".parse()?));
        let endpoint = transport::endpoint("127.0.0.1:0".parse()?, Some(config))?;
        let addr = endpoint.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        let (verified_tx, verified_rx) = mpsc::unbounded_channel();
        let accept = endpoint.clone();
        let retried = Arc::new(AtomicUsize::new(0));
        let (a, r, s, t) = (
            accepted.clone(),
            refused.clone(),
            streams.clone(),
            retried.clone(),
        );
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                if retry && !incoming.remote_address_validated() {
                    if incoming.retry().is_ok() {
                        t.fetch_add(1, Ordering::SeqCst);
                    }
                    continue;
                }
                match incoming.await {
                    Ok(connection) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let _ = conn_tx.send(connection.clone());
                        tokio::spawn(serve(connection, s.clone(), verified_tx.clone()));
                    }
                    Err(_) => {
                        r.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        Ok(Self {
            addr,
            accepted,
            refused,
            streams,
            retried,
            connections: tokio::sync::Mutex::new(conn_rx),
            verified: tokio::sync::Mutex::new(verified_rx),
            _endpoint: endpoint,
        })
    }

    /// The next connection the server established.
    async fn next_connection(&self) -> Result<quinn::Connection> {
        self.connections
            .lock()
            .await
            .recv()
            .await
            .context("the server stopped before a connection")
    }

    /// Waits (bounded) until the server has refused `n` handshakes.
    async fn wait_refused(&self, n: usize) -> Result<()> {
        let start = tokio::time::Instant::now();
        while self.refused.load(Ordering::SeqCst) < n {
            ensure!(
                start.elapsed() < DEADLINE,
                "server never refused the handshake"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// Serves each bidirectional stream: reads the 16-byte header (stream tag, length), sends
/// the server's data for that tag back while checking the client's.
async fn serve(
    connection: quinn::Connection,
    streams: Arc<AtomicUsize>,
    verified: mpsc::UnboundedSender<Result<()>>,
) {
    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
        streams.fetch_add(1, Ordering::SeqCst);
        let verified = verified.clone();
        tokio::spawn(async move {
            let result = async {
                let mut header = [0u8; 17];
                recv.read_exact(&mut header).await?;
                let tag = u64::from_be_bytes(header[..8].try_into()?);
                let len = u64::from_be_bytes(header[8..16].try_into()?);
                let marker = (header[16] == 1).then_some(MARKER);
                let writer = tokio::spawn(async move {
                    send_data(&mut send, tag | 1 << 63, len, marker).await?;
                    send.finish()?;
                    let _ = send.stopped().await;
                    anyhow::Ok(())
                });
                check_data(&mut recv, tag, len, marker).await?;
                writer.await??;
                anyhow::Ok(())
            }
            .await;
            let _ = verified.send(result);
        });
    }
}

/// Moves `len` bytes each way on each of `streams` streams and checks every byte on both
/// ends.
async fn transfer(
    connection: &quinn::Connection,
    server: &Server,
    streams: u64,
    len: u64,
    marker: Option<&'static [u8]>,
) -> Result<()> {
    let mut tasks = Vec::new();
    for tag in 0..streams {
        let (mut send, mut recv) = connection.open_bi().await?;
        tasks.push(tokio::spawn(async move {
            let mut header = [0u8; 17];
            header[..8].copy_from_slice(&tag.to_be_bytes());
            header[8..16].copy_from_slice(&len.to_be_bytes());
            header[16] = u8::from(marker.is_some());
            send.write_all(&header).await?;
            let writer = tokio::spawn(async move {
                send_data(&mut send, tag, len, marker).await?;
                send.finish()?;
                anyhow::Ok(())
            });
            check_data(&mut recv, tag | 1 << 63, len, marker).await?;
            writer.await??;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut verified = server.verified.lock().await;
    for _ in 0..streams {
        verified.recv().await.context("server stopped")??;
    }
    Ok(())
}

const CHUNK: usize = 64 * 1024;

/// The deterministic content of stream `tag` at `offset`, with the marker every KiB if
/// asked for.
fn content(tag: u64, offset: u64, buf: &mut [u8], marker: Option<&[u8]>) {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&tag.to_be_bytes());
    let mut reader = hasher.finalize_xof();
    reader.set_position(offset);
    reader.fill(buf);
    if let Some(marker) = marker {
        // Every KiB, so that every datagram carrying stream data holds a whole marker.
        for start in (0..buf.len()).step_by(1024) {
            let n = marker.len().min(buf.len() - start);
            buf[start..start + n].copy_from_slice(&marker[..n]);
        }
    }
}

async fn send_data(
    send: &mut quinn::SendStream,
    tag: u64,
    len: u64,
    marker: Option<&[u8]>,
) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(CHUNK as u64) as usize;
        content(tag, offset, &mut buf[..n], marker);
        send.write_all(&buf[..n]).await?;
        offset += n as u64;
    }
    Ok(())
}

async fn check_data(
    recv: &mut quinn::RecvStream,
    tag: u64,
    len: u64,
    marker: Option<&[u8]>,
) -> Result<()> {
    let mut got = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(CHUNK as u64) as usize;
        recv.read_exact(&mut got[..n]).await?;
        content(tag, offset, &mut want[..n], marker);
        if got[..n] != want[..n] {
            bail!("stream {tag:#x} differs in the chunk at offset {offset}");
        }
        offset += n as u64;
    }
    let mut rest = [0u8; 1];
    ensure!(
        recv.read(&mut rest).await?.is_none(),
        "stream {tag:#x} has trailing bytes"
    );
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the relay saw.
#[derive(Default)]
struct RelayStats {
    relayed: AtomicUsize,
    flipped: AtomicUsize,
    marked: AtomicUsize,
}

/// A UDP relay between one client and `server`: it searches every datagram for the
/// plaintext marker and flips one bit in every `flip_every`-th 1-RTT (short header) packet
/// from the client.
struct Relay {
    addr: SocketAddr,
    stats: Arc<RelayStats>,
}

impl Relay {
    async fn start(server: SocketAddr, flip_every: usize) -> Result<Self> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = socket.local_addr()?;
        let stats = Arc::new(RelayStats::default());
        let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        upstream.connect(server).await?;
        let (client_tx, mut client_rx) = mpsc::unbounded_channel::<SocketAddr>();
        // Client → server.
        {
            let (socket, upstream, stats) = (socket.clone(), upstream.clone(), stats.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut client = None;
                let mut short = 0usize;
                while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                    if client.is_none() {
                        client = Some(from);
                        let _ = client_tx.send(from);
                    }
                    let datagram = &mut buf[..n];
                    stats.relayed.fetch_add(1, Ordering::SeqCst);
                    if contains(datagram, MARKER) {
                        stats.marked.fetch_add(1, Ordering::SeqCst);
                    }
                    if n > 40 && datagram[0] & 0x80 == 0 {
                        short += 1;
                        if short.is_multiple_of(flip_every) {
                            datagram[n - 20] ^= 0x04;
                            stats.flipped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let _ = upstream.send(datagram).await;
                }
            });
        }
        // Server → client.
        {
            let stats = stats.clone();
            tokio::spawn(async move {
                let Some(client) = client_rx.recv().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = upstream.recv(&mut buf).await {
                    stats.relayed.fetch_add(1, Ordering::SeqCst);
                    if contains(&buf[..n], MARKER) {
                        stats.marked.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = socket.send_to(&buf[..n], client).await;
                }
            });
        }
        Ok(Self { addr, stats })
    }
}
