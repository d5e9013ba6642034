//! The Query protocol's response side: a JSON value of an operation's output shape,
//! written as AWS's XML.

use crate::model::{Model, Shape};
use crate::query::QueryNaming;
use serde_json::Value;
use std::fmt::Write;

/// Escapes text for an XML text node the way SQS does (`"` as `&quot;`, CR as `&#xD;`).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

pub struct XmlResponse<'a> {
    pub model: &'a Model,
    pub naming: &'a dyn QueryNaming,
    pub xmlns: &'a str,
}

impl XmlResponse<'_> {
    /// `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…</ResponseMetadata></OpResponse>`.
    pub fn render(&self, operation: &str, output: Option<&Value>, request_id: &str) -> String {
        // Room for a typical answer (a Publish or SendMessage one is ~300 bytes) at once,
        // rather than a `realloc` at each doubling from the declaration's 21 bytes.
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\"?>");
        let _ = write!(out, "<{operation}Response xmlns=\"{}\">", self.xmlns);
        let op = self.model.operations.get(operation);
        if let (Some(shape), Some(value)) = (op.and_then(|o| o.output.as_deref()), output) {
            let wrapper = op.and_then(|o| o.result_wrapper.clone()).unwrap_or_else(|| format!("{operation}Result"));
            let _ = write!(out, "<{wrapper}>");
            self.members(&mut out, shape, value);
            let _ = write!(out, "</{wrapper}>");
        }
        let _ = write!(
            out,
            "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{operation}Response>",
            escape_text(request_id)
        );
        out
    }

    fn members(&self, out: &mut String, shape_name: &str, value: &Value) {
        let (Some(Shape::Structure { members, .. }), Value::Object(obj)) = (self.model.shape(shape_name), value) else {
            return;
        };
        for member in members {
            let Some(v) = obj.get(&member.name) else { continue };
            if v.is_null() {
                continue;
            }
            let name = self.naming.member_name(self.model, shape_name, member);
            self.element(out, name, &member.target, v);
        }
    }

    fn element(&self, out: &mut String, name: &str, shape_name: &str, value: &Value) {
        match self.model.shape(shape_name) {
            Some(Shape::Structure { .. }) => {
                let _ = write!(out, "<{name}>");
                self.members(out, shape_name, value);
                let _ = write!(out, "</{name}>");
            }
            Some(Shape::List { member, member_location_name, flattened }) => {
                let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
                if *flattened {
                    for item in items {
                        self.element(out, name, member, item);
                    }
                } else {
                    let inner = member_location_name.as_deref().unwrap_or("member");
                    let _ = write!(out, "<{name}>");
                    for item in items {
                        self.element(out, inner, member, item);
                    }
                    let _ = write!(out, "</{name}>");
                }
            }
            Some(Shape::Map { key, value: value_shape, flattened, .. }) => {
                let (key_name, value_name) = self.naming.map_entry_names(self.model, shape_name);
                let Some(obj) = value.as_object() else { return };
                if !*flattened {
                    let _ = write!(out, "<{name}>");
                }
                let entry = if *flattened { name } else { "entry" };
                for (k, v) in obj {
                    let _ = write!(out, "<{entry}>");
                    self.element(out, key_name, key, &Value::String(k.clone()));
                    self.element(out, value_name, value_shape, v);
                    let _ = write!(out, "</{entry}>");
                }
                if !*flattened {
                    let _ = write!(out, "</{name}>");
                }
            }
            _ => {
                let text = match value {
                    Value::String(s) => escape_text(s),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => return,
                };
                let _ = write!(out, "<{name}>{text}</{name}>");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_sqs() {
        assert_eq!(escape_text("a\"b\r<&>"), "a&quot;b&#xD;&lt;&amp;&gt;");
    }
}
