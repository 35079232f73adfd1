//! The node's QUIC transport: `quinn::Endpoint`s whose crypto is nQUIC
//! (`photomesh_protocol::nquic`, specified in `protocol/NQUIC.md`).
//!
//! This module only builds configurations and endpoints from a device's X25519 private key
//! and a trust set, and reads the peer's noise key back out of a connection. It does not
//! decide whom to trust (the membership set does) nor what to send (the later protocols do).

use std::{io, net::SocketAddr, sync::Arc};

use photomesh_protocol::nquic::{self, HandshakeData, NoiseKey, Suite, TrustSet};

/// The OS random number generator as nQUIC's source of ephemeral keys.
pub fn os_random() -> nquic::RandomSource {
    Arc::new(|buf: &mut [u8]| {
        // getrandom fails only if the OS has no entropy source at all, in which case no
        // key this node made could be trusted either; stopping is the only safe outcome.
        getrandom::fill(buf).expect("the OS random number generator is available");
    })
}

/// The environment variable that makes a node act as a CPU without AES instructions (a
/// Raspberry Pi 4), so that it chooses the ChaCha20-Poly1305 suite: set to `1` to measure what
/// such a device pays (the replication bench's ChaCha runs).
pub const NO_AES_ENV: &str = "PHOTOMESH_NO_AES";

/// Whether this CPU has AES instructions, which makes the `AESGCM` suite the faster one
/// (and whether it is to say so: [`NO_AES_ENV`]).
pub fn has_aes_hardware() -> bool {
    if std::env::var_os(NO_AES_ENV).is_some_and(|v| v == "1") {
        return false;
    }
    cpu_has_aes()
}

fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The largest UDP payload MTU discovery may probe for, and the largest this node accepts
/// ([`endpoint_config`]). quinn's defaults stop at 1452 bytes (Ethernet); paths that carry more
/// (loopback, jumbo-frame LANs) then pay the per-packet costs (AEAD, header protection, ACKs,
/// syscalls) 1452 bytes at a time. Each connection probes up to what its route's interface
/// carries ([`path_payload`]); batches of such large datagrams need
/// [`super::gso::GsoSplit`], or the kernel refuses them.
pub const MTU_UPPER_BOUND: u16 = 65_000;

/// What MTU discovery probes up to where the route is not known: an Ethernet frame's UDP
/// payload under IPv6 (quinn's own default).
pub const ETHERNET_PAYLOAD: u16 = 1452;

/// The largest UDP payload the route to `peer` carries as far as this device knows: its
/// interface's MTU less the IP and UDP headers, between quinn's minimum (1200) and
/// [`MTU_UPPER_BOUND`]; [`ETHERNET_PAYLOAD`] where the route cannot be asked.
///
/// MTU discovery probes only while a connection has nothing else to send, and every probe
/// larger than the path allows is lost three times before a smaller one is tried: probing
/// towards 65,000 bytes over a 1,500-byte LAN left bulk transfers at quinn's starting 1,200
/// bytes for their first seconds. The interface's MTU is the most the path can carry, so
/// probing stops there.
pub fn path_payload(peer: SocketAddr) -> u16 {
    let peer = canonical(peer);
    payload_within(route_mtu(peer).ok(), peer.is_ipv4())
}

/// The UDP payload an interface MTU of `mtu` carries (IPv4 or IPv6 headers), within the
/// bounds [`path_payload`] keeps.
fn payload_within(mtu: Option<u32>, ipv4: bool) -> u16 {
    let Some(mtu) = mtu else {
        return ETHERNET_PAYLOAD;
    };
    let headers = if ipv4 { 20 + 8 } else { 40 + 8 };
    u16::try_from(mtu.saturating_sub(headers))
        .unwrap_or(MTU_UPPER_BOUND)
        .clamp(1200, MTU_UPPER_BOUND)
}

