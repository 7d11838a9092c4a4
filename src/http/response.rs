//! Success bodies and headers: Graph's JSON content type, `OData-Version`, `@odata.context`
//! built from the scheme and host the client used.

use std::fmt;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Serialize, Serializer};

use super::error::ApiError;
use crate::domain::{Property, UserFlow, UserFlowId, UserFlowType, UserFlowTypeVersion};
use crate::json_text::is_plain;

/// The content type of every JSON success.
pub const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8");
/// The `OData-Version` header every Graph success carries.
pub const ODATA_VERSION: (HeaderName, HeaderValue) = (
    HeaderName::from_static("odata-version"),
    HeaderValue::from_static("4.0"),
);
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The path of the collection, after the base.
pub const COLLECTION_PATH: &str = "/beta/identity/userFlows";
/// The path of one flow's `@odata.context`, after the base.
const ENTITY_CONTEXT_PATH: &str = "/beta/$metadata#identity/userFlows/$entity";

/// `scheme://host` as the client reached us (proxy headers honoured, as actix's
/// `ConnectionInfo` reads them, when they name a host a link can hold).
pub fn base_url(req: &HttpRequest) -> String {
    let headers = req.headers();
    let proxied = [&header::FORWARDED, &X_FORWARDED_PROTO, &X_FORWARDED_HOST]
        .into_iter()
        .any(|name| headers.contains_key(name));
    // The HTTPS listener's apps carry a marker: actix's own `secure` flag is set only by the
    // server builder this emulator does not use.
    let scheme = if req.app_data::<super::Https>().is_some() {
        "https://"
    } else {
        "http://"
    };
    if proxied {
        let info = req.connection_info();
        let forwarded = info.scheme();
        // Only a scheme a link can use: a proxy's `javascript` is not one.
        let scheme = if (headers.contains_key(&X_FORWARDED_PROTO)
            || headers.contains_key(&header::FORWARDED))
            && (forwarded.eq_ignore_ascii_case("http") || forwarded.eq_ignore_ascii_case("https"))
        {
            forwarded
        } else {
            scheme.trim_end_matches("://")
        };
        // A forwarded host no link could name (`a b`, `a/b`, a port past 65535) is ignored.
        let host = info.host();
        if is_authority(host) {
            return format!("{scheme}://{host}");
        }
        return direct_base(req, &format!("{scheme}://"));
    }
    direct_base(req, scheme)
}

/// The base from the request itself: its absolute-form authority, else its `Host`, else the
/// listener's address.
fn direct_base(req: &HttpRequest, scheme: &str) -> String {
    // A request in absolute form names its authority, which a server takes over `Host`
    // (RFC 9112 §3.2.2).
    if let Some(authority) = req.uri().authority().filter(|a| is_authority(a.as_str())) {
        return [scheme, authority.as_str()].concat();
    }
    // In origin form: what `ConnectionInfo` would answer, without building it (it formats
    // the peer address too).
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if let Some(host) = host.filter(|h| is_authority(h)) {
        return [scheme, host].concat();
    }
    // No host named (HTTP/1.0), or one no link could name (empty, or not a host and
    // port): the address the client reached.
    match req.app_data::<super::ListenerAddr>() {
        Some(super::ListenerAddr(local)) => format!("{scheme}{local}"),
        None => format!("{scheme}{}", req.connection_info().host()),
    }
}

/// Whether `authority` is a `host[:port]` a link can name (what `Host` holds, RFC 9110 §7.2):
/// a registered name or IPv4 address of its characters, or an IP literal in brackets, then
/// at most one port of 0–65535.
fn is_authority(authority: &str) -> bool {
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        let Some((inside, rest)) = literal.split_once(']') else {
            return false;
        };
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        match rest {
            "" => return true,
            _ => match rest.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port_fits = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
    });
    port_fits
        && !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        })
}

/// `@odata.context`: the base the client used and a fixed path, written into the body without
/// building the URL as a string first.
struct ContextUrl<'a> {
    base: &'a str,
    path: &'static str,
}

