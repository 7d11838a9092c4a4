//! The snapshot decoder and the state rebuilt from it: any bytes give a snapshot or an error,
//! and a snapshot a state or an error, never a panic; a state rebuilt from a snapshot gives that
//! snapshot back, and (its versions finite, as every create stores them) is written and read
//! back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::codec::{decode_snapshot, encode_snapshot};
use userflows_emulator::domain::UserFlows;

/// The tenant and seq the corpus's snapshots were written for.
const TENANT: &str = "t";
const SEQ: u64 = 7;

fuzz_target!(|bytes: &[u8]| {
    let Ok(snapshot) = decode_snapshot(TENANT, SEQ, bytes) else {
        return;
    };
    let Ok(state) = UserFlows::from_snapshot(snapshot.clone()) else {
        return;
    };
    assert_eq!(
        state.snapshot(),
        snapshot,
        "the state gives back its snapshot"
    );
    if snapshot
        .flows
        .iter()
        .all(|(_, flow)| flow.user_flow_type_version.value().is_finite())
    {
        let written = encode_snapshot(TENANT, SEQ, state.snapshot()).expect("a state encodes");
        assert_eq!(decode_snapshot(TENANT, SEQ, &written), Ok(snapshot));
    }
});
