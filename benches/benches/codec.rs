//! The stored envelope's JSON codec (`store::encode` / `store::decode`) for both event types.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use userflows_benches::{event_meta, flow, TENANT};
use userflows_emulator::domain::{UserFlowEvent, UserFlowId};
use userflows_emulator::store::{decode, encode};

fn codec(c: &mut Criterion) {
    let meta = event_meta();
    let events = [
        (
            "created",
            UserFlowEvent::Created(flow("B2C_1_SignUpSignIn").expect("a valid flow")),
        ),
        (
            "deleted",
            UserFlowEvent::Deleted {
                id: UserFlowId::parse("B2C_1_SignUpSignIn").expect("a valid id"),
            },
        ),
    ];
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    for (name, event) in &events {
        let record = encode(TENANT, 42, &meta, event).expect("encodes");
        decode(&record).expect("decodes what it encoded");
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(TENANT), black_box(42), &meta, black_box(event)));
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&record)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = codec
}
criterion_main!(benches);
