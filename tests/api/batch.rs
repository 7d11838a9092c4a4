//! `POST /beta/$batch`: each item served as if sent alone, answered in request order;
//! `dependsOn`; malformed batches refused whole; independent writes sharing flushes.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{create_items, flow, item_statuses, spawn_app, Resp, TestApp};

fn batch(app: &TestApp, body: &Value) -> Resp {
    app.request(
        "POST",
        "/beta/$batch",
        &[("Content-Type", "application/json")],
        Some(&body.to_string()),
    )
}

fn json_item(id: &str, method: &str, url: &str, body: Option<Value>) -> Value {
    let mut item = json!({"id": id, "method": method, "url": url});
    if let Some(body) = body {
        item["body"] = body;
        item["headers"] = json!({"Content-Type": "application/json"});
    }
    item
}

fn statuses(r: &Resp) -> Vec<(String, u64)> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.request("GET", "/_emulator/metrics", &[], None).body;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[test]
fn items_are_served_as_alone_in_request_order_each_seeing_the_ones_before() {
    let app = spawn_app();
    let r = batch(
        &app,
        &json!({"requests": [
            json_item("1", "POST", "/identity/userFlows", Some(flow("B2C_1_a"))),
            json_item("2", "POST", "identity/userFlows", Some(flow("B2C_1_b"))),
            json_item("3", "GET", "/identity/userFlows/B2C_1_a?$select=id", None),
            json_item("4", "POST", "/identity/userFlows", Some(flow("B2C_1_A"))),
            json_item("5", "DELETE", "/identity/userFlows/B2C_1_b", None),
            json_item("6", "GET", "/identity/userFlows?$filter=startswith(id,'B2C_1')&$count=true", None),
            json_item("7", "GET", "/identity/userFlows/$count", None),
            json_item("8", "PATCH", "/identity/userFlows/B2C_1_a", None),
        ]}),
    );
    assert_eq!(
        statuses(&r),
        [
            ("1", 201),
            ("2", 201),
            ("3", 200),
            ("4", 409),
            ("5", 204),
            ("6", 200),
            ("7", 200),
            ("8", 405)
        ]
        .map(|(i, s)| (i.to_owned(), s))
    );
    let body = r.json();
    let items = body["responses"].as_array().unwrap();
    let created = &items[0];
    assert_eq!(
        created["headers"]["Location"],
        format!("{}/beta/identity/userFlows/B2C_1_a", app.address)
    );
    assert!(created["headers"]["Content-Type"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(created["headers"].get("Date").is_none());
    // Spelled as Graph spells it in a batch answer, not word by word.
    assert_eq!(created["headers"]["OData-Version"], "4.0");
    assert_eq!(created["body"]["id"], "B2C_1_a");
    assert_ne!(
        created["headers"]["Request-Id"],
        items[1]["headers"]["Request-Id"]
    );
    assert!(created["headers"]["Request-Id"].is_string());
    assert_eq!(
        items[2]["body"],
        json!({
            "@odata.context": format!("{}/beta/$metadata#identity/userFlows(id)/$entity", app.address),
            "id": "B2C_1_a"
        })
    );
    assert_eq!(items[3]["body"]["error"]["code"], "nameAlreadyExists");
    assert!(items[4].get("body").is_none(), "a 204 has no body");
    assert_eq!(items[5]["body"]["@odata.count"], 1);
    // `/$count` is text: base64 in the item, with its content type.
    assert_eq!(items[6]["headers"]["Content-Type"], "text/plain");
    let text = base64::engine::general_purpose::STANDARD
        .decode(items[6]["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(text, b"1");
    assert_eq!(items[7]["headers"]["Allow"], "GET, DELETE");
    // And they really happened.
    assert_eq!(app.get("B2C_1_a").status, 200);
    assert_eq!(app.get("B2C_1_b").status, 404);
}

#[test]
fn depends_on_waits_and_a_failed_dependency_is_424() {
    let app = spawn_app();
    assert_eq!(app.create(&flow("B2C_1_taken")).status, 201);
    let mut taken = json_item(
        "dup",
        "POST",
        "/identity/userFlows",
        Some(flow("B2C_1_taken")),
    );
    taken["dependsOn"] = json!([]);
    let mut after_dup = json_item("after", "GET", "/identity/userFlows/B2C_1_taken", None);
    after_dup["dependsOn"] = json!(["DUP"]);
    // The Python SDK's spelling, and an absolute URL on the emulator's own /beta.
    let mut sdk = json_item(
        "sdk",
        "GET",
        &format!("{}/beta/identity/userFlows/B2C_1_new", app.address),
        None,
    );
    sdk["depends_on"] = json!(["new"]);
    let r = batch(
        &app,
        &json!({"requests": [
            after_dup,
            taken,
            sdk,
            json_item("new", "POST", "/identity/userFlows", Some(flow("B2C_1_new"))),
        ]}),
    );
    assert_eq!(
        statuses(&r),
        [("after", 424), ("dup", 409), ("sdk", 200), ("new", 201)].map(|(i, s)| (i.to_owned(), s))
    );
    let body = r.json();
    assert_eq!(
        body["responses"][0]["body"]["error"]["code"],
        "FailedDependency"
    );
}

#[test]
fn both_spellings_of_depends_on_are_waited_for_and_the_path_matches_in_any_case() {
    let app = spawn_app();
    let mut both = json_item("d", "GET", "/identity/userFlows/$count", None);
    both["dependsOn"] = json!(["c"]);
    both["depends_on"] = json!(["a"]);
    let body = json!({"requests": [
        json_item("a", "GET", "/identity/userFlows/B2C_1_none", None),
        json_item("c", "GET", "/identity/userFlows/$count", None),
        both,
    ]});
    for path in ["/beta/$batch", "/beta/$BATCH", "/beta/%24Batch"] {
        let r = app.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(
            statuses(&r),
            [("a", 404), ("c", 200), ("d", 424)].map(|(i, s)| (i.to_owned(), s)),
            "{path}"
        );
    }
}

#[test]
fn a_malformed_batch_is_one_400_and_nothing_in_it_runs() {
    let app = spawn_app();
    let create = json_item(
        "c",
        "POST",
        "/identity/userFlows",
        Some(flow("B2C_1_never")),
    );
    let many: Vec<Value> = (0..21)
        .map(|i| json_item(&i.to_string(), "GET", "/identity/userFlows", None))
        .collect();
    let mut unknown = json_item("u", "GET", "/identity/userFlows", None);
    unknown["dependsOn"] = json!(["nope"]);
    let mut a = json_item("a", "GET", "/identity/userFlows", None);
    a["dependsOn"] = json!(["b"]);
    let mut b = json_item("b", "GET", "/identity/userFlows", None);
    b["dependsOn"] = json!(["a"]);
    let cases: Vec<(String, &str)> = vec![
        ("{not json".to_owned(), "not JSON"),
        (json!({}).to_string(), "'requests'"),
        (json!({"requests": []}).to_string(), "empty"),
        (json!({"requests": many}).to_string(), "at most 20"),
        (
            json!({"requests": [create, json_item("C", "GET", "/identity/userFlows", None)]})
                .to_string(),
            "more than once",
        ),
        (
            json!({"requests": [create, unknown]}).to_string(),
            "not a request of this batch",
        ),
        (json!({"requests": [create, a, b]}).to_string(), "cycle"),
        (
            json!({"requests": [create, json_item("n", "POST", "/$batch", Some(json!({})))]})
                .to_string(),
            "nested",
        ),
        (
            json!({"requests": [create, {"id": "m", "url": "/identity/userFlows"}]}).to_string(),
            "'method'",
        ),
        (
            json!({"requests": [create, {"id": "m", "method": 7, "url": "/identity/userFlows"}]})
                .to_string(),
            "'method'",
        ),
        (
            json!({"requests": [create, {"id": 1, "method": "GET", "url": "/identity/userFlows"}]})
                .to_string(),
            "needs a non-empty string 'id'",
        ),
        (
            json!({"requests": [create, {"id": "", "method": "GET", "url": "/identity/userFlows"}]})
                .to_string(),
            "needs a non-empty string 'id'",
        ),
        (
            json!({"requests": [create, {"id": "u", "method": "GET", "url": ["/x"]}]}).to_string(),
            "'url'",
        ),
        ("[]".to_owned(), "'requests'"),
        (
            r#"{"requests":[{"id":"a","method":"GET","method":"DELETE","url":"/identity/userFlows"}]}"#
                .to_owned(),
            "requests[0] is not a request object (duplicate field `method`)",
        ),
        (r#"{"requests":[7]}"#.to_owned(), "requests[0] is not a JSON object."),
    ];
    for (body, needle) in cases {
        assert_refused_whole(&app, &body, needle);
    }
    let unauthorized = app.request(
        "POST",
        "/beta/$batch",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer nope"),
        ],
        Some(&json!({"requests": [create]}).to_string()),
    );
    assert_eq!(unauthorized.status, 401);
    assert_eq!(app.get("B2C_1_never").status, 404);
}

#[test]
fn an_item_outside_beta_or_with_an_untyped_body_fails_alone() {
    let app = spawn_app();
    let mut untyped = json_item(
        "t",
        "POST",
        "/identity/userFlows",
        Some(flow("B2C_1_untyped")),
    );
    untyped["headers"] = json!({});
    let r = batch(
        &app,
        &json!({"requests": [
            json_item("admin", "GET", &format!("{}/_emulator/tenants", app.address), None),
            json_item("elsewhere", "GET", "https://graph.microsoft.com/beta/identity/userFlows", None),
            json_item("up", "GET", "/../_emulator/tenants", None),
            untyped,
            json_item("ok", "POST", "/identity/userFlows", Some(flow("B2C_1_ok"))),
        ]}),
    );
    assert_eq!(
        statuses(&r),
        [
            ("admin", 400),
            ("elsewhere", 400),
            ("up", 400),
            ("t", 415),
            ("ok", 201)
        ]
        .map(|(i, s)| (i.to_owned(), s))
    );
    assert_eq!(app.get("B2C_1_untyped").status, 404);
}

#[test]
fn ids_methods_urls_and_bodies_are_read_as_json_whatever_their_escapes() {
    let app = spawn_app();
    // Escapes in every string the batch reads, and a body whose own strings are escaped.
    let body = r#"{"requests": [
        {"id": "q\"1", "method": "P\u004FST", "url": "\/identity\/userFlows",
         "headers": {"Content-Type": "application/json"},
         "body": {"id": "B2C_1_\u0065scaped", "userFlowType": "signIn", "userFlowTypeVersion": 1}},
        {"id": "\u00e9", "method": "get", "url": "/identity/userFlows/B2C_1_escaped"}
    ]}"#;
    let r = app.request(
        "POST",
        "/beta/$batch",
        &[("Content-Type", "application/json")],
        Some(body),
    );
    assert_eq!(
        statuses(&r),
        [("q\"1", 201), ("é", 200)].map(|(i, s)| (i.to_owned(), s))
    );
    let responses = r.json()["responses"].clone();
    assert_eq!(responses[0]["body"]["id"], "B2C_1_escaped");
    assert_eq!(responses[1]["body"]["userFlowType"], "signIn");
    assert_eq!(
        responses[0]["headers"]["Content-Type"]
            .as_str()
            .map(|v| v.starts_with("application/json")),
        Some(true)
    );
    assert_eq!(app.get("B2C_1_escaped").status, 200);
}

#[test]
fn twenty_independent_creates_share_flushes() {
    let app = spawn_app();
    let before = metric(&app, "userflows_flushes_total");
    let requests: Vec<Value> = (0..20)
        .map(|i| {
            json_item(
                &i.to_string(),
                "POST",
                "/identity/userFlows",
                Some(flow(&format!("B2C_1_g{i}"))),
            )
        })
        .collect();
    let r = batch(&app, &json!({ "requests": requests }));
    assert!(statuses(&r).iter().all(|(_, s)| *s == 201), "{}", r.body);
    let flushes = metric(&app, "userflows_flushes_total") - before;
    // The batch holds its writes until the last is sent: one append, one flush.
    assert!(
        (flushes - 1.0).abs() < 0.5,
        "20 creates took {flushes} flushes"
    );
    assert_eq!(app.count().body, "20");
}

#[test]
fn a_malformed_batch_names_what_is_wrong_in_its_own_words() {
    let app = spawn_app();
    let cases = [
        (
            r#"{"requests":[{"id":"a","method":"GET","url":"/identity/userFlows"}],"requests":[]}"#
                .to_owned(),
            "the body names 'requests' more than once.",
        ),
        (
            r#"{"requests":[{"id":"a","method":"GET","url":"\ud800"}]}"#.to_owned(),
            "request 'a': 'url' is not valid Unicode",
        ),
        (
            json!({"requests": [
                {"id": "2", "method": "GET", "url": "/identity/userFlows"},
                {"id": "b", "method": "GET", "url": "/identity/userFlows", "dependsOn": [2]}
            ]})
            .to_string(),
            "request 'b': 'dependsOn' holds 2, which is not a string",
        ),
    ];
    for (body, needle) in cases {
        assert_refused_whole(&app, &body, needle);
    }
}

/// `body` sent as a batch is one `400 BadRequest` whose message holds `needle`.
fn assert_refused_whole(app: &TestApp, body: &str, needle: &str) {
    let r = app.request(
        "POST",
        "/beta/$batch",
        &[("Content-Type", "application/json")],
        Some(body),
    );
    assert_eq!(r.status, 400, "{body}: {}", r.body);
    assert_eq!(r.error_code(), "BadRequest");
    assert!(r.message().contains(needle), "{needle}: {}", r.message());
}

#[test]
fn a_batch_body_may_be_twenty_times_the_body_limit_and_each_item_keeps_the_limit() {
    let app = crate::helpers::spawn_app_with(|s| s.max_body_bytes = 300);
    // Each item's body (about 80 bytes) is under the limit, the whole batch well over it.
    let items = create_items(20, "big");
    let body = json!({ "requests": items }).to_string();
    assert!(body.len() > 300 && body.len() < 20 * 300, "{}", body.len());
    assert_eq!(item_statuses(&app.batch(&items)), vec![201; 20]);
    // An item whose own body is over the limit is that item's 413; the others run.
    let mut items = create_items(2, "one");
    items[1]["body"]["padding"] = json!("x".repeat(400));
    assert_eq!(item_statuses(&app.batch(&items)), [201, 413]);
    // A batch body over twenty times the limit is refused whole.
    let mut items = create_items(1, "huge");
    items[0]["headers"]["x-padding"] = json!("x".repeat(20 * 300));
    let refused = app.batch(&items);
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert_eq!(app.get("B2C_1_huge0").status, 404);
}
