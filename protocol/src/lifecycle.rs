//! Lifecycle: photos deleted into a trash, restored from it, and purged, as a pure function
//! of a set of signed records (`LIFECYCLE.md`).
//!
//! A lifecycle record is signed with Ed25519 by a `full` device. It names photo records (one
//! version of a photo each) and, when no other live photo shares it, each one's blob. Like
//! membership records it is signed, not sealed: a vault cannot open a photo record, yet must
//! know which blobs it may drop.
//!
//! [`Lifecycle::evaluate`] turns any set of these records into each photo's [`State`],
//! counting only the records [`TrustSet::counts`]: a purge is final; otherwise the greatest
//! `(created_at_ms, record ID)` among trashes and restores decides. The order records arrived
//! in never matters (property-tested). This module drops nothing: it says which blobs may go
//! ([`Lifecycle::purgeable_blobs`]) and the node drops them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::identity::{DeviceId, DeviceKeys};
use crate::membership::TrustSet;
use crate::record::{RecordId, record_id};
use crate::seal::BlobId;
use crate::signed::{Envelope, Refused};
#[cfg(test)]
use crate::signed::{HEADER_LEN, SIGNATURE_LEN};

/// The four bytes every lifecycle record starts with.
pub const MAGIC: [u8; 4] = *b"pmlc";
/// The lifecycle record format version.
pub const FORMAT_VERSION: u8 = 1;
/// Domain separation for lifecycle signatures.
const SIGNING_CONTEXT: &[u8] = b"photomesh 2026-12-06 lifecycle record v1\0";
/// The largest lifecycle record accepted.
pub const MAX_LEN: usize = 64 * 1024;
/// The most targets one lifecycle record may name.
pub const MAX_TARGETS: usize = 900;
/// The envelope of every lifecycle record.
const ENVELOPE: Envelope = Envelope {
    magic: MAGIC,
    version: FORMAT_VERSION,
    context: SIGNING_CONTEXT,
    max_len: MAX_LEN,
};

/// What a lifecycle record does to its targets.
///
/// postcard encodes the variant's index, so new actions are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Into the trash: hidden, and its blob dropped once the retention has passed.
    Trash,
    /// Out of the trash: live again.
    Restore,
    /// Gone for good, at once. Final: no later record brings the photo back.
    Purge,
    /// Not a deletion: the signer released its own original of the photo to free space
    /// (`free-up-space`), its copies being safe on other devices. The photo stays live;
    /// members count it safe at their `free_up_copies`. Names no blob.
    Release,
    /// The signer holds its original again: it undoes its own `Release`.
    Return,
}

/// A photo record a lifecycle record acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The photo record (one version of a photo).
    pub record: RecordId,
    /// Its blob, when the signer knows no other live photo record with the same blob; `None`
    /// when the blob is shared with a live photo.
    pub blob: Option<BlobId>,
}

/// What a lifecycle record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// What happens to the targets.
    pub action: Action,
    /// The photo records acted on: 1 to [`MAX_TARGETS`], no record twice.
    pub targets: Vec<Target>,
    /// When the record was signed, in ms since the Unix epoch, by the signer's clock.
    pub created_at_ms: u64,
}

/// A signed lifecycle record, checked: format, limits and signature. Whether its signer counts
/// is for [`Lifecycle::evaluate`] to judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleRecord {
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

/// Why bytes are not a valid lifecycle record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// Too short, too long, or not starting with the magic bytes.
    #[error("not a photomesh lifecycle record (at most {MAX_LEN} bytes, starting \"pmlc\")")]
    NotLifecycle,
    /// A version this code does not know.
    #[error("lifecycle record version {0} is not supported")]
    Version(u8),
    /// The statement does not decode, or bytes follow it.
    #[error("the lifecycle record does not decode: {0}")]
    Decode(String),
    /// The signature does not verify.
    #[error("the lifecycle record's signature is not valid")]
    Signature,
    /// The statement names no photo record.
    #[error("the lifecycle record names no photo record")]
    NoTargets,
    /// The statement names more than [`MAX_TARGETS`] photo records.
    #[error("the lifecycle record names more than {MAX_TARGETS} photo records")]
    TooManyTargets,
    /// The statement names the same photo record twice.
    #[error("the lifecycle record names the same photo record twice")]
    DuplicateTarget,
}

