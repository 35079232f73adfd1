//! The mDNS advert: what a node publishes on the LAN so that members of its mesh can find it,
//! and nothing a stranger can use (`DISCOVERY.md`).
//!
//! A node advertises the service [`SERVICE_TYPE`] under an instance name and a host name that
//! are random per start ([`AdvertNames`]), with the port it listens on, its current addresses,
//! and two TXT entries: `v=1` and `t=` followed by the hex of a fresh random nonce, a sealed
//! flags byte and a 16-byte tag. The tag is keyed BLAKE3 of (nonce, device ID, sealed flags)
//! under the mesh's [`DiscoveryKey`], which is derived from the ID of the mesh's founding
//! membership record and rotated with the ID of each revocation ([`DiscoveryKeys`]): every
//! member holds those records (vaults included), and nobody else — a revoked device included
//! — has seen the last. A member recognises the advertiser by recomputing the tag for each
//! member it knows, under each key ([`Advert::identify`]); a stranger sees random bytes that
//! change at every start.
//!
//! The advert is a hint, not a credential: it says "a member of your mesh is at these
//! addresses". Whether the device there is who it claims is decided by the nQUIC handshake,
//! which only the holder of the member's Noise key can complete.
//!
//! This module draws no randomness: nonces and names come from bytes the caller drew.

use crate::identity::DeviceId;
use crate::membership::{MembershipRecord, Role, Statement, TrustSet};
use crate::record::RecordId;

/// The DNS-SD service type photomesh advertises and browses.
pub const SERVICE_TYPE: &str = "_photomesh._udp.local.";
/// The TXT key holding the advert format version.
pub const VERSION_KEY: &str = "v";
/// The advert format version this code writes and reads.
pub const VERSION: &str = "1";
/// The TXT key holding the hex of nonce, sealed flags and tag.
pub const TAG_KEY: &str = "t";
/// Bytes of random nonce in an advert.
pub const NONCE_LEN: usize = 16;
/// Bytes of tag in an advert.
pub const TAG_LEN: usize = 16;
/// Bytes in the `t` value before hex encoding: nonce, sealed flags, tag.
pub const ADVERT_LEN: usize = NONCE_LEN + 1 + TAG_LEN;
/// `derive_key` context of the mesh's first discovery key.
pub const DISCOVERY_KEY_CONTEXT: &str = "photomesh 2026-11-22 discovery key v1";
/// `derive_key` context of the key after each revocation.
pub const ROTATION_CONTEXT: &str = "photomesh 2026-12-06 discovery key rotation v1";

/// Domain separation inside the keyed hashes: the flags mask.
const MASK_DOMAIN: u8 = 1;
/// Domain separation inside the keyed hashes: the tag.
const TAG_DOMAIN: u8 = 2;

/// The key every member of one mesh shares for discovery, and strangers do not have.
#[derive(Clone, PartialEq, Eq)]
pub struct DiscoveryKey([u8; 32]);

impl std::fmt::Debug for DiscoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscoveryKey(..)")
    }
}

impl DiscoveryKey {
    /// The discovery key of the mesh whose founding membership record has this ID.
    pub fn from_founding_record(founding_record: &RecordId) -> Self {
        Self(blake3::derive_key(
            DISCOVERY_KEY_CONTEXT,
            &founding_record.0,
        ))
    }

