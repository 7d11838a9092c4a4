//! The request journal's cost per request: keeping a create's entry (in a journal at its
//! default bound, full, so every entry also drops the oldest), the same while another thread
//! reads the journal over and over as a test polling `/_emulator/requests?tenant=…` does, and
//! the SHA-256 digest of a create body that the journal notes beside it.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use userflows_emulator::chaos::Operation;
use userflows_emulator::journal::{Entry, Filter, Journal, PathAndQuery, DEFAULT_JOURNAL_BYTES};

fn create_entry(i: u64) -> Entry<'static> {
    Entry {
        at: SystemTime::now(),
        tenant: Some("8f7d6c5b-4a39-4e28-9d17-0c6b5a493827"),
        app: Some("5b4a3928-1706-4f5e-8d4c-3b2a19087f6e"),
        operation: Some(Operation::Create),
        method: "POST",
        path: PathAndQuery {
            path: "/beta/identity/userFlows",
            query: "",
        },
        status: Some(201),
        duration: Duration::from_micros(812),
        request_id: uuid::Uuid::from_u128(u128::from(i)),
        client_request_id: Some("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
        retry_attempt: None,
        body_digest: Some([1, 2, 3, 4, 5, 6, 7, 8]),
        batch: None,
        throttled: None,
        fault: None,
        seq: Some(i),
        retry_after: None,
    }
}

fn journal(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(1));
    let journal = Arc::new(Journal::new(DEFAULT_JOURNAL_BYTES));
    let mut i = 0;
    while journal.held().dropped == 0 {
        journal.record(&create_entry(i));
        i += 1;
    }
    group.bench_function("record/create", |b| {
        b.iter(|| {
            i += 1;
            journal.record(black_box(&create_entry(i)));
        });
    });
    // A reader on another thread: the newest 1000 entries of the tenant, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (journal, stop) = (Arc::clone(&journal), Arc::clone(&stop));
        std::thread::spawn(move || {
            let filter = Filter {
                tenant: Some("8f7d6c5b-4a39-4e28-9d17-0c6b5a493827".to_owned()),
                limit: 1000,
                ..Filter::default()
            };
            while !stop.load(Ordering::Relaxed) {
                black_box(journal.read(&filter));
            }
        })
    };
    group.bench_function("record/create_while_read", |b| {
        b.iter(|| {
            i += 1;
            journal.record(black_box(&create_entry(i)));
        });
    });
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    group.bench_function("entry/now", |b| b.iter(|| black_box(create_entry(1))));
    let body = br#"{"id":"B2C_1_SignUpSignIn","userFlowType":"signUpOrSignIn","userFlowTypeVersion":3,"isLanguageCustomizationEnabled":false,"defaultLanguageTag":"en"}"#;
    group.bench_function("sha256/create_body", |b| {
        b.iter(|| {
            use sha2::{Digest, Sha256};
            black_box(Sha256::digest(black_box(body.as_slice())))
        });
    });
    group.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
