//! This device's view of the mesh: its membership records, the trust set they imply, and the
//! changes a `full` device can make to it (founding, introducing, revoking).
//!
//! Membership records are stored in the index's record set, beside the photo records, and
//! replicate the same way. The trust set is recomputed from them
//! (`photomesh_protocol::membership::TrustSet::evaluate`); nothing else decides who is
//! trusted. The founder's device ID, which anchors the evaluation, is kept in the index's
//! `meta` table as `founder`.

pub mod pairing;
pub mod qr;
pub mod recover;
pub mod recovery;
pub mod shares;
pub mod trash;

use photomesh_protocol::identity::{DeviceId, DeviceIdError};
use photomesh_protocol::membership::{
    Introduce, MembershipError, MembershipRecord, Rename, Revoke, Role, Statement, TrustSet,
};
use photomesh_protocol::nquic;

use crate::home::{Home, HomeError};
use crate::index::IndexError;

/// Why a membership operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The index could not be read or written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A record could not be signed, or a stored one is invalid.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// A lifecycle record could not be signed.
    #[error(transparent)]
    Lifecycle(#[from] photomesh_protocol::lifecycle::LifecycleError),
    /// The stored founder ID is damaged.
    #[error("the mesh founder stored in the index is not a valid device ID: {0}")]
    Founder(DeviceIdError),
    /// This device may not do that.
    #[error("this device is a {0} device; only a full device can do that")]
    NotFull(&'static str),
    /// This device is not (or no longer) a member of its mesh.
    #[error("this device is not a member of its mesh (was it revoked?)")]
    NotMember,
    /// No member with that ID.
    #[error("no member of this mesh has the device ID {0}; `photomesh devices` lists them")]
    UnknownDevice(DeviceId),
    /// No member has the name.
    #[error("no member is called {0:?}; give its device ID (`photomesh devices` lists them)")]
    NoSuchName(String),
    /// More than one member has the name.
    #[error("more than one member is called {0:?}; give its device ID (`photomesh devices`)")]
    AmbiguousName(String),
    /// Revoking oneself.
    #[error("a device cannot revoke itself; revoke it from another full device")]
    RevokeSelf,
    /// The key files could not be written.
    #[error(transparent)]
    Home(Box<HomeError>),
}

impl From<HomeError> for MeshError {
    fn from(e: HomeError) -> Self {
        Self::Home(Box::new(e))
    }
}

const FOUNDER_KEY: &str = "founder";

/// Creates a new device in a new home at `path` ([`Home::create`]) and founds its mesh of
/// one, which it leaves if it joins another.
pub fn create_device(
    path: &std::path::Path,
    name: &str,
    recovered: Option<photomesh_protocol::keys::KeyRing>,
    now_ms: u64,
) -> Result<Home, MeshError> {
    let home = Home::create(path, name, recovered, now_ms)?;
    found(&home, name, now_ms)?;
    Ok(home)
}

/// Founds a new mesh with this device as its only member.
pub fn found(home: &Home, name: &str, now_ms: u64) -> Result<(), MeshError> {
    let record = MembershipRecord::sign(
        &home.device,
        Statement::Introduce(Introduce {
            signing_key: home.device.signing_public(),
            noise_key: home.device.noise_public(),
            role: Role::Full,
            name: name.to_owned(),
            created_at_ms: now_ms,
        }),
    )?;
    home.index.transaction(|ix| -> Result<(), MeshError> {
        ix.add_record(&record.record_id, &record.bytes, now_ms)?;
        ix.set_meta(FOUNDER_KEY, &home.device.device_id().to_string())?;
        Ok(())
    })?;
    recovery::create(home, now_ms)?;
    Ok(())
}

/// The founder of this device's mesh.
pub fn founder(home: &Home) -> Result<DeviceId, MeshError> {
    let text = home.index.meta(FOUNDER_KEY)?.unwrap_or_default();
    text.parse().map_err(MeshError::Founder)
}

/// Every valid membership record this device holds. Invalid ones (which can only come from
/// a damaged index) are skipped.
pub fn records(home: &Home) -> Result<Vec<MembershipRecord>, MeshError> {
    Ok(home
        .index
        .membership_records()?
        .iter()
        .filter_map(|bytes| MembershipRecord::decode(bytes).ok())
        .collect())
}

/// The current trust set.
pub fn trust_set(home: &Home) -> Result<TrustSet, MeshError> {
    Ok(TrustSet::evaluate(&founder(home)?, &records(home)?))
}

/// This device's role in its mesh, or `None` if it is not a member.
pub fn my_role(home: &Home) -> Result<Option<Role>, MeshError> {
    Ok(trust_set(home)?
        .get(&home.device.device_id())
        .map(|m| m.role))
}

fn require_full(home: &Home) -> Result<(), MeshError> {
    match my_role(home)? {
        Some(Role::Full) => Ok(()),
        Some(role) => Err(MeshError::NotFull(role.name())),
        None => Err(MeshError::NotMember),
    }
}

/// Signs and stores an introduce record for a new device.
pub fn introduce(
    home: &Home,
    signing_key: [u8; 32],
    noise_key: [u8; 32],
    role: Role,
    name: &str,
    now_ms: u64,
) -> Result<MembershipRecord, MeshError> {
    let record = sign_introduce(home, signing_key, noise_key, role, name, now_ms)?;
    home.index
        .add_record(&record.record_id, &record.bytes, now_ms)?;
    Ok(record)
}

/// Signs an introduce record for a new device without storing it: the inviter's side of
/// pairing stores it once the joiner has confirmed.
pub fn sign_introduce(
    home: &Home,
    signing_key: [u8; 32],
    noise_key: [u8; 32],
    role: Role,
    name: &str,
    now_ms: u64,
) -> Result<MembershipRecord, MeshError> {
    require_full(home)?;
    Ok(MembershipRecord::sign(
        &home.device,
        Statement::Introduce(Introduce {
            signing_key,
            noise_key,
            role,
            name: name.to_owned(),
            created_at_ms: now_ms,
        }),
    )?)
}

/// Signs and stores a revocation of `device` that keeps what it signed among `all`: its
/// membership records only. Its deletions stop counting (what it put in the trash comes
/// back, unless already purged): a device is revoked because it was lost or stolen, and a
/// thief's word should not stand.
fn add_revocation(
    home: &Home,
    all: &[MembershipRecord],
    device: &DeviceId,
    now_ms: u64,
) -> Result<(), MeshError> {
    let keep = all
        .iter()
        .filter(|r| r.signer == *device)
        .map(|r| r.record_id)
        .collect();
    let record = MembershipRecord::sign(
        &home.device,
        Statement::Revoke(Revoke {
            device: *device,
            keep,
            created_at_ms: now_ms,
        }),
    )?;
    home.index
        .add_record(&record.record_id, &record.bytes, now_ms)?;
    Ok(())
}

/// What [`revoke`] did.
#[derive(Debug)]
pub struct Revoked {
    /// The library key epoch that seals from now on.
    pub epoch: u32,
    /// Whether the recovery key was rotated too (the device had made it): the phrase must be
    /// exported again.
    pub recovery_rotated: bool,
}

/// Revokes a member: signs a revoke record that keeps the membership records the device
/// signed so far, rotates the library key so that what is added from now on is sealed
/// under an epoch the revoked device never had, and shares the new key with every remaining
/// full member and recovery identity. When the device made the recovery key (and so may hold
/// its seed), the recovery key is rotated too.
pub fn revoke(home: &mut Home, device: &DeviceId, now_ms: u64) -> Result<Revoked, MeshError> {
    require_full(home)?;
    if *device == home.device.device_id() {
        return Err(MeshError::RevokeSelf);
    }
    let all = records(home)?;
    let trust = TrustSet::evaluate(&founder(home)?, &all);
    if trust.get(device).is_none() {
        return Err(MeshError::UnknownDevice(*device));
    }
    add_revocation(home, &all, device, now_ms)?;
    let epoch = home.rotate_library_key()?;
    let recovery_rotated = recovery::held_by(&trust, device);
    if recovery_rotated {
        recovery::rotate(home, now_ms)?;
    }
    shares::fill(home, now_ms)?;
    Ok(Revoked {
        epoch,
        recovery_rotated,
    })
}

/// Renames a member: signs a rename record (`PAIRING.md`, step 5). A full device renames
/// any member; any device renames itself. Every member shows the new name once the record
/// reaches it.
pub fn rename(home: &Home, device: &DeviceId, name: &str, now_ms: u64) -> Result<(), MeshError> {
    let me = home.device.device_id();
    if *device != me {
        require_full(home)?;
    }
    if trust_set(home)?.get(device).is_none() {
        return Err(MeshError::UnknownDevice(*device));
    }
    let name = name.trim();
    let record = MembershipRecord::sign(
        &home.device,
        Statement::Rename(Rename {
            device: *device,
            name: name.to_owned(),
            created_at_ms: now_ms,
        }),
    )?;
    home.index
        .add_record(&record.record_id, &record.bytes, now_ms)?;
    if *device == me {
        home.index.set_meta("device_name", name)?;
    }
    Ok(())
}

/// The member `text` names: its device ID, or its name (exactly, and only one member's).
pub fn find_member(home: &Home, text: &str) -> Result<DeviceId, MeshError> {
    if let Ok(id) = text.parse::<DeviceId>() {
        return Ok(id);
    }
    let trust = trust_set(home)?;
    let named: Vec<DeviceId> = trust
        .members()
        .filter(|m| m.name == text)
        .map(|m| m.device)
        .collect();
    match named.as_slice() {
        [one] => Ok(*one),
        [] => Err(MeshError::NoSuchName(text.to_owned())),
        _ => Err(MeshError::AmbiguousName(text.to_owned())),
    }
}

/// One device as `photomesh devices` lists it.
#[derive(Debug, serde::Serialize)]
pub struct DeviceEntry {
    /// Its device ID.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// `full` or `vault`.
    pub role: &'static str,
    /// The device ID of the device that introduced it.
    pub introduced_by: String,
    /// The name of that device, when it is known.
    pub introduced_by_name: Option<String>,
    /// When it was introduced (ms since the epoch).
    pub introduced_at_ms: u64,
    /// When this device last connected to it (ms since the epoch); `None` if never.
    pub last_seen_ms: Option<u64>,
    /// Whether it is this device.
    pub this_device: bool,
    /// Whether it has been revoked.
    pub revoked: bool,
    /// Whether the running node is connected to it now; `None` when no node runs on this
    /// home (or for this device).
    pub online: Option<bool>,
    /// The running node's connection to it, if any.
    pub connection: Option<crate::net::control::LiveConnection>,
}

/// Every member, then every revoked device.
pub fn devices(home: &Home) -> Result<Vec<DeviceEntry>, MeshError> {
    let trust = trust_set(home)?;
    let me = home.device.device_id();
    let name_of = |id: &DeviceId| {
        trust
            .get(id)
            .or_else(|| trust.revoked().find(|m| m.device == *id))
            .map(|m| m.name.clone())
    };
    let mut out = Vec::new();
    for (m, revoked) in trust
        .members()
        .map(|m| (m, false))
        .chain(trust.revoked().map(|m| (m, true)))
    {
        out.push(DeviceEntry {
            device_id: m.device.to_string(),
            name: m.name.clone(),
            role: m.role.name(),
            introduced_by: m.introduced_by.to_string(),
            introduced_by_name: name_of(&m.introduced_by),
            introduced_at_ms: m.introduced_at_ms,
            last_seen_ms: home.index.seen(&m.device)?.map(|(t, _)| t),
            this_device: m.device == me,
            revoked,
            online: None,
            connection: None,
        });
    }
    Ok(out)
}

/// The trust set as the nQUIC layer consults it: the mesh's current members, read from the
/// index at each handshake so that a revocation takes effect at once.
pub struct MeshTrust {
    members: crate::lock::Mutex<TrustSet>,
}

impl MeshTrust {
    /// A trust set holding `trust`.
    pub fn new(trust: TrustSet) -> Self {
        Self {
            members: crate::lock::Mutex::new("the mesh's members", trust),
        }
    }

    /// Replaces the members (after membership records arrived).
    pub fn update(&self, trust: TrustSet) {
        *self.members.lock() = trust;
    }

    /// The device IDs of the current members (what `Discovery` matches adverts against).
    pub fn devices(&self) -> Vec<DeviceId> {
        self.members
            .lock()
            .devices()
            .map(|member| member.device)
            .collect()
    }
}

impl nquic::TrustSet for MeshTrust {
    fn is_trusted(&self, noise_key: &[u8; 32]) -> bool {
        self.members.lock().by_noise_key(noise_key).is_some()
    }
}

/// The recovery responder keys as the nQUIC layer consults them (`NQUIC.md` §3): they follow
/// the key shares this device holds.
pub struct ResponderKeys {
    keys: crate::lock::Mutex<Vec<[u8; 32]>>,
}

impl ResponderKeys {
    /// Holding `keys`.
    pub fn new(keys: Vec<[u8; 32]>) -> Self {
        Self {
            keys: crate::lock::Mutex::new("the recovery responder keys", keys),
        }
    }

    /// Replaces the keys (after shares arrived or a recovery key was rotated).
    pub fn update(&self, keys: Vec<[u8; 32]>) {
        *self.keys.lock() = keys;
    }
}

impl nquic::RecoveryKeys for ResponderKeys {
    fn responder_keys(&self) -> Vec<[u8; 32]> {
        self.keys.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_founds_a_mesh_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let home = create_device(dir.path(), "laptop", None, 1).unwrap();
        let trust = trust_set(&home).unwrap();
        let me = trust.get(&home.device.device_id()).unwrap();
        assert_eq!(me.role, Role::Full);
        assert_eq!(me.name, "laptop");
        assert_eq!(founder(&home).unwrap(), home.device.device_id());
    }

    #[test]
    fn revoking_keeps_what_the_device_signed_and_rotates_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut home = create_device(&dir.path().join("a"), "a", None, 1).unwrap();
        let b = create_device(&dir.path().join("b"), "b", None, 1).unwrap();
        introduce(
            &home,
            b.device.signing_public(),
            b.device.noise_public(),
            Role::Full,
            "b",
            2,
        )
        .unwrap();
        let b_id = b.device.device_id();
        assert!(trust_set(&home).unwrap().get(&b_id).is_some());
        assert_eq!(revoke(&mut home, &b_id, 3).unwrap().epoch, 2);
        let trust = trust_set(&home).unwrap();
        assert!(trust.is_revoked(&b_id));
        assert!(!nquic::TrustSet::is_trusted(
            &MeshTrust::new(trust),
            &b.device.noise_public()
        ));
        assert!(matches!(
            revoke(&mut home, &b_id, 4),
            Err(MeshError::UnknownDevice(_))
        ));
        let me = home.device.device_id();
        assert!(matches!(
            revoke(&mut home, &me, 4),
            Err(MeshError::RevokeSelf)
        ));
    }
}
