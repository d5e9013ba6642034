//! Queue attributes: names, ranges and defaults (botocore `QueueAttributeName` and the
//! SetQueueAttributes documentation), validated before anything is stored.

use super::errors::*;
use sluice_engine::{Attributes, QueueKey};
use sluice_wire::AwsError;

/// Attributes a client may set, with their valid integer ranges where numeric.
const SETTABLE: &[&str] = &[
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Computed attributes: readable, never settable.
pub const COMPUTED: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

const FIFO_ONLY: &[&str] = &["ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"];

fn range(name: &str) -> Option<(i64, i64)> {
    Some(match name {
        "DelaySeconds" => (0, 900),
        "MaximumMessageSize" => (1024, 1_048_576),
        "MessageRetentionPeriod" => (60, 1_209_600),
        "ReceiveMessageWaitTimeSeconds" => (0, 20),
        "VisibilityTimeout" => (0, 43_200),
        "KmsDataKeyReusePeriodSeconds" => (60, 86_400),
        _ => return None,
    })
}

pub fn is_known(name: &str) -> bool {
    SETTABLE.contains(&name) || COMPUTED.contains(&name)
}

fn invalid_value(name: &str) -> AwsError {
    invalid_attribute_value(format!("Invalid value for the parameter {name}."))
}

/// Defaults AWS reports for a new queue.
pub fn defaults(fifo: bool) -> Attributes {
    let mut a = Attributes::new();
    a.insert("DelaySeconds".into(), "0".into());
    a.insert("MaximumMessageSize".into(), "1048576".into());
    a.insert("MessageRetentionPeriod".into(), "345600".into());
    a.insert("ReceiveMessageWaitTimeSeconds".into(), "0".into());
    a.insert("VisibilityTimeout".into(), "30".into());
    // SSE-SQS is on by default for queues created since 2022.
    a.insert("SqsManagedSseEnabled".into(), "true".into());
    if fifo {
        a.insert("FifoQueue".into(), "true".into());
        a.insert("ContentBasedDeduplication".into(), "false".into());
        a.insert("DeduplicationScope".into(), "queue".into());
        a.insert("FifoThroughputLimit".into(), "perQueue".into());
    }
    a
}

/// Looks up a queue by ARN for redrive checks.
pub trait QueueLookup {
    fn queue_attributes(&self, key: &QueueKey) -> Option<Attributes>;
}

/// Validates requested attributes for a queue that is (or will be) `fifo`, returning
/// them normalised. `creating` allows FifoQueue.
pub fn validate(
    requested: &std::collections::BTreeMap<String, String>,
    fifo: bool,
    creating: bool,
    this_queue: &QueueKey,
    lookup: &dyn QueueLookup,
) -> Result<Attributes, AwsError> {
    let mut out = Attributes::new();
    for (name, value) in requested {
        if !SETTABLE.contains(&name.as_str()) {
            return Err(invalid_attribute_name(format!("Unknown Attribute {name}.")));
        }
        if FIFO_ONLY.contains(&name.as_str()) && !fifo {
            return Err(invalid_attribute_name(format!(
                "You can specify the {name} only when FifoQueue is set to true."
            )));
        }
        let normalised = match name.as_str() {
            "FifoQueue" => {
                if !creating {
                    return Err(invalid_attribute_value("Modifying queue type is not supported."));
                }
                match value.as_str() {
                    "true" | "false" => value.clone(),
                    _ => return Err(invalid_value(name)),
                }
            }
            "ContentBasedDeduplication" | "SqsManagedSseEnabled" => match value.to_ascii_lowercase().as_str() {
                v @ ("true" | "false") => v.to_owned(),
                _ => return Err(invalid_value(name)),
            },
            "DeduplicationScope" => match value.as_str() {
                "messageGroup" | "queue" => value.clone(),
                _ => return Err(invalid_value(name)),
            },
            "FifoThroughputLimit" => match value.as_str() {
                "perQueue" | "perMessageGroupId" => value.clone(),
                _ => return Err(invalid_value(name)),
            },
            "Policy" => {
                if !value.is_empty() && crate::iam::Policy::parse_resource_policy(value).is_err() {
                    return Err(invalid_value(name));
                }
                value.clone()
            }
            "RedrivePolicy" => validate_redrive_policy(value, fifo, this_queue, lookup)?,
            "RedriveAllowPolicy" => validate_redrive_allow_policy(value)?,
            "KmsMasterKeyId" => value.clone(),
            n => {
                let (lo, hi) = range(n).unwrap_or((i64::MIN, i64::MAX));
                match value.trim().parse::<i64>() {
                    Ok(v) if (lo..=hi).contains(&v) => v.to_string(),
                    _ => return Err(invalid_value(name)),
                }
            }
        };
        out.insert(name.clone(), normalised);
    }
    let kms = out.get("KmsMasterKeyId").is_some_and(|k| !k.is_empty());
    match (kms, out.get("SqsManagedSseEnabled").map(String::as_str)) {
        (true, Some("true")) => {
            return Err(invalid_attribute_name(
                "You can use one type of server-side encryption (SSE) at one time. You can either enable KMS SSE or SQS SSE.",
            ))
        }
        (true, None) => {
            // KMS SSE replaces the default SSE-SQS.
            out.insert("SqsManagedSseEnabled".into(), "false".into());
        }
        _ => {}
    }
    if kms && creating && !out.contains_key("KmsDataKeyReusePeriodSeconds") {
        // AWS's default data key reuse period.
        out.insert("KmsDataKeyReusePeriodSeconds".into(), "300".into());
    }
    Ok(out)
}

fn validate_redrive_policy(
    value: &str,
    fifo: bool,
    this_queue: &QueueKey,
    lookup: &dyn QueueLookup,
) -> Result<String, AwsError> {
    if value.is_empty() {
        // An empty RedrivePolicy removes it.
        return Ok(String::new());
    }
    let bad = || {
        invalid_attribute_value(format!(
            "Invalid value for the parameter RedrivePolicy. Reason: Redrive policy is not a valid JSON map. {value}"
        ))
    };
    let v: serde_json::Value = serde_json::from_str(value).map_err(|_| bad())?;
    let obj = v.as_object().ok_or_else(bad)?;
    let arn = obj
        .get("deadLetterTargetArn")
        .and_then(|a| a.as_str())
        .ok_or_else(|| invalid_attribute_value("Value for parameter RedrivePolicy is invalid. Reason: Redrive policy does not contain mandatory attribute: deadLetterTargetArn."))?;
    let count = match obj.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid_attribute_value("Value for parameter RedrivePolicy is invalid. Reason: Redrive policy does not contain mandatory attribute: maxReceiveCount."))?;
    if !(1..=1000).contains(&count) {
        return Err(invalid_attribute_value(
            "Value for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: {count}, valid values are from 1 to 1000 both inclusive.".replace("{count}", &count.to_string()),
        ));
    }
    let target = QueueKey::from_arn(arn).ok_or_else(|| {
        invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn."
        ))
    })?;
    let target_attrs = lookup.queue_attributes(&target).ok_or_else(|| {
        invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist."
        ))
    })?;
    let target_fifo = target_attrs.get("FifoQueue").is_some_and(|v| v == "true");
    if target_fifo != fifo {
        return Err(invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Dead-letter queue must be same type of queue as the source."
        )));
    }
    if target.account != this_queue.account || target.region != this_queue.region {
        return Err(invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Dead-letter target owner should be same as the source."
        )));
    }
    if !redrive_allowed(&target_attrs, this_queue) {
        return Err(invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: Queue {} does not allow this queue to use it as a dead-letter queue (RedriveAllowPolicy).",
            target.arn()
        )));
    }
    Ok(serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": count}).to_string())
}

