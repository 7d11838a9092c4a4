//! Tokens: the app tokens the local token endpoint issues (shaped like Graph's), and strict
//! auth's checks of a bearer token (signature, lifetime, audience, permissions). The tenant a
//! token names is the caller's to check; this module reads `tid` as a string.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde_json::Value;

use super::keys::SigningKey;
use super::IdentityError;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const CLOCK_SKEW_SECS: f64 = 60.0;
/// Lifetime of a token from the token endpoint, in seconds (what Entra answers).
pub const ISSUED_LIFETIME_SECS: u64 = 3599;
/// The scope (delegated) or role (application) that allows every operation of this API.
pub const READ_WRITE: &str = "IdentityUserFlow.ReadWrite.All";
/// The one that allows reads only.
pub const READ: &str = "IdentityUserFlow.Read.All";
/// Microsoft Graph's application id, one of the audiences Graph accepts.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Graph's resource URI, the audience of its tokens.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// What a verified token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grants {
    pub read: bool,
    pub write: bool,
}

impl Grants {
    /// Everything: what lenient auth allows.
    pub const ALL: Self = Self {
        read: true,
        write: true,
    };

    /// The grants of `scp` (space-separated) and `roles` (an array), either of which may be
    /// absent. A claim of the wrong JSON type grants nothing.
    fn of(scp: Option<&Value>, roles: Option<&Value>) -> Self {
        let mut grants = Self::default();
        let mut grant = |permission: &str| {
            if permission.eq_ignore_ascii_case(READ_WRITE) {
                grants.read = true;
                grants.write = true;
            } else if permission.eq_ignore_ascii_case(READ) {
                grants.read = true;
            }
        };
        let scopes = match scp {
            Some(Value::String(scopes)) => Some(scopes),
            _ => None,
        };
        let roles = match roles {
            Some(Value::Array(roles)) => Some(roles),
            _ => None,
        };
        let malformed = (scp.is_some() && scopes.is_none()) || (roles.is_some() && roles.is_none());
        if malformed {
            return Self::default();
        }
        for scope in scopes.into_iter().flat_map(|s| s.split_ascii_whitespace()) {
            grant(scope);
        }
        for role in roles.into_iter().flatten() {
            match role {
                Value::String(role) => grant(role),
                _ => return Self::default(),
            }
        }
        grants
    }
}

/// A token that passed strict auth's checks, as much of it as later requests need.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub tid: String,
    /// The app the token was issued to: `appid`, else `azp`.
    pub app: Option<String>,
    pub grants: Grants,
    /// `exp`, in seconds since the epoch.
    pub expires: f64,
    /// `nbf`, when the token has one.
    pub not_before: Option<f64>,
}

impl Verified {
    /// Whether the token is within its lifetime at `now` (seconds since the epoch).
    pub fn check_lifetime(&self, now: f64) -> Result<(), Rejection> {
        if now > self.expires + CLOCK_SKEW_SECS {
            return Err(Rejection::Expired);
        }
        if self
            .not_before
            .is_some_and(|nbf| now + CLOCK_SKEW_SECS < nbf)
        {
            return Err(Rejection::NotYetValid);
        }
        Ok(())
    }
}

/// Why strict auth refused a token: each is a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts, a header or payload that is not JSON, no string `tid`.
    Malformed,
    /// `alg: none` or an algorithm this emulator does not verify.
    Unsigned,
    /// A signature that does not verify (or HS256 with no secret configured, or an RS256 `kid`
    /// that is not the emulator's).
    Signature,
    /// No numeric `exp`.
    NoExpiry,
    Expired,
    NotYetValid,
    Audience,
}

impl Rejection {
    /// The message of the 401's Graph error.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "Access token validation failure.",
            Self::Unsigned => {
                "Access token validation failure. The token is not signed with an accepted \
                 algorithm (HS256 or RS256)."
            }
            Self::Signature => "Access token validation failure. Invalid signature.",
            Self::NoExpiry => "Lifetime validation failed, the token has no expiry.",
            Self::Expired => "Lifetime validation failed, the token is expired.",
            Self::NotYetValid => "Lifetime validation failed, the token is not yet valid.",
            Self::Audience => "Access token validation failure. Invalid audience.",
        }
    }
}

