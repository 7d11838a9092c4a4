//! Creating user flows: the prefix rule, validation, conflicts, content types and limits.

use serde_json::json;

use crate::helpers::{flow, spawn_app, spawn_app_with, stored_events, TENANT};

const JSON_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

#[test]
fn create_answers_201_with_the_prefixed_flow_location_and_headers() {
    let app = spawn_app();
    let r = app.create(&json!({"id": "Pol1", "userFlowType": "signUp", "userFlowTypeVersion": 1}));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("content-type"), Some(JSON_TYPE));
    assert_eq!(r.header("odata-version"), Some("4.0"));
    assert_eq!(
        r.header("location"),
        Some(format!("{}/beta/identity/userFlows/B2C_1_Pol1", app.address).as_str())
    );
    assert_eq!(
        r.json(),
        json!({
            "@odata.context": format!("{}/beta/$metadata#identity/userFlows/$entity", app.address),
            "id": "B2C_1_Pol1",
            "userFlowType": "signUp",
            "userFlowTypeVersion": 1
        })
    );
    // The Location can be followed.
    let path = r
        .header("location")
        .unwrap()
        .strip_prefix(&app.address)
        .unwrap()
        .to_owned();
    assert_eq!(app.request("GET", &path, &[], None).status, 200);
}

#[test]
fn an_id_that_has_the_prefix_in_any_case_keeps_it_as_given() {
    let app = spawn_app();
    let r = app.create(&flow("b2c_1_Lower"));
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["id"], "b2c_1_Lower");
}

#[test]
fn versions_are_written_whole_or_as_the_shortest_single() {
    let app = spawn_app();
    let whole =
        app.create(&json!({"id": "w", "userFlowType": "signIn", "userFlowTypeVersion": 3.0}));
    assert_eq!(whole.status, 201);
    assert!(
        whole.body.contains(r#""userFlowTypeVersion":3}"#),
        "{}",
        whole.body
    );
    let fraction =
        app.create(&json!({"id": "f", "userFlowType": "signIn", "userFlowTypeVersion": 1.1}));
    assert!(
        fraction.body.contains(r#""userFlowTypeVersion":1.1}"#),
        "{}",
        fraction.body
    );
}

#[test]
fn the_seed_placeholder_body_gets_400_naming_every_problem() {
    let app = spawn_app();
    let r = app.create(&json!({"userFlowType": "String", "userFlowTypeVersion": "Single"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "BadRequest");
    let body = r.json();
    let targets: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, vec!["id", "userFlowType", "userFlowTypeVersion"]);
    let message = r.message();
    assert!(
        message.contains("'id'") && message.contains("'String'") && message.contains("'Single'")
    );
}

#[test]
fn unknown_properties_and_bad_values_are_refused_with_details() {
    let app = spawn_app();
    let unknown = app.create(&json!({
        "id": "a", "userFlowType": "signIn", "userFlowTypeVersion": 1, "isLanguageCustomizationEnabled": true
    }));
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.message(),
        "The property 'isLanguageCustomizationEnabled' does not exist on type \
         'microsoft.graph.identityUserFlow'. Make sure to only use property names that are \
         defined by the type."
    );
    for body in [
        json!({"id": "", "userFlowType": "signIn", "userFlowTypeVersion": 1}),
        json!({"id": "has space", "userFlowType": "signIn", "userFlowTypeVersion": 1}),
        json!({"id": "a", "userFlowType": "unknownFutureValue", "userFlowTypeVersion": 1}),
        json!({"id": "a", "userFlowType": "signIn", "userFlowTypeVersion": "1"}),
        json!({"id": "a", "userFlowType": "signIn", "userFlowTypeVersion": 0}),
        json!({"id": "a", "userFlowType": "signIn", "userFlowTypeVersion": -2.5}),
        json!({"@odata.type": "#microsoft.graph.user", "id": "a", "userFlowType": "signIn", "userFlowTypeVersion": 1}),
        json!(["not", "an", "object"]),
    ] {
        let r = app.create(&body);
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.error_code(), "BadRequest");
    }
    let annotated = app.create(&json!({
        "@odata.type": "#microsoft.graph.identityUserFlow", "id": "ok", "userFlowType": "signIn", "userFlowTypeVersion": 1
    }));
    assert_eq!(annotated.status, 201, "{annotated:?}");
}

#[test]
fn malformed_json_is_a_graph_400() {
    let app = spawn_app();
    let r = app.create_raw("{\"id\": ", "application/json");
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "BadRequest");
}

#[test]
fn create_needs_a_json_content_type() {
    let app = spawn_app();
    let body = flow("x").to_string();
    for content_type in ["", "text/plain", "application/xml"] {
        let r = app.create_raw(&body, content_type);
        assert_eq!(r.status, 415, "{content_type}: {r:?}");
        assert_eq!(r.error_code(), "UnsupportedMediaType");
    }
    let with_charset = app.create_raw(&body, "application/json; charset=utf-8");
    assert_eq!(with_charset.status, 201);
}

