//! The envelope's codecs for both event types: `encode` (the compact stored form), recovery's
//! `decode_event` of a compact record and of the same record stored as JSON (logs written before
//! docs/adr/0005), and `to_json` (what exports and the event route show).

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use userflows_benches::{event_meta, flow, TENANT};
use userflows_emulator::codec::{decode, decode_event, encode, to_json};
use userflows_emulator::domain::{UserFlowEvent, UserFlowId};

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
        let record = encode(42, &meta, event).expect("encodes");
        decode(TENANT, &record).expect("decodes what it encoded");
        let json = to_json(TENANT, &record).expect("renders").into_owned();
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(42), &meta, black_box(event)));
        });
        group.bench_function(format!("decode_event/{name}"), |b| {
            b.iter(|| decode_event(TENANT, black_box(&record)).map(|r| r.event));
        });
        group.bench_function(format!("decode_event_json/{name}"), |b| {
            b.iter(|| decode_event(TENANT, black_box(&json)).map(|r| r.event));
        });
        group.bench_function(format!("to_json/{name}"), |b| {
            b.iter(|| to_json(TENANT, black_box(&record)).map(|j| j.len()));
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
