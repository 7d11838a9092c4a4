//! The `$batch` body reader: any bytes give a batch of 1 to 20 requests or the words of its
//! `400`, never a panic; and the one-pass reading of a well-formed body agrees with the two-pass
//! reading that words the refusals (neither loses nor lets through a body the other would not).
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::http::batch::{read, read_two_pass, MAX_REQUESTS};

fuzz_target!(|bytes: &[u8]| {
    let answer = read(bytes);
    assert_eq!(answer, read_two_pass(bytes), "the readers disagree");
    match answer {
        Ok(n) => assert!((1..=MAX_REQUESTS).contains(&n)),
        Err(message) => assert!(message.starts_with("Invalid batch payload: "), "{message}"),
    }
});
