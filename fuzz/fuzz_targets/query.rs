//! The list query-string parser, `$skiptoken` included: any string is a query or a Graph 400,
//! never a panic; a skiptoken the emulator writes always reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::http::query::{parse_list, parse_none, skiptoken};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = parse_list(text);
    let _ = parse_none(text);
    if bytes.len() >= 8 {
        let after = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
        let query = format!("$skiptoken={}", skiptoken(after));
        assert!(parse_list(&query).is_ok(), "{query}");
    }
});
