//! Paths, methods and the headers every response carries.

use crate::helpers::{flow, spawn_app, TENANT};

#[test]
fn wrong_methods_are_405_with_allow() {
    let app = spawn_app();
    app.create(&flow("m"));
    for (method, path, allow) in [
        ("PATCH", "/beta/identity/userFlows/B2C_1_m", "GET, DELETE"),
        ("PUT", "/beta/identity/userFlows/B2C_1_m", "GET, DELETE"),
        ("POST", "/beta/identity/userFlows/B2C_1_m", "GET, DELETE"),
        ("PUT", "/beta/identity/userFlows", "GET, POST"),
        ("DELETE", "/beta/identity/userFlows", "GET, POST"),
        ("POST", "/beta/identity/userFlows/$count", "GET"),
    ] {
        let r = app.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some("{}"),
        );
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.error_code(), "methodNotAllowed");
        assert_eq!(r.message(), "The method is not supported for this URL.");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    assert_eq!(
        app.get("B2C_1_m").status,
        200,
        "a refused PATCH changes nothing"
    );
}

#[test]
fn unknown_segments_and_versions_are_graph_400s() {
    let app = spawn_app();
    for (path, needle) in [
        (
            "/beta/identity/userFlowz",
            "Resource not found for the segment 'userFlowz'.",
        ),
        ("/beta/users", "Resource not found for the segment 'users'."),
        (
            "/beta/identity/userFlows/B2C_1_a/languages",
            "Resource not found for the segment 'languages'.",
        ),
        ("/v1.0/identity/userFlows", "Invalid version: v1.0"),
        ("/", "No version in the path."),
    ] {
        let r = app.request("GET", path, &[], None);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.error_code(), "BadRequest");
        assert!(r.message().contains(needle), "{path}: {}", r.message());
    }
}

#[test]
fn every_response_has_request_ids_and_a_date() {
    let app = spawn_app();
    let a = app.list("");
    let b = app.list("");
    let id_a = a.header("request-id").unwrap();
    assert!(uuid::Uuid::parse_str(id_a).is_ok(), "{id_a}");
    assert_ne!(id_a, b.header("request-id").unwrap(), "fresh per request");
    assert_eq!(
        a.header("client-request-id"),
        Some(id_a),
        "defaults to the request id"
    );
    assert!(a.header("date").is_some());

    let echoed = app.request(
        "GET",
        "/beta/identity/userFlows/B2C_1_none",
        &[("client-request-id", "my-trace 42")],
        None,
    );
    assert_eq!(echoed.status, 404);
    assert_eq!(echoed.header("client-request-id"), Some("my-trace 42"));
    assert_eq!(
        echoed.json()["error"]["innerError"]["client-request-id"],
        "my-trace 42"
    );
    assert!(echoed.header("date").is_some());
}

#[test]
fn admin_health_and_ready_answer_and_unknown_admin_paths_are_graph_errors() {
    let app = spawn_app();
    let health = app.request("GET", "/_emulator/health", &[("Authorization", "")], None);
    assert_eq!(health.status, 200);
    assert!(health.header("request-id").is_some());
    assert_eq!(
        app.request("GET", "/_emulator/ready", &[], None).status,
        200
    );
    let unknown = app.request("GET", "/_emulator/nothing", &[], None);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "Request_ResourceNotFound");
}

