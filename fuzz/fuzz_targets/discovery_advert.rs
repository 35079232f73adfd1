//! mDNS adverts as any device on the LAN can publish them: the `v` and `t` TXT values parsed
//! and matched against a few members' IDs. A parsed advert publishes the same TXT values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::discovery::{Advert, DiscoveryKey};
use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::record::RecordId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `v` before the first NUL, `t` after it.
    let (version, tag) = match text.split_once('\0') {
        Some((v, t)) => (Some(v), Some(t)),
        None => (Some("1"), Some(text)),
    };
    if let Ok(advert) = Advert::parse(version, tag) {
        let txt = advert.txt();
        assert_eq!(Some(txt[1].1.as_str()), tag);
        let key = DiscoveryKey::from_founding_record(&RecordId([0x11; 32]));
        let members = [DeviceId::from_bytes([0x22; 20]), DeviceId::from_bytes([0x23; 20])];
        let _ = advert.identify(&key, members.iter());
    }
});
