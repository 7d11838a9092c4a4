//! Strict auth, the local identity provider (discovery, JWKS, the token endpoint) and the HTTPS
//! listener with the CA the emulator makes, against a real server.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};
use userflows_emulator::config::TlsSettings;
use userflows_emulator::http::AuthMode;
use userflows_emulator::identity::keys::sign_hs256;
use userflows_emulator::identity::SigningKey;

use crate::helpers::{flow, payload, spawn_app_with, Resp, TestApp, TENANT};

const SECRET: &str = "s3cret-for-tests";
const READ_WRITE: &str = "IdentityUserFlow.ReadWrite.All";
const READ: &str = "IdentityUserFlow.Read.All";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid application token for [`TENANT`], with `extra` laid over them (a `null`
/// removes a claim).
fn claims(extra: &Value) -> Value {
    let now = now();
    let mut claims = json!({
        "aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{TENANT}/"),
        "tid": TENANT, "iat": now, "nbf": now, "exp": now + 3600, "roles": [READ_WRITE],
    });
    for (name, value) in extra.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn hs256(extra: &Value) -> String {
    sign_hs256(SECRET.as_bytes(), &claims(extra)).unwrap()
}

fn strict_app() -> TestApp {
    spawn_app_with(|s| {
        s.auth = AuthMode::Strict {
            jwt_secret: Some(SECRET.to_owned()),
        };
    })
}

/// The emulator's own signing key, as kept in its data directory.
fn emulator_key(app: &TestApp) -> SigningKey {
    SigningKey::load(&app.data_dir().join("tls").join("signing-key.pem")).unwrap()
}

/// `POST /{tenant}/oauth2/v2.0/token` with a form body (and any headers).
fn token_request(
    app: &TestApp,
    tenant: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Resp {
    let body = serde_urlencoded::to_string(form).unwrap();
    let mut all = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", ""),
    ];
    all.extend_from_slice(headers);
    app.request(
        "POST",
        &format!("/{tenant}/oauth2/v2.0/token"),
        &all,
        Some(&body),
    )
}

const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";

fn client_credentials<'a>(id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", GRAPH_DEFAULT),
    ]
}

/// An identity platform error: its status and `error`, asserting the whole shape.
fn identity_error(r: &Resp) -> (u16, String, u64) {
    let body = r.json();
    let description = body["error_description"].as_str().unwrap();
    let code = body["error_codes"][0].as_u64().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{body}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(
            body[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {body}"
        );
    }
    (r.status, body["error"].as_str().unwrap().to_owned(), code)
}

#[test]
fn strict_mode_serves_tokens_signed_with_the_secret_or_the_emulators_key() {
    let app = strict_app();
    let hs = hs256(&json!({}));
    assert_eq!(app.create_as(&hs, &flow("B2C_1_hs")).status, 201);
    let rs = emulator_key(&app).sign(&claims(&json!({}))).unwrap();
    assert_eq!(app.get_as(&rs, "B2C_1_hs").status, 200);
    // Python's `time.time() + 3600` is a float.
    let float_exp = hs256(&json!({"exp": now() as f64 + 3600.25, "nbf": now() as f64 - 0.5}));
    assert_eq!(app.list_as(&float_exp).status, 200);
    // Delegated form: scp, space-separated.
    let delegated = hs256(&json!({"roles": null, "scp": format!("openid {READ_WRITE}")}));
    assert_eq!(app.create_as(&delegated, &flow("B2C_1_scp")).status, 201);
}

