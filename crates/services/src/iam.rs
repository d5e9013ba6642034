//! The IAM policy language, as far as resource policies (SQS queue `Policy`, SNS topic
//! `Policy`, Kinesis resource policies) and Sluice's per-credential identity policies use
//! it, and AWS's rule for combining a caller's identity policy with a resource's policy.
//!
//! Supported: `Effect`, `Principal`/`NotPrincipal` (`*`, `AWS` accounts, root and user
//! ARNs, `Service`), `Action`/`NotAction` and `Resource`/`NotResource` with `*` and `?`
//! wildcards, and `Condition` with the String*, Arn*, `Bool` and `Null` operators (with
//! `…IfExists` and the `ForAnyValue:`/`ForAllValues:` set prefixes, which single-valued
//! keys make equivalent). A policy using anything else is refused when it is set, never
//! silently ignored.

use serde_json::Value;
use std::sync::Arc;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An IAM identity: `arn:aws:iam::ACCOUNT:root` or `arn:aws:iam::ACCOUNT:user/NAME`.
    Aws { arn: String, account: String },
    /// An AWS service acting for one of its resources, such as SNS delivering to a queue.
    Service(String),
}

impl Principal {
    /// The identity of a configured credential: its account's root, or the named user.
    pub fn for_credential(account: &str, name: Option<&str>) -> Principal {
        let arn = match name {
            Some(n) => format!("arn:aws:iam::{account}:user/{n}"),
            None => format!("arn:aws:iam::{account}:root"),
        };
        Principal::Aws { arn, account: account.to_owned() }
    }

    fn describe(&self) -> &str {
        match self {
            Principal::Aws { arn, .. } => arn,
            Principal::Service(name) => name,
        }
    }
}

/// An authenticated caller and the identity policy that limits it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// `None`: the caller acts as its account's root, allowed everything in its own account.
    pub identity_policy: Option<Arc<Policy>>,
}

/// One request to authorize.
pub struct Access<'a> {
    /// `service:Operation`, as policies name it (`sqs:SendMessage`).
    pub action: &'a str,
    /// The resource's ARN, or `*` for actions that name no resource (ListQueues).
    pub resource: &'a str,
    /// The account that owns the resource.
    pub resource_owner: &'a str,
    /// The resource's own policy, when the service has one and the action may use it.
    pub resource_policy: Option<&'a Policy>,
    /// Request-specific condition keys (`aws:SecureTransport`, `aws:SourceArn`, …).
    pub context: Vec<(&'static str, String)>,
}

/// A refused request, with AWS's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub message: String,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    allow: bool,
    /// `None` in identity policies, where the principal is the policy's holder.
    principal: Option<Principals>,
    principal_negated: bool,
    actions: Patterns,
    /// `None`: the resource the policy is attached to.
    resources: Option<Patterns>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Patterns {
    values: Vec<String>,
    negated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Principals {
    everyone: bool,
    aws: Vec<String>,
    services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    operator: Operator,
    if_exists: bool,
    /// Lower case: condition keys are case-insensitive.
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    /// ArnEquals and ArnLike behave the same in IAM: both take wildcards per ARN part.
    ArnLike,
    ArnNotLike,
    Bool,
    Null,
}

impl Operator {
    fn parse(name: &str) -> Option<Operator> {
        Some(match name {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringEqualsIgnoreCase" => Operator::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Operator::StringNotEqualsIgnoreCase,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            "ArnEquals" | "ArnLike" => Operator::ArnLike,
            "ArnNotEquals" | "ArnNotLike" => Operator::ArnNotLike,
            "Bool" => Operator::Bool,
            "Null" => Operator::Null,
            _ => return None,
        })
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
                | Operator::ArnNotLike
        )
    }

    /// Whether `actual` matches `pattern` under the positive form of the operator.
    fn matches(self, pattern: &str, actual: &str) -> bool {
        match self {
            Operator::StringEquals | Operator::StringNotEquals => pattern == actual,
            Operator::StringEqualsIgnoreCase | Operator::StringNotEqualsIgnoreCase => {
                pattern.eq_ignore_ascii_case(actual)
            }
            Operator::StringLike | Operator::StringNotLike => glob(pattern, actual, false),
            Operator::ArnLike | Operator::ArnNotLike => arn_like(pattern, actual),
            Operator::Bool => pattern.eq_ignore_ascii_case(actual),
            Operator::Null => false,
        }
    }
}

