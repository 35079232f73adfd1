//! Fuzzes the nQUIC handshake reader: arbitrary CRYPTO-stream bytes, split at arbitrary
//! points, fed to a responder (first flight) or to an initiator that has sent its first
//! message (second flight). Any panic is a bug: malformed input must end the handshake
//! with an error.

#![no_main]

use std::{collections::BTreeSet, sync::Arc};

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::nquic::{ClientConfig, NoiseKey, RandomSource, ServerConfig, Suite};
use quinn_proto::{
    Side,
    crypto::{ClientConfig as _, ServerConfig as _, Session},
    transport_parameters::TransportParameters,
};

const CLIENT_KEY: [u8; 32] = [0x11; 32];
const SERVER_KEY: [u8; 32] = [0x22; 32];

fn zero_rng() -> RandomSource {
    Arc::new(|buf: &mut [u8]| buf.fill(0x42))
}

fn params(side: Side) -> Option<TransportParameters> {
    TransportParameters::read(side, &mut &[][..]).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let suite = if control & 1 == 0 {
        Suite::ChaChaPoly
    } else {
        Suite::AesGcm
    };
    let mut session: Box<dyn Session> = if control & 2 == 0 {
        let trust: BTreeSet<[u8; 32]> = [*NoiseKey::from_private(&CLIENT_KEY).as_bytes()].into();
        let mut config = ServerConfig::new(SERVER_KEY, Arc::new(trust), zero_rng());
        if control & 4 != 0 {
            config = config.with_pairing_secret([0x33; 32]);
        }
        let Some(params) = params(Side::Server) else {
            return;
        };
        Arc::new(config).start_session(suite.version(), &params)
    } else {
        let mut config = ClientConfig::new(CLIENT_KEY, zero_rng())
            .with_peer(NoiseKey::from_private(&SERVER_KEY));
        if control & 4 != 0 {
            config = config.with_pairing_secret([0x33; 32]);
        }
        let Some(params) = params(Side::Client) else {
            return;
        };
        let Ok(mut session) = Arc::new(config).start_session(suite.version(), "fuzz", &params)
        else {
            return;
        };
        session.write_handshake(&mut Vec::new());
        session
    };
    // Split the input into CRYPTO chunks of sizes taken from the control byte's high bits.
    let chunk = usize::from(control >> 3) + 1;
    for piece in rest.chunks(chunk) {
        if session.read_handshake(piece).is_err() {
            return;
        }
        let mut out = Vec::new();
        while session.write_handshake(&mut out).is_some() {}
    }
});
