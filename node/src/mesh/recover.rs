//! `photomesh init --recover PHRASE --from HOST:PORT`: a new device rejoins the mesh through
//! its recovery identity, with nothing but the phrase and one surviving member's address
//! (`PAIRING.md`, "Recovery identity and recovery phrase").
//!
//! The device connects as the recovery identity to the mesh's recovery responder key, has
//! the recovery identity introduce it as a `full` device, checks what the member answers
//! against the founder in the phrase, and opens the library keys shared with the recovery
//! identity. Its home is written only once all of that checked out: a refused recovery
//! leaves nothing behind.

use std::net::SocketAddr;
use std::path::Path;

use photomesh_protocol::identity::{DeviceId, DeviceKeys};
use photomesh_protocol::keys::KeyRing;
use photomesh_protocol::membership::{Introduce, MembershipRecord, Role, Statement, TrustSet};
use photomesh_protocol::messages::{Hello, Request};
use photomesh_protocol::nquic::{NoiseKey, Suite};
use photomesh_protocol::recovery::{IDENTITY_NAME, RecoveryKey};

use super::{MeshError, shares};
use crate::home::{Home, HomeError, random32};
use crate::net::close::Close;
use crate::net::dial::{self, DialError};
use crate::net::frame::{self, NetError};
use crate::net::transport;

/// Why a recovery did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The home could not be made.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// A record could not be signed or stored.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The member could not be reached, or refused the recovery identity.
    #[error("{}", recovery_refusal(.0))]
    Dial(DialError),
    /// The conversation broke off.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The member's records revoke this recovery identity.
    #[error(
        "this recovery phrase was replaced (`recovery-key rotate`, or the device that made it \
         was revoked): use the newest phrase"
    )]
    Replaced,
    /// The member's records do not make this recovery identity a member of the mesh the
    /// phrase names.
    #[error(
        "the device at {0} does not know this recovery phrase's mesh (founded by {1}): is it a \
         device of that mesh, and is the phrase the newest one?"
    )]
    OtherMesh(SocketAddr, DeviceId),
    /// No library key is shared with the recovery identity.
    #[error(
        "the device at {0} holds no library key shared with this recovery key: no full device \
         has run since the recovery key was made, so nothing can be read with it"
    )]
    NoKeys(SocketAddr),
}

fn recovery_refusal(e: &DialError) -> String {
    match e.failure {
        dial::DialFailure::WrongKey => format!(
            "the device at {} does not answer to this recovery phrase: the phrase is of another \
             mesh, or was replaced by a newer one (`recovery-key rotate`), or that device is not \
             a member of the phrase's mesh",
            e.addr
        ),
        dial::DialFailure::Untrusted => format!(
            "the device at {} refused this recovery phrase: it was replaced (`recovery-key \
             rotate`, or the device that made it was revoked); use the newest phrase",
            e.addr
        ),
        _ => e.to_string(),
    }
}

/// What a recovery brought back.
pub struct Recovered {
    /// The new device's home.
    pub home: Home,
    /// The name of the member that answered.
    pub answered_by: String,
    /// The mesh's devices, by name.
    pub devices: Vec<String>,
    /// The library key epochs recovered.
    pub epochs: Vec<u32>,
}

/// Recovers the mesh of `key` into a new home at `path`, through the member at `addr`.
pub async fn recover(
    path: &Path,
    name: &str,
    key: &RecoveryKey,
    addr: SocketAddr,
    now_ms: u64,
) -> Result<Recovered, RecoverError> {
    Home::check_free(path)?;
    let identity = key.identity();
    let device = DeviceKeys::from_secrets(random32()?, random32()?);
    let introduction = MembershipRecord::sign(
        &identity,
        Statement::Introduce(Introduce {
            signing_key: device.signing_public(),
            noise_key: device.noise_public(),
            role: Role::Full,
            name: name.to_owned(),
            created_at_ms: now_ms,
        }),
    )
    .map_err(MeshError::from)?;
    let theirs = ask(&identity, key, addr, &introduction).await?;

    let mut records: Vec<MembershipRecord> = theirs
        .membership
        .iter()
        .filter_map(|bytes| MembershipRecord::decode(bytes).ok())
        .collect();
    records.push(introduction);
    let trust = TrustSet::evaluate(&key.founder(), &records);
    let recovery_id = identity.device_id();
    if trust.is_revoked(&recovery_id) {
        return Err(RecoverError::Replaced);
    }
    let answered = trust.get(&theirs.device).filter(|m| m.role.is_device());
    if trust.get(&recovery_id).map(|m| m.role) != Some(Role::Recovery)
        || trust.get(&device.device_id()).is_none()
        || answered.is_none()
    {
        return Err(RecoverError::OtherMesh(addr, key.founder()));
    }
    let opened = shares::open(&trust, &records, recovery_id, &identity.noise_secret());
    let mut ring = KeyRing::default();
    for library_key in opened.keys {
        let epoch = library_key.epoch();
        if let Err(e) = ring.insert(library_key) {
            tracing::warn!(epoch, "a shared library key was refused: {e}");
        }
    }
    if ring.is_empty() {
        return Err(RecoverError::NoKeys(addr));
    }
    let epochs = ring.iter().map(|k| k.epoch()).collect();
    let home = Home::create_with(path, name, device, Some(ring), now_ms)?;
    home.index.transaction(|ix| -> Result<(), MeshError> {
        for r in &records {
            ix.add_record(&r.record_id, &r.bytes, now_ms)?;
        }
        ix.set_meta(super::FOUNDER_KEY, &key.founder().to_string())?;
        ix.add_peer(&addr.to_string(), now_ms)?;
        Ok(())
    })?;
    if let Err(e) = shares::fill(&home, now_ms) {
        tracing::warn!("writing key shares: {e}");
    }
    Ok(Recovered {
        home,
        answered_by: theirs.name,
        devices: trust.devices().map(|m| m.name.clone()).collect(),
        epochs,
    })
}

/// One hello each way, as the recovery identity: ours carries the new device's
/// introduction, theirs every membership record the member holds.
async fn ask(
    identity: &DeviceKeys,
    key: &RecoveryKey,
    addr: SocketAddr,
    introduction: &MembershipRecord,
) -> Result<Hello, RecoverError> {
    let endpoint = dial::client_endpoint(&addr)?;
    let config = transport::recovery_client_config(
        identity.noise_secret(),
        NoiseKey::from_private(&key.responder_secret()),
        Suite::choose(transport::has_aes_hardware(), None),
    );
    let connection = dial::connect(&endpoint, config, addr, dial::CONNECT_TIMEOUT)
        .await
        .map_err(RecoverError::Dial)?;
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(frame::describe_lost(&e)))?;
    let ours = Hello {
        device: identity.device_id(),
        name: IDENTITY_NAME.to_owned(),
        has_aes: transport::has_aes_hardware(),
        membership: vec![introduction.bytes.clone()],
        addresses: Vec::new(),
        verified_since: None,
        storage: None,
    };
    frame::write_frame(&mut send, &Request::Hello(ours)).await?;
    let _ = send.finish();
    let theirs: Hello = frame::read_frame(&mut recv).await?;
    Close::Done.close(&connection);
    endpoint.wait_idle().await;
    Ok(theirs)
}
