//! The nQUIC handshake driven directly through quinn-proto's crypto traits, without
//! sockets: both patterns and suites, refusals, fixed vectors, and malformed input.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use bytes::BytesMut;
use photomesh_protocol::nquic::{
    self, ClientConfig, HandshakeData, NoiseKey, RandomSource, ServerConfig, Suite,
};
use proptest::prelude::*;
use quinn_proto::{
    ConnectionId, Side, TransportErrorCode,
    crypto::{self, ClientConfig as _, Keys, ServerConfig as _, Session},
    transport_parameters::TransportParameters,
};

const CLIENT_KEY: [u8; 32] = [0x11; 32];
const SERVER_KEY: [u8; 32] = [0x22; 32];
const PSK: [u8; 32] = [0x33; 32];

/// A deterministic randomness source: BLAKE3's output stream for a one-byte seed.
fn seeded(seed: u8) -> RandomSource {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"nquic test rng");
    hasher.update(&[seed]);
    let reader = Mutex::new(hasher.finalize_xof());
    Arc::new(move |buf: &mut [u8]| reader.lock().expect("rng lock").fill(buf))
}

fn empty_params(side: Side) -> TransportParameters {
    TransportParameters::read(side, &mut &[][..]).expect("empty parameters are valid")
}

fn trust(keys: &[[u8; 32]]) -> Arc<BTreeSet<[u8; 32]>> {
    Arc::new(
        keys.iter()
            .map(|k| *NoiseKey::from_private(k).as_bytes())
            .collect(),
    )
}

struct Setup {
    suite: Suite,
    client_key: [u8; 32],
    expected_server: NoiseKey,
    client_psk: Option<[u8; 32]>,
    server_psk: Option<[u8; 32]>,
    trusted: Vec<[u8; 32]>,
    /// The initiator runs a recovery (type `0x06`) to `expected_server`.
    client_recovery: bool,
    /// The recovery responder keys the responder holds (`None`: it answers no recovery).
    server_recovery: Option<Vec<[u8; 32]>>,
}

impl Setup {
    fn new(suite: Suite) -> Self {
        Self {
            suite,
            client_key: CLIENT_KEY,
            expected_server: NoiseKey::from_private(&SERVER_KEY),
            client_psk: None,
            server_psk: None,
            trusted: vec![CLIENT_KEY],
            client_recovery: false,
            server_recovery: None,
        }
    }

    fn sessions(&self) -> (Box<dyn Session>, Box<dyn Session>) {
        let mut client = ClientConfig::new(self.client_key, seeded(1));
        if let Some(psk) = self.client_psk {
            client = client.with_pairing_secret(psk);
        }
        if self.client_recovery {
            client = client.with_recovery();
        }
        let client = Arc::new(client)
            .start_session(
                self.suite.version(),
                &self.expected_server.to_string(),
                &empty_params(Side::Client),
            )
            .expect("client session starts");
        let mut server = ServerConfig::new(SERVER_KEY, trust(&self.trusted), seeded(2));
        if let Some(psk) = self.server_psk {
            server = server.with_pairing_secret(psk);
        }
        if let Some(keys) = &self.server_recovery {
            server = server.with_recovery_keys(Arc::new(keys.clone()));
        }
        let server =
            Arc::new(server).start_session(self.suite.version(), &empty_params(Side::Server));
        (client, server)
    }
}

/// Everything a completed handshake produced on both sides.
struct Completed {
    client: Box<dyn Session>,
    server: Box<dyn Session>,
    client_hs: Keys,
    server_hs: Keys,
    client_1rtt: Keys,
    server_1rtt: Keys,
}

