//! Packet and header protection with ring (`NQUIC.md` §5.3): quinn-proto's `PacketKey` and
//! `HeaderKey` for both suites, built from a traffic secret.
//!
//! Nothing here panics on packet contents: a packet too short to sample or too short for a
//! tag is left for the AEAD to reject.

use bytes::BytesMut;
use quinn_proto::crypto::{self, CryptoError};
use ring::aead;

use super::Suite;
use super::schedule::{self, NQUIC_LABEL_PREFIX};

/// Length of the header-protection sample (RFC 9001 §5.4.2), the same for both suites.
const SAMPLE_LEN: usize = 16;

/// An AEAD key and nonce base protecting packet payloads in one direction.
pub(crate) struct PacketKey {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    suite: Suite,
}

impl PacketKey {
    /// Builds the packet key of a traffic secret with nQUIC's labels.
    pub(crate) fn from_secret(suite: Suite, secret: &[u8]) -> Self {
        Self::from_secret_with_prefix(NQUIC_LABEL_PREFIX, suite, secret)
    }

    /// Builds the packet key of a traffic secret with the given label prefix.
    pub(crate) fn from_secret_with_prefix(prefix: &[u8], suite: Suite, secret: &[u8]) -> Self {
        let material = schedule::packet_material_with_prefix(prefix, secret);
        Self::new(suite, &material.key[..suite.key_len()], material.iv)
    }

    /// Builds a packet key from a raw key and nonce base.
    pub(crate) fn new(suite: Suite, key: &[u8], iv: [u8; 12]) -> Self {
        // The key length comes from `suite.key_len()`, which matches the algorithm.
        let unbound = aead::UnboundKey::new(suite.aead(), key)
            .expect("key length is the suite's AEAD key length");
        Self {
            key: aead::LessSafeKey::new(unbound),
            iv,
            suite,
        }
    }

    /// The nonce of packet number `packet` (RFC 9001 §5.3).
    fn nonce(&self, packet: u64) -> aead::Nonce {
        let mut nonce = self.iv;
        for (n, p) in nonce[4..].iter_mut().zip(packet.to_be_bytes()) {
            *n ^= p;
        }
        aead::Nonce::assume_unique_for_key(nonce)
    }
}

impl crypto::PacketKey for PacketKey {
    fn encrypt(&self, packet: u64, buf: &mut [u8], header_len: usize) {
        let tag_len = self.tag_len();
        let (header, rest) = buf.split_at_mut(header_len);
        let payload_len = rest.len() - tag_len;
        let (payload, tag_storage) = rest.split_at_mut(payload_len);
        // Sealing in place only fails if the payload exceeds the AEAD's maximum input
        // (2^32 blocks), far beyond any QUIC packet.
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(packet), aead::Aad::from(&*header), payload)
            .expect("a QUIC packet is far below the AEAD's input limit");
        tag_storage.copy_from_slice(tag.as_ref());
    }

    fn decrypt(
        &self,
        packet: u64,
        header: &[u8],
        payload: &mut BytesMut,
    ) -> Result<(), CryptoError> {
        let plain_len = self
            .key
            .open_in_place(
                self.nonce(packet),
                aead::Aad::from(header),
                payload.as_mut(),
            )
            .map_err(|_| CryptoError)?
            .len();
        payload.truncate(plain_len);
        Ok(())
    }

    fn tag_len(&self) -> usize {
        self.suite.aead().tag_len()
    }

    fn confidentiality_limit(&self) -> u64 {
        match self.suite {
            // RFC 9001 §6.6.
            Suite::AesGcm => 1 << 23,
            Suite::ChaChaPoly => 1 << 62,
        }
    }

    fn integrity_limit(&self) -> u64 {
        match self.suite {
            // RFC 9001 §6.6.
            Suite::AesGcm => 1 << 52,
            Suite::ChaChaPoly => 1 << 36,
        }
    }
}

/// A header-protection key (RFC 9001 §5.4) in one direction.
pub(crate) struct HeaderKey {
    key: aead::quic::HeaderProtectionKey,
}

impl HeaderKey {
    /// Builds the header key of a traffic secret with nQUIC's labels.
    pub(crate) fn from_secret(suite: Suite, secret: &[u8]) -> Self {
        Self::from_secret_with_prefix(NQUIC_LABEL_PREFIX, suite, secret)
    }

    /// Builds the header key of a traffic secret with the given label prefix.
    pub(crate) fn from_secret_with_prefix(prefix: &[u8], suite: Suite, secret: &[u8]) -> Self {
        let hp = schedule::header_key_with_prefix(prefix, secret);
        // The key length comes from `suite.key_len()`, which matches the algorithm.
        let key =
            aead::quic::HeaderProtectionKey::new(suite.header_protection(), &hp[..suite.key_len()])
                .expect("key length is the suite's header-protection key length");
        Self { key }
    }