impl LifecycleRecord {
    /// Signs a statement with `signer`'s key.
    pub fn sign(signer: &DeviceKeys, statement: Statement) -> Result<Self, LifecycleError> {
        check_statement(&statement)?;
        let body =
            postcard::to_stdvec(&statement).map_err(|e| LifecycleError::Decode(e.to_string()))?;
        Self::decode(&ENVELOPE.sign(signer, &body))
    }

    /// Parses and checks a lifecycle record: format, limits, signature. Any bytes give a
    /// record or an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, LifecycleError> {
        let (signer_key, body) = ENVELOPE.open(bytes).map_err(|refused| match refused {
            Refused::NotThis => LifecycleError::NotLifecycle,
            Refused::Version(v) => LifecycleError::Version(v),
            Refused::Signature => LifecycleError::Signature,
        })?;
        let (statement, rest): (Statement, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| LifecycleError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(LifecycleError::Decode(format!(
                "{} bytes follow the statement",
                rest.len()
            )));
        }
        check_statement(&statement)?;
        Ok(Self {
            record_id: record_id(bytes),
            signer: DeviceId::from_signing_key(&signer_key),
            signer_key,
            statement,
            bytes: bytes.to_vec(),
        })
    }

    /// When the record was signed (ms, by the signer's clock): its place in the record set's
    /// order.
    pub fn timestamp_ms(&self) -> u64 {
        self.statement.created_at_ms
    }

    /// Whether bytes look like a lifecycle record (by their magic), without checking them.
    pub fn is_lifecycle(bytes: &[u8]) -> bool {
        bytes.starts_with(&MAGIC)
    }
}

fn check_statement(statement: &Statement) -> Result<(), LifecycleError> {
    let targets = &statement.targets;
    if targets.is_empty() {
        return Err(LifecycleError::NoTargets);
    }
    if targets.len() > MAX_TARGETS {
        return Err(LifecycleError::TooManyTargets);
    }
    let mut seen = BTreeSet::new();
    if !targets.iter().all(|t| seen.insert(t.record)) {
        return Err(LifecycleError::DuplicateTarget);
    }
    Ok(())
}

/// Where a photo record is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not in the trash (never named, or restored).
    Live,
    /// In the trash since the deciding trash record was signed.
    InTrash {
        /// That record's `created_at_ms`.
        since_ms: u64,
    },
    /// Gone for good: its data may already be dropped.
    Purged,
}

/// Every photo record's state, computed from a set of lifecycle records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lifecycle {
    targets: BTreeMap<RecordId, Entry>,
    /// Each photo record some member released, with who (its latest release or return).
    released: BTreeMap<RecordId, BTreeSet<DeviceId>>,
}

/// What the counting records say of one photo record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    state: State,
    /// The blob of the latest counting record naming this photo record with a blob.
    blob: Option<BlobId>,
    /// Every blob any counting record named for it.
    blobs: BTreeSet<BlobId>,
}

