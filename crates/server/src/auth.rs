//! Request authentication. `--auth off` (the default for local development) accepts any
//! signature and takes the account from the access key; `--auth sigv4` verifies every
//! request's SigV4 signature against the configured credentials and acts as the
//! credential's account. `/health` and `/_sluice/*` stay open.

use crate::head::RequestHead;
use sluice_services::iam::{Caller, Policy, Principal};
use sluice_wire::sigv4::{self, SigError};
use sluice_wire::AwsError;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One configured credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub name: Option<String>,
    /// When set, requests must carry this `X-Amz-Security-Token` (temporary credentials);
    /// when unset, a request carrying any token is refused, as AWS refuses unknown tokens.
    pub session_token: Option<String>,
    /// Limits what the credential may do (least privilege); without one it acts as its
    /// account's root.
    pub identity_policy: Option<Arc<Policy>>,
}

impl Credential {
    /// `ACCESS_KEY_ID:SECRET:ACCOUNT_ID` (the `--credential` and `SLUICE_CREDENTIALS` form).
    pub fn parse_triple(s: &str) -> anyhow::Result<Credential> {
        let mut parts = s.splitn(3, ':');
        let (Some(akid), Some(secret), Some(account)) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("a credential is ACCESS_KEY_ID:SECRET:ACCOUNT_ID, got {s}");
        };
        let c = Credential {
            access_key_id: akid.to_owned(),
            secret_access_key: secret.to_owned(),
            account_id: account.to_owned(),
            name: None,
            session_token: None,
            identity_policy: None,
        };
        c.check()?;
        Ok(c)
    }

    /// The caller this credential authenticates as.
    pub fn caller(&self) -> Caller {
        Caller {
            principal: Principal::for_credential(&self.account_id, self.name.as_deref()),
            identity_policy: self.identity_policy.clone(),
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            anyhow::bail!("a credential needs an access key id and a secret");
        }
        if self.account_id.len() != 12 || !self.account_id.chars().all(|c| c.is_ascii_digit()) {
            anyhow::bail!("credential {}: account id must be 12 digits", self.access_key_id);
        }
        Ok(())
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthMode {
    #[default]
    Off,
    /// Verify SigV4 against these credentials, by access key id.
    SigV4(BTreeMap<String, Credential>),
}

/// The AWS error for a signature problem. Status and Query codes are AWS's common
/// errors; JSON services name the same conditions with their exception types.
pub fn sig_error(e: &SigError) -> AwsError {
    match e {
        SigError::Missing => {
            AwsError::new(403, "MissingAuthenticationTokenException", "MissingAuthenticationToken", e.to_string())
        }
        SigError::Incomplete(m) => AwsError::new(400, "IncompleteSignatureException", "IncompleteSignature", m.clone()),
        SigError::DoesNotMatch(m) => {
            AwsError::new(403, "InvalidSignatureException", "SignatureDoesNotMatch", m.clone())
        }
        SigError::Expired(m) => AwsError::new(400, "RequestExpired", "RequestExpired", m.clone()),
    }
}

fn unknown_key() -> AwsError {
    AwsError::new(
        403,
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
}

/// Verifies the request's signature; the credential it was signed with.
pub fn authenticate<'a>(
    credentials: &'a BTreeMap<String, Credential>,
    head: &RequestHead,
    body: &[u8],
    now_secs: i64,
) -> Result<&'a Credential, AwsError> {
    let mut headers: Vec<(String, String)> = head
        .headers
        .each()
        .map(|(k, v)| (String::from_utf8_lossy(k).to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    if head.headers.get("host").is_none() {
        // HTTP/2 carries the host as :authority, which clients sign as `host`.
        if let Some(authority) = head.uri.authority() {
            headers.push(("host".into(), authority.to_string()));
        }
    }
    let req = sigv4::Request {
        method: head.method.as_str(),
        path: head.uri.path(),
        query: head.uri.query().unwrap_or(""),
        headers: &headers,
        body,
    };
    let sig = sigv4::parse(&req).map_err(|e| sig_error(&e))?;
    let credential = credentials.get(&sig.access_key_id).ok_or_else(unknown_key)?;
    sigv4::verify(&req, &sig, &credential.secret_access_key, now_secs).map_err(|e| sig_error(&e))?;
    let token_matches = match (&credential.session_token, &sig.security_token) {
        (None, None) => true,
        (Some(want), Some(given)) => sigv4::constant_time_eq(want.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if !token_matches {
        return Err(unknown_key());
    }
    Ok(credential)
}
