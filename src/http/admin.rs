//! The emulator's own routes under `/_emulator/` (never a Graph path): liveness, readiness,
//! Prometheus metrics, the tenants, a tenant's events (NDJSON), a tenant reset, the throttling
//! limits, the fault rules and the request journal. They name
//! the tenant in the path. Health and readiness answer anyone (a balancer's probes); the
//! others need the admin key when one is set, and without one answer only a loopback peer
//! whose `Host` names a loopback host, so a web page cannot reach them by DNS rebinding
//! (docs/reference.md §8). Paths are matched after percent-decoding, as Graph paths are.

use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::handlers::read_body_in_time;
use super::query::saturating_whole_number;
use super::{ApiError, AppState, RequestContext};
use crate::chaos::{Limits, Operation, RuleSet};
use crate::journal::{parse_rfc3339, Filter};
use crate::metrics::render_value;
use crate::tenant::{Read, ReadOutcome, TenantError, TenantId, TenantView};

/// The header carrying `--admin-key`.
pub const ADMIN_KEY_HEADER: &str = "X-Emulator-Admin-Key";
/// (policy) Events answered by one `events` request when no `limit` is given, and at most.
const DEFAULT_EVENTS_LIMIT: usize = 1_000;
const MAX_EVENTS_LIMIT: usize = 100_000;
/// (policy) Journal entries answered by one read when no `limit` is given.
const DEFAULT_REQUESTS_LIMIT: usize = 1_000;

/// Who may use the admin routes.
#[derive(Debug, Clone, Default)]
pub struct AdminAccess {
    /// When set, every admin route but health and ready needs it in the `X-Emulator-Admin-Key` header.
    pub key: Option<String>,
}

/// The admin scope, to be added to an app.
#[must_use]
pub fn scope() -> actix_web::Scope {
    web::scope("/_emulator")
        .route("/health", web::get().to(health))
        .route("/health", web::head().to(health))
        .route("/ready", web::get().to(ready))
        .route("/ready", web::head().to(ready))
        .route("/metrics", web::get().to(metrics))
        .route("/tenants", web::get().to(tenants))
        .route("/tenants/{tenant}/events", web::get().to(events))
        .route("/tenants/{tenant}", web::delete().to(reset))
        .route("/throttle", web::get().to(throttle))
        .route("/throttle", web::put().to(set_throttle))
        .route("/faults", web::get().to(faults))
        .route("/faults", web::put().to(set_faults))
        .route("/faults", web::delete().to(clear_faults))
        .route("/requests", web::get().to(requests))
        .route("/requests", web::delete().to(clear_requests))
        .route("/requests/summary", web::get().to(requests_summary))
        .default_service(web::to(unknown))
}

fn respond(req: &HttpRequest, result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(|e| e.respond(&RequestContext::of(req)))
}

fn check_access(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if let Some(key) = &state.admin.key {
        let given = req
            .headers()
            .get(ADMIN_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        return if given == Some(key.as_str()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "The admin routes need the header {ADMIN_KEY_HEADER} with the key given by --admin-key."
            )))
        };
    }
    let peer = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    // A request in absolute form names its host there, over `Host` (RFC 9112 §3.2.2): both
    // must be loopback names.
    let named = req.headers().get(actix_web::http::header::HOST);
    let host = named
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_loopback_host)
        && req
            .uri()
            .authority()
            .is_none_or(|a| is_loopback_host(a.as_str()));
    if peer && host {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Without --admin-key the admin routes answer only a client on this machine that \
             names a loopback host (localhost, 127.0.0.1 or [::1]) in Host."
                .to_owned(),
        ))
    }
}

/// Whether a `Host` header names this machine by a loopback name or address, with or without
/// a port: `localhost`, `127.0.0.1`, `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || is_port(port) => v6,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

fn tenant_of(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(raw).ok_or_else(|| {
        ApiError::bad_request(format!(
            "'{raw}' is not a tenant id (1 to 128 characters of A-Z a-z 0-9 . _ -)."
        ))
    })
}

