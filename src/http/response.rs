//! Success bodies and headers: Graph's JSON content type, `OData-Version`, `@odata.context`
//! built from the scheme and host the client used.

use std::fmt;

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde::{Serialize, Serializer};

use super::error::ApiError;
use crate::domain::{UserFlow, UserFlowId, UserFlowType, UserFlowTypeVersion};

/// The content type of every JSON success.
pub const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// The `OData-Version` header every Graph success carries.
pub const ODATA_VERSION: (HeaderName, HeaderValue) = (
    HeaderName::from_static("odata-version"),
    HeaderValue::from_static("4.0"),
);
/// The path of the collection, after the base.
pub const COLLECTION_PATH: &str = "/beta/identity/userFlows";

/// `scheme://host` as the client reached us (proxy headers honoured).
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
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

#[derive(Serialize)]
struct Collection<'a> {
    #[serde(rename = "@odata.context")]
    context: ContextUrl<'a>,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: &'a [UserFlow],
}

/// A JSON success response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)))
        .insert_header(ODATA_VERSION)
        .body(bytes))
}

/// One flow, for get and create.
pub fn entity(status: StatusCode, base: &str, flow: &UserFlow) -> Result<HttpResponse, ApiError> {
    json(
        status,
        &Entity {
            context: ContextUrl {
                base,
                path: "/beta/$metadata#identity/userFlows/$entity",
            },
            id: &flow.id,
            user_flow_type: flow.user_flow_type,
            user_flow_type_version: flow.user_flow_type_version,
        },
    )
}

/// A page of flows.
pub fn collection(
    base: &str,
    flows: &[UserFlow],
    count: Option<usize>,
    next_link: Option<String>,
) -> Result<HttpResponse, ApiError> {
    json(
        StatusCode::OK,
        &Collection {
            context: ContextUrl {
                base,
                path: "/beta/$metadata#identity/userFlows",
            },
            count,
            next_link,
            value: flows,
        },
    )
}
