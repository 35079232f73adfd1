//! Lines on the node's control socket (any local process of the same user can write them):
//! any line gives a request or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = photomesh::net::control::parse_request(data);
});