/// The process is up.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 once every tenant is recovered, 503 before; names what cannot write while it lasts.
async fn ready(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match state.registry.recovery() {
        Some(summary) if state.registry.is_ready() => {
            let (storage, tenants) = state.registry.write_problems();
            HttpResponse::Ok().json(serde_json::json!({
                "status": "ready",
                "tenants": summary.tenants,
                "events": summary.events,
                "unavailableTenants": summary.broken,
                "writable": storage.is_none() && tenants.is_empty(),
                "storage": storage,
                "cannotWrite": tenants,
                "fromSnapshots": summary.from_snapshots,
                "recoveryMs": summary.elapsed.as_millis() as u64,
            }))
        }
        // The words every tenant route answers with meanwhile.
        _ => ApiError::from(TenantError::Recovering).respond(&RequestContext::of(&req)),
    }
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = async {
        check_access(&req, &state)?;
        let registry = &state.registry;
        let tenants = registry.overview()?;
        let (mut queued, mut actors) = (0, 0);
        for (_, view) in &tenants {
            if let TenantView::Running(handle) = view {
                queued += handle.queued();
                actors += 1;
            }
        }
        let commits = registry.commit_stats();
        let per_flush = if commits.flushes == 0 {
            0.0
        } else {
            commits.events as f64 / commits.flushes as f64
        };
        let recovery = registry.recovery();
        let mut out = String::with_capacity(4096);
        state.metrics.render(&mut out);
        render_faults(&mut out, &state.faults);
        render_value(
            &mut out,
            "userflows_events_appended_total",
            "counter",
            "Events appended to tenant logs since start.",
            registry.events_appended(),
        );
        render_value(
            &mut out,
            "userflows_flushes_total",
            "counter",
            "Group-commit flushes since start.",
            commits.flushes,
        );
        render_value(
            &mut out,
            "userflows_flushed_events_total",
            "counter",
            "Events made durable by group-commit flushes.",
            commits.events,
        );
        render_value(
            &mut out,
            "userflows_events_per_flush",
            "gauge",
            "Mean events made durable per flush since start.",
            per_flush,
        );
        render_value(
            &mut out,
            "userflows_queue_depth",
            "gauge",
            "Requests waiting to be taken up by tenant actors.",
            queued,
        );
        render_value(
            &mut out,
            "userflows_tenants",
            "gauge",
            "Tenants with a log or an actor.",
            tenants.len(),
        );
        render_value(
            &mut out,
            "userflows_tenant_actors",
            "gauge",
            "Tenants with an actor (the others are parked until their next request).",
            actors,
        );
        render_value(
            &mut out,
            "userflows_tenant_wakes_total",
            "counter",
            "Parked tenants woken by a request since start.",
            registry.wakes(),
        );
        render_value(
            &mut out,
            "userflows_ready",
            "gauge",
            "1 once every tenant is recovered.",
            u8::from(registry.is_ready()),
        );
        render_value(
            &mut out,
            "userflows_recovery_seconds",
            "gauge",
            "Time start-up recovery took.",
            recovery.map_or(0.0, |r| r.elapsed.as_secs_f64()),
        );
        render_journal(&mut out, state.journal.held());
        Ok(HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(out))
    }
    .await;
    respond(&req, result)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantRow {
    tenant_id: String,
    status: &'static str,
    /// The last durable event applied.
    last_seq: u64,
    flows: usize,
    queued: usize,
    /// `running`, or `parked`: idle, with no actor until its next request.
    actor: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

async fn tenants(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = async {
        check_access(&req, &state)?;
        let mut rows = Vec::new();
        for (tenant, view) in state.registry.overview()? {
            let (summary, queued, actor) = match view {
                TenantView::Running(handle) => {
                    // Through the registry: the actor may park after the overview was taken.
                    let read = state.registry.read(&tenant, Read::Summary).await?;
                    let ReadOutcome::Summary(summary) = read else {
                        return Err(ApiError::Internal(
                            "summary answered with another outcome".to_owned(),
                        ));
                    };
                    (summary, handle.queued(), "running")
                }
                TenantView::Parked(summary) => (summary, 0, "parked"),
            };
            rows.push(TenantRow {
                tenant_id: tenant.to_string(),
                status: if summary.broken.is_some() {
                    "unavailable"
                } else {
                    "ready"
                },
                last_seq: summary.applied_seq,
                flows: summary.flows,
                queued,
                actor,
                reason: summary.broken,
            });
        }
        Ok(HttpResponse::Ok().json(serde_json::json!({ "value": rows })))
    }
    .await;
    respond(&req, result)
}

/// An admin route's query string: each option at most once, only the ones the route names.
/// The error is the detail a route's message starts from.
struct AdminQuery(Vec<(String, String)>);

impl AdminQuery {
    fn parse(query: &str, known: &[&str]) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| "the query string is not form-encoded.".to_owned())?;
        for (i, (key, _)) in pairs.iter().enumerate() {
            if !known.contains(&key.as_str()) {
                return Err(format!("'{key}' is not an option of this route."));
            }
            if pairs[..i].iter().any(|(earlier, _)| earlier == key) {
                return Err(format!("'{key}' is given twice."));
            }
        }
        Ok(Self(pairs))
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A whole number of decimal digits; one past `u64` is read as `u64::MAX` (as far as any
    /// log or limit goes).
    fn whole_number(&self, key: &str) -> Result<Option<u64>, String> {
        self.text(key)
            .map(|v| {
                saturating_whole_number(v)
                    .ok_or_else(|| format!("'{key}' is '{v}', not a whole number."))
            })
            .transpose()
    }
}

/// A tenant's durable events as NDJSON envelopes, the live twin of `log events`.
async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let result = async {
        check_access(&req, &state)?;
        let tenant = tenant_of(&path)?;
        let bad = |detail: String| {
            ApiError::bad_request(format!(
                "Invalid query: {detail} Use from=<seq>&limit=<n>, whole numbers."
            ))
        };
        let query = AdminQuery::parse(req.query_string(), &["from", "limit"]).map_err(bad)?;
        let from = query.whole_number("from").map_err(bad)?.unwrap_or(1).max(1);
        let limit = query
            .whole_number("limit")
            .map_err(bad)?
            .map_or(DEFAULT_EVENTS_LIMIT, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            })
            .min(MAX_EVENTS_LIMIT);
        let Some(body) = state.registry.durable_events(&tenant, from, limit).await? else {
            return Err(ApiError::NotFound(format!(
                "Tenant '{tenant}' has no event log."
            )));
        };
        Ok(HttpResponse::Ok()
            .content_type("application/x-ndjson")
            .body(body))
    }
    .await;
    respond(&req, result)
}

