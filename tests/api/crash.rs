//! The crash test: the real binary under concurrent load, killed with SIGKILL, restarted on the
//! same directory. Every create that got a 201 must be there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use crate::helpers::{flow, token_for, TENANT};

/// Starts the binary on a free port with `extra` arguments; returns it and its base URL once it
/// listens.
pub fn start_binary(dir: &Path, extra: &[&str]) -> (Child, String) {
    let (child, address, _) = start_binary_with_log(dir, extra);
    (child, address)
}

/// [`start_binary`], also returning the lines it logs after its address (at `info`).
fn start_binary_with_log(dir: &Path, extra: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_userflows-emulator"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    let (log_sender, log) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sender = Some(sender);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.is_none() {
                // Nobody may be listening: the lines are still read, so the pipe never fills.
                let _ = log_sender.send(line);
                continue;
            }
            if let Some(rest) = line.split("address=").nth(1) {
                if let Some(s) = sender.take() {
                    let address = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = s.send(address);
                }
            }
        }
    });
    let address = receiver
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the binary logs its address");
    let address = format!("http://{address}");
    crate::helpers::wait_until_ready(&address);
    (child, address, log)
}

/// The status of a create, or the transport error as text.
pub fn post(agent: &ureq::Agent, base: &str, token: &str, id: &str) -> Result<u16, String> {
    let result = agent
        .post(&format!("{base}/beta/identity/userFlows"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&flow(id).to_string());
    match result {
        Ok(r) => Ok(r.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(e) => Err(e.to_string()),
    }
}

/// How the load is ended.
#[derive(Clone, Copy)]
enum Stop {
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a graceful shutdown.
    Terminate,
    /// SIGINT (Ctrl-C): as graceful as SIGTERM.
    Interrupt,
}

/// Runs 8 writers against the binary until 400 creates were acknowledged, stops it with
/// `stop` mid-load, and returns the acknowledged ids and whether the process exited with 0.
fn load_then_stop(data: &Path, token: &str, stop: Stop) -> (Vec<String>, bool) {
    let (mut child, base) = start_binary(data, &[]);
    let acknowledged = Mutex::new(Vec::new());
    let count = AtomicUsize::new(0);
    let stopping = AtomicBool::new(false);
    let mut exited_zero = false;
    std::thread::scope(|scope| {
        for writer in 0..8 {
            let (base, acknowledged, count, stopping) = (&base, &acknowledged, &count, &stopping);
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                for i in 0.. {
                    let id = format!("w{writer}-{i}");
                    match post(&agent, base, token, &id) {
                        Ok(201) => {
                            acknowledged.lock().unwrap().push(format!("B2C_1_{id}"));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        // Refused while shutting down, or the server is gone: this create
                        // was never acknowledged.
                        Ok(503) | Err(_) if stopping.load(Ordering::Relaxed) => return,
                        Ok(status) => panic!("unexpected {status} for {id}"),
                        Err(e) => panic!("{id}: {e}"),
                    }
                }
            });
        }
        while count.load(Ordering::Relaxed) < 400 {
            std::thread::yield_now();
        }
        stopping.store(true, Ordering::Relaxed);
        match stop {
            Stop::Kill => child.kill().unwrap(),
            Stop::Terminate | Stop::Interrupt => {
                let signal = if matches!(stop, Stop::Terminate) {
                    "-TERM"
                } else {
                    "-INT"
                };
                let status = Command::new("kill")
                    .args([signal, &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        exited_zero = child.wait().unwrap().success();
    });
    (acknowledged.into_inner().unwrap(), exited_zero)
}

/// Restarts the binary on `data` and returns the acknowledged ids it does not have.
fn missing_after_restart(data: &Path, token: &str, acknowledged: &[String]) -> Vec<String> {
    let (mut child, base) = start_binary(data, &[]);
    let agent = ureq::AgentBuilder::new().build();
    let missing = acknowledged
        .iter()
        .filter(|id| {
            let status = match agent
                .get(&format!("{base}/beta/identity/userFlows/{id}"))
                .set("Authorization", &format!("Bearer {token}"))
                .call()
            {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(e) => panic!("{e}"),
            };
            status != 200
        })
        .cloned()
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    missing
}

#[test]
fn every_acknowledged_create_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = token_for(TENANT);
    let (acknowledged, _) = load_then_stop(&data, &token, Stop::Kill);
    assert!(acknowledged.len() >= 400);
    let missing = missing_after_restart(&data, &token, &acknowledged);
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost: {missing:?}",
        missing.len()
    );
}

#[test]
fn sigterm_drains_in_flight_work_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = token_for(TENANT);
    let (acknowledged, exited_zero) = load_then_stop(&data, &token, Stop::Terminate);
    assert!(exited_zero, "a graceful stop exits with 0");
    let missing = missing_after_restart(&data, &token, &acknowledged);
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost: {missing:?}",
        missing.len()
    );
}

#[test]
fn sigint_is_as_graceful_as_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = token_for(TENANT);
    let (acknowledged, exited_zero) = load_then_stop(&data, &token, Stop::Interrupt);
    assert!(exited_zero, "a graceful stop exits with 0");
    let missing = missing_after_restart(&data, &token, &acknowledged);
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost: {missing:?}",
        missing.len()
    );
}

