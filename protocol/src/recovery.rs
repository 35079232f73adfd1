//! The recovery phrase and the keys it derives (`PAIRING.md`, "Recovery identity and
//! recovery phrase").
//!
//! A version 2 phrase holds a 32-byte seed and the founder's device ID. The seed derives the
//! recovery identity's device keys (a member with role `recovery`) and the mesh's recovery
//! responder key; the founder ID anchors the trust set the recovering device evaluates. A
//! version 1 phrase (the key ring itself, from before recovery identities) still reads.

use crate::identity::{DEVICE_ID_LEN, DeviceId, DeviceKeys};
use crate::keys::{KeyRing, RecoveryPhraseError};

/// `derive_key` context of the recovery identity's Ed25519 secret.
pub const SIGNING_CONTEXT: &str = "photomesh 2026-12-06 recovery signing key v1";
/// `derive_key` context of the recovery identity's X25519 (noise) secret.
pub const NOISE_CONTEXT: &str = "photomesh 2026-12-06 recovery noise key v1";
/// `derive_key` context of the recovery responder secret.
pub const RESPONDER_CONTEXT: &str = "photomesh 2026-12-06 recovery responder key v1";
/// The name the recovery identity is introduced with.
pub const IDENTITY_NAME: &str = "recovery key";

const VERSION: u8 = 2;
const LEN: usize = 1 + 32 + DEVICE_ID_LEN + 4;

/// A mesh's recovery key: the seed and the founder it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey {
    seed: [u8; 32],
    founder: DeviceId,
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryKey(mesh founded by {})", self.founder)
    }
}

/// What a phrase read back holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phrase {
    /// Version 1: a key ring, for a new mesh.
    KeyRing(KeyRing),
    /// Version 2: a recovery key, to rejoin the mesh.
    Recovery(RecoveryKey),
}

impl RecoveryKey {
    /// The key of the mesh founded by `founder`, from a seed of fresh random bytes.
    pub fn new(seed: [u8; 32], founder: DeviceId) -> Self {
        Self { seed, founder }
    }

    /// The seed (for `recovery.key`).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The founder of the mesh it recovers.
    pub fn founder(&self) -> DeviceId {
        self.founder
    }

    /// The recovery identity's device keys.
    pub fn identity(&self) -> DeviceKeys {
        DeviceKeys::from_secrets(
            blake3::derive_key(SIGNING_CONTEXT, &self.seed),
            blake3::derive_key(NOISE_CONTEXT, &self.seed),
        )
    }

    /// The recovery responder secret (an X25519 private key) every member holds.
    pub fn responder_secret(&self) -> [u8; 32] {
        blake3::derive_key(RESPONDER_CONTEXT, &self.seed)
    }

    /// The phrase: base32 in groups of five, with a check value.
    pub fn to_phrase(&self) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.seed);
        bytes.extend_from_slice(self.founder.as_bytes());
        let check = blake3::hash(&bytes);
        bytes.extend_from_slice(&check.as_bytes()[..4]);
        crate::base32::grouped(&bytes, 5)
    }
}

impl Phrase {
    /// Reads a phrase of either version. Any text gives a phrase or an error naming the
    /// problem (a foreign character, a missing group, a typo, an unknown version).
    pub fn parse(text: &str) -> Result<Self, RecoveryPhraseError> {
        let (bytes, chars) = crate::keys::decode_phrase(text)?;
        if bytes.len() < 5 {
            return Err(RecoveryPhraseError::Length(chars));
        }
        if bytes[0] == 1 {
            return KeyRing::from_recovery_phrase(text).map(Self::KeyRing);
        }
        if bytes.len() != LEN {
            // A version byte this build does not know, or a cut-short phrase: the check
            // value tells them apart.
            return Err(match check_ok(&bytes) {
                true if bytes[0] != VERSION => RecoveryPhraseError::Version(bytes[0]),
                _ => RecoveryPhraseError::Length(chars),
            });
        }
        if !check_ok(&bytes) {
            return Err(RecoveryPhraseError::Check);
        }
        if bytes[0] != VERSION {
            return Err(RecoveryPhraseError::Version(bytes[0]));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[1..33]);
        let mut founder = [0u8; DEVICE_ID_LEN];
        founder.copy_from_slice(&bytes[33..33 + DEVICE_ID_LEN]);
        Ok(Self::Recovery(RecoveryKey {
            seed,
            founder: DeviceId::from_bytes(founder),
        }))
    }
}

