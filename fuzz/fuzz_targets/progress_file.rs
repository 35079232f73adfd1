//! A partial blob's progress file, as a crash or a damaged disk leaves it: any text gives a
//! set of verified chunk groups within the blob and the bytes on disk, or nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let on_disk = u64::from(size) * 16 * 1024;
    photomesh::fuzzing::progress_file(text, on_disk);
});