/// Strict auth's verifier: the emulator's own RS256 key, and an HS256 secret when one is set.
pub struct Verifier {
    key: Arc<SigningKey>,
    secret: Option<DecodingKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kid", &self.key.kid())
            .field("hs256", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier of tokens signed with `key` (RS256) or `secret` (HS256). An empty secret is
    /// refused.
    pub fn new(key: Arc<SigningKey>, secret: Option<&[u8]>) -> Result<Self, IdentityError> {
        let secret = secret
            .map(DecodingKey::from_secret)
            .transpose()
            .map_err(|e| IdentityError::Invalid {
                path: "--jwt-secret".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self { key, secret })
    }

    /// Checks `token` at `now` (seconds since the epoch): its signature, lifetime and
    /// audience, and reads its tenant and permissions.
    pub fn verify(&self, token: &str, now: f64) -> Result<Verified, Rejection> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unsigned_or_malformed(token))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.as_ref().ok_or(Rejection::Signature)?,
            Algorithm::RS256 => {
                if header
                    .kid
                    .as_deref()
                    .is_some_and(|kid| kid != self.key.kid())
                {
                    return Err(Rejection::Signature);
                }
                self.key.decoding_key()
            }
            _ => return Err(Rejection::Unsigned),
        };
        // The library checks the signature; the claims are checked below, so that any JSON
        // number is a time (Python's `time.time() + 3600` is a float).
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::Signature,
                _ => Rejection::Malformed,
            })?
            .claims;
        let Value::Object(claims) = claims else {
            return Err(Rejection::Malformed);
        };
        let Some(Value::String(tid)) = claims.get("tid") else {
            return Err(Rejection::Malformed);
        };
        let expires = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(Rejection::NoExpiry)?;
        let not_before = match claims.get("nbf") {
            None => None,
            Some(nbf) => Some(nbf.as_f64().ok_or(Rejection::Malformed)?),
        };
        let verified = Verified {
            tid: tid.clone(),
            app: ["appid", "azp"]
                .iter()
                .find_map(|name| claims.get(*name).and_then(Value::as_str))
                .map(str::to_owned),
            grants: Grants::of(claims.get("scp"), claims.get("roles")),
            expires,
            not_before,
        };
        verified.check_lifetime(now)?;
        if !claims.get("aud").is_some_and(is_graph_audience) {
            return Err(Rejection::Audience);
        }
        Ok(verified)
    }
}

/// Whether `aud` (a string, or an array of them) names Microsoft Graph.
fn is_graph_audience(aud: &Value) -> bool {
    let graph = |aud: &str| {
        aud.strip_suffix('/').unwrap_or(aud) == GRAPH_RESOURCE
            || aud.eq_ignore_ascii_case(GRAPH_APP_ID)
    };
    match aud {
        Value::String(aud) => graph(aud),
        Value::Array(auds) => auds.iter().any(|a| a.as_str().is_some_and(graph)),
        _ => false,
    }
}

/// A header the library does not take: `alg: none` (or another algorithm) when it is JSON,
/// else a malformed token.
fn unsigned_or_malformed(token: &str) -> Rejection {
    use base64::Engine as _;
    let head = token.split('.').next().unwrap_or_default();
    let alg = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    if alg.is_some() {
        Rejection::Unsigned
    } else {
        Rejection::Malformed
    }
}

/// The claims of a token the token endpoint issues: a Graph app token (v1.0, `idtyp: app`).
#[derive(Debug, Clone, Serialize)]
pub struct AppTokenClaims {
    pub aud: String,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub appid: String,
    pub appidacr: &'static str,
    pub idp: String,
    pub idtyp: &'static str,
    pub oid: String,
    pub roles: Vec<String>,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: &'static str,
}

impl AppTokenClaims {
    /// The claims of app `client_id`'s token in `tenant` with `roles`, valid from `now`.
    #[must_use]
    pub fn new(tenant: &str, client_id: &str, roles: &[String], now: u64) -> Self {
        let iss = format!("https://sts.windows.net/{tenant}/");
        // The app's service principal: one stable id per tenant and app.
        let oid = stable_uuid(&[tenant, client_id]);
        Self {
            aud: GRAPH_RESOURCE.to_owned(),
            idp: iss.clone(),
            iss,
            iat: now,
            nbf: now,
            exp: now + ISSUED_LIFETIME_SECS,
            appid: client_id.to_owned(),
            appidacr: "1",
            idtyp: "app",
            sub: oid.clone(),
            oid,
            roles: roles.to_vec(),
            tid: tenant.to_owned(),
            uti: uuid::Uuid::new_v4().simple().to_string(),
            ver: "1.0",
        }
    }

    /// This token, signed with the emulator's key.
    pub fn sign(&self, key: &SigningKey) -> Result<String, IdentityError> {
        key.sign(self)
    }
}

