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
            SigningKey::<sha2::Sha256>::new(keys.key.clone()).sign(text.as_bytes()).to_vec()
        } else {
            SigningKey::<sha1::Sha1>::new(keys.key.clone()).sign(text.as_bytes()).to_vec()
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn certificate_pem(&self) -> Result<String, String> {
        Ok(self.keys()?.cert_pem.clone())
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
    Ok(Keys { key, cert_pem })
}

// ---- a minimal DER writer for one self-signed X.509 v3 certificate ----

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// sha256WithRSAEncryption (1.2.840.113549.1.1.11) with NULL parameters.
fn sha256_with_rsa() -> Vec<u8> {
    seq(&[der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]), der(0x05, &[])])
}

/// `CN=<name>`.
fn name(common_name: &str) -> Vec<u8> {
    let attr = seq(&[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, common_name.as_bytes())]);
    seq(&[der(0x31, &attr)])
}

/// GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn time(year: u32) -> Vec<u8> {
    der(0x18, format!("{year}0101000000Z").as_bytes())
}

fn self_signed_certificate(key: &RsaPrivateKey) -> Result<String, String> {
    let spki = key.to_public_key().to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
    let serial: [u8; 8] = rand_core::RngCore::next_u64(&mut rand_core::OsRng).to_be_bytes();
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f;
    let tbs = seq(&[
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial),
        sha256_with_rsa(),
        name("sns.amazonaws.com"),
        seq(&[time(2024), time(2049)]),
        name("sns.amazonaws.com"),
        spki,
    ]);
    let signature = SigningKey::<sha2::Sha256>::new(key.clone()).sign(&tbs).to_vec();
    let mut bit_string = vec![0u8];
    bit_string.extend(signature);
    let cert = seq(&[tbs, sha256_with_rsa(), der(0x03, &bit_string)]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(pem)
}
