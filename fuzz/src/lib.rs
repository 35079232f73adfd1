//! What the fuzz targets share.

use photomesh_protocol::identity::DeviceKeys;

/// `body` in a signed envelope (`magic` ‖ version 1 ‖ signer key ‖ body ‖ signature over
/// `context` and everything before it), signed with a fixed key: how a target reaches the
/// decoder behind a signature check.
pub fn signed(magic: [u8; 4], context: &[u8], body: &[u8]) -> Vec<u8> {
    let keys = DeviceKeys::from_secrets([7; 32], [8; 32]);
    let mut bytes = magic.to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&keys.signing_public());
    bytes.extend_from_slice(body);
    let mut message = context.to_vec();
    message.extend_from_slice(&bytes);
    bytes.extend_from_slice(&keys.sign(&message));
    bytes
}