/// A policy document's statements as a list, for AddPermission and RemovePermission to
/// edit: a single statement object (valid IAM) becomes a one-element list.
pub fn statement_list(policy: &mut Value) -> Option<&mut Vec<Value>> {
    let statement = policy.get_mut("Statement")?;
    if statement.is_object() {
        *statement = Value::Array(vec![statement.take()]);
    }
    statement.as_array_mut()
}

/// Wildcard match: `*` any run of characters, `?` any one character.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| if ignore_case { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// ARN match: the six colon-separated parts compared one by one, each with wildcards.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a, false))
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(PolicyError(format!("{what} must be a string or a list of strings"))),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn principals(v: &Value) -> Result<Principals, PolicyError> {
    let mut p = Principals::default();
    match v {
        Value::String(s) if s == "*" => p.everyone = true,
        Value::Object(map) => {
            for (kind, ids) in map {
                let ids = strings(ids, "Principal")?;
                match kind.as_str() {
                    "AWS" => p.aws.extend(ids),
                    "Service" => p.services.extend(ids),
                    // Federated and CanonicalUser identities never call Sluice; they match nobody.
                    "Federated" | "CanonicalUser" => {}
                    other => return Err(PolicyError(format!("Unknown principal type {other}"))),
                }
            }
        }
        _ => return Err(PolicyError("Principal must be \"*\" or an object".into())),
    }
    Ok(p)
}

/// `Action`/`NotAction` (or `Resource`/`NotResource`): exactly one of the pair.
fn patterns(s: &serde_json::Map<String, Value>, name: &str, required: bool) -> Result<Option<Patterns>, PolicyError> {
    let negated_name = format!("Not{name}");
    match (s.get(name), s.get(&negated_name)) {
        (Some(_), Some(_)) => Err(PolicyError(format!("A statement cannot have both {name} and {negated_name}"))),
        (Some(v), None) => Ok(Some(Patterns { values: strings(v, name)?, negated: false })),
        (None, Some(v)) => Ok(Some(Patterns { values: strings(v, name)?, negated: true })),
        (None, None) if required => Err(PolicyError(format!("Each statement needs {name} or {negated_name}"))),
        (None, None) => Ok(None),
    }
}

