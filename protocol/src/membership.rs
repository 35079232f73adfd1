//! Membership: who belongs to the mesh, as a pure function of a set of signed records.
//!
//! Two kinds of record, each signed with Ed25519 by a `full` device:
//! - *introduce* (device, signing key, noise key, role, name): the signer vouches for a new
//!   device. The mesh is founded by its first device's self-signed introduce record.
//! - *revoke* (device, keep): the signer expels a device. `keep` lists the records (membership
//!   and lifecycle) signed by the revoked device that stay valid — those the revoker knew when
//!   it revoked. Anything else the revoked device signed, before or after, does not count: a
//!   stolen phone cannot vouch for a new device, revoke anyone or trash photos once it is
//!   revoked.
//!
//! Membership records are signed but not sealed: `vault` devices hold no library key and must
//! enforce membership too.
//!
//! [`TrustSet::evaluate`] turns any set of these records into the current members. It is a
//! function of the *set*: the order records arrived in never matters (property-tested). When
//! two devices revoke each other concurrently — neither knew of the other's revocation — the
//! revocation signed by the more senior device (fewer introductions from the founder, then the
//! smaller device ID) is applied first, and the other then no longer counts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::identity::{DeviceId, DeviceKeys};
use crate::record::RecordId;
use crate::signed::{Envelope, Refused};

/// The four bytes every membership record starts with.
pub const MAGIC: [u8; 4] = *b"pmmr";
/// The membership record format version.
pub const FORMAT_VERSION: u8 = 1;
/// Domain separation for membership signatures.
const SIGNING_CONTEXT: &[u8] = b"photomesh 2026-11-22 membership record v1\0";
/// The largest membership record accepted.
pub const MAX_LEN: usize = 64 * 1024;
/// The envelope of every membership record.
const ENVELOPE: Envelope = Envelope {
    magic: MAGIC,
    version: FORMAT_VERSION,
    context: SIGNING_CONTEXT,
    max_len: MAX_LEN,
};
/// The longest device name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// What a device may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Holds the library key: reads, adds and restores photos, pairs and revokes devices.
    Full,
    /// Holds only ciphertext: stores and serves, reads nothing.
    Vault,
    /// The mesh's recovery identity, whose keys derive from the recovery phrase: introduces
    /// a device that recovers the mesh; never dialed, never holds copies (`PAIRING.md`).
    Recovery,
}

impl Role {
    /// `full` or `vault`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Vault => "vault",
            Self::Recovery => "recovery",
        }
    }

    /// Whether membership records signed by a device of this role can count.
    pub fn may_introduce(self) -> bool {
        matches!(self, Self::Full | Self::Recovery)
    }

    /// Whether it is a device that stores and serves photos (not the recovery identity).
    pub fn is_device(self) -> bool {
        matches!(self, Self::Full | Self::Vault)
    }
}

/// An introduction of a device into the mesh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introduce {
    /// The Ed25519 public key of the device introduced (its device ID derives from it).
    pub signing_key: [u8; 32],
    /// Its X25519 static key for Noise.
    pub noise_key: [u8; 32],
    /// What it may do.
    pub role: Role,
    /// Its human-readable name.
    pub name: String,
    /// When the introduction was signed, in ms since the Unix epoch (informational).
    pub created_at_ms: u64,
}

/// A revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    /// The device expelled.
    pub device: DeviceId,
    /// Records (membership and lifecycle) signed by the expelled device that stay valid.
    pub keep: Vec<RecordId>,
    /// When the revocation was signed, in ms since the Unix epoch (informational).
    pub created_at_ms: u64,
}

/// What a membership record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statement {
    /// A device joins.
    Introduce(Introduce),
    /// A device is expelled.
    Revoke(Revoke),
    /// A secret sealed to one member (`crate::share`).
    Share(crate::share::Share),
    /// A member's new name (`PAIRING.md`, step 5).
    Rename(Rename),
}

/// A device's new name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// The device renamed.
    pub device: DeviceId,
    /// Its new name.
    pub name: String,
    /// When the rename was signed, in ms since the Unix epoch: the newest rename wins.
    pub created_at_ms: u64,
}

