//! Dialling another device: the one place that opens an nQUIC connection, and that says in
//! words why one could not be made. The refusal is read from the QUIC error code the
//! handshake ended with (`NQUIC.md` §4), never from the error's text.

use std::net::SocketAddr;
use std::time::Duration;

use photomesh_protocol::nquic::{NoiseKey, Suite};
use quinn::{ConnectionError, TransportErrorCode};

use crate::net::frame::NetError;
use crate::net::transport;

/// How long a connection attempt may take before it is given up (the running node uses a
/// shorter one of its own).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The handshake's code for "the responder does not trust the initiator" (or is not pairing).
const REFUSED: u8 = 49;
/// The handshake's code for "Noise could not decrypt or verify": a wrong responder key, a
/// wrong pairing secret, or tampering.
const NOISE_FAILED: u8 = 51;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe(false))]
pub struct DialError {
    /// The address dialled.
    pub addr: SocketAddr,
    /// What happened.
    pub failure: DialFailure,
}

/// What happened to a dial.
#[derive(Debug)]
pub enum DialFailure {
    /// The device there does not trust this one (not paired, or revoked), or is not pairing.
    Untrusted,
    /// The handshake did not verify: not the device expected, or a wrong pairing secret.
    WrongKey,
    /// No answer within the time allowed.
    NoAnswer(Duration),
    /// The connection could not be started (an unusable address) or failed otherwise.
    Failed(String),
}

impl DialError {
    /// Whether the device there answered and refused (as opposed to not answering).
    pub fn refused(&self) -> bool {
        matches!(self.failure, DialFailure::Untrusted | DialFailure::WrongKey)
    }

    /// The failure in words for a person; `pairing` when the dial carried a pairing code.
    pub fn describe(&self, pairing: bool) -> String {
        let addr = self.addr;
        match &self.failure {
            DialFailure::Untrusted => format!(
                "the device at {addr} refused this device: it is not trusted there (not paired, \
                 or revoked)"
            ),
            DialFailure::WrongKey if pairing => format!(
                "the device at {addr} refused the pairing: the code is not the one it made (a \
                 wrong secret, or a field changed). Use the code it shows now (each \
                 `photomesh pair` makes a new one)"
            ),
            DialFailure::WrongKey => {
                format!("the device at {addr} is not the device expected (its key does not match)")
            }
            DialFailure::NoAnswer(within) => format!(
                "no answer from {addr} within {within:?}: is photomesh running there, and is the \
                 address right?"
            ),
            DialFailure::Failed(why) => format!("connecting to {addr} failed: {why}"),
        }
    }
}

impl crate::error::Blame for DialError {
    /// A refusal is the other device's decision, not a fault; no dial failure costs a
    /// connection anything, so every one counts as the network's.
    fn fault(&self) -> crate::error::Fault {
        crate::error::Fault::Network
    }
}

/// The failure a connection error stands for.
fn classify(e: &ConnectionError) -> DialFailure {
    let code = match e {
        ConnectionError::ConnectionClosed(close) => Some(close.error_code),
        ConnectionError::TransportError(error) => Some(error.code),
        _ => None,
    };
    match code {
        Some(c) if c == TransportErrorCode::crypto(REFUSED) => DialFailure::Untrusted,
        Some(c) if c == TransportErrorCode::crypto(NOISE_FAILED) => DialFailure::WrongKey,
        _ if matches!(e, ConnectionError::TimedOut) => DialFailure::NoAnswer(Duration::ZERO),
        _ => DialFailure::Failed(e.to_string()),
    }
}

/// A client configuration for dialling a member (not a pairing): the suite is chosen from
/// this machine's AES support and what is known of the peer's.
pub fn member_config(
    private_key: [u8; 32],
    peer: NoiseKey,
    peer_aes: Option<bool>,
) -> quinn::ClientConfig {
    let suite = Suite::choose(transport::has_aes_hardware(), peer_aes);
    transport::client_config(private_key, peer, suite, None, transport::os_random())
}

/// Connects to `addr` with `config` from `endpoint`, giving up after `timeout`.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    mut config: quinn::ClientConfig,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<quinn::Connection, DialError> {
    let failed = |failure| DialError { addr, failure };
    // Datagrams as large as the route to this address carries.
    config.transport_config(transport::transport_config_for(addr));
    let connecting = endpoint
        .connect_with(config, addr, "photomesh")
        .map_err(|e| failed(DialFailure::Failed(e.to_string())))?;
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(failed(DialFailure::NoAnswer(timeout))),
        Ok(Err(e)) => Err(failed(match classify(&e) {
            DialFailure::NoAnswer(_) => DialFailure::NoAnswer(timeout),
            other => other,
        })),
        Ok(Ok(connection)) => Ok(connection),
    }
}

/// A client-only endpoint bound to the unspecified address of `peer`'s family.
pub fn client_endpoint(peer: &SocketAddr) -> Result<quinn::Endpoint, NetError> {
    let bind: SocketAddr = if peer.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    transport::endpoint(bind, None).map_err(|source| NetError::Bind { addr: bind, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_by_peer(code: u8) -> ConnectionError {
        ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: TransportErrorCode::crypto(code),
            frame_type: None,
            reason: bytes::Bytes::from_static(b"any words at all"),
        })
    }

    #[test]
    fn a_refusal_is_read_from_the_handshake_code_not_the_text() {
        assert!(matches!(
            classify(&closed_by_peer(REFUSED)),
            DialFailure::Untrusted
        ));
        assert!(matches!(
            classify(&closed_by_peer(NOISE_FAILED)),
            DialFailure::WrongKey
        ));
        assert!(matches!(
            classify(&closed_by_peer(50)),
            DialFailure::Failed(_)
        ));
        assert!(matches!(
            classify(&ConnectionError::TimedOut),
            DialFailure::NoAnswer(_)
        ));
        let addr: SocketAddr = "192.0.2.1:7447".parse().unwrap();
        let untrusted = DialError {
            addr,
            failure: DialFailure::Untrusted,
        };
        assert!(untrusted.refused() && untrusted.describe(false).contains("not trusted"));
        let wrong = DialError {
            addr,
            failure: DialFailure::WrongKey,
        };
        assert!(wrong.describe(true).contains("refused the pairing"));
        assert!(wrong.describe(false).contains("not the device expected"));
    }
}
