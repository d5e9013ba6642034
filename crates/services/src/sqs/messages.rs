//! Message validation (body characters, attributes, sizes, FIFO ids) and the message
//! shapes returned by SendMessage and ReceiveMessage.

use super::errors::*;
use super::types::{MessageAttributeMap, MessageAttributeValue};
use base64::Engine as _;
use sluice_wire::md5::{md5_of_message_attributes, AttributeBytes, DigestAttribute};
use sluice_wire::AwsError;

/// "A message can have up to 10 metadata attributes."
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// Attribute names and data types are at most 256 characters.
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 256;
/// MessageGroupId and MessageDeduplicationId: 1–128 characters.
pub const MAX_FIFO_ID_LEN: usize = 128;
/// DelaySeconds on a message: 0–900.
pub const MAX_DELAY_SECONDS: i64 = 900;
/// A whole batch is capped at 1 MiB, like a single message.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// XML 1.0 characters: `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`.
pub fn valid_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `valid_xml_char` over a whole string, a byte at a time: in valid UTF-8 only two kinds
/// of character fail (C0 controls other than tab, LF and CR, one byte each; U+FFFE and
/// U+FFFF, `EF BF BE`/`EF BF BF`), so most bodies need one vectorisable pass and no
/// UTF-8 decoding. This runs on every message sent.
pub fn valid_xml_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let controls_ok = bytes.iter().fold(true, |ok, &b| ok & (b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r')));
    controls_ok && (!bytes.contains(&0xEF) || !text.contains(['\u{FFFE}', '\u{FFFF}']))
}

pub fn validate_body(body: &str) -> Result<(), AwsError> {
    if body.is_empty() {
        return Err(invalid_parameter_value("The request must contain the parameter MessageBody."));
    }
    if !valid_xml_text(body) {
        return Err(invalid_message_contents());
    }
    Ok(())
}

fn valid_attribute_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
}

/// Validates message (user) attributes; returns their size in bytes as SQS counts it
/// toward MaximumMessageSize (names, data types and values).
pub fn validate_attributes(attrs: &MessageAttributeMap, kind: &str) -> Result<usize, AwsError> {
    if attrs.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(invalid_parameter_value(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            attrs.len()
        )));
    }
    let mut size = 0;
    for (name, value) in attrs {
        if !valid_attribute_name(name) {
            return Err(invalid_parameter_value(format!(
                "Message ({kind}) attribute name '{name}' is invalid. The attribute name can contain A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters. The name can't start or end with a period, have consecutive periods, or start with 'AWS.' or 'Amazon.' (case-insensitive), and can be up to 256 characters long."
            )));
        }
        let data_type = value.data_type.as_deref().unwrap_or("");
        if data_type.is_empty() {
            return Err(invalid_parameter_value(format!(
                "The message ({kind}) attribute '{name}' must contain a non-empty message attribute type."
            )));
        }
        let base = data_type.split('.').next().unwrap_or("");
        if !matches!(base, "String" | "Number" | "Binary") || data_type.len() > MAX_ATTRIBUTE_NAME_LEN {
            return Err(invalid_parameter_value(format!(
                "The type of message ({kind}) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
            )));
        }
        let value_len = if base == "Binary" {
            let raw = value.binary_value.as_deref().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| {
                invalid_parameter_value(format!("The message ({kind}) attribute '{name}' has an invalid binary value."))
            })?;
            if bytes.is_empty() {
                return Err(invalid_parameter_value(format!(
                    "The message ({kind}) attribute '{name}' must contain a non-empty message attribute value for message attribute type '{data_type}'."
                )));
            }
            bytes.len()
        } else {
            let s = value.string_value.as_deref().unwrap_or("");
            if s.is_empty() {
                return Err(invalid_parameter_value(format!(
                    "The message ({kind}) attribute '{name}' must contain a non-empty message attribute value for message attribute type '{data_type}'."
                )));
            }
            if !valid_xml_text(s) {
                return Err(invalid_message_contents());
            }
            if base == "Number" && !valid_number(s) {
                return Err(invalid_parameter_value(format!(
                    "Could not cast message ({kind}) attribute '{name}' value to number."
                )));
            }
            s.len()
        };
        size += name.len() + data_type.len() + value_len;
    }
    Ok(size)
}

/// SQS Number attributes: up to 38 significant digits, between -10^128 and 10^126.
fn valid_number(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.parse::<f64>().is_ok_and(f64::is_finite)
        && !t.eq_ignore_ascii_case("nan")
        && !t.to_ascii_lowercase().contains("inf")
}