/// Runs the three flights of `NQUIC.md` §4, asserting each step's shape.
fn handshake(setup: &Setup) -> Result<Completed, TransportErrorCode> {
    let (mut client, mut server) = setup.sessions();
    let mut hello = Vec::new();
    assert!(client.write_handshake(&mut hello).is_none());
    assert!(!hello.is_empty());
    assert!(server.read_handshake(&hello).map_err(|e| e.code)?);
    let mut server_initial = Vec::new();
    let server_hs = server
        .write_handshake(&mut server_initial)
        .expect("handshake keys");
    let mut server_handshake = Vec::new();
    let server_1rtt = server
        .write_handshake(&mut server_handshake)
        .expect("1-RTT keys");
    assert!(server.write_handshake(&mut Vec::new()).is_none());
    assert!(server.is_handshaking());

    assert!(client.read_handshake(&server_initial).map_err(|e| e.code)?);
    let mut nothing = Vec::new();
    let client_hs = client
        .write_handshake(&mut nothing)
        .expect("handshake keys");
    assert!(nothing.is_empty());
    let mut client_handshake = Vec::new();
    let client_1rtt = client
        .write_handshake(&mut client_handshake)
        .expect("1-RTT keys");
    assert!(client.write_handshake(&mut Vec::new()).is_none());
    assert!(client.is_handshaking());
    assert!(
        !client
            .read_handshake(&server_handshake)
            .map_err(|e| e.code)?
    );
    assert!(!client.is_handshaking());
    assert!(
        !server
            .read_handshake(&client_handshake)
            .map_err(|e| e.code)?
    );
    assert!(!server.is_handshaking());
    Ok(Completed {
        client,
        server,
        client_hs,
        server_hs,
        client_1rtt,
        server_1rtt,
    })
}

/// Seals `plaintext` as packet `pn` with `local` and opens it with `remote`.
fn round_trip(local: &dyn crypto::PacketKey, remote: &dyn crypto::PacketKey, pn: u64) -> Vec<u8> {
    let header = b"\x40header";
    let mut packet = header.to_vec();
    packet.extend_from_slice(b"some payload");
    packet.extend_from_slice(&vec![0; local.tag_len()]);
    local.encrypt(pn, &mut packet, header.len());
    let sealed = packet.clone();
    let mut payload = BytesMut::from(&packet[header.len()..]);
    remote
        .decrypt(pn, header, &mut payload)
        .expect("the peer's key opens the packet");
    assert_eq!(&payload[..], b"some payload");
    sealed
}

#[test]
fn ik_handshake_completes_in_both_suites_with_matching_keys() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let mut done = handshake(&Setup::new(suite)).expect("handshake succeeds");
        round_trip(
            &*done.client_hs.packet.local,
            &*done.server_hs.packet.remote,
            0,
        );
        round_trip(
            &*done.server_hs.packet.local,
            &*done.client_hs.packet.remote,
            0,
        );
        round_trip(
            &*done.client_1rtt.packet.local,
            &*done.server_1rtt.packet.remote,
            5,
        );
        round_trip(
            &*done.server_1rtt.packet.local,
            &*done.client_1rtt.packet.remote,
            5,
        );

        // Key update: both sides step to the same next keys, which differ from phase 0.
        let client_next = done.client.next_1rtt_keys().expect("next keys");
        let server_next = done.server.next_1rtt_keys().expect("next keys");
        round_trip(&*client_next.local, &*server_next.remote, 6);
        let mut sealed = b"\x40header".to_vec();
        sealed.extend_from_slice(b"payload");
        sealed.extend_from_slice(&[0; 16]);
        client_next.local.encrypt(9, &mut sealed, 7);
        let mut payload = BytesMut::from(&sealed[7..]);
        assert!(
            done.server_1rtt
                .packet
                .remote
                .decrypt(9, &sealed[..7], &mut payload)
                .is_err()
        );

        let identity = done
            .server
            .peer_identity()
            .expect("server knows the client");
        assert_eq!(
            *identity.downcast::<NoiseKey>().expect("a NoiseKey"),
            NoiseKey::from_private(&CLIENT_KEY)
        );
        let data = done.client.handshake_data().expect("handshake data");
        let data = data
            .downcast::<HandshakeData>()
            .expect("nQUIC handshake data");
        assert_eq!(data.suite, suite, "the negotiated suite is the version's");
        assert!(!data.pairing);
        assert_eq!(data.peer, NoiseKey::from_private(&SERVER_KEY));

        let mut a = [0; 48];
        let mut b = [0; 48];
        done.client
            .export_keying_material(&mut a, b"label", b"ctx")
            .expect("export");
        done.server
            .export_keying_material(&mut b, b"label", b"ctx")
            .expect("export");
        assert_eq!(a, b);
        done.server
            .export_keying_material(&mut b, b"label", b"other")
            .expect("export");
        assert_ne!(a, b);
    }
}

