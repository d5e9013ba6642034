//! The JSON documents SNS delivers: Notification, SubscriptionConfirmation and
//! UnsubscribeConfirmation, laid out and signed as AWS does.

use serde_json::Value;

/// `2012-05-02T00:54:06.655Z` from epoch milliseconds (UTC, proleptic Gregorian).
pub fn iso8601(ms: u64) -> String {
    let t = sluice_wire::civil::from_epoch_ms(ms as i64);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis)
}

/// A message's fields, in the order AWS writes them.
pub struct Envelope {
    pub kind: &'static str,
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub timestamp_ms: u64,
    pub sequence_number: Option<String>,
    /// Confirmations only.
    pub token: Option<String>,
    pub subscribe_url: Option<String>,
    /// Notifications only.
    pub unsubscribe_url: Option<String>,
    /// `{"name": {"Type": "String", "Value": "v"}}`, notifications only.
    pub message_attributes: serde_json::Map<String, Value>,
}

impl Envelope {
    /// AWS's string to sign: "Key\nValue\n" for each signed field, in this order.
    pub fn string_to_sign(&self) -> String {
        let timestamp = iso8601(self.timestamp_ms);
        let mut fields: Vec<(&str, &str)> = vec![("Message", &self.message), ("MessageId", &self.message_id)];
        if self.kind == "Notification" {
            if let Some(s) = &self.subject {
                fields.push(("Subject", s));
            }
        } else if let Some(u) = &self.subscribe_url {
            fields.push(("SubscribeURL", u));
        }
        fields.push(("Timestamp", &timestamp));
        if self.kind != "Notification" {
            if let Some(t) = &self.token {
                fields.push(("Token", t));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind));
        fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
    }

    /// The signed JSON document, formatted like AWS's (`"Key" : value` per line).
    /// `signature` is that of `string_to_sign` under `signature_version`.
    pub fn to_json(&self, signature: &str, signature_version: &str, cert_url: &str) -> String {
        let s = |v: &str| Value::String(v.to_owned()).to_string();
        let mut lines =
            vec![format!("\"Type\" : {}", s(self.kind)), format!("\"MessageId\" : {}", s(&self.message_id))];
        if let Some(seq) = &self.sequence_number {
            lines.push(format!("\"SequenceNumber\" : {}", s(seq)));
        }
        if let Some(t) = &self.token {
            lines.push(format!("\"Token\" : {}", s(t)));
        }
        lines.push(format!("\"TopicArn\" : {}", s(&self.topic_arn)));
        if let Some(subject) = &self.subject {
            lines.push(format!("\"Subject\" : {}", s(subject)));
        }
        lines.push(format!("\"Message\" : {}", s(&self.message)));
        if let Some(u) = &self.subscribe_url {
            lines.push(format!("\"SubscribeURL\" : {}", s(u)));
        }
        lines.push(format!("\"Timestamp\" : {}", s(&iso8601(self.timestamp_ms))));
        lines.push(format!("\"SignatureVersion\" : {}", s(signature_version)));
        lines.push(format!("\"Signature\" : {}", s(signature)));
        lines.push(format!("\"SigningCertURL\" : {}", s(cert_url)));
        if let Some(u) = &self.unsubscribe_url {
            lines.push(format!("\"UnsubscribeURL\" : {}", s(u)));
        }
        if !self.message_attributes.is_empty() {
            let attrs: Vec<String> =
                self.message_attributes.iter().map(|(k, v)| format!("    {} : {}", s(k), v)).collect();
            lines.push(format!("\"MessageAttributes\" : {{\n{}\n  }}", attrs.join(",\n")));
        }
        format!("{{\n  {}\n}}", lines.join(",\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_like_aws() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_335_920_046_655), "2012-05-02T00:54:06.655Z");
        assert_eq!(iso8601(1_709_164_800_001), "2024-02-29T00:00:00.001Z");
    }

    #[test]
    fn string_to_sign_follows_aws_field_order() {
        let e = Envelope {
            kind: "Notification",
            message_id: "id".into(),
            topic_arn: "arn".into(),
            subject: Some("subj".into()),
            message: "hello".into(),
            timestamp_ms: 0,
            sequence_number: None,
            token: None,
            subscribe_url: None,
            unsubscribe_url: Some("u".into()),
            message_attributes: Default::default(),
        };
        assert_eq!(
            e.string_to_sign(),
            "Message\nhello\nMessageId\nid\nSubject\nsubj\nTimestamp\n1970-01-01T00:00:00.000Z\nTopicArn\narn\nType\nNotification\n"
        );
        let c = Envelope {
            kind: "SubscriptionConfirmation",
            token: Some("t".into()),
            subscribe_url: Some("s".into()),
            subject: None,
            ..e
        };
        assert_eq!(
            c.string_to_sign(),
            "Message\nhello\nMessageId\nid\nSubscribeURL\ns\nTimestamp\n1970-01-01T00:00:00.000Z\nToken\nt\nTopicArn\narn\nType\nSubscriptionConfirmation\n"
        );
    }
}