/// System attributes on send: only AWSTraceHeader exists, and it is a String.
pub fn validate_system_attributes(attrs: &MessageAttributeMap) -> Result<(), AwsError> {
    for (name, value) in attrs {
        if name != "AWSTraceHeader" {
            return Err(invalid_parameter_value(format!("Message system attribute name '{name}' is invalid.")));
        }
        if value.data_type.as_deref() != Some("String") || value.string_value.as_deref().unwrap_or("").is_empty() {
            return Err(invalid_parameter_value(
                "The message system attribute 'AWSTraceHeader' must contain a non-empty message attribute value for message attribute type 'String'.",
            ));
        }
    }
    Ok(())
}

/// MessageGroupId / MessageDeduplicationId: 1–128 alphanumeric or punctuation characters.
pub fn validate_fifo_id(param: &str, value: &str) -> Result<(), AwsError> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_FIFO_ID_LEN
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation());
    if ok {
        Ok(())
    } else {
        Err(invalid_parameter_value(format!(
            "Value {value} for parameter {param} is invalid. Reason: {param} can only include alphanumeric and punctuation characters. 1 to 128 in length."
        )))
    }
}

pub fn md5_of_attributes(attrs: &MessageAttributeMap) -> Option<String> {
    let decoded: Vec<(String, String, Vec<u8>, bool)> = attrs
        .iter()
        .map(|(name, v)| {
            let data_type = v.data_type.clone().unwrap_or_default();
            if data_type.starts_with("Binary") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.binary_value.as_deref().unwrap_or(""))
                    .unwrap_or_default();
                (name.clone(), data_type, bytes, true)
            } else {
                (name.clone(), data_type, v.string_value.clone().unwrap_or_default().into_bytes(), false)
            }
        })
        .collect();
    let mut digest: Vec<DigestAttribute<'_>> = decoded
        .iter()
        .map(|(name, data_type, bytes, binary)| DigestAttribute {
            name,
            data_type,
            value: if *binary {
                AttributeBytes::Binary(bytes)
            } else {
                AttributeBytes::String(std::str::from_utf8(bytes).unwrap_or_default())
            },
        })
        .collect();
    md5_of_message_attributes(&mut digest)
}

/// Stored form of attributes: the JSON wire shape, omitted when empty.
pub fn store_attributes(attrs: &MessageAttributeMap) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> =
        attrs.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect();
    Some(serde_json::Value::Object(map).to_string())
}

pub fn attribute_json(v: &MessageAttributeValue) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    o.insert("DataType".into(), v.data_type.clone().unwrap_or_default().into());
    if let Some(s) = &v.string_value {
        o.insert("StringValue".into(), s.clone().into());
    }
    if let Some(b) = &v.binary_value {
        o.insert("BinaryValue".into(), b.clone().into());
    }
    serde_json::Value::Object(o)
}

pub fn load_attributes(stored: Option<&str>) -> MessageAttributeMap {
    stored.and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
}

/// Whether a received message's attribute `name` was asked for: `All`, `.*`,
/// a `prefix.*` pattern, or the exact name.
pub fn attribute_requested(requested: &[String], name: &str) -> bool {
    requested.iter().any(|r| {
        r == "All"
            || r == ".*"
            || r == name
            || r.strip_suffix(".*").is_some_and(|p| name.starts_with(&format!("{p}.")) || name == p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_scan_agrees_with_the_xml_char_rule() {
        let edges = [
            '\u{0}',
            '\u{8}',
            '\u{9}',
            '\u{A}',
            '\u{B}',
            '\u{C}',
            '\u{D}',
            '\u{E}',
            '\u{1F}',
            '\u{20}',
            '\u{7F}',
            '\u{80}',
            '\u{D7FF}',
            '\u{E000}',
            '\u{EFFF}',
            '\u{FEFF}',
            '\u{FFFD}',
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{10000}',
            '\u{10FFFF}',
            'é',
            '€',
        ];
        for c in edges {
            for text in [c.to_string(), format!("ab{c}cd"), format!("€{c}"), format!("{c}\u{FFFD}")] {
                assert_eq!(valid_xml_text(&text), text.chars().all(valid_xml_char), "{text:?}");
            }
        }
        assert!(valid_xml_text(&"x".repeat(1024)));
    }
}
