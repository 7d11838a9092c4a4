//! The identity routes, served beside Graph on every listener: `OpenID` discovery, the JWKS of the
//! signing key, and the client-credentials token endpoint, answering in the identity platform's
//! shapes (its errors are `error`/`error_description`, not Graph's envelope).

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::connection;
use super::context::{Asked, RequestContext};
use super::handlers::{injected_before, read_body};
use super::response::base_url;
use super::AppState;
use crate::chaos::{Failure, Operation};
use crate::identity::token::{GRAPH_APP_ID, GRAPH_RESOURCE, ISSUED_LIFETIME_SECS};
use crate::identity::AppError;
use crate::metrics::RouteLabel;
use crate::tenant::TenantId;

/// An identity route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `/{tenant}/v2.0/.well-known/openid-configuration`
    Discovery,
    /// `/{tenant}/discovery/v2.0/keys`
    Keys,
    /// `/{tenant}/oauth2/v2.0/token`
    Token,
    /// `/{tenant}/oauth2/v2.0/authorize`: named by discovery (MSAL requires it), answered with
    /// an error, as there is no one to sign in.
    Authorize,
}

/// The identity route a path names, with its tenant segment as sent. Matched by hand, before
/// the Graph routes: as actix resources with a `{tenant}` segment these were three regular
/// expressions tried on every Graph request.
pub(super) fn route(path: &str) -> Option<(Route, &str)> {
    let (segment, rest) = path.strip_prefix('/')?.split_once('/')?;
    if segment.is_empty() {
        return None;
    }
    let route = match rest {
        "v2.0/.well-known/openid-configuration" => Route::Discovery,
        "discovery/v2.0/keys" => Route::Keys,
        "oauth2/v2.0/token" => Route::Token,
        "oauth2/v2.0/authorize" => Route::Authorize,
        _ => return None,
    };
    Some((route, segment))
}

/// Serves an identity route: discovery and keys answer GET, the token endpoint POST.
pub(super) async fn serve(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    route: Route,
    segment: String,
) -> HttpResponse {
    match (route, req.method()) {
        (Route::Discovery, &Method::GET) => openid_configuration(req, segment, state).await,
        (Route::Keys, &Method::GET) => keys(req, segment, state).await,
        (Route::Token, &Method::POST) => token(req, segment, payload, state).await,
        (Route::Authorize, _) => authorize(req, state).await,
        _ => method_not_allowed(req, state).await,
    }
}

/// Tenants that name no tenant: Entra answers them for discovery, not for an app's token.
const NOT_A_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// The tenant of personal Microsoft accounts: a real tenant id, but it holds no apps.
const PERSONAL_ACCOUNTS: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// An error in the identity platform's shape.
struct IdentityError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
    /// Seconds for `Retry-After` (an injected fault's).
    retry_after: Option<u32>,
}

impl IdentityError {
    fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    fn invalid_request(code: u32, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            code,
            description,
        )
    }

    fn missing(parameter: &str) -> Self {
        Self::invalid_request(
            900_144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn respond(&self, context: &RequestContext) -> HttpResponse {
        let timestamp = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace('T', " ");
        let trace_id = context.request_id_text();
        let correlation_id = context.client_request_id_text();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        let mut builder = no_store(HttpResponse::build(self.status));
        if let Some(seconds) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds));
        }
        builder.json(body)
    }
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store, no-cache"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// Runs one identity route with its request context (ids, metrics, log line, journal).
async fn answered(
    req: &HttpRequest,
    state: &AppState,
    context: &RequestContext,
    route: impl std::future::Future<Output = Result<HttpResponse, IdentityError>>,
) -> HttpResponse {
    let started = std::time::Instant::now();
    context.set_route(RouteLabel::Identity);
    let answer = match context.refusal() {
        Some(refusal) => Err(IdentityError::invalid_request(900_144, refusal)),
        None => route.await,
    };
    let mut response = match answer {
        Ok(response) => response,
        Err(error) => error.respond(context),
    };
    context.finish(
        req.method(),
        req.path(),
        Some(state),
        &mut response,
        started,
    );
    context.record(&state.journal, Asked::of(req), &response, None);
    connection::carry_out(req, response).await
}

/// The path's tenant as §5 reads it (a GUID lower-cased), or one of the names that are not a
/// tenant.
fn path_tenant(raw: &str) -> Result<String, IdentityError> {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    if let Some(name) = NOT_A_TENANT
        .iter()
        .find(|n| n.eq_ignore_ascii_case(&decoded))
    {
        return Ok((*name).to_owned());
    }
    TenantId::parse(&decoded)
        .map(|t| t.as_str().to_owned())
        .ok_or_else(|| {
            IdentityError::invalid_request(
                900_023,
                format!(
                    "Specified tenant identifier '{decoded}' is neither a valid DNS name, nor a \
                     valid external domain."
                ),
            )
        })
}