impl Lifecycle {
    /// Computes every named photo record's state from a set of (already checked) lifecycle
    /// records, counting only those `trust` says count. The result depends only on the set,
    /// not on its order or on duplicates.
    pub fn evaluate<'a>(
        records: impl IntoIterator<Item = &'a LifecycleRecord>,
        trust: &TrustSet,
    ) -> Self {
        // Deduplicate and order by record ID: the input's order cannot matter from here on.
        let records: BTreeMap<RecordId, &LifecycleRecord> = records
            .into_iter()
            .filter(|r| trust.counts(&r.signer, &r.record_id))
            .map(|r| (r.record_id, r))
            .collect();
        let mut tallies: BTreeMap<RecordId, Tally> = BTreeMap::new();
        // Per photo record and signer: its latest release or return.
        type Latest = BTreeMap<(RecordId, DeviceId), ((u64, RecordId), bool)>;
        let mut releases: Latest = BTreeMap::new();
        for r in records.values() {
            let at = (r.statement.created_at_ms, r.record_id);
            let action = r.statement.action;
            for target in &r.statement.targets {
                if let Action::Release | Action::Return = action {
                    let latest = releases
                        .entry((target.record, r.signer))
                        .or_insert((at, action == Action::Release));
                    if latest.0 < at {
                        *latest = (at, action == Action::Release);
                    }
                    continue;
                }
                tallies
                    .entry(target.record)
                    .or_default()
                    .add(at, action, target.blob);
            }
        }
        let targets = tallies
            .into_iter()
            .map(|(record, tally)| (record, tally.finish()))
            .collect();
        let mut released: BTreeMap<RecordId, BTreeSet<DeviceId>> = BTreeMap::new();
        for ((record, device), (_, is_released)) in releases {
            if is_released {
                released.entry(record).or_default().insert(device);
            }
        }
        Self { targets, released }
    }

    /// Every photo record whose original some member released (`Action::Release`, not since
    /// returned), with the members that did.
    pub fn released(&self) -> impl Iterator<Item = (RecordId, &BTreeSet<DeviceId>)> {
        self.released.iter().map(|(record, by)| (*record, by))
    }

    /// The state of a photo record (`Live` if no counting record names it).
    pub fn state(&self, record: &RecordId) -> State {
        self.targets
            .get(record)
            .map_or(State::Live, |entry| entry.state)
    }

    /// Every photo record a counting record names, by record ID, with its state and the blob
    /// of the latest counting record that named one for it.
    pub fn entries(&self) -> impl Iterator<Item = (RecordId, State, Option<BlobId>)> {
        self.targets
            .iter()
            .map(|(record, entry)| (*record, entry.state, entry.blob))
    }

    /// The blobs that may be dropped at `now_ms`: those some counting target names, where
    /// every counting target naming them is `Purged`, or `InTrash` for at least
    /// `retention_ms`. A full device further keeps the blobs of live photos it knows.
    pub fn purgeable_blobs(&self, now_ms: u64, retention_ms: u64) -> BTreeSet<BlobId> {
        let mut done: BTreeMap<BlobId, bool> = BTreeMap::new();
        for entry in self.targets.values() {
            let gone = match entry.state {
                State::Purged => true,
                State::InTrash { since_ms } => since_ms.saturating_add(retention_ms) <= now_ms,
                State::Live => false,
            };
            for blob in &entry.blobs {
                *done.entry(*blob).or_insert(true) &= gone;
            }
        }
        done.into_iter()
            .filter_map(|(blob, gone)| gone.then_some(blob))
            .collect()
    }
}

/// What the counting records naming one photo record say, gathered in any order.
#[derive(Default)]
struct Tally {
    purged: bool,
    /// The greatest `(created_at_ms, record ID)` among trashes and restores, and its action.
    decided: Option<((u64, RecordId), Action)>,
    /// The greatest `(created_at_ms, record ID)` naming a blob, and that blob.
    blob: Option<((u64, RecordId), BlobId)>,
    blobs: BTreeSet<BlobId>,
}

impl Tally {
    fn add(&mut self, at: (u64, RecordId), action: Action, blob: Option<BlobId>) {
        match action {
            Action::Purge => self.purged = true,
            Action::Trash | Action::Restore => {
                if self.decided.is_none_or(|(latest, _)| latest < at) {
                    self.decided = Some((at, action));
                }
            }
            // Kept apart by `evaluate`: a release is not a deletion.
            Action::Release | Action::Return => return,
        }
        if let Some(blob) = blob {
            self.blobs.insert(blob);
            if self.blob.is_none_or(|(latest, _)| latest < at) {
                self.blob = Some((at, blob));
            }
        }
    }