/// Whether the DLQ's RedriveAllowPolicy lets `source` use it.
pub fn redrive_allowed(dlq_attributes: &Attributes, source: &QueueKey) -> bool {
    let Some(policy) = dlq_attributes.get("RedriveAllowPolicy").filter(|p| !p.is_empty()) else {
        return true;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(policy) else { return true };
    match v.get("redrivePermission").and_then(|p| p.as_str()) {
        Some("denyAll") => false,
        Some("byQueue") => v
            .get("sourceQueueArns")
            .and_then(|a| a.as_array())
            .is_some_and(|arns| arns.iter().any(|a| a.as_str() == Some(source.arn().as_str()))),
        _ => true,
    }
}

fn validate_redrive_allow_policy(value: &str) -> Result<String, AwsError> {
    if value.is_empty() {
        return Ok(String::new());
    }
    let bad = |reason: &str| {
        invalid_attribute_value(format!("Value {value} for parameter RedriveAllowPolicy is invalid. Reason: {reason}"))
    };
    let v: serde_json::Value = serde_json::from_str(value).map_err(|_| bad("Invalid JSON."))?;
    let permission = v
        .get("redrivePermission")
        .and_then(|p| p.as_str())
        .ok_or_else(|| bad("Amazon SQS can't create the redrive allow policy, as it's in an unsupported format."))?;
    let arns = v.get("sourceQueueArns").and_then(|a| a.as_array());
    match permission {
        "allowAll" | "denyAll" => {
            if arns.is_some_and(|a| !a.is_empty()) {
                return Err(bad("Only byQueue policies can specify sourceQueueArns."));
            }
        }
        "byQueue" => {
            let n = arns.map(Vec::len).unwrap_or(0);
            if n == 0 {
                return Err(bad("Amazon SQS can't create the redrive allow policy. To specify one or more source queues, you must use the byQueue redrive permission."));
            }
            // "You can specify up to 10 source queue ARNs."
            if n > 10 {
                return Err(bad("Amazon SQS can't create the redrive allow policy, as you can specify a maximum of 10 source queue ARNs."));
            }
        }
        _ => return Err(bad("Amazon SQS can't create the redrive allow policy, as it's in an unsupported format.")),
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Queues(Vec<(QueueKey, Attributes)>);
    impl QueueLookup for Queues {
        fn queue_attributes(&self, key: &QueueKey) -> Option<Attributes> {
            self.0.iter().find(|(k, _)| k == key).map(|(_, a)| a.clone())
        }
    }

    fn req(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn key(name: &str) -> QueueKey {
        QueueKey::new("000000000000", "us-east-1", name)
    }

    fn code(r: Result<Attributes, AwsError>) -> String {
        r.unwrap_err().json_type
    }

    #[test]
    fn ranges_names_and_queue_types() {
        let none = Queues(vec![]);
        let q = key("q");
        let ok = validate(&req(&[("VisibilityTimeout", "043200"), ("DelaySeconds", "900")]), false, true, &q, &none)
            .unwrap();
        assert_eq!(ok["VisibilityTimeout"], "43200", "numbers are normalised");
        assert_eq!(
            code(validate(&req(&[("VisibilityTimeout", "43201")]), false, true, &q, &none)),
            "InvalidAttributeValue"
        );
        assert_eq!(
            code(validate(&req(&[("MaximumMessageSize", "1023")]), false, true, &q, &none)),
            "InvalidAttributeValue"
        );
        assert_eq!(
            code(validate(&req(&[("MessageRetentionPeriod", "59")]), false, true, &q, &none)),
            "InvalidAttributeValue"
        );
        assert_eq!(code(validate(&req(&[("QueueArn", "x")]), false, true, &q, &none)), "InvalidAttributeName");
        assert_eq!(
            code(validate(&req(&[("DeduplicationScope", "queue")]), false, true, &q, &none)),
            "InvalidAttributeName"
        );
        assert!(validate(&req(&[("DeduplicationScope", "messageGroup")]), true, true, &q, &none).is_ok());
        assert_eq!(code(validate(&req(&[("FifoQueue", "true")]), true, false, &q, &none)), "InvalidAttributeValue");
    }

    #[test]
    fn kms_and_sqs_managed_encryption_are_exclusive() {
        let none = Queues(vec![]);
        let q = key("q");
        let kms = validate(&req(&[("KmsMasterKeyId", "alias/aws/sqs")]), false, true, &q, &none).unwrap();
        assert_eq!(kms["SqsManagedSseEnabled"], "false");
        assert_eq!(kms["KmsDataKeyReusePeriodSeconds"], "300");
        let both = validate(&req(&[("KmsMasterKeyId", "k"), ("SqsManagedSseEnabled", "true")]), false, true, &q, &none);
        assert_eq!(code(both), "InvalidAttributeName");
    }

    #[test]
    fn redrive_policy_checks_target_type_and_allow_policy() {
        let std_dlq = (key("dlq"), Attributes::new());
        let fifo_dlq = (key("dlq.fifo"), [("FifoQueue".to_string(), "true".to_string())].into());
        let deny = (
            key("deny"),
            [("RedriveAllowPolicy".to_string(), r#"{"redrivePermission":"denyAll"}"#.to_string())].into(),
        );
        let lookup = Queues(vec![std_dlq, fifo_dlq, deny]);
        let q = key("src");
        let policy = |target: &str, count: &str| {
            req(&[(
                "RedrivePolicy",
                &format!(
                    r#"{{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:{target}","maxReceiveCount":{count}}}"#
                ),
            )])
        };
        let ok = validate(&policy("dlq", "\"3\""), false, true, &q, &lookup).unwrap();
        assert_eq!(
            ok["RedrivePolicy"],
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":3}"#
        );
        assert_eq!(code(validate(&policy("dlq", "0"), false, true, &q, &lookup)), "InvalidAttributeValue");
        assert_eq!(code(validate(&policy("dlq", "1001"), false, true, &q, &lookup)), "InvalidAttributeValue");
        assert_eq!(code(validate(&policy("missing", "3"), false, true, &q, &lookup)), "InvalidAttributeValue");
        assert_eq!(code(validate(&policy("dlq.fifo", "3"), false, true, &q, &lookup)), "InvalidAttributeValue");
        assert_eq!(code(validate(&policy("deny", "3"), false, true, &q, &lookup)), "InvalidAttributeValue");
        let by_queue = req(&[("RedriveAllowPolicy", r#"{"redrivePermission":"byQueue"}"#)]);
        assert_eq!(code(validate(&by_queue, false, true, &q, &lookup)), "InvalidAttributeValue");
    }
}
