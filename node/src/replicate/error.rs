//! Why replication with a peer failed, and whose fault it was ([`crate::error::Blame`]).

use photomesh_protocol::reconcile::ReconcileError;
use photomesh_protocol::seal::BlobId;

use crate::blob::store::BlobStoreError;
use crate::error::{Blame, Fault};
use crate::index::IndexError;
use crate::net::frame::NetError;

/// Why a sync (of records or of blobs) with one peer failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The network failed, or the peer sent a malformed message ([`NetError`] says which).
    #[error(transparent)]
    Net(#[from] NetError),
    /// This device's index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// This device's blob store failed (a full disk, an I/O error).
    #[error("storing received blobs: {0}")]
    Store(#[from] BlobStoreError),
    /// Reading or writing a file on this device failed.
    #[error("{what}: {source}")]
    Disk {
        /// What was being done, and to which file.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// This device's membership records could not be read.
    #[error(transparent)]
    Mesh(#[from] crate::mesh::MeshError),
    /// A task of this node ended without an answer (it panicked: a bug here).
    #[error("a replication task of this node failed: {0}")]
    Task(String),
    /// The reconciliation session failed (a malformed or unexpected frame).
    #[error("reconciliation failed: {0}")]
    Reconcile(#[from] ReconcileError),
    /// The peer broke the protocol.
    #[error("the other device broke the protocol: {0}")]
    Protocol(String),
    /// The peer sent blob data that does not match the blob ID.
    #[error("the other device sent bad data for blob {blob}: {why}")]
    BadData {
        /// The blob.
        blob: BlobId,
        /// What did not verify.
        why: String,
    },
}

impl From<tokio::task::JoinError> for SyncError {
    fn from(e: tokio::task::JoinError) -> Self {
        SyncError::Task(e.to_string())
    }
}

impl Blame for SyncError {
    fn fault(&self) -> Fault {
        match self {
            SyncError::Net(e) => e.fault(),
            SyncError::Index(_)
            | SyncError::Store(_)
            | SyncError::Disk { .. }
            | SyncError::Mesh(_)
            | SyncError::Task(_) => Fault::Local,
            SyncError::Reconcile(_) | SyncError::Protocol(_) | SyncError::BadData { .. } => {
                Fault::Peer
            }
        }
    }
}