#[test]
fn untrusted_initiator_is_refused_at_the_first_message() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let mut setup = Setup::new(suite);
        setup.trusted = vec![[0x44; 32]];
        let (mut client, mut server) = setup.sessions();
        let mut hello = Vec::new();
        client.write_handshake(&mut hello);
        let err = server.read_handshake(&hello).expect_err("refused");
        assert_eq!(err.code, TransportErrorCode::crypto(49), "{err:?}");
        let mut out = Vec::new();
        assert!(server.write_handshake(&mut out).is_none());
        assert!(
            out.is_empty(),
            "the responder writes nothing to an untrusted initiator"
        );
        assert!(server.peer_identity().is_none());
    }
}

#[test]
fn initiator_expecting_another_responder_fails() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let mut setup = Setup::new(suite);
        setup.expected_server = NoiseKey::from_private(&[0x55; 32]);
        let err = handshake(&setup).err().expect("fails");
        assert_eq!(err, TransportErrorCode::crypto(51));
    }
}

#[test]
fn pairing_with_the_right_secret_completes_and_skips_the_trust_set() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let mut setup = Setup::new(suite);
        setup.trusted = vec![];
        setup.client_psk = Some(PSK);
        setup.server_psk = Some(PSK);
        let done = handshake(&setup).expect("pairing succeeds");
        let data = done.server.handshake_data().expect("data");
        let data = data
            .downcast::<HandshakeData>()
            .expect("nQUIC handshake data");
        assert!(data.pairing);
        assert_eq!(data.peer, NoiseKey::from_private(&CLIENT_KEY));
    }
}

#[test]
fn pairing_with_a_wrong_secret_fails_at_the_responder_on_the_first_message() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let mut setup = Setup::new(suite);
        setup.client_psk = Some(PSK);
        setup.server_psk = Some([0x34; 32]);
        let (mut client, mut server) = setup.sessions();
        let mut hello = Vec::new();
        client.write_handshake(&mut hello);
        let err = server
            .read_handshake(&hello)
            .expect_err("wrong PSK refused");
        assert_eq!(err.code, TransportErrorCode::crypto(51));
    }
}

#[test]
fn pairing_is_refused_by_a_responder_that_is_not_pairing() {
    let mut setup = Setup::new(Suite::ChaChaPoly);
    setup.client_psk = Some(PSK);
    let err = handshake(&setup).err().expect("refused");
    assert_eq!(err, TransportErrorCode::crypto(49));
}

const RESPONDER_KEY: [u8; 32] = [0x66; 32];

/// A recovery to the mesh's responder key, held among other keys, from a trusted initiator.
fn recovery_setup(suite: Suite) -> Setup {
    let mut setup = Setup::new(suite);
    setup.client_recovery = true;
    setup.expected_server = NoiseKey::from_private(&RESPONDER_KEY);
    setup.server_recovery = Some(vec![[0x67; 32], RESPONDER_KEY]);
    setup
}

#[test]
fn recovery_to_a_held_responder_key_completes_in_both_suites() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let done = handshake(&recovery_setup(suite)).expect("recovery handshake");
        let data = done
            .server
            .handshake_data()
            .expect("data")
            .downcast::<HandshakeData>()
            .expect("nQUIC handshake data");
        assert!(data.recovery && !data.pairing, "{data:?}");
        assert_eq!(data.peer, NoiseKey::from_private(&CLIENT_KEY));
        let client = done
            .client
            .handshake_data()
            .expect("data")
            .downcast::<HandshakeData>()
            .expect("nQUIC handshake data");
        assert!(client.recovery);
        assert_eq!(client.peer, NoiseKey::from_private(&RESPONDER_KEY));
        round_trip(
            &*done.client_1rtt.packet.local,
            &*done.server_1rtt.packet.remote,
            0,
        );
    }
}