#[test]
fn sigint_and_sigterm_answer_the_requests_in_flight() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let token = token_for(TENANT);
        let (mut child, base, log) = start_binary_with_log(&data, &[]);
        // Every create is held 1.5 s inside the server before it is served.
        let rules = serde_json::json!({"rules": [{"id": "hold", "match": {"operation": "create"},
                                                  "effect": {"latencyMs": 1500}}]});
        let put = ureq::put(&format!("{base}/_emulator/faults"))
            .set("Content-Type", "application/json")
            .send_string(&rules.to_string())
            .unwrap();
        assert_eq!(put.status(), 200);
        let ids: Vec<String> = (0..4).map(|i| format!("held{i}")).collect();
        let answers: Vec<Result<u16, String>> = std::thread::scope(|scope| {
            let writers: Vec<_> = ids
                .iter()
                .map(|id| {
                    let (base, token) = (&base, &token);
                    scope.spawn(move || post(&ureq::agent(), base, token, id))
                })
                .collect();
            // Each create is in flight once the server has logged the fault that holds it.
            let mut held = 0;
            while held < ids.len() {
                let line = log
                    .recv_timeout(std::time::Duration::from_secs(30))
                    .expect("the server logs each held create");
                held += usize::from(line.contains("injected a fault"));
            }
            let sent = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(
            answers,
            vec![Ok(201); ids.len()],
            "{signal}: every request in flight is answered"
        );
        assert!(
            child.wait().unwrap().success(),
            "{signal}: a graceful stop exits with 0"
        );
        let acknowledged: Vec<String> = ids.iter().map(|id| format!("B2C_1_{id}")).collect();
        let missing = missing_after_restart(&data, &token, &acknowledged);
        assert!(missing.is_empty(), "{signal}: lost {missing:?}");
    }
}

#[test]
fn an_acknowledged_tenant_reset_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = token_for(TENANT);
    let agent = ureq::agent();
    let (mut child, base) = start_binary(&data, &[]);
    for id in ["a", "b", "c"] {
        assert_eq!(post(&agent, &base, &token, id), Ok(201));
    }
    let reset = agent
        .delete(&format!("{base}/_emulator/tenants/{TENANT}"))
        .call()
        .unwrap();
    assert_eq!(reset.status(), 204);
    // Killed at once: nothing written after the reset could have flushed it.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, base) = start_binary(&data, &[]);
    let count = agent
        .get(&format!("{base}/beta/identity/userFlows/$count"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(count, "0", "the flows of a reset tenant came back");
}
