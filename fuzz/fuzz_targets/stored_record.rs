//! The stored-record decoders (the compact record, a JSON envelope, an export line): any bytes
//! decode or give a codec error, never a panic; recovery's reader and the tools' reader agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::codec::{decode, decode_event, decode_json, to_json};

fuzz_target!(|bytes: &[u8]| {
    let fast = decode_event("t", bytes).map(|r| (r.seq, r.event));
    let whole = decode("t", bytes).map(|s| (s.envelope.seq, s.event));
    match (fast, whole) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("the readers disagree: {a:?} / {b:?}"),
    }
    let _ = decode_json(bytes);
    let _ = to_json("t", bytes);
});
