//! Key shares (`PAIRING.md`, "Key shares"): a full device writes the shares members lack;
//! every device opens the ones sealed to it.
//!
//! Shares are membership records, so they reach every member through any other, vaults
//! included. Writing is idempotent: [`fill`] writes only what no counting share already
//! carries, so it runs wherever membership or keys change (founding, pairing, revoking,
//! rotating the recovery key, a node's start) without piling up records.

use std::collections::BTreeSet;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::keys::LibraryKey;
use photomesh_protocol::membership::{MembershipRecord, Role, Statement, TrustSet};
use photomesh_protocol::share::{Item, Share};

use super::{MeshError, founder, records};
use crate::home::{Home, random32};

/// What the shares sealed to this device hold.
#[derive(Debug, Default)]
pub struct Opened {
    /// Library key epochs.
    pub keys: Vec<LibraryKey>,
    /// Responder secrets, by recovery identity.
    pub responders: Vec<(DeviceId, [u8; 32])>,
}

/// Opens every counting share sealed to `device`'s noise secret. Shares that do not open
/// (changed on the way, or sealed to an older key) are skipped with a warning.
pub fn open(
    trust: &TrustSet,
    records: &[MembershipRecord],
    device: DeviceId,
    noise_secret: &[u8; 32],
) -> Opened {
    let mut opened = Opened::default();
    for r in records {
        let Statement::Share(share) = &r.statement else {
            continue;
        };
        if share.to != device || !trust.counts(&r.signer, &r.record_id) {
            continue;
        }
        match (share.open(noise_secret), share.item) {
            (Ok(secret), Item::LibraryKey(epoch)) => {
                opened.keys.push(LibraryKey::new(epoch, secret));
            }
            (Ok(secret), Item::Responder(recovery)) => {
                opened.responders.push((recovery, secret));
            }
            (Err(e), _) => tracing::warn!(signer = %r.signer.short(), "a key share: {e}"),
        }
    }
    opened
}

/// Takes the library keys shared with this device into its key ring (saved when it grew).
/// A key for an epoch the ring holds with another secret is refused and reported, never
/// overwritten. Returns the epochs added.
pub fn absorb(home: &mut Home) -> Result<Vec<u32>, MeshError> {
    let all = records(home)?;
    let trust = TrustSet::evaluate(&founder(home)?, &all);
    let opened = open(
        &trust,
        &all,
        home.device.device_id(),
        &home.device.noise_secret(),
    );
    let mut added = Vec::new();
    for key in opened.keys {
        if home.keys.get(key.epoch()).is_some_and(|held| *held == key) {
            continue;
        }
        let epoch = key.epoch();
        match home.keys.insert(key) {
            Ok(()) => added.push(epoch),
            Err(e) => tracing::warn!(
                "a shared library key was refused: {e} (two devices rotated the key at once; \
                 photos sealed under the other key cannot be read here)"
            ),
        }
    }
    if !added.is_empty() {
        home.save_keys()?;
        tracing::info!(?added, "library key epochs received by key share");
    }
    Ok(added)
}

/// The responder secrets this device holds for the current recovery identities, newest
/// identity first: from its own `recovery.key`, or from shares sealed to it.
pub fn responder_keys(home: &Home) -> Result<Vec<[u8; 32]>, MeshError> {
    let all = records(home)?;
    let trust = TrustSet::evaluate(&founder(home)?, &all);
    let own = home.recovery_key()?;
    let opened = open(
        &trust,
        &all,
        home.device.device_id(),
        &home.device.noise_secret(),
    );
    Ok(responders(&trust, own.as_ref(), &opened)
        .into_iter()
        .map(|(_, secret)| secret)
        .take(photomesh_protocol::nquic::MAX_RECOVERY_KEYS)
        .collect())
}

