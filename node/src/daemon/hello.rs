//! The member hello: what each side tells the other at the start of every sync round, and
//! `photomesh ping`, which is a hello alone.

use std::net::SocketAddr;

use std::time::Instant;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::MembershipRecord;
use photomesh_protocol::messages::{Hello, Request};
use photomesh_protocol::nquic::NoiseKey;

use super::DaemonError;
use crate::clock::now_ms;
use crate::home::Home;
use crate::mesh;
use crate::net::close::Close;
use crate::net::dial::{self, DialFailure};
use crate::net::frame::{self, NetError};
use crate::net::transport;
use crate::replicate::held::BlobEngine;

/// This device's hello; the running node tells its storage (`engine`), a ping does not.
pub(super) fn hello(home: &Home, engine: Option<&BlobEngine>) -> Result<Hello, DaemonError> {
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
        verified_since: engine.and_then(|e| e.verified_since(home)),
        storage: engine.and_then(|e| e.storage(home)),
    })
}

/// Takes in a peer's hello: stores the valid membership records it carries, and notes when
/// and where the peer was seen. A hello whose device does not match the connection's Noise
/// key is refused.
pub(super) fn absorb_hello(
    home: &Home,
    hello: &Hello,
    peer: &NoiseKey,
    remote: Option<SocketAddr>,
) -> Result<(), DaemonError> {
    let now = now_ms();
    let before = mesh::trust_set(home)?;
    // What a device says of itself is noted; the recovery identity is no device.
    let claimed = before
        .by_noise_key(&peer.0)
        .filter(|m| m.role.is_device())
        .map(|m| m.device);
    let mut new_membership = false;
    home.index.transaction(|ix| -> Result<(), DaemonError> {
        for bytes in &hello.membership {
            // Anything malformed or badly signed is dropped; the trust evaluation decides
            // what the valid ones mean.
            if let Ok(record) = MembershipRecord::decode(bytes) {
                new_membership |= ix.add_record(&record.record_id, &record.bytes, now)?;
            }
        }
        if claimed == Some(hello.device) {
            let address = remote.map(|a| a.to_string());
            ix.set_seen(&hello.device, now, address.as_deref(), Some(hello.has_aes))?;
            if hello.storage.is_some() || hello.verified_since.is_some() {
                let report = crate::index::PeerReport {
                    verified_since_ms: hello.verified_since,
                    storage: hello.storage,
                    at_ms: now,
                };
                ix.set_peer_report(&hello.device, &report)?;
            }
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
    })?;
    // Who counts changed: so may what the lifecycle records say.
    if new_membership && let Err(e) = crate::mesh::trash::refresh(home) {
        tracing::warn!("bringing the trash up to date: {e}");
    }
    Ok(())
}

/// Exchanges hellos on a connection (before every sync round, so membership and addresses
/// keep flowing; and to check that a kept connection still answers).
pub(super) async fn greet(
    home: &tokio::sync::Mutex<Home>,
    engine: &BlobEngine,
    connection: &quinn::Connection,
    peer: &NoiseKey,
    addr: Option<SocketAddr>,
) -> Result<(), DaemonError> {
    let ours = hello(&*home.lock().await, Some(engine))?;
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
        addr.or(Some(transport::remote(connection))),
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
        .devices()
        .filter(|m| m.device != me && device.is_none_or(|d| d == m.device))
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Err(DaemonError::NoAnswer(match device {
            Some(d) => format!("{d} is not a member of this device's mesh"),
            None => "this device knows no other member of its mesh".into(),
        }));
    }
    let endpoint = dial::client_endpoint(&addr)?;
    let mut failures = Vec::new();
    for member in candidates {
        let peer_aes = home.index.has_aes(&member.device)?;
        let config = dial::member_config(
            home.device.noise_secret(),
            NoiseKey(member.noise_key),
            peer_aes,
        );
        let start = Instant::now();
        let connection = match dial::connect(&endpoint, config, addr, dial::CONNECT_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => {
                // Nobody answers there: another member's key will not change that.
                let silent = matches!(e.failure, DialFailure::NoAnswer(_));
                failures.push(e);
                if silent {
                    break;
                }
                continue;
            }
        };
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
        frame::write_frame(&mut send, &Request::Hello(hello(home, None)?)).await?;
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
    failures.sort_by_key(|e| !matches!(e.failure, DialFailure::Untrusted));
    let mut said: Vec<String> = failures.iter().map(|e| e.describe(false)).collect();
    said.dedup();
    Err(DaemonError::NoAnswer(said.join("; ")))
}