/// The MTU of the interface the kernel routes `peer` through (a UDP socket connected to it,
/// nothing sent).
fn route_mtu(peer: SocketAddr) -> io::Result<u32> {
    let local: SocketAddr = if peer.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(peer)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::net::sockopt;
        Ok(if peer.is_ipv4() {
            sockopt::ip_mtu(&socket)?
        } else {
            sockopt::ipv6_mtu(&socket)?
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    Err(io::Error::other("the route's MTU is read on Linux only"))
}

/// How long a connection may hear nothing from its peer before it counts as lost, in
/// milliseconds. A device that vanishes without closing (a phone leaving the Wi-Fi) is
/// noticed this long after its last packet, and the ranges of a blob it was sending go to
/// the other peers; quinn's default is 30 s.
pub const IDLE_TIMEOUT_MS: u32 = 10_000;
/// How often a connection with nothing else to send pings its peer, so that a live but quiet
/// connection never reaches [`IDLE_TIMEOUT_MS`] (a running node also syncs every second).
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(3);

/// How many bytes of a stream a peer may send ahead of what this node has read: what quinn
/// holds for each of the up to 64 blob streams a fetch has open
/// (`crate::replicate::fetch::MAX_IN_FLIGHT_BLOBS`), at most 16 MiB in all, while their
/// blobs wait for the receiver's memory budget (only blobs whose size the index does not
/// know wait so: the others are asked for once there is room). quinn's default (1.25 MB)
/// let those waiting streams hold ~80 MB: the receiving node's peak RSS in the replication
/// bench's case (a) went from 153 to 77 MiB with this, throughput within the runs' spread
/// (425 against 450 MB/s; 128 KiB cost 15%). A stream carries at most this much per round
/// trip: on a LAN nothing, over a 50 ms path ~5 MB/s for each stream (a large blob from one
/// peer is one).
pub const STREAM_WINDOW: u32 = 256 << 10;

/// The transport parameters of a connection whose route is not known: quinn's defaults
/// except for the idle timeout and keep-alive above, a stream window of [`STREAM_WINDOW`],
/// and that streams of the same priority are sent one after the other rather than
/// round-robin. [`transport_config_for`] a peer also probes for larger datagrams.
///
/// Round-robin sent a slice of each of the 64 blobs in flight in turn, so all of them were
/// half received at once and the receiver held every one's received part (in quinn's
/// stream buffers and its own) until it was whole; in order, blobs arrive whole one after
/// the other and are decoded and freed at once (the receiving node's peak RSS in the
/// replication bench went from ~300 to ~175 MiB, throughput unchanged). Blob answers have a
/// lower priority than the rest of the conversation (`crate::replicate::serve::BLOB_PRIORITY`), so nothing
/// but other blobs waits behind them.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    bounded_transport_config(ETHERNET_PAYLOAD)
}

/// [`transport_config`] for a connection with `peer`: MTU discovery goes up to what the
/// route carries ([`path_payload`]).
pub fn transport_config_for(peer: SocketAddr) -> Arc<quinn::TransportConfig> {
    bounded_transport_config(path_payload(peer))
}

/// A server configuration like `base`, for a connection from `peer`
/// ([`transport_config_for`]).
pub fn server_config_for(base: &quinn::ServerConfig, peer: SocketAddr) -> Arc<quinn::ServerConfig> {
    let mut config = base.clone();
    config.transport_config(transport_config_for(peer));
    Arc::new(config)
}

fn bounded_transport_config(payload: u16) -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        IDLE_TIMEOUT_MS,
    ))));
    config.keep_alive_interval(Some(KEEP_ALIVE));
    let mut discovery = quinn::MtuDiscoveryConfig::default();
    discovery.upper_bound(payload);
    config.mtu_discovery_config(Some(discovery));
    let mut congestion = quinn::congestion::CubicConfig::default();
    congestion.initial_window(initial_window(payload));
    config.congestion_controller_factory(Arc::new(congestion));
    config.send_fairness(false);
    config.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
    Arc::new(config)
}

/// quinn's initial congestion window (ten 1,200-byte datagrams), or room for the largest
/// datagram MTU discovery may probe with and two more of the minimum size, whichever is more.
///
/// quinn sends an MTU probe whatever the window, and counts it in flight: the first probe
/// on loopback (33,100 bytes) alone overfills the 12,000-byte default. Until it is
/// acknowledged, nothing else may be sent — not even a CONNECTION_CLOSE, which quinn
/// (0.11.19, issue #2785) holds back like data. A node that refuses a peer closes the
/// moment the handshake ends, while its first probe is in flight; the close was never
/// sent, and the peer learned only from a stateless reset once the connection was forgotten.
/// No roomier: a window of three probes measured slower in case (a) of the replication
/// bench (perhaps because quinn probes only when nothing else can be sent).
fn initial_window(payload: u16) -> u64 {
    const QUINN_DEFAULT: u64 = 10 * 1200;
    QUINN_DEFAULT.max(u64::from(payload) + 2400)
}

