//! Auth: which tenant a request belongs to, and whether its token allows it. In `lenient` mode
//! the bearer token must be a JWT whose payload has a `tid` (signature, audience and expiry
//! unchecked); in `strict` mode it must also pass [`Verifier`]'s checks and hold the permission
//! the operation needs; in `none` mode every request belongs to one default tenant. Also the
//! claims of the tokens the `token` command prints.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap};
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::identity::{Grants, Verified, Verifier};
use crate::tenant::TenantId;

/// The tenant of personal Microsoft accounts: never allowed on these routes.
pub const PERSONAL_ACCOUNT_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// The audience Graph tokens carry.
pub const GRAPH_AUDIENCE: &str = crate::identity::token::GRAPH_RESOURCE;
/// The scope that allows every operation of this API.
pub const READ_WRITE_SCOPE: &str = crate::identity::token::READ_WRITE;

/// base64url with or without padding, as tokens in the wild have both.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Most distinct `Authorization` values a worker thread remembers: enough for a load test
/// that spreads over 10,000 tenants, each with its own token, to decode each token once
/// (with 1,024, such a test emptied the memory every 1,024 requests and decoded every token,
/// every time). When a client sends more, the memory is cleared and refilled.
const TOKEN_CACHE_CAPACITY: usize = 16 * 1024;
/// Most bytes of `Authorization` values a worker thread remembers, so large tokens cannot grow
/// the memory past this either; a value larger than a tenth of it is never remembered.
const TOKEN_CACHE_BYTES: usize = 4 << 20;

/// What an accepted `Authorization` header gave, kept so that the same header is not decoded
/// (nor its signature verified) again: everything but the time depends on its text alone.
#[derive(Clone)]
struct Known {
    tenant: TenantId,
    /// The token's app (`appid`, else `azp`), for throttling.
    app: Option<std::sync::Arc<str>>,
    /// Strict auth's verdict, whose lifetime is checked again each time; `None` in lenient
    /// mode, where nothing else is checked.
    verified: Option<Verified>,
}

/// `Authorization` header → what it gave, for accepted headers, with the bytes the keys hold.
#[derive(Default)]
struct TokenCache {
    tokens: hashbrown::HashMap<Box<[u8]>, Known>,
    bytes: usize,
}

impl TokenCache {
    fn remember(&mut self, header: &[u8], known: Known) {
        let size = header.len();
        if size > TOKEN_CACHE_BYTES / 10 {
            return;
        }
        if self.tokens.len() >= TOKEN_CACHE_CAPACITY || self.bytes + size > TOKEN_CACHE_BYTES {
            *self = Self::default();
        }
        self.bytes += size;
        self.tokens.insert(header.into(), known);
    }
}

thread_local! {
    static TOKENS: RefCell<TokenCache> = RefCell::new(TokenCache::default());
}

/// How requests are tied to tenants, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// A JWT with a `tid` claim; nothing else checked.
    Lenient,
    /// A signed JWT (RS256 by the emulator's key, or HS256 with `jwt_secret`), within its
    /// lifetime, for Graph, with the permission the operation needs.
    Strict { jwt_secret: Option<String> },
    /// No token needed: everything belongs to this tenant.
    None { default_tenant: TenantId },
}

/// How requests are tied to tenants, ready to check tokens.
#[derive(Debug)]
pub enum Authenticator {
    Lenient,
    Strict(Verifier),
    None(TenantId),
}

/// What a request does, for strict auth's permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A valid token, whatever it allows (a `$batch`, whose items each check their own).
    Token,
    Read,
    Write,
}

impl Access {
    /// Reads are `GET` and `HEAD`; anything else may change something.
    #[must_use]
    pub fn of(method: &actix_web::http::Method) -> Self {
        if method == actix_web::http::Method::GET || method == actix_web::http::Method::HEAD {
            Self::Read
        } else {
            Self::Write
        }
    }
}

/// The claims this emulator reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aud: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default)]
    pub tid: String,
    /// Delegated scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// Application roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

