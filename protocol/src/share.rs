//! Key shares: a 32-byte secret sealed to one member's noise key, inside a signed membership
//! record (`PAIRING.md`, "Key shares").
//!
//! A share carries an epoch of the library key to a `full` member or the recovery identity,
//! or a recovery identity's responder secret to any member. It rides in the membership record
//! set, so a vault stores and relays shares it cannot open, and a key rotated on one device
//! reaches the others through whichever member they meet.
//!
//! ```text
//! dh     = X25519(ephemeral secret, recipient noise key) = X25519(recipient secret, ephemeral)
//! key    = derive_key(SHARE_KEY_CONTEXT, dh ‖ ephemeral ‖ recipient noise key)
//! sealed = ChaCha20-Poly1305(key, nonce 0, aad = postcard((to, item)), secret)
//! ```
//!
//! The ephemeral key is fresh for each share, so each key seals once and the zero nonce is
//! safe. An all-zero `dh` (a low-order ephemeral) is refused.

use ring::aead;
use serde::{Deserialize, Serialize};

use crate::identity::DeviceId;
use crate::keys::Epoch;

/// `derive_key` context of a share's sealing key.
pub const SHARE_KEY_CONTEXT: &str = "photomesh 2026-12-06 key share v1";
/// Length of a sealed secret: 32 bytes and the 16-byte tag.
pub const SEALED_LEN: usize = 48;

/// What a share carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Item {
    /// The library key of this epoch.
    LibraryKey(Epoch),
    /// The responder secret of the recovery identity with this device ID.
    Responder(DeviceId),
}

/// A sealed share, as a membership statement carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The member it is sealed to.
    pub to: DeviceId,
    /// What it carries.
    pub item: Item,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    /// The sealed secret ([`SEALED_LEN`] bytes).
    pub sealed: Vec<u8>,
    /// When it was signed, in ms since the Unix epoch (informational).
    pub created_at_ms: u64,
}

/// Why a share did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// The sealed part is not [`SEALED_LEN`] bytes.
    #[error("a key share's sealed part is {0} bytes, not {SEALED_LEN}")]
    Length(usize),
    /// The ephemeral key is of low order: no secret could have been agreed with it.
    #[error("a key share's ephemeral key is invalid")]
    Ephemeral,
    /// The secret did not open with this key: the share was sealed to someone else, or
    /// changed on the way.
    #[error("a key share did not open with this device's key")]
    Open,
}

impl Share {
    /// Seals `secret` to the member `to`, whose noise key is `to_noise_key`.
    /// `ephemeral_secret` must be fresh random bytes, used for this share only.
    pub fn seal(
        to: DeviceId,
        to_noise_key: &[u8; 32],
        item: Item,
        secret: &[u8; 32],
        ephemeral_secret: [u8; 32],
        created_at_ms: u64,
    ) -> Result<Self, ShareError> {
        let ephemeral_secret = x25519_dalek::StaticSecret::from(ephemeral_secret);
        let ephemeral = x25519_dalek::PublicKey::from(&ephemeral_secret).to_bytes();
        let dh = ephemeral_secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*to_noise_key))
            .to_bytes();
        let key = sealing_key(&dh, &ephemeral, to_noise_key)?;
        let mut sealed = secret.to_vec();
        key.seal_in_place_append_tag(nonce(), aead::Aad::from(aad(&to, &item)), &mut sealed)
            .map_err(|_| ShareError::Open)?;
        Ok(Self {
            to,
            item,
            ephemeral,
            sealed,
            created_at_ms,
        })
    }

    /// Opens the share with the recipient's noise secret.
    pub fn open(&self, noise_secret: &[u8; 32]) -> Result<[u8; 32], ShareError> {
        if self.sealed.len() != SEALED_LEN {
            return Err(ShareError::Length(self.sealed.len()));
        }
        let secret = x25519_dalek::StaticSecret::from(*noise_secret);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        let dh = secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(self.ephemeral))
            .to_bytes();
        let key = sealing_key(&dh, &self.ephemeral, &public)?;
        let mut buffer = self.sealed.clone();
        let opened = key
            .open_in_place(
                nonce(),
                aead::Aad::from(aad(&self.to, &self.item)),
                &mut buffer,
            )
            .map_err(|_| ShareError::Open)?;
        <[u8; 32]>::try_from(&opened[..]).map_err(|_| ShareError::Open)
    }
}

