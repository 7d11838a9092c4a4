//! The committed fuzz corpora replayed on the stable toolchain: the properties the cargo-fuzz
//! targets check (`fuzz/fuzz_targets/`) hold on every input the fuzzer kept, so a change that
//! breaks one fails `cargo test` even where the nightly toolchain is missing.

use std::path::PathBuf;

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use userflows_emulator::codec::{
    decode, decode_event, decode_json, decode_snapshot, encode_snapshot, to_json,
};
use userflows_emulator::domain::UserFlows;
use userflows_emulator::http::auth::tenant_of;
use userflows_emulator::http::batch::{read, read_two_pass, MAX_REQUESTS};
use userflows_emulator::http::body::{parse_any_body, parse_create_body};
use userflows_emulator::http::filter::{parse_filter, parse_orderby, parse_select};
use userflows_emulator::http::query::{parse_list, parse_none};
use userflows_emulator::http::{Access, Authenticator};

/// Every file of `fuzz/corpus/<target>/`; at least a few, or the corpus went missing.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        inputs.len() >= 10,
        "{} holds {} inputs",
        dir.display(),
        inputs.len()
    );
    inputs
}

#[test]
fn the_body_scan_and_serde_agree_on_every_corpus_input() {
    let mut accepted = 0;
    for bytes in corpus("create_body") {
        let answer = parse_create_body(&bytes);
        assert_eq!(
            answer,
            parse_any_body(&bytes),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        accepted += usize::from(answer.is_ok());
    }
    // The corpus reaches the accepting paths, not only the refusals.
    assert!(accepted > 0);
}

#[test]
fn both_batch_readers_agree_on_every_corpus_input() {
    let mut accepted = 0;
    for bytes in corpus("batch") {
        let answer = read(&bytes);
        let shown = String::from_utf8_lossy(&bytes);
        assert_eq!(answer, read_two_pass(&bytes), "{shown:?}");
        match answer {
            Ok(n) => {
                assert!((1..=MAX_REQUESTS).contains(&n), "{shown:?}");
                accepted += 1;
            }
            Err(message) => assert!(message.starts_with("Invalid batch payload: "), "{message}"),
        }
    }
    assert!(accepted > 0);
}

#[test]
fn the_stored_record_readers_agree_on_every_corpus_input() {
    for bytes in corpus("stored_record") {
        let fast = decode_event("t", &bytes).map(|r| (r.seq, r.event));
        let whole = decode("t", &bytes).map(|s| (s.envelope.seq, s.event));
        match (fast, whole) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("the readers disagree: {a:?} / {b:?}"),
        }
        let _ = decode_json(&bytes);
        let _ = to_json("t", &bytes);
    }
}

#[test]
fn every_corpus_snapshot_rebuilds_the_state_it_holds_or_is_refused() {
    let mut rebuilt = 0;
    for bytes in corpus("snapshot") {
        let Ok(snapshot) = decode_snapshot("t", 7, &bytes) else {
            continue;
        };
        let Ok(state) = UserFlows::from_snapshot(snapshot.clone()) else {
            continue;
        };
        assert_eq!(state.snapshot(), snapshot);
        if snapshot
            .flows
            .iter()
            .all(|(_, flow)| flow.user_flow_type_version.value().is_finite())
        {
            let written = encode_snapshot("t", 7, state.snapshot()).unwrap();
            assert_eq!(decode_snapshot("t", 7, &written), Ok(snapshot));
        }
        rebuilt += 1;
    }
    // The corpus reaches the rebuilding path, not only the refusals.
    assert!(rebuilt > 0);
}

#[test]
fn every_corpus_query_parses_or_is_refused() {
    for bytes in corpus("query") {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = parse_list(text, "tenant");
            let _ = parse_none(text);
        }
    }
}

#[test]
fn every_corpus_filter_parses_or_says_why() {
    for bytes in corpus("filter") {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Err(message) = parse_filter(text) {
                assert!(message.starts_with("Invalid filter clause: "), "{message}");
            }
            let _ = parse_orderby(text);
            let _ = parse_select(text);
        }
    }
}

#[test]
fn every_corpus_token_gives_a_tenant_or_a_refusal() {
    for bytes in corpus("token") {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            continue;
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        if let Ok(tenant) = tenant_of(&headers, &Authenticator::Lenient, Access::Read) {
            assert!(!tenant.as_str().is_empty());
        }
    }
}
