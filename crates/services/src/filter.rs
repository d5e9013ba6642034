//! Subscription filter policies: parsing, AWS's validation, and matching.
//!
//! One engine for SNS now and EventBridge patterns later. A policy is compiled into
//! its `$or` branches, each a list of (dotted path, conditions): a message matches when
//! some branch has every path satisfied by at least one of its conditions. Values are
//! taken from message attributes (`MessageAttributes` scope) or from the JSON body
//! (`MessageBody` scope, nested keys and arrays flattened to dotted paths).
//!
//! Limits (AWS "Amazon SNS subscription filter policy constraints"): at most 5 keys and
//! 150 value combinations per policy, numbers within ±10^9 with at most 5 decimals.

use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Keys one policy may name.
pub const MAX_KEYS: usize = 5;
/// Product of the value counts of all keys (summed over `$or` branches).
pub const MAX_COMBINATIONS: usize = 150;
/// Numeric values are limited to -10^9..10^9.
pub const MAX_NUMBER: f64 = 1e9;
/// Policies are at most 256 KiB.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    MessageAttributes,
    MessageBody,
}

/// One value from a message, as a policy compares it.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Exact(Leaf),
    Prefix { value: String, ignore_case: bool },
    Suffix { value: String, ignore_case: bool },
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Leaf>),
    AnythingButPrefix(String),
    AnythingButIgnoreCase(Vec<String>),
    Numeric { lower: Option<(f64, bool)>, upper: Option<(f64, bool)> },
    Exists(bool),
    Cidr { net: IpAddr, bits: u8 },
}

type Branch = Vec<(String, Vec<Condition>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    branches: Vec<Branch>,
}

/// A policy error; SNS reports it as `Invalid parameter: FilterPolicy: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err<T>(reason: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(reason.into()))
}

impl FilterPolicy {
    pub fn parse(text: &str, scope: Scope) -> Result<FilterPolicy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return err("Filter policy is too long");
        }
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError(format!("failed to parse JSON. {e}")))?;
        let Value::Object(obj) = value else {
            return err("Filter policy must be a JSON object");
        };
        let branches = parse_object(&obj, "", scope)?;
        let mut combinations = 0;
        for b in &branches {
            let keys: std::collections::HashSet<&str> = b.iter().map(|(k, _)| k.as_str()).collect();
            if keys.len() > MAX_KEYS {
                return err(format!("Filter policy can not have more than {MAX_KEYS} keys"));
            }
            combinations += b.iter().map(|(_, c)| c.len()).product::<usize>();
        }
        if combinations > MAX_COMBINATIONS {
            return err("Filter policy is too complex");
        }
        Ok(FilterPolicy { branches })
    }

    /// A key every match must have one of a few exact string values for, if the
    /// policy has one (single branch, all conditions of that key exact strings).
    pub fn exact_anchor(&self) -> Option<(&str, Vec<&str>)> {
        let [branch] = self.branches.as_slice() else { return None };
        branch
            .iter()
            .filter_map(|(path, conditions)| {
                let values: Option<Vec<&str>> = conditions
                    .iter()
                    .map(|c| match c {
                        Condition::Exact(Leaf::Str(s)) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                values.map(|v| (path.as_str(), v))
            })
            .min_by_key(|(_, v)| v.len())
    }

    /// Whether the values of a message match: `values(path)` lists what the message
    /// has at that path (empty when absent).
    pub fn matches(&self, values: &HashMap<String, Vec<Leaf>>) -> bool {
        const NONE: &[Leaf] = &[];
        self.branches.iter().any(|branch| {
            branch.iter().all(|(path, conditions)| {
                let leaves = values.get(path).map(Vec::as_slice).unwrap_or(NONE);
                conditions.iter().any(|c| condition_matches(c, leaves))
            })
        })
    }
}

/// Subscriptions' policies indexed so that a message is tested only against the
/// policies that can match it: a single-branch policy with a key whose conditions are
/// all exact strings can only match a message having one of those values at that key,
/// so it is filed under each (key, value). Other policies are always tested.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    policies: Vec<Option<(Arc<FilterPolicy>, Scope)>>,
    always: Vec<usize>,
    anchored: HashMap<(Scope, String, String), Vec<usize>>,
}

