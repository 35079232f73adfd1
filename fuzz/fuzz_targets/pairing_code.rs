//! Pairing codes, as text (what a person types or a QR code carries) and as bytes: any input
//! gives a code or an error, and a code read back encodes to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::pairing::PairingCode;

fuzz_target!(|data: &[u8]| {
    if let Ok(code) = PairingCode::from_bytes(data) {
        assert_eq!(code.to_bytes(), data, "a decoded code encodes differently");
        let _ = code.check_expiry(1_765_000_000);
        let _ = code.psk();
        assert_eq!(code.to_string().parse::<PairingCode>().ok(), Some(code));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<PairingCode>();
    }
});