    /// The 5-byte mask for the sample that follows `pn_offset`, if the packet has one.
    fn mask(&self, pn_offset: usize, packet: &[u8]) -> Option<[u8; 5]> {
        let start = pn_offset.checked_add(4)?;
        let sample = packet.get(start..start.checked_add(SAMPLE_LEN)?)?;
        self.key.new_mask(sample).ok()
    }

    /// Applies the mask; `protected` says whether the first byte is currently masked.
    fn apply(&self, pn_offset: usize, packet: &mut [u8], protected: bool) {
        let Some(mask) = self.mask(pn_offset, packet) else {
            return;
        };
        let Some(first) = packet.first_mut() else {
            return;
        };
        let bits = if *first & 0x80 != 0 { 0x0f } else { 0x1f };
        if protected {
            *first ^= mask[0] & bits;
        }
        let pn_len = usize::from(*first & 0x03) + 1;
        if !protected {
            *first ^= mask[0] & bits;
        }
        let end = (pn_offset + pn_len).min(packet.len());
        if let Some(pn) = packet.get_mut(pn_offset..end) {
            for (byte, m) in pn.iter_mut().zip(&mask[1..]) {
                *byte ^= m;
            }
        }
    }
}

impl crypto::HeaderKey for HeaderKey {
    fn decrypt(&self, pn_offset: usize, packet: &mut [u8]) {
        self.apply(pn_offset, packet, true);
    }

    fn encrypt(&self, pn_offset: usize, packet: &mut [u8]) {
        self.apply(pn_offset, packet, false);
    }

    fn sample_size(&self) -> usize {
        SAMPLE_LEN
    }
}

/// The packet and header keys of one traffic secret in each direction.
pub(crate) fn keys_from_secrets(suite: Suite, local: &[u8], remote: &[u8]) -> crypto::Keys {
    crypto::Keys {
        header: crypto::KeyPair {
            local: Box::new(HeaderKey::from_secret(suite, local)),
            remote: Box::new(HeaderKey::from_secret(suite, remote)),
        },
        packet: crypto::KeyPair {
            local: Box::new(PacketKey::from_secret(suite, local)),
            remote: Box::new(PacketKey::from_secret(suite, remote)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn_proto::crypto::{HeaderKey as _, PacketKey as _};

    const TLS13: &[u8] = b"tls13 ";

    /// RFC 9001 Appendix A.5: a ChaCha20-Poly1305 short-header packet, byte for byte.
    #[test]
    fn chacha_short_header_packet_matches_rfc9001_a5() {
        let secret =
            hex::decode("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
                .expect("hex");
        let packet_key = PacketKey::from_secret_with_prefix(TLS13, Suite::ChaChaPoly, &secret);
        let header_key = HeaderKey::from_secret_with_prefix(TLS13, Suite::ChaChaPoly, &secret);
        let pn = 654_360_564;
        // Header 4200bff4 (pn length 3), payload a single PING frame, then tag space.
        let mut packet = hex::decode("4200bff401").expect("hex");
        packet.extend_from_slice(&[0; 16]);
        packet_key.encrypt(pn, &mut packet, 4);
        assert_eq!(
            hex::encode(&packet[4..]),
            "655e5cd55c41f69080575d7999c25a5bfb"
        );
        header_key.encrypt(1, &mut packet);
        assert_eq!(
            hex::encode(&packet),
            "4cfe4189655e5cd55c41f69080575d7999c25a5bfb"
        );

        header_key.decrypt(1, &mut packet);
        assert_eq!(hex::encode(&packet[..4]), "4200bff4");
        let mut payload = BytesMut::from(&packet[4..]);
        packet_key
            .decrypt(pn, &packet[..4], &mut payload)
            .expect("decrypts");
        assert_eq!(&payload[..], &[0x01]);
    }

    #[test]
    fn a_flipped_bit_fails_decryption_in_both_suites() {
        for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
            let key = PacketKey::from_secret(suite, &[9; 32]);
            let mut packet = b"headerpayload".to_vec();
            packet.extend_from_slice(&[0; 16]);
            key.encrypt(7, &mut packet, 6);
            let mut good = BytesMut::from(&packet[6..]);
            key.decrypt(7, &packet[..6], &mut good).expect("decrypts");
            assert_eq!(&good[..], b"payload");
            packet[8] ^= 0x10;
            let mut bad = BytesMut::from(&packet[6..]);
            assert!(key.decrypt(7, &packet[..6], &mut bad).is_err(), "{suite:?}");
        }
    }

    #[test]
    fn header_protection_of_short_packets_does_not_panic() {
        let key = HeaderKey::from_secret(Suite::AesGcm, &[1; 32]);
        for len in 0..24 {
            let mut packet = vec![0x40; len];
            key.decrypt(1, &mut packet);
            key.encrypt(1, &mut packet);
            key.decrypt(usize::MAX - 2, &mut packet);
        }
    }
}
