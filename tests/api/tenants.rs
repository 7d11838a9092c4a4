//! A tenant costs what it holds: requests that change nothing leave no tenant behind, in
//! memory (no actor, not listed) or on disk (no stream after a restart).

use crate::helpers::{flow, spawn_app, stored_events, token_for};

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