fn check_ok(bytes: &[u8]) -> bool {
    let (body, check) = bytes.split_at(bytes.len() - 4);
    blake3::hash(body).as_bytes()[..4] == *check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LibraryKey;

    fn key() -> RecoveryKey {
        RecoveryKey::new([3; 32], DeviceId::from_bytes([4; DEVICE_ID_LEN]))
    }

    #[test]
    fn a_phrase_round_trips_and_names_its_faults() {
        let phrase = key().to_phrase();
        assert_eq!(Phrase::parse(&phrase), Ok(Phrase::Recovery(key())));
        assert_eq!(
            Phrase::parse(&phrase.to_lowercase().replace('-', " ")),
            Ok(Phrase::Recovery(key()))
        );
        let mut typo: Vec<char> = phrase.chars().collect();
        typo[7] = if typo[7] == 'Q' { 'R' } else { 'Q' };
        assert_eq!(
            Phrase::parse(&typo.into_iter().collect::<String>()),
            Err(RecoveryPhraseError::Check)
        );
        assert!(matches!(
            Phrase::parse(&phrase[..40]),
            Err(RecoveryPhraseError::Length(_))
        ));
        assert!(matches!(
            Phrase::parse("AAAA!AAA"),
            Err(RecoveryPhraseError::Character { position: 5, .. })
        ));
        // A well-formed phrase of a version this build does not know.
        let mut bytes = vec![9u8; 20];
        let check = blake3::hash(&bytes);
        bytes.extend_from_slice(&check.as_bytes()[..4]);
        assert_eq!(
            Phrase::parse(&crate::base32::grouped(&bytes, 5)),
            Err(RecoveryPhraseError::Version(9))
        );
    }

    #[test]
    fn a_version_1_phrase_still_reads_as_a_key_ring() {
        let ring = KeyRing::new(LibraryKey::new(1, [1; 32]));
        assert_eq!(
            Phrase::parse(&ring.to_recovery_phrase()),
            Ok(Phrase::KeyRing(ring))
        );
    }

    #[test]
    fn derived_keys_are_distinct_and_fixed() {
        let k = key();
        let identity = k.identity();
        assert_ne!(identity.signing_secret(), identity.noise_secret());
        assert_ne!(identity.noise_secret(), k.responder_secret());
        assert_eq!(
            identity.noise_secret(),
            blake3::derive_key("photomesh 2026-12-06 recovery noise key v1", &[3; 32])
        );
        assert_eq!(
            hex::encode(k.responder_secret()),
            FIXED_RESPONDER,
            "the responder secret of a fixed seed changed"
        );
        assert_eq!(k.to_phrase(), FIXED_PHRASE);
        let other = RecoveryKey::new([5; 32], k.founder());
        assert_ne!(other.identity().device_id(), identity.device_id());
    }

    const FIXED_RESPONDER: &str =
        "8cd8cedf6a68043721d1c3ace4f995df2e9ea183cb12fa40ca3060b0075af18f";
    const FIXED_PHRASE: &str = "AIBQG-AYDAM-BQGAY-DAMBQ-GAYDA-MBQGA-YDAMB-QGAYD-AMBQG-AYDAM-BQGBA-EAQCA-IBAEA-QCAIB-AEAQC-AIBAE-AQCAI-GGZMH-OQ";
}
