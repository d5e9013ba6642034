/// Who is calling and where: derived by the listener from the request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub account: String,
    pub region: String,
    /// `Host` header, used to build queue URLs the way the client addressed us.
    pub host: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Access key id of the caller, reported as the SenderId system attribute.
    pub access_key_id: String,
    /// Request path, for Query requests POSTed to a queue URL.
    pub path: String,
    /// `X-Amzn-Trace-Id`, stored as the AWSTraceHeader system attribute of sends.
    pub trace_header: Option<String>,
    /// The authenticated caller when `--auth sigv4` is on; `None` means policies are not
    /// enforced (local development).
    pub caller: Option<std::sync::Arc<crate::iam::Caller>>,
}

impl RequestContext {
    /// A context for calls Sluice makes itself (queues declared in the config file) and for
    /// tests: no caller, so no policies apply.
    pub fn local(account: &str, region: &str) -> RequestContext {
        RequestContext {
            account: account.to_owned(),
            region: region.to_owned(),
            host: "localhost".into(),
            scheme: "http",
            access_key_id: "sluice".into(),
            path: "/".into(),
            trace_header: None,
            caller: None,
        }
    }

    /// Authorizes `action` on `resource` (owned by `owner`, with its policy if it has one)
    /// for `caller`, with this request's condition keys.
    pub fn authorize(
        &self,
        caller: &crate::iam::Caller,
        action: &str,
        resource: &str,
        owner: &str,
        resource_policy: Option<&crate::iam::Policy>,
    ) -> Result<(), crate::iam::Denial> {
        let access = crate::iam::Access {
            action,
            resource,
            resource_owner: owner,
            resource_policy,
            context: self.condition_keys(),
        };
        crate::iam::authorize(caller, &access)
    }

    /// Condition keys every authorized request carries.
    pub fn condition_keys(&self) -> Vec<(&'static str, String)> {
        vec![("aws:SecureTransport", (self.scheme == "https").to_string())]
    }
}