#[test]
fn recovery_is_refused_without_the_key_or_the_trust_or_any_key() {
    // A responder key the responder does not hold: Noise fails on message 1.
    let mut setup = recovery_setup(Suite::ChaChaPoly);
    setup.server_recovery = Some(vec![[0x67; 32]]);
    assert_eq!(
        handshake(&setup).err(),
        Some(TransportErrorCode::crypto(51))
    );
    // The right key, but an initiator (recovery identity) the mesh does not trust.
    let mut setup = recovery_setup(Suite::ChaChaPoly);
    setup.trusted = vec![];
    assert_eq!(
        handshake(&setup).err(),
        Some(TransportErrorCode::crypto(49))
    );
    // A responder that holds no responder key refuses outright.
    let mut setup = recovery_setup(Suite::ChaChaPoly);
    setup.server_recovery = None;
    assert_eq!(
        handshake(&setup).err(),
        Some(TransportErrorCode::crypto(49))
    );
    setup.server_recovery = Some(vec![]);
    assert_eq!(
        handshake(&setup).err(),
        Some(TransportErrorCode::crypto(49))
    );
    // A plain IK initiator that names the responder key (not the device key) fails: the
    // responder uses its device key for type 0x01.
    let mut setup = recovery_setup(Suite::ChaChaPoly);
    setup.client_recovery = false;
    assert_eq!(
        handshake(&setup).err(),
        Some(TransportErrorCode::crypto(51))
    );
    // A recovery initiator that names the device key fails: type 0x06 uses responder keys.
    let mut setup = recovery_setup(Suite::ChaChaPoly);
    setup.expected_server = NoiseKey::from_private(&SERVER_KEY);
    assert_eq!(
        handshake(&setup).err(),
        Some(TransportErrorCode::crypto(51))
    );
}

#[test]
fn a_plain_ik_initiator_cannot_reach_a_pairing_responder_without_trust() {
    let mut setup = Setup::new(Suite::ChaChaPoly);
    setup.trusted = vec![];
    setup.server_psk = Some(PSK);
    let err = handshake(&setup).err().expect("refused");
    assert_eq!(err, TransportErrorCode::crypto(49));
}

#[test]
fn a_suite_mismatch_fails_in_noise() {
    // The version is bound into the prologue: a responder told a different version fails.
    let setup = Setup::new(Suite::ChaChaPoly);
    let (mut client, _) = setup.sessions();
    let mut server = Arc::new(ServerConfig::new(
        SERVER_KEY,
        trust(&[CLIENT_KEY]),
        seeded(2),
    ))
    .start_session(Suite::AesGcm.version(), &empty_params(Side::Server));
    let mut hello = Vec::new();
    client.write_handshake(&mut hello);
    assert!(server.read_handshake(&hello).is_err());
}

#[test]
fn messages_split_across_crypto_frames_are_reassembled() {
    let (mut client, mut server) = Setup::new(Suite::AesGcm).sessions();
    let mut hello = Vec::new();
    client.write_handshake(&mut hello);
    let (last, rest) = hello.split_last().expect("non-empty");
    for byte in rest {
        assert!(
            !server
                .read_handshake(&[*byte])
                .expect("partial input is fine")
        );
    }
    assert!(server.read_handshake(&[*last]).expect("complete"));
}

#[test]
fn unsupported_versions_and_bad_server_names_are_refused() {
    let config = Arc::new(ServerConfig::new(SERVER_KEY, trust(&[]), seeded(2)));
    assert!(config.initial_keys(1, &ConnectionId::new(&[1; 8])).is_err());
    let client = Arc::new(ClientConfig::new(CLIENT_KEY, seeded(1)));
    assert!(
        client
            .clone()
            .start_session(1, "x", &empty_params(Side::Client))
            .is_err()
    );
    assert!(
        client
            .start_session(
                nquic::VERSION_AES_GCM,
                "not-a-key",
                &empty_params(Side::Client)
            )
            .is_err()
    );
}

#[test]
fn retry_tags_verify_and_detect_corruption() {
    let config = Arc::new(ServerConfig::new(SERVER_KEY, trust(&[]), seeded(2)));
    let odcid = ConnectionId::new(&[7; 8]);
    let header = b"\xf0retry-header";
    let token = b"token-bytes";
    let mut packet = header.to_vec();
    packet.extend_from_slice(token);
    let tag = config.retry_tag(nquic::VERSION_CHACHA_POLY, &odcid, &packet);
    let (client, _) = Setup::new(Suite::ChaChaPoly).sessions();
    let mut payload = token.to_vec();
    payload.extend_from_slice(&tag);
    assert!(client.is_valid_retry(&odcid, header, &payload));
    payload[0] ^= 1;
    assert!(!client.is_valid_retry(&odcid, header, &payload));
    assert!(!client.is_valid_retry(&odcid, header, &[0; 3]));
}

