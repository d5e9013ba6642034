//! AWS Signature Version 4: reading the credential scope (always) and verifying the
//! signature (when authentication is on), for the header form (`Authorization:
//! AWS4-HMAC-SHA256 …`) and the presigned query form (`X-Amz-Signature=…`), as non-S3
//! services do: the path is URI-encoded again as received (double encoding), query pairs
//! are re-encoded and sorted, header values trimmed with inner spaces collapsed.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Access key id and region from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sqs/aws4_request, ...`
/// or from a presigned `X-Amz-Credential` query value; borrowed from it, as the request
/// context copies what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope<'a> {
    pub access_key_id: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The credential scope an `Authorization` header's value names, read from its bytes:
/// only the credential is checked as text. Checking the whole value (`to_str`, some 200
/// bytes) and splitting it all at commas took 300 more instructions a SendMessage
/// (`bench/callgrind.sh`: 56,279 → 55,976).
pub fn scope_from_authorization(header: &[u8]) -> Option<CredentialScope<'_>> {
    const KEY: &[u8] = b"Credential=";
    let rest = header.trim_ascii().strip_prefix(b"AWS4-HMAC-SHA256")?;
    // First, as SDKs write it; else wherever it is among the comma-separated members.
    let credential = match rest.trim_ascii_start().strip_prefix(KEY) {
        Some(first) => first,
        None => rest.split(|b| *b == b',').map(<[u8]>::trim_ascii).find_map(|part| part.strip_prefix(KEY))?,
    };
    let end = memchr::memchr(b',', credential).unwrap_or(credential.len());
    scope_from_credential(std::str::from_utf8(credential[..end].trim_ascii_end()).ok()?)
}

pub fn scope_from_credential(credential: &str) -> Option<CredentialScope<'_>> {
    let mut parts = crate::fields::split_ascii(credential, b'/');
    let access_key_id = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?;
    let service = parts.next()?;
    if access_key_id.is_empty() || region.is_empty() {
        return None;
    }
    Some(CredentialScope { access_key_id, region, service })
}

/// AWS's limit on the difference between the signing time and the server's clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// The longest a presigned request may be valid (7 days).
pub const MAX_EXPIRES_SECS: i64 = 604_800;

/// Why a request's signature was not accepted; each maps to one AWS error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No Authorization header and no presigned query (MissingAuthenticationToken).
    #[error("Request is missing Authentication Token")]
    Missing,
    /// A signature that lacks a part or is malformed (IncompleteSignature).
    #[error("{0}")]
    Incomplete(String),
    /// The signature is wrong, or signed too far from now (SignatureDoesNotMatch).
    #[error("{0}")]
    DoesNotMatch(String),
    /// A presigned request past its X-Amz-Expires (RequestExpired).
    #[error("{0}")]
    Expired(String),
}

/// A request as received: raw (still percent-encoded) path and query, every header.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Header names in any case; repeated headers appear repeatedly.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The signature a request carries, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub amz_date: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub security_token: Option<String>,
    /// X-Amz-Expires of a presigned request.
    pub expires_secs: Option<i64>,
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            use crate::query::hex_digit;
            if let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the signature of `req`, in header or presigned form.
pub fn parse(req: &Request) -> Result<Signature, SigError> {
    if let Some(auth) = header(req, "authorization") {
        let rest = auth
            .trim()
            .strip_prefix("AWS4-HMAC-SHA256")
            .ok_or_else(|| SigError::Incomplete("Unsupported Authorization scheme; use AWS4-HMAC-SHA256.".into()))?;
        let field = |name: &str| rest.split(',').map(str::trim).find_map(|p| p.strip_prefix(name));
        let missing = |what: &str| {
            SigError::Incomplete(format!(
                "Authorization header requires '{what}' parameter. Authorization={}",
                auth.trim()
            ))
        };
        let credential = field("Credential=").ok_or_else(|| missing("Credential"))?;
        let signed = field("SignedHeaders=").ok_or_else(|| missing("SignedHeaders"))?;
        let signature = field("Signature=").ok_or_else(|| missing("Signature"))?;
        let amz_date = header(req, "x-amz-date").ok_or_else(|| {
            SigError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )
        })?;
        return build(credential, signed, signature, amz_date, header(req, "x-amz-security-token"), None);
    }
    let pairs = query_pairs(req.query);
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(signature) = get("X-Amz-Signature") else { return Err(SigError::Missing) };
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(SigError::Incomplete("X-Amz-Algorithm must be AWS4-HMAC-SHA256.".into()));
    }
    let need = |name: &str| {
        get(name)
            .ok_or_else(|| SigError::Incomplete(format!("Query-string authentication requires the {name} parameter.")))
    };
    let expires = need("X-Amz-Expires")?
        .parse::<i64>()
        .map_err(|_| SigError::Incomplete("X-Amz-Expires must be a number of seconds.".into()))?;
    if !(0..=MAX_EXPIRES_SECS).contains(&expires) {
        return Err(SigError::Incomplete("X-Amz-Expires must be between 0 and 604800 seconds.".into()));
    }
    build(
        need("X-Amz-Credential")?,
        need("X-Amz-SignedHeaders")?,
        signature,
        need("X-Amz-Date")?,
        get("X-Amz-Security-Token"),
        Some(expires),
    )
}

fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    amz_date: &str,
    token: Option<&str>,
    expires_secs: Option<i64>,
) -> Result<Signature, SigError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped to a valid region and service: {credential}"
        )));
    };
    if terminator != "aws4_request" {
        return Err(SigError::DoesNotMatch(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if parse_amz_date(amz_date).is_none() {
        return Err(SigError::Incomplete(format!("Invalid X-Amz-Date: {amz_date}")));
    }
    if !amz_date.starts_with(date) {
        return Err(SigError::DoesNotMatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}'",
            &amz_date[..8]
        )));
    }
    Ok(Signature {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        amz_date: amz_date.to_owned(),
        signed_headers: signed.split(';').map(|h| h.trim().to_ascii_lowercase()).collect(),
        signature: signature.to_owned(),
        security_token: token.map(str::to_owned),
        expires_secs,
    })
}

/// `YYYYMMDDTHHMMSSZ` → epoch seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::civil::days_from_civil(y, m as u32, d as u32);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn format_amz_date(epoch: i64) -> String {
    let t = crate::civil::from_epoch_ms(epoch * 1000);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

fn sha256_hex(data: &[u8]) -> String {
    hex_of(&Sha256::digest(data))
}

/// A 32-byte digest in lower-case hex, through a stack buffer: `hex::encode` collects one
/// `char` at a time (1.5% of the load generator's samples in sqs-cycle).
fn hex_of(digest: &[u8]) -> String {
    let mut digits = [0u8; 64];
    hex::encode_to_slice(digest, &mut digits).expect("a 32-byte digest is 64 hex digits");
    String::from_utf8_lossy(&digits).into_owned()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The key a secret derives for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The canonical request for `sig` over `req` with the given payload hash.
pub fn canonical_request(req: &Request, sig: &Signature, payload_hash: &str) -> Result<String, SigError> {
    let mut pairs: Vec<(String, String)> = query_pairs(req.query)
        .into_iter()
        .filter(|(k, _)| !(sig.expires_secs.is_some() && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    let carries = |name: &str| req.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if let Some(name) = sig.signed_headers.iter().find(|name| !carries(name)) {
        return Err(SigError::DoesNotMatch(format!("The request does not carry the signed header {name}.")));
    }
    let groups = sig.signed_headers.iter().map(|name| {
        let values = req.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        (name.as_str(), values)
    });
    Ok(canonical_text(req.method, req.path, &pairs, groups, payload_hash).0)
}

/// The canonical request, written into one string (its pieces joined and formatted apart
/// were a tenth of the load generator's time in sqs-cycle, which signs every send), and
/// the signed-header list it names. `headers` are the signed headers in the order listed,
/// each name (in lower case) with its values in the order they came; an empty `path` is
/// `/`.
fn canonical_text<'a, V>(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: impl Iterator<Item = (&'a str, V)>,
    payload_hash: &str,
) -> (String, String)
where
    V: Iterator<Item = &'a str>,
{
    let mut out = String::with_capacity(512);
    let mut signed = String::with_capacity(64);
    out.push_str(method);
    out.push('\n');
    let path = if path.is_empty() { "/" } else { path };
    out.push_str(&uri_encode(&normalize_path(path), true));
    out.push('\n');
    for (i, (k, v)) in query.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('\n');
    for (i, (name, values)) in headers.enumerate() {
        if i > 0 {
            signed.push(';');
        }
        signed.push_str(name);
        out.push_str(name);
        out.push(':');
        // Several values joined by commas.
        for (j, value) in values.enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_collapsed(&mut out, value);
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed);
    out.push('\n');
    out.push_str(payload_hash);
    (out, signed)
}

/// The credential scope a signature is made for: `date/region/service/aws4_request`.
fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// What is signed: the algorithm, the time, the credential scope and the canonical
/// request's hash.
fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    let mut out = String::with_capacity(20 + amz_date.len() + scope.len() + 64);
    for part in ["AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", &sha256_hex(canonical.as_bytes())] {
        out.push_str(part);
    }
    out
}

