//! The nQUIC handshake state machine behind quinn's `crypto::Session` (`NQUIC.md` §3–4).
//!
//! quinn feeds CRYPTO-frame bytes in through `read_handshake` and asks for bytes and keys
//! through `write_handshake`; each `Keys` returned moves quinn to the next packet-number
//! space (Initial → Handshake → 1-RTT). Malformed input ends the handshake with a
//! `TransportError`, never a panic.

use std::{any::Any, sync::Arc};

use quinn_proto::{
    ConnectionId, Side, TransportError, TransportErrorCode,
    crypto::{self, ExportKeyingMaterialError, KeyPair, Keys},
    transport_parameters::TransportParameters,
};
use ring::aead;
use snow::{
    params::{CipherChoice, DHChoice, HashChoice},
    resolvers::{CryptoResolver, DefaultResolver},
    types::{Cipher, Dh, Hash, Random},
};

use super::{
    NoiseKey, RandomSource, Suite, TrustSet,
    dh::{StaticKey, X25519},
    keys::{self, PacketKey},
    schedule::{self, HandshakeSecrets, Secret},
};

/// The largest Noise message (Noise rev. 34 §3), and so the largest handshake message body.
const MAX_NOISE_MESSAGE: usize = 65_535;
/// The framing header of a handshake message: type and length.
const FRAME_HEADER: usize = 3;
/// The confirmation tag's length.
const FINISHED_LEN: usize = 32;

/// Handshake message types (`NQUIC.md` §4).
mod msg {
    pub(super) const INITIATOR_HELLO: u8 = 0x01;
    pub(super) const INITIATOR_HELLO_PSK: u8 = 0x02;
    pub(super) const RESPONDER_HELLO: u8 = 0x03;
    pub(super) const RESPONDER_FINISHED: u8 = 0x04;
    pub(super) const INITIATOR_FINISHED: u8 = 0x05;
    pub(super) const INITIATOR_HELLO_RECOVERY: u8 = 0x06;
}

/// Which handshake a connection runs (`NQUIC.md` §3), named by message 1's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Noise_IK` to a device's noise key.
    Normal,
    /// `Noise_IKpsk1` with a pairing code's PSK.
    Pairing,
    /// `Noise_IK` to the mesh's recovery responder key.
    Recovery,
}

impl Kind {
    const fn first_message(self) -> u8 {
        match self {
            Self::Normal => msg::INITIATOR_HELLO,
            Self::Pairing => msg::INITIATOR_HELLO_PSK,
            Self::Recovery => msg::INITIATOR_HELLO_RECOVERY,
        }
    }
}

/// Why an nQUIC handshake failed. Each maps to the QUIC error `NQUIC.md` §4 names.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// A handshake message had an unknown type, an impossible length or trailing bytes.
    #[error("malformed nQUIC handshake message: {0}")]
    Malformed(&'static str),
    /// A handshake message arrived that is not the one expected now.
    #[error("unexpected nQUIC handshake message type {0:#04x}")]
    Unexpected(u8),
    /// Noise could not decrypt or verify a message: wrong responder key, wrong pairing
    /// secret, or tampering.
    #[error("Noise handshake failed: {0}")]
    Noise(snow::Error),
    /// The initiator's noise key is not in the responder's trust set.
    #[error("initiator's noise key {0} is not trusted by this device")]
    Untrusted(NoiseKey),
    /// A pairing handshake arrived but this responder is not pairing.
    #[error("pairing attempt refused: this device has no pairing secret set")]
    NotPairing,
    /// A recovery handshake arrived but this responder holds no recovery responder key.
    #[error("recovery attempt refused: this device holds no recovery responder key")]
    NotRecovering,
    /// The peer's confirmation tag was wrong.
    #[error("nQUIC confirmation tag mismatch")]
    BadFinished,
    /// The peer's transport parameters could not be read.
    #[error("peer's QUIC transport parameters are invalid")]
    TransportParameters(TransportError),
}

impl From<HandshakeError> for TransportError {
    fn from(err: HandshakeError) -> Self {
        let code = match &err {
            HandshakeError::Malformed(_) => TransportErrorCode::crypto(50),
            HandshakeError::Unexpected(_) => TransportErrorCode::crypto(10),
            HandshakeError::Noise(_) | HandshakeError::BadFinished => {
                TransportErrorCode::crypto(51)
            }
            HandshakeError::Untrusted(_)
            | HandshakeError::NotPairing
            | HandshakeError::NotRecovering => TransportErrorCode::crypto(49),
            HandshakeError::TransportParameters(inner) => return inner.clone(),
        };
        Self {
            code,
            frame: None,
            reason: err.to_string(),
        }
    }
}