/// The responder secret of each current recovery identity this device holds, newest first.
fn responders(
    trust: &TrustSet,
    own: Option<&photomesh_protocol::recovery::RecoveryKey>,
    opened: &Opened,
) -> Vec<(DeviceId, [u8; 32])> {
    let mut identities: Vec<_> = trust
        .members()
        .filter(|m| m.role == Role::Recovery)
        .collect();
    identities.sort_by_key(|m| std::cmp::Reverse((m.introduced_at_ms, m.device)));
    identities
        .into_iter()
        .filter_map(|m| {
            let secret = own
                .filter(|k| k.identity().device_id() == m.device)
                .map(|k| k.responder_secret())
                .or_else(|| {
                    opened
                        .responders
                        .iter()
                        .find(|(r, _)| *r == m.device)
                        .map(|(_, s)| *s)
                })?;
            Some((m.device, secret))
        })
        .collect()
}

/// Writes every share a current member lacks and this device can give: each library key
/// epoch it holds to every other `full` member and every recovery identity; each recovery
/// identity's responder secret it holds to every member that is a device. Only a `full`
/// device writes shares. Returns how many it wrote.
pub fn fill(home: &Home, now_ms: u64) -> Result<usize, MeshError> {
    let all = records(home)?;
    let trust = TrustSet::evaluate(&founder(home)?, &all);
    let me = home.device.device_id();
    if trust.get(&me).map(|m| m.role) != Some(Role::Full) {
        return Ok(0);
    }
    let carried: BTreeSet<(DeviceId, Item)> = all
        .iter()
        .filter_map(|r| match &r.statement {
            Statement::Share(s) if trust.counts(&r.signer, &r.record_id) => Some((s.to, s.item)),
            _ => None,
        })
        .collect();
    let own = home.recovery_key()?;
    let opened = open(&trust, &all, me, &home.device.noise_secret());
    let responders = responders(&trust, own.as_ref(), &opened);
    let mut wanted: Vec<(DeviceId, [u8; 32], Item, [u8; 32])> = Vec::new();
    for m in trust.members() {
        if matches!(m.role, Role::Full | Role::Recovery) && m.device != me {
            for key in home.keys.iter() {
                wanted.push((
                    m.device,
                    m.noise_key,
                    Item::LibraryKey(key.epoch()),
                    *key.secret(),
                ));
            }
        }
        if m.role.is_device() {
            for (recovery, secret) in &responders {
                wanted.push((m.device, m.noise_key, Item::Responder(*recovery), *secret));
            }
        }
    }
    let mut written = 0;
    home.index.transaction(|ix| -> Result<(), MeshError> {
        for (to, noise_key, item, secret) in wanted {
            if carried.contains(&(to, item)) {
                continue;
            }
            let share = match Share::seal(to, &noise_key, item, &secret, random32()?, now_ms) {
                Ok(share) => share,
                // Only a member introduced with an unusable noise key gets here.
                Err(e) => {
                    tracing::warn!(to = %to.short(), "no key share written: {e}");
                    continue;
                }
            };
            let record = MembershipRecord::sign(&home.device, Statement::Share(share))?;
            ix.add_record(&record.record_id, &record.bytes, now_ms)?;
            written += 1;
        }
        Ok(())
    })?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{create_device, introduce, recovery, revoke, trust_set};

    /// What a hello does: every membership record of `from` is stored in `to`.
    fn sync(from: &Home, to: &Home) {
        for r in records(from).unwrap() {
            to.index.add_record(&r.record_id, &r.bytes, 1).unwrap();
        }
    }

    fn join(founder: &Home, path: &std::path::Path, name: &str, role: Role) -> Home {
        let mut home = create_device(path, name, None, 1).unwrap();
        introduce(
            founder,
            home.device.signing_public(),
            home.device.noise_public(),
            role,
            name,
            2,
        )
        .unwrap();
        fill(founder, 2).unwrap();
        // What joining does: the mesh's records replace its own mesh of one.
        for r in records(&home).unwrap() {
            home.index.remove_membership_record(&r.record_id).unwrap();
        }
        home.index
            .set_meta("founder", &founder.device.device_id().to_string())
            .unwrap();
        home.forget_recovery_key().unwrap();
        home.keys = if role == Role::Full {
            founder.keys.clone()
        } else {
            Default::default()
        };
        home.save_keys().unwrap();
        sync(founder, &home);
        home
    }

    #[test]
    fn a_rotated_key_reaches_the_other_full_devices_and_never_the_revoked_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut laptop = create_device(&dir.path().join("laptop"), "laptop", None, 1).unwrap();
        let mut nas = join(&laptop, &dir.path().join("nas"), "nas", Role::Full);
        let vault = join(&laptop, &dir.path().join("vault"), "vault", Role::Vault);
        let mut phone = join(&laptop, &dir.path().join("phone"), "phone", Role::Full);
        let phone_id = phone.device.device_id();
        let revoked = revoke(&mut laptop, &phone_id, 3).unwrap();
        assert_eq!(revoked.epoch, 2);
        assert!(
            !revoked.recovery_rotated,
            "the phone did not make the recovery key"
        );
        // The NAS hears of it through the vault, which cannot open what it relays.
        sync(&laptop, &vault);
        let mut vault = vault;
        assert_eq!(absorb(&mut vault).unwrap(), Vec::<u32>::new());
        assert!(vault.keys.is_empty(), "a vault opens no library key share");
        sync(&vault, &nas);
        assert_eq!(absorb(&mut nas).unwrap(), vec![2]);
        assert_eq!(nas.keys.get(2), laptop.keys.get(2));
        assert_eq!(
            Home::open(&nas.path).unwrap().keys.get(2),
            laptop.keys.get(2),
            "saved to library.keys"
        );
        sync(&vault, &phone);
        assert_eq!(absorb(&mut phone).unwrap(), Vec::<u32>::new());
        assert!(
            phone.keys.get(2).is_none(),
            "the revoked phone never gets epoch 2"
        );
        // The NAS shares both epochs with the laptop, which has them but no share of them;
        // after that, filling writes nothing anywhere: every share is carried.
        assert_eq!(fill(&nas, 4).unwrap(), 2);
        assert_eq!(fill(&nas, 4).unwrap(), 0);
        sync(&nas, &laptop);
        assert_eq!(fill(&laptop, 4).unwrap(), 0);
        // Every device holds the recovery responder key; the vault by share.
        let expected = laptop.recovery_key().unwrap().unwrap().responder_secret();
        for home in [&laptop, &nas, &vault] {
            assert_eq!(
                responder_keys(home).unwrap(),
                vec![expected],
                "{}",
                home.path.display()
            );
        }
    }

    #[test]
    fn revoking_the_device_that_made_the_recovery_key_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let laptop = create_device(&dir.path().join("laptop"), "laptop", None, 1).unwrap();
        let mut nas = join(&laptop, &dir.path().join("nas"), "nas", Role::Full);
        let old = recovery::identities(&trust_set(&laptop).unwrap());
        assert_eq!(old.len(), 1);
        let laptop_id = laptop.device.device_id();
        let revoked = revoke(&mut nas, &laptop_id, 5).unwrap();
        assert!(revoked.recovery_rotated);
        let trust = trust_set(&nas).unwrap();
        assert!(
            trust.is_revoked(&old[0]),
            "the old recovery identity is revoked"
        );
        let new = recovery::identities(&trust);
        assert_eq!(new.len(), 1);
        let key = nas
            .recovery_key()
            .unwrap()
            .expect("the NAS holds the new seed");
        assert_eq!(key.identity().device_id(), new[0]);
        assert_eq!(responder_keys(&nas).unwrap(), vec![key.responder_secret()]);
        // The new recovery identity holds every epoch, by share.
        let opened = open(
            &trust,
            &records(&nas).unwrap(),
            new[0],
            &key.identity().noise_secret(),
        );
        let mut epochs: Vec<u32> = opened.keys.iter().map(LibraryKey::epoch).collect();
        epochs.sort_unstable();
        assert_eq!(epochs, vec![1, 2]);
        assert_eq!(
            recovery::made_by(&trust_set(&nas).unwrap()).as_deref(),
            Some("nas")
        );
    }
}