impl Claims {
    /// Claims for `tenant` valid from now for `valid_for_secs`, with the given delegated scopes
    /// and application roles (the read-write scope when both are empty).
    #[must_use]
    pub fn for_tenant(
        tenant: &str,
        scopes: &[String],
        roles: &[String],
        valid_for_secs: u64,
    ) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let scp = if scopes.is_empty() && roles.is_empty() {
            Some(READ_WRITE_SCOPE.to_owned())
        } else if scopes.is_empty() {
            None
        } else {
            Some(scopes.join(" "))
        };
        Self {
            aud: GRAPH_AUDIENCE.to_owned(),
            iss: format!("https://sts.windows.net/{tenant}/"),
            tid: tenant.to_owned(),
            scp,
            roles: roles.to_vec(),
            iat: Some(now),
            nbf: Some(now),
            exp: Some(now.saturating_add(valid_for_secs)),
        }
    }
}

/// An unsigned JWT (`alg: none`) carrying `claims`: enough for `lenient` mode and for clients
/// that only pass a token through.
pub fn mint(claims: &Claims) -> Result<String, serde_json::Error> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    Ok(format!("{header}.{payload}."))
}

/// Who a request comes from: its tenant, the app its token names (if any), and what its token
/// allows.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub app: Option<std::sync::Arc<str>>,
    pub grants: Grants,
}

impl Caller {
    /// `403` unless the caller's token allows `access`.
    pub fn allows(&self, access: Access) -> Result<(), ApiError> {
        allow(self.grants, access)
    }
}

/// The tenant a request acts for, once its token allows `access`.
pub fn tenant_of(
    headers: &HeaderMap,
    auth: &Authenticator,
    access: Access,
) -> Result<TenantId, ApiError> {
    caller_of(headers, auth, access).map(|caller| caller.tenant)
}

/// The tenant and app a request acts for, once its token allows `access`.
pub fn caller_of(
    headers: &HeaderMap,
    auth: &Authenticator,
    access: Access,
) -> Result<Caller, ApiError> {
    let caller = identify(headers, auth)?;
    caller.allows(access)?;
    Ok(caller)
}

/// The tenant and app a request's token names, once the token is valid (in strict mode: signed,
/// for Graph, and within its lifetime); what it allows is [`Caller::allows`]' question, so that
/// a refusal can still be told apart by tenant.
pub fn identify(headers: &HeaderMap, auth: &Authenticator) -> Result<Caller, ApiError> {
    let verifier = match auth {
        Authenticator::None(default_tenant) => {
            return Ok(Caller {
                tenant: default_tenant.clone(),
                app: None,
                grants: Grants::ALL,
            })
        }
        Authenticator::Lenient => None,
        Authenticator::Strict(verifier) => Some(verifier),
    };
    let Some(header) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized("Access token is empty."));
    };
    let known = TOKENS.with(|cache| cache.borrow().tokens.get(header.as_bytes()).cloned());
    // A header remembered in the other mode (only unit tests switch modes on one thread) is
    // decoded again.
    let known = match known {
        Some(known) if known.verified.is_some() == verifier.is_some() => known,
        _ => {
            let known = match verifier {
                None => {
                    let claims = bearer_claims(headers)?;
                    Known {
                        tenant: checked_tenant(&claims.tid)?,
                        app: claims.app(),
                        verified: None,
                    }
                }
                Some(verifier) => strict(headers, verifier)?,
            };
            TOKENS.with(|cache| {
                cache
                    .borrow_mut()
                    .remember(header.as_bytes(), known.clone());
            });
            known
        }
    };
    let grants = match &known.verified {
        Some(checked) => {
            checked
                .check_lifetime(now())
                .map_err(|rejection| ApiError::Unauthorized(rejection.message()))?;
            checked.grants
        }
        None => Grants::ALL,
    };
    Ok(Caller {
        tenant: known.tenant,
        app: known.app,
        grants,
    })
}

/// Strict auth: the token verified, and its tenant.
fn strict(headers: &HeaderMap, verifier: &Verifier) -> Result<Known, ApiError> {
    let token = bearer_token(headers)?;
    let outcome = verifier
        .verify(token, now())
        .map_err(|rejection| ApiError::Unauthorized(rejection.message()))?;
    let tenant = checked_tenant(&outcome.tid)?;
    Ok(Known {
        tenant,
        app: outcome.app.as_deref().map(std::sync::Arc::from),
        verified: Some(outcome),
    })
}