    fn finish(self) -> Entry {
        let state = match self.decided {
            _ if self.purged => State::Purged,
            Some(((since_ms, _), Action::Trash)) => State::InTrash { since_ms },
            Some((_, Action::Restore | Action::Purge | Action::Release | Action::Return))
            | None => State::Live,
        };
        Entry {
            state,
            blob: self.blob.map(|(_, blob)| blob),
            blobs: self.blobs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::tests::{device, introduce, revoke};
    use crate::membership::{MembershipRecord, Role};
    use proptest::prelude::*;

    /// The devices of the test mesh: full founder `a`, full `b`, vault `v`, full `r` (revoked
    /// in [`trust`]) and stranger `x`.
    struct Devices {
        a: DeviceKeys,
        b: DeviceKeys,
        v: DeviceKeys,
        r: DeviceKeys,
        x: DeviceKeys,
    }

    fn devices() -> Devices {
        Devices {
            a: device(1),
            b: device(2),
            v: device(3),
            r: device(4),
            x: device(5),
        }
    }

    /// The trust set of the test mesh, where `a` revoked `r` keeping `kept`.
    fn trust(d: &Devices, kept: Vec<RecordId>) -> TrustSet {
        let records = [
            introduce(&d.a, &d.a, Role::Full, 1),
            introduce(&d.a, &d.b, Role::Full, 2),
            introduce(&d.a, &d.v, Role::Vault, 3),
            introduce(&d.a, &d.r, Role::Full, 4),
            revoke(&d.a, &d.r, kept),
        ];
        TrustSet::evaluate(&d.a.device_id(), &records)
    }

    fn photo(n: u8) -> RecordId {
        RecordId([n; 32])
    }

    fn blob(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    /// Signs `action` on photos `(n, blob n)` at `at`.
    fn signed(
        by: &DeviceKeys,
        action: Action,
        targets: &[(u8, Option<u8>)],
        at: u64,
    ) -> LifecycleRecord {
        let targets = targets
            .iter()
            .map(|&(record, b)| Target {
                record: photo(record),
                blob: b.map(blob),
            })
            .collect();
        LifecycleRecord::sign(
            by,
            Statement {
                action,
                targets,
                created_at_ms: at,
            },
        )
        .unwrap()
    }

    /// Record bytes with a valid signature over whatever `body` is.
    fn raw(by: &DeviceKeys, body: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&by.signing_public());
        bytes.extend_from_slice(body);
        // Laid out here by hand, so the envelope's layout is checked, not assumed.
        let mut signed = SIGNING_CONTEXT.to_vec();
        signed.extend_from_slice(&bytes);
        let signature = by.sign(&signed);
        bytes.extend_from_slice(&signature);
        bytes
    }

    fn statement(targets: Vec<Target>) -> Statement {
        Statement {
            action: Action::Trash,
            targets,
            created_at_ms: 5,
        }
    }

    fn target(n: u8) -> Target {
        Target {
            record: photo(n),
            blob: None,
        }
    }

    fn many(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target {
                record: RecordId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
                blob: None,
            })
            .collect()
    }

    /// A deterministic shuffle (xorshift from `seed`).
    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut state = seed | 1;
        for i in (1..items.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            items.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }

    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];

    #[test]
    fn signed_records_decode_to_themselves() {
        let d = devices();
        let rec = signed(&d.a, Action::Restore, &[(1, Some(9)), (2, None)], 77);
        assert_eq!(LifecycleRecord::decode(&rec.bytes), Ok(rec.clone()));
        assert_eq!(rec.record_id, record_id(&rec.bytes));
        assert_eq!(rec.record_id.0, *blake3::hash(&rec.bytes).as_bytes());
        assert_eq!(rec.signer, d.a.device_id());
        assert_eq!(rec.signer_key, d.a.signing_public());
        assert_eq!(rec.timestamp_ms(), 77);
        assert!(LifecycleRecord::is_lifecycle(&rec.bytes));
        assert!(!LifecycleRecord::is_lifecycle(b"pmmr"));
    }