async fn method_not_allowed(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let context = RequestContext::new(req.headers());
    answered(&req, &state, &context, async {
        Err(IdentityError::invalid_request(
            900_561,
            format!(
                "The endpoint only accepts {} requests. Received a {} request.",
                if req.path().ends_with("/token") {
                    "POST"
                } else {
                    "GET"
                },
                req.method()
            ),
        ))
    })
    .await
}

/// The sign-in endpoint discovery names: there is no user to sign in, so every request gets
/// the error Entra gives an app that may not use a flow, pointing at the token endpoint.
async fn authorize(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let context = RequestContext::new(req.headers());
    answered(&req, &state, &context, async {
        Err(IdentityError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            700_054,
            "This emulator signs no users in: it issues app tokens only, by POST to \
             /{tenant}/oauth2/v2.0/token with grant_type=client_credentials.",
        ))
    })
    .await
}

async fn openid_configuration(
    req: HttpRequest,
    segment: String,
    state: web::Data<AppState>,
) -> HttpResponse {
    let context = RequestContext::new(req.headers());
    answered(&req, &state, &context, async {
        let tenant = path_tenant(&segment)?;
        let base = base_url(&req);
        let issuer_tenant = if NOT_A_TENANT.contains(&tenant.as_str()) {
            "{tenantid}"
        } else {
            &tenant
        };
        let root = format!("{base}/{tenant}");
        let body = json!({
            "issuer": format!("{base}/{issuer_tenant}/v2.0"),
            "authorization_endpoint": format!("{root}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{root}/oauth2/v2.0/token"),
            "jwks_uri": format!("{root}/discovery/v2.0/keys"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "grant_types_supported": ["client_credentials"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "roles"],
            "request_uri_parameter_supported": false,
            "tenant_region_scope": null,
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        });
        Ok(HttpResponse::Ok().json(body))
    })
    .await
}

async fn keys(req: HttpRequest, segment: String, state: web::Data<AppState>) -> HttpResponse {
    let context = RequestContext::new(req.headers());
    answered(&req, &state, &context, async {
        path_tenant(&segment)?;
        Ok(HttpResponse::Ok().json(state.identity.key.jwks()))
    })
    .await
}

async fn token(
    req: HttpRequest,
    segment: String,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let context = RequestContext::new(req.headers());
    answered(&req, &state, &context, async {
        context.note(|n| n.operation = Some(Operation::Token));
        let tenant = path_tenant(&segment)?;
        if NOT_A_TENANT.contains(&tenant.as_str()) {
            return Err(IdentityError::invalid_request(
                700_011,
                format!(
                    "The tenant '{tenant}' names no tenant: an app's client-credentials token \
                     needs the tenant id (or name) in the path."
                ),
            ));
        }
        if tenant == PERSONAL_ACCOUNTS {
            return Err(IdentityError::invalid_request(
                700_011,
                format!(
                    "The tenant '{tenant}' is the one of personal Microsoft accounts, which \
                     holds no apps: an app's client-credentials token needs its own tenant."
                ),
            ));
        }
        context.note(|n| n.tenant = Some(tenant.as_str().into()));
        let form = read_form(&req, payload, &state, &context).await?;
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let grant = field("grant_type").ok_or_else(|| IdentityError::missing("grant_type"))?;
        if grant != "client_credentials" {
            return Err(IdentityError::invalid_request(
                70_003,
                format!(
                    "The app requested an unsupported grant type '{grant}'. This emulator \
                     issues tokens for grant_type=client_credentials."
                ),
            ));
        }
        let basic = basic_credentials(req.headers());
        let client_id = field("client_id")
            .map(str::to_owned)
            .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
            .ok_or_else(|| IdentityError::missing("client_id"))?;
        context.note(|n| n.app = Some(client_id.as_str().into()));
        let fault = state
            .faults
            .decide(Some(Operation::Token), Some(&tenant), Some(&client_id));
        context.note_fault(fault.as_ref());
        let who = format!("token request of {client_id}");
        match injected_before(fault, &who).await {
            Some((
                Failure::Status {
                    status,
                    retry_after,
                },
                _,
            )) => {
                let mut error = IdentityError::new(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    "temporarily_unavailable",
                    90_033,
                    "A transient error has occurred. Please try again.",
                );
                error.retry_after = retry_after;
                return Err(error);
            }
            Some((Failure::Transport(transport), _)) => return Ok(connection::severed(transport)),
            None => {}
        }
        let scope = field("scope").ok_or_else(|| IdentityError::missing("scope"))?;
        check_scope(scope, &base_url(&req))?;
        let secret = field("client_secret")
            .map(str::to_owned)
            .or_else(|| basic.map(|(_, secret)| secret))
            .ok_or_else(|| {
                IdentityError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_218,
                    "The request body must contain the following parameter: 'client_assertion' \
                     or 'client_secret'.",
                )
            })?;
        let access_token = app_token(&state, &tenant, &client_id, &secret)?;
        Ok(no_store(HttpResponse::Ok()).json(json!({
            "token_type": "Bearer",
            "expires_in": ISSUED_LIFETIME_SECS,
            "ext_expires_in": ISSUED_LIFETIME_SECS,
            "access_token": access_token,
        })))
    })
    .await
}