#[test]
fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let app = spawn_app_with(|s| s.max_body_bytes = 1024);
    let padding = "x".repeat(2000);
    let body = json!({"id": "big", "userFlowType": "signIn", "userFlowTypeVersion": 1, "@odata.etag": padding});
    let r = app.create(&body);
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "RequestEntityTooLarge");
    assert_eq!(app.get("B2C_1_big").status, 404);
    assert_eq!(app.count().body, "0");
}

#[test]
fn a_duplicate_id_in_any_case_is_409_and_a_deleted_id_can_be_created_again() {
    let app = spawn_app();
    assert_eq!(app.create(&flow("B2C_1_Dup")).status, 201);
    for again in ["B2C_1_Dup", "b2c_1_dUP", "Dup", "DUP"] {
        let r = app.create(&flow(again));
        assert_eq!(r.status, 409, "{again}");
        assert_eq!(r.error_code(), "nameAlreadyExists");
    }
    assert_eq!(app.delete("B2C_1_DUP").status, 204);
    assert_eq!(app.create(&flow("dup")).status, 201);
    assert_eq!(app.get("B2C_1_dup").json()["id"], "B2C_1_dup");
}

#[test]
fn sixteen_racing_creates_of_one_id_give_exactly_one_201() {
    let app = spawn_app();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| app.create(&flow("Race")).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(app.count().body, "1");
}

#[test]
fn posting_to_the_ref_path_is_a_helpful_400() {
    let app = spawn_app();
    let r = app.request(
        "POST",
        "/beta/identity/userFlows/$ref",
        &[("Content-Type", "application/json")],
        Some(&flow("x").to_string()),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "BadRequest");
    assert!(
        r.message()
            .contains("POST an identityUserFlow to /beta/identity/userFlows"),
        "{}",
        r.message()
    );
    assert_eq!(app.count().body, "0");
}

#[test]
fn rejected_requests_append_no_event() {
    let mut app = spawn_app();
    assert_eq!(app.create(&flow("kept")).status, 201);
    assert_eq!(app.create(&flow("kept")).status, 409);
    assert_eq!(app.delete("B2C_1_missing").status, 404);
    assert_eq!(
        app.create(&json!({"id": "bad", "userFlowType": "nope", "userFlowTypeVersion": 1}))
            .status,
        400
    );
    assert_eq!(app.create_raw("{", "application/json").status, 400);
    assert_eq!(
        app.create_raw(&flow("t").to_string(), "text/plain").status,
        415
    );
    app.stop();
    assert_eq!(stored_events(&app.data_dir(), TENANT), 1);
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_408_closes_the_connection_and_stores_nothing() {
    let app =
        crate::helpers::spawn_app_with(|s| s.body_timeout = std::time::Duration::from_secs(1));
    let body = crate::helpers::flow("Slow").to_string();
    // A few bytes of the body, then nothing: framed by its length, and chunked.
    let framings = [
        (
            format!("Content-Length: {}", body.len()),
            body[..5].to_owned(),
        ),
        (
            "Transfer-Encoding: chunked".to_owned(),
            format!("{:x}\r\n{}", body.len(), &body[..5]),
        ),
    ];
    for (framing, sent) in framings {
        // The whole answer, then the end of the stream: the server closed the connection.
        let answer = app.answer_to_unfinished(&format!(
            "POST /beta/identity/userFlows HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n{sent}",
            app.token,
        ));
        assert!(answer.starts_with("HTTP/1.1 408"), "{framing}: {answer}");
        assert!(answer.contains("\"RequestTimeout\""), "{answer}");
        assert!(answer.contains("request-id"), "{answer}");
        assert!(answer.contains("connection: close"), "{framing}: {answer}");
    }
    assert_eq!(app.get("B2C_1_Slow").status, 404);
}

#[test]
fn a_body_naming_a_property_twice_is_400_naming_it() {
    let app = spawn_app();
    let r = app.create_raw(
        r#"{"id":"Twice","userFlowType":"signIn","userFlowTypeVersion":1,"id":"Other"}"#,
        "application/json",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "BadRequest");
    assert_eq!(r.json()["error"]["details"][0]["target"], "id");
    assert_eq!(app.get("B2C_1_Twice").status, 404);
    assert_eq!(app.get("B2C_1_Other").status, 404);
}

#[test]
fn a_compressed_body_is_415_naming_its_encoding_and_identity_is_plain() {
    let app = spawn_app();
    let body = flow("Zipped").to_string();
    let sent = |encoding: &str| {
        app.request(
            "POST",
            "/beta/identity/userFlows",
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", encoding),
            ],
            Some(&body),
        )
    };
    let zipped = sent("gzip");
    assert_eq!(zipped.status, 415, "{zipped:?}");
    assert_eq!(zipped.error_code(), "UnsupportedMediaType");
    assert!(zipped.message().contains("'gzip'"), "{}", zipped.message());
    assert_eq!(app.get("B2C_1_Zipped").status, 404);
    assert_eq!(sent("identity").status, 201);
}
