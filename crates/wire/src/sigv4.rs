//! What Sluice reads from a SigV4 signature today: the credential scope.
//! Verification is a later issue; any signature is accepted.

/// Access key id and region from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sqs/aws4_request, ...`
/// or from a presigned `X-Amz-Credential` query value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

pub fn scope_from_authorization(header: &str) -> Option<CredentialScope> {
    let rest = header.trim().strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest.split(',').map(str::trim).find_map(|part| part.strip_prefix("Credential="))?;
    scope_from_credential(credential)
}

pub fn scope_from_credential(credential: &str) -> Option<CredentialScope> {
    let mut parts = credential.split('/');
    let access_key_id = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    if access_key_id.is_empty() || region.is_empty() {
        return None;
    }
    Some(CredentialScope { access_key_id, region, service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scope_from_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        let s = scope_from_authorization(h).unwrap();
        assert_eq!(s.access_key_id, "AKIDEXAMPLE");
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.service, "sqs");
    }

    #[test]
    fn rejects_other_schemes() {
        assert_eq!(scope_from_authorization("Basic abc"), None);
        assert_eq!(scope_from_credential("AKID"), None);
    }
}