/// Deletes a tenant's log and state: destructive, for test isolation.
async fn reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let result = async {
        check_access(&req, &state)?;
        let tenant = tenant_of(&path)?;
        state.registry.reset(&tenant).await?;
        Ok(HttpResponse::new(StatusCode::NO_CONTENT))
    }
    .await;
    respond(&req, result)
}

/// The throttling limits as the admin API shows and takes them.
fn limits_json(limits: Limits) -> serde_json::Value {
    serde_json::json!({ "tenantRpm": limits.tenant_rpm, "appRpm": limits.app_rpm })
}

async fn throttle(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = check_access(&req, &state)
        .map(|()| HttpResponse::Ok().json(limits_json(state.throttle.limits())));
    respond(&req, result)
}

/// Changes the limits: `{"tenantRpm": N|null, "appRpm": N|null}`, a missing key unchanged.
/// Anything else is refused whole, changing nothing; a change starts every bucket full.
async fn set_throttle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        check_access(&req, &state)?;
        let body = read_body_in_time(req.headers(), payload, state.max_body_bytes, &state).await?;
        let limits = parse_limits(&body, state.throttle.limits())?;
        state.throttle.set_limits(limits);
        tracing::info!(tenant_rpm = ?limits.tenant_rpm, app_rpm = ?limits.app_rpm, "throttling limits changed");
        Ok(HttpResponse::Ok().json(limits_json(limits)))
    }
    .await;
    respond(&req, result)
}

/// A JSON number that is whole, written as JSON allows it (`100`, `100.0`, `1e2`).
fn whole_json_number(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    })
}

/// `current` with the changes a `PUT /_emulator/throttle` body names.
fn parse_limits(body: &[u8], current: Limits) -> Result<Limits, ApiError> {
    let bad = |detail: String| {
        ApiError::bad_request(format!(
            "Invalid throttle limits: {detail} Send {{\"tenantRpm\": N or null, \"appRpm\": N \
             or null}} with whole numbers from 1 to 4294967295."
        ))
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON ({e}).")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(bad("the body is not a JSON object.".to_owned()));
    };
    let mut limits = current;
    for (key, value) in map {
        let slot = match key.as_str() {
            "tenantRpm" => &mut limits.tenant_rpm,
            "appRpm" => &mut limits.app_rpm,
            other => return Err(bad(format!("'{other}' is not a limit."))),
        };
        *slot = match &value {
            serde_json::Value::Null => None,
            number => Some(
                whole_json_number(number)
                    .filter(|n| *n >= 1)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(format!("'{key}' is {number}.")))?,
            ),
        };
    }
    Ok(limits)
}

