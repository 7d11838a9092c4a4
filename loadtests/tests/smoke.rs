//! CI smoke run: a real emulator in-process (durable sled in a temp dir, 127.0.0.1 port 0) and a
//! short goose attack of every scenario against it. It must end with no failed request, only
//! the statuses each request expects, and exactly one 201 per contested id.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test helper: a panic is a failed test with its location"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use goose::config::GooseConfiguration;
use userflows_emulator::app::BackgroundServer;
use userflows_emulator::config::Settings;
use userflows_loadtests::{Limits, RunOptions};

/// A durable emulator over a temp directory, on 127.0.0.1 port 0, ready to serve.
fn start_emulator() -> (BackgroundServer, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::embedded(dir.path().join("data"));
    let server = BackgroundServer::start(&settings).expect("the emulator starts");
    assert!(
        server.wait_ready(Duration::from_secs(30)),
        "not ready within 30 s"
    );
    let address = format!("http://{}", server.address());
    (server, address, dir)
}

/// What each request may answer, by goose's request name (method + name).
fn allowed() -> BTreeMap<&'static str, BTreeSet<u16>> {
    [
        ("POST userFlows", &[201][..]),
        ("GET userFlows/{id}", &[200]),
        ("GET userFlows", &[200]),
        ("GET userFlows (nextLink)", &[200]),
        ("DELETE userFlows/{id}", &[204]),
        ("POST userFlows (churn)", &[201]),
        ("DELETE userFlows/{id} (churn)", &[204]),
        ("POST userFlows (contested)", &[201, 409]),
        ("POST userFlows (typed)", &[201]),
        ("POST $batch (20 creates)", &[200]),
    ]
    .into_iter()
    .map(|(name, statuses)| (name, statuses.iter().copied().collect()))
    .collect()
}

#[test]
fn every_scenario_runs_clean_against_a_durable_emulator() {
    let (_emulator, address, _dir) = start_emulator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        // 14 users, 2 per scenario, all started in the first second, then 4 s of load;
        // metrics keep the ramp-up too so that every request is judged.
        let config = GooseConfiguration::parse_args_default(&[
            "--host",
            &address,
            "--users",
            "14",
            "--increase-rate",
            "14",
            "--run-time",
            "4s",
            "--no-reset-metrics",
            "--quiet",
        ])
        .unwrap();
        let options = RunOptions {
            conflict_ids: 4,
            ..RunOptions::default()
        };
        userflows_loadtests::run(config, &options, &Limits::default())
            .await
            .unwrap()
    });
    println!("{outcome}");

    assert!(outcome.passed(), "{outcome}");
    assert_eq!(outcome.failures, 0, "{outcome}");
    let allowed = allowed();
    for (name, statuses) in &outcome.statuses {
        // Every query of the query scenario (and its nextLinks) must answer 200.
        let queries = BTreeSet::from([200]);
        let expected = allowed
            .get(name.as_str())
            .or_else(|| name.starts_with("GET query: ").then_some(&queries))
            .unwrap_or_else(|| panic!("a request this test does not know: {name}"));
        for status in statuses.keys() {
            assert!(
                expected.contains(status),
                "{name} answered {status}: {outcome}"
            );
        }
    }
    // Every scenario ran: each kind of request was made.
    for name in [
        "POST userFlows",
        "GET userFlows/{id}",
        "GET userFlows",
        "POST userFlows (churn)",
        "DELETE userFlows/{id} (churn)",
        "POST userFlows (contested)",
        "POST userFlows (typed)",
        "GET query: startswith+orderby id",
        "POST $batch (20 creates)",
    ] {
        assert!(
            outcome.statuses.get(name).is_some_and(|s| !s.is_empty()),
            "no {name} request was made: {outcome}"
        );
    }
    // Every contested id was created exactly once; everyone else was refused.
    assert_eq!(outcome.conflict.tried, 4, "{outcome}");
    assert!(outcome.conflict.wrong.is_empty(), "{outcome}");
    let contested = &outcome.statuses["POST userFlows (contested)"];
    assert_eq!(contested.get(&201).copied(), Some(4), "{outcome}");
    assert!(contested.get(&409).copied().unwrap_or(0) > 0, "{outcome}");
}