fn conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else { return Err(PolicyError("Condition must be an object".into())) };
    let mut out = Vec::new();
    for (name, keys) in ops {
        let unprefixed =
            name.strip_prefix("ForAnyValue:").or_else(|| name.strip_prefix("ForAllValues:")).unwrap_or(name);
        let (base, if_exists) = match unprefixed.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (unprefixed, false),
        };
        let operator = Operator::parse(base)
            .ok_or_else(|| PolicyError(format!("Condition operator {name} is not supported by Sluice")))?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError(format!("Condition {name} must map keys to values")));
        };
        for (key, values) in keys {
            out.push(Condition {
                operator,
                if_exists,
                key: key.to_ascii_lowercase(),
                values: strings(values, "A condition value")?,
            });
        }
    }
    Ok(out)
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| PolicyError(format!("Policy is not valid JSON: {e}")))?;
        let Some(statement) = doc.get("Statement") else {
            return Err(PolicyError("Policy has no Statement".into()));
        };
        let list = match statement {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        let mut statements = Vec::with_capacity(list.len());
        for s in &list {
            let Value::Object(s) = s else { return Err(PolicyError("A statement must be an object".into())) };
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(PolicyError("Effect must be Allow or Deny".into())),
            };
            let (principal, principal_negated) = match (s.get("Principal"), s.get("NotPrincipal")) {
                (Some(_), Some(_)) => {
                    return Err(PolicyError("A statement cannot have both Principal and NotPrincipal".into()))
                }
                (Some(p), None) => (Some(principals(p)?), false),
                (None, Some(p)) => (Some(principals(p)?), true),
                (None, None) => (None, false),
            };
            statements.push(Statement {
                allow,
                principal,
                principal_negated,
                actions: patterns(s, "Action", true)?.expect("required"),
                resources: patterns(s, "Resource", false)?,
                conditions: match s.get("Condition") {
                    Some(c) => conditions(c)?,
                    None => Vec::new(),
                },
            });
        }
        Ok(Policy { statements })
    }

    /// Checks what a resource policy must have beyond the language: every statement names
    /// its principal.
    pub fn parse_resource_policy(text: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::parse(text)?;
        if policy.statements.iter().any(|s| s.principal.is_none()) {
            return Err(PolicyError("Each statement of a resource policy needs a Principal".into()));
        }
        Ok(policy)
    }

    /// A resource's stored policy. One that does not parse (stored before Sluice enforced
    /// policies) grants nothing, as an invalid policy would on AWS, and is logged.
    pub fn stored(text: &str, resource: &str) -> Option<Policy> {
        match Policy::parse_resource_policy(text) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(%resource, error = %e, "ignoring a resource policy Sluice cannot evaluate");
                None
            }
        }
    }

    fn evaluate(&self, request: &Request, as_resource_policy: bool) -> Verdict {
        let mut verdict = Verdict::NotAllowed;
        for s in &self.statements {
            if !s.applies(request, as_resource_policy) {
                continue;
            }
            if !s.allow {
                return Verdict::Deny;
            }
            verdict = Verdict::Allow;
        }
        verdict
    }
}

struct Request<'a> {
    principal: &'a Principal,
    action: &'a str,
    resource: &'a str,
    /// Lower-case key → value.
    context: Vec<(String, String)>,
}

impl Request<'_> {
    fn value(&self, key: &str) -> Option<&str> {
        self.context.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    NotAllowed,
    Allow,
    Deny,
}

impl Principals {
    fn matches(&self, who: &Principal) -> bool {
        if self.everyone {
            return true;
        }
        match who {
            Principal::Aws { arn, account } => self.aws.iter().any(|id| {
                id == "*"
                    || id == account
                    || id == arn
                    || id.strip_prefix("arn:aws:iam::").and_then(|r| r.strip_suffix(":root")) == Some(account)
            }),
            Principal::Service(name) => self.services.iter().any(|s| s == name),
        }
    }
}

impl Patterns {
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        self.values.iter().any(|p| glob(p, value, ignore_case)) != self.negated
    }
}

impl Condition {
    fn holds(&self, request: &Request) -> bool {
        let actual = request.value(&self.key);
        if self.operator == Operator::Null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return actual.is_none() == want_absent;
        }
        let Some(actual) = actual else {
            // AWS: an absent key fails positive operators and satisfies negated ones.
            return self.if_exists || self.operator.negated();
        };
        let any = self.values.iter().any(|p| self.operator.matches(p, actual));
        any != self.operator.negated()
    }
}

