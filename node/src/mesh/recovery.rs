//! The recovery key on a running mesh (`PAIRING.md`, "Recovery identity and recovery
//! phrase"): made at founding (or for a mesh founded before recovery identities), rotated
//! by `recovery-key rotate` or when the device that holds it is revoked.
//!
//! Recovering from the phrase on a new device is `super::recover`.

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::{Role, TrustSet};
use photomesh_protocol::recovery::{IDENTITY_NAME, RecoveryKey};

use super::{MeshError, founder, introduce, records, require_full, shares};
use crate::home::{Home, random32};

/// The `meta` key that notes when the current phrase was last printed.
pub const EXPORTED_META: &str = "recovery_exported_at_ms";

/// The current recovery identities of a trust set.
pub fn identities(trust: &TrustSet) -> Vec<DeviceId> {
    trust
        .members()
        .filter(|m| m.role == Role::Recovery)
        .map(|m| m.device)
        .collect()
}

/// Makes a new recovery key for this device's mesh: a fresh seed kept in `recovery.key`, the
/// recovery identity introduced, and the shares it and the members need. The phrase must be
/// exported again.
pub fn create(home: &Home, now_ms: u64) -> Result<RecoveryKey, MeshError> {
    require_full(home)?;
    let key = RecoveryKey::new(random32()?, founder(home)?);
    // The seed first: a crash before the introduction leaves a seed no member knows, and
    // the next start makes another.
    home.save_recovery_key(&key)?;
    let identity = key.identity();
    introduce(
        home,
        identity.signing_public(),
        identity.noise_public(),
        Role::Recovery,
        IDENTITY_NAME,
        now_ms,
    )?;
    home.index.delete_meta(EXPORTED_META)?;
    shares::fill(home, now_ms)?;
    Ok(key)
}

/// Gives a mesh with no current recovery identity (founded before them, or whose recovery
/// identity was revoked without a new one) a recovery key, on a `full` device. Returns
/// whether it made one.
pub fn ensure(home: &Home, now_ms: u64) -> Result<bool, MeshError> {
    let trust = super::trust_set(home)?;
    let me = trust.get(&home.device.device_id()).map(|m| m.role);
    if me != Some(Role::Full) || !identities(&trust).is_empty() {
        return Ok(false);
    }
    create(home, now_ms)?;
    Ok(true)
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotated {
    /// The new key.
    pub key: RecoveryKey,
    /// The recovery identities revoked.
    pub revoked: Vec<DeviceId>,
    /// Devices a revoked recovery identity introduced: recoveries made with an old phrase.
    pub introduced_by_old: Vec<(DeviceId, String)>,
}

/// `recovery-key rotate`: a new recovery key, and every other recovery identity revoked
/// (keeping what it signed, as for any revoked device). The caller rotates the library key.
pub fn rotate(home: &Home, now_ms: u64) -> Result<Rotated, MeshError> {
    require_full(home)?;
    let old = identities(&super::trust_set(home)?);
    let key = create(home, now_ms)?;
    let all = records(home)?;
    for device in &old {
        super::add_revocation(home, &all, device, now_ms)?;
    }
    let trust = super::trust_set(home)?;
    let introduced_by_old = trust
        .devices()
        .filter(|m| old.contains(&m.introduced_by))
        .map(|m| (m.device, m.name.clone()))
        .collect();
    Ok(Rotated {
        key,
        revoked: old,
        introduced_by_old,
    })
}

/// Whether `device` introduced a current recovery identity: it made that seed and may hold
/// it, so revoking it must rotate the recovery key.
pub fn held_by(trust: &TrustSet, device: &DeviceId) -> bool {
    trust
        .members()
        .any(|m| m.role == Role::Recovery && m.introduced_by == *device)
}

/// The name of the device that made the current recovery key (it introduced the recovery
/// identity), if known.
pub fn made_by(trust: &TrustSet) -> Option<String> {
    trust
        .members()
        .filter(|m| m.role == Role::Recovery)
        .max_by_key(|m| m.introduced_at_ms)
        .and_then(|m| {
            trust
                .get(&m.introduced_by)
                .or_else(|| trust.revoked().find(|r| r.device == m.introduced_by))
        })
        .map(|m| m.name.clone())
}

/// The recovery key as `status` shows it (on a full device).
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// Whether the mesh has a current recovery identity.
    pub in_place: bool,
    /// Whether this device holds the recovery key (and so can print the phrase).
    pub held_here: bool,
    /// When this device last printed the phrase (ms since the epoch).
    pub exported_at_ms: Option<u64>,
    /// The device that made the current recovery key.
    pub made_by: Option<String>,
}

