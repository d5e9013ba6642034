//! A minimal DER writer for one self-signed X.509 v3 certificate: enough for the SNS
//! signing certificate and the development TLS certificate, without an X.509 dependency.

/// A DER TLV.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
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

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// sha256WithRSAEncryption (1.2.840.113549.1.1.11) with NULL parameters.
pub fn sha256_with_rsa() -> Vec<u8> {
    seq(&[der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]), der(0x05, &[])])
}

/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
pub fn ecdsa_with_sha256() -> Vec<u8> {
    seq(&[der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])])
}

/// SubjectPublicKeyInfo of an uncompressed P-256 point.
pub fn p256_spki(public_point: &[u8]) -> Vec<u8> {
    let algorithm = seq(&[
        der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
        der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
    ]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(public_point);
    seq(&[algorithm, der(0x03, &bits)])
}

/// `CN=<name>`.
fn name(common_name: &str) -> Vec<u8> {
    let attr = seq(&[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, common_name.as_bytes())]);
    seq(&[der(0x31, &attr)])
}

/// GeneralizedTime `YYYY0101000000Z`.
fn time(year: u32) -> Vec<u8> {
    der(0x18, format!("{year}0101000000Z").as_bytes())
}

/// subjectAltName with DNS names and IP addresses.
fn subject_alt_names(dns: &[&str], ips: &[std::net::IpAddr]) -> Vec<u8> {
    let mut names = Vec::new();
    for d in dns {
        names.extend(der(0x82, d.as_bytes()));
    }
    for ip in ips {
        let bytes = match ip {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        names.extend(der(0x87, &bytes));
    }
    let ext = seq(&[der(0x06, &[0x55, 0x1d, 0x11]), der(0x04, &der(0x30, &names))]);
    der(0xa3, &seq(&[ext]))
}

/// What goes into the certificate.
pub struct CertificateSpec<'a> {
    pub common_name: &'a str,
    pub serial: [u8; 8],
    pub spki: Vec<u8>,
    pub signature_algorithm: Vec<u8>,
    pub dns_names: &'a [&'a str],
    pub ip_addresses: &'a [std::net::IpAddr],
}

/// A self-signed certificate in DER; `sign` signs the to-be-signed bytes with the key
/// whose public half is `spec.spki`.
pub fn self_signed(spec: &CertificateSpec<'_>, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut serial = spec.serial.to_vec();
    serial[0] &= 0x7f;
    let mut tbs_parts = vec![
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial),
        spec.signature_algorithm.clone(),
        name(spec.common_name),
        seq(&[time(2024), time(2049)]),
        name(spec.common_name),
        spec.spki.clone(),
    ];
    if !spec.dns_names.is_empty() || !spec.ip_addresses.is_empty() {
        tbs_parts.push(subject_alt_names(spec.dns_names, spec.ip_addresses));
    }
    let tbs = seq(&tbs_parts);
    let signature = sign(&tbs);
    let mut bit_string = vec![0u8];
    bit_string.extend(signature);
    seq(&[tbs, spec.signature_algorithm.clone(), der(0x03, &bit_string)])
}

/// PEM armour with 64-character lines.
pub fn pem(label: &str, der_bytes: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der_bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_the_multi_byte_form() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