impl Statement {
    fn applies(&self, request: &Request, as_resource_policy: bool) -> bool {
        if as_resource_policy {
            match &self.principal {
                Some(p) if p.matches(request.principal) != self.principal_negated => {}
                _ => return false,
            }
        }
        self.actions.matches(request.action, true)
            && self.resources.as_ref().is_none_or(|r| r.matches(request.resource, false))
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

/// AWS's evaluation: an explicit deny anywhere wins; within the caller's own account either
/// the identity policy or the resource policy may allow; across accounts both must. A
/// caller without an identity policy is its account's root; a service principal is
/// allowed only by the resource policy.
pub fn authorize(caller: &Caller, access: &Access) -> Result<(), Denial> {
    let mut context: Vec<(String, String)> =
        access.context.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
    if let Principal::Aws { arn, account } = &caller.principal {
        context.push(("aws:principalarn".into(), arn.clone()));
        context.push(("aws:principalaccount".into(), account.clone()));
        // SNS's default topic policy limits callers by the owner's account this way.
        context.push(("aws:sourceowner".into(), account.clone()));
        if let Some(user) = arn.split_once(":user/").map(|(_, u)| u) {
            context.push(("aws:username".into(), user.to_owned()));
        }
    }
    let request = Request { principal: &caller.principal, action: access.action, resource: access.resource, context };
    let identity = match (&caller.principal, &caller.identity_policy) {
        (Principal::Aws { .. }, None) => Verdict::Allow,
        (Principal::Aws { .. }, Some(p)) => p.evaluate(&request, false),
        (Principal::Service(_), _) => Verdict::NotAllowed,
    };
    let resource = access.resource_policy.map_or(Verdict::NotAllowed, |p| p.evaluate(&request, true));
    let deny = |reason: String| {
        Err(Denial {
            message: format!(
                "User: {} is not authorized to perform: {} on resource: {} {reason}",
                caller.principal.describe(),
                access.action,
                access.resource
            ),
        })
    };
    if identity == Verdict::Deny {
        return deny("with an explicit deny in an identity-based policy".into());
    }
    if resource == Verdict::Deny {
        return deny("with an explicit deny in a resource-based policy".into());
    }
    let no_identity = format!("because no identity-based policy allows the {} action", access.action);
    let no_resource = format!("because no resource-based policy allows the {} action", access.action);
    match &caller.principal {
        Principal::Aws { account, .. } if account == access.resource_owner => {
            if identity == Verdict::Allow || resource == Verdict::Allow {
                Ok(())
            } else {
                deny(no_identity)
            }
        }
        Principal::Aws { .. } => match (identity, resource) {
            (Verdict::Allow, Verdict::Allow) => Ok(()),
            (Verdict::Allow, _) => deny(no_resource),
            _ => deny(no_identity),
        },
        Principal::Service(_) if resource == Verdict::Allow => Ok(()),
        Principal::Service(_) => deny(no_resource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:111111111111:orders";

    fn root(account: &str) -> Caller {
        Caller { principal: Principal::for_credential(account, None), identity_policy: None }
    }

    fn user(account: &str, name: &str, policy: &str) -> Caller {
        Caller {
            principal: Principal::for_credential(account, Some(name)),
            identity_policy: Some(Arc::new(Policy::parse(policy).unwrap())),
        }
    }

    fn access<'a>(action: &'a str, policy: Option<&'a Policy>) -> Access<'a> {
        Access { action, resource: QUEUE, resource_owner: "111111111111", resource_policy: policy, context: vec![] }
    }

    #[test]
    fn wildcards() {
        assert!(glob("sqs:*", "sqs:SendMessage", false));
        assert!(glob("sqs:Send*", "sqs:SendMessage", false));
        assert!(glob("sqs:?endMessage", "sqs:SendMessage", false));
        assert!(!glob("sqs:Send", "sqs:SendMessage", false));
        assert!(glob("SQS:SENDMESSAGE", "sqs:SendMessage", true));
        assert!(!glob("SQS:SENDMESSAGE", "sqs:SendMessage", false));
        assert!(glob("*a*b*c", "xxaxbxxcyc", false));
        assert!(!glob("a*b", "acbx", false));
        assert!(arn_like("arn:aws:sns:*:111111111111:*", "arn:aws:sns:eu-west-1:111111111111:topic"));
        assert!(!arn_like("arn:aws:sns:*:111111111111:*", "arn:aws:sns:eu-west-1:222222222222:topic"));
        assert!(!arn_like("arn:aws:sns:*", "arn:aws:sns:eu-west-1:111111111111:topic"), "an ARN has six parts");
    }

    #[test]
    fn root_is_allowed_in_its_own_account_only() {
        assert!(authorize(&root("111111111111"), &access("sqs:SendMessage", None)).is_ok());
        let denied = authorize(&root("222222222222"), &access("sqs:SendMessage", None)).unwrap_err();
        assert_eq!(
            denied.message,
            "User: arn:aws:iam::222222222222:root is not authorized to perform: sqs:SendMessage on resource: \
             arn:aws:sqs:us-east-1:111111111111:orders because no resource-based policy allows the sqs:SendMessage action"
        );
    }

    #[test]
    fn cross_account_needs_the_resource_policy() {
        let policy = Policy::parse_resource_policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},
                "Action":"SQS:SendMessage","Resource":"arn:aws:sqs:us-east-1:111111111111:orders"}]}"#,
        )
        .unwrap();
        assert!(authorize(&root("222222222222"), &access("sqs:SendMessage", Some(&policy))).is_ok());
        assert!(authorize(&root("222222222222"), &access("sqs:ReceiveMessage", Some(&policy))).is_err());
        assert!(authorize(&root("333333333333"), &access("sqs:SendMessage", Some(&policy))).is_err());
        // A user of the granted account also needs its own identity policy to allow it.
        let limited =
            user("222222222222", "bob", r#"{"Statement":{"Effect":"Allow","Action":"sqs:Receive*","Resource":"*"}}"#);
        let denied = authorize(&limited, &access("sqs:SendMessage", Some(&policy))).unwrap_err();
        assert!(denied.message.ends_with("because no identity-based policy allows the sqs:SendMessage action"));
        let allowed =
            user("222222222222", "ann", r#"{"Statement":{"Effect":"Allow","Action":"sqs:*","Resource":"*"}}"#);
        assert!(authorize(&allowed, &access("sqs:SendMessage", Some(&policy))).is_ok());
    }

    #[test]
    fn same_account_user_is_allowed_by_either_policy_and_explicit_deny_wins() {
        let reader = user(
            "111111111111",
            "reader",
            r#"{"Statement":[{"Effect":"Allow","Action":["sqs:ReceiveMessage","sqs:DeleteMessage"],"Resource":"arn:aws:sqs:*:111111111111:*"}]}"#,
        );
        assert!(authorize(&reader, &access("sqs:ReceiveMessage", None)).is_ok());
        assert!(authorize(&reader, &access("sqs:SendMessage", None)).is_err());
        let grant = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/reader"},"Action":"sqs:SendMessage"}]}"#,
        )
        .unwrap();
        assert!(authorize(&reader, &access("sqs:SendMessage", Some(&grant))).is_ok(), "the resource policy allows");
        let deny = Policy::parse(r#"{"Statement":[{"Effect":"Deny","Principal":"*","NotAction":"sqs:SendMessage"}]}"#)
            .unwrap();
        let denied = authorize(&root("111111111111"), &access("sqs:ReceiveMessage", Some(&deny))).unwrap_err();
        assert!(denied.message.ends_with("with an explicit deny in a resource-based policy"), "{}", denied.message);
        assert!(authorize(&root("111111111111"), &access("sqs:SendMessage", Some(&deny))).is_ok());
        let self_deny = user(
            "111111111111",
            "x",
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"sqs:Delete*","Resource":"*"}]}"#,
        );
        assert!(authorize(&self_deny, &access("sqs:DeleteMessage", None))
            .unwrap_err()
            .message
            .contains("identity-based"));
        assert!(authorize(&self_deny, &access("sqs:SendMessage", None)).is_ok());
    }

    #[test]
    fn service_principals_need_a_matching_source() {
        let policy = Policy::parse_resource_policy(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage",
                "Resource":"*","Condition":{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:222222222222:news"}}}]}"#,
        )
        .unwrap();
        let sns = Caller { principal: Principal::Service("sns.amazonaws.com".into()), identity_policy: None };
        let from = |topic: &str| Access {
            context: vec![("aws:SourceArn", topic.to_owned())],
            ..access("sqs:SendMessage", Some(&policy))
        };
        assert!(authorize(&sns, &from("arn:aws:sns:us-east-1:222222222222:news")).is_ok());
        assert!(authorize(&sns, &from("arn:aws:sns:us-east-1:222222222222:other")).is_err());
        assert!(authorize(&sns, &access("sqs:SendMessage", None)).is_err(), "no policy, no delivery");
        // An account principal does not cover a service.
        let accounts =
            Policy::parse(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*"}]}"#).unwrap();
        assert!(authorize(&sns, &access("sqs:SendMessage", Some(&accounts))).is_err());
    }

    #[test]
    fn conditions() {
        let policy = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Condition":{
                "StringEquals":{"aws:SourceAccount":["222222222222","333333333333"]},
                "StringNotLikeIfExists":{"aws:SourceArn":"arn:aws:sns:*:*:blocked*"},
                "Bool":{"aws:SecureTransport":"true"}}}]}"#,
        )
        .unwrap();
        let sns = Caller { principal: Principal::Service("sns.amazonaws.com".into()), identity_policy: None };
        let with = |pairs: Vec<(&'static str, &str)>| Access {
            context: pairs.into_iter().map(|(k, v)| (k, v.to_owned())).collect(),
            ..access("sqs:SendMessage", Some(&policy))
        };
        let ok = |pairs| authorize(&sns, &with(pairs)).is_ok();
        assert!(ok(vec![("aws:SourceAccount", "333333333333"), ("aws:SecureTransport", "true")]));
        assert!(!ok(vec![("aws:SourceAccount", "444444444444"), ("aws:SecureTransport", "true")]));
        assert!(!ok(vec![("aws:SourceAccount", "333333333333"), ("aws:SecureTransport", "false")]));
        assert!(!ok(vec![("aws:SecureTransport", "true")]), "an absent key fails StringEquals");
        assert!(!ok(vec![
            ("aws:SourceAccount", "222222222222"),
            ("aws:SecureTransport", "true"),
            ("aws:SourceArn", "arn:aws:sns:us-east-1:222222222222:blocked-topic")
        ]));
        let null = Policy::parse(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"Null":{"aws:SourceArn":"true"}}}]}"#).unwrap();
        assert!(authorize(&sns, &access("sqs:SendMessage", Some(&null))).is_ok());
        let negated = Policy::parse(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringNotEquals":{"aws:SourceAccount":"1"}}}]}"#).unwrap();
        assert!(authorize(&sns, &access("sqs:SendMessage", Some(&negated))).is_ok(), "absent keys satisfy negations");
    }

    #[test]
    fn principal_forms() {
        let p = |json: &str| {
            Policy::parse(&format!(r#"{{"Statement":{{"Effect":"Allow","Principal":{json},"Action":"*"}}}}"#)).unwrap()
        };
        let bob = user("222222222222", "bob", r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
        for (principal, allowed) in [
            (r#""*""#, true),
            (r#"{"AWS":"*"}"#, true),
            (r#"{"AWS":"222222222222"}"#, true),
            (r#"{"AWS":["333333333333","arn:aws:iam::222222222222:root"]}"#, true),
            (r#"{"AWS":"arn:aws:iam::222222222222:user/bob"}"#, true),
            (r#"{"AWS":"arn:aws:iam::222222222222:user/ann"}"#, false),
            (r#"{"Service":"sns.amazonaws.com"}"#, false),
        ] {
            let policy = p(principal);
            assert_eq!(authorize(&bob, &access("sqs:SendMessage", Some(&policy))).is_ok(), allowed, "{principal}");
        }
        let not_bob = Policy::parse(
            r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::222222222222:user/bob"},"Action":"*"}}"#,
        )
        .unwrap();
        assert!(authorize(&root("111111111111"), &access("sqs:SendMessage", Some(&not_bob))).is_err());
    }

    #[test]
    fn invalid_policies_are_refused() {
        for (text, why) in [
            ("not json", "valid JSON"),
            (r#"{"Version":"2012-10-17"}"#, "no Statement"),
            (r#"{"Statement":{"Effect":"Maybe","Action":"*"}}"#, "Effect"),
            (r#"{"Statement":{"Effect":"Allow"}}"#, "Action or NotAction"),
            (r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"x"}}"#, "both"),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"}}}}"#,
                "not supported",
            ),
            (r#"{"Statement":{"Effect":"Allow","Principal":{"Robot":"x"},"Action":"*"}}"#, "principal type"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
        let e = Policy::parse_resource_policy(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#).unwrap_err();
        assert!(e.to_string().contains("Principal"));
    }
}
