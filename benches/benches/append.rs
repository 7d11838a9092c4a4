//! Appending to a tenant's sled stream (relaxed: no flush per write): one write of a batch of 1,
//! 4, 16 and 64 encoded creates, the batch built in the timed loop as the tenant actor builds
//! it. Reported as events per second: sled's cost is per insert, not per byte, which is why a
//! tenant writes the events of one pass over its mailbox as one record (docs/adr/0007).

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use userflows_benches::{event_meta, flow, TENANT};
use userflows_emulator::codec::encode;
use userflows_emulator::domain::UserFlowEvent;
use userflows_emulator::store::{EventLog, RecordBatch, SledEventLog};

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let log = SledEventLog::open(dir.path(), false).expect("opens sled");
    let mut stream = log.open(TENANT).expect("opens the stream");
    let event = UserFlowEvent::Created(flow("B2C_1_SignUpSignIn").expect("a valid flow"));
    let record = encode(1, &event_meta(), &event).expect("encodes");

    let mut group = c.benchmark_group("append");
    for records in [1_u64, 4, 16, 64] {
        group.throughput(Throughput::Elements(records));
        group.bench_with_input(
            BenchmarkId::new("records_per_write", records),
            &records,
            |b, &records| {
                b.iter(|| {
                    let mut batch = RecordBatch::starting_at(stream.last_seq() + 1);
                    for _ in 0..records {
                        batch.push(&record);
                    }
                    stream.append(&batch).expect("appends");
                });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = append
}
criterion_main!(benches);
