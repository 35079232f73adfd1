//! X25519 for snow (`NQUIC.md` §8): the `Dh` that snow's handshake calls for every `e`, `s`
//! and DH token, backed by aws-lc-rs and arranged so that a connection never recomputes
//! what the configuration already knows.
//!
//! - The device's static key is parsed, and its public key computed, once per
//!   configuration ([`StaticKey`]); snow's `set` with that key costs a comparison.
//! - An initiator whose configuration fixes the responder remembers `ss`, the static-static
//!   DH result, after its first connection; later connections to that responder skip it.
//!   Only the configured responder's key is remembered, so nothing the network sends can
//!   fill or probe the memory, and the responder side keeps none (see `NQUIC.md` §8 on why).
//! - Every DH runs in aws-lc (formally verified X25519 with ADX/BMI2 code on x86-64), about
//!   twice as fast here as curve25519-dalek's Montgomery ladder in snow's default resolver.
//!   ring, which protects the packets, cannot load a stored X25519 private key. The
//!   output is exactly snow's default's for every public key, small-order ones included.
//!
//! What it does not do: choose randomness. Ephemeral private keys are the 32 bytes snow's
//! `Random` gives (the caller's `RandomSource`), exactly as snow's own `Dh25519` takes them,
//! so seeded handshakes and the fixed vectors are unchanged.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use snow::types::{Dh, Random};
use zeroize::Zeroizing;

/// The length of an X25519 private key, public key and DH result.
pub(crate) const KEY_LEN: usize = 32;

/// An X25519 private key that aws-lc has parsed, with its public key.
pub(crate) struct KeyPair {
    private: PrivateKey,
    private_bytes: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
}

impl KeyPair {
    /// The key pair of a 32-byte X25519 private key (clamped by X25519 itself, RFC 7748).
    pub(crate) fn new(private_bytes: &[u8; KEY_LEN]) -> Result<Self, snow::Error> {
        let private = PrivateKey::from_private_key(&agreement::X25519, private_bytes)
            .map_err(|_| snow::Error::Dh)?;
        let public = private.compute_public_key().map_err(|_| snow::Error::Dh)?;
        let public = <[u8; KEY_LEN]>::try_from(public.as_ref()).map_err(|_| snow::Error::Dh)?;
        Ok(Self {
            private,
            private_bytes: Zeroizing::new(*private_bytes),
            public,
        })
    }

    /// X25519 of this private key and `public`, exactly as snow's default computes it.
    ///
    /// aws-lc refuses a public key whose result is all zeros (one of small order); Noise
    /// (rev. 34 §12.1) prefers the all-zero output to an error, and snow's default gives it,
    /// so for the keys aws-lc refuses the result comes from curve25519-dalek instead. Only
    /// a malicious peer sends such a key, so the slow path costs it as much as it costs us.
    fn agree(&self, public: &[u8]) -> Result<[u8; KEY_LEN], snow::Error> {
        let public: [u8; KEY_LEN] = public
            .get(..KEY_LEN)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&agreement::X25519, &public),
            (),
            |shared| <[u8; KEY_LEN]>::try_from(shared).map_err(|_| ()),
        )
        .or_else(|()| {
            let secret = x25519_dalek::StaticSecret::from(*self.private_bytes);
            Ok(secret
                .diffie_hellman(&x25519_dalek::PublicKey::from(public))
                .to_bytes())
        })
    }
}

/// A device's static key as a configuration holds it: parsed once, shared by every
/// connection made with that configuration.
pub(crate) struct StaticKey {
    pair: Arc<KeyPair>,
    /// For an initiator that always talks to one responder: that responder.
    peer: Option<RememberedPeer>,
}

/// The one responder an initiator's configuration talks to, and `ss` with it once known.
struct RememberedPeer {
    noise_key: [u8; KEY_LEN],
    ss: OnceLock<Zeroizing<[u8; KEY_LEN]>>,
}