impl PolicyIndex {
    /// `policies[i]` is subscription i's policy (`None`: no filter, always matches).
    pub fn build(policies: Vec<Option<(Arc<FilterPolicy>, Scope)>>) -> PolicyIndex {
        let mut index = PolicyIndex::default();
        for (i, p) in policies.iter().enumerate() {
            match p.as_ref().and_then(|(policy, scope)| policy.exact_anchor().map(|a| (a, *scope))) {
                Some(((path, values), scope)) => {
                    for v in values {
                        index.anchored.entry((scope, path.to_owned(), v.to_owned())).or_default().push(i);
                    }
                }
                None => index.always.push(i),
            }
        }
        index.policies = policies;
        index
    }

    /// Indices of the subscriptions whose policies match, in order.
    pub fn matching(
        &self,
        attributes: &HashMap<String, Vec<Leaf>>,
        body: Option<&HashMap<String, Vec<Leaf>>>,
    ) -> Vec<usize> {
        let mut candidates = self.always.clone();
        for (scope, values) in [(Scope::MessageAttributes, Some(attributes)), (Scope::MessageBody, body)] {
            let Some(values) = values else { continue };
            for (path, leaves) in values {
                for leaf in leaves {
                    if let Leaf::Str(s) = leaf {
                        if let Some(ids) = self.anchored.get(&(scope, path.clone(), s.clone())) {
                            candidates.extend(ids);
                        }
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates.retain(|&i| match &self.policies[i] {
            None => true,
            Some((policy, Scope::MessageAttributes)) => policy.matches(attributes),
            Some((policy, Scope::MessageBody)) => body.is_some_and(|b| policy.matches(b)),
        });
        candidates
    }
}

fn parse_object(obj: &serde_json::Map<String, Value>, prefix: &str, scope: Scope) -> Result<Vec<Branch>, PolicyError> {
    if obj.is_empty() && prefix.is_empty() {
        return Ok(vec![vec![]]);
    }
    let mut branches: Vec<Branch> = vec![vec![]];
    for (key, value) in obj {
        if key == "$or" {
            let Value::Array(alternatives) = value else {
                return err("Value of $or must be an array of objects");
            };
            if alternatives.len() < 2 {
                return err("$or must contain at least two policies");
            }
            let mut expanded = Vec::new();
            for alt in alternatives {
                let Value::Object(o) = alt else {
                    return err("Value of $or must be an array of objects");
                };
                expanded.extend(parse_object(o, prefix, scope)?);
            }
            branches = cross(&branches, &expanded);
            continue;
        }
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return err("Empty arrays are not allowed");
                }
                let conditions = items.iter().map(parse_condition).collect::<Result<Vec<_>, _>>()?;
                for b in &mut branches {
                    b.push((path.clone(), conditions.clone()));
                }
            }
            Value::Object(inner) => {
                if scope == Scope::MessageAttributes {
                    return err("Filter policy scope MessageAttributes does not support nested filter policy");
                }
                if inner.is_empty() {
                    return err("Empty objects are not allowed");
                }
                let sub = parse_object(inner, &path, scope)?;
                branches = cross(&branches, &sub);
            }
            _ => return err(format!("\"{key}\" must be an object or an array")),
        }
    }
    Ok(branches)
}

fn cross(left: &[Branch], right: &[Branch]) -> Vec<Branch> {
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in right {
            let mut b = l.clone();
            b.extend(r.iter().cloned());
            out.push(b);
        }
    }
    out
}