fn sealing_key(
    dh: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<aead::LessSafeKey, ShareError> {
    if dh.iter().all(|b| *b == 0) {
        return Err(ShareError::Ephemeral);
    }
    let mut material = [0u8; 96];
    material[..32].copy_from_slice(dh);
    material[32..64].copy_from_slice(ephemeral);
    material[64..].copy_from_slice(recipient);
    let key = blake3::derive_key(SHARE_KEY_CONTEXT, &material);
    // A 32-byte key is exactly ChaCha20-Poly1305's key length.
    aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key)
        .map(aead::LessSafeKey::new)
        .map_err(|_| ShareError::Open)
}

fn nonce() -> aead::Nonce {
    aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN])
}

fn aad(to: &DeviceId, item: &Item) -> Vec<u8> {
    // Encoding a device ID and an item into a Vec cannot fail.
    postcard::to_stdvec(&(to, item)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_public(secret: &[u8; 32]) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
    }

    const TO_SECRET: [u8; 32] = [7; 32];
    const TO: DeviceId = DeviceId::from_bytes([9; 20]);

    fn share() -> Share {
        Share::seal(
            TO,
            &noise_public(&TO_SECRET),
            Item::LibraryKey(2),
            &[0xAB; 32],
            [5; 32],
            1,
        )
        .unwrap()
    }

    #[test]
    fn a_share_opens_for_its_recipient_only() {
        let s = share();
        assert_eq!(s.open(&TO_SECRET), Ok([0xAB; 32]));
        assert_eq!(s.open(&[8; 32]), Err(ShareError::Open));
    }

    #[test]
    fn fixed_vector() {
        // Recomputed here from the specification's formula, step by step, so that a change
        // to the code's derivation fails this test.
        let s = share();
        let eph = x25519_dalek::StaticSecret::from([5u8; 32]);
        assert_eq!(s.ephemeral, x25519_dalek::PublicKey::from(&eph).to_bytes());
        let dh = eph
            .diffie_hellman(&x25519_dalek::PublicKey::from(noise_public(&TO_SECRET)))
            .to_bytes();
        let mut material = dh.to_vec();
        material.extend_from_slice(&s.ephemeral);
        material.extend_from_slice(&noise_public(&TO_SECRET));
        let key = blake3::derive_key("photomesh 2026-12-06 key share v1", &material);
        let mut expected = vec![0xAB; 32];
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key).unwrap())
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key([0; 12]),
                aead::Aad::from(postcard::to_stdvec(&(TO, Item::LibraryKey(2))).unwrap()),
                &mut expected,
            )
            .unwrap();
        assert_eq!(s.sealed, expected);
        assert_eq!(
            hex::encode(&s.sealed),
            FIXED_SEALED,
            "the sealed bytes of this fixed input changed"
        );
    }

    /// The sealed bytes of [`share`], as the specification's formula gives them.
    const FIXED_SEALED: &str = "dcf331e3695c6242157cd7e465eeab3c664a2e3aeab68e4761b64bc74974eebb20ec61aaebf1cacc697ad707daa0085a";

    #[test]
    fn changed_fields_do_not_open() {
        let good = share();
        let mut s = good.clone();
        s.item = Item::LibraryKey(3);
        assert_eq!(s.open(&TO_SECRET), Err(ShareError::Open), "epoch is bound");
        let mut s = good.clone();
        s.to = DeviceId::from_bytes([8; 20]);
        assert_eq!(
            s.open(&TO_SECRET),
            Err(ShareError::Open),
            "recipient is bound"
        );
        let mut s = good.clone();
        s.sealed[0] ^= 1;
        assert_eq!(s.open(&TO_SECRET), Err(ShareError::Open));
        let mut s = good.clone();
        s.sealed.pop();
        assert_eq!(s.open(&TO_SECRET), Err(ShareError::Length(47)));
        let mut s = good.clone();
        s.ephemeral[0] ^= 1;
        assert_eq!(s.open(&TO_SECRET), Err(ShareError::Open));
        // A low-order ephemeral (the identity point) agrees on all zeros: refused.
        let mut s = good;
        s.ephemeral = [0; 32];
        assert_eq!(s.open(&TO_SECRET), Err(ShareError::Ephemeral));
    }
}