/// A signed membership record, checked: its signature verified and its signer known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipRecord {
    /// The record's ID (BLAKE3 of its bytes).
    pub record_id: RecordId,
    /// The device that signed it.
    pub signer: DeviceId,
    /// The signer's Ed25519 public key.
    pub signer_key: [u8; 32],
    /// What it says.
    pub statement: Statement,
    /// The encoded bytes, as they replicate.
    pub bytes: Vec<u8>,
}

/// Why bytes are not a valid membership record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Too short, too long, or not starting with the magic bytes.
    #[error("not a photomesh membership record")]
    NotMembership,
    /// A version this code does not know.
    #[error("membership record version {0} is not supported")]
    Version(u8),
    /// The statement does not decode.
    #[error("the membership record does not decode: {0}")]
    Decode(String),
    /// The signature does not verify.
    #[error("the membership record's signature is not valid")]
    Signature,
    /// A name longer than [`MAX_NAME_LEN`].
    #[error("the device name is longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
}

impl MembershipRecord {
    /// Signs a statement with `signer`'s key.
    pub fn sign(signer: &DeviceKeys, statement: Statement) -> Result<Self, MembershipError> {
        check_statement(&statement)?;
        let body =
            postcard::to_stdvec(&statement).map_err(|e| MembershipError::Decode(e.to_string()))?;
        Self::decode(&ENVELOPE.sign(signer, &body))
    }

    /// Parses and checks a membership record: format, signature, limits. Any bytes give a
    /// record or an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, MembershipError> {
        let (signer_key, body) = ENVELOPE.open(bytes).map_err(|refused| match refused {
            Refused::NotThis => MembershipError::NotMembership,
            Refused::Version(v) => MembershipError::Version(v),
            Refused::Signature => MembershipError::Signature,
        })?;
        let (statement, rest): (Statement, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| MembershipError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(MembershipError::Decode("trailing bytes".into()));
        }
        check_statement(&statement)?;
        Ok(Self {
            record_id: RecordId(*blake3::hash(bytes).as_bytes()),
            signer: DeviceId::from_signing_key(&signer_key),
            signer_key,
            statement,
            bytes: bytes.to_vec(),
        })
    }

    /// When the record was signed (ms, by the signer's clock): its place in the record set's
    /// order.
    pub fn timestamp_ms(&self) -> u64 {
        match &self.statement {
            Statement::Introduce(i) => i.created_at_ms,
            Statement::Revoke(r) => r.created_at_ms,
            Statement::Share(s) => s.created_at_ms,
            Statement::Rename(r) => r.created_at_ms,
        }
    }

    /// Whether bytes look like a membership record (by their magic), without checking them.
    pub fn is_membership(bytes: &[u8]) -> bool {
        bytes.starts_with(&MAGIC)
    }
}

fn check_statement(statement: &Statement) -> Result<(), MembershipError> {
    match statement {
        Statement::Introduce(i) if i.name.len() > MAX_NAME_LEN => Err(MembershipError::NameTooLong),
        Statement::Rename(r) if r.name.len() > MAX_NAME_LEN => Err(MembershipError::NameTooLong),
        Statement::Rename(r) if r.name.trim().is_empty() => {
            Err(MembershipError::Decode("an empty name".into()))
        }
        _ => Ok(()),
    }
}

/// A current member of the mesh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its device ID.
    pub device: DeviceId,
    /// Its Ed25519 public key.
    pub signing_key: [u8; 32],
    /// Its Noise static key.
    pub noise_key: [u8; 32],
    /// What it may do.
    pub role: Role,
    /// Its name.
    pub name: String,
    /// The device that introduced it (itself, for the founder).
    pub introduced_by: DeviceId,
    /// When it was introduced (ms, as the introducer's clock said).
    pub introduced_at_ms: u64,
    /// Introductions between the founder and this device (0 for the founder).
    pub depth: u32,
}

/// The members of a mesh, computed from its membership records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustSet {
    members: BTreeMap<DeviceId, Member>,
    revoked: BTreeMap<DeviceId, Member>,
    /// For each revoked device, the union of the `keep` lists of the revocations applied to it.
    kept: BTreeMap<DeviceId, BTreeSet<RecordId>>,
}

