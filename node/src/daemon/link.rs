//! One adopted connection, a *link*: served (the peer's requests) and synced over (this
//! side's pull), until it closes. [`after_failure`] is the one rule for what a failed
//! exchange costs the peer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use photomesh_protocol::messages::Request;
use photomesh_protocol::nquic::NoiseKey;
use photomesh_protocol::seal::BlobId;

use crate::clock::now_ms;
use crate::daemon::registry::{Adoption, Link};
use crate::error::{Blame, Fault};
use crate::mesh;
use crate::net::close::Close;
use crate::net::control::Dialler;
use crate::net::frame;
use crate::net::transport;
use crate::replicate::blobs::BlobRound;
use crate::replicate::records;

use super::hello::{absorb_hello, greet, hello};
use super::{DaemonError, NodeHandle, PROBE_TIMEOUT, RETRY_AFTER_LOCAL_FAILURE, SYNC_INTERVAL};

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
pub(super) fn connection_id(connection: &quinn::Connection) -> String {
    let mut id = [0u8; 8];
    match connection.export_keying_material(&mut id, b"photomesh connection id", b"") {
        Ok(()) => hex::encode(id),
        Err(_) => format!("local-{}", connection.stable_id()),
    }
}

impl NodeHandle {
    /// Takes a new connection into the registry (or closes it as a duplicate), then serves
    /// and syncs over it until it closes.
    pub(super) async fn adopt(&self, connection: quinn::Connection, dialler: Dialler) {
        let Some(peer) = transport::peer_noise_key(&connection) else {
            Close::ProtocolError.close(&connection);
            return;
        };
        let member = {
            let home = self.0.home.lock().await;
            mesh::trust_set(&home)
                .ok()
                .and_then(|t| t.by_noise_key(&peer.0).map(|m| (m.device, m.role)))
        };
        let Some((device, role)) = member else {
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
        if !role.is_device() {
            // The recovery identity: a device recovering the mesh (`PAIRING.md`). Its
            // requests are answered; it is no device to sync with or to keep connected.
            tracing::info!(remote = %transport::remote(&link.connection), "a recovery connected");
            let node = self.clone();
            tokio::spawn(async move { node.serve(&peer, &link).await });
            return;
        }
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
                    greet(&self.0.home, &self.0.engine, &kept.connection, &peer, None),
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
        self.0.unreached.lock().remove(&device);
        tracing::info!(
            peer = %device.short(),
            remote = %transport::remote(&link.connection),
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
                    absorb_hello(&home, &theirs, peer, Some(transport::remote(connection)))?;
                    hello(&home, Some(&self.0.engine))?
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
        let reader = self.0.reader.clone();
        let to = link.device.short();
        self.0.serving.spawn(async move {
            let served = tokio::select! {
                biased;
                () = stopping.cancelled() => {
                    let _ = send.reset(Close::Stopping.code());
                    return;
                }
                served = crate::replicate::serve::serve_blob_range(&home, reader.as_deref(), id, groups.clone(), &mut send) => served,
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
                greet(home, &self.0.engine, connection, peer, None).await?;
                let records = records::sync(home, &self.0.set, connection).await?;
                self.0.records_synced.send_replace(true);
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
                Ok((0, BlobRound { stored: 0, .. })) => {}
                Ok((
                    records,
                    BlobRound {
                        stored: blobs,
                        more,
                    },
                )) => {
                    // A large backlog is fetched round after round, without a pause.
                    if more && blobs > 0 {
                        wait = Duration::ZERO;
                    }
                    // Only blobs stored show that a paused replication resumed: records keep
                    // arriving while the blob store is full, and nothing arriving proves
                    // nothing (what was wanted may be coming over another link).
                    if blobs > 0 {
                        reported = None;
                    }
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
}
