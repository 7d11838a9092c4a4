//! Group commit: durable creates per second with 1, 16 and 128 concurrent writers on one tenant
//! of a `SledEventLog::open(dir, true)` registry (each create is acknowledged only after a
//! flush covers it, so many writers share one flush). Reported as events per second.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use userflows_benches::{create, registry, request_meta, unique_id};
use userflows_emulator::store::{EventLog, SledEventLog};
use userflows_emulator::tenant::WriteOutcome;

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let log: Arc<dyn EventLog> =
        Arc::new(SledEventLog::open(dir.path(), true).expect("opens sled in durable mode"));
    let system = actix::System::new();
    let (registry, handle) = system
        .block_on(async { registry(Arc::clone(&log)) })
        .expect("a registry");

    let mut group = c.benchmark_group("group_commit");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    for writers in [1_u64, 16, 128] {
        group.bench_with_input(
            BenchmarkId::new("writers", writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    system.block_on(async {
                        let started = Instant::now();
                        let tasks: Vec<_> = (0..writers)
                            .map(|w| {
                                let share = iters / writers + u64::from(w < iters % writers);
                                let handle = handle.clone();
                                actix_web::rt::spawn(async move {
                                    for _ in 0..share {
                                        let command = create(&unique_id()).expect("a command");
                                        let created = handle.execute(command, request_meta()).await;
                                        assert!(matches!(created, Ok(WriteOutcome::Created(..))));
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("a writer finished");
                        }
                        started.elapsed()
                    })
                });
            },
        );
    }
    group.finish();
    let stats = log.commit_stats();
    if stats.flushes > 0 {
        eprintln!(
            "group_commit: {} events in {} flushes ({:.1} events/flush over all runs)",
            stats.events,
            stats.flushes,
            stats.events as f64 / stats.flushes as f64
        );
    }
    registry.shutdown();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = group_commit
}
criterion_main!(benches);
