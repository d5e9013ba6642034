//! The Query protocol's request side: form parameters such as
//! `MessageAttribute.1.Value.StringValue=x` decoded, with the service model, into the
//! same JSON value a JSON-protocol client would have sent, so one typed request per
//! operation serves both protocols.

use crate::model::{FastMap, Member, Model, Shape};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// How a service names members on the wire where the model does not say.
/// SNS's model carries `locationName`s; SQS's current (JSON) model lost them.
/// Names are borrowed from the model (or static): decoding a request asks for every
/// member's name, and owned copies were a fifth of an SNS Publish's allocations.
pub trait QueryNaming {
    /// Name of `member` of `structure` in form keys and XML; for a flattened list or
    /// map, the name each element or entry is written under.
    fn member_name<'m>(&self, model: &'m Model, structure: &str, member: &'m Member) -> &'m str {
        let _ = structure;
        if let Some(name) = &member.location_name {
            return name;
        }
        if let Some(Shape::List { member_location_name: Some(n), flattened: true, .. }) = model.shape(&member.target) {
            return n;
        }
        &member.name
    }

    /// Names of the key and value of one map entry.
    fn map_entry_names<'m>(&self, model: &'m Model, map_shape: &str) -> (&'m str, &'m str) {
        match model.shape(map_shape) {
            Some(Shape::Map { key_name, value_name, .. }) => {
                (key_name.as_deref().unwrap_or("key"), value_name.as_deref().unwrap_or("value"))
            }
            _ => ("key", "value"),
        }
    }
}

/// Naming taken from the model alone.
pub struct ModelNaming;
impl QueryNaming for ModelNaming {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryDecodeError {
    #[error("value {value} for parameter {param} is invalid")]
    InvalidValue { param: String, value: String },
}

/// The name/value pairs of an `application/x-www-form-urlencoded` body, as the WHATWG
/// URL standard parses them (`+` a space, `%XX` a byte, a `%` not followed by two hex
/// digits kept, invalid UTF-8 replaced, empty pairs skipped). Searched with `memchr`
/// and copied in runs: `form_urlencoded` looked at every byte three times, and a
/// Publish or SendMessageBatch carries kilobytes of message text.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = body;
    loop {
        let (pair, next) = match memchr::memchr(b'&', rest) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        if !pair.is_empty() {
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            pairs.push((form_decode(name), form_decode(value)));
        }
        match next {
            Some(next) => rest = next,
            None => return pairs,
        }
    }
}

/// One name or value of a form, decoded.
fn form_decode(raw: &[u8]) -> String {
    let mut rest = raw;
    let mut out = Vec::new();
    while let Some(at) = memchr::memchr2(b'%', b'+', rest) {
        out.reserve(raw.len());
        out.extend_from_slice(&rest[..at]);
        let escaped =
            (rest[at] == b'%').then(|| Some(hex_digit(*rest.get(at + 1)?)? * 16 + hex_digit(*rest.get(at + 2)?)?));
        match escaped {
            None => {
                out.push(b' ');
                rest = &rest[at + 1..];
            }
            Some(Some(byte)) => {
                out.push(byte);
                rest = &rest[at + 3..];
            }
            Some(None) => {
                out.push(b'%');
                rest = &rest[at + 1..];
            }
        }
    }
    if out.is_empty() {
        return match std::str::from_utf8(rest) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(rest).into_owned(),
        };
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The value of one hexadecimal digit of a percent escape.
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the parameters of one operation's input structure.
pub fn decode(
    model: &Model,
    naming: &dyn QueryNaming,
    input_shape: &str,
    params: &[(String, String)],
) -> Result<Value, QueryDecodeError> {
    // The caller's parameter names, hashed by foldhash with a per-process seed: a tenth
    // of SipHash's cost; its authors claim only minimal resistance to crafted collisions,
    // enough for a request's parameters, which the body's size limit bounds.
    let map: FastMap<&str, &str> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let decoder = Decoder { model, naming, params: &map };
    Ok(decoder.structure(input_shape, "")?.unwrap_or_else(|| Value::Object(Map::new())))
}

struct Decoder<'a> {
    model: &'a Model,
    naming: &'a dyn QueryNaming,
    params: &'a FastMap<&'a str, &'a str>,
}

fn join<'n>(prefix: &str, name: &'n str) -> Cow<'n, str> {
    if prefix.is_empty() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{prefix}.{name}"))
    }
}

/// What follows `prefix.` in `key`, if `key` starts so.
fn after_dot<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.strip_prefix(prefix)?.strip_prefix('.')
}