#[test]
fn strict_mode_refuses_each_broken_rule_with_its_401() {
    let app = strict_app();
    let key = emulator_key(&app);
    let t = now().cast_signed();
    let mut tampered = key.sign(&claims(&json!({}))).unwrap();
    // Another tenant's payload under the original signature.
    let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(claims(&json!({"tid": "someone-else"})).to_string());
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{other}.{}", parts[0], parts[2]);
    let cases = [
        (hs256(&json!({"exp": t - 120})), "Lifetime validation failed, the token is expired."),
        (hs256(&json!({"nbf": t + 120})), "Lifetime validation failed, the token is not yet valid."),
        (hs256(&json!({"exp": null})), "Lifetime validation failed, the token has no expiry."),
        (hs256(&json!({"aud": "api://another-app"})), "Access token validation failure. Invalid audience."),
        (sign_hs256(b"not-the-secret", &claims(&json!({}))).unwrap(), "Access token validation failure. Invalid signature."),
        (SigningKey::generate().unwrap().0.sign(&claims(&json!({}))).unwrap(), "Access token validation failure. Invalid signature."),
        (tampered, "Access token validation failure. Invalid signature."),
        (crate::helpers::token_for(TENANT), "Access token validation failure. The token is not signed with an accepted algorithm (HS256 or RS256)."),
    ];
    for (token, message) in cases {
        for _ in 0..2 {
            // Twice: a refused token is never remembered as accepted.
            let r = app.list_as(&token);
            assert_eq!(r.status, 401, "{message}: {r:?}");
            assert_eq!(r.error_code(), "InvalidAuthenticationToken");
            assert_eq!(r.message(), message);
            assert!(r.header("www-authenticate").is_some());
        }
    }
    // Within the 60 s skew is still valid.
    assert_eq!(app.list_as(&hs256(&json!({"exp": t - 30}))).status, 200);
    assert_eq!(app.count_as_status(&hs256(&json!({"nbf": t + 30}))), 200);
}

impl TestApp {
    fn count_as_status(&self, token: &str) -> u16 {
        let bearer = format!("Bearer {token}");
        self.request(
            "GET",
            "/beta/identity/userFlows/$count",
            &[("Authorization", &bearer)],
            None,
        )
        .status
    }
}

#[test]
fn permissions_decide_reads_and_writes_with_403() {
    let app = strict_app();
    let writer = hs256(&json!({}));
    assert_eq!(app.create_as(&writer, &flow("B2C_1_kept")).status, 201);
    let readers = [
        hs256(&json!({"roles": [READ]})),
        hs256(&json!({"roles": null, "scp": READ})),
    ];
    for reader in &readers {
        assert_eq!(app.list_as(reader).status, 200);
        assert_eq!(app.get_as(reader, "B2C_1_kept").status, 200);
        let r = app.create_as(reader, &flow("B2C_1_refused"));
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.error_code(), "Authorization_RequestDenied");
        assert_eq!(
            r.message(),
            "Insufficient privileges to complete the operation."
        );
        let bearer = format!("Bearer {reader}");
        let r = app.request(
            "DELETE",
            "/beta/identity/userFlows/B2C_1_kept",
            &[("Authorization", &bearer)],
            None,
        );
        assert_eq!(r.status, 403);
    }
    // Wrong JSON types, or no permission at all: 403 for reads too.
    for token in [
        hs256(&json!({"roles": READ_WRITE})),
        hs256(&json!({"roles": null, "scp": [READ_WRITE]})),
        hs256(&json!({"roles": ["User.Read.All"]})),
        hs256(&json!({"roles": null})),
    ] {
        let r = app.list_as(&token);
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.error_code(), "Authorization_RequestDenied");
    }
    assert_eq!(
        app.get_as(&writer, "B2C_1_kept").status,
        200,
        "nothing was deleted"
    );
    assert_eq!(
        app.get_as(&writer, "B2C_1_refused").status,
        404,
        "nothing was created"
    );
    // The journal files each 403 under its token's tenant and app, with its operation.
    let journal = app.request(
        "GET",
        &format!("/_emulator/requests?tenant={TENANT}&status=403"),
        &[],
        None,
    );
    let refused = journal.json()["value"].as_array().unwrap().clone();
    assert_eq!(refused.len(), 8, "{}", journal.body);
    let operations: Vec<&str> = refused
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        ["create", "delete", "create", "delete", "list", "list", "list", "list"]
    );
    assert!(refused.iter().all(|e| e["tenant"] == TENANT), "{refused:?}");
}

