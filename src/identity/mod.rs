//! The emulator as its own identity provider: the RS256 signing key and its JWKS, the app
//! tokens it issues, the checks strict auth applies to a bearer token, the registered apps, and
//! the certificates of the HTTPS listener. Nothing here speaks HTTP: `http` serves it.

pub mod apps;
pub mod keys;
pub mod tls;
pub mod token;

use std::path::Path;

pub use apps::{App, AppError, Apps};
pub use keys::SigningKey;
pub use token::{Grants, Rejection, Verified, Verifier};

/// Why identity material could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot generate {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    #[error("cannot sign a token: {0}")]
    Sign(String),
    #[error("--app {0} is registered twice (client ids are compared ignoring case)")]
    DuplicateApp(String),
}

impl IdentityError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn invalid(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Writes a key to `path`, readable by its owner only where the system has modes.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    write_file(path, contents, 0o600)
}

/// Writes a certificate to `path`, readable by anyone (a client of another user trusts it).
fn write_public(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    write_file(path, contents, 0o644)
}

/// Writes `contents` to `path` with `mode`, through a temporary file renamed into place, so a
/// crash never leaves half a file.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(|e| IdentityError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| IdentityError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| IdentityError::io(path, e))
}

/// Reads a file as text, naming it in the error.
fn read_text(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|e| IdentityError::io(path, e))
}

/// The local token authority: the signing key and the apps it issues tokens to.
#[derive(Debug)]
pub struct Provider {
    pub key: std::sync::Arc<SigningKey>,
    pub apps: Apps,
}

impl Provider {
    /// A token for app `client_id` (authenticated by `secret`) in `tenant`, valid from `now`
    /// (seconds since the epoch).
    pub fn issue(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        now: u64,
    ) -> Result<Result<String, AppError>, IdentityError> {
        let roles = match self.apps.authenticate(client_id, secret) {
            Ok(roles) => roles,
            Err(e) => return Ok(Err(e)),
        };
        token::AppTokenClaims::new(tenant, client_id, &roles, now)
            .sign(&self.key)
            .map(Ok)
    }
}