impl Decoder<'_> {
    fn has_prefix(&self, prefix: &str) -> bool {
        self.params.keys().any(|k| *k == prefix || after_dot(k, prefix).is_some())
    }

    /// Sorted distinct numeric indices `i` of keys `prefix.i` / `prefix.i.…`.
    fn indices(&self, prefix: &str) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .params
            .keys()
            .filter_map(|k| after_dot(k, prefix))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn value(&self, shape_name: &str, key: &str) -> Result<Option<Value>, QueryDecodeError> {
        let Some(shape) = self.model.shape(shape_name) else { return Ok(None) };
        match shape {
            Shape::Structure { .. } => self.structure(shape_name, key),
            Shape::List { member, member_location_name, flattened } => {
                let element_prefix = if *flattened {
                    Cow::Borrowed(key)
                } else {
                    Cow::Owned(format!("{key}.{}", member_location_name.as_deref().unwrap_or("member")))
                };
                let indices = self.indices(&element_prefix);
                if indices.is_empty() {
                    // `Name=` alone is how Query sends an empty list.
                    return Ok(self.params.get(key).map(|_| Value::Array(vec![])));
                }
                let mut items = Vec::new();
                for i in indices {
                    if let Some(v) = self.value(member, &format!("{element_prefix}.{i}"))? {
                        items.push(v);
                    }
                }
                Ok(Some(Value::Array(items)))
            }
            Shape::Map { key: key_shape, value: value_shape, flattened, .. } => {
                let (key_name, value_name) = self.naming.map_entry_names(self.model, shape_name);
                let entry_prefix = if *flattened { Cow::Borrowed(key) } else { Cow::Owned(format!("{key}.entry")) };
                let indices = self.indices(&entry_prefix);
                if indices.is_empty() {
                    return Ok(None);
                }
                let mut obj = Map::new();
                for i in indices {
                    let entry = format!("{entry_prefix}.{i}");
                    let k = self.value(key_shape, &join(&entry, key_name))?;
                    let v = self.value(value_shape, &join(&entry, value_name))?;
                    if let Some(Value::String(k)) = k {
                        obj.insert(k, v.unwrap_or(Value::Null));
                    }
                }
                Ok(Some(Value::Object(obj)))
            }
            Shape::String | Shape::Blob | Shape::Timestamp => {
                Ok(self.params.get(key).map(|v| Value::String((*v).to_owned())))
            }
            Shape::Integer | Shape::Long => match self.params.get(key) {
                None => Ok(None),
                Some(raw) => raw
                    .trim()
                    .parse::<i64>()
                    .map(|n| Some(Value::from(n)))
                    .map_err(|_| QueryDecodeError::InvalidValue { param: key.into(), value: (*raw).into() }),
            },
            Shape::Double => match self.params.get(key) {
                None => Ok(None),
                Some(raw) => raw
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(|n| Some(Value::Number(n)))
                    .ok_or_else(|| QueryDecodeError::InvalidValue { param: key.into(), value: (*raw).into() }),
            },
            Shape::Boolean => match self.params.get(key) {
                None => Ok(None),
                Some(raw) => match raw.to_ascii_lowercase().as_str() {
                    "true" => Ok(Some(Value::Bool(true))),
                    "false" => Ok(Some(Value::Bool(false))),
                    _ => Err(QueryDecodeError::InvalidValue { param: key.into(), value: (*raw).into() }),
                },
            },
        }
    }

    fn structure(&self, shape_name: &str, prefix: &str) -> Result<Option<Value>, QueryDecodeError> {
        let Some(Shape::Structure { members, .. }) = self.model.shape(shape_name) else {
            return Ok(None);
        };
        if !prefix.is_empty() && !self.has_prefix(prefix) {
            return Ok(None);
        }
        let mut obj = Map::new();
        for member in members {
            let name = self.naming.member_name(self.model, shape_name, member);
            if let Some(v) = self.value(&member.target, &join(prefix, name))? {
                obj.insert(member.name.clone(), v);
            }
        }
        Ok(Some(Value::Object(obj)))
    }
}

/// The first required member missing from `value`, searched depth-first, as AWS
/// names it in "The request must contain the parameter X."
pub fn first_missing_required(model: &Model, shape_name: &str, value: &Value) -> Option<String> {
    match (model.shape(shape_name)?, value) {
        (Shape::Structure { members, required }, Value::Object(obj)) => {
            for r in required {
                if obj.get(r).is_none_or(Value::is_null) {
                    return Some(r.clone());
                }
            }
            for m in members {
                if let Some(v) = obj.get(&m.name) {
                    if let Some(missing) = first_missing_required(model, &m.target, v) {
                        return Some(missing);
                    }
                }
            }
            None
        }
        (Shape::List { member, .. }, Value::Array(items)) => {
            items.iter().find_map(|v| first_missing_required(model, member, v))
        }
        (Shape::Map { value: value_shape, .. }, Value::Object(obj)) => {
            obj.values().find_map(|v| first_missing_required(model, value_shape, v))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same pairs as `form_urlencoded` (the WHATWG parser) for bodies built from the
    /// pieces that matter: separators, `+`, escapes whole, cut short or not hex, multi-byte
    /// and invalid UTF-8, long plain runs.
    #[test]
    fn forms_parse_as_the_whatwg_parser_parses_them() {
        const PIECES: [&[u8]; 16] = [
            b"&",
            b"=",
            b"+",
            b"%",
            b"%4",
            b"%41",
            b"%zz",
            b"%c3%A9",
            b"%FF",
            b"a",
            b"Zz9",
            b"\xc3\xa9",
            b"\xff",
            b"MessageBody",
            b".1.",
            b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut body = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 12) {
                body.extend_from_slice(PIECES[((x >> (4 * i)) % 16) as usize]);
            }
            let expected: Vec<(String, String)> =
                form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            assert_eq!(parse_form(&body), expected, "{:?}", String::from_utf8_lossy(&body));
        }
        assert_eq!(
            parse_form(b"a=b=c&&k&=v"),
            vec![("a".into(), "b=c".into()), ("k".into(), "".into()), ("".into(), "v".into())]
        );
    }
}
