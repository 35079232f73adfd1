//! Membership records. Raw bytes first (what a peer sends); then the same bytes as the body
//! of a record signed with a fixed key, so that the statement decoder behind the signature
//! check is reached too. Decoded records go through the trust-set evaluation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::identity::DeviceKeys;
use photomesh_protocol::membership::{MAGIC, MembershipRecord, TrustSet};

/// `PAIRING.md`: the membership signature's context.
const CONTEXT: &[u8] = b"photomesh 2026-11-22 membership record v1\0";

fn signed(body: &[u8]) -> Vec<u8> {
    let keys = DeviceKeys::from_secrets([7; 32], [8; 32]);
    let mut bytes = MAGIC.to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&keys.signing_public());
    bytes.extend_from_slice(body);
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(&bytes);
    bytes.extend_from_slice(&keys.sign(&message));
    bytes
}

fuzz_target!(|data: &[u8]| {
    let _ = MembershipRecord::decode(data);
    if let Ok(record) = MembershipRecord::decode(&signed(data)) {
        assert_eq!(MembershipRecord::decode(&record.bytes).ok(), Some(record.clone()));
        let founder = record.signer;
        let trust = TrustSet::evaluate(&founder, &[record]);
        let _ = trust.members().count();
    }
});
