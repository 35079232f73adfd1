//! Device identity: the keys a device is known by, and its device ID.
//!
//! A device has two key pairs: an Ed25519 *signing key*, which is its identity (it signs
//! membership records), and an X25519 *noise key*, its static key in the Noise handshakes
//! that protect every connection. The membership record that introduces a device binds the
//! two together.
//!
//! The [`DeviceId`] is derived from the Ed25519 public key and shown to people as three groups
//! of eleven base32 characters, the last of which is a check character, so a mistyped ID is
//! caught instead of naming some other device.
//!
//! This module draws no randomness: [`DeviceKeys::from_secrets`] takes secret bytes the caller
//! drew (the node uses the OS generator; tests use fixed bytes).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// BLAKE3 `derive_key` context for the device ID. Changing it changes every device ID.
pub const DEVICE_ID_CONTEXT: &str = "photomesh 2026-11-22 device id v1";

/// Number of bytes of the BLAKE3 output kept as the device ID (160 bits).
pub const DEVICE_ID_LEN: usize = 20;

/// Base32 characters that carry the 160 ID bits.
const DATA_CHARS: usize = 32;
/// Characters per displayed group.
const GROUP: usize = 11;

/// A device's identity as shown to people and stored in records: 160 bits derived from its
/// Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId([u8; DEVICE_ID_LEN]);

/// Why a typed device ID was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// The ID has the wrong number of characters (dashes and spaces are not counted).
    #[error(
        "a device ID has {expected} characters (not counting dashes), this one has {found}; \
         check that it was copied whole"
    )]
    Length {
        /// How many characters a device ID has.
        expected: usize,
        /// How many were given.
        found: usize,
    },
    /// A character that is not in the ID alphabet.
    #[error(
        "character {position} ({character:?}) cannot appear in a device ID; IDs use A-Z and 2-7"
    )]
    Character {
        /// 1-based position among the ID's characters (dashes and spaces not counted).
        position: usize,
        /// The character found there.
        character: char,
    },
    /// Every character is valid but the check character does not match: a typo.
    #[error("the device ID's check character does not match: a character was mistyped")]
    Check,
}

impl DeviceId {
    /// Derives the device ID of the device whose Ed25519 public key is `signing_public`.
    pub fn from_signing_key(signing_public: &[u8; 32]) -> Self {
        let hash = blake3::derive_key(DEVICE_ID_CONTEXT, signing_public);
        let mut id = [0u8; DEVICE_ID_LEN];
        id.copy_from_slice(&hash[..DEVICE_ID_LEN]);
        Self(id)
    }

    /// The raw ID bytes.
    pub fn as_bytes(&self) -> &[u8; DEVICE_ID_LEN] {
        &self.0
    }

    /// Wraps raw ID bytes (as stored in a record).
    pub const fn from_bytes(bytes: [u8; DEVICE_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The first eight characters: enough to tell devices apart in logs and lists.
    pub fn short(&self) -> String {
        data_digits(&self.0)[..8]
            .iter()
            .map(|&d| crate::base32::char_of(d))
            .collect()
    }
}

/// The 32 base32 characters (values 0..32) of the ID bytes, before the check character.
fn data_digits(bytes: &[u8; DEVICE_ID_LEN]) -> [u8; DATA_CHARS] {
    let mut digits = [0u8; DATA_CHARS];
    // 160 bits = 32 groups of five, big-endian.
    for (i, digit) in digits.iter_mut().enumerate() {
        let bit = i * 5;
        let byte = bit / 8;
        let shift = bit % 8;
        let hi = u16::from(bytes[byte]) << 8;
        let lo = bytes.get(byte + 1).copied().map_or(0, u16::from);
        *digit = (((hi | lo) >> (11 - shift)) & 0x1f) as u8;
    }
    digits
}

/// Luhn mod 32 check digit over base32 digits: catches every single-character error and
/// every transposition of two adjacent characters.
fn check_digit(digits: &[u8]) -> u8 {
    let mut factor = 2u32;
    let mut sum = 0u32;
    for &d in digits.iter().rev() {
        let addend = factor * u32::from(d);
        sum += addend / 32 + addend % 32;
        factor = if factor == 2 { 1 } else { 2 };
    }
    ((32 - sum % 32) % 32) as u8
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = data_digits(&self.0);
        let chars = digits
            .iter()
            .copied()
            .chain([check_digit(&digits)])
            .map(crate::base32::char_of);
        for (i, c) in chars.enumerate() {
            if i > 0 && i % GROUP == 0 {
                f.write_str("-")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.short())
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    /// Parses an ID as people type it: case does not matter, dashes and spaces are ignored,
    /// and the digits 0, 1 and 8 are read as the letters O, I and B they are mistaken for.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = crate::base32::digits(s).map_err(|e| match e {
            crate::base32::Base32Error::Character {
                position,
                character,
            } => DeviceIdError::Character {
                position,
                character,
            },
            crate::base32::Base32Error::Length(found) => DeviceIdError::Length {
                expected: DATA_CHARS + 1,
                found,
            },
        })?;
        if digits.len() != DATA_CHARS + 1 {
            return Err(DeviceIdError::Length {
                expected: DATA_CHARS + 1,
                found: digits.len(),
            });
        }
        let (data, check) = digits.split_at(DATA_CHARS);
        if check_digit(data) != check[0] {
            return Err(DeviceIdError::Check);
        }
        let mut bytes = [0u8; DEVICE_ID_LEN];
        let mut acc = 0u64;
        let mut bits = 0;
        let mut out = 0;
        for &d in data {
            acc = (acc << 5) | u64::from(d);
            bits += 5;
            while bits >= 8 {
                bits -= 8;
                bytes[out] = (acc >> bits) as u8;
                out += 1;
            }
        }
        Ok(Self(bytes))
    }
}

