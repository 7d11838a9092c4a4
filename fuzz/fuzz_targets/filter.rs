//! The `$filter`, `$orderby` and `$select` grammars: any text is an expression or an error that
//! says so, never a panic, a hang or a stack overflow; what parses evaluates without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userflows_emulator::domain::{UserFlow, UserFlowId, UserFlowType, UserFlowTypeVersion};
use userflows_emulator::http::filter::{parse_filter, parse_orderby, parse_select};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match parse_filter(text) {
        Ok(filter) => {
            for kind in UserFlowType::ALL {
                let flow = UserFlow {
                    id: UserFlowId::from_stored("B2C_1_Fuzz"),
                    user_flow_type: kind,
                    user_flow_type_version: UserFlowTypeVersion::from_stored(1.0),
                };
                let _ = filter.matches(&flow);
            }
        }
        Err(message) => assert!(message.starts_with("Invalid filter clause: "), "{message}"),
    }
    let _ = parse_orderby(text);
    let _ = parse_select(text);
});