impl TrustSet {
    /// Computes the members of the mesh founded by `founder` from a set of (already checked)
    /// membership records. Records that do not count (unknown signer, vault signer, revoked
    /// signer not kept) are ignored; the result depends only on the set, not on its order.
    pub fn evaluate<'a>(
        founder: &DeviceId,
        records: impl IntoIterator<Item = &'a MembershipRecord>,
    ) -> Self {
        // Deduplicate and order by record ID: the input's order cannot matter from here on.
        let records: BTreeMap<RecordId, &MembershipRecord> =
            records.into_iter().map(|r| (r.record_id, r)).collect();
        let mut revoked: BTreeMap<DeviceId, BTreeSet<RecordId>> = BTreeMap::new();
        let mut members = BTreeMap::new();
        // Revocations can invalidate introductions and introductions can validate
        // revocations; iterate to a fixed point. Each round is a pure function of the
        // previous, so the loop is deterministic; it is bounded by the number of revocations.
        let revocations = records
            .values()
            .filter(|r| matches!(r.statement, Statement::Revoke(_)))
            .count();
        let mut seen = BTreeSet::new();
        for _ in 0..=revocations + 1 {
            members = introduce_fixpoint(founder, &records, &revoked);
            let next = apply_revocations(&records, &members);
            if next == revoked {
                break;
            }
            // Should rounds ever cycle, settle on the union of everything seen revoked: when
            // in doubt, trust less.
            if !seen.insert(next.keys().copied().collect::<Vec<_>>()) {
                for (device, keep) in next {
                    revoked.entry(device).or_default().extend(keep);
                }
                members = introduce_fixpoint(founder, &records, &revoked);
                break;
            }
            revoked = next;
        }
        rename(&records, &mut members, &revoked);
        let mut trust = Self::default();
        for (device, member) in members {
            if let Some(keep) = revoked.remove(&device) {
                trust.revoked.insert(device, member);
                trust.kept.insert(device, keep);
            } else {
                trust.members.insert(device, member);
            }
        }
        trust
    }

    /// The member with this Noise key, if it is trusted now.
    pub fn by_noise_key(&self, noise_key: &[u8; 32]) -> Option<&Member> {
        self.members.values().find(|m| &m.noise_key == noise_key)
    }

    /// The member with this device ID, if it is trusted now.
    pub fn get(&self, device: &DeviceId) -> Option<&Member> {
        self.members.get(device)
    }

    /// Every current member, by device ID.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Every current member that is a device (`full` or `vault`): what is dialed, found,
    /// and counted as holding copies. The recovery identity is a member but no device.
    pub fn devices(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.role.is_device())
    }

    /// Every revoked device, by device ID.
    pub fn revoked(&self) -> impl Iterator<Item = &Member> {
        self.revoked.values()
    }

    /// Whether the device was a member and has been revoked.
    pub fn is_revoked(&self, device: &DeviceId) -> bool {
        self.revoked.contains_key(device)
    }

    /// Whether a record (other than a membership record, which [`TrustSet::evaluate`] judges
    /// itself) signed by `signer` counts: the signer is a current `full` member, or a revoked
    /// device that was `full` and a revocation applied to it kept this record. Timestamps play
    /// no part: the signer chooses them.
    pub fn counts(&self, signer: &DeviceId, record: &RecordId) -> bool {
        if let Some(member) = self.members.get(signer) {
            return member.role == Role::Full;
        }
        self.revoked
            .get(signer)
            .is_some_and(|member| member.role == Role::Full)
            && self
                .kept
                .get(signer)
                .is_some_and(|keep| keep.contains(record))
    }
}

/// Whether a record signed by `signer` counts, given the members and revocations so far.
fn signer_counts(
    record: &MembershipRecord,
    members: &BTreeMap<DeviceId, Member>,
    revoked: &BTreeMap<DeviceId, BTreeSet<RecordId>>,
) -> bool {
    let Some(signer) = members.get(&record.signer) else {
        return false;
    };
    signer.role.may_introduce()
        && signer.signing_key == record.signer_key
        && revoked
            .get(&record.signer)
            .is_none_or(|keep| keep.contains(&record.record_id))
}