impl Serialize for ContextUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for ContextUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base)?;
        f.write_str(self.path)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entity<'a> {
    #[serde(rename = "@odata.context")]
    context: ContextUrl<'a>,
    id: &'a UserFlowId,
    user_flow_type: UserFlowType,
    user_flow_type_version: UserFlowTypeVersion,
}

impl<'a> Entity<'a> {
    fn of(base: &'a str, flow: &'a UserFlow) -> Self {
        Self {
            context: ContextUrl {
                base,
                path: ENTITY_CONTEXT_PATH,
            },
            id: &flow.id,
            user_flow_type: flow.user_flow_type,
            user_flow_type_version: flow.user_flow_type_version,
        }
    }
}

#[derive(Serialize)]
struct Collection<'a, T: Serialize> {
    #[serde(rename = "@odata.context")]
    context: &'a str,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: &'a [T],
}

/// A flow trimmed to the properties `$select` named (always in declared order).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Selected<'a> {
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    context: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a UserFlowId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_flow_type: Option<UserFlowType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_flow_type_version: Option<UserFlowTypeVersion>,
}

impl<'a> Selected<'a> {
    fn of(flow: &'a UserFlow, select: &[Property], context: Option<&'a str>) -> Self {
        Self {
            context,
            id: select.contains(&Property::Id).then_some(&flow.id),
            user_flow_type: select
                .contains(&Property::Type)
                .then_some(flow.user_flow_type),
            user_flow_type_version: select
                .contains(&Property::Version)
                .then_some(flow.user_flow_type_version),
        }
    }
}

/// `@odata.context` of the collection, naming the selected properties as requested:
/// `…/$metadata#identity/userFlows(id,userFlowType)`, then `/$entity` for one flow.
fn context(base: &str, select: Option<&[Property]>, entity: bool) -> String {
    let mut url = format!("{base}/beta/$metadata#identity/userFlows");
    if let Some(select) = select {
        url.push('(');
        let names: Vec<&str> = select.iter().map(|p| p.name()).collect();
        url.push_str(&names.join(","));
        url.push(')');
    }
    if entity {
        url.push_str("/$entity");
    }
    url
}

/// A JSON success response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(with_json_headers(status, bytes))
}

/// A JSON success response of bytes already written.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    with_json_headers(status, body)
}

fn with_json_headers(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    // As a boxed slice the body becomes `Bytes` without a second allocation (a `Vec` with
    // spare capacity needs one to remember it).
    let body = web::Bytes::from(body.into_boxed_slice());
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, JSON_CONTENT_TYPE))
        .insert_header(ODATA_VERSION)
        .body(body)
}

/// One flow, for get and create.
pub fn entity(status: StatusCode, base: &str, flow: &UserFlow) -> Result<HttpResponse, ApiError> {
    let id = flow.id.as_str();
    if !(is_plain(base.as_bytes()) && is_plain(id.as_bytes())) {
        return json(status, &Entity::of(base, flow));
    }
    // The common case written directly: the same bytes as `Entity` serialized (a test checks).
    let mut body = Vec::with_capacity(base.len() + id.len() + 128);
    for part in [
        r#"{"@odata.context":""#,
        base,
        ENTITY_CONTEXT_PATH,
        r#"","id":""#,
        id,
        r#"","userFlowType":""#,
        flow.user_flow_type.as_str(),
        r#"","userFlowTypeVersion":"#,
    ] {
        body.extend_from_slice(part.as_bytes());
    }
    serde_json::to_writer(&mut body, &flow.user_flow_type_version)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    body.push(b'}');
    Ok(with_json_headers(status, body))
}

/// One flow trimmed by `$select`.
pub fn selected_entity(
    base: &str,
    flow: &UserFlow,
    select: &[Property],
) -> Result<HttpResponse, ApiError> {
    let context = context(base, Some(select), true);
    json(StatusCode::OK, &Selected::of(flow, select, Some(&context)))
}

