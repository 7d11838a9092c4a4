//! Fault injection: status, latency and transport effects (reset, close, hang), `afterCommit`,
//! `after`/`times`/probability, seeded determinism, rules on batch items, the batch envelope and
//! the token endpoint, and the rule set read, replaced and cleared at run time (or refused
//! whole).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    create_items, exchange, flow, item_statuses, spawn_app, spawn_app_with, TestApp,
};

fn ids(app: &TestApp) -> Vec<String> {
    app.list("").json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_status_fault_changes_nothing_and_stops_after_times() {
    let app = spawn_app();
    let set = app.put_faults(
        &json!({"rules": [{"id": "flaky-create", "match": {"operation": "create"},
                           "times": 1, "effect": {"status": 503, "retryAfter": 2}}]}),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let failed = app.create(&flow("a"));
    assert_eq!(failed.status, 503);
    assert_eq!(failed.error_code(), "serviceNotAvailable");
    assert_eq!(failed.header("Retry-After"), Some("2"));
    assert!(ids(&app).is_empty(), "an injected failure stores nothing");
    assert_eq!(app.create(&flow("a")).status, 201);
    let rules = app.request("GET", "/_emulator/faults", &[], None).json();
    assert_eq!(rules["rules"][0]["fired"], 1);
    assert_eq!(rules["rules"][0]["matched"], 2);
    let metrics = app.request("GET", "/_emulator/metrics", &[], None).body;
    assert!(
        metrics.contains("userflows_faults_injected_total{rule=\"flaky-create\"} 1"),
        "{metrics}"
    );
}

#[test]
fn every_status_has_its_graph_code_and_429_and_503_carry_retry_after() {
    let app = spawn_app();
    for (status, code) in [
        (429, "TooManyRequests"),
        (500, "generalException"),
        (502, "badGateway"),
        (503, "serviceNotAvailable"),
        (504, "gatewayTimeout"),
        (507, "insufficientStorage"),
    ] {
        app.put_faults(&json!({"rules": [{"id": "s", "effect": {"status": status}}]}));
        let r = app.list("");
        assert_eq!(r.status, status);
        assert_eq!(r.error_code(), code);
        let retry = r.header("Retry-After");
        if status == 429 || status == 503 {
            assert_eq!(retry, Some("1"), "{status}");
        } else {
            assert_eq!(retry, None, "{status}");
        }
    }
}

#[test]
fn after_commit_stores_the_write_then_fails_and_a_retry_meets_409() {
    let mut app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "ambiguous", "match": {"operation": "create"},
                           "effect": {"status": 504, "afterCommit": true}}]}),
    );
    let r = app.create(&flow("kept"));
    assert_eq!(r.status, 504);
    assert_eq!(r.error_code(), "gatewayTimeout");
    // A write that fails on its own gets its real answer: the retry of a stored create is 409.
    let retry = app.create(&flow("kept"));
    assert_eq!(retry.status, 409, "{}", retry.body);
    // The write was durable before the client saw the failure.
    app.restart();
    assert_eq!(ids(&app), ["B2C_1_kept"]);
    assert_eq!(app.create(&flow("kept")).status, 409);
}

#[test]
fn an_after_commit_fault_is_not_spent_on_a_write_that_fails_on_its_own() {
    let app = spawn_app();
    assert_eq!(app.create(&flow("taken")).status, 201);
    app.put_faults(
        &json!({"rules": [{"id": "once", "match": {"operation": "create"}, "times": 1,
                           "effect": {"status": 500, "afterCommit": true}}]}),
    );
    app.request("DELETE", "/_emulator/requests", &[], None);
    // A duplicate (409) and an invalid body (400) get their real answers and leave the rule's
    // one fault for a write that succeeds.
    assert_eq!(app.create(&flow("taken")).status, 409);
    let invalid = app.create_raw(r#"{"id":"x","userFlowType":"nope"}"#, "application/json");
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    assert_eq!(fired(&app, 0), 0);
    let journal = app.request("GET", "/_emulator/requests", &[], None).json();
    let entries = journal["value"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{journal}");
    assert!(entries.iter().all(|e| e["fault"].is_null()), "{journal}");
    // The next create that succeeds meets it, once.
    let faulted = app.create(&flow("stored"));
    assert_eq!(faulted.status, 500, "{}", faulted.body);
    assert_eq!(fired(&app, 0), 1);
    assert_eq!(app.create(&flow("after")).status, 201);
    assert_eq!(ids(&app), ["B2C_1_taken", "B2C_1_stored", "B2C_1_after"]);
    let metrics = app.request("GET", "/_emulator/metrics", &[], None).body;
    assert!(
        metrics.contains("userflows_faults_injected_total{rule=\"once\"} 1"),
        "{metrics}"
    );
}

#[test]
fn latency_delays_then_the_request_proceeds() {
    let app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "slow", "match": {"operation": "create"},
                           "effect": {"latencyMs": [200, 250]}}]}),
    );
    let started = Instant::now();
    assert_eq!(app.create(&flow("slow")).status, 201);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(ids(&app), ["B2C_1_slow"]);
}