/// The token request's form body, within the body limit and timeout.
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    context: &RequestContext,
) -> Result<Vec<(String, String)>, IdentityError> {
    let body = actix_web::rt::time::timeout(
        state.body_timeout,
        read_body(req.headers(), payload, state.max_body_bytes),
    )
    .await
    .map_err(|_| {
        IdentityError::invalid_request(900_144, "The request body did not arrive in time.")
    })?
    .map_err(|_| {
        IdentityError::invalid_request(
            900_144,
            format!(
                "The request body could not be read (at most {} bytes).",
                state.max_body_bytes
            ),
        )
    })?;
    context.note_body(&state.journal, &body);
    serde_urlencoded::from_bytes(&body).map_err(|_| {
        IdentityError::invalid_request(
            900_144,
            "The request body must be application/x-www-form-urlencoded.",
        )
    })
}

/// A signed token for the app, or why the app may not have one.
fn app_token(
    state: &AppState,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> Result<String, IdentityError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let issued = state
        .identity
        .issue(tenant, client_id, secret, now)
        .map_err(|e| {
            tracing::error!(error = %e, "could not sign a token");
            IdentityError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50_000,
                "There was an error issuing a token.",
            )
        })?;
    issued.map_err(|e| match e {
        AppError::Unknown => IdentityError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory \
                     '{tenant}'. Register it with --app {client_id}:SECRET[:ROLES]."
            ),
        ),
        AppError::WrongSecret => IdentityError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the \
                     request is the client secret value, not the client secret ID, for a \
                     secret added to app '{client_id}'."
            ),
        ),
    })
}

/// `Authorization: Basic` client credentials, each half form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &actix_web::http::header::HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::to_str)?
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(std::borrow::Cow::into_owned)
    };
    Some((form(id)?, form(secret)?))
}

/// A client-credentials scope: `<resource>/.default` for Graph (by URI or app id) or for this
/// emulator's own origin (with or without its port); `openid`, `profile` and `offline_access`
/// may come beside it.
fn check_scope(scope: &str, base: &str) -> Result<(), IdentityError> {
    let base_without_port = base
        .rsplit_once(':')
        .filter(|(head, port)| head.contains("://") && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(base, |(head, _)| head);
    let mut resources = 0;
    for item in scope.split_ascii_whitespace() {
        if ["openid", "profile", "offline_access"].contains(&item) {
            continue;
        }
        let resource = item
            .strip_suffix("/.default")
            .map(|r| r.trim_end_matches('/'));
        let known = resource.is_some_and(|r| {
            r.eq_ignore_ascii_case(GRAPH_RESOURCE)
                || r.eq_ignore_ascii_case(GRAPH_APP_ID)
                || r.eq_ignore_ascii_case(base)
                || r.eq_ignore_ascii_case(base_without_port)
        });
        if !known {
            return Err(IdentityError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {item} is not valid. Client credential flows \
                     must have a scope value with /.default suffixed to the resource identifier \
                     (https://graph.microsoft.com/.default)."
                ),
            ));
        }
        resources += 1;
    }
    if resources == 1 {
        Ok(())
    } else {
        Err(IdentityError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' is not valid: '{scope}' must \
                 name exactly one resource's /.default."
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_graph_or_this_origin() {
        let base = "https://127.0.0.1:8443";
        for ok in [
            "https://graph.microsoft.com/.default",
            "00000003-0000-0000-c000-000000000000/.default",
            "https://127.0.0.1:8443/.default",
            "https://127.0.0.1/.default",
            "https://graph.microsoft.com//.default offline_access",
        ] {
            assert!(check_scope(ok, base).is_ok(), "{ok}");
        }
        for bad in [
            "User.Read",
            "https://graph.microsoft.com/User.Read",
            "api://other/.default",
            "openid",
            "https://graph.microsoft.com/.default 00000003-0000-0000-c000-000000000000/.default",
        ] {
            assert!(check_scope(bad, base).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_tenants_follow_the_tenant_rules() {
        assert_eq!(
            path_tenant("0A1B2C3D-0000-0000-0000-00000000000F")
                .ok()
                .as_deref(),
            Some("0a1b2c3d-0000-0000-0000-00000000000f")
        );
        assert_eq!(path_tenant("Common").ok().as_deref(), Some("common"));
        assert_eq!(path_tenant("contoso").ok().as_deref(), Some("contoso"));
        assert!(path_tenant("a%20b").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = actix_web::http::header::HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("app%3A1:s+e%25c");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("app:1".to_owned(), "s e%c".to_owned()))
        );
    }
}
