//! The library key, its epochs, and every key derived from it.
//!
//! The library key is the one secret that lets a device read the library: `full` devices hold
//! it, `vault` devices never do. It has an *epoch*: revoking a device rotates to a fresh random
//! key with the next epoch number, content sealed from then on uses the new epoch, and the
//! older epochs stay in the [`KeyRing`] so what they sealed stays readable.
//!
//! Every working key is derived from an epoch's secret with BLAKE3 `derive_key`, each use with
//! its own context string (written down here and in `SEALING.md`):
//!
//! | key | context | key material |
//! |---|---|---|
//! | content key | [`CONTENT_KEY_CONTEXT`] | secret ‖ epoch (u32 LE) |
//! | record key | [`RECORD_KEY_CONTEXT`] | secret ‖ epoch (u32 LE) |
//! | record nonce key | [`RECORD_NONCE_CONTEXT`] | secret ‖ epoch (u32 LE) |
//! | file key | [`FILE_KEY_CONTEXT`] | content key ‖ plaintext BLAKE3 hash |
//!
//! The file key depends only on the epoch and the plaintext, so the same photo sealed on two
//! devices gives the same blob (convergent encryption; it reveals to holders of the library
//! key that two blobs are the same photo, which is what deduplication needs, and nothing to a
//! vault).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `derive_key` context of the content key.
pub const CONTENT_KEY_CONTEXT: &str = "photomesh 2026-11-22 content key v1";
/// `derive_key` context of the record key.
pub const RECORD_KEY_CONTEXT: &str = "photomesh 2026-11-22 record key v1";
/// `derive_key` context of the key that derives a record's synthetic nonce.
pub const RECORD_NONCE_CONTEXT: &str = "photomesh 2026-11-22 record nonce key v1";
/// `derive_key` context of a file key.
pub const FILE_KEY_CONTEXT: &str = "photomesh 2026-11-22 file key v1";

/// A key epoch number. The first library key has epoch 1.
pub type Epoch = u32;

/// One epoch of the library key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryKey {
    epoch: Epoch,
    secret: [u8; 32],
}

impl LibraryKey {
    /// Wraps a secret the caller drew from a cryptographic generator.
    pub fn new(epoch: Epoch, secret: [u8; 32]) -> Self {
        Self { epoch, secret }
    }

    /// The epoch number.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The secret bytes (for storing and for the recovery phrase).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    fn derive(&self, context: &str) -> [u8; 32] {
        let mut material = [0u8; 36];
        material[..32].copy_from_slice(&self.secret);
        material[32..].copy_from_slice(&self.epoch.to_le_bytes());
        blake3::derive_key(context, &material)
    }

    /// The key from which every file key of this epoch is derived.
    pub fn content_key(&self) -> ContentKey {
        ContentKey {
            epoch: self.epoch,
            key: self.derive(CONTENT_KEY_CONTEXT),
        }
    }

    /// The key that seals records of this epoch.
    pub fn record_key(&self) -> [u8; 32] {
        self.derive(RECORD_KEY_CONTEXT)
    }

    /// The key of the keyed BLAKE3 hash that gives a record its nonce (see `SEALING.md`).
    pub fn record_nonce_key(&self) -> [u8; 32] {
        self.derive(RECORD_NONCE_CONTEXT)
    }
}

impl fmt::Debug for LibraryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LibraryKey(epoch {})", self.epoch)
    }
}

/// The content key of one epoch: derives file keys.
#[derive(Clone)]
pub struct ContentKey {
    epoch: Epoch,
    key: [u8; 32],
}

impl ContentKey {
    /// The epoch this key belongs to.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The key that seals the photo whose plaintext BLAKE3 hash is `plaintext_hash`.
    pub fn file_key(&self, plaintext_hash: &[u8; 32]) -> FileKey {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.key);
        material[32..].copy_from_slice(plaintext_hash);
        FileKey {
            epoch: self.epoch,
            key: blake3::derive_key(FILE_KEY_CONTEXT, &material),
        }
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentKey(epoch {})", self.epoch)
    }
}

/// The key that seals one photo's content.
#[derive(Clone)]
pub struct FileKey {
    pub(crate) epoch: Epoch,
    pub(crate) key: [u8; 32],
}

impl FileKey {
    /// The epoch the key was derived in; it is written in the sealed header.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileKey(epoch {})", self.epoch)
    }
}

/// Every epoch of the library key a device holds; the newest seals, all of them open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    epochs: BTreeMap<Epoch, LibraryKey>,
}

/// Why a key ring could not take a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// The ring already holds a different key for that epoch.
    #[error("the key ring already holds a different key for epoch {0}")]
    Conflict(Epoch),
}

impl KeyRing {
    /// A ring holding one key.
    pub fn new(first: LibraryKey) -> Self {
        let mut ring = Self::default();
        ring.epochs.insert(first.epoch, first);
        ring
    }

    /// Adds an epoch's key; adding the same key twice is harmless.
    pub fn insert(&mut self, key: LibraryKey) -> Result<(), KeyRingError> {
        match self.epochs.get(&key.epoch) {
            Some(existing) if *existing != key => Err(KeyRingError::Conflict(key.epoch)),
            _ => {
                self.epochs.insert(key.epoch, key);
                Ok(())
            }
        }
    }

    /// The newest epoch's key, which seals everything new. `None` only for an empty ring.
    pub fn current(&self) -> Option<&LibraryKey> {
        self.epochs.values().next_back()
    }

    /// The key of `epoch`, if this ring holds it.
    pub fn get(&self, epoch: Epoch) -> Option<&LibraryKey> {
        self.epochs.get(&epoch)
    }