#[test]
fn the_same_seed_gives_the_same_faults_on_two_fresh_servers() {
    let rules = json!({"seed": 42, "rules": [{"id": "coin", "match": {"operation": "get"},
                                              "probability": 0.5, "effect": {"status": 500}}]});
    let run = || {
        let app = spawn_app();
        app.put_faults(&rules);
        (0..40)
            .map(|_| app.get("B2C_1_nobody").status)
            .collect::<Vec<u16>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    let faulted = a.iter().filter(|s| **s == 500).count();
    assert!((5..=35).contains(&faulted), "{faulted} of 40: {a:?}");
    assert!(a.iter().all(|s| *s == 500 || *s == 404));
}

#[test]
fn rule_sets_are_replaced_cleared_or_refused_whole() {
    let app = spawn_app_with(|s| {
        s.faults = userflows_emulator::chaos::RuleSet::parse(
            br#"{"rules":[{"id":"start","match":{"operation":"list"},"effect":{"status":502}}]}"#,
        )
        .unwrap();
    });
    assert_eq!(app.list("").status, 502);
    for bad in [
        json!({"rules": [{"id": "x", "effect": {"status": 404}}]}),
        json!({"rules": [{"id": "x", "probability": 2, "effect": {"status": 503}}]}),
        json!({"rules": [{"id": "x", "effect": {"status": 503}}, {"id": "x", "effect": {"status": 503}}]}),
        json!({"rules": [{"id": "x", "match": {"operation": "patch"}, "effect": {"status": 503}}]}),
        json!({"rules": [{"id": "x", "match": {"operation": "list"}, "effect": {"status": 503, "afterCommit": true}}]}),
    ] {
        let r = app.put_faults(&bad);
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.message().starts_with("Invalid fault rule"),
            "{}",
            r.message()
        );
    }
    assert_eq!(app.list("").status, 502, "the old rules stay");
    // What GET answers can be put back.
    let read = app.request("GET", "/_emulator/faults", &[], None).json();
    assert_eq!(app.put_faults(&read).status, 200);
    assert_eq!(
        app.request("DELETE", "/_emulator/faults", &[], None).status,
        204
    );
    assert_eq!(app.list("").status, 200);
    assert_eq!(
        app.request("GET", "/_emulator/faults", &[], None).json()["rules"],
        json!([])
    );
}

#[test]
fn batch_items_meet_their_own_rules_and_the_envelope_only_rules_naming_batch() {
    let app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "second", "match": {"operation": "create"}, "after": 1,
                           "times": 1, "effect": {"status": 503}}]}),
    );
    let items = create_items(3, "b");
    let r = app.batch(&items);
    let statuses = item_statuses(&r);
    assert_eq!(statuses, [201, 503, 201]);
    assert_eq!(r.json()["responses"][1]["headers"]["Retry-After"], "1");
    assert_eq!(ids(&app), ["B2C_1_b0", "B2C_1_b2"]);
    app.put_faults(
        &json!({"rules": [{"id": "envelope", "match": {"operation": "batch"},
                           "effect": {"status": 504}}]}),
    );
    let r = app.batch(&items);
    assert_eq!(r.status, 504);
    assert_eq!(r.error_code(), "gatewayTimeout");
    assert_eq!(ids(&app).len(), 2, "nothing in a faulted batch ran");
}

#[test]
fn the_token_endpoint_meets_only_rules_naming_token() {
    let app = spawn_app();
    app.put_faults(&json!({"rules": [
            {"id": "any", "effect": {"status": 500}},
            {"id": "token", "match": {"operation": "token", "tenant": "contoso", "app": "app-1"},
             "times": 1, "effect": {"status": 503, "retryAfter": 3}}]}));
    let token = |client: &str| {
        app.request(
            "POST",
            "/contoso/oauth2/v2.0/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(&format!("grant_type=client_credentials&client_id={client}&client_secret=s&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default")),
        )
    };
    assert_eq!(token("app-2").status, 200, "another app");
    let failed = token("app-1");
    assert_eq!(failed.status, 503);
    assert_eq!(failed.header("Retry-After"), Some("3"));
    assert_eq!(failed.json()["error"], "temporarily_unavailable");
    assert_eq!(token("app-1").status, 200, "times: 1");
}

