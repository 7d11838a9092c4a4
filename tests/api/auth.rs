//! Tokens, tenants and isolation between them.

use serde_json::json;
use userflows_emulator::http::auth::PERSONAL_ACCOUNT_TENANT;
use userflows_emulator::http::AuthMode;
use userflows_emulator::tenant::TenantId;

use crate::helpers::{flow, payload, spawn_app, spawn_app_with, token_for, OTHER_TENANT};

const WWW_AUTHENTICATE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;

#[test]
fn a_missing_token_is_401_access_token_is_empty() {
    let app = spawn_app();
    for path in [
        "/beta/identity/userFlows",
        "/beta/identity/userFlows/$count",
        "/beta/anything",
    ] {
        let r = app.request("GET", path, &[("Authorization", "")], None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.error_code(), "InvalidAuthenticationToken");
        assert_eq!(r.message(), "Access token is empty.");
        assert_eq!(r.header("www-authenticate"), Some(WWW_AUTHENTICATE));
    }
}

#[test]
fn bad_tokens_are_401_validation_failure() {
    let app = spawn_app();
    let no_tid =
        userflows_emulator::http::auth::mint(&userflows_emulator::http::auth::Claims::default())
            .unwrap();
    for auth in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer not.a.jwt!".to_owned(),
        "Bearer onlyonepart".to_owned(),
        format!("Bearer {no_tid}"),
    ] {
        let r = app.request(
            "GET",
            "/beta/identity/userFlows",
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(r.status, 401, "{auth}");
        assert_eq!(r.message(), "Access token validation failure.");
        assert!(r.header("www-authenticate").is_some());
    }
}

#[test]
fn personal_account_tokens_are_403() {
    let app = spawn_app();
    let r = app.create_as(&token_for(PERSONAL_ACCOUNT_TENANT), &flow("x"));
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "Authorization_RequestDenied");
}

#[test]
fn tenants_never_see_each_other() {
    let app = spawn_app();
    let other = token_for(OTHER_TENANT);
    assert_eq!(app.create(&flow("Shared")).status, 201);
    assert_eq!(app.create(&flow("MineOnly")).status, 201);
    // The same id is free in another tenant.
    assert_eq!(app.create_as(&other, &flow("Shared")).status, 201);

    assert_eq!(app.get_as(&other, "B2C_1_MineOnly").status, 404);
    let bearer = format!("Bearer {other}");
    let auth = [("Authorization", bearer.as_str())];
    let list = app
        .request("GET", "/beta/identity/userFlows?$count=true", &auth, None)
        .json();
    assert_eq!(list["@odata.count"], 1);
    assert_eq!(
        list["value"],
        json!([{"id": "B2C_1_Shared", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1}])
    );
    assert_eq!(
        app.request("GET", "/beta/identity/userFlows/$count", &auth, None)
            .body,
        "1"
    );
    assert_eq!(
        app.request(
            "DELETE",
            "/beta/identity/userFlows/B2C_1_MineOnly",
            &auth,
            None
        )
        .status,
        404
    );
    assert_eq!(
        app.request(
            "DELETE",
            "/beta/identity/userFlows/B2C_1_Shared",
            &auth,
            None
        )
        .status,
        204
    );

    assert_eq!(
        app.get("B2C_1_Shared").status,
        200,
        "the first tenant's flow is untouched"
    );
    assert_eq!(app.count().body, "2");
}

#[test]
fn a_tenant_that_never_wrote_reads_as_empty() {
    let app = spawn_app();
    let stranger = token_for("never-wrote");
    let bearer = format!("Bearer {stranger}");
    let r = app.request(
        "GET",
        "/beta/identity/userFlows",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"], json!([]));
}

#[test]
fn none_mode_needs_no_token_and_uses_the_default_tenant() {
    let mut app = spawn_app_with(|s| {
        s.auth = AuthMode::None {
            default_tenant: TenantId::parse("the-default").unwrap(),
        };
    });
    let r = app.request(
        "POST",
        "/beta/identity/userFlows",
        &[("Authorization", ""), ("Content-Type", "application/json")],
        Some(&flow("open").to_string()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    // Whatever token is sent, it is the same tenant.
    app.token = token_for(OTHER_TENANT);
    assert_eq!(app.get("B2C_1_open").status, 200);
    app.stop();
    assert_eq!(
        crate::helpers::stored_events(&app.data_dir(), "the-default"),
        1
    );
}

#[test]
fn a_guid_tid_names_one_tenant_whatever_its_letter_case() {
    let app = spawn_app();
    let lower = token_for("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let upper = token_for("72F988BF-86F1-41AF-91AB-2D7CD011DB47");
    assert_eq!(app.create_as(&upper, &flow("Cased")).status, 201);
    assert_eq!(app.get_as(&lower, "B2C_1_Cased").status, 200);
    let listed = app.request("GET", "/_emulator/tenants", &[], None).json();
    assert_eq!(
        listed["value"][0]["tenantId"],
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    );
}

#[test]
fn the_token_command_writes_a_guid_tenant_lower_cased() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_userflows-emulator"))
        .args(["token", "--tenant", "72F988BF-86F1-41AF-91AB-2D7CD011DB47"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let claims = payload(token.trim());
    assert_eq!(claims["tid"], "72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_eq!(
        claims["iss"],
        "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
    );
}
