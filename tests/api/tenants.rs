//! A tenant costs what it holds: requests that change nothing leave no tenant behind, in
//! memory (no actor, not listed) or on disk (no stream after a restart); an idle tenant is
//! parked (no actor) and its next request finds every flow.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{flow, spawn_app, spawn_app_with, stored_events, token_for, TestApp, TENANT};

#[test]
fn refused_and_empty_requests_leave_no_tenant_in_memory_or_on_disk() {
    let mut app = spawn_app();
    let tenants: Vec<String> = (0..20).map(|i| format!("ghost-{i}")).collect();
    for tenant in &tenants {
        let token = token_for(tenant);
        let auth = format!("Bearer {token}");
        let headers = [("Authorization", auth.as_str())];
        let path = "/beta/identity/userFlows";
        assert_eq!(
            app.request("DELETE", &format!("{path}/B2C_1_x"), &headers, None)
                .status,
            404
        );
        assert_eq!(
            app.request("GET", &format!("{path}/B2C_1_x"), &headers, None)
                .status,
            404
        );
        assert_eq!(app.request("GET", path, &headers, None).status, 200);
        assert_eq!(
            app.request("GET", &format!("{path}/$count"), &headers, None)
                .body,
            "0"
        );
        assert_eq!(
            app.create_as(&token, &serde_json::json!({"id": 1})).status,
            400
        );
    }
    // One real write, so there is something to list.
    assert_eq!(app.create(&flow("real")).status, 201);
    let listed = app.request("GET", "/_emulator/tenants", &[], None).json();
    let ids: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["tenantId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [crate::helpers::TENANT]);

    app.stop();
    for tenant in &tenants {
        assert_eq!(stored_events(&app.data_dir(), tenant), 0);
    }
    app.start();
    let ready = app.request("GET", "/_emulator/ready", &[], None).json();
    assert_eq!(ready["tenants"], 1, "{ready}");
}

const LOWER: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const UPPER: &str = "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE";

/// A stopped app's directory whose only stream of the GUID tenant is stored in upper case, as
/// servers wrote it before GUIDs were compared ignoring case.
fn a_stream_stored_in_upper_case() -> crate::helpers::TestApp {
    use userflows_emulator::store::{EventLog, SledEventLog};
    let mut app = spawn_app();
    for id in ["one", "two"] {
        assert_eq!(app.create_as(&token_for(LOWER), &flow(id)).status, 201);
    }
    app.stop();
    SledEventLog::open(&app.data_dir(), false)
        .unwrap()
        .rename_tenant(LOWER, UPPER)
        .unwrap();
    assert_eq!(stored_events(&app.data_dir(), LOWER), 0);
    assert_eq!(stored_events(&app.data_dir(), UPPER), 2);
    app
}

#[test]
fn a_guid_stream_stored_in_upper_case_is_renamed_to_its_tenant_at_start() {
    let mut app = a_stream_stored_in_upper_case();
    app.start();
    let token = token_for(UPPER);
    assert_eq!(app.get_as(&token, "B2C_1_one").status, 200);
    assert_eq!(app.get_as(&token_for(LOWER), "B2C_1_two").status, 200);
    let events = app.request(
        "GET",
        &format!("/_emulator/tenants/{LOWER}/events"),
        &[],
        None,
    );
    assert_eq!(events.status, 200);
    assert_eq!(events.body.lines().count(), 2);
    app.stop();
    assert_eq!(stored_events(&app.data_dir(), UPPER), 0);
    assert_eq!(stored_events(&app.data_dir(), LOWER), 2);
}

#[test]
fn two_streams_of_one_guid_tenant_refuse_the_start_naming_both() {
    let app = a_stream_stored_in_upper_case();
    let record = crate::helpers::RawEvents::open(&app.data_dir(), UPPER).get(1);
    crate::helpers::RawEvents::open(&app.data_dir(), LOWER).insert(1, record);
    let Err(error) = userflows_emulator::app::BackgroundServer::start(&app.settings) else {
        panic!("the server started");
    };
    let message = error.to_string();
    assert!(
        message.contains(LOWER) && message.contains(UPPER),
        "{message}"
    );
    // Nothing was changed.
    assert_eq!(stored_events(&app.data_dir(), UPPER), 2);
    assert_eq!(stored_events(&app.data_dir(), LOWER), 1);
}

/// The admin row of [`TENANT`].
fn my_row(app: &TestApp) -> Value {
    let body = app.request("GET", "/_emulator/tenants", &[], None).json();
    body["value"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["tenantId"] == TENANT).cloned())
        .unwrap_or(Value::Null)
}

fn wait_until_parked(app: &TestApp) -> Value {
    for _ in 0..100 {
        let row = my_row(app);
        if row["actor"] == "parked" {
            return row;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the tenant was not parked within 5 s: {}", my_row(app));
}

fn metric(app: &TestApp, name: &str) -> String {
    let body = app.request("GET", "/_emulator/metrics", &[], None).body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn an_idle_tenant_is_parked_and_its_next_request_finds_every_flow_from_snapshot_and_log() {
    let app = spawn_app_with(|s| {
        s.tenant_idle = Some(Duration::from_millis(200));
        // A snapshot after 3 events: the woken tenant starts from it and replays the rest.
        s.snapshot_every = Some(3);
    });
    for id in ["a", "b", "c", "d", "e"] {
        assert_eq!(app.create(&flow(id)).status, 201);
    }
    assert_eq!(app.delete("B2C_1_b").status, 204);
    let row = wait_until_parked(&app);
    assert_eq!(
        (
            row["status"].as_str(),
            row["lastSeq"].as_u64(),
            row["flows"].as_u64()
        ),
        (Some("ready"), Some(6), Some(4)),
        "{row}"
    );
    assert_eq!(metric(&app, "userflows_tenant_actors"), "0");
    assert_eq!(metric(&app, "userflows_tenants"), "1");

    let ids = app.list_all("");
    assert_eq!(ids, ["B2C_1_a", "B2C_1_c", "B2C_1_d", "B2C_1_e"]);
    assert_eq!(metric(&app, "userflows_tenant_wakes_total"), "1");
    assert_eq!(my_row(&app)["actor"], "running");
    assert_eq!(app.create(&flow("a")).status, 409);
    assert_eq!(app.create(&flow("f")).status, 201);

    // Parked again, a write wakes it and goes on at the next seq.
    wait_until_parked(&app);
    assert_eq!(app.delete("B2C_1_a").status, 204);
    let events = app.request(
        "GET",
        &format!("/_emulator/tenants/{TENANT}/events"),
        &[],
        None,
    );
    assert_eq!(events.body.lines().count(), 8, "{}", events.body);
    assert_eq!(app.get("B2C_1_f").status, 200);
    assert_eq!(app.get("B2C_1_a").status, 404);
}
