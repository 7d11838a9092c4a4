//! The list query-string parsers, `$skiptoken` included: any string is a query or a Graph 400,
//! never a panic; a skiptoken the emulator writes always reads back, in its own tenant only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::domain::{Cursor, UserFlowType};
use userflows_emulator::http::query::{parse_count, parse_get, parse_list, parse_none};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = parse_list(text, "t");
    let _ = parse_count(text);
    let _ = parse_get(text);
    let _ = parse_none(text);
    if bytes.len() >= 13 {
        let at = |i: usize| bytes[i];
        let cursor = Cursor {
            position: u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
            id: text.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase(),
            kind: UserFlowType::ALL[usize::from(at(8)) % UserFlowType::ALL.len()],
            version: u32::from_le_bytes([at(9), at(10), at(11), at(12)]),
        };
        let Ok(options) = parse_list("$orderby=id", "t") else {
            return;
        };
        let link = options.next_link("", 7, &cursor);
        let query = link.trim_start_matches('?');
        let again = parse_list(query, "t").unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(again.query.resume, Some((7, cursor)), "{query}");
        assert!(parse_list(query, "u").is_err(), "{query}");
    }
});