/// What quinn's `Connection::handshake_data()` returns for an nQUIC connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeData {
    /// The suite in use (from the QUIC version).
    pub suite: Suite,
    /// Whether this was a pairing (`IKpsk1`) handshake.
    pub pairing: bool,
    /// Whether the initiator addressed the mesh's recovery responder key (type `0x06`).
    pub recovery: bool,
    /// The peer's noise key (also `peer_identity()`).
    pub peer: NoiseKey,
}

/// Where the handshake stands; which message or keys come next.
enum Step {
    /// Initiator: message 1 to write.
    InitiatorSendHello(Box<snow::HandshakeState>),
    /// Initiator: waiting for message 2.
    InitiatorAwaitHello(Box<snow::HandshakeState>),
    /// Initiator: Handshake keys to hand to quinn (no bytes).
    InitiatorHandshakeKeys,
    /// Initiator: `InitiatorFinished` and 1-RTT keys to hand over.
    InitiatorSendFinished,
    /// Responder: waiting for message 1.
    ResponderAwaitHello,
    /// Responder: message 2 and Handshake keys to hand over.
    ResponderSendHello(Box<snow::HandshakeState>),
    /// Responder: `ResponderFinished` and 1-RTT keys to hand over.
    ResponderSendFinished,
    /// Both: everything sent; waiting for (or having got) the peer's `Finished`.
    Sent,
    /// The handshake failed; nothing more is read or written.
    Failed,
}

/// One connection's nQUIC session.
pub(crate) struct NquicSession {
    side: Side,
    suite: Suite,
    step: Step,
    /// The responder's configuration, needed when message 1 arrives.
    responder: Option<ResponderConfig>,
    local_params: Vec<u8>,
    peer_params: Option<TransportParameters>,
    peer: Option<NoiseKey>,
    kind: Kind,
    secrets: Option<HandshakeSecrets>,
    /// The current 1-RTT secrets `(local, remote)`, advanced by each key update.
    one_rtt: Option<(Secret, Secret)>,
    peer_finished: bool,
    handshake_data_ready: bool,
    inbuf: Vec<u8>,
}

struct ResponderConfig {
    static_key: Arc<StaticKey>,
    trust: Arc<dyn TrustSet>,
    pairing_secret: Option<[u8; 32]>,
    recovery: Option<Arc<dyn RecoveryKeys>>,
    rng: RandomSource,
}

/// Most recovery responder keys a responder tries on one message 1 (`NQUIC.md` §3).
pub const MAX_RECOVERY_KEYS: usize = 4;

/// The recovery responder keys a responder holds now (private X25519 keys, newest first).
/// The node reads them from the key shares it holds, so they change while it runs.
pub trait RecoveryKeys: Send + Sync {
    /// The keys; only the first [`MAX_RECOVERY_KEYS`] are tried.
    fn responder_keys(&self) -> Vec<[u8; 32]>;
}

impl RecoveryKeys for Vec<[u8; 32]> {
    fn responder_keys(&self) -> Vec<[u8; 32]> {
        self.clone()
    }
}

impl NquicSession {
    /// A client session that will open with message 1 to `peer`.
    pub(crate) fn initiator(
        suite: Suite,
        static_key: Arc<StaticKey>,
        peer: &NoiseKey,
        pairing_secret: Option<&[u8; 32]>,
        recovery: bool,
        rng: RandomSource,
        params: &TransportParameters,
    ) -> Result<Self, snow::Error> {
        let kind = match (pairing_secret.is_some(), recovery) {
            (true, _) => Kind::Pairing,
            (false, true) => Kind::Recovery,
            (false, false) => Kind::Normal,
        };
        let first = kind.first_message();
        let prologue = prologue(suite, first);
        let mut builder = snow::Builder::with_resolver(
            noise_params(suite, pairing_secret.is_some()),
            Box::new(Resolver {
                rng,
                static_key: static_key.clone(),
            }),
        )
        .local_private_key(static_key.private_bytes())?
        .remote_public_key(peer.as_bytes())?
        .prologue(&prologue)?;
        if let Some(psk) = pairing_secret {
            builder = builder.psk(1, psk)?;
        }
        let hs = builder.build_initiator()?;
        Ok(Self {
            side: Side::Client,
            suite,
            step: Step::InitiatorSendHello(Box::new(hs)),
            responder: None,
            local_params: encode_params(params),
            peer_params: None,
            peer: Some(*peer),
            kind,
            secrets: None,
            one_rtt: None,
            peer_finished: false,
            handshake_data_ready: false,
            inbuf: Vec::new(),
        })
    }