    /// Every key, oldest epoch first.
    pub fn iter(&self) -> impl Iterator<Item = &LibraryKey> {
        self.epochs.values()
    }
}

/// Why a recovery phrase was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryPhraseError {
    /// A character outside the phrase alphabet.
    #[error(
        "character {position} ({character:?}) cannot appear in a recovery phrase; phrases use A-Z and 2-7"
    )]
    Character {
        /// 1-based position (dashes and spaces not counted).
        position: usize,
        /// The character.
        character: char,
    },
    /// Not a whole phrase.
    #[error(
        "this is not a whole recovery phrase ({0} characters); check that every group was copied"
    )]
    Length(usize),
    /// The check value does not match: a typo.
    #[error("the recovery phrase has a typo: its check value does not match")]
    Check,
    /// A format this build does not read.
    #[error("recovery phrase format {0} is not supported by this photomesh")]
    Version(u8),
}

/// Recovery phrase format version.
const RECOVERY_VERSION: u8 = 1;

/// A phrase's bytes (base32, any case, dashes and spaces ignored) and how many characters it
/// had, or what is wrong with its characters.
pub(crate) fn decode_phrase(phrase: &str) -> Result<(Vec<u8>, usize), RecoveryPhraseError> {
    use crate::base32::{Base32Error, decode};
    decode(phrase).map_err(|e| match e {
        Base32Error::Character {
            position,
            character,
        } => RecoveryPhraseError::Character {
            position,
            character,
        },
        Base32Error::Length(n) => RecoveryPhraseError::Length(n),
    })
}

impl KeyRing {
    /// The ring as a recovery phrase: base32 in groups of five, with a check value. It holds
    /// every epoch's key, so whoever has it can read the whole library.
    pub fn to_recovery_phrase(&self) -> String {
        let mut bytes = vec![RECOVERY_VERSION];
        for key in self.epochs.values() {
            bytes.extend_from_slice(&key.epoch.to_le_bytes());
            bytes.extend_from_slice(&key.secret);
        }
        let check = blake3::hash(&bytes);
        bytes.extend_from_slice(&check.as_bytes()[..4]);
        crate::base32::grouped(&bytes, 5)
    }

    /// Reads a recovery phrase back.
    pub fn from_recovery_phrase(phrase: &str) -> Result<Self, RecoveryPhraseError> {
        let (bytes, chars) = decode_phrase(phrase)?;
        if bytes.len() < 1 + 36 + 4 || (bytes.len() - 5) % 36 != 0 {
            return Err(RecoveryPhraseError::Length(chars));
        }
        let (body, check) = bytes.split_at(bytes.len() - 4);
        if blake3::hash(body).as_bytes()[..4] != *check {
            return Err(RecoveryPhraseError::Check);
        }
        if body[0] != RECOVERY_VERSION {
            return Err(RecoveryPhraseError::Version(body[0]));
        }
        let mut ring = Self::default();
        for entry in body[1..].chunks_exact(36) {
            let mut epoch = [0u8; 4];
            epoch.copy_from_slice(&entry[..4]);
            let mut secret = [0u8; 32];
            secret.copy_from_slice(&entry[4..]);
            // Each epoch appears once in a phrase this code wrote; a repeat is a damaged one.
            ring.insert(LibraryKey::new(Epoch::from_le_bytes(epoch), secret))
                .map_err(|_| RecoveryPhraseError::Check)?;
        }
        Ok(ring)
    }

    /// Whether the ring holds no key (a `vault` device's).
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_use_epoch_and_content() {
        let a = LibraryKey::new(1, [1; 32]);
        let b = LibraryKey::new(2, [1; 32]);
        assert_ne!(a.content_key().key, a.record_key());
        assert_ne!(a.content_key().key, b.content_key().key);
        let ck = a.content_key();
        assert_ne!(ck.file_key(&[0; 32]).key, ck.file_key(&[1; 32]).key);
        assert_eq!(ck.file_key(&[0; 32]).key, ck.file_key(&[0; 32]).key);
    }

    #[test]
    fn recovery_phrase_round_trips_and_catches_typos() {
        let mut ring = KeyRing::new(LibraryKey::new(1, [1; 32]));
        ring.insert(LibraryKey::new(2, [2; 32])).unwrap();
        let phrase = ring.to_recovery_phrase();
        assert_eq!(KeyRing::from_recovery_phrase(&phrase), Ok(ring.clone()));
        assert_eq!(
            KeyRing::from_recovery_phrase(&phrase.to_lowercase().replace('-', " ")),
            Ok(ring)
        );
        let mut typo: Vec<char> = phrase.chars().collect();
        typo[3] = if typo[3] == 'Q' { 'R' } else { 'Q' };
        assert_eq!(
            KeyRing::from_recovery_phrase(&typo.into_iter().collect::<String>()),
            Err(RecoveryPhraseError::Check)
        );
        assert!(matches!(
            KeyRing::from_recovery_phrase(&phrase[..30]),
            Err(RecoveryPhraseError::Length(_))
        ));
    }

    #[test]
    fn ring_keeps_old_epochs_and_refuses_conflicts() {
        let mut ring = KeyRing::new(LibraryKey::new(1, [1; 32]));
        ring.insert(LibraryKey::new(2, [2; 32])).unwrap();
        ring.insert(LibraryKey::new(2, [2; 32])).unwrap();
        assert_eq!(ring.current().map(LibraryKey::epoch), Some(2));
        assert!(ring.get(1).is_some());
        assert_eq!(
            ring.insert(LibraryKey::new(1, [9; 32])),
            Err(KeyRingError::Conflict(1))
        );
    }
}