#[test]
fn a_faults_file_that_does_not_check_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults.json");
    std::fs::write(&file, r#"{"rules":[{"id":"x","effect":{"status":200}}]}"#).unwrap();
    let stderr = crate::helpers::refused_start(&["--faults".as_ref(), file.as_os_str()]);
    assert!(stderr.contains("status must be one of"), "{stderr}");
}

const CREATE_PATH: &str = "/beta/identity/userFlows";
const JSON: Option<&str> = Some("application/json");

fn fired(app: &TestApp, rule: usize) -> u64 {
    app.request("GET", "/_emulator/faults", &[], None).json()["rules"][rule]["fired"]
        .as_u64()
        .unwrap()
}

/// A create of `B2C_1_{id}` on a connection of its own: see [`exchange`].
fn raw_create(app: &TestApp, id: &str) -> std::io::Result<Vec<u8>> {
    let body = flow(id).to_string();
    let wait = Duration::from_secs(10);
    exchange(
        &app.address,
        &app.token,
        "POST",
        CREATE_PATH,
        JSON,
        &body,
        wait,
    )
}

fn assert_reset(read: std::io::Result<Vec<u8>>) {
    let error = read.expect_err("a reset connection ends the read with an error");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
}

#[test]
fn reset_and_close_break_the_connection_with_no_answer_and_change_nothing() {
    let app = spawn_app();
    app.put_faults(&json!({"rules": [
            {"id": "reset", "match": {"operation": "create"}, "times": 1,
             "effect": {"transport": "reset"}},
            {"id": "close", "match": {"operation": "delete"}, "times": 1,
             "effect": {"transport": "close"}}]}));
    let wait = Duration::from_secs(10);
    assert_reset(raw_create(&app, "a"));
    assert!(ids(&app).is_empty(), "a reset create stores nothing");
    assert_eq!(app.create(&flow("a")).status, 201);

    let closed = exchange(
        &app.address,
        &app.token,
        "DELETE",
        &format!("{CREATE_PATH}/B2C_1_a"),
        None,
        "",
        wait,
    );
    assert_eq!(closed.unwrap(), b"", "closed with no answer");
    assert_eq!(ids(&app), ["B2C_1_a"], "a closed delete deletes nothing");
    assert_eq!(app.delete("B2C_1_a").status, 204, "times: 1");
    let metrics = app.request("GET", "/_emulator/metrics", &[], None).body;
    for line in [
        "userflows_requests_total{route=\"create\",status=\"none\"} 1",
        "userflows_requests_total{route=\"delete\",status=\"none\"} 1",
        "userflows_faults_injected_total{rule=\"reset\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[test]
fn a_hung_request_gets_no_answer_until_the_client_gives_up() {
    let app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "hang", "match": {"operation": "get"}, "times": 1,
                           "effect": {"transport": "hang"}}]}),
    );
    let hung = exchange(
        &app.address,
        &app.token,
        "GET",
        &format!("{CREATE_PATH}/B2C_1_x"),
        None,
        "",
        Duration::from_millis(500),
    );
    let error = hung.expect_err("no answer within the client's timeout");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error}"
    );
    assert_eq!(fired(&app, 0), 1);
    // The server goes on serving everyone else.
    assert_eq!(app.get("B2C_1_x").status, 404);
}

#[test]
fn hung_connections_are_closed_at_a_graceful_stop_without_delaying_it() {
    let mut app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "hang", "match": {"operation": "list"},
                           "effect": {"transport": "hang"}}]}),
    );
    let hung: Vec<_> = (0..3)
        .map(|_| {
            let (address, token) = (app.address.clone(), app.token.clone());
            std::thread::spawn(move || {
                let wait = Duration::from_secs(60);
                exchange(&address, &token, "GET", CREATE_PATH, None, "", wait)
                    .map(|answer| answer.len())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fired(&app, 0) < 3 {
        assert!(Instant::now() < deadline, "the hung requests never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopping = Instant::now();
    app.stop();
    // The stop waits for requests in flight up to its 10 s limit; hung ones are not waited for.
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the stop took {:?}",
        stopping.elapsed()
    );
    for client in hung {
        let read = client.join().unwrap();
        assert!(
            matches!(read, Ok(0)),
            "closed with no answer at the stop: {read:?}"
        );
    }
}

#[test]
fn after_commit_reset_stores_the_write_and_the_retry_meets_409() {
    let mut app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "ambiguous", "match": {"operation": "create"}, "times": 1,
                           "effect": {"transport": "reset", "afterCommit": true}}]}),
    );
    assert_reset(raw_create(&app, "kept"));
    assert_eq!(app.create(&flow("kept")).status, 409);
    app.restart();
    assert_eq!(ids(&app), ["B2C_1_kept"]);
}