fn check_number(n: &serde_json::Number) -> Result<f64, PolicyError> {
    let text = n.to_string();
    let value = n.as_f64().unwrap_or(f64::NAN);
    if !(-MAX_NUMBER..=MAX_NUMBER).contains(&value) {
        return err(format!("Numeric value {text} is out of range; numbers must be between -1.0E9 and 1.0E9"));
    }
    // At most five decimal places, read from the number as written.
    let decimals = match text.split_once('.') {
        Some((_, frac)) if !text.contains(['e', 'E']) => frac.trim_end_matches('0').len(),
        _ => 0,
    };
    if decimals > 5 {
        return err(format!("Numeric value {text} has more than 5 decimal places"));
    }
    Ok(value)
}

fn literal(v: &Value) -> Result<Leaf, PolicyError> {
    match v {
        Value::String(s) => Ok(Leaf::Str(s.clone())),
        Value::Number(n) => Ok(Leaf::Num(check_number(n)?)),
        Value::Bool(b) => Ok(Leaf::Bool(*b)),
        Value::Null => Ok(Leaf::Null),
        _ => err("Match value must be String, number, true, false, or null"),
    }
}

fn string_pattern(op: &str, v: &Value) -> Result<(String, bool), PolicyError> {
    match v {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Object(o) if o.len() == 1 => match o.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok((s.clone(), true)),
            _ => err(format!("Unsupported {op} pattern")),
        },
        _ => err(format!("{op} match pattern must be a string")),
    }
}

fn parse_condition(v: &Value) -> Result<Condition, PolicyError> {
    let Value::Object(o) = v else {
        return Ok(Condition::Exact(literal(v)?));
    };
    if o.len() != 1 {
        return err("Only one key allowed in match expression");
    }
    let (op, arg) = o.iter().next().expect("one key");
    match op.as_str() {
        "prefix" => {
            let (value, ignore_case) = string_pattern("prefix", arg)?;
            Ok(Condition::Prefix { value, ignore_case })
        }
        "suffix" => {
            let (value, ignore_case) = string_pattern("suffix", arg)?;
            Ok(Condition::Suffix { value, ignore_case })
        }
        "equals-ignore-case" => match arg {
            Value::String(s) => Ok(Condition::EqualsIgnoreCase(s.clone())),
            _ => err("equals-ignore-case match pattern must be a string"),
        },
        "anything-but" => parse_anything_but(arg),
        "numeric" => parse_numeric(arg),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => err("exists match pattern must be either true or false."),
        },
        "cidr" => parse_cidr(arg),
        other => err(format!("Unrecognized match type {other}")),
    }
}

fn parse_anything_but(arg: &Value) -> Result<Condition, PolicyError> {
    match arg {
        Value::String(_) | Value::Number(_) => Ok(Condition::AnythingBut(vec![literal(arg)?])),
        Value::Array(items) => {
            if items.is_empty() {
                return err("Empty arrays are not allowed");
            }
            let mut values = Vec::new();
            for item in items {
                match item {
                    Value::String(_) | Value::Number(_) => values.push(literal(item)?),
                    _ => return err("Inside anything but list, start|null|boolean is not supported."),
                }
            }
            Ok(Condition::AnythingBut(values))
        }
        Value::Object(o) if o.len() == 1 => {
            let (op, inner) = o.iter().next().expect("one key");
            match (op.as_str(), inner) {
                ("prefix", Value::String(p)) => Ok(Condition::AnythingButPrefix(p.clone())),
                ("prefix", _) => err("prefix match pattern must be a string"),
                // AWS rejects this form for SNS (LocalStack snapshot of AWS's answer).
                ("suffix", _) => err("Unsupported anything-but pattern: suffix"),
                ("equals-ignore-case", Value::String(s)) => Ok(Condition::AnythingButIgnoreCase(vec![s.clone()])),
                ("equals-ignore-case", Value::Array(items)) if !items.is_empty() => {
                    let values = items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| PolicyError("Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.".into())))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Condition::AnythingButIgnoreCase(values))
                }
                (other, _) => err(format!("Unsupported anything-but pattern: {other}")),
            }
        }
        _ => err("Value of anything-but must be an array or single string/number value."),
    }
}