    /// The discovery key of the mesh founded by `founder`, found among `records`: the
    /// founder's self-signed `full` introduction with the smallest record ID (the one
    /// `TrustSet::evaluate` anchors on). `None` if the records hold no founding record.
    pub fn for_mesh<'a>(
        founder: &DeviceId,
        records: impl IntoIterator<Item = &'a MembershipRecord>,
    ) -> Option<Self> {
        records
            .into_iter()
            .filter(|r| match &r.statement {
                Statement::Introduce(i) => {
                    r.signer == *founder
                        && DeviceId::from_signing_key(&i.signing_key) == *founder
                        && i.role == Role::Full
                }
                Statement::Revoke(_) | Statement::Share(_) | Statement::Rename(_) => false,
            })
            .map(|r| r.record_id)
            .min()
            .map(|id| Self::from_founding_record(&id))
    }

    /// The key after this one, rotated by the revocation whose record has this ID.
    pub fn rotated(&self, revocation: &RecordId) -> Self {
        let mut input = [0u8; 64];
        input[..32].copy_from_slice(&self.0);
        input[32..].copy_from_slice(&revocation.0);
        Self(blake3::derive_key(ROTATION_CONTEXT, &input))
    }

    /// The key as bytes (for test vectors).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mask(&self, nonce: &[u8; NONCE_LEN], device: &DeviceId) -> u8 {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[MASK_DOMAIN]);
        h.update(nonce);
        h.update(device.as_bytes());
        h.finalize().as_bytes()[0]
    }

    fn tag(&self, nonce: &[u8; NONCE_LEN], device: &DeviceId, sealed_flags: u8) -> [u8; TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[TAG_DOMAIN]);
        h.update(nonce);
        h.update(device.as_bytes());
        h.update(&[sealed_flags]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
        tag
    }
}

/// Every discovery key of a mesh, oldest first: the founding one, then one more after each
/// revocation. A node advertises under the newest and recognises adverts under any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryKeys(Vec<DiscoveryKey>);

impl DiscoveryKeys {
    /// The keys of the mesh founded by `founder`, from its membership `records`: the founding
    /// key ([`DiscoveryKey::for_mesh`]) rotated by each revoke record whose device the trust
    /// set holds revoked, in order of signing time, then record ID. `None` if the records hold
    /// no founding record.
    pub fn for_mesh(founder: &DeviceId, records: &[MembershipRecord]) -> Option<Self> {
        let first = DiscoveryKey::for_mesh(founder, records)?;
        let trust = TrustSet::evaluate(founder, records);
        let mut revocations: Vec<(u64, RecordId)> = records
            .iter()
            .filter_map(|r| match &r.statement {
                Statement::Revoke(revoke) if trust.is_revoked(&revoke.device) => {
                    Some((revoke.created_at_ms, r.record_id))
                }
                _ => None,
            })
            .collect();
        revocations.sort_unstable();
        revocations.dedup();
        Some(
            revocations
                .iter()
                .fold(Self::one(first), |keys, (_, id)| keys.then(id)),
        )
    }

    /// The newest key: the one to advertise under.
    pub fn current(&self) -> &DiscoveryKey {
        // Never empty: `for_mesh` puts the founding key first.
        &self.0[self.0.len() - 1]
    }

    /// Every key, newest first: the ones an advert is matched against.
    pub fn newest_first(&self) -> impl Iterator<Item = &DiscoveryKey> {
        self.0.iter().rev()
    }

    /// Just one key (a mesh with no revocation, and tests).
    pub fn one(key: DiscoveryKey) -> Self {
        Self(vec![key])
    }

    /// These keys and one more, rotated by the revocation whose record has this ID.
    pub fn then(mut self, revocation: &RecordId) -> Self {
        let next = self.current().rotated(revocation);
        self.0.push(next);
        self
    }
}

/// What an advert tells members besides who is advertising. Sealed: a stranger cannot read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// The device has AES instructions (so `Suite::choose` may pick AES-GCM).
    pub aes: bool,
}

impl Flags {
    const AES: u8 = 1;

    fn to_byte(self) -> u8 {
        if self.aes { Self::AES } else { 0 }
    }

    /// Unknown bits are ignored, so later versions can add flags.
    fn from_byte(byte: u8) -> Self {
        Self {
            aes: byte & Self::AES != 0,
        }
    }
}

/// The part of an advert that says who is advertising, to members only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    nonce: [u8; NONCE_LEN],
    sealed_flags: u8,
    tag: [u8; TAG_LEN],
}

