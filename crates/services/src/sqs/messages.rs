//! Message validation (body characters, attributes, sizes, FIFO ids) and the message
//! shapes returned by SendMessage and ReceiveMessage.

use super::errors::*;
use super::types::{MessageAttributeMap, MessageAttributeValue};
use base64::Engine as _;
use serde::Serialize;
use sluice_engine::ReceivedMessage;
use sluice_wire::md5::{md5_of_message_attributes, AttributeBytes, DigestAttribute};
use sluice_wire::AwsError;
use std::borrow::Cow;
use std::collections::BTreeMap;

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
    valid_xml_text_after(text, sluice_wire::wide::with_avx2(|| suspect_bytes(text.as_bytes())))
}

/// The rest of [`valid_xml_text`] once the first pass has said whether `text` has a
/// suspect byte: only a text with one is looked at again.
fn valid_xml_text_after(text: &str, suspect: bool) -> bool {
    !suspect
        || (text.bytes().all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
            && !text.contains(['\u{FFFE}', '\u{FFFF}']))
}

/// Whether any byte is below 0x20 or is 0xEF, with arithmetic alone, which the compiler
/// vectorises (a test with `||` in it ran a byte at a time: 6% of the HTTP workers'
/// instructions in sqs-send-batch).
#[inline(always)]
fn suspect_bytes(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |seen, &b| seen | (b < 0x20) | (b == 0xEF))
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

    fn received() -> ReceivedMessage {
        ReceivedMessage {
            message_id: "id-1".into(),
            receipt_handle: "handle".into(),
            body: "quote \" backslash \\ newline \n tab \t control \u{1} unicode é ✓".into(),
            body_md5: None,
            attributes: Some(
                r#"{"color":{"DataType":"String","StringValue":"red"},"size":{"DataType":"Number","StringValue":"3"},"bin":{"DataType":"Binary","BinaryValue":"AQI="}}"#
                    .into(),
            ),
            system_attributes: Some(r#"{"AWSTraceHeader":{"DataType":"String","StringValue":"Root=1-a"}}"#.into()),
            sender_id: "AIDA".into(),
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            sent_ms: 1_700_000_000_123,
            receive_count: 2,
            first_receive_ms: 1_700_000_000_456,
            sequence_number: Some("18".into()),
            dead_letter_source_arn: Some("arn:aws:sqs:us-east-1:000000000000:src".into()),
        }
    }

    #[test]
    fn a_receive_reply_serializes_as_its_value_does() {
        let m = received();
        let all = vec!["All".to_owned()];
        for (system, attributes) in
            [(all.clone(), all.clone()), (vec![], vec![]), (vec!["SentTimestamp".into()], vec!["col.*".into()])]
        {
            let reply = ReceiveReply { messages: vec![ReceivedReply::new(&m, &system, &attributes)] };
            let direct = serde_json::to_vec(&reply).unwrap();
            let through_value = serde_json::to_vec(&serde_json::to_value(&reply).unwrap()).unwrap();
            assert_eq!(String::from_utf8(direct.clone()).unwrap(), String::from_utf8(through_value).unwrap());
            // The JSON protocol's hand-written body is serde_json's, byte for byte, for
            // one message and for several.
            let mut by_hand = Vec::new();
            reply.write_json(&mut by_hand).unwrap();
            assert_eq!(String::from_utf8(by_hand).unwrap(), String::from_utf8(direct).unwrap());
            let two = ReceiveReply { messages: vec![reply.messages[0].clone(), reply.messages[0].clone()] };
            let mut by_hand = Vec::new();
            two.write_json(&mut by_hand).unwrap();
            assert_eq!(String::from_utf8(by_hand).unwrap(), serde_json::to_string(&two).unwrap());
        }
        assert_eq!(serde_json::to_string(&ReceiveReply { messages: vec![] }).unwrap(), "{}");
        let mut by_hand = Vec::new();
        ReceiveReply { messages: vec![] }.write_json(&mut by_hand).unwrap();
        assert_eq!(by_hand, b"{}");
    }

    #[test]
    fn a_send_reply_names_its_members_as_aws_does_and_leaves_out_the_absent() {
        let standard = SendReply {
            id: None,
            md5_of_message_attributes: None,
            md5_of_message_body: "b".into(),
            md5_of_message_system_attributes: None,
            message_id: "m".into(),
            sequence_number: None,
        };
        assert_eq!(serde_json::to_string(&standard).unwrap(), r#"{"MD5OfMessageBody":"b","MessageId":"m"}"#);
        let entry = SendReply {
            id: Some("e1".into()),
            md5_of_message_attributes: Some("a".into()),
            md5_of_message_system_attributes: Some("s".into()),
            sequence_number: Some("18".into()),
            ..standard.clone()
        };
        let batch = SendBatchReply { failed: vec![], successful: vec![entry] };
        let direct = serde_json::to_string(&batch).unwrap();
        assert_eq!(
            direct,
            r#"{"Failed":[],"Successful":[{"Id":"e1","MD5OfMessageAttributes":"a","MD5OfMessageBody":"b","MD5OfMessageSystemAttributes":"s","MessageId":"m","SequenceNumber":"18"}]}"#
        );
        // The Query protocol renders the Value: the same members.
        assert_eq!(serde_json::to_string(&serde_json::to_value(&batch).unwrap()).unwrap(), direct);
        // Written by hand, the same bytes, escapes included.
        let escaped =
            SendReply { id: Some("a\"b\\c\u{1}é".into()), message_id: "m\n".into(), ..batch.successful[0].clone() };
        for reply in [&standard, &batch.successful[0], &escaped] {
            let mut out = Vec::new();
            reply.write_json(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(reply).unwrap());
        }
        let mut out = Vec::new();
        batch.write_json(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), direct);
        let failed = SendBatchReply {
            failed: vec![serde_json::json!({"Id": "f", "Code": "c"})],
            successful: vec![escaped, standard],
        };
        let mut out = Vec::new();
        failed.write_json(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&failed).unwrap());
    }

    #[test]
    fn a_receive_reply_carries_what_was_asked_for() {
        let m = received();
        let reply = ReceivedReply::new(&m, &["All".to_owned()], &["All".to_owned()]);
        let v = serde_json::to_value(&reply).unwrap();
        assert_eq!(v["Body"], m.body.as_str());
        assert_eq!(v["MD5OfBody"], sluice_wire::md5::md5_hex(m.body.as_bytes()));
        assert_eq!(v["MessageId"], "id-1");
        assert_eq!(v["ReceiptHandle"], "handle");
        let attrs = v["Attributes"].as_object().unwrap();
        let names: Vec<&str> = attrs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "AWSTraceHeader",
                "ApproximateFirstReceiveTimestamp",
                "ApproximateReceiveCount",
                "DeadLetterQueueSourceArn",
                "MessageDeduplicationId",
                "MessageGroupId",
                "SenderId",
                "SentTimestamp",
                "SequenceNumber"
            ]
        );
        assert_eq!(attrs["SentTimestamp"], "1700000000123");
        assert_eq!(attrs["AWSTraceHeader"], "Root=1-a");
        let stored = load_attributes(m.attributes.as_deref());
        assert_eq!(v["MD5OfMessageAttributes"], md5_of_attributes(&stored).unwrap());
        assert_eq!(v["MessageAttributes"]["bin"], serde_json::json!({"DataType": "Binary", "BinaryValue": "AQI="}));

        let some = ReceivedReply::new(&m, &["SenderId".to_owned()], &["size".to_owned()]);
        let v = serde_json::to_value(&some).unwrap();
        assert_eq!(v["Attributes"], serde_json::json!({"SenderId": "AIDA"}));
        assert_eq!(v["MessageAttributes"]["size"]["StringValue"], "3");
        assert!(v["MessageAttributes"].get("color").is_none());
        let none = serde_json::to_value(ReceivedReply::new(&m, &[], &[])).unwrap();
        assert!(none.get("Attributes").is_none() && none.get("MessageAttributes").is_none());
        assert!(none.get("MD5OfMessageAttributes").is_none());
        let stored_md5 = ReceivedMessage { body_md5: Some("stored".into()), ..m };
        assert_eq!(serde_json::to_value(ReceivedReply::new(&stored_md5, &[], &[])).unwrap()["MD5OfBody"], "stored");
    }

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
            // Past the first 64-byte block and across a block's edge too.
            let (block, long) = ("x".repeat(63), "y".repeat(130));
            for text in [
                c.to_string(),
                format!("ab{c}cd"),
                format!("€{c}"),
                format!("{c}\u{FFFD}"),
                format!("{block}{c}{long}"),
                format!("{long}{c}"),
            ] {
                let valid = text.chars().all(valid_xml_char);
                assert_eq!(valid_xml_text(&text), valid, "{text:?}");
                // The baseline build too, whichever `valid_xml_text` picks on this CPU.
                assert_eq!(valid_xml_text_after(&text, suspect_bytes(text.as_bytes())), valid, "{text:?}");
            }
        }
        assert!(valid_xml_text(&"x".repeat(1024)));
    }
}

