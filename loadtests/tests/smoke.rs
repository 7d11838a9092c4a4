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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
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
        ("POST userFlows (faults)", &[201]),
        ("GET userFlows/{id} (faults)", &[200]),
        ("GET userFlows (faults)", &[200]),
        ("DELETE userFlows/{id} (faults)", &[204]),
    ]
    .into_iter()
    .map(|(name, statuses)| (name, statuses.iter().copied().collect()))
    .collect()
}

#[test]
fn every_scenario_runs_clean_against_a_durable_emulator() {
    let (_emulator, address, _dir) = start_emulator();
    let outcome = runtime().block_on(async {
        // 16 users, 2 per scenario, all started in the first second, then 4 s of load;
        // metrics keep the ramp-up too so that every request is judged.
        let config = GooseConfiguration::parse_args_default(&[
            "--host",
            &address,
            "--users",
            "16",
            "--increase-rate",
            "16",
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
        "POST userFlows (faults)",
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

#[test]
fn the_faults_scenario_reports_what_its_users_saw_against_the_profile() {
    let (_emulator, address, _dir) = start_emulator();
    let profile = userflows_emulator::chaos::RuleSet::parse(
        br#"{"seed": 11, "rules": [
            {"id": "flaky-create", "match": {"operation": "create"}, "probability": 0.3,
             "effect": {"status": 503, "retryAfter": 1}},
            {"id": "dropped-get", "match": {"operation": "get"}, "probability": 0.2,
             "effect": {"transport": "reset"}},
            {"id": "slow-list", "match": {"operation": "list"}, "effect": {"latencyMs": 1}}]}"#,
    )
    .unwrap();
    let outcome = runtime().block_on(async {
        let config = GooseConfiguration::parse_args_default(&[
            "--host",
            &address,
            "--scenarios",
            "faults",
            "--users",
            "4",
            "--increase-rate",
            "4",
            "--run-time",
            "3s",
            "--no-reset-metrics",
            "--quiet",
        ])
        .unwrap();
        let options = RunOptions {
            faults: Some(profile),
            ..RunOptions::default()
        };
        userflows_loadtests::run(config, &options, &Limits::default())
            .await
            .unwrap()
    });
    println!("{outcome}");
    // Injected failures are expected: the run passes when the rates agree with the profile.
    assert!(outcome.passed(), "{outcome}");
    let report = outcome.faults.as_ref().expect("a fault report");
    let row = |name: &str| report.rows.iter().find(|r| r.request == name).unwrap();
    let rule = |id: &str| report.rules.iter().find(|r| r.id == id).unwrap();
    let creates = row("POST userFlows (faults)");
    assert!(creates.sent >= 100, "{outcome}");
    // Each injected 503 reached the client once: the server's count is the client's.
    assert_eq!(
        creates.failed.get(&503).copied(),
        rule("flaky-create").fired.map(|n| n as usize)
    );
    let gets = row("GET userFlows/{id} (faults)");
    assert_eq!(
        gets.failed.get(&0).copied(),
        rule("dropped-get").fired.map(|n| n as usize)
    );
    assert_eq!(
        row("GET userFlows (faults)").failures(),
        0,
        "latency fails nothing"
    );
    assert_eq!(
        row("DELETE userFlows/{id} (faults)").failures(),
        0,
        "no rule"
    );
    assert!(outcome
        .to_string()
        .contains("faults: client-visible against configured (seed 11)"));
    // The profile is cleared after the run.
    let route = userflows_loadtests::faults::FaultsRoute::new(&address, None);
    let left = runtime().block_on(route.current()).unwrap();
    assert!(left.rules.is_empty(), "{left:?}");
}
