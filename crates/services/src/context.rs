/// Who is calling and where: derived by the listener from the request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The account, region, host, access key id and path, end to end: one allocation a
    /// request for the five, not five (about 600 of 35,600 instructions a SendMessage,
    /// `bench/callgrind.sh`).
    text: String,
    /// Where each of the five ends in `text`.
    ends: [usize; 5],
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `X-Amzn-Trace-Id`, stored as the AWSTraceHeader system attribute of sends.
    pub trace_header: Option<String>,
    /// The authenticated caller when `--auth sigv4` is on; `None` means policies are not
    /// enforced (local development).
    pub caller: Option<std::sync::Arc<crate::iam::Caller>>,
}

/// What a [`RequestContext`] is made of, borrowed.
pub struct ContextParts<'a> {
    pub account: &'a str,
    pub region: &'a str,
    /// `Host` header, used to build queue URLs the way the client addressed us.
    pub host: &'a str,
    pub scheme: &'static str,
    /// Access key id of the caller, reported as the SenderId system attribute.
    pub access_key_id: &'a str,
    /// Request path, for Query requests POSTed to a queue URL.
    pub path: &'a str,
    pub trace_header: Option<String>,
    pub caller: Option<std::sync::Arc<crate::iam::Caller>>,
}

impl RequestContext {
    pub fn new(parts: ContextParts<'_>) -> RequestContext {
        let five = [parts.account, parts.region, parts.host, parts.access_key_id, parts.path];
        let mut text = String::with_capacity(five.iter().map(|s| s.len()).sum());
        let ends = five.map(|s| {
            text.push_str(s);
            text.len()
        });
        RequestContext { text, ends, scheme: parts.scheme, trace_header: parts.trace_header, caller: parts.caller }
    }

    /// A context for calls Sluice makes itself (queues declared in the config file) and for
    /// tests: no caller, so no policies apply.
    pub fn local(account: &str, region: &str) -> RequestContext {
        Self::local_at(account, region, "localhost")
    }

    /// As [`RequestContext::local`], addressed to `host`.
    pub fn local_at(account: &str, region: &str, host: &str) -> RequestContext {
        RequestContext::new(ContextParts {
            account,
            region,
            host,
            scheme: "http",
            access_key_id: "sluice",
            path: "/",
            trace_header: None,
            caller: None,
        })
    }

    /// The index of each text in `ends`, in the order `new` writes them.
    const ACCOUNT: usize = 0;
    const REGION: usize = 1;
    const HOST: usize = 2;
    const ACCESS_KEY_ID: usize = 3;
    const PATH: usize = 4;

    fn part(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }

    pub fn account(&self) -> &str {
        self.part(Self::ACCOUNT)
    }

    pub fn region(&self) -> &str {
        self.part(Self::REGION)
    }

    /// `Host` header, used to build queue URLs the way the client addressed us.
    pub fn host(&self) -> &str {
        self.part(Self::HOST)
    }

    /// Access key id of the caller, reported as the SenderId system attribute.
    pub fn access_key_id(&self) -> &str {
        self.part(Self::ACCESS_KEY_ID)
    }

    /// Request path, for Query requests POSTed to a queue URL.
    pub fn path(&self) -> &str {
        self.part(Self::PATH)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_reads_back_as_given() {
        let ctx = RequestContext::new(ContextParts {
            account: "111122223333",
            region: "",
            host: "localhost:4566",
            scheme: "https",
            access_key_id: "AKID",
            path: "/111122223333/q",
            trace_header: None,
            caller: None,
        });
        assert_eq!(
            [ctx.account(), ctx.region(), ctx.host(), ctx.access_key_id(), ctx.path()],
            ["111122223333", "", "localhost:4566", "AKID", "/111122223333/q"]
        );
        assert_eq!(RequestContext::local_at("1", "eu-west-1", "h:1").host(), "h:1");
    }
}
