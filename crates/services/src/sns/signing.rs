//! SNS message signatures: an RSA key and a self-signed certificate that Sluice creates
//! on first use, keeps in its data directory and serves at SigningCertURL.
//! SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA, over AWS's canonical
//! "Key\nValue\n" string of the message's fields.

use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use std::path::PathBuf;
use std::sync::OnceLock;

/// AWS signs with 2048-bit RSA keys.
const KEY_BITS: usize = 2048;
const KEY_FILE: &str = "sns-signing-key.pem";
/// Path under which the listener serves the certificate.
pub const CERT_PATH: &str = "/_sluice/sns/SimpleNotificationService.pem";

struct Keys {
    key: RsaPrivateKey,
    /// The same key for ring, which signs SHA-256 (SignatureVersion 2) in 0.84 ms against
    /// the `rsa` crate's 2.9 ms here, but cannot sign SHA-1 (version 1, the default).
    sha256_signer: ring::signature::RsaKeyPair,
    cert_pem: String,
}

/// Created lazily: generating a key takes a moment, and many servers never sign.
pub struct SigningKeys {
    dir: Option<PathBuf>,
    keys: OnceLock<Result<Keys, String>>,
}

impl SigningKeys {
    pub fn new(dir: Option<PathBuf>) -> Self {
        SigningKeys { dir, keys: OnceLock::new() }
    }

    fn keys(&self) -> Result<&Keys, String> {
        self.keys.get_or_init(|| load_or_create(self.dir.as_ref())).as_ref().map_err(Clone::clone)
    }

    /// Base64 signature of `text` for SignatureVersion `version` ("1" or "2").
    pub fn sign(&self, version: &str, text: &str) -> Result<String, String> {
        let keys = self.keys()?;
        let bytes = if version == "2" {
            let signer = &keys.sha256_signer;
            let mut signature = vec![0; signer.public().modulus_len()];
            signer
                .sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    text.as_bytes(),
                    &mut signature,
                )
                .map_err(|e| format!("cannot sign: {e}"))?;
            signature
        } else {
            SigningKey::<sha1::Sha1>::new(keys.key.clone()).sign(text.as_bytes()).to_vec()
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn certificate_pem(&self) -> Result<String, String> {
        Ok(self.keys()?.cert_pem.clone())
    }
}

/// Signs for one publish, remembering what it signed: every subscription of a publish
/// signs the same text (the UnsubscribeURL, the one field that differs between them, is
/// not signed), and an RSA-2048 signature costs 2–3 ms here, so a publish to ten
/// queues signed ten times spent over 20 ms of CPU.
pub struct PublishSigner<'a> {
    keys: &'a SigningKeys,
    /// (signature version, text signed, signature).
    signed: Vec<(String, String, String)>,
}

impl<'a> PublishSigner<'a> {
    pub fn new(keys: &'a SigningKeys) -> Self {
        PublishSigner { keys, signed: Vec::new() }
    }

    /// Base64 signature of `text`, computed once per distinct text and version.
    pub fn sign(&mut self, version: &str, text: String) -> Result<String, String> {
        if let Some((_, _, signature)) = self.signed.iter().find(|(v, t, _)| v == version && *t == text) {
            return Ok(signature.clone());
        }
        let signature = self.keys.sign(version, &text)?;
        self.signed.push((version.to_owned(), text, signature.clone()));
        Ok(signature)
    }
}

fn load_or_create(dir: Option<&PathBuf>) -> Result<Keys, String> {
    let path = dir.map(|d| d.join(KEY_FILE));
    let key = match path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        Some(pem) => {
            RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| format!("{KEY_FILE} is not a PKCS#8 RSA key: {e}"))?
        }
        None => {
            let key = RsaPrivateKey::new(&mut rand_core::OsRng, KEY_BITS).map_err(|e| e.to_string())?;
            if let Some(p) = &path {
                let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
                std::fs::write(p, pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            }
            key
        }
    };
    let cert_pem = self_signed_certificate(&key)?;
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    let sha256_signer = ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| e.to_string())?;
    Ok(Keys { key, sha256_signer, cert_pem })
}

fn self_signed_certificate(key: &RsaPrivateKey) -> Result<String, String> {
    use sluice_wire::x509;
    let spki = key.to_public_key().to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
    let spec = x509::CertificateSpec {
        common_name: "sns.amazonaws.com",
        serial: rand_core::RngCore::next_u64(&mut rand_core::OsRng).to_be_bytes(),
        spki,
        signature_algorithm: x509::sha256_with_rsa(),
        dns_names: &[],
        ip_addresses: &[],
    };
    let cert = x509::self_signed(&spec, |tbs| SigningKey::<sha2::Sha256>::new(key.clone()).sign(tbs).to_vec());
    Ok(x509::pem("CERTIFICATE", &cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_signs_each_distinct_text_once() {
        let keys = SigningKeys::new(None);
        let mut signer = PublishSigner::new(&keys);
        let first = signer.sign("1", "Message\na\n".into()).unwrap();
        assert_eq!(signer.sign("1", "Message\na\n".into()).unwrap(), first);
        assert_eq!(signer.signed.len(), 1, "the same text is signed once");
        let sha256 = signer.sign("2", "Message\na\n".into()).unwrap();
        let other = signer.sign("1", "Message\nb\n".into()).unwrap();
        assert_eq!(signer.signed.len(), 3);
        assert_ne!(sha256, first, "the version is part of what is remembered");
        assert_ne!(other, first);
        // What it hands out is the key's own signature of that text.
        assert_eq!(keys.sign("1", "Message\nb\n").unwrap(), other);
        assert_eq!(keys.sign("2", "Message\na\n").unwrap(), sha256);
    }

    /// Version 2 is signed by ring: PKCS#1 v1.5 is deterministic, so its signature is the
    /// one the `rsa` crate makes with the same key, which verifies with the public key.
    #[test]
    fn version_2_signatures_are_sha256_with_rsa() {
        use rsa::signature::Verifier;
        let keys = SigningKeys::new(None);
        let text = "Message\nhello\nMessageId\nid\nTimestamp\n2026-11-22T00:00:00.000Z\n";
        let ring_signature = base64::engine::general_purpose::STANDARD.decode(keys.sign("2", text).unwrap()).unwrap();
        let key = &keys.keys().unwrap().key;
        let rsa_signature = SigningKey::<sha2::Sha256>::new(key.clone()).sign(text.as_bytes()).to_vec();
        assert_eq!(ring_signature, rsa_signature);
        let verifying = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
        let signature = rsa::pkcs1v15::Signature::try_from(ring_signature.as_slice()).unwrap();
        assert!(verifying.verify(text.as_bytes(), &signature).is_ok());
        assert!(verifying.verify(b"another text", &signature).is_err());
    }
}
