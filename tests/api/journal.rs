//! The request journal (`/_emulator/requests`): every field on each kind of route, faults (after
//! a commit, and a request left unanswered), a caller no token names, admin routes left out,
//! tenant isolation, filters, clearing, the byte bound, a journal turned off, and the summary's
//! grouping of retries and its `honoured` verdict.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    create_items, flow, sorted_keys, spawn_app, spawn_app_with, token_for, TestApp, OTHER_TENANT,
    TENANT,
};

fn journal(app: &TestApp, query: &str) -> Value {
    let r = app.request("GET", &format!("/_emulator/requests?{query}"), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    journal(app, query)["value"].as_array().unwrap().clone()
}

fn summary(app: &TestApp) -> Vec<Value> {
    let r = app.request(
        "GET",
        &format!("/_emulator/requests/summary?tenant={TENANT}"),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["value"].as_array().unwrap().clone()
}

#[test]
fn each_route_kind_is_recorded_with_every_field() {
    let app = spawn_app();
    let created = app.request(
        "POST",
        "/beta/identity/userFlows",
        &[
            ("Content-Type", "application/json"),
            ("client-request-id", "my-create"),
            ("Retry-Attempt", "2"),
        ],
        Some(&flow("a").to_string()),
    );
    assert_eq!(created.status, 201);
    app.list("$top=5");
    app.get("B2C_1_a");
    app.count();
    app.delete("B2C_1_a");
    app.batch(&create_items(2, "b"));
    let form = "grant_type=client_credentials&client_id=app-1&client_secret=s&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";
    let token = app.request(
        "POST",
        "/contoso/oauth2/v2.0/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form),
    );
    assert_eq!(token.status, 200);
    let all = entries(&app, "");
    let operations: Vec<&str> = all
        .iter()
        .map(|e| e["operation"].as_str().unwrap_or("null"))
        .collect();
    // The batch envelope is answered after its items.
    assert_eq!(
        operations,
        ["create", "list", "get", "count", "delete", "create", "create", "batch", "token"]
    );
    let create = &all[0];
    assert_eq!(create["tenant"], TENANT);
    assert_eq!(create["app"], Value::Null);
    assert_eq!(create["method"], "POST");
    assert_eq!(create["path"], "/beta/identity/userFlows");
    assert_eq!(create["status"], 201);
    assert!(create["durationMs"].as_f64().unwrap() > 0.0);
    assert_eq!(create["requestId"], created.header("request-id").unwrap());
    assert_eq!(create["clientRequestId"], "my-create");
    assert_eq!(create["retryAttempt"], 2);
    assert_eq!(create["bodyDigest"].as_str().unwrap().len(), 16);
    assert_eq!(create["seq"], 1);
    assert_eq!(create["batch"], Value::Null);
    assert_eq!(create["throttled"], Value::Null);
    assert_eq!(create["fault"], Value::Null);
    assert!(create["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(all[1]["path"], "/beta/identity/userFlows?$top=5");
    assert_eq!(all[1]["clientRequestId"], Value::Null);
    assert_eq!(all[1]["bodyDigest"], Value::Null);
    assert_eq!(all[1]["seq"], Value::Null);
    assert_eq!(all[2]["status"], 200);
    assert_eq!(all[4]["status"], 204);
    assert_eq!(all[4]["seq"], 2, "the delete's event");
    let envelope = &all[7];
    assert_eq!(envelope["path"], "/beta/$batch");
    for (item, id) in all[5..7].iter().zip(["0", "1"]) {
        assert_eq!(item["batch"]["requestId"], envelope["requestId"]);
        assert_eq!(item["batch"]["itemId"], id);
        assert_eq!(item["status"], 201);
        assert!(item["seq"].is_u64());
    }
    let token = &all[8];
    assert_eq!(token["tenant"], "contoso");
    assert_eq!(token["app"], "app-1");
    assert_eq!(token["status"], 200);
    // Every entry carries every field, whatever its route.
    let fields = [
        "at",
        "tenant",
        "app",
        "operation",
        "method",
        "path",
        "status",
        "durationMs",
        "requestId",
        "clientRequestId",
        "retryAttempt",
        "bodyDigest",
        "batch",
        "throttled",
        "fault",
        "seq",
    ];
    for entry in &all {
        let mut expected = fields.to_vec();
        expected.sort_unstable();
        assert_eq!(sorted_keys(entry), expected, "{entry}");
    }
    // Admin requests are never recorded.
    assert_eq!(entries(&app, "").len(), all.len());
}

#[test]
fn faults_unanswered_requests_unknown_callers_and_admin_routes_in_the_journal() {
    let app = spawn_app();
    let put = app.put_faults(&json!({"rules": [
        {"id": "late", "match": {"operation": "create"}, "times": 1,
         "effect": {"status": 504, "afterCommit": true}},
        {"id": "cut", "match": {"operation": "get"}, "times": 1,
         "effect": {"transport": "reset"}}
    ]}));
    assert_eq!(put.status, 200, "{}", put.body);
    // Committed, then answered 504: the entry names the rule and the event it appended.
    assert_eq!(app.create(&flow("late")).status, 504);
    // No answer at all.
    let cut = ureq::get(&app.url("/beta/identity/userFlows/B2C_1_late"))
        .set("Authorization", &format!("Bearer {}", app.token))
        .call();
    assert!(matches!(cut, Err(ureq::Error::Transport(_))), "{cut:?}");
    // No token that names a tenant.
    let refused = app.request(
        "GET",
        "/beta/identity/userFlows",
        &[("Authorization", "Bearer not-a-token")],
        None,
    );
    assert_eq!(refused.status, 401);
    // Admin routes, none of which is recorded.
    app.request("GET", "/_emulator/faults", &[], None);
    app.request("GET", "/_emulator/metrics", &[], None);
    app.request("GET", "/_emulator/ready", &[], None);
    app.request("GET", "/_emulator/tenants", &[], None);
    app.request("DELETE", "/_emulator/faults", &[], None);

    let all = entries(&app, "");
    assert_eq!(all.len(), 3, "{all:?}");
    let late = &all[0];
    assert_eq!(late["status"], 504);
    assert_eq!(late["seq"], 1, "the committed create's event");
    assert_eq!(late["fault"]["rule"], "late");
    assert_eq!(late["fault"]["effect"]["status"], 504);
    assert_eq!(late["fault"]["effect"]["afterCommit"], true);
    let unanswered = &all[1];
    assert_eq!(unanswered["operation"], "get");
    assert_eq!(unanswered["status"], Value::Null);
    assert_eq!(unanswered["fault"]["rule"], "cut");
    assert_eq!(unanswered["fault"]["effect"]["transport"], "reset");
    assert_eq!(
        entries(&app, "status=none"),
        std::slice::from_ref(unanswered)
    );
    let unknown = &all[2];
    assert_eq!(unknown["status"], 401);
    assert_eq!(unknown["tenant"], Value::Null);
    assert_eq!(unknown["app"], Value::Null);
    assert!(all
        .iter()
        .all(|e| !e["path"].as_str().unwrap().starts_with("/_emulator")));
}

#[test]
fn filters_tenants_and_clearing() {
    let app = spawn_app();
    app.create(&flow("a"));
    let other = token_for(OTHER_TENANT);
    app.create_as(&other, &flow("b"));
    app.get("B2C_1_missing");
    assert_eq!(entries(&app, &format!("tenant={TENANT}")).len(), 2);
    // The tenant filter reads a GUID as a token's tid is read: ignoring case.
    let upper = OTHER_TENANT.to_ascii_uppercase();
    assert_eq!(entries(&app, &format!("tenant={upper}")).len(), 1);
    assert_eq!(entries(&app, "status=404").len(), 1);
    assert_eq!(entries(&app, "operation=create").len(), 2);
    assert_eq!(
        entries(&app, "operation=create&limit=1")[0]["tenant"],
        OTHER_TENANT
    );
    assert!(entries(&app, "since=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(entries(&app, "since=2000-01-01T00:00:00Z").len(), 3);
    // Any RFC 3339 offset, and the lower-case separators the RFC allows.
    assert!(entries(&app, "since=2999-01-01T01:00:00%2B01:00").is_empty());
    assert_eq!(entries(&app, "since=2000-01-01t00:00:00.5z").len(), 3);
    let soon =
        std::time::SystemTime::now() + Duration::from_secs(2) - Duration::from_secs(3 * 3600);
    let soon = humantime::format_rfc3339_seconds(soon).to_string();
    let soon = format!("{}-03:00", soon.trim_end_matches('Z'));
    assert!(entries(&app, &format!("since={soon}")).is_empty(), "{soon}");
    for bad in [
        "status=abc",
        "operation=patch",
        "since=yesterday",
        "colour=red",
        "limit=ten",
        "status=200&status=201",
    ] {
        let r = app.request("GET", &format!("/_emulator/requests?{bad}"), &[], None);
        assert_eq!(r.status, 400, "{bad}");
    }
    let cleared = app.request(
        "DELETE",
        &format!("/_emulator/requests?tenant={TENANT}"),
        &[],
        None,
    );
    assert_eq!(cleared.status, 204);
    assert_eq!(entries(&app, "").len(), 1);
    app.request("DELETE", "/_emulator/requests", &[], None);
    assert!(entries(&app, "").is_empty());
}

#[test]
fn the_byte_bound_drops_the_oldest_and_counts_them() {
    let app = spawn_app_with(|s| s.journal_bytes = 4_000);
    for i in 0..40 {
        app.get(&format!("B2C_1_n{i}"));
    }
    let page = journal(&app, "");
    let kept = page["value"].as_array().unwrap();
    let bytes: usize = kept.iter().map(|e| e.to_string().len()).sum();
    assert!(bytes <= 4_000, "{bytes} bytes kept");
    assert!(kept.len() >= 5, "{}", kept.len());
    assert_eq!(page["dropped"].as_u64().unwrap() as usize + kept.len(), 40);
    assert!(kept.last().unwrap()["path"]
        .as_str()
        .unwrap()
        .ends_with("n39"));
    // The metrics say the same: what is held against the bound, and what went.
    let metrics = app.request("GET", "/_emulator/metrics", &[], None).body;
    let gauge = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.unwrap().split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(gauge("userflows_journal_entries"), kept.len() as u64);
    assert_eq!(gauge("userflows_journal_json_bytes"), bytes as u64);
    // The bound counts each entry's bookkeeping beside its JSON.
    let counted = gauge("userflows_journal_bytes");
    assert!(counted > bytes as u64 && counted <= 4_000, "{counted}");
    assert_eq!(gauge("userflows_journal_limit_bytes"), 4_000);
    assert_eq!(gauge("userflows_journal_dropped_total"), page["dropped"]);
    // A full clear resets the count.
    app.request("DELETE", "/_emulator/requests", &[], None);
    assert_eq!(journal(&app, "")["dropped"], 0);

    let off = spawn_app_with(|s| s.journal_bytes = 0);
    off.create(&flow("a"));
    let page = journal(&off, "");
    assert_eq!(page["enabled"], false);
    assert_eq!(page["value"], json!([]));
}

#[test]
fn ndjson_is_one_entry_a_line_with_the_dropped_count_beside() {
    let app = spawn_app_with(|s| s.journal_bytes = 2_000);
    for i in 0..20 {
        app.get(&format!("B2C_1_n{i}"));
    }
    let page = journal(&app, "");
    let r = app.request("GET", "/_emulator/requests?format=ndjson", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(&lines, page["value"].as_array().unwrap());
    assert!(r.body.ends_with('\n'));
    let dropped = r.header("x-emulator-journal-dropped").unwrap();
    assert_eq!(dropped, page["dropped"].to_string());
    assert_ne!(dropped, "0");
    // The filters apply as to JSON; an unknown format is refused.
    let one = app.request(
        "GET",
        "/_emulator/requests?format=ndjson&limit=1",
        &[],
        None,
    );
    assert_eq!(one.body.lines().count(), 1);
    let bad = app.request("GET", "/_emulator/requests?format=xml", &[], None);
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn throttled_and_faulted_requests_say_so() {
    let app = spawn_app_with(|s| {
        s.throttle = userflows_emulator::chaos::Limits {
            tenant_rpm: Some(2),
            app_rpm: None,
        }
    });
    app.put_faults(
        &json!({"rules": [{"id": "flaky", "match": {"operation": "create"}, "times": 1,
                                      "effect": {"status": 503, "retryAfter": 2}}]}),
    );
    assert_eq!(app.create(&flow("a")).status, 503);
    assert_eq!(app.create(&flow("a")).status, 201);
    assert_eq!(app.create(&flow("b")).status, 429);
    let all = entries(&app, "");
    assert_eq!(
        all[0]["fault"],
        json!({"rule": "flaky", "effect": {"status": 503, "retryAfter": 2}})
    );
    assert_eq!(all[0]["seq"], Value::Null);
    assert_eq!(all[1]["fault"], Value::Null);
    let retry_after = all[2]["throttled"]["retryAfter"].as_u64().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(all[2]["status"], 429);
}

/// Sends one create of `B2C_1_{id}`, as a retrying client would: with `client-request-id`
/// when given, and `Retry-Attempt` from the second attempt on.
fn attempt(app: &TestApp, id: &str, client: Option<&str>, retry: Option<u32>) -> u16 {
    let retry = retry.map(|n| n.to_string()).unwrap_or_default();
    let headers = [
        ("Content-Type", "application/json"),
        ("client-request-id", client.unwrap_or("")),
        ("Retry-Attempt", retry.as_str()),
    ];
    app.request(
        "POST",
        "/beta/identity/userFlows",
        &headers,
        Some(&flow(id).to_string()),
    )
    .status
}

#[test]
fn the_summary_groups_retries_and_says_whether_they_waited() {
    let app = spawn_app();
    let two_429s = || {
        let rules = json!({"rules": [{"id": "twice", "match": {"operation": "create"},
                                      "times": 2, "effect": {"status": 429, "retryAfter": 1}}]});
        app.put_faults(&rules);
    };
    two_429s();
    // A client that waits as told, with a client-request-id.
    assert_eq!(attempt(&app, "a", Some("patient"), None), 429);
    std::thread::sleep(Duration::from_millis(1_050));
    assert_eq!(attempt(&app, "a", Some("patient"), Some(1)), 429);
    std::thread::sleep(Duration::from_millis(1_050));
    assert_eq!(attempt(&app, "a", Some("patient"), Some(2)), 201);
    // One that retries at once, without an id: a chain by Retry-Attempt.
    two_429s();
    assert_eq!(attempt(&app, "b", None, None), 429);
    assert_eq!(attempt(&app, "b", None, Some(1)), 429);
    assert_eq!(attempt(&app, "b", None, Some(2)), 201);
    // A new request of the same body (no Retry-Attempt) starts afresh.
    assert_eq!(attempt(&app, "b", None, None), 409);
    let value = summary(&app);
    assert_eq!(value.len(), 3, "{value:?}");
    let patient = &value[0];
    assert_eq!(patient["clientRequestId"], "patient");
    assert_eq!(patient["attempts"], 3);
    assert_eq!(patient["statuses"], json!([429, 429, 201]));
    assert_eq!(patient["retryAfterMs"], json!([1000, 1000, null]));
    assert!(patient["waitsMs"][0].as_i64().unwrap() >= 1000);
    assert_eq!(patient["honoured"], true);
    let hasty = &value[1];
    assert_eq!(hasty["clientRequestId"], Value::Null);
    assert_eq!(hasty["statuses"], json!([429, 429, 201]));
    assert_eq!(hasty["honoured"], false);
    assert_eq!(value[2]["statuses"], json!([409]));
    let missing = app.request("GET", "/_emulator/requests/summary", &[], None);
    assert_eq!(missing.status, 400);
}

#[test]
fn a_batch_item_refused_for_its_url_is_journaled_with_the_url_it_sent() {
    let app = spawn_app();
    let items = [json!({"id": "a", "method": "GET", "url": "/identity/../x?$top=1"})];
    let r = app.batch(&items);
    assert_eq!(r.status, 200, "{r:?}");
    let all = entries(&app, "");
    let item = all
        .iter()
        .find(|e| e["batch"]["itemId"] == "a")
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(item["status"], 400);
    assert_eq!(item["path"], "/identity/../x?$top=1");
}