#[test]
fn a_client_request_id_over_256_characters_is_400_and_is_not_echoed() {
    let app = spawn_app();
    let longest = "c".repeat(256);
    let ok = app.request(
        "GET",
        "/beta/identity/userFlows",
        &[("client-request-id", &longest)],
        None,
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("client-request-id"), Some(longest.as_str()));

    let too_long = "c".repeat(257);
    let refused = app.request(
        "POST",
        "/beta/identity/userFlows",
        &[
            ("client-request-id", &too_long),
            ("Content-Type", "application/json"),
        ],
        Some(&flow("Long").to_string()),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_code(), "BadRequest");
    assert!(
        refused.message().contains("client-request-id"),
        "{}",
        refused.body
    );
    let request_id = refused.header("request-id").unwrap().to_owned();
    assert_eq!(
        refused.header("client-request-id"),
        Some(request_id.as_str())
    );
    assert_eq!(app.get("B2C_1_Long").status, 404, "nothing stored");

    // The limit counts characters: 256 two-byte ones are taken.
    let wide = |n: usize| {
        let address = app.address.trim_start_matches("http://");
        raw_exchange(
            &app,
            format!(
                "GET /beta/identity/userFlows HTTP/1.1\r\nHost: {address}\r\nAuthorization: \
                 Bearer {}\r\nclient-request-id: {}\r\nConnection: close\r\n\r\n",
                app.token,
                "\u{e9}".repeat(n)
            )
            .as_bytes(),
        )
    };
    let (taken, refused) = (wide(256), wide(257));
    assert!(taken.starts_with("HTTP/1.1 200"), "{taken}");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");

    // Admin and identity routes refuse it too, each in its own error shape.
    let admin = app.request(
        "GET",
        "/_emulator/tenants",
        &[("client-request-id", &too_long)],
        None,
    );
    assert_eq!(admin.status, 400, "{}", admin.body);
    assert_eq!(admin.error_code(), "BadRequest");
    assert!(admin.message().contains("client-request-id"));
    let identity = app.request(
        "POST",
        &format!("/{TENANT}/oauth2/v2.0/token"),
        &[
            ("client-request-id", &too_long),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some("grant_type=client_credentials&client_id=a&client_secret=b&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
    );
    assert_eq!(identity.status, 400, "{}", identity.body);
    assert_eq!(identity.json()["error"], "invalid_request");
    assert_eq!(
        identity.json()["correlation_id"],
        identity.header("request-id").unwrap()
    );
}

#[test]
fn health_and_readiness_answer_head() {
    let app = spawn_app();
    for path in ["/_emulator/health", "/_emulator/ready"] {
        let head = app.request("HEAD", path, &[], None);
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}: {}", head.body);
    }
}

/// A connection to the app's listener, reads timing out after 30 s.
fn connect(app: &crate::helpers::TestApp) -> std::net::TcpStream {
    let address = app.url("").trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Sends raw bytes on a new connection and reads until the server closes it.
fn raw_exchange(app: &crate::helpers::TestApp, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = connect(app);
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    // A reset after the answer (unread request bytes) ends the read too.
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8(answer).unwrap()
}

/// The answer to `bytes` sent on a connection that has just been answered a `$count`.
fn after_an_answer(app: &crate::helpers::TestApp, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = connect(app);
    let first = format!(
        "GET /beta/identity/userFlows/$count HTTP/1.1\r\nHost: localhost\r\nAuthorization: \
         Bearer {}\r\n\r\n",
        app.token
    );
    stream.write_all(first.as_bytes()).unwrap();
    // The whole first answer (head and `content-length` bytes of body), so that the next bytes
    // start a new head.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        body.len() >= length
    };
    while !complete(&answer) {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8(answer).unwrap()
}

/// The status, the `request-id` header and the envelope of a raw answer.
fn graph_error_of(answer: &str) -> (u16, String, serde_json::Value) {
    let (head, body) = answer.split_once("\r\n\r\n").expect(answer);
    let status = head[9..12].parse().unwrap();
    let request_id = head
        .lines()
        .find_map(|l| l.strip_prefix("request-id: "))
        .expect(head)
        .to_owned();
    (status, request_id, serde_json::from_str(body).expect(body))
}

#[test]
fn requests_that_are_not_http_get_the_graph_envelope_from_the_http_layer_too() {
    let app = spawn_app();
    let many = "X-H: v\r\n".repeat(200);
    let many = format!("GET /beta/identity/userFlows HTTP/1.1\r\nHost: localhost\r\n{many}\r\n");
    for (bytes, status, code) in [
        ("GARBAGE\r\n\r\n".to_owned(), 400, "BadRequest"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n".to_owned(),
            400,
            "BadRequest",
        ),
        (many, 431, "RequestHeaderFieldsTooLarge"),
        // A URI longer than the HTTP library takes: its message says so.
        (
            format!(
                "GET /beta/identity/userFlows?pad={} HTTP/1.1\r\nHost: a\r\n\r\n",
                "a".repeat(70_000)
            ),
            400,
            "BadRequest",
        ),
        // Headers that never end: the head timeout.
        (
            "GET /beta/identity/userFlows HTTP/1.1\r\nHost: localhost\r\n".to_owned(),
            408,
            "RequestTimeout",
        ),
    ] {
        // As a connection's first request, and as the next one after an answer on a kept-alive
        // connection (where actix writes its answers differently, and times out no head).
        for answer in [
            raw_exchange(&app, bytes.as_bytes()),
            after_an_answer(&app, bytes.as_bytes()),
        ] {
            let answer = answer.as_str();
            let (got, request_id, envelope) = graph_error_of(answer);
            assert_eq!(got, status, "{answer}");
            assert_eq!(envelope["error"]["code"], code, "{answer}");
            if status == 400 {
                let message = envelope["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("URI longer than 65,534 bytes"),
                    "{message}"
                );
            }
            assert_eq!(
                envelope["error"]["innerError"]["request-id"],
                request_id.as_str()
            );
            assert!(answer.contains("content-type: application/json\r\n"));
            assert!(answer.contains("connection: close\r\n"), "{answer}");
        }
    }
    // The server is unharmed.
    assert_eq!(app.create(&flow("after")).status, 201);
}

#[test]
fn links_name_the_absolute_forms_authority_or_the_listener_when_no_host_is_sent() {
    let app = spawn_app();
    let address = app.address.trim_start_matches("http://").to_owned();
    let token = &app.token;
    // HTTP/1.0 may send no Host: the links name the address the client reached.
    let answer = raw_exchange(
        &app,
        format!("GET /beta/identity/userFlows HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(
        answer.contains(&format!(
            "\"@odata.context\":\"http://{address}/beta/$metadata"
        )),
        "{answer}"
    );
    // In absolute form the request's own authority wins over Host.
    let answer = raw_exchange(
        &app,
        format!(
            "GET http://graph.example:81/beta/identity/userFlows HTTP/1.1\r\nHost: {address}\r\n\
             Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"@odata.context\":\"http://graph.example:81/beta/$metadata"),
        "{answer}"
    );
    // A Host no link could name (empty, or not a host) is not copied into one.
    for host in ["", "a\"b", "x/y"] {
        let answer = raw_exchange(
            &app,
            format!(
                "GET /beta/identity/userFlows HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer \
                 {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(
            answer.contains(&format!(
                "\"@odata.context\":\"http://{address}/beta/$metadata"
            )),
            "{host}: {answer}"
        );
    }
    // Nor a forwarded scheme other than http and https.
    let r = app.request(
        "GET",
        "/beta/identity/userFlows",
        &[("X-Forwarded-Proto", "javascript")],
        None,
    );
    assert!(
        r.json()["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with("http://"),
        "{}",
        r.body
    );
}