impl StaticKey {
    /// The static key of `private_key`.
    pub(crate) fn new(private_key: &[u8; KEY_LEN]) -> Result<Self, snow::Error> {
        Ok(Self {
            pair: Arc::new(KeyPair::new(private_key)?),
            peer: None,
        })
    }

    /// The same key, remembering `ss` with `peer` (and with no other key).
    pub(crate) fn with_peer(&self, peer: &[u8; KEY_LEN]) -> Self {
        Self {
            pair: self.pair.clone(),
            peer: Some(RememberedPeer {
                noise_key: *peer,
                ss: OnceLock::new(),
            }),
        }
    }

    /// The private key's bytes.
    pub(crate) fn private_bytes(&self) -> &[u8; KEY_LEN] {
        &self.pair.private_bytes
    }

    /// X25519 of the static private key and `public`, from memory for the configured peer.
    fn agree(&self, public: &[u8]) -> Result<[u8; KEY_LEN], snow::Error> {
        match &self.peer {
            Some(peer) if public.get(..KEY_LEN) == Some(&peer.noise_key[..]) => {
                if let Some(ss) = peer.ss.get() {
                    return Ok(**ss);
                }
                let computed = self.pair.agree(public)?;
                // Two connections racing here compute the same value; either may win.
                Ok(**peer.ss.get_or_init(|| Zeroizing::new(computed)))
            }
            _ => self.pair.agree(public),
        }
    }
}

/// What a [`X25519`] holds: nothing yet, the configuration's static key, or an ephemeral.
enum Key {
    Unset,
    Static,
    Pair(Box<KeyPair>),
}

/// snow's `Dh` for `25519`. snow asks its resolver for two per handshake, one for `s`
/// (then `set` to the static private key) and one for `e` (then `generate`d).
pub(crate) struct X25519 {
    static_key: Arc<StaticKey>,
    key: Key,
}

impl X25519 {
    /// A `Dh` that recognises `static_key` when snow sets it.
    pub(crate) fn new(static_key: Arc<StaticKey>) -> Self {
        Self {
            static_key,
            key: Key::Unset,
        }
    }