/// A ReceiveMessage reply, borrowed from the received messages and serialized straight
/// into the response body: no copy of each body into a `serde_json::Value` and back
/// (13% of the HTTP workers' time in sqs-receive went to building, writing and dropping
/// that `Value`). The Query protocol renders it through `serde_json::to_value`.
#[derive(Serialize)]
pub struct ReceiveReply<'a> {
    #[serde(rename = "Messages", skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<ReceivedReply<'a>>,
}

impl ReceiveReply<'_> {
    /// The JSON protocol's body, written by hand: what `serde_json::to_vec` writes, byte
    /// for byte (asserted in the tests), with the strings escaped a block at a time
    /// ([`sluice_wire::json_text`]) instead of a byte at a time: serde_json's escaping of
    /// the bodies was 9% of the server's instructions in sqs-cycle.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if self.messages.is_empty() {
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        out.extend_from_slice(b"{\"Messages\":[");
        for (i, m) in self.messages.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            m.write_json(out)?;
        }
        out.extend_from_slice(b"]}");
        Ok(())
    }

    /// Room for the body [`Self::write_json`] writes, about.
    pub fn json_size_hint(&self) -> usize {
        16 + self.messages.iter().map(|m| m.body.len() + 384).sum::<usize>()
    }
}

/// One received message. Fields in alphabetical order: the order a `serde_json::Map`
/// (sorted) gave them, so the bytes on the wire are what they were.
#[derive(Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ReceivedReply<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<&'static str, Cow<'a, str>>,
    pub body: &'a str,
    #[serde(rename = "MD5OfBody")]
    pub md5_of_body: Cow<'a, str>,
    #[serde(rename = "MD5OfMessageAttributes", skip_serializing_if = "Option::is_none")]
    pub md5_of_message_attributes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_attributes: Option<BTreeMap<String, serde_json::Value>>,
    pub message_id: &'a str,
    pub receipt_handle: &'a str,
}