/// A header value as the canonical request has it: trimmed, each run of whitespace one
/// space.
fn push_collapsed(out: &mut String, value: &str) {
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// Removes `.` and `..` segments and repeated slashes, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

/// The signature `secret` gives `req` under `sig`'s scope.
pub fn expected_signature(
    req: &Request,
    sig: &Signature,
    secret: &str,
    payload_hash: &str,
) -> Result<String, SigError> {
    let canonical = canonical_request(req, sig, payload_hash)?;
    let scope = credential_scope(&sig.date, &sig.region, &sig.service);
    let key = signing_key(secret, &sig.date, &sig.region, &sig.service);
    Ok(hex_of(&hmac(&key, string_to_sign(&sig.amz_date, &scope, &canonical).as_bytes())))
}

/// The hex SHA-256 of a request body, as SigV4 signs it.
pub fn payload_hash(body: &[u8]) -> String {
    sha256_hex(body)
}

/// Signs requests in the header form as an SDK does, deriving the day's signing key once
/// (for `sluice bench`, which must sign faster than servers answer).
pub struct Signer {
    access_key_id: String,
    secret: String,
    region: String,
    service: String,
    key: Option<(String, Vec<u8>)>,
}

impl Signer {
    pub fn new(access_key_id: &str, secret: &str, region: &str, service: &str) -> Signer {
        Signer {
            access_key_id: access_key_id.into(),
            secret: secret.into(),
            region: region.into(),
            service: service.into(),
            key: None,
        }
    }

    /// The `X-Amz-Date` and `Authorization` values for a request whose headers (all of
    /// them signed, `host` included) are `headers`, at `now` (epoch seconds).
    pub fn sign(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> (String, String) {
        self.sign_hashed(method, path, headers, &payload_hash(body), now)
    }

    /// As [`Signer::sign`], with the body's SHA-256 (hex) already computed, for a body
    /// sent many times.
    pub fn sign_hashed(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        payload_hash: &str,
        now: i64,
    ) -> (String, String) {
        // Through `canonical_text` and `string_to_sign` as the verifier, without a
        // `Signature` and `canonical_request`'s copies of every header and part: the load
        // generator signs every send whose body differs.
        let amz_date = format_amz_date(now);
        let date = &amz_date[..8];
        // Every header is signed: by lower-case name, values of one name in their order.
        let mut all: Vec<(std::borrow::Cow<'_, str>, &str)> = headers
            .iter()
            .map(|(k, v)| {
                let name = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                    std::borrow::Cow::Owned(k.to_ascii_lowercase())
                } else {
                    std::borrow::Cow::Borrowed(k.as_str())
                };
                (name, v.as_str())
            })
            .collect();
        all.push((std::borrow::Cow::Borrowed("x-amz-date"), amz_date.as_str()));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let groups =
            all.chunk_by(|a, b| a.0 == b.0).map(|one_name| (&*one_name[0].0, one_name.iter().map(|(_, v)| *v)));
        let (canonical, signed) = canonical_text(method, path, &[], groups, payload_hash);
        let scope = credential_scope(date, &self.region, &self.service);
        if self.key.as_ref().is_none_or(|(d, _)| d != date) {
            self.key = Some((date.to_owned(), signing_key(&self.secret, date, &self.region, &self.service)));
        }
        let key = &self.key.as_ref().expect("derived above").1;
        let signature = hex_of(&hmac(key, string_to_sign(&amz_date, &scope, &canonical).as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.access_key_id
        );
        (amz_date, authorization)
    }
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `sig` (from [`parse`]) against `secret` at `now` (epoch seconds).
pub fn verify(req: &Request, sig: &Signature, secret: &str, now: i64) -> Result<(), SigError> {
    let signed_at = parse_amz_date(&sig.amz_date).unwrap_or(0);
    if signed_at > now + MAX_SKEW_SECS {
        return Err(SigError::DoesNotMatch(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            sig.amz_date,
            format_amz_date(now + MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    match sig.expires_secs {
        Some(expires) if now > signed_at + expires => {
            return Err(SigError::Expired("Request has expired.".into()));
        }
        None if signed_at < now - MAX_SKEW_SECS => {
            return Err(SigError::DoesNotMatch(format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                sig.amz_date,
                format_amz_date(now - MAX_SKEW_SECS),
                format_amz_date(now)
            )));
        }
        _ => {}
    }
    if !sig.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::DoesNotMatch("The host header must be signed.".into()));
    }
    let body_hash = match header(req, "x-amz-content-sha256") {
        Some(h) => h.to_owned(),
        None => sha256_hex(req.body),
    };
    let mut candidates = vec![body_hash];
    if sig.expires_secs.is_some() {
        // Presigners may leave the payload unsigned.
        candidates.push("UNSIGNED-PAYLOAD".into());
    }
    for payload_hash in candidates {
        let expected = expected_signature(req, sig, secret, &payload_hash)?;
        if constant_time_eq(expected.as_bytes(), sig.signature.as_bytes()) {
            return Ok(());
        }
    }
    Err(SigError::DoesNotMatch(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scope_from_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        let s = scope_from_authorization(h.as_bytes()).unwrap();
        assert_eq!(s.access_key_id, "AKIDEXAMPLE");
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.service, "sqs");
    }

    #[test]
    fn rejects_other_schemes() {
        assert_eq!(scope_from_authorization(b"Basic abc"), None);
        // The credential itself must be text; the rest of the value is not read as text.
        assert_eq!(scope_from_authorization(b"AWS4-HMAC-SHA256 Credential=AK\xffID/d/r/s/aws4_request"), None);
        let binary_signature = b"AWS4-HMAC-SHA256 Credential=AKID/d/eu-west-2/sqs/aws4_request, Signature=\xff";
        assert_eq!(scope_from_authorization(binary_signature).map(|s| s.region), Some("eu-west-2"));
        // Anywhere among the members, but only as a member's name.
        let last = b"AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc,Credential=AKID/d/us-west-1/sqs/aws4_request ";
        assert_eq!(scope_from_authorization(last).map(|s| s.region), Some("us-west-1"));
        let inside = b"AWS4-HMAC-SHA256 SignedHeaders=xCredential=AKID/d/us-west-1/sqs/aws4_request";
        assert_eq!(scope_from_authorization(inside), None);
        assert_eq!(scope_from_credential("AKID"), None);
    }

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z, the AWS SigV4 test suite's time.
    const SUITE_NOW: i64 = 1_440_938_160;

    fn suite_headers(signature: &str) -> Vec<(String, String)> {
        vec![
            ("Host".into(), "example.amazonaws.com".into()),
            ("X-Amz-Date".into(), "20150830T123600Z".into()),
            (
                "Authorization".into(),
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"),
            ),
        ]
    }

    fn check(method: &str, query: &str, signature: &str, now: i64) -> Result<(), SigError> {
        let headers = suite_headers(signature);
        let req = Request { method, path: "/", query, headers: &headers, body: b"" };
        let sig = parse(&req)?;
        verify(&req, &sig, SECRET, now)
    }

    #[test]
    fn aws_test_suite_vectors_verify() {
        assert_eq!(
            hex::encode(signing_key(SECRET, "20150830", "us-east-1", "service")),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
        );
        // get-vanilla, get-vanilla-query-order-key-case, post-vanilla
        check("GET", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", SUITE_NOW).unwrap();
        check(
            "GET",
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            SUITE_NOW,
        )
        .unwrap();
        check("POST", "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b", SUITE_NOW).unwrap();
    }

    #[test]
    fn the_signer_produces_the_test_suite_signature_and_verifies() {
        let mut signer = Signer::new("AKIDEXAMPLE", SECRET, "us-east-1", "service");
        let headers = vec![("Host".to_string(), "example.amazonaws.com".to_string())];
        let (amz_date, authorization) = signer.sign("POST", "/", &headers, b"", SUITE_NOW);
        assert_eq!(amz_date, "20150830T123600Z");
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        // A body and more headers: what the signer produces, the verifier accepts.
        let mut headers = headers;
        headers.push(("X-Amz-Target".into(), "AmazonSQS.SendMessage".into()));
        // A name twice (its values joined in order), runs of spaces, one already lower case.
        headers.push(("x-custom".into(), "  one   two ".into()));
        headers.push(("X-Custom".into(), "three".into()));
        headers.push(("a-first".into(), "1".into()));
        let body = br#"{"QueueUrl":"q","MessageBody":"m"}"#;
        let (amz_date, authorization) = signer.sign("POST", "/", &headers, body, SUITE_NOW + 60);
        headers.push(("X-Amz-Date".into(), amz_date));
        headers.push(("Authorization".into(), authorization));
        let req = Request { method: "POST", path: "/", query: "", headers: &headers, body };
        let sig = parse(&req).unwrap();
        assert!(verify(&req, &sig, SECRET, SUITE_NOW + 60).is_ok());
    }

    #[test]
    fn wrong_signatures_time_and_parts_are_refused() {
        let good = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let bad = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf32";
        assert!(matches!(check("GET", "", bad, SUITE_NOW), Err(SigError::DoesNotMatch(_))));
        assert!(matches!(check("POST", "", good, SUITE_NOW), Err(SigError::DoesNotMatch(_))), "method is signed");
        assert!(check("GET", "", good, SUITE_NOW + MAX_SKEW_SECS).is_ok(), "15 minutes of skew are allowed");
        let late = check("GET", "", good, SUITE_NOW + MAX_SKEW_SECS + 1).unwrap_err();
        assert_eq!(
            late.to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)"
        );
        assert!(matches!(check("GET", "", good, SUITE_NOW - MAX_SKEW_SECS - 1), Err(SigError::DoesNotMatch(_))));
        let headers = vec![(
            "Authorization".to_string(),
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sqs/aws4_request".to_string(),
        )];
        let req = Request { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
        assert!(matches!(parse(&req), Err(SigError::Incomplete(_))));
        let req = Request { method: "GET", path: "/", query: "", headers: &[], body: b"" };
        assert_eq!(parse(&req), Err(SigError::Missing));
    }

    #[test]
    fn presigned_requests_verify_until_they_expire() {
        // Sign a presigned GET with this module's own canonical form, then verify it.
        let query_unsigned = "Action=ListQueues&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fsqs%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host";
        let headers = vec![("host".to_string(), "localhost:4566".to_string())];
        let req = Request { method: "GET", path: "/", query: query_unsigned, headers: &headers, body: b"" };
        let mut sig =
            build("AKIDEXAMPLE/20150830/us-east-1/sqs/aws4_request", "host", "", "20150830T123600Z", None, Some(60))
                .unwrap();
        sig.signature = expected_signature(&req, &sig, SECRET, &sha256_hex(b"")).unwrap();
        let query = format!("{query_unsigned}&X-Amz-Signature={}", sig.signature);
        let req = Request { method: "GET", path: "/", query: &query, headers: &headers, body: b"" };
        let parsed = parse(&req).unwrap();
        assert_eq!(parsed.expires_secs, Some(60));
        verify(&req, &parsed, SECRET, SUITE_NOW + 60).unwrap();
        assert!(matches!(verify(&req, &parsed, SECRET, SUITE_NOW + 61), Err(SigError::Expired(_))));
        assert!(matches!(verify(&req, &parsed, "other", SUITE_NOW), Err(SigError::DoesNotMatch(_))));
    }

    #[test]
    fn paths_are_encoded_twice_and_normalized() {
        let headers =
            vec![("host".to_string(), "h".to_string()), ("x-amz-date".to_string(), "20150830T123600Z".to_string())];
        let req =
            Request { method: "GET", path: "/a/./b/../c%20d/", query: "b=%7e&a=x%2By", headers: &headers, body: b"" };
        let sig =
            build("AKID/20150830/us-east-1/sqs/aws4_request", "host;x-amz-date", "", "20150830T123600Z", None, None)
                .unwrap();
        let canonical = canonical_request(&req, &sig, "UNSIGNED-PAYLOAD").unwrap();
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[1], "/a/c%2520d/");
        assert_eq!(lines[2], "a=x%2By&b=~");
        assert_eq!(percent_decode("%e1%88%b4%zz%"), "\u{1234}%zz%");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(SUITE_NOW));
        assert_eq!(format_amz_date(SUITE_NOW), "20150830T123600Z");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let headers = vec![
            ("host".to_string(), "h".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
            ("My-Header".to_string(), "  a   b  ".to_string()),
            ("my-header".to_string(), "c".to_string()),
        ];
        let req = Request { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
        let sig = build(
            "AKID/20150830/us-east-1/sqs/aws4_request",
            "host;my-header;x-amz-date",
            "",
            "20150830T123600Z",
            None,
            None,
        )
        .unwrap();
        let canonical = canonical_request(&req, &sig, "x").unwrap();
        assert!(canonical.contains("\nmy-header:a b,c\n"), "{canonical}");
    }
}