    #[test]
    fn malformed_records_are_refused() {
        let d = devices();
        let rec = signed(&d.a, Action::Trash, &[(1, Some(9))], 5);
        let mut bad = rec.bytes.clone();
        bad[0] ^= 1;
        assert_eq!(
            LifecycleRecord::decode(&bad),
            Err(LifecycleError::NotLifecycle)
        );
        let mut bad = rec.bytes.clone();
        bad[4] = 2;
        assert_eq!(
            LifecycleRecord::decode(&bad),
            Err(LifecycleError::Version(2))
        );
        for len in 0..rec.bytes.len() {
            assert!(
                LifecycleRecord::decode(&rec.bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut bad = rec.bytes.clone();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            LifecycleRecord::decode(&bad),
            Err(LifecycleError::Signature)
        );
        let mut bad = rec.bytes.clone();
        bad[HEADER_LEN] ^= 1;
        assert_eq!(
            LifecycleRecord::decode(&bad),
            Err(LifecycleError::Signature)
        );
        for pos in 0..rec.bytes.len() {
            let mut bad = rec.bytes.clone();
            bad[pos] ^= 0x80;
            assert!(LifecycleRecord::decode(&bad).is_err(), "flip at {pos}");
        }
        // A membership record is not a lifecycle record.
        let intro = introduce(&d.a, &d.a, Role::Full, 1);
        assert!(MembershipRecord::is_membership(&intro.bytes));
        assert_eq!(
            LifecycleRecord::decode(&intro.bytes),
            Err(LifecycleError::NotLifecycle)
        );
    }

    #[test]
    fn bytes_after_the_statement_are_refused_even_when_signed() {
        let d = devices();
        let mut body = postcard::to_stdvec(&statement(vec![target(1)])).unwrap();
        assert!(LifecycleRecord::decode(&raw(&d.a, &body)).is_ok());
        body.push(0);
        assert!(matches!(
            LifecycleRecord::decode(&raw(&d.a, &body)),
            Err(LifecycleError::Decode(_))
        ));
        assert!(matches!(
            LifecycleRecord::decode(&raw(&d.a, &[0xff; 8])),
            Err(LifecycleError::Decode(_))
        ));
    }

    #[test]
    fn targets_must_be_present_distinct_and_few() {
        let d = devices();
        let cases = [
            (vec![], LifecycleError::NoTargets),
            (
                vec![target(1), target(2), target(1)],
                LifecycleError::DuplicateTarget,
            ),
            (
                vec![
                    target(1),
                    Target {
                        record: photo(1),
                        blob: Some(blob(3)),
                    },
                ],
                LifecycleError::DuplicateTarget,
            ),
            (many(MAX_TARGETS + 1), LifecycleError::TooManyTargets),
        ];
        for (targets, error) in cases {
            let statement = statement(targets);
            let body = postcard::to_stdvec(&statement).unwrap();
            assert_eq!(
                LifecycleRecord::decode(&raw(&d.a, &body)),
                Err(error.clone())
            );
            assert_eq!(LifecycleRecord::sign(&d.a, statement), Err(error));
        }
        let most = LifecycleRecord::sign(&d.a, statement(many(MAX_TARGETS))).unwrap();
        assert_eq!(most.statement.targets.len(), MAX_TARGETS);
    }

    #[test]
    fn records_longer_than_max_len_are_refused() {
        let d = devices();
        let mut body = postcard::to_stdvec(&statement(vec![target(1)])).unwrap();
        // Pad so the whole record is exactly MAX_LEN: long enough, refused for the padding.
        body.resize(MAX_LEN - HEADER_LEN - SIGNATURE_LEN, 0);
        let at_most = raw(&d.a, &body);
        assert_eq!(at_most.len(), MAX_LEN);
        assert!(matches!(
            LifecycleRecord::decode(&at_most),
            Err(LifecycleError::Decode(_))
        ));
        body.push(0);
        let over = raw(&d.a, &body);
        assert_eq!(
            LifecycleRecord::decode(&over),
            Err(LifecycleError::NotLifecycle)
        );
    }

    #[test]
    fn trash_restore_trash_in_every_arrival_order() {
        let d = devices();
        let t = trust(&d, vec![]);
        let recs = [
            signed(&d.a, Action::Trash, &[(1, Some(1))], 10),
            signed(&d.b, Action::Restore, &[(1, Some(1))], 20),
            signed(&d.a, Action::Trash, &[(1, Some(1))], 30),
        ];
        for order in ORDERS {
            let all = Lifecycle::evaluate(order.map(|i| &recs[i]), &t);
            assert_eq!(all.state(&photo(1)), State::InTrash { since_ms: 30 });
            let two = Lifecycle::evaluate(order.iter().filter(|&&i| i < 2).map(|&i| &recs[i]), &t);
            assert_eq!(
                two.state(&photo(1)),
                State::Live,
                "restored after the trash"
            );
            let one = Lifecycle::evaluate(order.iter().filter(|&&i| i != 1).map(|&i| &recs[i]), &t);
            assert_eq!(
                one.state(&photo(1)),
                State::InTrash { since_ms: 30 },
                "in the trash since the newest trash"
            );
        }
        assert_eq!(
            Lifecycle::evaluate(&recs[..1], &t).state(&photo(1)),
            State::InTrash { since_ms: 10 }
        );
        assert_eq!(Lifecycle::evaluate(&recs, &t).state(&photo(2)), State::Live);
    }

    #[test]
    fn purge_wins_over_a_later_restore() {
        let d = devices();
        let t = trust(&d, vec![]);
        let recs = [
            signed(&d.a, Action::Trash, &[(1, Some(1))], 10),
            signed(&d.a, Action::Purge, &[(1, Some(1))], 20),
            signed(&d.b, Action::Restore, &[(1, Some(1))], 30),
        ];
        for order in ORDERS {
            let l = Lifecycle::evaluate(order.map(|i| &recs[i]), &t);
            assert_eq!(l.state(&photo(1)), State::Purged);
        }
        assert_eq!(
            Lifecycle::evaluate([&recs[0], &recs[2]], &t).state(&photo(1)),
            State::Live
        );
    }

    #[test]
    fn a_release_is_its_signer_s_own_and_never_a_deletion() {
        let d = devices();
        let t = trust(&d, vec![]);
        let recs = [
            signed(&d.a, Action::Release, &[(1, None), (2, None)], 10),
            signed(&d.b, Action::Release, &[(2, None)], 15),
            // b's return undoes b's release only; a's own return undoes a's.
            signed(&d.b, Action::Return, &[(1, None), (2, None)], 20),
            signed(&d.a, Action::Return, &[(2, None)], 30),
            signed(&d.v, Action::Release, &[(3, None)], 10),
            signed(&d.a, Action::Trash, &[(4, Some(4))], 10),
            signed(&d.a, Action::Release, &[(4, Some(4))], 20),
        ];
        for order in [
            [0, 1, 2, 3, 4, 5, 6],
            [6, 5, 4, 3, 2, 1, 0],
            [3, 0, 6, 2, 5, 1, 4],
        ] {
            let l = Lifecycle::evaluate(order.map(|i| &recs[i]), &t);
            let released: Vec<(RecordId, Vec<DeviceId>)> = l
                .released()
                .map(|(r, by)| (r, by.iter().copied().collect()))
                .collect();
            let a = d.a.device_id();
            assert_eq!(released, [(photo(1), vec![a]), (photo(4), vec![a])]);
            // Not deletions: live, and no blob becomes purgeable by them.
            assert_eq!(l.state(&photo(1)), State::Live);
            assert_eq!(l.state(&photo(4)), State::InTrash { since_ms: 10 });
            assert!(l.entries().all(|(r, _, _)| r == photo(4)));
            assert_eq!(
                l.purgeable_blobs(1_000, 0),
                [blob(4)].into_iter().collect::<BTreeSet<_>>()
            );
        }
    }

    #[test]
    fn records_that_do_not_count_are_ignored() {
        let d = devices();
        let trashed = signed(&d.a, Action::Trash, &[(1, Some(1))], 10);
        let by_vault = signed(&d.v, Action::Restore, &[(1, None)], 20);
        let by_stranger = signed(&d.x, Action::Restore, &[(1, None)], 20);
        let by_revoked = signed(&d.r, Action::Restore, &[(1, None)], 20);
        let purge_by_vault = signed(&d.v, Action::Purge, &[(1, None), (2, Some(2))], 1);
        // Stamped long before any revocation, by the revoked device's own say-so.
        let early_by_revoked = signed(&d.r, Action::Purge, &[(3, Some(3))], 0);
        let t = trust(&d, vec![]);
        let recs = [
            &trashed,
            &by_vault,
            &by_stranger,
            &by_revoked,
            &purge_by_vault,
            &early_by_revoked,
        ];
        let l = Lifecycle::evaluate(recs, &t);
        assert_eq!(l.state(&photo(1)), State::InTrash { since_ms: 10 });
        assert_eq!(l.state(&photo(3)), State::Live);
        assert_eq!(
            l.entries().collect::<Vec<_>>(),
            [(photo(1), State::InTrash { since_ms: 10 }, Some(blob(1)))],
            "photos 2 and 3 are named only by records that do not count"
        );
        assert_eq!(l.purgeable_blobs(u64::MAX, 0), BTreeSet::from([blob(1)]));
        // A revoked device's records count when its revocation kept them.
        let t = trust(&d, vec![by_revoked.record_id, early_by_revoked.record_id]);
        let l = Lifecycle::evaluate(recs, &t);
        assert_eq!(l.state(&photo(1)), State::Live);
        assert_eq!(l.state(&photo(3)), State::Purged);
    }

    #[test]
    fn in_the_trash_since_the_newest_counting_trash() {
        let d = devices();
        let t = trust(&d, vec![]);
        let first = signed(&d.a, Action::Trash, &[(1, Some(1))], 5);
        let restore = signed(&d.b, Action::Restore, &[(1, Some(1))], 6);
        let second = signed(&d.b, Action::Trash, &[(1, Some(1))], 8);
        let vault_trash = signed(&d.v, Action::Trash, &[(1, Some(1))], 9);
        for recs in [
            vec![&first, &second],
            vec![&second, &first],
            vec![&second, &restore, &first, &vault_trash],
        ] {
            assert_eq!(
                Lifecycle::evaluate(recs, &t).state(&photo(1)),
                State::InTrash { since_ms: 8 }
            );
        }
        assert_eq!(
            Lifecycle::evaluate([&first, &vault_trash], &t).state(&photo(1)),
            State::InTrash { since_ms: 5 }
        );
    }

    #[test]
    fn equal_timestamps_are_settled_by_record_id() {
        let d = devices();
        let t = trust(&d, vec![]);
        let trash = signed(&d.a, Action::Trash, &[(1, None)], 7);
        let restore = signed(&d.b, Action::Restore, &[(1, None)], 7);
        let expected = if trash.record_id > restore.record_id {
            State::InTrash { since_ms: 7 }
        } else {
            State::Live
        };
        assert_eq!(
            Lifecycle::evaluate([&trash, &restore], &t).state(&photo(1)),
            expected
        );
        assert_eq!(
            Lifecycle::evaluate([&restore, &trash], &t).state(&photo(1)),
            expected
        );
    }

    #[test]
    fn entries_carry_the_latest_blob_named() {
        let d = devices();
        let t = trust(&d, vec![]);
        let recs = [
            signed(&d.a, Action::Trash, &[(1, Some(1)), (2, None)], 10),
            signed(&d.a, Action::Restore, &[(1, None), (2, None)], 20),
            signed(&d.a, Action::Trash, &[(3, Some(3))], 5),
            signed(&d.a, Action::Trash, &[(3, Some(4))], 6),
        ];
        let l = Lifecycle::evaluate(&recs, &t);
        assert_eq!(
            l.entries().collect::<Vec<_>>(),
            [
                (photo(1), State::Live, Some(blob(1))),
                (photo(2), State::Live, None),
                (photo(3), State::InTrash { since_ms: 6 }, Some(blob(4))),
            ]
        );
        // Blob 3 was named for photo 3 too, so it is purgeable with it.
        assert_eq!(
            l.purgeable_blobs(106, 100),
            BTreeSet::from([blob(3), blob(4)])
        );
    }

    #[test]
    fn a_blob_is_purgeable_once_every_target_naming_it_is_done() {
        let d = devices();
        let t = trust(&d, vec![]);
        let one = signed(&d.a, Action::Trash, &[(1, Some(9))], 100);
        let two = signed(&d.a, Action::Trash, &[(2, Some(9)), (3, None)], 200);
        let l = Lifecycle::evaluate([&one], &t);
        assert!(l.purgeable_blobs(149, 50).is_empty());
        assert_eq!(l.purgeable_blobs(150, 50), BTreeSet::from([blob(9)]));
        let l = Lifecycle::evaluate([&one, &two], &t);
        assert!(
            l.purgeable_blobs(249, 50).is_empty(),
            "photo 2 is in the trash too recently"
        );
        assert_eq!(l.purgeable_blobs(250, 50), BTreeSet::from([blob(9)]));
        // A restore naming the blob keeps it, however long ago the trashes were.
        let restore = signed(&d.b, Action::Restore, &[(2, Some(9))], 300);
        let l = Lifecycle::evaluate([&one, &two, &restore], &t);
        assert!(l.purgeable_blobs(u64::MAX, 0).is_empty());
        // A purge needs no retention.
        let purge = signed(&d.a, Action::Purge, &[(4, Some(8))], 1_000);
        let l = Lifecycle::evaluate([&purge], &t);
        assert_eq!(l.purgeable_blobs(0, u64::MAX), BTreeSet::from([blob(8)]));
        // The retention saturates rather than wrapping.
        let late = signed(&d.a, Action::Trash, &[(5, Some(7))], u64::MAX - 1);
        let l = Lifecycle::evaluate([&late], &t);
        assert!(l.purgeable_blobs(u64::MAX - 1, 10).is_empty());
        assert_eq!(l.purgeable_blobs(u64::MAX, 10), BTreeSet::from([blob(7)]));
    }

    /// A generated record: signer index, action index, targets `(photo, blob)`, timestamp.
    type Spec = (usize, u8, Vec<(u8, Option<u8>)>, u64);

    /// Random lifecycle records over a few photos, blobs, signers and timestamps (few enough
    /// that they collide), with every other record the revoked device signed kept.
    fn random_records(specs: Vec<Spec>) -> (Vec<LifecycleRecord>, TrustSet) {
        let d = devices();
        let signers = [&d.a, &d.b, &d.v, &d.r, &d.x];
        let mut recs = Vec::new();
        for (signer, action, targets, at) in specs {
            let action = [Action::Trash, Action::Restore, Action::Purge][usize::from(action % 3)];
            let mut seen = BTreeSet::new();
            let targets: Vec<_> = targets
                .into_iter()
                .filter(|(r, _)| seen.insert(*r))
                .collect();
            recs.push(signed(
                signers[signer % signers.len()],
                action,
                &targets,
                at,
            ));
        }
        let kept = recs
            .iter()
            .filter(|r| r.signer == d.r.device_id())
            .step_by(2)
            .map(|r| r.record_id)
            .collect();
        (recs, trust(&d, kept))
    }

    /// The state by another route: sort the counting records naming `photo`, take the last.
    fn oracle(recs: &[LifecycleRecord], t: &TrustSet, photo: RecordId) -> State {
        let mut naming: Vec<&LifecycleRecord> = recs
            .iter()
            .filter(|r| t.counts(&r.signer, &r.record_id))
            .filter(|r| r.statement.targets.iter().any(|x| x.record == photo))
            .collect();
        if naming.iter().any(|r| r.statement.action == Action::Purge) {
            return State::Purged;
        }
        naming.sort_by_key(|r| (r.statement.created_at_ms, r.record_id));
        match naming.last() {
            Some(r) if r.statement.action == Action::Trash => State::InTrash {
                since_ms: r.statement.created_at_ms,
            },
            _ => State::Live,
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = bytes;
            if b.len() > 5 { b[..4].copy_from_slice(&MAGIC); b[4] = FORMAT_VERSION; }
            prop_assert!(LifecycleRecord::decode(&b).is_err());
        }

        /// Any order, and any duplication, of the same records gives the same lifecycle.
        #[test]
        fn the_lifecycle_is_a_function_of_the_set(
            specs in proptest::collection::vec(
                (0usize..5, any::<u8>(), proptest::collection::vec((0u8..5, proptest::option::of(0u8..3)), 1..4), 0u64..6),
                0..16,
            ),
            seed in any::<u64>(),
            duplicate in any::<prop::sample::Index>(),
        ) {
            let (recs, t) = random_records(specs);
            let expected = Lifecycle::evaluate(&recs, &t);
            let mut shuffled = recs.clone();
            if !recs.is_empty() {
                shuffled.push(recs[duplicate.index(recs.len())].clone());
            }
            shuffle(&mut shuffled, seed);
            let again = Lifecycle::evaluate(&shuffled, &t);
            prop_assert_eq!(again.entries().collect::<Vec<_>>(), expected.entries().collect::<Vec<_>>());
            prop_assert_eq!(again.purgeable_blobs(10, 3), expected.purgeable_blobs(10, 3));
            prop_assert_eq!(&again, &expected);
            for n in 0..5 {
                prop_assert_eq!(expected.state(&photo(n)), oracle(&recs, &t, photo(n)));
            }
            // Records that do not count change nothing.
            let counting: Vec<_> = recs.iter().filter(|r| t.counts(&r.signer, &r.record_id)).collect();
            prop_assert_eq!(Lifecycle::evaluate(counting, &t), expected);
        }
    }
}