#[test]
fn a_batch_item_meeting_a_transport_fault_breaks_the_batch_after_the_items_before_it() {
    let app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "second", "match": {"operation": "create"}, "after": 1,
                           "times": 1, "effect": {"transport": "close"}}]}),
    );
    let body = json!({ "requests": create_items(3, "b") }).to_string();
    let answer = exchange(
        &app.address,
        &app.token,
        "POST",
        "/beta/$batch",
        JSON,
        &body,
        Duration::from_secs(10),
    );
    assert_eq!(
        answer.unwrap(),
        b"",
        "the batch's connection closed with no answer"
    );
    assert_eq!(
        ids(&app),
        ["B2C_1_b0"],
        "the item before ran, the one after did not"
    );
    // The rule has fired its once: the same batch now runs whole (b0 already exists).
    assert_eq!(
        item_statuses(&app.batch(&create_items(3, "b"))),
        [409, 201, 201]
    );
}

#[test]
fn a_token_request_can_be_reset() {
    let app = spawn_app();
    app.put_faults(
        &json!({"rules": [{"id": "token", "match": {"operation": "token"}, "times": 1,
                           "effect": {"transport": "reset"}}]}),
    );
    let form = "grant_type=client_credentials&client_id=app-1&client_secret=s&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";
    let form_type = Some("application/x-www-form-urlencoded");
    let path = "/contoso/oauth2/v2.0/token";
    let wait = Duration::from_secs(10);
    let reset = exchange(
        &app.address,
        &app.token,
        "POST",
        path,
        form_type,
        form,
        wait,
    );
    assert_reset(reset);
    let answer = String::from_utf8(
        exchange(
            &app.address,
            &app.token,
            "POST",
            path,
            form_type,
            form,
            wait,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn no_fault_or_throttle_loses_an_acknowledged_write_or_keeps_a_refused_one() {
    let mut app = spawn_app_with(|s| {
        s.throttle = userflows_emulator::chaos::Limits {
            tenant_rpm: Some(40),
            app_rpm: None,
        };
        s.faults = userflows_emulator::chaos::RuleSet::parse(
            br#"{"seed": 5, "rules": [
                {"id": "create-503", "match": {"operation": "create"}, "probability": 0.3,
                 "effect": {"status": 503}},
                {"id": "delete-reset", "match": {"operation": "delete"}, "probability": 0.3,
                 "effect": {"transport": "reset"}}]}"#,
        )
        .unwrap();
    });
    let mut kept = std::collections::BTreeSet::new();
    let (mut refused, mut throttled, mut reset) = (0, 0, 0);
    for i in 0..60 {
        let id = format!("B2C_1_w{i}");
        match app.create(&flow(&format!("w{i}"))).status {
            201 => assert!(kept.insert(id.clone())),
            503 => refused += 1,
            429 => throttled += 1,
            other => panic!("create answered {other}"),
        }
        if i % 3 == 2 && kept.contains(&id) {
            let path = format!("/beta/identity/userFlows/{id}");
            let wait = Duration::from_secs(10);
            match exchange(&app.address, &app.token, "DELETE", &path, None, "", wait) {
                Ok(answer) if answer.starts_with(b"HTTP/1.1 204") => {
                    kept.remove(&id);
                }
                Ok(answer) if answer.starts_with(b"HTTP/1.1 429") => throttled += 1,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => reset += 1,
                other => panic!("delete: {other:?}"),
            }
        }
    }
    assert!(
        refused > 0 && throttled > 0 && reset > 0,
        "{refused} {throttled} {reset}"
    );
    app.settings.throttle = userflows_emulator::chaos::Limits::default();
    app.restart();
    let stored: std::collections::BTreeSet<String> = ids(&app).into_iter().collect();
    assert_eq!(
        stored, kept,
        "exactly the acknowledged writes, after a restart"
    );
}
