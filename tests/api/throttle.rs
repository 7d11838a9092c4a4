//! Throttling: per-tenant and per-app buckets, `429 TooManyRequests` with an exact whole-second
//! `Retry-After`, nothing changed by a throttled request, what counts and what never does, and
//! the limits read and changed through `/_emulator/throttle`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use userflows_emulator::chaos::Limits;

use crate::helpers::{create_items, flow, item_statuses, spawn_app_with, token_for, Resp, TestApp};

/// An unsigned token of `tenant` naming `app` as its `appid`.
fn app_token(tenant: &str, app: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none"})),
        part(&json!({"tid": tenant, "appid": app, "exp": 4_000_000_000.5}))
    )
}

fn throttled(app: TestApp, limits: Limits) -> TestApp {
    let mut app = app;
    app.settings.throttle = limits;
    app.restart();
    app
}

fn retry_after(r: &Resp) -> u64 {
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.error_code(), "TooManyRequests");
    assert_eq!(r.message(), "Please retry again later.");
    r.header("Retry-After").unwrap().parse().unwrap()
}

#[test]
fn a_tenant_over_its_limit_gets_429_and_its_throttled_write_stores_nothing() {
    let app = spawn_app_with(|s| {
        s.throttle = Limits {
            tenant_rpm: Some(4),
            app_rpm: None,
        };
    });
    // Every authenticated request counts, whatever its answer: a create, a 404, a 400.
    assert_eq!(app.create(&flow("kept")).status, 201);
    assert_eq!(app.get("B2C_1_missing").status, 404);
    assert_eq!(app.list("$bogus=1").status, 400);
    // A 401 does not count.
    let none = app.request(
        "GET",
        "/beta/identity/userFlows",
        &[("Authorization", "Bearer x")],
        None,
    );
    assert_eq!(none.status, 401);
    assert_eq!(app.list("").status, 200);
    // The bucket (4 a minute: one every 15 s) is empty.
    let refused = app.create(&flow("refused"));
    let wait = retry_after(&refused);
    assert!((14..=15).contains(&wait), "Retry-After {wait}");
    assert!(refused.header("request-id").is_some());
    // Another tenant has its own bucket.
    let other = token_for("other-tenant");
    assert_eq!(app.list_as(&other).status, 200);
    // The throttled create changed nothing: lifted limits show only the first flow.
    let set = app.request(
        "PUT",
        "/_emulator/throttle",
        &[("Content-Type", "application/json")],
        Some(r#"{"tenantRpm": null}"#),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let ids: Vec<String> = app.list("").json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["B2C_1_kept"]);
}

#[test]
fn retry_after_is_the_real_wait_until_admission() {
    let app = spawn_app_with(|s| {
        s.throttle = Limits {
            tenant_rpm: Some(60),
            app_rpm: None,
        };
    });
    for _ in 0..60 {
        assert_eq!(app.list("").status, 200);
    }
    let wait = retry_after(&app.list(""));
    assert_eq!(wait, 1, "one request refills every second");
    // A refused request took nothing: waiting as told is enough.
    std::thread::sleep(std::time::Duration::from_secs(wait));
    assert_eq!(app.list("").status, 200);
}

#[test]
fn each_app_has_its_own_bucket_within_its_tenant() {
    let app = spawn_app_with(|s| {
        s.throttle = Limits {
            tenant_rpm: Some(100),
            app_rpm: Some(2),
        };
    });
    let (a, b) = (app_token("contoso", "app-a"), app_token("contoso", "app-b"));
    assert_eq!(app.list_as(&a).status, 200);
    assert_eq!(app.list_as(&a).status, 200);
    let wait = retry_after(&app.list_as(&a));
    assert!((29..=30).contains(&wait), "Retry-After {wait}");
    assert_eq!(app.list_as(&b).status, 200);
    // The same app in another tenant is another bucket.
    assert_eq!(app.list_as(&app_token("fabrikam", "app-a")).status, 200);
    // A token naming no app meets the tenant limit only.
    let anonymous = token_for("contoso");
    for _ in 0..5 {
        assert_eq!(app.list_as(&anonymous).status, 200);
    }
}

#[test]
fn batch_items_count_one_each_and_the_envelope_does_not() {
    let app = spawn_app_with(|s| {
        s.throttle = Limits {
            tenant_rpm: Some(3),
            app_rpm: None,
        };
    });
    let r = app.batch(&create_items(4, "b"));
    let statuses = item_statuses(&r);
    assert_eq!(statuses, [201, 201, 201, 429]);
    let last = &r.json()["responses"][3];
    assert!(
        last["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(last["body"]["error"]["code"], "TooManyRequests");
}

#[test]
fn admin_and_identity_routes_are_never_throttled() {
    let app = spawn_app_with(|s| {
        s.throttle = Limits {
            tenant_rpm: Some(1),
            app_rpm: Some(1),
        };
    });
    assert_eq!(app.list("").status, 200);
    assert_eq!(app.list("").status, 429);
    for _ in 0..5 {
        assert_eq!(
            app.request("GET", "/_emulator/throttle", &[], None).status,
            200
        );
        assert_eq!(
            app.request("GET", "/_emulator/ready", &[], None).status,
            200
        );
        let token = app.request(
            "POST",
            "/contoso/oauth2/v2.0/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some("grant_type=client_credentials&client_id=a&client_secret=s&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        );
        assert_eq!(token.status, 200, "{}", token.body);
        let keys = app.request("GET", "/contoso/discovery/v2.0/keys", &[], None);
        assert_eq!(keys.status, 200);
    }
}

#[test]
fn limits_are_read_and_changed_at_run_time_and_bad_changes_are_refused_whole() {
    let app = throttled(
        spawn_app_with(|_| {}),
        Limits {
            tenant_rpm: Some(300),
            app_rpm: Some(200),
        },
    );
    let get = || app.request("GET", "/_emulator/throttle", &[], None).json();
    assert_eq!(get(), json!({"tenantRpm": 300, "appRpm": 200}));
    let put = |body: &str| {
        app.request(
            "PUT",
            "/_emulator/throttle",
            &[("Content-Type", "application/json")],
            Some(body),
        )
    };
    for bad in [
        r#"{"tenantRpm": 0}"#,
        r#"{"tenantRpm": 2.5}"#,
        r#"{"rpm": 1}"#,
        "nope",
    ] {
        let r = put(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(
            r.message().starts_with("Invalid throttle limits"),
            "{}",
            r.message()
        );
    }
    assert_eq!(get(), json!({"tenantRpm": 300, "appRpm": 200}));
    // A missing key is unchanged.
    assert_eq!(
        put(r#"{"tenantRpm": 1}"#).json(),
        json!({"tenantRpm": 1, "appRpm": 200})
    );
    assert_eq!(app.list("").status, 200);
    assert_eq!(app.list("").status, 429);
    // A change starts every bucket full.
    assert_eq!(put(r#"{"tenantRpm": 1}"#).status, 200);
    assert_eq!(app.list("").status, 200);
    assert_eq!(put(r#"{"tenantRpm": null, "appRpm": null}"#).status, 200);
    for _ in 0..10 {
        assert_eq!(app.list("").status, 200);
    }
}
