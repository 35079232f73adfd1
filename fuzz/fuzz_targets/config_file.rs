//! The configuration file (written by a person, or damaged on disk): any text gives a
//! configuration or an error that names the problem, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = photomesh::home::config::parse(text);
    let _ = photomesh::home::config::parse_duration(text);
    let _ = photomesh::home::config::parse_size(text);
});
