//! The `/_emulator` routes: metrics, tenants, live events, reset and their protection.

use serde_json::Value;
use userflows_emulator::config::{Durability, Storage};

use crate::helpers::{
    flow, spawn_app, spawn_app_with, stored_events, token_for, OTHER_TENANT, TENANT,
};

fn events(app: &crate::helpers::TestApp, tenant: &str, query: &str) -> Vec<Value> {
    let r = app.request(
        "GET",
        &format!("/_emulator/tenants/{tenant}/events?{query}"),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    r.body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn metrics_count_requests_events_and_flushes() {
    let app = spawn_app();
    for id in ["a", "b", "c"] {
        assert_eq!(app.create(&flow(id)).status, 201);
    }
    assert_eq!(app.create(&flow("a")).status, 409);
    assert_eq!(app.get("B2C_1_a").status, 200);
    let r = app.request("GET", "/_emulator/metrics", &[], None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    for line in [
        "userflows_requests_total{route=\"create\",status=\"201\"} 3",
        "userflows_requests_total{route=\"create\",status=\"409\"} 1",
        "userflows_requests_total{route=\"get\",status=\"200\"} 1",
        "userflows_events_appended_total 3",
        "userflows_flushed_events_total 3",
        "userflows_tenants 1",
        "userflows_ready 1",
        "userflows_queue_depth 0",
    ] {
        assert!(r.body.lines().any(|l| l == line), "{line} in\n{}", r.body);
    }
    assert!(r
        .body
        .contains("userflows_request_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(r.body.contains("userflows_events_per_flush "));
    assert!(r.body.contains("userflows_recovery_seconds "));
}

#[test]
fn concurrent_creates_are_counted_per_event_and_all_survive_a_restart() {
    let mut app = spawn_app();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let app = &app;
        let handles: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    (0..25)
                        .map(|i| app.create(&flow(&format!("c{t}x{i}"))).status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let r = app.request("GET", "/_emulator/metrics", &[], None);
    for line in [
        "userflows_events_appended_total 200",
        "userflows_flushed_events_total 200",
    ] {
        assert!(r.body.lines().any(|l| l == line), "{line} in\n{}", r.body);
    }
    app.stop();
    assert_eq!(stored_events(&app.data_dir(), TENANT), 200);
    app.start();
    assert_eq!(app.count().body, "200");
    assert_eq!(app.get("B2C_1_c7x24").status, 200);
}

#[test]
fn tenants_lists_each_tenant_with_its_position() {
    let app = spawn_app();
    app.create(&flow("a"));
    app.create(&flow("b"));
    app.delete("B2C_1_a");
    app.create_as(&token_for(OTHER_TENANT), &flow("x"));
    let body = app.request("GET", "/_emulator/tenants", &[], None).json();
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let mine = rows.iter().find(|r| r["tenantId"] == TENANT).unwrap();
    assert_eq!(
        (
            mine["status"].as_str(),
            mine["lastSeq"].as_u64(),
            mine["flows"].as_u64()
        ),
        (Some("ready"), Some(3), Some(1))
    );
    let theirs = rows.iter().find(|r| r["tenantId"] == OTHER_TENANT).unwrap();
    assert_eq!(
        (theirs["lastSeq"].as_u64(), theirs["flows"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn events_are_the_durable_envelopes_as_ndjson() {
    let app = spawn_app();
    app.request(
        "POST",
        "/beta/identity/userFlows",
        &[
            ("Content-Type", "application/json"),
            ("client-request-id", "trace-1"),
        ],
        Some(&flow("a").to_string()),
    );
    app.create(&flow("b"));
    app.delete("B2C_1_a");
    let all = events(&app, TENANT, "");
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["UserFlowCreated", "UserFlowCreated", "UserFlowDeleted"]
    );
    let first = &all[0];
    assert_eq!(first["tenant_id"], TENANT);
    assert_eq!(first["client_request_id"], "trace-1");
    assert_eq!(first["schema_version"], 1);
    assert_eq!(first["payload"]["id"], "B2C_1_a");
    assert!(first["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(all[2]["payload"], serde_json::json!({"id": "B2C_1_a"}));

    let window: Vec<u64> = events(&app, TENANT, "from=2&limit=1")
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(window, vec![2]);
    assert!(events(&app, TENANT, "limit=0").is_empty());
    assert!(events(&app, TENANT, "from=99999999999999999999999").is_empty());
    assert_eq!(
        events(&app, TENANT, "limit=99999999999999999999999").len(),
        3
    );
    assert_eq!(
        app.request("GET", "/_emulator/tenants/nobody/events", &[], None)
            .status,
        404
    );
    let bad = app.request("GET", "/_emulator/tenants/bad%2Fid/events", &[], None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "BadRequest");
    // A query the route cannot use is refused in plain words, naming the option.
    for (query, says) in [
        ("from=abc", "'from' is 'abc', not a whole number."),
        ("limit=-1", "'limit' is '-1', not a whole number."),
        ("limit=1&limit=2", "'limit' is given twice."),
        ("form=2", "'form' is not an option of this route."),
    ] {
        let r = app.request(
            "GET",
            &format!("/_emulator/tenants/{TENANT}/events?{query}"),
            &[],
            None,
        );
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(
            r.json()["error"]["message"],
            format!("Invalid query: {says} Use from=<seq>&limit=<n>, whole numbers."),
            "{query}"
        );
    }
}

#[test]
fn relaxed_and_in_memory_events_show_every_answered_write_at_once() {
    for storage in ["relaxed", "in-memory"] {
        let app = spawn_app_with(|s| match storage {
            "relaxed" => {
                if let Storage::Disk { durability, .. } = &mut s.storage {
                    *durability = Durability::Relaxed;
                }
            }
            _ => s.storage = Storage::Memory,
        });
        assert_eq!(app.create(&flow("a")).status, 201);
        assert_eq!(app.create(&flow("b")).status, 201);
        assert_eq!(app.delete("B2C_1_a").status, 204);
        // Written behind, but the route reads only after the tenant has written them.
        let types: Vec<String> = events(&app, TENANT, "")
            .iter()
            .map(|e| format!("{} {}", e["seq"], e["event_type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                "1 UserFlowCreated",
                "2 UserFlowCreated",
                "3 UserFlowDeleted"
            ],
            "{storage}"
        );
    }
}

#[test]
fn reset_empties_one_tenant_and_leaves_the_others() {
    let mut app = spawn_app();
    app.create(&flow("a"));
    app.create(&flow("b"));
    let other = token_for(OTHER_TENANT);
    app.create_as(&other, &flow("keep"));

    let r = app.request("DELETE", &format!("/_emulator/tenants/{TENANT}"), &[], None);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(app.count().body, "0");
    assert_eq!(app.get("B2C_1_a").status, 404);
    assert_eq!(app.get_as(&other, "B2C_1_keep").status, 200);
    // The tenant starts again from seq 1.
    assert_eq!(app.create(&flow("a")).status, 201);
    let seqs: Vec<u64> = events(&app, TENANT, "")
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1]);

    app.restart();
    assert_eq!(app.list_all(""), vec!["B2C_1_a"]);
    assert_eq!(app.get_as(&other, "B2C_1_keep").status, 200);
}

#[test]
fn an_admin_key_guards_every_admin_route_but_health_and_ready() {
    let app = spawn_app_with(|s| s.admin_key = Some("s3cret".to_owned()));
    app.create(&flow("a"));
    for (method, path) in [
        ("GET", "/_emulator/metrics"),
        ("GET", "/_emulator/tenants"),
        ("GET", "/_emulator/tenants/t/events"),
        ("DELETE", &format!("/_emulator/tenants/{TENANT}") as &str),
    ] {
        let r = app.request(method, path, &[], None);
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(r.error_code(), "Authorization_RequestDenied");
        let wrong = app.request(method, path, &[("X-Emulator-Admin-Key", "nope")], None);
        assert_eq!(wrong.status, 403, "{method} {path}");
    }
    assert_eq!(
        app.request("GET", "/_emulator/health", &[], None).status,
        200
    );
    assert_eq!(
        app.request("GET", "/_emulator/ready", &[], None).status,
        200
    );
    let key = [("X-Emulator-Admin-Key", "s3cret")];
    assert_eq!(
        app.request("GET", "/_emulator/metrics", &key, None).status,
        200
    );
    assert_eq!(
        app.request(
            "DELETE",
            &format!("/_emulator/tenants/{TENANT}"),
            &key,
            None
        )
        .status,
        204
    );
    assert_eq!(app.count().body, "0");
}

#[test]
fn without_a_key_admin_routes_answer_only_loopback_clients_naming_a_loopback_host() {
    // Listening on every interface changes nothing for a client on this machine.
    let app = spawn_app_with(|s| s.listen = "0.0.0.0:0".to_owned());
    app.create(&flow("a"));
    let reset = format!("/_emulator/tenants/{TENANT}");
    for path in [
        reset.as_str(),
        "/%5Femulator/tenants/11111111-1111-1111-1111-111111111111",
    ] {
        // A page that rebinds its own name to 127.0.0.1 sends its own name as Host.
        let r = app.request("DELETE", path, &[("Host", "rebind.attacker.example")], None);
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.error_code(), "Authorization_RequestDenied");
    }
    let listed = app.request(
        "GET",
        "/_emulator/tenants",
        &[("Host", "rebind.attacker.example")],
        None,
    );
    assert_eq!(listed.status, 403);
    assert_eq!(app.count().body, "1", "nothing was reset");
    // Probes answer anyone.
    for path in ["/_emulator/health", "/_emulator/ready"] {
        let r = app.request("GET", path, &[("Host", "rebind.attacker.example")], None);
        assert_eq!(r.status, 200, "{path}");
    }
    // No Host at all (HTTP/1.0) is refused too.
    let address = app.address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /_emulator/tenants HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 403"), "{answer}");
    assert!(answer.contains("Authorization_RequestDenied"), "{answer}");
    // A request in absolute form is judged by the host it names there, over a loopback Host.
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let absolute = format!(
        "DELETE http://rebind.attacker.example{reset} HTTP/1.1\r\nHost: {address}\r\n\
         Connection: close\r\n\r\n"
    );
    std::io::Write::write_all(&mut stream, absolute.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(app.count().body, "1", "nothing was reset");

    // A loopback Host, by name or address, with or without the port.
    let port = address.rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}");
    assert_eq!(
        app.request("GET", "/_emulator/tenants", &[("Host", &by_name)], None)
            .status,
        200
    );
    assert_eq!(app.request("DELETE", &reset, &[], None).status, 204);
    assert_eq!(app.count().body, "0");
}

#[test]
fn serve_writes_its_ports_and_wait_exits_once_ready_or_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ports = dir.path().join("ports.json");
    let bin = env!("CARGO_BIN_EXE_userflows-emulator");
    let mut server = std::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--port-file")
        .arg(&ports)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let written = loop {
        if let Ok(text) = std::fs::read_to_string(&ports) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no port file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let json: serde_json::Value = serde_json::from_str(&written).unwrap();
    let http = json["http"].as_str().unwrap().to_owned();
    assert!(
        http.starts_with("127.0.0.1:") && !http.ends_with(":0"),
        "{json}"
    );
    assert_eq!(json["https"], serde_json::Value::Null);
    let ready = std::process::Command::new(bin)
        .args([
            "wait",
            "--url",
            &format!("http://{http}"),
            "--timeout",
            "30s",
        ])
        .output()
        .unwrap();
    assert!(ready.status.success(), "{ready:?}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    // Nothing listens there now: wait gives up with the reason.
    let gone = std::process::Command::new(bin)
        .args([
            "wait",
            "--url",
            &format!("http://{http}"),
            "--timeout",
            "300ms",
        ])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(stderr.contains("was not ready within 300ms"), "{stderr}");

    // What no waiting can fix fails at once, within a timeout far longer than the test.
    let not_a_cert = dir.path().join("not-a-cert.pem");
    std::fs::write(&not_a_cert, "hello\n").unwrap();
    for (args, reason) in [
        (vec!["--url", "127.0.0.1:1"], "--url 127.0.0.1:1"),
        (
            vec!["--url", "ftp://127.0.0.1:1"],
            "--url ftp://127.0.0.1:1",
        ),
        (
            vec![
                "--url",
                "https://127.0.0.1:1",
                "--ca",
                not_a_cert.to_str().unwrap(),
            ],
            "holds no PEM certificate",
        ),
    ] {
        let refused = std::process::Command::new(bin)
            .arg("wait")
            .args(&args)
            .args(["--timeout", "1h"])
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn an_admin_body_that_does_not_arrive_in_time_is_408_and_changes_nothing() {
    let app = spawn_app_with(|s| s.body_timeout = std::time::Duration::from_secs(1));
    let bodies = [
        ("/_emulator/faults", r#"{"rules": []}"#),
        ("/_emulator/throttle", r#"{"tenantRpm": 1}"#),
    ];
    for (path, body) in bodies {
        // The head and a few bytes of the body, then nothing.
        let answer = app.answer_to_unfinished(&format!(
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..3],
        ));
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("\"RequestTimeout\""), "{path}: {answer}");
    }
    let throttle = app.request("GET", "/_emulator/throttle", &[], None).json();
    assert_eq!(throttle["tenantRpm"], Value::Null, "{throttle}");
}