/// A trust set of the one device whose Noise private key is `private`.
#[cfg(test)]
pub(crate) fn trusting(private: &[u8; 32]) -> Arc<dyn TrustSet> {
    let key = *NoiseKey::from_private(private).as_bytes();
    Arc::new(std::collections::BTreeSet::from([key]))
}

/// An endpoint configuration that speaks both nQUIC versions and nothing else, and accepts
/// datagrams up to [`MTU_UPPER_BOUND`] (quinn's default, 1472 bytes, tells the peer to
/// probe no higher).
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    config.supported_versions(nquic::SUPPORTED_VERSIONS.to_vec());
    config
        .max_udp_payload_size(MTU_UPPER_BOUND)
        .expect("MTU_UPPER_BOUND is within quinn's bounds");
    config
}

/// A server configuration for this device: accepts IK initiators that `trust` accepts;
/// with `pairing_secret`, pairings with that one-time secret; with `recovery`, recoveries
/// addressed to the responder keys it holds (`NQUIC.md` §3).
pub fn server_config(
    private_key: [u8; 32],
    trust: Arc<dyn TrustSet>,
    pairing_secret: Option<[u8; 32]>,
    recovery: Option<Arc<dyn nquic::RecoveryKeys>>,
    rng: nquic::RandomSource,
) -> quinn::ServerConfig {
    let mut crypto = nquic::ServerConfig::new(private_key, trust, rng);
    if let Some(secret) = pairing_secret {
        crypto = crypto.with_pairing_secret(secret);
    }
    if let Some(keys) = recovery {
        crypto = crypto.with_recovery_keys(keys);
    }
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    // Connection attempts waiting for the accept loop, and what they may buffer: a flood
    // queues no more than this (the loop answers most with a Retry at once, `net::gate`);
    // beyond, quinn refuses them statelessly.
    config
        .max_incoming(MAX_INCOMING)
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(4 * 1024 * 1024);
    config
}

/// Connection attempts that may wait for the accept loop at once.
const MAX_INCOMING: usize = 1024;

/// A client configuration to connect to the device whose noise key is `peer`, in `suite`
/// (see [`Suite::choose`]), as a pairing if `pairing_secret` is set.
///
/// Keep it for later connections to the same peer: after the first handshake it remembers
/// the static-static DH result with that peer, one X25519 operation fewer per connection
/// (`NQUIC.md` §8).
pub fn client_config(
    private_key: [u8; 32],
    peer: NoiseKey,
    suite: Suite,
    pairing_secret: Option<[u8; 32]>,
    rng: nquic::RandomSource,
) -> quinn::ClientConfig {
    let mut crypto = nquic::ClientConfig::new(private_key, rng).with_peer(peer);
    if let Some(secret) = pairing_secret {
        crypto = crypto.with_pairing_secret(secret);
    }
    quinn_client(crypto, suite)
}

/// A client configuration for a recovery: the recovery identity's key `private_key`, to the
/// mesh's recovery responder key `responder` (`NQUIC.md` §3).
pub fn recovery_client_config(
    private_key: [u8; 32],
    responder: NoiseKey,
    suite: Suite,
) -> quinn::ClientConfig {
    let crypto = nquic::ClientConfig::new(private_key, os_random())
        .with_peer(responder)
        .with_recovery();
    quinn_client(crypto, suite)
}

fn quinn_client(crypto: nquic::ClientConfig, suite: Suite) -> quinn::ClientConfig {
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.version(suite.version());
    config.transport_config(transport_config());
    config
}

/// A UDP endpoint on `bind` that accepts nQUIC connections as `server` and can open them
/// with a [`client_config`].
pub fn endpoint(
    bind: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    Ok(bind_endpoint(bind, server)?.0)
}

/// [`endpoint`] for the long-running node: says once, as a warning, when the kernel grants
/// smaller socket buffers than [`SOCKET_BUFFER`], and how to allow more. (Short-lived
/// commands — `pair`, `ping`, `restore` — stay quiet about it.)
pub fn node_endpoint(
    bind: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    let (endpoint, granted) = bind_endpoint(bind, server)?;
    if granted < SOCKET_BUFFER {
        tracing::warn!(
            "the UDP receive buffer is {granted} bytes, less than the {SOCKET_BUFFER} asked \
             for: fast transfers may lose datagrams and slow down; allow more with \
             `sysctl -w net.core.rmem_max={SOCKET_BUFFER} net.core.wmem_max={SOCKET_BUFFER}`"
        );
    }
    Ok(endpoint)
}

