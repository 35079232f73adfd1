//! A stranger's handshake flood: protected nQUIC Initials, each opening a new connection,
//! made by quinn-proto's sans-IO client (so each is exactly what a real initiator sends:
//! Initial packet protection, a Noise `IK` first message to the node's static key) and sent
//! from one UDP socket as fast as it goes. Used by the flood test and the flood bench.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use photomesh::net::transport;
use photomesh_protocol::nquic::{NoiseKey, Suite};

/// How the flooded node answered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Answers {
    /// Retry packets: the node asked for proof of address and did no handshake work.
    pub retries: usize,
    /// Other long-header packets (an Initial carrying the refusal): handshakes it ran.
    pub handshakes: usize,
    /// Datagrams sent.
    pub sent: usize,
}

/// `n` Initials to the node at `target` whose Noise static key is `node_key`, each from a
/// new connection of a new (untrusted) device key.
pub fn initials(target: SocketAddr, node_key: [u8; 32], n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let config = Arc::new(transport::endpoint_config());
    // A fresh endpoint every thousand connections keeps the flooder's own state small.
    let mut endpoint = None;
    let mut stranger = [0u8; 32];
    for i in 0..n {
        if i % 1000 == 0 {
            endpoint = Some(quinn_proto::Endpoint::new(
                config.clone(),
                None,
                false,
                None,
            ));
        }
        let Some(endpoint) = endpoint.as_mut() else {
            break;
        };
        stranger[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let client = transport::client_config(
            stranger,
            NoiseKey(node_key),
            Suite::choose(transport::has_aes_hardware(), None),
            None,
            transport::os_random(),
        );
        let now = Instant::now();
        let Ok((_, mut connection)) = endpoint.connect(now, client, target, "photomesh") else {
            continue;
        };
        let mut buf = Vec::new();
        if let Some(transmit) = connection.poll_transmit(now, 1, &mut buf) {
            buf.truncate(transmit.size);
            out.push(buf);
        }
    }
    out
}

/// Sends `packets` to `target` from one socket bound to `from` (on loopback, another address
/// of 127.0.0.0/8 than the members', as a stranger on a LAN has its own), then reads answers
/// until none came for `quiet`, and counts them by kind.
pub fn flood(
    from: SocketAddr,
    target: SocketAddr,
    packets: &[Vec<u8>],
    quiet: Duration,
) -> std::io::Result<Answers> {
    let socket = UdpSocket::bind(from)?;
    socket.set_nonblocking(true)?;
    let mut answers = Answers::default();
    let mut buf = vec![0u8; 65_536];
    let mut read = |answers: &mut Answers| {
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            count(&buf[..len], answers);
        }
    };
    for packet in packets {
        // A full socket buffer: take what came back, then go on.
        while socket.send_to(packet, target).is_err() {
            read(&mut answers);
            std::thread::yield_now();
        }
        answers.sent += 1;
        if answers.sent % 64 == 0 {
            read(&mut answers);
        }
    }
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(quiet))?;
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        count(&buf[..len], &mut answers);
    }
    Ok(answers)
}

/// Counts one datagram: long-header packets whose type bits say Retry (RFC 9000 §17.2), and
/// the other long-header packets.
fn count(datagram: &[u8], answers: &mut Answers) {
    let Some(first) = datagram.first() else {
        return;
    };
    if first & 0x80 == 0 {
        return;
    }
    if (first >> 4) & 0x03 == 0x03 {
        answers.retries += 1;
    } else {
        answers.handshakes += 1;
    }
}