impl<'a> ReceivedReply<'a> {
    /// This message as `serde_json` writes it (see [`ReceiveReply::write_json`]): members
    /// in the struct's order, the absent ones left out.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        use sluice_wire::json_text::write_string;
        out.push(b'{');
        if !self.attributes.is_empty() {
            out.extend_from_slice(b"\"Attributes\":{");
            for (i, (name, value)) in self.attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, name);
                out.push(b':');
                write_string(out, value);
            }
            out.extend_from_slice(b"},");
        }
        out.extend_from_slice(b"\"Body\":");
        write_string(out, self.body);
        out.extend_from_slice(b",\"MD5OfBody\":");
        write_string(out, &self.md5_of_body);
        if let Some(md5) = &self.md5_of_message_attributes {
            out.extend_from_slice(b",\"MD5OfMessageAttributes\":");
            write_string(out, md5);
        }
        if let Some(attributes) = &self.message_attributes {
            out.extend_from_slice(b",\"MessageAttributes\":");
            serde_json::to_writer(&mut *out, attributes)?;
        }
        out.extend_from_slice(b",\"MessageId\":");
        write_string(out, self.message_id);
        out.extend_from_slice(b",\"ReceiptHandle\":");
        write_string(out, self.receipt_handle);
        out.push(b'}');
        Ok(())
    }

    /// The message with the system attributes (`system_names`, "All" for every one) and
    /// message attributes (`attribute_names`, "All", ".*" or prefixes) the caller asked for.
    pub fn new(m: &'a ReceivedMessage, system_names: &[String], attribute_names: &[String]) -> Self {
        let want = |n: &str| system_names.iter().any(|s| s == "All" || s == n);
        let mut sys: BTreeMap<&'static str, Cow<'a, str>> = BTreeMap::new();
        if want("SenderId") {
            sys.insert("SenderId", Cow::Borrowed(&m.sender_id));
        }
        if want("SentTimestamp") {
            sys.insert("SentTimestamp", Cow::Owned(m.sent_ms.to_string()));
        }
        if want("ApproximateReceiveCount") {
            sys.insert("ApproximateReceiveCount", Cow::Owned(m.receive_count.to_string()));
        }
        if want("ApproximateFirstReceiveTimestamp") {
            sys.insert("ApproximateFirstReceiveTimestamp", Cow::Owned(m.first_receive_ms.to_string()));
        }
        if let (true, Some(s)) = (want("SequenceNumber"), &m.sequence_number) {
            sys.insert("SequenceNumber", Cow::Borrowed(s));
        }
        if let (true, Some(d)) = (want("MessageDeduplicationId"), &m.dedup_id) {
            sys.insert("MessageDeduplicationId", Cow::Borrowed(d));
        }
        if let (true, Some(g)) = (want("MessageGroupId"), &m.group_id) {
            sys.insert("MessageGroupId", Cow::Borrowed(g));
        }
        if let (true, Some(arn)) = (want("DeadLetterQueueSourceArn"), &m.dead_letter_source_arn) {
            sys.insert("DeadLetterQueueSourceArn", Cow::Borrowed(arn));
        }
        if want("AWSTraceHeader") {
            let system_attrs = load_attributes(m.system_attributes.as_deref());
            if let Some(trace) = system_attrs.get("AWSTraceHeader").and_then(|v| v.string_value.clone()) {
                sys.insert("AWSTraceHeader", Cow::Owned(trace));
            }
        }
        let mut attrs = load_attributes(m.attributes.as_deref());
        attrs.retain(|name, _| attribute_requested(attribute_names, name));
        let md5_of_message_attributes = md5_of_attributes(&attrs);
        let message_attributes = md5_of_message_attributes
            .is_some()
            .then(|| attrs.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect());
        ReceivedReply {
            attributes: sys,
            body: &m.body,
            md5_of_body: match &m.body_md5 {
                Some(md5) => Cow::Borrowed(md5),
                None => Cow::Owned(sluice_wire::md5::md5_hex(m.body.as_bytes())),
            },
            md5_of_message_attributes,
            message_attributes,
            message_id: &m.message_id,
            receipt_handle: &m.receipt_handle,
        }
    }
}