#[test]
fn a_batch_checks_each_items_permission() {
    let app = strict_app();
    let reader = format!("Bearer {}", hs256(&json!({"roles": [READ]})));
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/identity/userFlows",
         "headers": {"Content-Type": "application/json"}, "body": flow("B2C_1_batch")},
        {"id": "2", "method": "GET", "url": "/identity/userFlows"},
    ]});
    let r = app.request(
        "POST",
        "/beta/$batch",
        &[
            ("Authorization", &reader),
            ("Content-Type", "application/json"),
        ],
        Some(&batch.to_string()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let responses = r.json()["responses"].as_array().unwrap().clone();
    let status = |id: &str| responses.iter().find(|x| x["id"] == id).unwrap()["status"].as_u64();
    assert_eq!(status("1"), Some(403));
    assert_eq!(status("2"), Some(200));
    let r = app.request(
        "POST",
        "/beta/$batch",
        &[
            ("Authorization", "Bearer x.y.z"),
            ("Content-Type", "application/json"),
        ],
        Some(&batch.to_string()),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn the_token_endpoint_issues_graph_shaped_app_tokens_that_strict_mode_takes() {
    let app = strict_app();
    let r = token_request(
        &app,
        TENANT,
        &client_credentials("any-app", "any-secret"),
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store, no-cache"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap();
    let claims = payload(token);
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["appid"], "any-app");
    assert_eq!(claims["roles"], json!([READ_WRITE]));
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["oid"], claims["sub"]);
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(exp - claims["iat"].as_u64().unwrap(), 3599);
    assert!(claims["nbf"].as_u64().is_some());
    assert_eq!(app.create_as(token, &flow("B2C_1_issued")).status, 201);

    // HTTP Basic client authentication, and the SDK's scope without a port.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("basic-app:pw")
    );
    let origin_scope = format!("{}/.default", app.address.rsplit_once(':').unwrap().0);
    let r = token_request(
        &app,
        "contoso",
        &[
            ("grant_type", "client_credentials"),
            ("scope", &origin_scope),
            ("client_info", "1"),
        ],
        &[("Authorization", &basic)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        payload(r.json()["access_token"].as_str().unwrap())["appid"],
        "basic-app"
    );

    // A GUID tenant in another letter case is the same tenant.
    let upper = TENANT.to_ascii_uppercase().replace('1', "A");
    let r = token_request(&app, &upper, &client_credentials("a", "b"), &[]);
    assert_eq!(
        payload(r.json()["access_token"].as_str().unwrap())["tid"],
        upper.to_ascii_lowercase()
    );
}

#[test]
fn registered_apps_get_their_roles_and_others_are_refused() {
    let app = spawn_app_with(|s| {
        s.auth = AuthMode::Strict { jwt_secret: None };
        s.apps = vec![
            "writer:w-secret".parse().unwrap(),
            format!("reader:r-secret:{READ}").parse().unwrap(),
        ];
    });
    let issue = |id, secret| token_request(&app, TENANT, &client_credentials(id, secret), &[]);
    let writer = issue("writer", "w-secret").json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = issue("reader", "r-secret").json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.create_as(&writer, &flow("B2C_1_w")).status, 201);
    assert_eq!(app.get_as(&reader, "B2C_1_w").status, 200);
    assert_eq!(app.create_as(&reader, &flow("B2C_1_r")).status, 403);

    let r = issue("writer", "wrong");
    assert_eq!(
        identity_error(&r),
        (401, "invalid_client".to_owned(), 7_000_215)
    );
    let r = issue("stranger", "w-secret");
    assert_eq!(
        identity_error(&r),
        (400, "unauthorized_client".to_owned(), 700_016)
    );
}

/// A token request's tenant and form, and the status, error and AADSTS code it gets.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, (u16, &'a str, u64));

#[test]
fn token_endpoint_errors_have_the_identity_platforms_shape() {
    let app = strict_app();
    let ok = client_credentials("app", "secret");
    let without = |name: &str| {
        ok.iter()
            .copied()
            .filter(|(k, _)| *k != name)
            .collect::<Vec<_>>()
    };
    let with = |name: &'static str, value: &'static str| {
        let mut form = without(name);
        form.push((name, value));
        form
    };
    let cases: Vec<Case> = vec![
        (
            TENANT,
            without("grant_type"),
            (400, "invalid_request", 900_144),
        ),
        (
            TENANT,
            with("grant_type", "password"),
            (400, "invalid_request", 70_003),
        ),
        (
            TENANT,
            without("client_id"),
            (400, "invalid_request", 900_144),
        ),
        (TENANT, without("scope"), (400, "invalid_request", 900_144)),
        (
            TENANT,
            with("scope", "User.Read"),
            (400, "invalid_scope", 1_002_012),
        ),
        (
            TENANT,
            with("scope", "api://other/.default"),
            (400, "invalid_scope", 1_002_012),
        ),
        (
            TENANT,
            without("client_secret"),
            (401, "invalid_client", 7_000_218),
        ),
        ("common", ok.clone(), (400, "invalid_request", 700_011)),
        (
            "organizations",
            ok.clone(),
            (400, "invalid_request", 700_011),
        ),
        (
            "9188040D-6C67-4C5B-B112-36A304B66DAD",
            ok.clone(),
            (400, "invalid_request", 700_011),
        ),
        (
            "not%20a%20tenant",
            ok.clone(),
            (400, "invalid_request", 900_023),
        ),
    ];
    let count = cases.len();
    for (tenant, form, (status, error, code)) in cases {
        let r = token_request(&app, tenant, &form, &[("client-request-id", "corr-1")]);
        assert_eq!(
            identity_error(&r),
            (status, error.to_owned(), code),
            "{tenant} {form:?}: {r:?}"
        );
        assert_eq!(r.json()["correlation_id"], "corr-1");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // Every refused token request is journalled as one, whether or not its path names a tenant.
    let journal = app.request("GET", "/_emulator/requests?operation=token", &[], None);
    let tokens = journal.json()["value"].as_array().unwrap().len();
    assert_eq!(tokens, count, "{}", journal.body);
    let r = app.request("GET", &format!("/{TENANT}/oauth2/v2.0/token"), &[], None);
    assert_eq!(identity_error(&r).0, 400);
    let r = app.request(
        "POST",
        &format!("/{TENANT}/oauth2/v2.0/token"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", ""),
        ],
        Some("%%%"),
    );
    assert_eq!(identity_error(&r).1, "invalid_request");
}

#[test]
fn identity_routes_answer_their_method_only_and_near_misses_are_graph_paths() {
    let app = strict_app();
    for (method, path) in [
        ("GET", format!("/{TENANT}/oauth2/v2.0/token")),
        ("POST", format!("/{TENANT}/discovery/v2.0/keys")),
        (
            "DELETE",
            format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
        ),
    ] {
        let r = app.request(method, &path, &[], None);
        let expected = if path.ends_with("/token") {
            "POST"
        } else {
            "GET"
        };
        assert_eq!(identity_error(&r), (400, "invalid_request".into(), 900_561));
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains(&format!(
                    "only accepts {expected} requests. Received a {method}"
                )),
            "{method} {path}: {}",
            r.body
        );
    }
    // Not identity routes: an empty tenant, a longer path, a missing part. Graph answers them
    // (here its 401, as the test's token is not strict mode's), in Graph's envelope.
    for path in [
        "//oauth2/v2.0/token".to_owned(),
        format!("/{TENANT}/oauth2/v2.0/token/more"),
        format!("/{TENANT}/v2.0/token"),
        "/oauth2/v2.0/token".to_owned(),
    ] {
        let r = app.request("GET", &path, &[], None);
        let body = r.json();
        assert!(body["error"]["code"].is_string(), "{path}: {}", r.body);
        assert!(
            body.get("error_description").is_none(),
            "{path}: {}",
            r.body
        );
    }
}

#[test]
fn discovery_names_the_endpoints_on_the_url_used_and_tokens_verify_against_the_jwks() {
    let app = strict_app();
    let r = app.request(
        "GET",
        "/contoso/v2.0/.well-known/openid-configuration",
        &[("Authorization", "")],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let config = r.json();
    let base = &app.address;
    assert_eq!(config["issuer"], format!("{base}/contoso/v2.0"));
    assert_eq!(
        config["token_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/token")
    );
    assert_eq!(
        config["authorization_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/authorize")
    );
    // It exists, and says what to use instead: there is no user to sign in.
    for method in ["GET", "POST"] {
        let r = app.request(
            method,
            "/contoso/oauth2/v2.0/authorize?response_type=code&client_id=a",
            &[],
            None,
        );
        assert_eq!(r.status, 400, "{method}: {r:?}");
        assert_eq!(r.json()["error"], "unsupported_response_type");
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("grant_type=client_credentials"),
            "{r:?}"
        );
    }
    let jwks_uri = config["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{base}/contoso/discovery/v2.0/keys"));
    let common = app.request(
        "GET",
        "/common/v2.0/.well-known/openid-configuration",
        &[],
        None,
    );
    assert_eq!(common.json()["issuer"], format!("{base}/{{tenantid}}/v2.0"));

    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(
        &app.request(
            "GET",
            jwks_uri.strip_prefix(base.as_str()).unwrap(),
            &[],
            None,
        )
        .body,
    )
    .unwrap();
    let token = token_request(&app, "contoso", &client_credentials("a", "b"), &[]).json()
        ["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the token's kid is in the JWKS");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    let verified = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(verified.claims["tid"], "contoso");
}

