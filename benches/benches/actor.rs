//! Tenant actor round trip over the in-memory log: a `TenantRegistry` with `MemoryEventLog`
//! inside an actix `System`, one arbiter. `get` is a read (message to the actor and back);
//! `create+delete` is two commands, each decided, appended and evolved (the in-memory log is
//! durable on append, so no flush is waited for), keeping the state small.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use userflows_benches::{create, delete, registry, request_meta, unique_id};
use userflows_emulator::domain::FlowKey;
use userflows_emulator::store::MemoryEventLog;
use userflows_emulator::tenant::{Read, ReadOutcome, WriteOutcome};

fn actor(c: &mut Criterion) {
    let system = actix::System::new();
    let (registry, handle) = system
        .block_on(async { registry(Arc::new(MemoryEventLog::new())) })
        .expect("a registry");
    let known = unique_id();
    let created =
        system.block_on(handle.execute(create(&known).expect("a command"), request_meta()));
    assert!(matches!(created, Ok(WriteOutcome::Created(..))));

    let mut group = c.benchmark_group("actor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let read = handle.read(Read::Get(FlowKey::of(&known))).await;
                    assert!(matches!(read, Ok(ReadOutcome::Flow(Some(_)))));
                }
                started.elapsed()
            })
        });
    });
    group.throughput(Throughput::Elements(2));
    group.bench_function("create+delete", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let id = unique_id();
                    let command = create(&id).expect("a command");
                    let created = handle.execute(command, request_meta()).await;
                    assert!(matches!(created, Ok(WriteOutcome::Created(..))));
                    let deleted = handle.execute(delete(&id), request_meta()).await;
                    assert!(matches!(deleted, Ok(WriteOutcome::Deleted(..))));
                }
                started.elapsed()
            })
        });
    });
    group.finish();
    registry.shutdown();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = actor
}
criterion_main!(benches);
