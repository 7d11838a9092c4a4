//! The SDK examples run as a user runs them, against a real server on a real port: Microsoft's
//! msgraph-beta-sdk for Python (`examples/python/`) in a virtual environment, and its
//! JavaScript stack on Node (`examples/node/`). The Python environment is `.venv` at the
//! repository root (`python3 -m venv .venv && .venv/bin/pip install -r
//! examples/python/requirements.txt`), or the interpreter named by `USERFLOWS_PYTHON`; the
//! Node packages are `examples/node/node_modules` (`npm ci` there). Without them a test says
//! it was skipped, unless `USERFLOWS_REQUIRE_SDK=1` (set by CI), where a missing environment
//! is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use userflows_emulator::config::TlsSettings;
use userflows_emulator::http::AuthMode;

use crate::helpers::{spawn_app, spawn_app_with, token_for, TestApp};

/// The interpreter of the example's environment, if there is one.
fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("USERFLOWS_PYTHON")
        .map_or_else(|| root.join(".venv/bin/python"), PathBuf::from);
    let has_sdk = python.exists()
        && Command::new(&python)
            .args(["-c", "import msgraph_beta"])
            .status()
            .is_ok_and(|s| s.success());
    if has_sdk {
        return Some(python);
    }
    let why = format!(
        "no Python with msgraph-beta-sdk at {}: python3 -m venv .venv && \
         .venv/bin/pip install -r examples/python/requirements.txt",
        python.display()
    );
    skipped("the Python SDK example", &why)
}

/// The `node` that runs `examples/node/`, once its packages are installed.
fn node() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = std::env::var_os("USERFLOWS_NODE").map_or_else(|| "node".into(), PathBuf::from);
    let installed = root
        .join("examples/node/node_modules/@microsoft/microsoft-graph-client")
        .exists();
    let runs = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && runs {
        return Some(node);
    }
    let why = format!(
        "no Node.js with the example's packages ({} runs: {runs}, packages installed: \
         {installed}): cd examples/node && npm ci",
        node.display()
    );
    skipped("the Node example", &why)
}

/// Says that `example` was skipped, and why; a failure instead under `USERFLOWS_REQUIRE_SDK`.
fn skipped<T>(example: &str, why: &str) -> Option<T> {
    assert!(
        std::env::var_os("USERFLOWS_REQUIRE_SDK").is_none(),
        "USERFLOWS_REQUIRE_SDK is set but there is {why}"
    );
    eprintln!("SKIPPED {example}: {why}");
    None
}

/// Runs `examples/python/<name>` against `app` as `tenant`; its standard output, once it
/// succeeded.
fn run_example(python: &Path, name: &str, app: &TestApp, tenant: &str) -> String {
    let base_url = app.url("/beta");
    let token = token_for(tenant);
    let args = ["--base-url", &base_url, "--token", &token];
    run_example_with(python, name, &args, &[])
}