/// The request journal's gauges: what it holds against its bound, and what it dropped.
fn render_journal(out: &mut String, held: crate::journal::Held) {
    let values: [(&str, &str, &str, u64); 5] = [
        (
            "userflows_journal_entries",
            "gauge",
            "Entries the request journal holds.",
            held.entries as u64,
        ),
        (
            "userflows_journal_bytes",
            "gauge",
            "Bytes the request journal's bound counts: its entries' JSON, their allocations and the ring's slots.",
            held.bytes as u64,
        ),
        (
            "userflows_journal_json_bytes",
            "gauge",
            "JSON bytes of the entries the request journal holds.",
            held.json_bytes as u64,
        ),
        (
            "userflows_journal_limit_bytes",
            "gauge",
            "The request journal's bound in bytes (--journal-bytes; 0: off).",
            held.limit as u64,
        ),
        (
            "userflows_journal_dropped_total",
            "counter",
            "Oldest entries the request journal dropped to stay within its bound.",
            held.dropped,
        ),
    ];
    for (name, kind, help, value) in values {
        render_value(out, name, kind, help, value);
    }
}

/// `userflows_faults_injected_total{rule}`, one line per rule in force.
fn render_faults(out: &mut String, faults: &crate::chaos::Faults) {
    let rules = faults.current().rules;
    if rules.is_empty() {
        return;
    }
    out.push_str("# HELP userflows_faults_injected_total Faults injected, per rule, since the rule set was put in force.\n");
    out.push_str("# TYPE userflows_faults_injected_total counter\n");
    for rule in rules {
        let id = rule.id.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "userflows_faults_injected_total{{rule=\"{id}\"}} {}",
            rule.fired.unwrap_or(0)
        );
    }
}

async fn faults(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result =
        check_access(&req, &state).map(|()| HttpResponse::Ok().json(state.faults.current()));
    respond(&req, result)
}

/// Replaces the fault rules; a set that does not check is refused whole and the old one stays.
async fn set_faults(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        check_access(&req, &state)?;
        let body = read_body_in_time(req.headers(), payload, state.max_body_bytes, &state).await?;
        let set = RuleSet::parse(&body).map_err(|e| ApiError::bad_request(e.0))?;
        tracing::info!(rules = set.rules.len(), seed = ?set.seed, "fault rules replaced");
        state.faults.replace(set);
        Ok(HttpResponse::Ok().json(state.faults.current()))
    }
    .await;
    respond(&req, result)
}

async fn clear_faults(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = check_access(&req, &state).map(|()| {
        state.faults.replace(RuleSet::default());
        tracing::info!("fault rules cleared");
        HttpResponse::new(StatusCode::NO_CONTENT)
    });
    respond(&req, result)
}