/// A page of flows, trimmed by `$select` when given.
pub fn collection(
    base: &str,
    flows: &[UserFlow],
    select: Option<&[Property]>,
    count: Option<usize>,
    next_link: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let context = context(base, select, false);
    match select {
        None => json(
            StatusCode::OK,
            &Collection {
                context: &context,
                count,
                next_link,
                value: flows,
            },
        ),
        Some(select) => {
            let value: Vec<Selected<'_>> = flows
                .iter()
                .map(|f| Selected::of(f, select, None))
                .collect();
            json(
                StatusCode::OK,
                &Collection {
                    context: &context,
                    count,
                    next_link,
                    value: &value,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn via_connection_info(req: &HttpRequest) -> String {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    }

    #[test]
    fn an_entity_is_written_as_serde_writes_it() {
        let flows = [
            UserFlow::sample("B2C_1_a"),
            UserFlow {
                user_flow_type: UserFlowType::ResourceOwner,
                ..UserFlow::sample("B2C_1_Pol-1_x")
            },
        ];
        let versions = [1.0, 1.1, 3e38, 0.000_1].map(UserFlowTypeVersion::from_stored);
        for base in [
            "http://127.0.0.1:8080",
            "https://graph.example",
            r#"http://a"b\c"#,
        ] {
            for flow in &flows {
                for version in versions {
                    let flow = UserFlow {
                        user_flow_type_version: version,
                        ..flow.clone()
                    };
                    let expected = serde_json::to_vec(&Entity::of(base, &flow)).unwrap();
                    let response = entity(StatusCode::CREATED, base, &flow).unwrap();
                    let body = actix_web::body::to_bytes(response.into_body());
                    let body = futures_util::FutureExt::now_or_never(body)
                        .unwrap()
                        .unwrap();
                    assert_eq!(body.as_ref(), expected.as_slice(), "{base} {flow:?}");
                }
            }
        }
    }

    #[test]
    fn the_base_is_what_actix_connection_info_says() {
        let requests = [
            TestRequest::default().insert_header(("host", "127.0.0.1:8080")),
            TestRequest::default().insert_header(("host", "emulator.local")),
            TestRequest::default()
                .insert_header(("host", "127.0.0.1:8080"))
                .insert_header(("x-forwarded-host", "graph.example")),
            TestRequest::default()
                .insert_header(("host", "127.0.0.1:8080"))
                .insert_header(("x-forwarded-proto", "https")),
            TestRequest::default()
                .insert_header(("host", "127.0.0.1:8080"))
                .insert_header(("forwarded", "proto=https; host=graph.example")),
            TestRequest::default().uri("http://absolute.example:81/beta/identity/userFlows"),
            TestRequest::default(),
        ];
        let bases: Vec<String> = requests
            .into_iter()
            .map(|r| {
                let req = r.to_http_request();
                let base = base_url(&req);
                assert_eq!(base, via_connection_info(&req));
                base
            })
            .collect();
        assert_eq!(bases[0], "http://127.0.0.1:8080");
        assert_eq!(bases[2], "http://graph.example");
        assert_eq!(bases[4], "https://graph.example");
    }

    #[test]
    fn a_forwarded_or_given_host_no_link_could_name_is_ignored() {
        let with = |name: &str, value: &str| {
            let req = TestRequest::default()
                .insert_header(("host", "127.0.0.1:8080"))
                .insert_header((name, value))
                .to_http_request();
            base_url(&req)
        };
        for bad in [
            "a b", "a/b", "x:99999", "x:abc", "x:", "[::1", "[zz]:80", "a:1:2",
        ] {
            assert_eq!(
                with("x-forwarded-host", bad),
                "http://127.0.0.1:8080",
                "{bad}"
            );
            assert_eq!(
                with("forwarded", &format!("host=\"{bad}\"")),
                "http://127.0.0.1:8080",
                "{bad}"
            );
        }
        for good in [
            "graph.example",
            "graph.example:443",
            "[::1]:8443",
            "10.0.0.1:65535",
        ] {
            assert_eq!(with("x-forwarded-host", good), format!("http://{good}"));
        }
        for (host, base) in [
            ("emulator.local:8080", "http://emulator.local:8080"),
            ("evil.com:abc", "http://127.0.0.1:9"),
            ("x:99999", "http://127.0.0.1:9"),
        ] {
            let listener = super::super::ListenerAddr(([127, 0, 0, 1], 9).into());
            let req = TestRequest::default()
                .insert_header(("host", host))
                .app_data(listener)
                .to_http_request();
            assert_eq!(base_url(&req), base, "{host}");
        }
    }
}