    /// A server session waiting for message 1.
    pub(crate) fn responder(
        suite: Suite,
        static_key: Arc<StaticKey>,
        trust: Arc<dyn TrustSet>,
        pairing_secret: Option<[u8; 32]>,
        recovery: Option<Arc<dyn RecoveryKeys>>,
        rng: RandomSource,
        params: &TransportParameters,
    ) -> Self {
        Self {
            side: Side::Server,
            suite,
            step: Step::ResponderAwaitHello,
            responder: Some(ResponderConfig {
                static_key,
                trust,
                pairing_secret,
                recovery,
                rng,
            }),
            local_params: encode_params(params),
            peer_params: None,
            peer: None,
            kind: Kind::Normal,
            secrets: None,
            one_rtt: None,
            peer_finished: false,
            handshake_data_ready: false,
            inbuf: Vec::new(),
        }
    }

    /// Handles one complete handshake message; returns whether handshake data just became
    /// available.
    fn handle_message(&mut self, ty: u8, body: &[u8]) -> Result<bool, HandshakeError> {
        match (std::mem::replace(&mut self.step, Step::Failed), ty) {
            (
                Step::ResponderAwaitHello,
                msg::INITIATOR_HELLO | msg::INITIATOR_HELLO_PSK | msg::INITIATOR_HELLO_RECOVERY,
            ) => {
                self.handle_initiator_hello(ty, body)?;
                Ok(true)
            }
            (Step::InitiatorAwaitHello(mut hs), msg::RESPONDER_HELLO) => {
                let mut payload = vec![0; body.len()];
                let len = hs
                    .read_message(body, &mut payload)
                    .map_err(HandshakeError::Noise)?;
                self.peer_params = Some(
                    TransportParameters::read(Side::Client, &mut &payload[..len])
                        .map_err(|e| HandshakeError::TransportParameters(e.into()))?,
                );
                self.secrets = Some(split(&mut hs)?);
                self.step = Step::InitiatorHandshakeKeys;
                Ok(true)
            }
            (
                step @ (Step::InitiatorHandshakeKeys | Step::InitiatorSendFinished | Step::Sent),
                msg::RESPONDER_FINISHED,
            ) if self.side == Side::Client && !self.peer_finished => {
                self.check_finished(false, body)?;
                self.step = step;
                Ok(false)
            }
            (Step::Sent, msg::INITIATOR_FINISHED)
                if self.side == Side::Server && !self.peer_finished =>
            {
                self.check_finished(true, body)?;
                self.step = Step::Sent;
                Ok(false)
            }
            (_, msg::INITIATOR_HELLO..=msg::INITIATOR_HELLO_RECOVERY) => {
                Err(HandshakeError::Unexpected(ty))
            }
            _ => Err(HandshakeError::Malformed("unknown message type")),
        }
    }

