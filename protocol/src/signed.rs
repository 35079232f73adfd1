//! The envelope of the records a device signs rather than seals (membership and lifecycle
//! records), which vaults must be able to check: `magic ‖ version ‖ signer's Ed25519 key ‖
//! body ‖ signature`, the signature over a per-format context and every byte before it. Each
//! format keeps its own magic, version, context and limits; this is the one place that lays
//! the bytes out and checks the signature.

use crate::identity::{DeviceKeys, verify_signature};

/// Magic, version and the signer's public key.
pub(crate) const HEADER_LEN: usize = 4 + 1 + 32;
/// An Ed25519 signature.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// One signed format's constants.
pub(crate) struct Envelope {
    /// The four bytes it starts with.
    pub magic: [u8; 4],
    /// Its format version.
    pub version: u8,
    /// The domain separation prefixed to what is signed.
    pub context: &'static [u8],
    /// The longest record accepted.
    pub max_len: usize,
}

/// Why bytes are not a valid envelope of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Too short, too long, or another magic.
    NotThis,
    /// A version this code does not know.
    Version(u8),
    /// The signature does not verify.
    Signature,
}

impl Envelope {
    /// Lays out and signs `body` with `signer`'s key.
    pub fn sign(&self, signer: &DeviceKeys, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len() + SIGNATURE_LEN);
        bytes.extend_from_slice(&self.magic);
        bytes.push(self.version);
        bytes.extend_from_slice(&signer.signing_public());
        bytes.extend_from_slice(body);
        let signature = signer.sign(&self.signed_message(&bytes));
        bytes.extend_from_slice(&signature);
        bytes
    }

    /// Checks the envelope — length, magic, version, signature — and returns the signer's
    /// public key and the body. Any bytes give this or a refusal, never a panic.
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Result<([u8; 32], &'a [u8]), Refused> {
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN
            || bytes.len() > self.max_len
            || !bytes.starts_with(&self.magic)
        {
            return Err(Refused::NotThis);
        }
        let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let (header, body) = signed.split_at(HEADER_LEN);
        let (version, key) = header[self.magic.len()..]
            .split_first()
            .ok_or(Refused::NotThis)?;
        if *version != self.version {
            return Err(Refused::Version(*version));
        }
        let key = <[u8; 32]>::try_from(key).map_err(|_| Refused::NotThis)?;
        let signature = <[u8; SIGNATURE_LEN]>::try_from(signature).map_err(|_| Refused::NotThis)?;
        if !verify_signature(&key, &self.signed_message(signed), &signature) {
            return Err(Refused::Signature);
        }
        Ok((key, body))
    }

    fn signed_message(&self, signed: &[u8]) -> Vec<u8> {
        let mut m = self.context.to_vec();
        m.extend_from_slice(signed);
        m
    }
}
