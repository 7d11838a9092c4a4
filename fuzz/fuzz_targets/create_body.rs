//! The create-body parser: any bytes give a command or a body error, never a panic; and the
//! fast byte scan agrees with the general serde path on every input (same flow, same error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::http::body::{parse_any_body, parse_create_body};

fuzz_target!(|bytes: &[u8]| {
    let answer = parse_create_body(bytes);
    assert_eq!(answer, parse_any_body(bytes), "the scan and serde disagree");
    if let Ok(command) = answer {
        // An accepted body always becomes a valid, prefixed flow.
        assert!(command
            .flow
            .id
            .as_str()
            .to_ascii_uppercase()
            .starts_with("B2C_1_"));
        assert!(command.flow.user_flow_type_version.value() > 0.0);
    }
});