#[test]
fn the_signing_key_is_kept_across_restarts() {
    let mut app = strict_app();
    let token = token_request(&app, TENANT, &client_credentials("a", "b"), &[]).json()
        ["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = app.request("GET", "/x/discovery/v2.0/keys", &[], None).body;
    app.restart();
    assert_eq!(
        app.request("GET", "/x/discovery/v2.0/keys", &[], None).body,
        jwks
    );
    assert_eq!(
        app.list_as(&token).status,
        200,
        "a token from before the restart"
    );
}

/// A client that trusts `ca` (PEM) only.
fn https_agent(ca: &[u8]) -> ureq::Agent {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .build()
}

fn tls_app() -> TestApp {
    spawn_app_with(|s| {
        s.tls = Some(TlsSettings {
            listen: "127.0.0.1:0".to_owned(),
            cert_and_key: None,
        });
    })
}

#[test]
fn the_https_listener_serves_graph_to_a_client_that_trusts_the_generated_ca() {
    let mut app = tls_app();
    let tls_dir = app.data_dir().join("tls");
    let ca = std::fs::read(tls_dir.join("ca.pem")).unwrap();
    let server_cert = std::fs::read(tls_dir.join("server.pem")).unwrap();
    let agent = https_agent(&ca);
    let https = app.tls_address.clone().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let base = https.replace("127.0.0.1", host);
        let id = format!("B2C_1_{}", host.replace('.', "_"));
        let r = agent
            .post(&format!("{base}/beta/identity/userFlows"))
            .set("Authorization", &format!("Bearer {}", app.token))
            .send_json(flow(&id))
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(
            r.header("location"),
            Some(format!("{base}/beta/identity/userFlows/{id}").as_str()),
            "links name the scheme the client used"
        );
        let body: Value = r.into_json().unwrap();
        assert_eq!(
            body["@odata.context"],
            format!("{base}/beta/$metadata#identity/userFlows/$entity")
        );
    }
    // Discovery over HTTPS names HTTPS endpoints.
    let config: Value = agent
        .get(&format!(
            "{https}/contoso/v2.0/.well-known/openid-configuration"
        ))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        config["token_endpoint"],
        format!("{https}/contoso/oauth2/v2.0/token")
    );
    // A client that does not trust the CA is refused at the handshake.
    let untrusting = ureq::AgentBuilder::new().build();
    assert!(matches!(
        untrusting.get(&format!("{https}/_emulator/health")).call(),
        Err(ureq::Error::Transport(_))
    ));
    // The plain listener still answers beside it.
    assert_eq!(app.get("B2C_1_localhost").status, 200);

    app.restart();
    assert_eq!(
        std::fs::read(tls_dir.join("ca.pem")).unwrap(),
        ca,
        "the CA is kept"
    );
    assert_eq!(
        std::fs::read(tls_dir.join("server.pem")).unwrap(),
        server_cert
    );
    let https = app.tls_address.clone().unwrap();
    let r = agent
        .get(&format!("{https}/beta/identity/userFlows/B2C_1_127_0_0_1"))
        .set("Authorization", &format!("Bearer {}", app.token))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200, "the old trust still works after a restart");
}