/// Binds the socket, widens its buffers and builds the endpoint; also returns the receive
/// buffer the kernel granted (as Linux reports it, see [`widen_buffers`]).
fn bind_endpoint(
    bind: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<(quinn::Endpoint, usize)> {
    let socket = bind_udp(bind)?;
    let granted = widen_buffers(&socket);
    let runtime = quinn::default_runtime()
        .ok_or_else(|| io::Error::other("no async runtime found; run inside tokio"))?;
    // quinn's own socket, with batches of large datagrams cut to what the kernel takes.
    let socket = Arc::new(super::gso::GsoSplit::new(
        runtime.wrap_udp_socket(socket)?,
        MTU_UPPER_BOUND,
    ));
    let endpoint =
        quinn::Endpoint::new_with_abstract_socket(endpoint_config(), server, socket, runtime)?;
    Ok((endpoint, granted))
}

/// A UDP socket on `bind`. On the IPv6 wildcard (`[::]`) it takes IPv4 too (dual stack,
/// whatever `net.ipv6.bindv6only` says): one socket, so one endpoint, reaches both.
fn bind_udp(bind: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    if !(bind.is_ipv6() && bind.ip().is_unspecified()) {
        return std::net::UdpSocket::bind(bind);
    }
    let socket = rustix::net::socket(AddressFamily::INET6, SocketType::DGRAM, None)?;
    sockopt::set_ipv6_v6only(&socket, false)?;
    rustix::net::bind(&socket, &bind)?;
    Ok(std::net::UdpSocket::from(socket))
}

/// The peer's address as people write it: an IPv4 peer reached through a dual-stack socket
/// shows as `192.0.2.7:7447`, not `[::ffff:192.0.2.7]:7447`.
pub fn remote(connection: &quinn::Connection) -> SocketAddr {
    canonical(connection.remote_address())
}

/// `addr` with an IPv4-mapped IPv6 address written as IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the node asks of the kernel for each UDP socket's receive and send buffers.
///
/// The kernel's default receive buffer (about 208 KiB on Linux) holds only a handful of the
/// large datagrams MTU discovery reaches on loopback and jumbo-frame LANs; a receiver that
/// falls a few milliseconds behind then has datagrams dropped before quinn sees them, and the
/// sender takes every drop for congestion. The kernel caps the request at
/// `net.core.rmem_max` / `wmem_max` (then doubles it for its own bookkeeping).
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Asks for [`SOCKET_BUFFER`]-sized buffers on `socket`, past the kernel's cap where the
/// process may (`CAP_NET_ADMIN`, Linux). Returns the receive buffer granted as the kernel
/// reports it (Linux: twice what it grants, the other half being its bookkeeping), or 0 if
/// it cannot be read.
fn widen_buffers(socket: &std::net::UdpSocket) -> usize {
    use rustix::net::sockopt;
    #[cfg(target_os = "linux")]
    let forced = sockopt::set_socket_recv_buffer_size_force(socket, SOCKET_BUFFER).is_ok()
        && sockopt::set_socket_send_buffer_size_force(socket, SOCKET_BUFFER).is_ok();
    #[cfg(not(target_os = "linux"))]
    let forced = false;
    if !forced {
        let _ = sockopt::set_socket_recv_buffer_size(socket, SOCKET_BUFFER);
        let _ = sockopt::set_socket_send_buffer_size(socket, SOCKET_BUFFER);
    }
    sockopt::socket_recv_buffer_size(socket).unwrap_or(0)
}

/// The peer's noise key of an established nQUIC connection.
pub fn peer_noise_key(connection: &quinn::Connection) -> Option<NoiseKey> {
    connection
        .peer_identity()?
        .downcast::<NoiseKey>()
        .ok()
        .map(|key| *key)
}

/// The handshake facts of an nQUIC connection: suite, pairing or not, peer.
pub fn handshake_data(connection: &quinn::Connection) -> Option<HandshakeData> {
    connection
        .handshake_data()?
        .downcast::<HandshakeData>()
        .ok()
        .map(|data| *data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_stops_at_what_the_route_carries() {
        let loopback: SocketAddr = "127.0.0.1:7447".parse().unwrap();
        let payload = path_payload(loopback);
        match route_mtu(loopback) {
            // The route to 127.0.0.1 is the loopback interface: where its MTU is Linux's
            // 65,536, the route carries 64 KiB packets and probing goes up to the bound.
            Ok(mtu) => {
                assert_eq!(payload, payload_within(Some(mtu), true));
                let lo = std::fs::read_to_string("/sys/class/net/lo/mtu")
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                if lo == Some(65_536) {
                    assert!(mtu >= 65_535, "the route's MTU is {mtu}");
                    assert_eq!(payload, MTU_UPPER_BOUND);
                }
            }
            // Where the route cannot be asked (qemu-user does not emulate `IP_MTU`): the
            // Ethernet default, never a guess above it.
            Err(_) => assert_eq!(payload, ETHERNET_PAYLOAD),
        }
        // The same address written as IPv6 through a dual-stack socket: the same route.
        assert_eq!(
            path_payload("[::ffff:127.0.0.1]:7447".parse().unwrap()),
            payload
        );
    }

    #[test]
    fn a_routes_mtu_less_its_headers_bounds_the_payload() {
        assert_eq!(payload_within(Some(1500), true), 1472);
        assert_eq!(payload_within(Some(1500), false), 1452);
        assert_eq!(payload_within(Some(9000), true), 8972);
        assert_eq!(payload_within(Some(65_536), true), MTU_UPPER_BOUND);
        assert_eq!(payload_within(Some(u32::MAX), false), MTU_UPPER_BOUND);
        // Never below what every QUIC path must carry, nor a guess where nothing is known.
        assert_eq!(payload_within(Some(576), true), 1200);
        assert_eq!(payload_within(None, true), ETHERNET_PAYLOAD);
    }

    #[test]
    fn endpoints_ask_for_more_than_the_default_socket_buffers() {
        use rustix::net::sockopt;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let default = sockopt::socket_recv_buffer_size(&socket).expect("read the default");
        let widened = widen_buffers(&socket);
        assert_eq!(
            widened,
            sockopt::socket_recv_buffer_size(&socket).expect("read it back")
        );
        // Even an unprivileged process on a stock kernel gets twice rmem_max.
        assert!(
            widened > default,
            "{widened} is not above the default {default}"
        );
        assert!(sockopt::socket_send_buffer_size(&socket).expect("send size") > default);
    }

    /// A node that refuses a peer closes the connection the moment the handshake ends, while
    /// its first MTU probe (half of loopback's 65,000 bytes) is still in flight. The peer must
    /// hear why; a close held back by the congestion window never leaves, and the peer learns
    /// only from a stateless reset once the closed connection is forgotten.
    #[tokio::test]
    async fn a_close_right_after_the_handshake_reaches_the_peer() {
        use crate::net::close::Close;
        const SERVER: [u8; 32] = [0x5e; 32];
        const CLIENT: [u8; 32] = [0xc1; 32];
        let base = server_config(SERVER, trusting(&CLIENT), None, None, os_random());
        let server = endpoint("127.0.0.1:0".parse().unwrap(), Some(base.clone())).unwrap();
        let client = endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = server.local_addr().unwrap();
        let refusing = tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                let config = server_config_for(&base, incoming.remote_address());
                let Ok(connection) = incoming.accept_with(config).unwrap().await else {
                    continue;
                };
                // The peer's request has arrived (and quinn owes it stream credit): refuse.
                let _ = connection.accept_bi().await;
                Close::Revoked.close(&connection);
            }
        });
        for attempt in 0..20 {
            let mut config = client_config(
                CLIENT,
                NoiseKey::from_private(&SERVER),
                Suite::ChaChaPoly,
                None,
                os_random(),
            );
            config.transport_config(transport_config_for(addr));
            let connection = client
                .connect_with(config, addr, "photomesh")
                .unwrap()
                .await
                .unwrap();
            let (mut send, mut recv) = connection.open_bi().await.unwrap();
            send.write_all(&[7; 2000]).await.unwrap();
            let _ = send.finish();
            let lost = recv.read_to_end(1 << 20).await.unwrap_err();
            let quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(
                quinn::ConnectionError::ApplicationClosed(close),
            )) = &lost
            else {
                panic!("attempt {attempt}: the close did not arrive: {lost:?}");
            };
            assert_eq!(Close::from_code(close.error_code), Some(Close::Revoked));
        }
        refusing.abort();
    }
}