/// Every device reachable from the founder through introductions that count.
fn introduce_fixpoint(
    founder: &DeviceId,
    records: &BTreeMap<RecordId, &MembershipRecord>,
    revoked: &BTreeMap<DeviceId, BTreeSet<RecordId>>,
) -> BTreeMap<DeviceId, Member> {
    let mut members = BTreeMap::new();
    // The founding record: the founder introduces itself.
    let founding = records.values().find_map(|r| match &r.statement {
        Statement::Introduce(i)
            if r.signer == *founder
                && DeviceId::from_signing_key(&i.signing_key) == *founder
                && i.role == Role::Full =>
        {
            Some(member(*founder, i, *founder, 0))
        }
        _ => None,
    });
    let Some(founding) = founding else {
        return members;
    };
    members.insert(*founder, founding);
    loop {
        // Among the introductions that count now, take each new device at its smallest
        // (depth, record ID), so the result does not depend on iteration order.
        let mut best: BTreeMap<DeviceId, (u32, RecordId, Member)> = BTreeMap::new();
        for r in records.values() {
            let Statement::Introduce(i) = &r.statement else {
                continue;
            };
            let device = DeviceId::from_signing_key(&i.signing_key);
            if members.contains_key(&device) || !signer_counts(r, &members, revoked) {
                continue;
            }
            let depth = members[&r.signer].depth + 1;
            let candidate = (depth, r.record_id, member(device, i, r.signer, depth));
            match best.get(&device) {
                Some((d, id, _)) if (*d, *id) <= (depth, r.record_id) => {}
                _ => {
                    best.insert(device, candidate);
                }
            }
        }
        if best.is_empty() {
            return members;
        }
        // Add only the shallowest new devices this round, so depths are true distances.
        let shallowest = best.values().map(|(d, ..)| *d).min().unwrap_or(0);
        for (device, (depth, _, m)) in best {
            if depth == shallowest {
                members.insert(device, m);
            }
        }
    }
}

fn member(device: DeviceId, i: &Introduce, by: DeviceId, depth: u32) -> Member {
    Member {
        device,
        signing_key: i.signing_key,
        noise_key: i.noise_key,
        role: i.role,
        name: i.name.clone(),
        introduced_by: by,
        introduced_at_ms: i.created_at_ms,
        depth,
    }
}

/// Gives each member the name of the newest rename of it that counts: signed by a full
/// member whose signature counts, or by the device itself (`PAIRING.md`, step 5).
fn rename(
    records: &BTreeMap<RecordId, &MembershipRecord>,
    members: &mut BTreeMap<DeviceId, Member>,
    revoked: &BTreeMap<DeviceId, BTreeSet<RecordId>>,
) {
    let mut newest: BTreeMap<DeviceId, (u64, RecordId, &str)> = BTreeMap::new();
    for r in records.values() {
        let Statement::Rename(n) = &r.statement else {
            continue;
        };
        if !members.contains_key(&n.device) {
            continue;
        }
        let by_itself = r.signer == n.device && !revoked.contains_key(&n.device);
        if !by_itself && !signer_counts(r, members, revoked) {
            continue;
        }
        let candidate = (n.created_at_ms, r.record_id, n.name.as_str());
        if newest
            .get(&n.device)
            .is_none_or(|(t, id, _)| (*t, *id) < (candidate.0, candidate.1))
        {
            newest.insert(n.device, candidate);
        }
    }
    for (device, (_, _, name)) in newest {
        if let Some(m) = members.get_mut(&device) {
            name.clone_into(&mut m.name);
        }
    }
}

