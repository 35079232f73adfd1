//! The node's error model: whose fault a failure is.
//!
//! Every error that can end a conversation with another device says, by its variant and
//! never by its message text, whether it happened here ([`Fault::Local`]: this device's disk,
//! index or a bug), was caused by the other device ([`Fault::Peer`]: bad data, a protocol
//! violation, a refusal) or by the network between them ([`Fault::Network`]: lost, timed
//! out). Architecture invariant: only a `Peer` fault records a peer as bad, avoids it or
//! closes its connection as a protocol error; a `Local` fault never closes a healthy
//! connection and is reported as what it is.

use std::fmt;

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// This device failed: its disk (full, an I/O error), its index, or a bug in the node.
    Local,
    /// The other device misbehaved: it sent bad data or broke the protocol.
    Peer,
    /// The network failed: the connection could not be made, was lost or timed out.
    Network,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Local => "a failure on this device",
            Fault::Peer => "a fault of the other device",
            Fault::Network => "a network failure",
        })
    }
}

/// An error that knows whose fault it is.
pub trait Blame {
    /// Whose fault this failure is.
    fn fault(&self) -> Fault;
}

impl Blame for crate::index::IndexError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

impl Blame for crate::home::HomeError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

impl Blame for crate::blob::store::BlobStoreError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

impl Blame for std::io::Error {
    /// An I/O error on its own is this device's: its files, its disk.
    fn fault(&self) -> Fault {
        Fault::Local
    }
}
