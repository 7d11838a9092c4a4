//! Replay: fold N stored events of one tenant from a sled log in a temp directory with the one
//! `evolve`, N = 10k and 100k, two ways: `recover` (start-up recovery with snapshots off: ranges
//! scanned and decoded on every core, folded in order) and `tools` (`tenant::replay`, one thread
//! decoding each envelope whole, as the log commands do). Reported as events per second.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use userflows_benches::{fill, TENANT};
use userflows_emulator::store::{EventLog, SledEventLog};
use userflows_emulator::tenant::{recover, replay};

fn replay_events(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay");
    // 10 replays of 100k events take ~2.5 s: more than the default 2 s window.
    group.measurement_time(Duration::from_secs(4));
    for n in [10_000_u64, 100_000] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
        // Filled in relaxed mode (faster to build); replay reads the same records either way.
        let log = SledEventLog::open(dir.path(), false).expect("opens sled");
        fill(&log, TENANT, n).expect("fills the log");
        let stream = log.open(TENANT).expect("opens the stream");
        let replayed = replay(&*stream, TENANT, None, |_| {}).expect("replays");
        assert_eq!(replayed.last_seq, n);
        assert_eq!(replayed.flows.len() as u64, n);

        let recovered = recover(&log, &*stream, TENANT, None).expect("recovers");
        assert_eq!(recovered.recovered.flows.len() as u64, n);

        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("recover", n), &n, |b, _| {
            b.iter(|| recover(&log, &*stream, TENANT, None).expect("recovers"));
        });
        group.bench_with_input(BenchmarkId::new("tools", n), &n, |b, _| {
            b.iter(|| replay(&*stream, TENANT, None, |_| {}).expect("replays"));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = replay_events
}
criterion_main!(benches);