/// Applies revocations in order of the signer's seniority (depth, device ID, record ID).
fn apply_revocations(
    records: &BTreeMap<RecordId, &MembershipRecord>,
    members: &BTreeMap<DeviceId, Member>,
) -> BTreeMap<DeviceId, BTreeSet<RecordId>> {
    let mut revokes: Vec<(u32, DeviceId, RecordId, &Revoke, &MembershipRecord)> = records
        .values()
        .filter_map(|r| match &r.statement {
            Statement::Revoke(v) => members
                .get(&r.signer)
                .map(|m| (m.depth, r.signer, r.record_id, v, *r)),
            Statement::Introduce(_) | Statement::Share(_) | Statement::Rename(_) => None,
        })
        .collect();
    revokes.sort_by_key(|(depth, signer, id, ..)| (*depth, *signer, *id));
    let mut revoked: BTreeMap<DeviceId, BTreeSet<RecordId>> = BTreeMap::new();
    for (_, _, _, v, r) in revokes {
        if !members.contains_key(&v.device) || !signer_counts(r, members, &revoked) {
            continue;
        }
        revoked
            .entry(v.device)
            .or_default()
            .extend(v.keep.iter().copied());
    }
    revoked
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn device(n: u8) -> DeviceKeys {
        DeviceKeys::from_secrets([n; 32], [n.wrapping_add(100); 32])
    }

    pub(crate) fn introduce(
        by: &DeviceKeys,
        who: &DeviceKeys,
        role: Role,
        at: u64,
    ) -> MembershipRecord {
        MembershipRecord::sign(
            by,
            Statement::Introduce(Introduce {
                signing_key: who.signing_public(),
                noise_key: who.noise_public(),
                role,
                name: format!("device {}", who.device_id().short()),
                created_at_ms: at,
            }),
        )
        .unwrap()
    }

    pub(crate) fn revoke(
        by: &DeviceKeys,
        who: &DeviceKeys,
        keep: Vec<RecordId>,
    ) -> MembershipRecord {
        MembershipRecord::sign(
            by,
            Statement::Revoke(Revoke {
                device: who.device_id(),
                keep,
                created_at_ms: 9,
            }),
        )
        .unwrap()
    }

    fn ids(t: &TrustSet) -> Vec<DeviceId> {
        t.members().map(|m| m.device).collect()
    }

    fn rename(by: &DeviceKeys, who: &DeviceKeys, name: &str, at: u64) -> MembershipRecord {
        MembershipRecord::sign(
            by,
            Statement::Rename(Rename {
                device: who.device_id(),
                name: name.into(),
                created_at_ms: at,
            }),
        )
        .unwrap()
    }

    fn name_of(t: &TrustSet, who: &DeviceKeys) -> String {
        t.get(&who.device_id()).unwrap().name.clone()
    }

    #[test]
    fn the_newest_rename_by_a_full_member_or_the_device_itself_names_it() {
        let (a, b, v, x) = (device(1), device(2), device(3), device(4));
        let base = vec![
            introduce(&a, &a, Role::Full, 1),
            introduce(&a, &b, Role::Full, 2),
            introduce(&a, &v, Role::Vault, 3),
        ];
        let founder = a.device_id();
        let with = |extra: Vec<MembershipRecord>| {
            let mut all = base.clone();
            all.extend(extra);
            TrustSet::evaluate(&founder, &all)
        };
        let introduced = name_of(&with(vec![]), &b);
        // A full member renames b; b renames itself later: the newest wins, in any order.
        let t = with(vec![
            rename(&b, &b, "Tablet", 20),
            rename(&a, &b, "Kids' tablet", 10),
        ]);
        assert_eq!(name_of(&t, &b), "Tablet");
        let t = with(vec![
            rename(&a, &b, "Kids' tablet", 30),
            rename(&b, &b, "Tablet", 20),
        ]);
        assert_eq!(name_of(&t, &b), "Kids' tablet");
        // A vault may rename itself, but nobody else; a stranger renames nobody.
        let t = with(vec![
            rename(&v, &v, "Offsite", 5),
            rename(&v, &b, "pwned", 50),
        ]);
        assert_eq!(name_of(&t, &v), "Offsite");
        assert_eq!(name_of(&t, &b), introduced);
        let t = with(vec![rename(&x, &b, "pwned", 60)]);
        assert_eq!(name_of(&t, &b), introduced);
        // A revoked device's later renames do not count.
        let revocation = revoke(&a, &b, vec![]);
        let t = with(vec![revocation, rename(&b, &b, "still me", 70)]);
        assert!(t.is_revoked(&b.device_id()));
        assert_eq!(t.revoked().next().unwrap().name, introduced);
        // The record round-trips; an empty or too long name is refused (the same check
        // runs when a record is decoded).
        let r = rename(&a, &b, "Tablet", 1);
        assert_eq!(MembershipRecord::decode(&r.bytes).unwrap(), r);
        for bad in [" ".to_owned(), "x".repeat(MAX_NAME_LEN + 1)] {
            let signed = MembershipRecord::sign(
                &a,
                Statement::Rename(Rename {
                    device: b.device_id(),
                    name: bad.clone(),
                    created_at_ms: 1,
                }),
            );
            assert!(signed.is_err(), "{}", bad.len());
        }
    }

    #[test]
    fn a_recovery_identity_introduces_and_revokes_but_signs_nothing_else_that_counts() {
        let (a, r, n, b) = (device(1), device(2), device(3), device(4));
        let share = MembershipRecord::sign(
            &a,
            Statement::Share(
                crate::share::Share::seal(
                    r.device_id(),
                    &r.noise_public(),
                    crate::share::Item::LibraryKey(1),
                    &[1; 32],
                    [2; 32],
                    5,
                )
                .unwrap(),
            ),
        )
        .unwrap();
        let decoded = MembershipRecord::decode(&share.bytes).unwrap();
        assert_eq!(decoded, share, "a share record round-trips");
        let recs = vec![
            introduce(&a, &a, Role::Full, 1),
            introduce(&a, &r, Role::Recovery, 2),
            introduce(&a, &b, Role::Full, 2),
            introduce(&r, &n, Role::Full, 3),
            revoke(&r, &b, vec![]),
            share,
        ];
        let t = TrustSet::evaluate(&a.device_id(), &recs);
        let recovery = t
            .get(&r.device_id())
            .expect("recovery identity is a member");
        assert_eq!(recovery.role, Role::Recovery);
        assert!(!recovery.role.is_device() && recovery.role.may_introduce());
        assert!(t.get(&n.device_id()).is_some(), "its introduction counts");
        assert!(t.is_revoked(&b.device_id()), "its revocation counts");
        let some_record = RecordId([7; 32]);
        assert!(
            !t.counts(&r.device_id(), &some_record),
            "its lifecycle records do not"
        );
        assert!(t.counts(&a.device_id(), &some_record));
    }

    #[test]
    fn founder_introduces_and_members_chain() {
        let (a, b, c) = (device(1), device(2), device(3));
        let recs = [
            introduce(&a, &a, Role::Full, 1),
            introduce(&a, &b, Role::Full, 2),
            introduce(&b, &c, Role::Vault, 3),
        ];
        let t = TrustSet::evaluate(&a.device_id(), &recs);
        assert_eq!(t.members().count(), 3);
        let c_member = t.by_noise_key(&c.noise_public()).unwrap();
        assert_eq!(c_member.role, Role::Vault);
        assert_eq!(c_member.introduced_by, b.device_id());
        assert_eq!(c_member.depth, 2);
    }

    #[test]
    fn vaults_and_strangers_cannot_introduce() {
        let (a, v, x, y) = (device(1), device(2), device(3), device(4));
        let recs = [
            introduce(&a, &a, Role::Full, 1),
            introduce(&a, &v, Role::Vault, 2),
            introduce(&v, &x, Role::Full, 3),
            introduce(&y, &x, Role::Full, 3),
        ];
        let t = TrustSet::evaluate(&a.device_id(), &recs);
        assert_eq!(ids(&t).len(), 2);
        assert!(t.by_noise_key(&x.noise_public()).is_none());
        // Without the founding record, nobody is trusted.
        assert_eq!(
            TrustSet::evaluate(&a.device_id(), &recs[1..])
                .members()
                .count(),
            0
        );
    }

    #[test]
    fn a_revoked_device_signs_nothing_that_counts_unless_kept() {
        let (a, b, c, d) = (device(1), device(2), device(3), device(4));
        let b_introduces_c = introduce(&b, &c, Role::Full, 3);
        let recs = vec![
            introduce(&a, &a, Role::Full, 1),
            introduce(&a, &b, Role::Full, 2),
            b_introduces_c.clone(),
            // After being revoked, b (a stolen phone) introduces d and revokes a.
            introduce(&b, &d, Role::Full, 10),
            revoke(&b, &a, vec![]),
            revoke(&a, &b, vec![b_introduces_c.record_id]),
        ];
        let t = TrustSet::evaluate(&a.device_id(), &recs);
        assert_eq!(ids(&t), {
            let mut v = vec![a.device_id(), c.device_id()];
            v.sort();
            v
        });
        assert!(t.is_revoked(&b.device_id()));
        assert!(t.get(&d.device_id()).is_none());
        assert!(t.by_noise_key(&b.noise_public()).is_none());
    }

    #[test]
    fn counts_full_members_and_what_revocations_kept() {
        let (a, b, v, x, w) = (device(1), device(2), device(3), device(4), device(5));
        let some = RecordId([1; 32]);
        let other = RecordId([2; 32]);
        let recs = [
            introduce(&a, &a, Role::Full, 1),
            introduce(&a, &b, Role::Full, 2),
            introduce(&a, &v, Role::Vault, 3),
            introduce(&a, &w, Role::Vault, 4),
            revoke(&a, &b, vec![some]),
            // A revoked vault never counts, even for what its revocation kept.
            revoke(&a, &w, vec![some]),
        ];
        let t = TrustSet::evaluate(&a.device_id(), &recs);
        assert!(
            t.counts(&a.device_id(), &some),
            "a current full member counts"
        );
        assert!(!t.counts(&v.device_id(), &some), "a vault member does not");
        assert!(!t.counts(&x.device_id(), &some), "a stranger does not");
        assert!(t.counts(&b.device_id(), &some), "revoked, and kept");
        assert!(!t.counts(&b.device_id(), &other), "revoked, not kept");
        assert!(
            !t.counts(&w.device_id(), &some),
            "a revoked vault, even kept"
        );
        // Before the revocation, b counts for everything it signs.
        let before = TrustSet::evaluate(&a.device_id(), &recs[..4]);
        assert!(before.counts(&b.device_id(), &other));
    }

    #[test]
    fn tampered_records_are_refused() {
        let a = device(1);
        let rec = introduce(&a, &a, Role::Full, 1);
        for pos in 0..rec.bytes.len() {
            let mut bad = rec.bytes.clone();
            bad[pos] ^= 1;
            assert!(MembershipRecord::decode(&bad).is_err(), "flip at {pos}");
        }
        assert_eq!(MembershipRecord::decode(&rec.bytes).unwrap(), rec);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = bytes;
            if b.len() > 5 { b[..4].copy_from_slice(&MAGIC); b[4] = FORMAT_VERSION; }
            prop_assert!(MembershipRecord::decode(&b).is_err());
        }

        /// Any order, and any duplication, of the same records gives the same trust set.
        #[test]
        fn trust_is_a_function_of_the_set(
            edges in proptest::collection::vec((0u8..6, 0u8..6, any::<bool>(), any::<bool>()), 0..24),
            order in any::<u64>(),
        ) {
            let keys: Vec<DeviceKeys> = (1..=6).map(device).collect();
            let mut recs = vec![introduce(&keys[0], &keys[0], Role::Full, 0)];
            let mut signed_by: BTreeMap<usize, Vec<RecordId>> = BTreeMap::new();
            for (i, (from, to, is_revoke, vault)) in edges.into_iter().enumerate() {
                let (from, to) = (usize::from(from), usize::from(to));
                let rec = if is_revoke {
                    // Keep half of what the target signed, as a revoker who knew some of it.
                    let keep = signed_by.get(&to).map(|v| v.iter().step_by(2).copied().collect()).unwrap_or_default();
                    revoke(&keys[from], &keys[to], keep)
                } else {
                    let role = if vault { Role::Vault } else { Role::Full };
                    introduce(&keys[from], &keys[to], role, i as u64)
                };
                signed_by.entry(from).or_default().push(rec.record_id);
                recs.push(rec);
            }
            let founder = keys[0].device_id();
            let expected = TrustSet::evaluate(&founder, &recs);
            // A deterministic shuffle from `order`, plus a duplicate.
            let mut shuffled = recs.clone();
            let mut state = order | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            if let Some(first) = recs.first() { shuffled.push(first.clone()); }
            prop_assert_eq!(TrustSet::evaluate(&founder, &shuffled), expected.clone());
            // Every member is reachable and no revoked device is trusted.
            for m in expected.members() {
                prop_assert!(!expected.is_revoked(&m.device));
            }
        }
    }
}
