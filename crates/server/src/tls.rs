//! The TLS listener: a configured certificate and key, or a development certificate
//! generated on first use and kept in the data directory; HTTP/2 or HTTP/1.1 by ALPN.

use anyhow::Context as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_wire::x509;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DEV_CERT: &str = "tls-dev-cert.pem";
const DEV_KEY: &str = "tls-dev-key.pem";

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// A self-signed certificate for localhost, created in this directory if missing.
    Development {
        dir: PathBuf,
    },
}

/// Creates (or reuses) the development certificate; returns (cert PEM path, key PEM path).
pub fn development_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert_path, key_path) = (dir.join(DEV_CERT), dir.join(DEV_KEY));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir)?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("cannot generate a TLS key"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("cannot load the generated TLS key"))?;
    let mut serial = [0u8; 8];
    ring::rand::SecureRandom::fill(&rng, &mut serial).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let spec = x509::CertificateSpec {
        common_name: "localhost",
        serial,
        spki: x509::p256_spki(key.public_key().as_ref()),
        signature_algorithm: x509::ecdsa_with_sha256(),
        dns_names: &["localhost"],
        ip_addresses: &["127.0.0.1".parse()?, "::1".parse()?],
    };
    let cert = x509::self_signed(&spec, |tbs| key.sign(&rng, tbs).map(|s| s.as_ref().to_vec()).unwrap_or_default());
    std::fs::write(&cert_path, x509::pem("CERTIFICATE", &cert))?;
    std::fs::write(&key_path, x509::pem("PRIVATE KEY", pkcs8.as_ref()))?;
    Ok((cert_path, key_path))
}

/// A rustls server configuration offering `h2` and `http/1.1`.
pub fn server_config(source: &TlsSource) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::Development { dir } => development_certificate(dir)?,
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path)
            .with_context(|| format!("cannot read TLS certificate {}", cert_path.display()))?,
    ))
    .collect::<Result<_, _>>()
    .with_context(|| format!("invalid PEM in {}", cert_path.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path).with_context(|| format!("cannot read TLS key {}", key_path.display()))?,
    ))
    .with_context(|| format!("invalid PEM in {}", key_path.display()))?
    .ok_or_else(|| anyhow::anyhow!("no private key in {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