/// The recovery key's state in `trust` (the home's trust set), on a full device; `None` on a
/// vault, or when it cannot be read.
pub fn summary(home: &Home, trust: &TrustSet) -> Option<Summary> {
    home.keys.current()?;
    let held = home.recovery_key().ok()?;
    let identities = identities(trust);
    Some(Summary {
        in_place: !identities.is_empty(),
        held_here: held.is_some_and(|k| identities.contains(&k.identity().device_id())),
        exported_at_ms: home
            .index
            .meta(EXPORTED_META)
            .ok()
            .flatten()
            .and_then(|t| t.parse().ok()),
        made_by: made_by(trust),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{create_device, trust_set};
    use photomesh_protocol::membership::{Introduce, MembershipRecord, Statement};

    #[test]
    fn a_mesh_founded_before_recovery_keys_gets_one_from_its_first_full_device() {
        let dir = tempfile::tempdir().unwrap();
        // A mesh of one as `init` made it before recovery identities: the founding record only.
        let home = Home::create(dir.path(), "laptop", None, 1).unwrap();
        let founding = MembershipRecord::sign(
            &home.device,
            Statement::Introduce(Introduce {
                signing_key: home.device.signing_public(),
                noise_key: home.device.noise_public(),
                role: Role::Full,
                name: "laptop".into(),
                created_at_ms: 1,
            }),
        )
        .unwrap();
        home.index
            .add_record(&founding.record_id, &founding.bytes, 1)
            .unwrap();
        home.index
            .set_meta("founder", &home.device.device_id().to_string())
            .unwrap();
        assert!(identities(&trust_set(&home).unwrap()).is_empty());
        assert!(summary(&home, &trust_set(&home).unwrap()).is_some_and(|s| !s.in_place));

        assert!(ensure(&home, 2).unwrap(), "it makes one");
        let key = home.recovery_key().unwrap().expect("recovery.key written");
        assert_eq!(
            identities(&trust_set(&home).unwrap()),
            vec![key.identity().device_id()]
        );
        let s = summary(&home, &trust_set(&home).unwrap()).unwrap();
        assert!(
            s.in_place && s.held_here && s.exported_at_ms.is_none(),
            "{s:?}"
        );
        assert!(!ensure(&home, 3).unwrap(), "and only once");
        // The library key is shared with the new recovery identity.
        let all = records(&home).unwrap();
        let opened = shares::open(
            &trust_set(&home).unwrap(),
            &all,
            key.identity().device_id(),
            &key.identity().noise_secret(),
        );
        assert_eq!(opened.keys, vec![home.keys.current().unwrap().clone()]);
    }

    #[test]
    fn rotating_revokes_the_old_identity_and_names_what_it_introduced() {
        let dir = tempfile::tempdir().unwrap();
        let home = create_device(dir.path(), "laptop", None, 1).unwrap();
        let old = home.recovery_key().unwrap().unwrap();
        // A device recovered with the old phrase (introduced by the recovery identity).
        let stranger = photomesh_protocol::identity::DeviceKeys::from_secrets([4; 32], [5; 32]);
        let intro = MembershipRecord::sign(
            &old.identity(),
            Statement::Introduce(Introduce {
                signing_key: stranger.signing_public(),
                noise_key: stranger.noise_public(),
                role: Role::Full,
                name: "someone's laptop".into(),
                created_at_ms: 2,
            }),
        )
        .unwrap();
        home.index
            .add_record(&intro.record_id, &intro.bytes, 2)
            .unwrap();
        let rotated = rotate(&home, 3).unwrap();
        assert_eq!(rotated.revoked, vec![old.identity().device_id()]);
        assert_eq!(
            rotated.introduced_by_old,
            vec![(stranger.device_id(), "someone's laptop".to_owned())]
        );
        let trust = trust_set(&home).unwrap();
        assert!(trust.is_revoked(&old.identity().device_id()));
        assert!(
            trust.get(&stranger.device_id()).is_some(),
            "kept until revoked by hand"
        );
        assert_eq!(
            home.recovery_key().unwrap().unwrap().identity().device_id(),
            rotated.key.identity().device_id()
        );
    }

    #[test]
    fn a_recovery_key_of_another_mesh_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let home = create_device(dir.path(), "laptop", None, 1).unwrap();
        let first = home.recovery_key().unwrap().unwrap();
        let other = RecoveryKey::new([9; 32], DeviceId::from_bytes([1; 20]));
        home.save_recovery_key(&other).unwrap();
        let kept = std::fs::read_to_string(dir.path().join("recovery.key.replaced")).unwrap();
        assert!(kept.contains(&hex::encode(first.seed())));
        assert_eq!(home.recovery_key().unwrap(), Some(other));
    }
}
