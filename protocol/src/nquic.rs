//! nQUIC: Noise, not TLS, as QUIC's crypto layer, as implementations of quinn-proto's
//! `crypto::{ClientConfig, ServerConfig, Session, PacketKey, HeaderKey}`.
//!
//! The specification is `protocol/NQUIC.md`; this module follows it section by section.
//! A normal connection runs `Noise_IK_25519_<cipher>_BLAKE2s`: the initiator (QUIC client)
//! names the responder's [`NoiseKey`], the responder checks the initiator's noise key
//! against a [`TrustSet`] and refuses before any application data. Pairing runs
//! `Noise_IKpsk1_…` with the one-time secret as PSK. The [`Suite`] is the QUIC version.
//!
//! What it does not do: no sockets, clock or OS randomness (ephemeral keys come from the
//! [`RandomSource`] the caller supplies; the node passes the OS RNG, tests a seeded one);
//! no 0-RTT, no certificates, no session resumption. Building a `quinn::Endpoint` from
//! these configs is the node's job (`node/src/transport.rs`).
//!
//! - `schedule`: the key schedule (`NQUIC.md` §5).
//! - `keys`: packet and header protection with ring.
//! - `session`: the handshake state machine behind quinn's `Session`.

use std::{fmt, str::FromStr, sync::Arc};

use quinn_proto::{
    ConnectError, ConnectionId, Side,
    crypto::{self, Keys, UnsupportedVersion},
    transport_parameters::TransportParameters,
};
use ring::aead;

mod dh;
mod keys;
mod schedule;
mod session;

pub use session::{HandshakeData, HandshakeError, MAX_RECOVERY_KEYS, RecoveryKeys};

/// The QUIC version of the `ChaChaPoly` suite (`NQUIC.md` §2).
pub const VERSION_CHACHA_POLY: u32 = 0x504d_4e01;
/// The QUIC version of the `AESGCM` suite (`NQUIC.md` §2).
pub const VERSION_AES_GCM: u32 = 0x504d_4e02;
/// Every QUIC version an nQUIC endpoint accepts, for quinn's `EndpointConfig`.
pub const SUPPORTED_VERSIONS: [u32; 2] = [VERSION_CHACHA_POLY, VERSION_AES_GCM];

/// A cipher suite: the Noise cipher, the packet AEAD and the header protection together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// ChaCha20-Poly1305 packets and ChaCha20 header protection (RFC 9001 §5.4.4). The
    /// choice when either end lacks AES instructions.
    ChaChaPoly,
    /// AES-256-GCM packets and AES header protection (RFC 9001 §5.4.3). Chosen only when
    /// both ends have AES instructions.
    AesGcm,
}

impl Suite {
    /// The private QUIC version that selects this suite.
    pub const fn version(self) -> u32 {
        match self {
            Self::ChaChaPoly => VERSION_CHACHA_POLY,
            Self::AesGcm => VERSION_AES_GCM,
        }
    }

    /// The suite of a QUIC version, or `None` if it is not an nQUIC version.
    pub const fn from_version(version: u32) -> Option<Self> {
        match version {
            VERSION_CHACHA_POLY => Some(Self::ChaChaPoly),
            VERSION_AES_GCM => Some(Self::AesGcm),
            _ => None,
        }
    }

    /// The suite an initiator uses: AES-GCM when both ends have AES hardware.
    ///
    /// `peer_has_aes` is `None` when nothing is known of the peer yet (no advertisement, no
    /// earlier hello); the initiator then assumes the peer is like itself, since both suites
    /// work everywhere and the first connection to a peer often carries its whole backlog
    /// (`NQUIC.md` §2). A wrong guess only costs speed until the peer's hello corrects it.
    pub const fn choose(local_has_aes: bool, peer_has_aes: Option<bool>) -> Self {
        let peer_has_aes = match peer_has_aes {
            Some(known) => known,
            None => local_has_aes,
        };
        if local_has_aes && peer_has_aes {
            Self::AesGcm
        } else {
            Self::ChaChaPoly
        }
    }

    /// The cipher's name in a Noise protocol name.
    pub const fn noise_cipher(self) -> &'static str {
        match self {
            Self::ChaChaPoly => "ChaChaPoly",
            Self::AesGcm => "AESGCM",
        }
    }

    fn aead(self) -> &'static aead::Algorithm {
        match self {
            Self::ChaChaPoly => &aead::CHACHA20_POLY1305,
            Self::AesGcm => &aead::AES_256_GCM,
        }
    }

    fn header_protection(self) -> &'static aead::quic::Algorithm {
        match self {
            Self::ChaChaPoly => &aead::quic::CHACHA20,
            Self::AesGcm => &aead::quic::AES_256,
        }
    }

    const fn key_len(self) -> usize {
        32
    }
}

/// A device's Noise static public key (X25519): its identity on the wire.
///
/// `Display` and `FromStr` use 64 lowercase hex digits, which is also how a client config
/// without a fixed peer takes the responder's key from quinn's `server_name`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoiseKey(pub [u8; 32]);

impl NoiseKey {
    /// The public key of an X25519 private key.
    pub fn from_private(private_key: &[u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*private_key);
        Self(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// The key's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoiseKey({self})")
    }
}

/// A string was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a noise key is 64 hex digits, got {0:?}")]
pub struct ParseNoiseKeyError(String);

impl FromStr for NoiseKey {
    type Err = ParseNoiseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseNoiseKeyError(s.chars().take(80).collect());
        if s.len() != 64 || !s.is_ascii() {
            return Err(err());
        }
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(Self(out))
    }
}

