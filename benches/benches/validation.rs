//! Parse + validate a create body (`http::body::parse_create_body`): a valid body, and one body for
//! each way a body is refused (missing property, bad enum value, version as a string, unknown
//! property, malformed JSON).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use userflows_emulator::http::body::parse_create_body;

const BODIES: &[(&str, &str)] = &[
    (
        "valid",
        r#"{"id":"B2C_1_SignUpSignIn","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}"#,
    ),
    (
        "missing_id",
        r#"{"userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}"#,
    ),
    (
        "bad_enum",
        r#"{"id":"B2C_1_SignUpSignIn","userFlowType":"String","userFlowTypeVersion":1}"#,
    ),
    (
        "string_version",
        r#"{"id":"B2C_1_SignUpSignIn","userFlowType":"signUpOrSignIn","userFlowTypeVersion":"Single"}"#,
    ),
    (
        "unknown_property",
        r#"{"id":"B2C_1_SignUpSignIn","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1,"colour":"blue"}"#,
    ),
    (
        "malformed_json",
        r#"{"id":"B2C_1_SignUpSignIn","userFlowType":"signUpOrSignIn","#,
    ),
];

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validation");
    group.throughput(Throughput::Elements(1));
    for (name, body) in BODIES {
        let expect_ok = *name == "valid";
        assert_eq!(
            parse_create_body(body.as_bytes()).is_ok(),
            expect_ok,
            "the {name} body is not judged as the bench assumes"
        );
        group.bench_function(*name, |b| {
            b.iter(|| parse_create_body(black_box(body.as_bytes())));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = validation
}
criterion_main!(benches);