#[test]
fn a_given_certificate_is_served_instead() {
    // Material made by one server, given to another by path.
    let first = tls_app();
    let tls_dir = first.data_dir().join("tls");
    let ca = std::fs::read(tls_dir.join("ca.pem")).unwrap();
    let given = spawn_app_with(|s| {
        s.tls = Some(TlsSettings {
            listen: "127.0.0.1:0".to_owned(),
            cert_and_key: Some((tls_dir.join("server.pem"), tls_dir.join("server-key.pem"))),
        });
    });
    assert!(
        !given.data_dir().join("tls").join("ca.pem").exists(),
        "nothing generated"
    );
    let r = https_agent(&ca)
        .get(&format!(
            "{}/_emulator/health",
            given.tls_address.as_ref().unwrap()
        ))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn plain_http_sent_to_the_https_port_is_refused_and_serving_goes_on() {
    let app = tls_app();
    let https = app.tls_address.clone().unwrap();
    let address = https.strip_prefix("https://").unwrap();
    // Plain HTTP sent to the HTTPS port: refused, and the server keeps serving.
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).unwrap();
    // A plain HTTP answer the client can read, in the Graph envelope, naming the HTTPS URL.
    let answer = String::from_utf8(buf).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(head.contains("\r\nrequest-id: "), "{answer}");
    assert!(head.contains("\r\nconnection: close"), "{answer}");
    assert!(head.contains("\r\ndate: "), "{answer}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("https://{address}/")),
        "{message}"
    );
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
    assert_eq!(
        app.request("GET", "/_emulator/health", &[], None).status,
        200
    );
}

#[test]
fn an_app_registered_twice_stops_the_start_naming_it() {
    let args = ["--app", "my-app:first", "--app", "My-App:second"].map(std::ffi::OsStr::new);
    let stderr = crate::helpers::refused_start(&args);
    assert!(
        stderr.contains("--app My-App is registered twice"),
        "{stderr}"
    );
}

#[test]
fn token_names_the_key_file_it_cannot_use_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            "--signing-key",
            missing.clone(),
            vec![missing.display().to_string(), "No such file".to_owned()],
        ),
        (
            "--signing-key",
            not_a_key.clone(),
            vec![
                not_a_key.display().to_string(),
                "not an RSA private key".to_owned(),
            ],
        ),
        (
            "--data-dir",
            dir.path().to_owned(),
            vec!["no signing key at".to_owned(), "first start".to_owned()],
        ),
    ];
    for (flag, path, needles) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_userflows-emulator"))
            .args(["token", "--tenant", "t", flag])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag} {path:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in needles {
            assert!(stderr.contains(&needle), "{flag}: {stderr}");
        }
    }
}