/// A UUID that depends only on `parts` (a SHA-256 of them, in UUID form).
fn stable_uuid(parts: &[&str]) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Arc<SigningKey> {
        static KEY: std::sync::OnceLock<Arc<SigningKey>> = std::sync::OnceLock::new();
        Arc::clone(KEY.get_or_init(|| Arc::new(SigningKey::generate().unwrap().0)))
    }

    const NOW: f64 = 1_800_000_000.0;

    fn claims(extra: &Value) -> Value {
        let mut claims = json!({
            "tid": "contoso", "aud": GRAPH_RESOURCE, "exp": NOW + 3600.0, "nbf": NOW - 10.0,
            "roles": [READ_WRITE],
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn verify(token: &str) -> Result<Verified, Rejection> {
        Verifier::new(key(), Some(b"s3cret"))
            .unwrap()
            .verify(token, NOW)
    }

    #[test]
    fn tokens_signed_by_the_emulator_or_with_the_secret_verify() {
        let rs = key().sign(&claims(&json!({}))).unwrap();
        let verified = verify(&rs).unwrap();
        assert_eq!(verified.tid, "contoso");
        assert_eq!(verified.grants, Grants::ALL);
        let hs =
            super::super::keys::sign_hs256(b"s3cret", &claims(&json!({"exp": NOW + 0.5}))).unwrap();
        assert!((verify(&hs).unwrap().expires - (NOW + 0.5)).abs() < 1e-9);
    }

    #[test]
    fn each_broken_rule_has_its_rejection() {
        let rs = |extra: Value| key().sign(&claims(&extra)).unwrap();
        assert_eq!(
            verify(&rs(json!({"exp": NOW - 61.0}))),
            Err(Rejection::Expired)
        );
        assert!(
            verify(&rs(json!({"exp": NOW - 59.0}))).is_ok(),
            "within the skew"
        );
        assert_eq!(
            verify(&rs(json!({"nbf": NOW + 61.0}))),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(verify(&rs(json!({"exp": null}))), Err(Rejection::NoExpiry));
        assert_eq!(
            verify(&rs(json!({"exp": "soon"}))),
            Err(Rejection::NoExpiry)
        );
        assert_eq!(
            verify(&rs(json!({"aud": "api://other"}))),
            Err(Rejection::Audience)
        );
        assert_eq!(verify(&rs(json!({"aud": null}))), Err(Rejection::Audience));
        for aud in [
            json!("https://graph.microsoft.com/"),
            json!(GRAPH_APP_ID),
            json!(["x", GRAPH_RESOURCE]),
        ] {
            assert!(verify(&rs(json!({ "aud": aud }))).is_ok(), "{aud}");
        }
        let wrong_secret = super::super::keys::sign_hs256(b"other", &claims(&json!({}))).unwrap();
        assert_eq!(verify(&wrong_secret), Err(Rejection::Signature));
        let other_key = SigningKey::generate()
            .unwrap()
            .0
            .sign(&claims(&json!({})))
            .unwrap();
        assert_eq!(verify(&other_key), Err(Rejection::Signature));
        let no_secret = Verifier::new(key(), None).unwrap().verify(
            &super::super::keys::sign_hs256(b"s3cret", &claims(&json!({}))).unwrap(),
            NOW,
        );
        assert_eq!(no_secret, Err(Rejection::Signature));
    }

    #[test]
    fn unsigned_and_malformed_tokens_are_refused() {
        use base64::Engine as _;
        let part = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let payload = part(&claims(&json!({})));
        let none = format!("{}.{payload}.", part(&json!({"alg": "none", "typ": "JWT"})));
        assert_eq!(verify(&none), Err(Rejection::Unsigned));
        let es = format!("{}.{payload}.c2ln", part(&json!({"alg": "ES256"})));
        assert_eq!(verify(&es), Err(Rejection::Unsigned));
        assert_eq!(verify("not-a-jwt"), Err(Rejection::Malformed));
        // A signed token whose payload names no tenant.
        let no_tid = key().sign(&claims(&json!({"tid": null}))).unwrap();
        assert_eq!(verify(&no_tid), Err(Rejection::Malformed));
    }

    #[test]
    fn permissions_come_from_scp_or_roles_and_a_wrong_type_grants_nothing() {
        let grants = |extra: Value| {
            verify(&key().sign(&claims(&extra)).unwrap())
                .unwrap()
                .grants
        };
        let read_only = Grants {
            read: true,
            write: false,
        };
        assert_eq!(
            grants(json!({"roles": null, "scp": "openid IdentityUserFlow.Read.All"})),
            read_only
        );
        assert_eq!(
            grants(json!({"roles": null, "scp": "identityuserflow.readwrite.all"})),
            Grants::ALL
        );
        assert_eq!(grants(json!({"roles": [READ]})), read_only);
        assert_eq!(grants(json!({"roles": null})), Grants::default());
        assert_eq!(grants(json!({"roles": READ_WRITE})), Grants::default());
        assert_eq!(
            grants(json!({"roles": null, "scp": [READ_WRITE]})),
            Grants::default()
        );
        assert_eq!(grants(json!({"roles": [READ_WRITE, 7]})), Grants::default());
    }

    #[test]
    fn issued_tokens_verify_and_name_their_app() {
        let claims = AppTokenClaims::new("contoso", "app-1", &[READ_WRITE.to_owned()], NOW as u64);
        let token = claims.sign(&key()).unwrap();
        let verified = verify(&token).unwrap();
        assert_eq!(verified.tid, "contoso");
        assert_eq!(verified.grants, Grants::ALL);
        let again = AppTokenClaims::new("contoso", "app-1", &[], NOW as u64);
        assert_eq!(
            claims.oid, again.oid,
            "one service principal per tenant and app"
        );
        assert_ne!(
            claims.oid,
            AppTokenClaims::new("fabrikam", "app-1", &[], 0).oid
        );
    }
}