/// The set of noise keys a responder accepts IK connections from. The node implements it
/// over the membership set (DESIGN §4).
pub trait TrustSet: Send + Sync {
    /// Whether `noise_key` belongs to a device the mesh currently trusts.
    fn is_trusted(&self, noise_key: &[u8; 32]) -> bool;
}

/// A fixed trust set, for tests and for a node whose membership does not change.
impl TrustSet for std::collections::BTreeSet<[u8; 32]> {
    fn is_trusted(&self, noise_key: &[u8; 32]) -> bool {
        self.contains(noise_key)
    }
}

/// The source of ephemeral key randomness: fills the buffer entirely. The node passes the
/// OS RNG; tests pass a seeded generator so that handshakes are reproducible.
pub type RandomSource = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// The initiator's (QUIC client's) nQUIC configuration: quinn's `crypto::ClientConfig`.
pub struct ClientConfig {
    static_key: Arc<dh::StaticKey>,
    peer: Option<NoiseKey>,
    pairing_secret: Option<[u8; 32]>,
    recovery: bool,
    rng: RandomSource,
}

impl ClientConfig {
    /// A configuration for this device's X25519 private key. Without [`Self::with_peer`],
    /// each connection takes the responder's noise key from quinn's `server_name` (hex).
    pub fn new(private_key: [u8; 32], rng: RandomSource) -> Self {
        Self {
            static_key: Arc::new(static_key(&private_key)),
            peer: None,
            pairing_secret: None,
            recovery: false,
            rng,
        }
    }

    /// Fixes the responder's noise key for every connection made with this config. The
    /// config then remembers the static-static DH result with it after the first connection
    /// (`NQUIC.md` §8), so reuse one config per peer rather than building one per connection.
    pub fn with_peer(mut self, peer: NoiseKey) -> Self {
        self.static_key = Arc::new(self.static_key.with_peer(peer.as_bytes()));
        self.peer = Some(peer);
        self
    }

    /// Makes every connection a pairing (`IKpsk1`) with the one-time secret as PSK.
    pub fn with_pairing_secret(mut self, secret: [u8; 32]) -> Self {
        self.pairing_secret = Some(secret);
        self
    }

    /// Makes every connection a recovery (type `0x06`): the peer given to
    /// [`Self::with_peer`] is the mesh's recovery responder key, and this config's key is
    /// the recovery identity's (`PAIRING.md`, "Recovery identity").
    pub fn with_recovery(mut self) -> Self {
        self.recovery = true;
        self
    }
}

impl crypto::ClientConfig for ClientConfig {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn crypto::Session>, ConnectError> {
        let suite = Suite::from_version(version).ok_or(ConnectError::UnsupportedVersion)?;
        let peer = match self.peer {
            Some(peer) => peer,
            None => server_name
                .parse()
                .map_err(|_| ConnectError::InvalidServerName(server_name.into()))?,
        };
        let session = session::NquicSession::initiator(
            suite,
            self.static_key.clone(),
            &peer,
            self.pairing_secret.as_ref(),
            self.recovery,
            self.rng.clone(),
            params,
        )
        // Building the handshake only fails for malformed local keys, which are fixed-size
        // arrays here; report it as a config error rather than panic.
        .map_err(|_| ConnectError::InvalidServerName(server_name.into()))?;
        Ok(Box::new(session))
    }
}

/// The responder's (QUIC server's) nQUIC configuration: quinn's `crypto::ServerConfig`.
pub struct ServerConfig {
    static_key: Arc<dh::StaticKey>,
    trust: Arc<dyn TrustSet>,
    pairing_secret: Option<[u8; 32]>,
    recovery: Option<Arc<dyn RecoveryKeys>>,
    rng: RandomSource,
}

impl ServerConfig {
    /// A configuration for this device's X25519 private key, accepting IK initiators whose
    /// noise key `trust` accepts.
    pub fn new(private_key: [u8; 32], trust: Arc<dyn TrustSet>, rng: RandomSource) -> Self {
        Self {
            static_key: Arc::new(static_key(&private_key)),
            trust,
            pairing_secret: None,
            recovery: None,
            rng,
        }
    }

    /// Also accepts pairings (`IKpsk1`) with this one-time secret, from any noise key.
    pub fn with_pairing_secret(mut self, secret: [u8; 32]) -> Self {
        self.pairing_secret = Some(secret);
        self
    }

    /// Also answers recoveries (type `0x06`) addressed to any of these responder keys, from
    /// initiators `trust` accepts.
    pub fn with_recovery_keys(mut self, keys: Arc<dyn RecoveryKeys>) -> Self {
        self.recovery = Some(keys);
        self
    }
}

impl crypto::ServerConfig for ServerConfig {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        let suite = Suite::from_version(version).ok_or(UnsupportedVersion)?;
        Ok(session::initial_keys(suite, dst_cid, Side::Server))
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        // quinn calls this only for versions `initial_keys` accepted; fall back to the
        // ChaCha suite rather than panic if that ever changes.
        let suite = Suite::from_version(version).unwrap_or(Suite::ChaChaPoly);
        session::retry_tag(suite, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        let suite = Suite::from_version(version).unwrap_or(Suite::ChaChaPoly);
        Box::new(session::NquicSession::responder(
            suite,
            self.static_key.clone(),
            self.trust.clone(),
            self.pairing_secret,
            self.recovery.clone(),
            self.rng.clone(),
            params,
        ))
    }
}

/// A configuration's static key, parsed once for all its connections.
fn static_key(private_key: &[u8; 32]) -> dh::StaticKey {
    // aws-lc takes any 32 bytes as an X25519 private key (X25519 clamps them, RFC 7748);
    // it refuses only a wrong length, which the array type rules out.
    dh::StaticKey::new(private_key).expect("every 32-byte string is an X25519 private key")
}