    fn handle_initiator_hello(&mut self, ty: u8, body: &[u8]) -> Result<(), HandshakeError> {
        let config = self
            .responder
            .take()
            .ok_or(HandshakeError::Unexpected(ty))?;
        let (kind, psk) = match (ty, config.pairing_secret) {
            (msg::INITIATOR_HELLO_PSK, None) => return Err(HandshakeError::NotPairing),
            (msg::INITIATOR_HELLO_PSK, Some(psk)) => (Kind::Pairing, Some(psk)),
            (msg::INITIATOR_HELLO_RECOVERY, _) => (Kind::Recovery, None),
            _ => (Kind::Normal, None),
        };
        // The static keys to try: the device's own, or each recovery responder key.
        let keys: Vec<Arc<StaticKey>> = if kind == Kind::Recovery {
            let held = config
                .recovery
                .as_ref()
                .map(|r| r.responder_keys())
                .unwrap_or_default();
            let keys: Vec<_> = held
                .iter()
                .take(MAX_RECOVERY_KEYS)
                .filter_map(|k| StaticKey::new(k).ok().map(Arc::new))
                .collect();
            if keys.is_empty() {
                return Err(HandshakeError::NotRecovering);
            }
            keys
        } else {
            vec![config.static_key.clone()]
        };
        let mut failure = None;
        for static_key in keys {
            match read_hello(
                self.suite,
                ty,
                kind,
                psk.as_ref(),
                &config.rng,
                static_key,
                body,
            ) {
                Ok((hs, remote, params)) => {
                    if kind != Kind::Pairing && !config.trust.is_trusted(remote.as_bytes()) {
                        return Err(HandshakeError::Untrusted(remote));
                    }
                    self.peer_params = Some(params);
                    self.peer = Some(remote);
                    self.kind = kind;
                    self.step = Step::ResponderSendHello(Box::new(hs));
                    return Ok(());
                }
                // Only a key that could not open message 1 makes way for the next.
                Err(e @ HandshakeError::Noise(_)) => failure = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(failure.unwrap_or(HandshakeError::NotRecovering))
    }

    fn check_finished(&mut self, initiator: bool, body: &[u8]) -> Result<(), HandshakeError> {
        let secrets = self
            .secrets
            .as_ref()
            .ok_or(HandshakeError::Unexpected(msg::RESPONDER_FINISHED))?;
        if body.len() != FINISHED_LEN || !secrets.verify_finished(initiator, body) {
            return Err(HandshakeError::BadFinished);
        }
        self.peer_finished = true;
        Ok(())
    }

    /// Reads and handles every complete message in the input buffer.
    fn read_messages(&mut self) -> Result<bool, HandshakeError> {
        let mut ready = false;
        while let Some(&[ty, hi, lo]) = self.inbuf.get(..FRAME_HEADER) {
            if !(msg::INITIATOR_HELLO..=msg::INITIATOR_HELLO_RECOVERY).contains(&ty) {
                return Err(HandshakeError::Malformed("unknown message type"));
            }
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if self.inbuf.len() < FRAME_HEADER + len {
                break;
            }
            let body: Vec<u8> = self
                .inbuf
                .drain(..FRAME_HEADER + len)
                .skip(FRAME_HEADER)
                .collect();
            ready |= self.handle_message(ty, &body)?;
        }
        Ok(ready)
    }

    fn finish_keys(&mut self, secrets: &HandshakeSecrets) -> Keys {
        let (local, remote) = match self.side {
            Side::Client => (secrets.ap_i2r, secrets.ap_r2i),
            Side::Server => (secrets.ap_r2i, secrets.ap_i2r),
        };
        self.one_rtt = Some((local, remote));
        keys::keys_from_secrets(self.suite, &local, &remote)
    }

    fn handshake_keys(&self, secrets: &HandshakeSecrets) -> Keys {
        match self.side {
            Side::Client => keys::keys_from_secrets(self.suite, &secrets.hs_i2r, &secrets.hs_r2i),
            Side::Server => keys::keys_from_secrets(self.suite, &secrets.hs_r2i, &secrets.hs_i2r),
        }
    }
}

impl crypto::Session for NquicSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        initial_keys(self.suite, dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        if !self.handshake_data_ready {
            return None;
        }
        Some(Box::new(HandshakeData {
            suite: self.suite,
            pairing: self.kind == Kind::Pairing,
            recovery: self.kind == Kind::Recovery,
            peer: self.peer?,
        }))
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        if !self.handshake_data_ready {
            return None;
        }
        Some(Box::new(self.peer?))
    }

    fn early_crypto(&self) -> Option<(Box<dyn crypto::HeaderKey>, Box<dyn crypto::PacketKey>)> {
        None
    }

    fn early_data_accepted(&self) -> Option<bool> {
        None
    }

    fn is_handshaking(&self) -> bool {
        !self.peer_finished
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        if matches!(self.step, Step::Failed) {
            return Err(HandshakeError::Malformed("handshake already failed").into());
        }
        if self.inbuf.len() + buf.len() > FRAME_HEADER + MAX_NOISE_MESSAGE {
            self.step = Step::Failed;
            return Err(HandshakeError::Malformed("handshake message too long").into());
        }
        self.inbuf.extend_from_slice(buf);
        match self.read_messages() {
            Ok(ready) => {
                if ready && !self.handshake_data_ready {
                    self.handshake_data_ready = true;
                    return Ok(true);
                }
                Ok(false)
            }
            Err(err) => {
                self.step = Step::Failed;
                Err(err.into())
            }
        }
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        Ok(self.peer_params)
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        match std::mem::replace(&mut self.step, Step::Failed) {
            Step::InitiatorSendHello(mut hs) => {
                let first = self.kind.first_message();
                // Writing message 1 fails only if the payload exceeds a Noise message; our
                // transport parameters are a few hundred bytes. On failure the step stays
                // `Failed` and the handshake times out rather than panics.
                if write_noise(&mut hs, first, &self.local_params, buf).is_ok() {
                    self.step = Step::InitiatorAwaitHello(hs);
                }
                None
            }
            Step::InitiatorHandshakeKeys => {
                let secrets = self.secrets.clone()?;
                self.step = Step::InitiatorSendFinished;
                Some(self.handshake_keys(&secrets))
            }
            Step::InitiatorSendFinished => {
                let secrets = self.secrets.clone()?;
                write_frame(msg::INITIATOR_FINISHED, &secrets.finished_tag(true), buf);
                self.step = Step::Sent;
                Some(self.finish_keys(&secrets))
            }
            Step::ResponderSendHello(mut hs) => {
                write_noise(&mut hs, msg::RESPONDER_HELLO, &self.local_params, buf).ok()?;
                let secrets = split(&mut hs).ok()?;
                self.secrets = Some(secrets.clone());
                self.step = Step::ResponderSendFinished;
                Some(self.handshake_keys(&secrets))
            }
            Step::ResponderSendFinished => {
                let secrets = self.secrets.clone()?;
                write_frame(msg::RESPONDER_FINISHED, &secrets.finished_tag(false), buf);
                self.step = Step::Sent;
                Some(self.finish_keys(&secrets))
            }
            step => {
                self.step = step;
                None
            }
        }
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn crypto::PacketKey>>> {
        let (local, remote) = self.one_rtt.as_mut()?;
        *local = schedule::next_secret_with_prefix(schedule::NQUIC_LABEL_PREFIX, local);
        *remote = schedule::next_secret_with_prefix(schedule::NQUIC_LABEL_PREFIX, remote);
        Some(KeyPair {
            local: Box::new(PacketKey::from_secret(self.suite, &*local)),
            remote: Box::new(PacketKey::from_secret(self.suite, &*remote)),
        })
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        let Some(tag_start) = payload.len().checked_sub(16) else {
            return false;
        };
        let mut packet = Vec::with_capacity(header.len() + tag_start);
        packet.extend_from_slice(header);
        packet.extend_from_slice(&payload[..tag_start]);
        let expected = retry_tag(self.suite, orig_dst_cid, &packet);
        // Compared without an early exit; the tag is public anyway (NQUIC.md §5.6).
        expected
            .iter()
            .zip(&payload[tag_start..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        let secrets = self.secrets.as_ref().ok_or(ExportKeyingMaterialError)?;
        secrets
            .export(output, label, context)
            .map_err(|_| ExportKeyingMaterialError)
    }
}

/// The Initial keys of a connection (`NQUIC.md` §5.1).
pub(crate) fn initial_keys(suite: Suite, dst_cid: &ConnectionId, side: Side) -> Keys {
    let (client, server) = schedule::initial_secrets(dst_cid);
    match side {
        Side::Client => keys::keys_from_secrets(suite, &client, &server),
        Side::Server => keys::keys_from_secrets(suite, &server, &client),
    }
}

fn retry_pseudo_packet(orig_dst_cid: &ConnectionId, packet: &[u8]) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(1 + orig_dst_cid.len() + packet.len() + 16);
    // A connection ID is at most 20 bytes, so its length fits a byte.
    pseudo.push(orig_dst_cid.len() as u8);
    pseudo.extend_from_slice(orig_dst_cid);
    pseudo.extend_from_slice(packet);
    pseudo
}

/// The retry integrity tag of a Retry packet without its tag (`NQUIC.md` §5.6).
pub(crate) fn retry_tag(suite: Suite, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
    let pseudo = retry_pseudo_packet(orig_dst_cid, packet);
    let (key, nonce) = schedule::retry_key(suite);
    // Key lengths come from the suite; sealing an empty plaintext cannot exceed limits.
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(suite.aead(), &key[..suite.key_len()])
            .expect("key length is the suite's AEAD key length"),
    );
    let tag = key
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&pseudo),
            &mut [],
        )
        .expect("an empty plaintext is within the AEAD's limits");
    let mut out = [0; 16];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The responder's reading of message 1 with one static key: the handshake state, the
/// initiator's noise key and transport parameters.
fn read_hello(
    suite: Suite,
    ty: u8,
    kind: Kind,
    psk: Option<&[u8; 32]>,
    rng: &RandomSource,
    static_key: Arc<StaticKey>,
    body: &[u8],
) -> Result<(snow::HandshakeState, NoiseKey, TransportParameters), HandshakeError> {
    let prologue = prologue(suite, ty);
    let mut builder = snow::Builder::with_resolver(
        noise_params(suite, kind == Kind::Pairing),
        Box::new(Resolver {
            rng: rng.clone(),
            static_key: static_key.clone(),
        }),
    )
    .local_private_key(static_key.private_bytes())
    .and_then(|b| b.prologue(&prologue))
    .map_err(HandshakeError::Noise)?;
    if let Some(psk) = psk {
        builder = builder.psk(1, psk).map_err(HandshakeError::Noise)?;
    }
    let mut hs = builder.build_responder().map_err(HandshakeError::Noise)?;
    let mut payload = vec![0; body.len()];
    let len = hs
        .read_message(body, &mut payload)
        .map_err(HandshakeError::Noise)?;
    let remote = hs
        .get_remote_static()
        .and_then(|key| <[u8; 32]>::try_from(key).ok())
        .map(NoiseKey)
        .ok_or(HandshakeError::Malformed("no initiator static key"))?;
    let params = TransportParameters::read(Side::Server, &mut &payload[..len])
        .map_err(|e| HandshakeError::TransportParameters(e.into()))?;
    Ok((hs, remote, params))
}

fn noise_params(suite: Suite, pairing: bool) -> snow::params::NoiseParams {
    let pattern = if pairing { "IKpsk1" } else { "IK" };
    let name = format!("Noise_{pattern}_25519_{}_BLAKE2s", suite.noise_cipher());
    // The four names built here are valid Noise protocol names that snow supports.
    name.parse().expect("nQUIC's Noise protocol names parse")
}

fn prologue(suite: Suite, first_message: u8) -> Vec<u8> {
    let mut prologue = b"photomesh-nquic/1".to_vec();
    prologue.extend_from_slice(&suite.version().to_be_bytes());
    prologue.push(first_message);
    prologue
}

fn encode_params(params: &TransportParameters) -> Vec<u8> {
    let mut out = Vec::new();
    params.write(&mut out);
    out
}

fn write_frame(ty: u8, body: &[u8], buf: &mut Vec<u8>) {
    buf.push(ty);
    // Bodies are Noise messages (at most 65,535 bytes) or 32-byte tags.
    buf.extend_from_slice(&(body.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    buf.extend_from_slice(body);
}

fn write_noise(
    hs: &mut snow::HandshakeState,
    ty: u8,
    payload: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), snow::Error> {
    // Noise adds at most two keys, two tags and one encrypted static (IK message 1: 96
    // bytes) to the payload.
    let mut message = vec![0; (payload.len() + 128).min(MAX_NOISE_MESSAGE)];
    let len = hs.write_message(payload, &mut message)?;
    write_frame(ty, &message[..len], buf);
    Ok(())
}

fn split(hs: &mut snow::HandshakeState) -> Result<HandshakeSecrets, HandshakeError> {
    if !hs.is_handshake_finished() {
        return Err(HandshakeError::Malformed("Noise handshake not finished"));
    }
    let hash: Secret = hs
        .get_handshake_hash()
        .try_into()
        .map_err(|_| HandshakeError::Malformed("handshake hash length"))?;
    let (k_i2r, k_r2i) = hs.dangerously_get_raw_split();
    Ok(HandshakeSecrets::derive(&hash, &k_i2r, &k_r2i))
}

/// snow's default hash and ciphers, nQUIC's X25519 (`dh.rs`) that knows the configuration's
/// static key, and the caller's randomness for ephemeral keys.
struct Resolver {
    rng: RandomSource,
    static_key: Arc<StaticKey>,
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Rng(self.rng.clone())))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519::new(self.static_key.clone()))),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

struct Rng(RandomSource);

impl Random for Rng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        (self.0)(dest);
        Ok(())
    }
}