/// Whether `grants` allow `access`: a 403 if not.
fn allow(grants: Grants, access: Access) -> Result<(), ApiError> {
    let allowed = match access {
        Access::Token => true,
        Access::Read => grants.read,
        Access::Write => grants.write,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Insufficient privileges to complete the operation.".to_owned(),
        ))
    }
}

/// Seconds since the epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What lenient mode reads of a token: its `tid`. Every other claim may be of any JSON type
/// (an `aud` array, a float `exp`, claims this emulator has never heard of).
#[derive(Deserialize)]
struct TenantClaim {
    #[serde(default)]
    tid: String,
    #[serde(default)]
    appid: Option<serde_json::Value>,
    #[serde(default)]
    azp: Option<serde_json::Value>,
}

impl TenantClaim {
    /// The app the token names: `appid`, else `azp` (a string; any other type names none).
    fn app(&self) -> Option<std::sync::Arc<str>> {
        [&self.appid, &self.azp]
            .into_iter()
            .find_map(|claim| claim.as_ref().and_then(serde_json::Value::as_str))
            .map(std::sync::Arc::from)
    }
}

/// The tenant a token's `tid` names, if it may use these routes.
fn checked_tenant(tid: &str) -> Result<TenantId, ApiError> {
    let tenant =
        TenantId::parse(tid).ok_or(ApiError::Unauthorized("Access token validation failure."))?;
    if tenant
        .as_str()
        .eq_ignore_ascii_case(PERSONAL_ACCOUNT_TENANT)
    {
        return Err(ApiError::Forbidden(
            "Insufficient privileges to complete the operation. Personal Microsoft accounts \
             cannot manage user flows."
                .to_owned(),
        ));
    }
    Ok(tenant)
}

/// The token of a `Bearer` authorization header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(EMPTY)?;
    let value = value.to_str().map_err(|_| INVALID)?.trim();
    if value.is_empty() {
        return Err(EMPTY);
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(INVALID);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(EMPTY);
    }
    Ok(token)
}

const EMPTY: ApiError = ApiError::Unauthorized("Access token is empty.");
const INVALID: ApiError = ApiError::Unauthorized("Access token validation failure.");