/// A SendMessage reply, or one successful entry of a SendMessageBatch reply (with `id`),
/// serialized straight into the response body; the Query protocol renders it through
/// `serde_json::to_value`. Fields in alphabetical order, as a sorted `serde_json::Map`
/// gave them.
#[derive(Serialize, Clone)]
pub struct SendReply {
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "MD5OfMessageAttributes", skip_serializing_if = "Option::is_none")]
    pub md5_of_message_attributes: Option<String>,
    #[serde(rename = "MD5OfMessageBody")]
    pub md5_of_message_body: String,
    #[serde(rename = "MD5OfMessageSystemAttributes", skip_serializing_if = "Option::is_none")]
    pub md5_of_message_system_attributes: Option<String>,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "SequenceNumber", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

impl SendReply {
    /// The reply as JSON, byte for byte what serde_json writes for it (tests compare),
    /// written by hand: serde_json escapes a string a byte at a time through a table,
    /// about 950 instructions of a SendMessage for its two digests and id.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut separator = b'{';
        let mut member = |out: &mut Vec<u8>, name: &str, value: Option<&str>| {
            if let Some(value) = value {
                out.push(separator);
                separator = b',';
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                sluice_wire::json_text::write_string(out, value);
            }
        };
        member(out, "Id", self.id.as_deref());
        member(out, "MD5OfMessageAttributes", self.md5_of_message_attributes.as_deref());
        member(out, "MD5OfMessageBody", Some(&self.md5_of_message_body));
        member(out, "MD5OfMessageSystemAttributes", self.md5_of_message_system_attributes.as_deref());
        member(out, "MessageId", Some(&self.message_id));
        member(out, "SequenceNumber", self.sequence_number.as_deref());
        out.push(b'}');
    }
}

/// A SendMessageBatch reply. Failed entries stay `Value`s: they are the rare case.
#[derive(Serialize)]
pub struct SendBatchReply {
    #[serde(rename = "Failed")]
    pub failed: Vec<serde_json::Value>,
    #[serde(rename = "Successful")]
    pub successful: Vec<SendReply>,
}

impl SendBatchReply {
    /// The reply as JSON, as serde_json writes it, the successful entries by
    /// [`SendReply::write_json`].
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"Failed\":");
        serde_json::to_writer(&mut *out, &self.failed)?;
        out.extend_from_slice(b",\"Successful\":[");
        for (i, entry) in self.successful.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            entry.write_json(out);
        }
        out.extend_from_slice(b"]}");
        Ok(())
    }
}
