//! Every application message a peer can send, decoded from the same bytes: any input gives a
//! message or an error, and a decoded message encodes to a frame that decodes to it again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::messages::{
    BlobHeader, Hello, JoinConfirm, JoinRequest, JoinResponse, ReconcileFrame, Records, Request,
    decode_body, encode_frame, frame_len,
};

fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = decode_body::<T>(data)
        && let Ok(frame) = encode_frame(&message)
    {
        assert_eq!(decode_body::<T>(&frame[4..]).ok(), Some(message));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(head) = data.get(..4) {
        let _ = frame_len([head[0], head[1], head[2], head[3]]);
    }
    round_trip::<Request>(data);
    round_trip::<Hello>(data);
    round_trip::<JoinRequest>(data);
    round_trip::<JoinResponse>(data);
    round_trip::<JoinConfirm>(data);
    round_trip::<BlobHeader>(data);
    round_trip::<ReconcileFrame>(data);
    round_trip::<Records>(data);
});