    fn pair(&self) -> Option<&KeyPair> {
        match &self.key {
            Key::Unset => None,
            Key::Static => Some(&self.static_key.pair),
            Key::Pair(pair) => Some(pair),
        }
    }
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        // The configuration's own key, compared with itself: no secret depends on the
        // outcome, so an ordinary comparison is fine.
        self.key = if privkey == &self.static_key.private_bytes()[..] {
            Key::Static
        } else {
            // `set` cannot fail in snow's API; a key aws-lc refuses (only a wrong length,
            // which snow's builder already rules out) leaves the key unset, and every DH
            // with it fails instead.
            <&[u8; KEY_LEN]>::try_from(privkey)
                .ok()
                .and_then(|bytes| KeyPair::new(bytes).ok())
                .map_or(Key::Unset, |pair| Key::Pair(Box::new(pair)))
        };
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = Zeroizing::new([0; KEY_LEN]);
        rng.try_fill_bytes(&mut private[..])?;
        self.key = Key::Pair(Box::new(KeyPair::new(&private)?));
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        self.pair().map_or(&[], |pair| &pair.public[..])
    }

    fn privkey(&self) -> &[u8] {
        self.pair().map_or(&[], |pair| &pair.private_bytes[..])
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let shared = match &self.key {
            Key::Unset => return Err(snow::Error::Dh),
            Key::Static => self.static_key.agree(pubkey)?,
            Key::Pair(pair) => pair.agree(pubkey)?,
        };
        out.get_mut(..KEY_LEN)
            .ok_or(snow::Error::Dh)?
            .copy_from_slice(&shared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X25519 as snow's default resolver computes it, for comparison.
    fn dalek(private: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
        x25519_dalek::StaticSecret::from(*private)
            .diffie_hellman(&x25519_dalek::PublicKey::from(*public))
            .to_bytes()
    }

    fn dalek_public(private: &[u8; 32]) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private)).to_bytes()
    }

    fn key(seed: u8) -> [u8; 32] {
        *blake3::hash(&[seed]).as_bytes()
    }

    struct Fixed([u8; 32]);

    impl Random for Fixed {
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
            dest.copy_from_slice(&self.0[..dest.len()]);
            Ok(())
        }
    }

    #[test]
    fn agrees_with_x25519_dalek_for_static_ephemeral_and_remembered_keys() {
        for seed in 0..32 {
            let (ours, theirs) = (key(seed), key(seed + 100));
            let their_public = dalek_public(&theirs);
            let expected = dalek(&ours, &their_public);
            let static_key = Arc::new(
                StaticKey::new(&ours)
                    .expect("valid key")
                    .with_peer(&their_public),
            );
            assert_eq!(static_key.pair.public, dalek_public(&ours));

            let mut by_set = X25519::new(static_key.clone());
            by_set.set(&ours);
            assert!(matches!(by_set.key, Key::Static));
            let mut by_generate = X25519::new(static_key.clone());
            by_generate
                .generate(&mut Fixed(ours))
                .expect("fixed randomness");
            let mut other = X25519::new(static_key);
            other.set(&theirs);
            for dh in [&by_set, &by_generate, &by_set] {
                assert_eq!(dh.pubkey(), &dalek_public(&ours)[..]);
                assert_eq!(dh.privkey(), &ours[..]);
                let mut out = [0; 32];
                dh.dh(&their_public, &mut out).expect("valid public key");
                assert_eq!(out, expected);
            }
            let mut out = [0; 32];
            other
                .dh(&dalek_public(&key(seed + 200)), &mut out)
                .expect("valid public key");
            assert_eq!(out, dalek(&theirs, &dalek_public(&key(seed + 200))));
        }
    }

    /// Any 32 bytes a peer sends, on the curve or its twist, with or without the top bit
    /// (which X25519 ignores) or a non-canonical coordinate, give what snow's default gave.
    #[test]
    fn agrees_with_x25519_dalek_on_arbitrary_public_key_bytes() {
        let static_key = Arc::new(StaticKey::new(&key(1)).expect("valid key"));
        let mut dh = X25519::new(static_key);
        dh.set(&key(1));
        let mut publics: Vec<[u8; 32]> = (0..64).map(|seed| key(seed + 50)).collect();
        publics.push([0xff; 32]);
        publics.push({
            let mut p = [0xff; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        });
        for public in publics {
            let mut out = [0; 32];
            dh.dh(&public, &mut out).expect("every 32-byte public key");
            assert_eq!(out, dalek(&key(1), &public), "public key {public:02x?}");
        }
    }

    #[test]
    fn small_order_public_keys_give_zeros_as_in_snow_and_bad_inputs_are_errors() {
        let static_key = Arc::new(StaticKey::new(&key(1)).expect("valid key"));
        let mut dh = X25519::new(static_key.clone());
        let mut out = [1; 32];
        assert!(dh.dh(&[0; 32], &mut out).is_err(), "unset");
        dh.set(&key(1));
        dh.dh(&[0; 32], &mut out)
            .expect("small order is not an error");
        assert_eq!(out, [0; 32]);
        let mut one = [0; 32];
        one[0] = 1;
        out = [1; 32];
        dh.dh(&one, &mut out).expect("small order is not an error");
        assert_eq!(out, [0; 32]);
        assert!(dh.dh(&[9; 16], &mut out).is_err(), "short key");
        assert!(dh.dh(&[9; 32], &mut [0; 8]).is_err(), "short output");
        dh.set(&[1; 5]);
        assert!(dh.pubkey().is_empty());
        assert!(dh.dh(&[9; 32], &mut out).is_err(), "malformed private key");
    }
}