/// Why TXT entries are not a photomesh advert this code can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    /// No `v` entry.
    #[error("the advert has no version (TXT key `v`)")]
    MissingVersion,
    /// A version this code does not know (a newer photomesh on the LAN).
    #[error("advert version {0:?} is not supported; this photomesh reads version 1")]
    Version(String),
    /// No `t` entry.
    #[error("the advert has no tag (TXT key `t`)")]
    MissingTag,
    /// The `t` entry is not hex of the right length.
    #[error("the advert's tag is not {} hex digits", ADVERT_LEN * 2)]
    BadTag,
}

impl Advert {
    /// The advert of `device` in the mesh with `key`, under a fresh random `nonce` the caller
    /// drew (a new one at every start).
    pub fn new(
        key: &DiscoveryKey,
        device: &DeviceId,
        flags: Flags,
        nonce: [u8; NONCE_LEN],
    ) -> Self {
        let sealed_flags = flags.to_byte() ^ key.mask(&nonce, device);
        Self {
            nonce,
            sealed_flags,
            tag: key.tag(&nonce, device, sealed_flags),
        }
    }

    /// The TXT entries to publish, as (key, value).
    pub fn txt(&self) -> [(&'static str, String); 2] {
        let mut bytes = Vec::with_capacity(ADVERT_LEN);
        bytes.extend_from_slice(&self.nonce);
        bytes.push(self.sealed_flags);
        bytes.extend_from_slice(&self.tag);
        [
            (VERSION_KEY, VERSION.to_owned()),
            (TAG_KEY, hex_lower(&bytes)),
        ]
    }

    /// Parses the values of the `v` and `t` TXT entries. Any input gives a result or an
    /// error, never a panic.
    pub fn parse(version: Option<&str>, tag: Option<&str>) -> Result<Self, AdvertError> {
        match version {
            None => return Err(AdvertError::MissingVersion),
            Some(VERSION) => {}
            Some(other) => {
                let shown: String = other.chars().take(16).collect();
                return Err(AdvertError::Version(shown));
            }
        }
        let tag = tag.ok_or(AdvertError::MissingTag)?;
        let bytes = parse_hex(tag).ok_or(AdvertError::BadTag)?;
        let bytes: [u8; ADVERT_LEN] = bytes.try_into().map_err(|_| AdvertError::BadTag)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&bytes[NONCE_LEN + 1..]);
        Ok(Self {
            nonce,
            sealed_flags: bytes[NONCE_LEN],
            tag: t,
        })
    }

    /// Which of `candidates` (the current members, as the caller knows them) published this
    /// advert in the mesh with `key`, and its flags; `None` for a stranger, a device of
    /// another mesh, or a tampered advert. Costs one keyed hash per candidate.
    pub fn identify<'a>(
        &self,
        key: &DiscoveryKey,
        candidates: impl IntoIterator<Item = &'a DeviceId>,
    ) -> Option<(DeviceId, Flags)> {
        let device = candidates.into_iter().find(|device| {
            constant_time_eq(&key.tag(&self.nonce, device, self.sealed_flags), &self.tag)
        })?;
        let flags = Flags::from_byte(self.sealed_flags ^ key.mask(&self.nonce, device));
        Some((*device, flags))
    }

    /// [`Advert::identify`] under each of the mesh's `keys`, newest first: an advertiser that
    /// has not yet heard of the latest revocation is recognised under the key before it.
    pub fn identify_any(
        &self,
        keys: &DiscoveryKeys,
        candidates: &[&DeviceId],
    ) -> Option<(DeviceId, Flags)> {
        keys.newest_first()
            .find_map(|key| self.identify(key, candidates.iter().copied()))
    }
}

/// The DNS names a node advertises under: random per start, so they neither name the device
/// nor stay the same across restarts or meshes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertNames {
    /// The service instance name (without the service type).
    pub instance: String,
    /// The host name the address records are published under, ending in `.local.`.
    pub host: String,
}

impl AdvertNames {
    /// Names from 8 random bytes the caller drew.
    pub fn new(random: [u8; 8]) -> Self {
        let hex = hex_lower(&random);
        Self {
            instance: format!("pm-{hex}"),
            host: format!("pm-{hex}.local."),
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn constant_time_eq(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
