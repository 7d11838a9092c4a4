//! The RS256 key the emulator signs its tokens with: generated once and kept as PEM (PKCS#8),
//! or given; its JWKS form, with a `kid` that is the key's RFC 7638 thumbprint.

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use super::{read_text, write_private, IdentityError};

/// An RSA key pair for RS256, with its public JWK.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new 2048-bit key, and its PEM.
    pub fn generate() -> Result<(Self, String), IdentityError> {
        let pair =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(|e| IdentityError::Generate {
                    what: "the signing key",
                    reason: e.to_string(),
                })?;
        let pem = pair.serialize_pem();
        let key = Self::from_pem(&pem).map_err(|e| IdentityError::Generate {
            what: "the signing key",
            reason: e.to_string(),
        })?;
        Ok((key, pem))
    }

    /// A key from PEM (PKCS#1 or PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk)?;
        Ok(Self {
            encoding,
            decoding,
            jwk,
            kid,
        })
    }

    /// The key in `path`, or a new one written there (with its directory) when there is none.
    /// Returns whether it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), IdentityError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| IdentityError::io(dir, e))?;
        }
        let (key, pem) = Self::generate()?;
        write_private(path, pem.as_bytes())?;
        Ok((key, true))
    }

    /// The key in `path`.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let pem = read_text(path)?;
        Self::from_pem(&pem).map_err(|e| {
            IdentityError::invalid(path, format!("not an RSA private key in PEM ({e})"))
        })
    }

    /// The key id tokens name in their header.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, to verify tokens with.
    #[must_use]
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The JWKS document holding this key.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [&self.jwk] })
    }

    /// A JWT of `claims`, signed RS256, its header naming this key.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, IdentityError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| IdentityError::Sign(e.to_string()))
    }
}

/// A JWT of `claims` signed HS256 with `secret` (what `--jwt-secret` verifies).
pub fn sign_hs256(secret: &[u8], claims: &impl Serialize) -> Result<String, IdentityError> {
    let key = EncodingKey::from_secret(secret).map_err(|e| IdentityError::Sign(e.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .map_err(|e| IdentityError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_key_is_the_same_key_after_loading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls").join("signing-key.pem");
        let (first, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(generated);
        let (second, generated) = SigningKey::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.jwks(), second.jwks());
        let jwk = &first.jwks()["keys"][0];
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], first.kid());
        assert_eq!(jwk["e"], "AQAB");
    }

    #[test]
    fn a_file_that_is_not_a_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        std::fs::write(&path, "not a key").unwrap();
        let error = SigningKey::load_or_generate(&path).unwrap_err().to_string();
        assert!(error.contains("signing-key.pem"), "{error}");
    }
}