fn parse_numeric(arg: &Value) -> Result<Condition, PolicyError> {
    let Value::Array(items) = arg else {
        return err("Value of numeric must be an array.");
    };
    let number = |v: Option<&Value>, op: &str| -> Result<f64, PolicyError> {
        match v {
            Some(Value::Number(n)) => check_number(n),
            _ => err(format!("Value of {op} must be numeric")),
        }
    };
    let mut lower = None;
    let mut upper = None;
    let mut i = 0;
    if items.is_empty() {
        return err("Invalid member in numeric match: ]");
    }
    while i < items.len() {
        let op = items[i]
            .as_str()
            .ok_or_else(|| PolicyError("Invalid member in numeric match: expected an operator".into()))?;
        let n = number(items.get(i + 1), op)?;
        match op {
            "=" => {
                if items.len() != 2 {
                    return err("Too many elements in numeric expression");
                }
                return Ok(Condition::Numeric { lower: Some((n, true)), upper: Some((n, true)) });
            }
            ">" | ">=" if lower.is_none() && upper.is_none() => lower = Some((n, op == ">=")),
            "<" | "<=" if upper.is_none() => upper = Some((n, op == "<=")),
            ">" | ">=" | "<" | "<=" => return err("Bad numeric range operator: ".to_owned() + op),
            other => return err(format!("Unrecognized numeric range operator: {other}")),
        }
        i += 2;
    }
    if let (Some((lo, _)), Some((hi, _))) = (lower, upper) {
        if lo >= hi {
            return err("Bottom must be less than top");
        }
    }
    Ok(Condition::Numeric { lower, upper })
}

fn parse_cidr(arg: &Value) -> Result<Condition, PolicyError> {
    let Value::String(s) = arg else {
        return err("Value of cidr must be a string");
    };
    let (addr, bits) = s.split_once('/').ok_or_else(|| PolicyError("Malformed CIDR, one '/' required".into()))?;
    let net: IpAddr = addr.parse().map_err(|_| PolicyError(format!("Nonstandard IP address: {addr}")))?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= max)
        .ok_or_else(|| PolicyError(format!("Malformed CIDR, mask bits must be an integer between 0 and {max}")))?;
    Ok(Condition::Cidr { net, bits })
}