/// Runs `examples/python/<name>` with `args` and environment `env`; its standard output, once
/// it succeeded.
fn run_example_with(python: &Path, name: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/python")
        .join(name);
    let output = Command::new(python)
        .arg(example)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// A server with strict auth, one app (`CLIENT_ID:SECRET`) and an HTTPS listener: the server,
/// its HTTPS origin and the CA a client must trust.
fn spawn_https_app(app: &str) -> (TestApp, String, PathBuf) {
    let app = spawn_app_with(|s| {
        s.auth = AuthMode::Strict { jwt_secret: None };
        s.apps = vec![app.parse().unwrap()];
        s.tls = Some(TlsSettings {
            listen: "127.0.0.1:0".to_owned(),
            cert_and_key: None,
        });
    });
    let ca = app.data_dir().join("tls").join("ca.pem");
    let authority = app.tls_address.clone().unwrap();
    (app, authority, ca)
}

/// The types of `tenant`'s events, in order, read through the admin route.
fn event_types(app: &TestApp, tenant: &str) -> Vec<String> {
    let events = app.request(
        "GET",
        &format!("/_emulator/tenants/{tenant}/events"),
        &[],
        None,
    );
    assert_eq!(events.status, 200, "{}", events.body);
    events
        .body
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["event_type"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn the_python_sdk_quickstart_creates_gets_lists_and_deletes_through_the_stock_sdk() {
    let Some(python) = python() else { return };
    let app = spawn_app();
    let tenant = "sdk-example";
    let stdout = run_example(&python, "quickstart.py", &app, tenant);
    assert!(stdout.contains("created B2C_1_Quickstart"), "{stdout}");
    assert!(stdout.contains("deleted B2C_1_Quickstart"), "{stdout}");

    // What the SDK did is in the tenant's log: one create, one delete, and no flow left.
    assert_eq!(
        event_types(&app, tenant),
        ["UserFlowCreated", "UserFlowDeleted"]
    );
    let count = app.request(
        "GET",
        "/beta/identity/userFlows/$count",
        &[("Authorization", &format!("Bearer {}", token_for(tenant)))],
        None,
    );
    assert_eq!((count.status, count.body.as_str()), (200, "0"));
}

#[test]
fn the_python_sdk_filters_orders_selects_pages_and_batches_through_the_stock_sdk() {
    let Some(python) = python() else { return };
    let app = spawn_app();
    let stdout = run_example(&python, "queries_and_batch.py", &app, "sdk-queries");
    for step in [
        "filtered and ordered: B2C_1_SignIn7",
        "walked 12 flows in pages of 3",
        "batch answered [200, 201, 201, 409]",
        "deleted every flow in one batch",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    // Fourteen creates and fourteen deletes stored (the refused create left nothing), and no
    // flow left.
    let events = app.request("GET", "/_emulator/tenants/sdk-queries/events", &[], None);
    assert_eq!(events.status, 200, "{}", events.body);
    let created = events.body.matches("\"UserFlowCreated\"").count();
    let deleted = events.body.matches("\"UserFlowDeleted\"").count();
    assert_eq!((created, deleted), (14, 14), "{}", events.body);
    assert_eq!(app.count().body, "0");
}

#[test]
fn the_stock_credential_and_client_work_over_https_with_the_emulators_token_endpoint() {
    let Some(python) = python() else { return };
    let (app, authority, ca) = spawn_https_app("stock-app:stock-secret");
    let tenant = "0c0ffee0-0000-4000-8000-000000000001";
    let stdout = run_example_with(
        &python,
        "stock_credential.py",
        &[
            "--authority",
            &authority,
            "--tenant",
            tenant,
            "--client-id",
            "stock-app",
            "--client-secret",
            "stock-secret",
        ],
        &[("SSL_CERT_FILE", &ca), ("REQUESTS_CA_BUNDLE", &ca)],
    );
    assert!(stdout.contains("created B2C_1_Stock"), "{stdout}");
    assert!(stdout.contains("deleted B2C_1_Stock"), "{stdout}");
    // The SDK's writes went to the token's tenant: one create and one delete in its log.
    assert_eq!(
        event_types(&app, tenant),
        ["UserFlowCreated", "UserFlowDeleted"]
    );
}

#[test]
fn the_python_sdks_retry_handler_rides_out_injected_429s_503s_and_an_ambiguous_504() {
    let Some(python) = python() else { return };
    let app = spawn_app();
    let tenant = "sdk-resilience";
    let stdout = run_example(&python, "resilience.py", &app, tenant);
    assert!(stdout.contains("after two 429s"), "{stdout}");
    assert!(stdout.contains("after two 503s"), "{stdout}");
    assert!(stdout.contains("ambiguous create"), "{stdout}");
    // Four refused attempts stored nothing: one event per create, the ambiguous one included.
    assert_eq!(
        event_types(&app, tenant),
        ["UserFlowCreated", "UserFlowCreated", "UserFlowCreated"]
    );
    // The journal chains each create's attempts (the SDK sends no client-request-id, so by
    // body digest and Retry-Attempt): two retries each after its Retry-After, and the
    // ambiguous 504 whose retry met 409.
    let summary = app
        .request(
            "GET",
            &format!("/_emulator/requests/summary?tenant={tenant}"),
            &[],
            None,
        )
        .json();
    let creates: Vec<_> = summary["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    let statuses: Vec<_> = creates.iter().map(|r| r["statuses"].clone()).collect();
    assert_eq!(
        statuses,
        [
            json!([429, 429, 201]),
            json!([503, 503, 201]),
            json!([504, 409])
        ]
    );
    assert_eq!(creates[2]["retryAfterMs"], json!([1000, null]));
    assert!(creates.iter().all(|r| r["honoured"] == true), "{summary}");
    let rules = app.request("GET", "/_emulator/faults", &[], None).json();
    assert_eq!(rules["rules"], json!([]), "the example clears its rules");
}

#[test]
fn the_javascript_client_and_credential_work_over_https_and_retry_injected_429s() {
    let Some(node) = node() else { return };
    let (app, authority, ca) = spawn_https_app("node-app:node-secret");
    // An upper-case GUID: the emulator files it lower-cased, and so must the example.
    let tenant = "0C0FFEE0-0000-4000-8000-0000000000AB";
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node/stock_client.js");
    let output = Command::new(node)
        .arg(example)
        .args(["--authority", &authority, "--tenant", tenant])
        .args(["--client-id", "node-app", "--client-secret", "node-secret"])
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stock_client.js failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "batch answered [201, 201]",
        "selected id,userFlowType",
        "deleted 3 flows",
        "after two 429s; journal [429, 429, 201]",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    // Four creates (one of them twice refused, storing nothing) and four deletes, in the
    // token's tenant.
    let tenant = tenant.to_ascii_lowercase();
    let types = event_types(&app, &tenant);
    let created = types.iter().filter(|t| *t == "UserFlowCreated").count();
    let deleted = types.iter().filter(|t| *t == "UserFlowDeleted").count();
    assert_eq!((created, deleted), (4, 4), "{types:?}");
    // Strict auth took the credential's token (the emulator's own signature), and the journal
    // shows the retry handler's attempts of the retried create under the client-request-id
    // the example gave it: Retry-Attempt counting up, the app from the token.
    let journal = app
        .request(
            "GET",
            &format!("/_emulator/requests?tenant={tenant}&operation=create"),
            &[],
            None,
        )
        .json();
    let retried: Vec<_> = journal["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["clientRequestId"]
                .as_str()
                .is_some_and(|id| id.starts_with("retried-"))
        })
        .collect();
    let field = |name: &str| retried.iter().map(|a| a[name].clone()).collect::<Vec<_>>();
    assert_eq!(field("status"), [429, 429, 201]);
    assert_eq!(field("retryAttempt"), [json!(null), json!(1), json!(2)]);
    assert!(retried.iter().all(|a| a["app"] == "node-app"), "{journal}");
    let ids = field("clientRequestId");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}
