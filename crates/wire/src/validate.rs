//! AWS-style input validation from the model's constraints (length, range, pattern,
//! enum), producing the `ValidationException` message JSON services send:
//! "1 validation error detected: Value 'x' at 'streamName' failed to satisfy constraint:
//! Member must have length less than or equal to 128".

use crate::model::{Model, Shape};
use serde_json::Value;

fn lower_camel(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// All constraint violations of `value` against `shape`; empty when valid.
pub fn violations(model: &Model, shape: &str, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(model, shape, value, "", &mut out);
    out
}

/// The ValidationException message for `violations`, or `None` when there are none.
pub fn message(violations: &[String]) -> Option<String> {
    match violations.len() {
        0 => None,
        1 => Some(format!("1 validation error detected: {}", violations[0])),
        n => Some(format!("{n} validation errors detected: {}", violations.join("; "))),
    }
}

fn walk(model: &Model, shape_name: &str, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(shape) = model.shape(shape_name) else { return };
    if let Some(c) = model.constraints.get(shape_name) {
        let at = |what: &str| format!("Value '{}' at '{path}' failed to satisfy constraint: {what}", shown(value));
        let length = match (shape, value) {
            (Shape::String, Value::String(s)) => Some(s.chars().count() as f64),
            (Shape::Blob, Value::String(s)) => {
                Some(crate::record_base64::decoded_len(s.as_bytes()).unwrap_or(s.len()) as f64)
            }
            (Shape::List { .. }, Value::Array(a)) => Some(a.len() as f64),
            (Shape::Map { .. }, Value::Object(o)) => Some(o.len() as f64),
            _ => None,
        };
        let number = match (shape, value) {
            (Shape::Integer | Shape::Long | Shape::Double, Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        if let (Some(len), Some(min)) = (length, c.min) {
            if len < min {
                out.push(at(&format!("Member must have length greater than or equal to {min}")));
            }
        }
        if let (Some(len), Some(max)) = (length, c.max) {
            if len > max {
                out.push(at(&format!("Member must have length less than or equal to {max}")));
            }
        }
        if let (Some(n), Some(min)) = (number, c.min) {
            if n < min {
                out.push(at(&format!("Member must have value greater than or equal to {min}")));
            }
        }
        if let (Some(n), Some(max)) = (number, c.max) {
            if n > max {
                out.push(at(&format!("Member must have value less than or equal to {max}")));
            }
        }
        if let (Some(pattern), Value::String(s)) = (&c.pattern, value) {
            let anchored = format!("^(?:{pattern})$");
            if regex_lite::Regex::new(&anchored).is_ok_and(|re| !re.is_match(s)) {
                out.push(at(&format!("Member must satisfy regular expression pattern: {pattern}")));
            }
        }
        if let (Some(values), Value::String(s)) = (&c.enum_values, value) {
            if !values.contains(s) {
                out.push(at(&format!("Member must satisfy enum value set: [{}]", values.join(", "))));
            }
        }
    }
    match (shape, value) {
        (Shape::Structure { members, .. }, Value::Object(obj)) => {
            for m in members {
                if let Some(v) = obj.get(&m.name).filter(|v| !v.is_null()) {
                    let p =
                        if path.is_empty() { lower_camel(&m.name) } else { format!("{path}.{}", lower_camel(&m.name)) };
                    walk(model, &m.target, v, &p, out);
                }
            }
        }
        (Shape::List { member, .. }, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                walk(model, member, item, &format!("{path}.{}.member", i + 1), out);
            }
        }
        (Shape::Map { value: value_shape, .. }, Value::Object(obj)) => {
            for (k, v) in obj {
                walk(model, value_shape, v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}