fn ip_in(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

fn leaf_eq(a: &Leaf, b: &Leaf) -> bool {
    match (a, b) {
        (Leaf::Num(x), Leaf::Num(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

fn condition_matches(c: &Condition, leaves: &[Leaf]) -> bool {
    match c {
        Condition::Exists(want) => *want != leaves.is_empty(),
        Condition::AnythingBut(values) => {
            !leaves.is_empty() && leaves.iter().any(|l| !values.iter().any(|v| leaf_eq(l, v)))
        }
        Condition::AnythingButPrefix(p) => {
            !leaves.is_empty() && leaves.iter().any(|l| !matches!(l, Leaf::Str(s) if s.starts_with(p.as_str())))
        }
        Condition::AnythingButIgnoreCase(values) => {
            !leaves.is_empty()
                && leaves.iter().any(|l| !matches!(l, Leaf::Str(s) if values.iter().any(|v| v.eq_ignore_ascii_case(s))))
        }
        _ => leaves.iter().any(|l| leaf_matches(c, l)),
    }
}

fn leaf_matches(c: &Condition, leaf: &Leaf) -> bool {
    match (c, leaf) {
        (Condition::Exact(v), l) => leaf_eq(v, l),
        (Condition::Prefix { value, ignore_case: false }, Leaf::Str(s)) => s.starts_with(value.as_str()),
        (Condition::Prefix { value, ignore_case: true }, Leaf::Str(s)) => {
            s.len() >= value.len() && s.is_char_boundary(value.len()) && s[..value.len()].eq_ignore_ascii_case(value)
        }
        (Condition::Suffix { value, ignore_case: false }, Leaf::Str(s)) => s.ends_with(value.as_str()),
        (Condition::Suffix { value, ignore_case: true }, Leaf::Str(s)) => {
            let start = s.len().wrapping_sub(value.len());
            s.len() >= value.len() && s.is_char_boundary(start) && s[start..].eq_ignore_ascii_case(value)
        }
        (Condition::EqualsIgnoreCase(v), Leaf::Str(s)) => s.to_lowercase() == v.to_lowercase(),
        (Condition::Numeric { lower, upper }, Leaf::Num(n)) => {
            lower.is_none_or(|(lo, inclusive)| if inclusive { *n >= lo } else { *n > lo })
                && upper.is_none_or(|(hi, inclusive)| if inclusive { *n <= hi } else { *n < hi })
        }
        (Condition::Cidr { net, bits }, Leaf::Str(s)) => s.parse::<IpAddr>().is_ok_and(|ip| ip_in(ip, *net, *bits)),
        _ => false,
    }
}

fn json_leaf(v: &Value) -> Option<Leaf> {
    match v {
        Value::String(s) => Some(Leaf::Str(s.clone())),
        Value::Number(n) => n.as_f64().map(Leaf::Num),
        Value::Bool(b) => Some(Leaf::Bool(*b)),
        Value::Null => Some(Leaf::Null),
        _ => None,
    }
}

/// Values of message attributes by name: `String*` as strings, `Number*` as numbers,
/// `String.Array` as its JSON elements; binary attributes are not matched.
pub fn attribute_values<'a>(
    attrs: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
) -> HashMap<String, Vec<Leaf>> {
    let mut out = HashMap::new();
    for (name, data_type, string_value) in attrs {
        let Some(s) = string_value else { continue };
        let leaves = if data_type == "String.Array" {
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(items)) => items.iter().filter_map(json_leaf).collect(),
                _ => continue,
            }
        } else if data_type.starts_with("Number") {
            match s.trim().parse::<f64>() {
                Ok(n) => vec![Leaf::Num(n)],
                Err(_) => continue,
            }
        } else if data_type.starts_with("String") {
            vec![Leaf::Str(s.to_owned())]
        } else {
            continue;
        };
        out.insert(name.to_owned(), leaves);
    }
    out
}

/// Values of a JSON body by dotted path, arrays flattened; `None` if the body is not a
/// JSON object (a MessageBody-scoped policy then matches nothing).
pub fn body_values(body: &str) -> Option<HashMap<String, Vec<Leaf>>> {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(body) else { return None };
    let mut out: HashMap<String, Vec<Leaf>> = HashMap::new();
    fn walk(v: &Value, path: &str, out: &mut HashMap<String, Vec<Leaf>>) {
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(child, &p, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, path, out);
                }
            }
            leaf => {
                if let Some(l) = json_leaf(leaf) {
                    out.entry(path.to_owned()).or_default().push(l);
                }
            }
        }
    }
    walk(&Value::Object(obj), "", &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str, &str)]) -> HashMap<String, Vec<Leaf>> {
        attribute_values(pairs.iter().map(|(n, t, v)| (*n, *t, Some(*v))))
    }

    /// (name, data type, value) of one message attribute.
    type Attr<'a> = (&'a str, &'a str, &'a str);

    /// (policy, attributes, expected match)
    #[test]
    fn attribute_policies_match_as_aws_documents() {
        let store = &[
            ("store", "String", "example_corp"),
            ("price_usd", "Number", "210.75"),
            ("event", "String", "order_placed"),
        ];
        let cases: &[(&str, &[Attr], bool)] = &[
            (r#"{"store":["example_corp"]}"#, store, true),
            (r#"{"store":["other"]}"#, store, false),
            (r#"{"store":["other","example_corp"]}"#, store, true),
            (r#"{"store":["example_corp"],"event":["order_cancelled"]}"#, store, false),
            (r#"{"price_usd":[{"numeric":[">=",100]}]}"#, store, true),
            (r#"{"price_usd":[{"numeric":[">",0,"<=",150]}]}"#, store, false),
            (r#"{"price_usd":[210.75]}"#, store, true),
            (r#"{"price_usd":[{"numeric":["=",210.75]}]}"#, store, true),
            (r#"{"store":[{"prefix":"exam"}]}"#, store, true),
            (r#"{"store":[{"suffix":"_corp"}]}"#, store, true),
            (r#"{"store":[{"suffix":{"equals-ignore-case":"_CORP"}}]}"#, store, true),
            (r#"{"store":[{"equals-ignore-case":"EXAMPLE_CORP"}]}"#, store, true),
            (r#"{"store":[{"anything-but":["example_corp"]}]}"#, store, false),
            (r#"{"store":[{"anything-but":"other"}]}"#, store, true),
            (r#"{"store":[{"anything-but":{"prefix":"ex"}}]}"#, store, false),
            (r#"{"missing":[{"anything-but":"x"}]}"#, store, false),
            (r#"{"store":[{"exists":true}]}"#, store, true),
            (r#"{"missing":[{"exists":false}]}"#, store, true),
            (r#"{"store":[{"exists":false}]}"#, store, false),
            (r#"{"price_usd":["210.75"]}"#, store, false),
            (r#"{"$or":[{"store":["nope"]},{"event":["order_placed"]}]}"#, store, true),
            (r#"{"$or":[{"store":["nope"]},{"event":["nope"]}]}"#, store, false),
            (r#"{"source":[{"cidr":"10.0.0.0/24"}]}"#, &[("source", "String", "10.0.0.255")], true),
            (r#"{"source":[{"cidr":"10.0.0.0/24"}]}"#, &[("source", "String", "10.0.1.1")], false),
            (r#"{"tags":["b"]}"#, &[("tags", "String.Array", r#"["a","b"]"#)], true),
            (r#"{"tags":[{"numeric":[">",1]}]}"#, &[("tags", "String.Array", r#"["a",2]"#)], true),
            (r#"{"tags":["c"]}"#, &[("tags", "String.Array", r#"["a","b"]"#)], false),
            (r#"{"store":[{"prefix":""}]}"#, store, true),
        ];
        for (policy, values, expected) in cases {
            let p = FilterPolicy::parse(policy, Scope::MessageAttributes).unwrap_or_else(|e| panic!("{policy}: {e}"));
            assert_eq!(p.matches(&attrs(values)), *expected, "{policy}");
        }
    }

    #[test]
    fn body_policies_match_nested_keys_and_arrays() {
        let body = r#"{"order":{"type":"online","items":[{"sku":"a"},{"sku":"b"}],"total":42},"customer.tier":"gold","flags":[1,2]}"#;
        let values = body_values(body).unwrap();
        let cases = [
            (r#"{"order":{"type":["online"]}}"#, true),
            (r#"{"order.type":["online"]}"#, true),
            (r#"{"order":{"items":{"sku":["b"]}}}"#, true),
            (r#"{"order":{"total":[{"numeric":[">",40]}]}}"#, true),
            (r#"{"customer":{"tier":["gold"]}}"#, true),
            (r#"{"flags":[2]}"#, true),
            (r#"{"order":{"type":["store"]}}"#, false),
            (r#"{"order":{"missing":[{"exists":false}]}}"#, true),
            (r#"{"$or":[{"order":{"type":["x"]}},{"flags":[1]}]}"#, true),
        ];
        for (policy, expected) in cases {
            let p = FilterPolicy::parse(policy, Scope::MessageBody).unwrap();
            assert_eq!(p.matches(&values), expected, "{policy}");
        }
        assert!(body_values("not json").is_none());
    }

    #[test]
    fn the_index_returns_exactly_what_a_linear_scan_matches() {
        let texts = [
            (r#"{"color":["red"]}"#, Scope::MessageAttributes),
            (r#"{"color":["red","blue"],"size":[{"numeric":[">",3]}]}"#, Scope::MessageAttributes),
            (r#"{"color":[{"prefix":"r"}]}"#, Scope::MessageAttributes),
            (r#"{"$or":[{"color":["green"]},{"size":[1]}]}"#, Scope::MessageAttributes),
            (r#"{"order":{"kind":["retail"]}}"#, Scope::MessageBody),
            (r#"{"color":["blue"]}"#, Scope::MessageAttributes),
        ];
        let mut policies: Vec<Option<(Arc<FilterPolicy>, Scope)>> =
            texts.iter().map(|(t, s)| Some((Arc::new(FilterPolicy::parse(t, *s).unwrap()), *s))).collect();
        policies.push(None);
        let index = PolicyIndex::build(policies.clone());
        let messages = [
            (vec![("color", "String", "red"), ("size", "Number", "5")], r#"{"order":{"kind":"retail"}}"#),
            (vec![("color", "String", "blue")], "not json"),
            (vec![("size", "Number", "1")], r#"{"order":{"kind":"online"}}"#),
            (vec![("color", "String", "rose")], "{}"),
        ];
        for (attrs, body) in messages {
            let a = attribute_values(attrs.iter().map(|(n, t, v)| (*n, *t, Some(*v))));
            let b = body_values(body);
            let linear: Vec<usize> = policies
                .iter()
                .enumerate()
                .filter(|(_, p)| match p {
                    None => true,
                    Some((policy, Scope::MessageAttributes)) => policy.matches(&a),
                    Some((policy, Scope::MessageBody)) => b.as_ref().is_some_and(|b| policy.matches(b)),
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(index.matching(&a, b.as_ref()), linear, "{attrs:?} {body}");
        }
    }

    #[test]
    fn invalid_policies_get_aws_reasons() {
        let cases = [
            (
                r#"{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}"#,
                "Filter policy can not have more than 5 keys",
            ),
            (r#"{"a":[{"anything-but":{"suffix":"x"}}]}"#, "Unsupported anything-but pattern: suffix"),
            (r#"{"a":[{"unknown":1}]}"#, "Unrecognized match type unknown"),
            (r#"{"a":[]}"#, "Empty arrays are not allowed"),
            (r#"{"a":[{"exists":"yes"}]}"#, "exists match pattern must be either true or false."),
            (r#"{"a":[{"prefix":1}]}"#, "prefix match pattern must be a string"),
            (r#"{"a":{"b":["c"]}}"#, "Filter policy scope MessageAttributes does not support nested filter policy"),
            (r#"{"a":[{"numeric":[">",5,"<",1]}]}"#, "Bottom must be less than top"),
            (r#"{"a":[{"numeric":["<",5,">",1]}]}"#, "Bad numeric range operator: >"),
            (r#"{"a":[{"numeric":["~",5]}]}"#, "Unrecognized numeric range operator: ~"),
            (r#"{"a":[{"cidr":"10.0.0.0"}]}"#, "Malformed CIDR, one '/' required"),
            (r#"{"a":"b"}"#, "\"a\" must be an object or an array"),
        ];
        for (policy, reason) in cases {
            assert_eq!(FilterPolicy::parse(policy, Scope::MessageAttributes).unwrap_err().0, reason, "{policy}");
        }
        assert!(FilterPolicy::parse(r#"{"a":[1000000001]}"#, Scope::MessageAttributes).is_err());
        assert!(FilterPolicy::parse(r#"{"a":[1.000001]}"#, Scope::MessageAttributes).is_err());
        let many: Vec<String> = (0..151).map(|i| format!("\"v{i}\"")).collect();
        let too_complex = format!(r#"{{"a":[{}]}}"#, many.join(","));
        assert_eq!(
            FilterPolicy::parse(&too_complex, Scope::MessageAttributes).unwrap_err().0,
            "Filter policy is too complex"
        );
        let ok: Vec<String> = (0..150).map(|i| format!("\"v{i}\"")).collect();
        assert!(FilterPolicy::parse(&format!(r#"{{"a":[{}]}}"#, ok.join(",")), Scope::MessageAttributes).is_ok());
    }
}
