//! CI smoke run: a real emulator in-process (durable sled in a temp dir, 127.0.0.1 port 0) and a
//! short goose attack of every scenario against it. It must end with no failed request, only
//! the statuses each request expects, and exactly one 201 per contested id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use userflows_emulator::app::Application;
use userflows_emulator::config::{Durability, Settings, Storage};
use userflows_loadtests::{Limits, RunOptions};

/// A running emulator; stopped (and its thread joined) on drop.
struct Emulator {
    address: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Emulator {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(
            "127.0.0.1:0",
            Storage::Disk {
                dir: dir.path().join("data"),
                durability: Durability::Flush,
            },
        );
        settings.handle_signals = false;
        settings.workers = 2;
        settings.arbiters = 2;
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(&settings) {
                    Ok(app) => {
                        sender.send(Ok((app.address(), app.handle()))).unwrap();
                        app.run_until_stopped().await.unwrap();
                    }
                    Err(e) => sender.send(Err(e.to_string())).unwrap(),
                }
            });
        });
        let (address, handle) = receiver.recv().unwrap().expect("the emulator starts");
        Self {
            address: format!("http://{address}"),
            handle,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Waits until `GET /_emulator/ready` answers 200 (recovery runs after the bind).
    async fn ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = client
                .get(format!("{}/_emulator/ready", self.address))
                .send()
                .await
                .map(|r| r.status().as_u16());
            match status {
                Ok(200) => return,
                Ok(503) => {}
                other => panic!("ready check: {other:?}"),
            }
            assert!(Instant::now() < deadline, "not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
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
    ]
    .into_iter()
    .map(|(name, statuses)| (name, statuses.iter().copied().collect()))
    .collect()
}

#[test]
fn every_scenario_runs_clean_against_a_durable_emulator() {
    let emulator = Emulator::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        emulator.ready().await;
        // 10 users, 2 per scenario, all started in the first second, then 4 s of load;
        // metrics keep the ramp-up too so that every request is judged.
        let config = GooseConfiguration::parse_args_default(&[
            "--host",
            &emulator.address,
            "--users",
            "10",
            "--increase-rate",
            "10",
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
        let expected = allowed
            .get(name.as_str())
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
