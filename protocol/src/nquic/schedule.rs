//! The nQUIC key schedule (`NQUIC.md` §5): `Expand-Label`, Initial and retry keys, the
//! traffic secrets derived from a finished Noise handshake, and the exporter.
//!
//! Only derivation lives here; the packet and header keys built from the secrets are in
//! `keys.rs`.

use ring::{digest, hkdf, hmac};

use super::Suite;

/// The label prefix of nQUIC's `Expand-Label` (TLS 1.3 uses `"tls13 "`).
pub(crate) const NQUIC_LABEL_PREFIX: &[u8] = b"nquic ";

/// The salt of the Initial key derivation (`NQUIC.md` §5.1).
pub(crate) const INITIAL_SALT: &[u8] = b"photomesh-nquic-initial-salt/1";

/// The length of every secret in the schedule.
pub(crate) const SECRET_LEN: usize = 32;

/// A traffic secret or other 32-byte secret of the schedule.
pub(crate) type Secret = [u8; SECRET_LEN];

/// An output length for ring's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `Expand-Label` failed: the label, context or output was too long for the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LabelTooLong;

/// TLS 1.3's `HKDF-Expand-Label` with an explicit prefix, so that tests can check it
/// against RFC 9001's vectors with `"tls13 "`.
pub(crate) fn expand_label_with_prefix(
    prefix: &[u8],
    secret: &hkdf::Prk,
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), LabelTooLong> {
    let out_len = u16::try_from(out.len()).map_err(|_| LabelTooLong)?;
    let label_len = u8::try_from(prefix.len() + label.len()).map_err(|_| LabelTooLong)?;
    let context_len = u8::try_from(context.len()).map_err(|_| LabelTooLong)?;
    let out_len_bytes = out_len.to_be_bytes();
    let info: [&[u8]; 6] = [
        &out_len_bytes,
        &[label_len],
        prefix,
        label,
        &[context_len],
        context,
    ];
    secret
        .expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| LabelTooLong)
}

/// nQUIC's `Expand-Label` for the schedule's fixed, short labels.
fn expand(secret: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    // Every label in this module is a short constant and every output at most 32 bytes,
    // far inside HKDF-SHA256's limits, so this cannot fail.
    expand_label_with_prefix(NQUIC_LABEL_PREFIX, secret, label, &[], out)
        .expect("fixed labels and lengths are within HKDF-Expand-Label's limits");
}

/// A secret used as the PRK of `Expand-Label`, as TLS 1.3 uses its traffic secrets.
pub(crate) fn prk(secret: &[u8]) -> hkdf::Prk {
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret)
}

/// `Expand-Label(secret, label, "", 32)`.
pub(crate) fn derive_secret(secret: &[u8], label: &[u8]) -> Secret {
    let mut out = [0; SECRET_LEN];
    expand(&prk(secret), label, &mut out);
    out
}

/// The Initial traffic secrets `(client_initial, server_initial)` for a client's original
/// destination connection ID (`NQUIC.md` §5.1).
pub(crate) fn initial_secrets(dst_cid: &[u8]) -> (Secret, Secret) {
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, INITIAL_SALT).extract(dst_cid);
    let mut client = [0; SECRET_LEN];
    let mut server = [0; SECRET_LEN];
    expand(&initial, b"client in", &mut client);
    expand(&initial, b"server in", &mut server);
    (client, server)
}

/// The retry integrity key and nonce of a suite (`NQUIC.md` §5.6).
pub(crate) fn retry_key(suite: Suite) -> ([u8; 32], [u8; 12]) {
    let secret = hkdf::Salt::new(hkdf::HKDF_SHA256, INITIAL_SALT).extract(b"retry");
    let mut key = [0; 32];
    let mut nonce = [0; 12];
    expand(&secret, b"retry key", &mut key[..suite.key_len()]);
    expand(&secret, b"retry iv", &mut nonce);
    (key, nonce)
}

/// Packet-protection material from a traffic secret (`NQUIC.md` §5.3).
pub(crate) struct PacketMaterial {
    /// The AEAD key (`quic key`).
    pub(crate) key: [u8; 32],
    /// The nonce base (`quic iv`).
    pub(crate) iv: [u8; 12],
}

/// `quic key` and `quic iv` of a traffic secret.
pub(crate) fn packet_material_with_prefix(prefix: &[u8], secret: &[u8]) -> PacketMaterial {
    let prk = prk(secret);
    let mut key = [0; 32];
    let mut iv = [0; 12];
    expand_label_with_prefix(prefix, &prk, b"quic key", &[], &mut key)
        .expect("fixed labels and lengths are within HKDF-Expand-Label's limits");
    expand_label_with_prefix(prefix, &prk, b"quic iv", &[], &mut iv)
        .expect("fixed labels and lengths are within HKDF-Expand-Label's limits");
    PacketMaterial { key, iv }
}

/// `quic hp` of a traffic secret.
pub(crate) fn header_key_with_prefix(prefix: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut hp = [0; 32];
    expand_label_with_prefix(prefix, &prk(secret), b"quic hp", &[], &mut hp)
        .expect("fixed labels and lengths are within HKDF-Expand-Label's limits");
    hp
}

/// `quic ku`: the next traffic secret after a key update (`NQUIC.md` §5.5).
pub(crate) fn next_secret_with_prefix(prefix: &[u8], secret: &[u8]) -> Secret {
    let mut next = [0; SECRET_LEN];
    expand_label_with_prefix(prefix, &prk(secret), b"quic ku", &[], &mut next)
        .expect("fixed labels and lengths are within HKDF-Expand-Label's limits");
    next
}