/// A device's secret keys: its Ed25519 signing key and its X25519 noise key.
pub struct DeviceKeys {
    signing: SigningKey,
    noise_secret: [u8; 32],
}

impl DeviceKeys {
    /// Builds the keys from secret bytes the caller drew from a cryptographic generator.
    pub fn from_secrets(signing_secret: [u8; 32], noise_secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&signing_secret),
            noise_secret,
        }
    }

    /// The Ed25519 secret key bytes, for storing in the home directory.
    pub fn signing_secret(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The X25519 secret key bytes, for storing and for the Noise handshake.
    pub fn noise_secret(&self) -> [u8; 32] {
        self.noise_secret
    }

    /// The Ed25519 public key.
    pub fn signing_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The X25519 public key: the device's static key in Noise handshakes.
    pub fn noise_public(&self) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(self.noise_secret);
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }

    /// This device's ID.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_signing_key(&self.signing_public())
    }

    /// Signs `message` with the device's Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        write!(f, "DeviceKeys({})", self.device_id().short())
    }
}

/// Checks an Ed25519 signature made by [`DeviceKeys::sign`].
pub fn verify_signature(signing_public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(signing_public) else {
        return false;
    };
    key.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> DeviceKeys {
        DeviceKeys::from_secrets([7; 32], [9; 32])
    }

    #[test]
    fn display_round_trips() {
        let id = keys().device_id();
        let text = id.to_string();
        assert_eq!(text.len(), 35, "{text}");
        assert_eq!(text.matches('-').count(), 2);
        assert_eq!(text.parse::<DeviceId>(), Ok(id));
        assert_eq!(text.to_lowercase().replace('-', " ").parse(), Ok(id));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let text: Vec<char> = keys()
            .device_id()
            .to_string()
            .chars()
            .filter(|c| *c != '-')
            .collect();
        for i in 0..text.len() {
            for replacement in (0..32).map(crate::base32::char_of) {
                if replacement == text[i] {
                    continue;
                }
                let mut typo = text.clone();
                typo[i] = replacement;
                let typo: String = typo.into_iter().collect();
                assert_eq!(
                    typo.parse::<DeviceId>(),
                    Err(DeviceIdError::Check),
                    "{typo}"
                );
            }
        }
    }

    #[test]
    fn adjacent_transpositions_are_caught() {
        let text: Vec<char> = keys()
            .device_id()
            .to_string()
            .chars()
            .filter(|c| *c != '-')
            .collect();
        for i in 0..text.len() - 1 {
            if text[i] == text[i + 1] {
                continue;
            }
            let mut swapped = text.clone();
            swapped.swap(i, i + 1);
            let swapped: String = swapped.into_iter().collect();
            assert!(swapped.parse::<DeviceId>().is_err(), "{swapped}");
        }
    }

    #[test]
    fn bad_ids_name_the_problem() {
        assert_eq!(
            "ABC".parse::<DeviceId>(),
            Err(DeviceIdError::Length {
                expected: 33,
                found: 3
            })
        );
        let mut text = keys().device_id().to_string();
        text.replace_range(4..5, "!");
        assert_eq!(
            text.parse::<DeviceId>(),
            Err(DeviceIdError::Character {
                position: 5,
                character: '!'
            })
        );
    }

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let keys = keys();
        let signature = keys.sign(b"introduce");
        assert!(verify_signature(
            &keys.signing_public(),
            b"introduce",
            &signature
        ));
        assert!(!verify_signature(
            &keys.signing_public(),
            b"introduce!",
            &signature
        ));
    }
}