async fn unknown(req: HttpRequest) -> HttpResponse {
    let mut message = String::new();
    let _ = write!(
        message,
        "No emulator route {} {}.",
        req.method(),
        req.path()
    );
    ApiError::NotFound(message).respond(&RequestContext::of(&req))
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_host, parse_limits, Limits};

    #[test]
    fn throttle_limits_change_only_what_is_named_and_refuse_anything_else() {
        let current = Limits {
            tenant_rpm: Some(300),
            app_rpm: Some(200),
        };
        let parsed = |body: &str| parse_limits(body.as_bytes(), current);
        assert_eq!(
            parsed(r#"{"appRpm": null}"#).unwrap(),
            Limits {
                tenant_rpm: Some(300),
                app_rpm: None
            }
        );
        assert_eq!(parsed("{}").unwrap(), current);
        assert_eq!(
            parsed(r#"{"tenantRpm": 5, "appRpm": 1}"#)
                .unwrap()
                .tenant_rpm,
            Some(5)
        );
        for whole in ["100", "100.0", "1e2", "1.0e2"] {
            let body = format!(r#"{{"tenantRpm": {whole}}}"#);
            assert_eq!(parsed(&body).unwrap().tenant_rpm, Some(100), "{whole}");
        }
        assert_eq!(
            parsed(r#"{"appRpm": 4294967295}"#).unwrap().app_rpm,
            Some(u32::MAX)
        );
        for bad in [
            r#"{"tenantRpm": 0}"#,
            r#"{"tenantRpm": 0.0}"#,
            r#"{"tenantRpm": 4294967296}"#,
            r#"{"tenantRpm": 1e300}"#,
            r#"{"tenantRpm": 1.5}"#,
            r#"{"tenantRpm": "5"}"#,
            r#"{"tenantRpm": -1}"#,
            r#"{"tenantRpm": 99999999999}"#,
            r#"{"rpm": 5}"#,
            "[]",
            "",
        ] {
            assert!(parsed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts_are_names_and_addresses_of_this_machine_only() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:18090",
            "127.8.9.1",
            "[::1]",
            "[::1]:443",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "rebind.attacker.example",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:80",
            "[::1",
            "[::2]:80",
            "localhost:x",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}

/// How `GET /_emulator/requests` answers.
#[derive(Clone, Copy)]
enum JournalFormat {
    /// `{"enabled", "dropped", "value"}`.
    Json,
    /// One entry a line; the dropped count in a header.
    Ndjson,
}

/// A journal query's `tenant`, read as a token's `tid` is (a GUID lower-cased).
fn journal_tenant(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    raw.map(|t| tenant_of(t).map(|t| t.as_str().to_owned()))
        .transpose()
}

fn requests_filter(query: &str) -> Result<(Filter, JournalFormat), ApiError> {
    let bad = |detail: String| {
        ApiError::bad_request(format!(
            "Invalid journal query: {detail} Use tenant, clientRequestId, operation, status \
             (a number or none), since (RFC 3339), limit and format (json or ndjson)."
        ))
    };
    let query = AdminQuery::parse(
        query,
        &[
            "tenant",
            "clientRequestId",
            "operation",
            "status",
            "since",
            "limit",
            "format",
        ],
    )
    .map_err(bad)?;
    let operation = query
        .text("operation")
        .map(|o| {
            serde_json::from_value::<Operation>(serde_json::Value::String(o.to_owned()))
                .map_err(|_| bad(format!("'{o}' is not an operation.")))
        })
        .transpose()?;
    let status = query
        .text("status")
        .map(|s| match s {
            "none" => Ok(None),
            number => number
                .parse::<u16>()
                .map(Some)
                .map_err(|_| bad(format!("'{s}' is not a status."))),
        })
        .transpose()?;
    let since = query
        .text("since")
        .map(|at| parse_rfc3339(at).ok_or_else(|| bad(format!("'{at}' is not an RFC 3339 time."))))
        .transpose()?;
    let format = match query.text("format") {
        None | Some("json") => JournalFormat::Json,
        Some("ndjson") => JournalFormat::Ndjson,
        Some(other) => return Err(bad(format!("'{other}' is not a format."))),
    };
    let limit = query.whole_number("limit").map_err(bad)?;
    let filter = Filter {
        tenant: journal_tenant(query.text("tenant"))?,
        client_request_id: query.text("clientRequestId").map(str::to_owned),
        operation,
        status,
        since,
        limit: limit.map_or(DEFAULT_REQUESTS_LIMIT, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
    };
    Ok((filter, format))
}

/// The request journal, filtered, oldest first: `{"enabled", "dropped", "value"}`, or with
/// `format=ndjson` one entry a line and the dropped count in `x-emulator-journal-dropped`.
async fn requests(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = check_access(&req, &state).and_then(|()| {
        let (filter, format) = requests_filter(req.query_string())?;
        Ok(match format {
            JournalFormat::Json => HttpResponse::Ok()
                .content_type("application/json")
                .body(state.journal.read(&filter)),
            JournalFormat::Ndjson => {
                let (lines, dropped) = state.journal.read_ndjson(&filter);
                HttpResponse::Ok()
                    .content_type("application/x-ndjson")
                    .insert_header(("x-emulator-journal-dropped", dropped.to_string()))
                    .body(lines)
            }
        })
    });
    respond(&req, result)
}

fn tenant_query(query: &str) -> Result<Option<String>, ApiError> {
    let query = AdminQuery::parse(query, &["tenant"])
        .map_err(|e| ApiError::bad_request(format!("Invalid query: {e} Use tenant=<id>.")))?;
    journal_tenant(query.text("tenant"))
}

/// Clears the journal, or one tenant's entries.
async fn clear_requests(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = check_access(&req, &state).and_then(|()| {
        let tenant = tenant_query(req.query_string())?;
        state.journal.clear(tenant.as_deref());
        Ok(HttpResponse::new(StatusCode::NO_CONTENT))
    });
    respond(&req, result)
}

/// A tenant's logical requests: each request with its retries, and whether they waited.
async fn requests_summary(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = check_access(&req, &state).and_then(|()| {
        let tenant = tenant_query(req.query_string())?.ok_or_else(|| {
            ApiError::bad_request("The summary needs a tenant: ?tenant=<id>.".to_owned())
        })?;
        let value = state.journal.summary(&tenant);
        Ok(HttpResponse::Ok().json(serde_json::json!({ "value": value })))
    });
    respond(&req, result)
}