/// Every secret derived from a finished Noise handshake (`NQUIC.md` §5.2, §5.4).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct HandshakeSecrets {
    /// The Noise handshake hash `h`.
    pub(crate) handshake_hash: Secret,
    /// Handshake space, initiator to responder.
    pub(crate) hs_i2r: Secret,
    /// Handshake space, responder to initiator.
    pub(crate) hs_r2i: Secret,
    /// 1-RTT phase 0, initiator to responder.
    pub(crate) ap_i2r: Secret,
    /// 1-RTT phase 0, responder to initiator.
    pub(crate) ap_r2i: Secret,
    /// The exporter secret.
    pub(crate) exporter: Secret,
}

impl HandshakeSecrets {
    /// Derives the schedule from the handshake hash and the raw Noise split keys.
    pub(crate) fn derive(handshake_hash: &Secret, k_i2r: &Secret, k_r2i: &Secret) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, handshake_hash);
        let prk_i2r = salt.extract(k_i2r);
        let prk_r2i = salt.extract(k_r2i);
        let mut both = [0; 2 * SECRET_LEN];
        both[..SECRET_LEN].copy_from_slice(k_i2r);
        both[SECRET_LEN..].copy_from_slice(k_r2i);
        let prk_exp = salt.extract(&both);
        let mut out = Self {
            handshake_hash: *handshake_hash,
            hs_i2r: [0; SECRET_LEN],
            hs_r2i: [0; SECRET_LEN],
            ap_i2r: [0; SECRET_LEN],
            ap_r2i: [0; SECRET_LEN],
            exporter: [0; SECRET_LEN],
        };
        expand(&prk_i2r, b"hs", &mut out.hs_i2r);
        expand(&prk_r2i, b"hs", &mut out.hs_r2i);
        expand(&prk_i2r, b"ap", &mut out.ap_i2r);
        expand(&prk_r2i, b"ap", &mut out.ap_r2i);
        expand(&prk_exp, b"exporter", &mut out.exporter);
        out
    }

    /// The confirmation tag sent by the initiator (`true`) or the responder (`false`).
    pub(crate) fn finished_tag(&self, initiator: bool) -> [u8; 32] {
        let hs = if initiator {
            &self.hs_i2r
        } else {
            &self.hs_r2i
        };
        let fin = derive_secret(hs, b"finished");
        let key = hmac::Key::new(hmac::HMAC_SHA256, &fin);
        let tag = hmac::sign(&key, &self.handshake_hash);
        let mut out = [0; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks a received confirmation tag in constant time.
    pub(crate) fn verify_finished(&self, initiator: bool, tag: &[u8]) -> bool {
        let hs = if initiator {
            &self.hs_i2r
        } else {
            &self.hs_r2i
        };
        let fin = derive_secret(hs, b"finished");
        let key = hmac::Key::new(hmac::HMAC_SHA256, &fin);
        hmac::verify(&key, &self.handshake_hash, tag).is_ok()
    }

    /// Exported keying material (`NQUIC.md` §5.7).
    pub(crate) fn export(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), LabelTooLong> {
        let mut per_label = [0; SECRET_LEN];
        expand_label_with_prefix(
            NQUIC_LABEL_PREFIX,
            &prk(&self.exporter),
            label,
            &[],
            &mut per_label,
        )?;
        let context_hash = digest::digest(&digest::SHA256, context);
        expand_label_with_prefix(
            NQUIC_LABEL_PREFIX,
            &prk(&per_label),
            b"exporter",
            context_hash.as_ref(),
            output,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS13: &[u8] = b"tls13 ";

    /// RFC 9001 Appendix A.5: the secret and its key, iv, hp and ku, with the TLS prefix.
    #[test]
    fn expand_label_matches_rfc9001_a5() {
        let secret =
            hex::decode("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
                .expect("hex");
        let material = packet_material_with_prefix(TLS13, &secret);
        assert_eq!(
            hex::encode(material.key),
            "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"
        );
        assert_eq!(hex::encode(material.iv), "e0459b3474bdd0e44a41c144");
        assert_eq!(
            hex::encode(header_key_with_prefix(TLS13, &secret)),
            "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"
        );
        assert_eq!(
            hex::encode(next_secret_with_prefix(TLS13, &secret)),
            "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9"
        );
    }

    /// RFC 9001 Appendix A.1: the client Initial secret from the v1 salt and DCID.
    #[test]
    fn expand_label_matches_rfc9001_a1() {
        let salt = hex::decode("38762cf7f55934b34d179ae6a4c80cadccbb7f0a").expect("hex");
        let dcid = hex::decode("8394c8f03e515708").expect("hex");
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&dcid);
        let mut client = [0; 32];
        expand_label_with_prefix(TLS13, &initial, b"client in", &[], &mut client).expect("ok");
        assert_eq!(
            hex::encode(client),
            "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
        );
        let mut key = [0; 16];
        expand_label_with_prefix(TLS13, &prk(&client), b"quic key", &[], &mut key).expect("ok");
        assert_eq!(hex::encode(key), "1f369613dd76d5467730efcbe3b1a22d");
    }

    #[test]
    fn labels_that_do_not_fit_are_refused() {
        let prk = prk(&[7; 32]);
        let mut out = [0; 32];
        assert!(expand_label_with_prefix(TLS13, &prk, &[b'x'; 250], &[], &mut out).is_err());
        assert!(expand_label_with_prefix(TLS13, &prk, b"x", &[0; 256], &mut out).is_err());
        let mut big = vec![0; 255 * 32 + 1];
        assert!(expand_label_with_prefix(TLS13, &prk, b"x", &[], &mut big).is_err());
    }
}
