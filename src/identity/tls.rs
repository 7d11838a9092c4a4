//! The HTTPS listener's certificates: a local CA and a server certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by it, generated at first start into a directory and kept there,
//! or a certificate and key given as PEM files; and the rustls configuration serving them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{write_private, write_public, IdentityError};

/// The CA a client trusts.
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";

/// (policy) Both certificates are valid for ten years from their making: a local tool's trust
/// should not expire under a CI pipeline. Delete the directory to make new ones.
const VALID_DAYS: i64 = 3650;

/// A server certificate chain and its key, and where the CA a client must trust is.
pub struct TlsMaterial {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The generated CA's file; `None` for a given certificate.
    pub ca_file: Option<PathBuf>,
    /// Whether this start made it.
    pub generated: bool,
}

impl TlsMaterial {
    /// The material in `dir`, or new material written there when it has none.
    pub fn load_or_generate(dir: &Path) -> Result<Self, IdentityError> {
        let files = [CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE].map(|f| dir.join(f));
        let present: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
        let generated = if present.is_empty() {
            generate(dir)?;
            true
        } else if present.len() < files.len() {
            let missing: Vec<String> = files
                .iter()
                .filter(|f| !f.exists())
                .map(|f| f.display().to_string())
                .collect();
            return Err(IdentityError::invalid(
                dir,
                format!(
                    "incomplete TLS material: {} missing (delete the directory's ca*.pem and \
                     server*.pem to make new ones; clients must then trust the new ca.pem)",
                    missing.join(", ")
                ),
            ));
        } else {
            false
        };
        let mut material = Self::from_files(&dir.join(CERT_FILE), &dir.join(KEY_FILE))?;
        material.ca_file = Some(dir.join(CA_FILE));
        material.generated = generated;
        Ok(material)
    }

    /// A certificate chain and key given as PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, IdentityError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| IdentityError::invalid(cert, format!("not PEM certificates ({e})")))?;
        if chain.is_empty() {
            return Err(IdentityError::invalid(cert, "holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| IdentityError::invalid(key, format!("not a PEM private key ({e})")))?;
        Ok(Self {
            chain,
            key,
            ca_file: None,
            generated: false,
        })
    }

    /// The rustls server configuration (HTTP/1.1, TLS 1.2 and 1.3, aws-lc-rs).
    pub fn server_config(&self) -> Result<rustls::ServerConfig, IdentityError> {
        let invalid = |e: rustls::Error| IdentityError::Invalid {
            path: "the TLS certificate".to_owned(),
            reason: e.to_string(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(invalid)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Makes a CA and a server certificate signed by it, and writes both with their keys.
fn generate(dir: &Path) -> Result<(), IdentityError> {
    let failed = |what: &'static str| {
        move |e: rcgen::Error| IdentityError::Generate {
            what,
            reason: e.to_string(),
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| IdentityError::io(dir, e))?;
    // A day back, so that a client whose clock is a little behind still accepts them.
    let now = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let until = now + time::Duration::days(VALID_DAYS);

    let ca_key = KeyPair::generate().map_err(failed("the CA key"))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("userflows-emulator local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now;
    ca.not_after = until;
    let ca_cert = ca.self_signed(&ca_key).map_err(failed("the CA"))?;

    let server_key = KeyPair::generate().map_err(failed("the server key"))?;
    let mut server = CertificateParams::default();
    server.distinguished_name = name("localhost");
    server.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().map_err(failed("the server name"))?),
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = now;
    server.not_after = until;
    let issuer = Issuer::new(ca, &ca_key);
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(failed("the server certificate"))?;

    // Keys first: a directory with certificates but no keys would be refused on the next start.
    write_private(&dir.join(CA_KEY_FILE), ca_key.serialize_pem().as_bytes())?;
    write_private(&dir.join(KEY_FILE), server_key.serialize_pem().as_bytes())?;
    write_public(&dir.join(CERT_FILE), server_cert.pem().as_bytes())?;
    write_public(&dir.join(CA_FILE), ca_cert.pem().as_bytes())?;
    Ok(())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "userflows-emulator");
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_is_kept_and_serves() {
        let dir = tempfile::tempdir().unwrap();
        let first = TlsMaterial::load_or_generate(dir.path()).unwrap();
        assert!(first.generated);
        first.server_config().unwrap();
        let ca = std::fs::read(dir.path().join(CA_FILE)).unwrap();
        let second = TlsMaterial::load_or_generate(dir.path()).unwrap();
        assert!(!second.generated);
        assert_eq!(first.chain, second.chain);
        assert_eq!(std::fs::read(dir.path().join(CA_FILE)).unwrap(), ca);
    }

    #[test]
    fn incomplete_material_is_refused_naming_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        TlsMaterial::load_or_generate(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let error = TlsMaterial::load_or_generate(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("server-key.pem"), "{error}");
    }
}