fn bearer_claims(headers: &HeaderMap) -> Result<TenantClaim, ApiError> {
    let token = bearer_token(headers)?;
    let mut parts = token.split('.');
    let (Some(head), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(INVALID);
    };
    LENIENT_BASE64.decode(head).map_err(|_| INVALID)?;
    LENIENT_BASE64.decode(signature).map_err(|_| INVALID)?;
    let payload = LENIENT_BASE64.decode(payload).map_err(|_| INVALID)?;
    serde_json::from_slice::<TenantClaim>(&payload).map_err(|_| INVALID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn a_minted_token_names_its_tenant() {
        let token = mint(&Claims::for_tenant("contoso", &[], &[], 60)).unwrap();
        let tenant = tenant_of(
            &headers(&format!("Bearer {token}")),
            &Authenticator::Lenient,
            Access::Read,
        )
        .unwrap();
        assert_eq!(tenant.as_str(), "contoso");
        let lower = tenant_of(
            &headers(&format!("bearer {token}")),
            &Authenticator::Lenient,
            Access::Read,
        )
        .unwrap();
        assert_eq!(lower.as_str(), "contoso");
    }

    #[test]
    fn missing_or_empty_tokens_are_empty() {
        assert_eq!(
            tenant_of(&HeaderMap::new(), &Authenticator::Lenient, Access::Read),
            Err(ApiError::Unauthorized("Access token is empty."))
        );
        assert_eq!(
            tenant_of(&headers("Bearer "), &Authenticator::Lenient, Access::Read),
            Err(ApiError::Unauthorized("Access token is empty."))
        );
    }

    #[test]
    fn bad_tokens_fail_validation() {
        let no_tid = mint(&Claims::default()).unwrap();
        for bad in [
            "Basic dXNlcjpwYXNz".to_owned(),
            "Bearer not-a-jwt".to_owned(),
            "Bearer a.b".to_owned(),
            "Bearer !!.??.x".to_owned(),
            format!("Bearer {no_tid}"),
        ] {
            assert_eq!(
                tenant_of(&headers(&bad), &Authenticator::Lenient, Access::Read),
                Err(ApiError::Unauthorized("Access token validation failure.")),
                "{bad}"
            );
        }
    }

    /// A JWT of `payload` (any JSON), unsigned.
    fn jwt(payload: &serde_json::Value) -> String {
        let part = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        format!(
            "{}.{}.{}",
            part(br#"{"alg":"none"}"#),
            part(payload.to_string().as_bytes()),
            part(b"sig")
        )
    }

    #[test]
    fn lenient_mode_reads_the_tid_and_takes_any_other_claim_of_any_type() {
        let token = jwt(&serde_json::json!({
            "tid": "contoso",
            "aud": ["https://graph.microsoft.com", "api://x"],
            "exp": 1_900_000_000.25,
            "iat": "1700000000",
            "roles": "IdentityUserFlow.ReadWrite.All",
            "scp": ["a", "b"],
            "xms_unknown": {"nested": [1, null]},
        }));
        let got = tenant_of(
            &headers(&format!("Bearer {token}")),
            &Authenticator::Lenient,
            Access::Read,
        )
        .unwrap();
        assert_eq!(got.as_str(), "contoso");
        for bad in [serde_json::json!({"tid": 42}), serde_json::json!([1])] {
            let token = jwt(&bad);
            assert_eq!(
                tenant_of(
                    &headers(&format!("Bearer {token}")),
                    &Authenticator::Lenient,
                    Access::Read
                ),
                Err(ApiError::Unauthorized("Access token validation failure.")),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_memory_is_bounded_in_bytes_as_well_as_entries() {
        let padding = "p".repeat(90 * 1024);
        for i in 0..40 {
            let token = jwt(&serde_json::json!({"tid": format!("big-{i}"), "pad": padding}));
            let got = tenant_of(
                &headers(&format!("Bearer {token}")),
                &Authenticator::Lenient,
                Access::Read,
            )
            .unwrap();
            assert_eq!(got.as_str(), format!("big-{i}"));
            let bytes = TOKENS.with(|cache| cache.borrow().bytes);
            assert!(bytes <= TOKEN_CACHE_BYTES, "{bytes} bytes remembered");
        }
    }

    #[test]
    fn remembered_tokens_keep_their_own_tenant_past_the_cache_capacity() {
        let tokens: Vec<(String, HeaderMap)> = (0..TOKEN_CACHE_CAPACITY + 100)
            .map(|i| {
                let tenant = format!("tenant-{i}");
                let token = mint(&Claims::for_tenant(&tenant, &[], &[], 60)).unwrap();
                (tenant, headers(&format!("Bearer {token}")))
            })
            .collect();
        for _ in 0..2 {
            for (tenant, headers) in &tokens {
                let got = tenant_of(headers, &Authenticator::Lenient, Access::Read).unwrap();
                assert_eq!(got.as_str(), tenant);
            }
        }
        // A refused token is never remembered: it is refused every time.
        let personal = mint(&Claims::for_tenant(PERSONAL_ACCOUNT_TENANT, &[], &[], 60)).unwrap();
        let personal = headers(&format!("Bearer {personal}"));
        for _ in 0..2 {
            assert!(matches!(
                tenant_of(&personal, &Authenticator::Lenient, Access::Read),
                Err(ApiError::Forbidden(_))
            ));
        }
    }

    #[test]
    fn personal_accounts_are_refused() {
        let token = mint(&Claims::for_tenant(PERSONAL_ACCOUNT_TENANT, &[], &[], 60)).unwrap();
        assert!(matches!(
            tenant_of(
                &headers(&format!("Bearer {token}")),
                &Authenticator::Lenient,
                Access::Read
            ),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn none_mode_ignores_tokens() {
        let mode = Authenticator::None(TenantId::parse("dflt").unwrap());
        assert_eq!(
            tenant_of(&HeaderMap::new(), &mode, Access::Write)
                .unwrap()
                .as_str(),
            "dflt"
        );
    }
}
