//! Network plumbing shared by the verbs that talk to other devices: framed messages on quinn
//! streams, this machine's addresses, and plain-words explanations of connection failures.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use photomesh_protocol::messages::{self, FrameError};
use serde::{Serialize, de::DeserializeOwned};

/// How long a peer may take to answer a message.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why talking to another device failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The connection could not be made or was lost.
    #[error("{0}")]
    Connection(String),
    /// The peer sent something that is not a valid message: the connection is closed.
    #[error("the other device sent a malformed message ({0}); the connection was closed")]
    Frame(#[from] FrameError),
    /// The peer did not answer in time.
    #[error("the other device did not answer within {0:?}")]
    Timeout(Duration),
    /// A local socket could not be opened.
    #[error("cannot open a UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Writes one framed message.
pub async fn write_frame<T: Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), NetError> {
    let frame = messages::encode_frame(message)?;
    send.write_all(&frame)
        .await
        .map_err(|e| NetError::Connection(describe_write(&e)))
}

/// Reads one framed message, refusing oversized frames before buffering them.
pub async fn read_frame<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<T, NetError> {
    let read = async {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix)
            .await
            .map_err(|e| NetError::Connection(describe_read(&e)))?;
        let len = messages::frame_len(prefix)?;
        let mut body = vec![0u8; len];
        recv.read_exact(&mut body)
            .await
            .map_err(|e| NetError::Connection(describe_read(&e)))?;
        Ok(messages::decode_body(&body)?)
    };
    tokio::time::timeout(REPLY_TIMEOUT, read)
        .await
        .map_err(|_| NetError::Timeout(REPLY_TIMEOUT))?
}

fn describe_read(e: &quinn::ReadExactError) -> String {
    match e {
        quinn::ReadExactError::FinishedEarly(_) => {
            "the other device ended the conversation early".into()
        }
        quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(lost)) => {
            describe_lost(lost)
        }
        quinn::ReadExactError::ReadError(e) => format!("the connection failed: {e}"),
    }
}

fn describe_write(e: &quinn::WriteError) -> String {
    match e {
        quinn::WriteError::ConnectionLost(lost) => describe_lost(lost),
        e => format!("the connection failed: {e}"),
    }
}

/// Explains a lost connection, naming a revocation when that is why.
pub fn describe_lost(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(close)
            if crate::net::close::Close::from_code(close.error_code)
                == Some(crate::net::close::Close::Revoked) =>
        {
            "the other device closed the connection: this device is not trusted there any more \
             (revoked)"
                .into()
        }
        e => format!("the connection failed: {e}"),
    }
}

/// The addresses other devices can reach this machine at: the non-loopback interface
/// addresses, or the loopback ones if there are no others.
pub fn local_addresses() -> Vec<IpAddr> {
    let all: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => true,
        // Link-local IPv6 needs a scope ID that does not travel in a code.
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    };
    let outside: Vec<IpAddr> = all
        .iter()
        .copied()
        .filter(|ip| !ip.is_loopback() && usable(ip))
        .collect();
    if outside.is_empty() {
        all.into_iter().filter(IpAddr::is_loopback).collect()
    } else {
        outside
    }
}

impl crate::error::Blame for NetError {
    fn fault(&self) -> crate::error::Fault {
        use crate::error::Fault;
        match self {
            NetError::Connection(_) | NetError::Timeout(_) => Fault::Network,
            NetError::Frame(_) => Fault::Peer,
            NetError::Bind { .. } => Fault::Local,
        }
    }
}