/// Fixed vectors: fixed static keys and seeded ephemerals make the whole schedule
/// reproducible. A change to any label, input or order changes these bytes.
#[test]
fn key_schedule_fixed_vectors() {
    let mut out = Vec::new();
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let done = handshake(&Setup::new(suite)).expect("handshake succeeds");
        let mut exported = [0; 32];
        done.client
            .export_keying_material(&mut exported, b"photomesh test", b"")
            .expect("export");
        let hs = round_trip(
            &*done.client_hs.packet.local,
            &*done.server_hs.packet.remote,
            0,
        );
        let app = round_trip(
            &*done.client_1rtt.packet.local,
            &*done.server_1rtt.packet.remote,
            0,
        );
        let initial = {
            let keys = done
                .client
                .initial_keys(&ConnectionId::new(&[0x83; 8]), Side::Client);
            let server = done
                .server
                .initial_keys(&ConnectionId::new(&[0x83; 8]), Side::Server);
            round_trip(&*keys.packet.local, &*server.packet.remote, 0)
        };
        out.push(format!(
            "{suite:?} exporter={} initial={} handshake={} one_rtt={}",
            hex::encode(exported),
            hex::encode(&initial[7..]),
            hex::encode(&hs[7..]),
            hex::encode(&app[7..])
        ));
    }
    let expected = include_str!("nquic_vectors.txt");
    assert_eq!(
        out.join("\n"),
        expected.trim_end(),
        "vectors changed:\n{}",
        out.join("\n")
    );
}

/// Runs one handshake between two configs and returns every flight's bytes.
fn transcript(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    suite: Suite,
) -> Vec<Vec<u8>> {
    let mut client = client
        .clone()
        .start_session(
            suite.version(),
            &NoiseKey::from_private(&SERVER_KEY).to_string(),
            &empty_params(Side::Client),
        )
        .expect("client session starts");
    let mut server = server
        .clone()
        .start_session(suite.version(), &empty_params(Side::Server));
    let mut flights = vec![Vec::new(); 4];
    client.write_handshake(&mut flights[0]);
    server.read_handshake(&flights[0]).expect("message 1");
    server.write_handshake(&mut flights[1]);
    server.write_handshake(&mut flights[2]);
    client.read_handshake(&flights[1]).expect("message 2");
    client.write_handshake(&mut Vec::new());
    client.write_handshake(&mut flights[3]);
    client
        .read_handshake(&flights[2])
        .expect("responder finished");
    server
        .read_handshake(&flights[3])
        .expect("initiator finished");
    assert!(!client.is_handshaking() && !server.is_handshaking());
    flights
}

/// A config with a fixed peer remembers `ss` after its first connection (`NQUIC.md` §8);
/// the handshakes it makes are byte for byte those of configs that compute everything, and
/// each still has fresh ephemerals.
#[test]
fn remembering_ss_changes_no_handshake_byte() {
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        let remembering = Arc::new(
            ClientConfig::new(CLIENT_KEY, seeded(7)).with_peer(NoiseKey::from_private(&SERVER_KEY)),
        );
        let server = Arc::new(ServerConfig::new(
            SERVER_KEY,
            trust(&[CLIENT_KEY]),
            seeded(8),
        ));
        let remembered: Vec<_> = (0..3)
            .map(|_| transcript(&remembering, &server, suite))
            .collect();

        let (client_rng, server_rng) = (seeded(7), seeded(8));
        let computed: Vec<_> = (0..3)
            .map(|_| {
                let client = Arc::new(ClientConfig::new(CLIENT_KEY, client_rng.clone()));
                let server = Arc::new(ServerConfig::new(
                    SERVER_KEY,
                    trust(&[CLIENT_KEY]),
                    server_rng.clone(),
                ));
                transcript(&client, &server, suite)
            })
            .collect();
        assert_eq!(remembered, computed);
        assert_ne!(remembered[1][0], remembered[2][0], "fresh ephemerals");
    }
}

/// A config that remembers `ss` for one responder still fails against another.
#[test]
fn remembering_ss_for_one_responder_does_not_reach_another() {
    let client = Arc::new(
        ClientConfig::new(CLIENT_KEY, seeded(7)).with_peer(NoiseKey::from_private(&SERVER_KEY)),
    );
    let right = Arc::new(ServerConfig::new(
        SERVER_KEY,
        trust(&[CLIENT_KEY]),
        seeded(8),
    ));
    transcript(&client, &right, Suite::ChaChaPoly);
    let wrong = ServerConfig::new([0x44; 32], trust(&[CLIENT_KEY]), seeded(9));
    let mut session = client
        .start_session(
            Suite::ChaChaPoly.version(),
            "ignored",
            &empty_params(Side::Client),
        )
        .expect("client session starts");
    let mut server =
        Arc::new(wrong).start_session(Suite::ChaChaPoly.version(), &empty_params(Side::Server));
    let mut hello = Vec::new();
    session.write_handshake(&mut hello);
    let err = server.read_handshake(&hello).expect_err("wrong responder");
    assert_eq!(err.code, TransportErrorCode::crypto(51));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes as the first flight never panic the responder.
    #[test]
    fn arbitrary_first_flight_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_, mut server) = Setup::new(Suite::ChaChaPoly).sessions();
        let _ = server.read_handshake(&data);
        let _ = server.write_handshake(&mut Vec::new());
    }

    /// Flipping any bit of a valid first message ends the handshake with an error (or, in
    /// the length field, leaves it waiting for more), never a panic or a success.
    #[test]
    fn corrupted_first_message_is_an_error(index in 0usize..200, bit in 0u8..8) {
        let (mut client, mut server) = Setup::new(Suite::AesGcm).sessions();
        let mut hello = Vec::new();
        client.write_handshake(&mut hello);
        let index = index % hello.len();
        hello[index] ^= 1 << bit;
        match server.read_handshake(&hello) {
            Err(_) => {}
            Ok(ready) => {
                prop_assert!((1..3).contains(&index), "accepted a corrupted byte {index}");
                prop_assert!(!ready);
            }
        }
    }

    /// Arbitrary bytes as the responder's flight never panic the initiator.
    #[test]
    fn arbitrary_second_flight_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (mut client, _) = Setup::new(Suite::ChaChaPoly).sessions();
        client.write_handshake(&mut Vec::new());
        let _ = client.read_handshake(&data);
        let _ = client.write_handshake(&mut Vec::new());
    }
}

#[test]
fn aes_gcm_is_chosen_only_when_both_ends_have_aes() {
    assert_eq!(Suite::choose(true, Some(true)), Suite::AesGcm);
    assert_eq!(Suite::choose(true, Some(false)), Suite::ChaChaPoly);
    assert_eq!(Suite::choose(false, Some(true)), Suite::ChaChaPoly);
    assert_eq!(Suite::choose(false, Some(false)), Suite::ChaChaPoly);
    // Nothing known of the peer: assume it is like us.
    assert_eq!(Suite::choose(true, None), Suite::AesGcm);
    assert_eq!(Suite::choose(false, None), Suite::ChaChaPoly);
    for suite in [Suite::ChaChaPoly, Suite::AesGcm] {
        assert_eq!(Suite::from_version(suite.version()), Some(suite));
    }
    assert_eq!(Suite::from_version(1), None);
    assert_ne!(nquic::VERSION_AES_GCM, nquic::VERSION_CHACHA_POLY);
}

#[test]
fn noise_keys_round_trip_through_hex() {
    let key = NoiseKey::from_private(&CLIENT_KEY);
    let text = key.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text.parse::<NoiseKey>(), Ok(key));
    assert!("zz".repeat(32).parse::<NoiseKey>().is_err());
    assert!(text[..63].parse::<NoiseKey>().is_err());
    assert!(format!("{text}0").parse::<NoiseKey>().is_err());
    // A multi-byte character must not make slicing panic.
    assert!(format!("é{}", &text[2..]).parse::<NoiseKey>().is_err());
}
