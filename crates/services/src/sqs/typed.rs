//! The hot JSON operations, SendMessage and SendMessageBatch, decoded straight from the
//! request body into their structs instead of through a `serde_json::Value` (building,
//! converting and dropping that `Value` was ~12% of the HTTP workers' time in
//! sqs-send-batch). Only a body that decodes cleanly and has every member the model
//! requires takes this path; any other body goes the general way, which words the errors
//! (first missing member in model order, wrong types, duplicate keys) as before.

use super::types::{MessageAttributeMap, SendMessageBatchRequest, SendMessageRequest};

pub(super) enum Decoded {
    SendMessage(SendMessageRequest),
    SendMessageBatch(SendMessageBatchRequest),
}

/// The typed request, when `action` is a hot operation and `body` is complete.
pub(super) fn decode(action: &str, body: &[u8]) -> Option<Decoded> {
    match action {
        "SendMessage" => serde_json::from_slice(body).ok().filter(send_is_complete).map(Decoded::SendMessage),
        "SendMessageBatch" => {
            serde_json::from_slice(body).ok().filter(batch_is_complete).map(Decoded::SendMessageBatch)
        }
        _ => None,
    }
}

/// MessageAttributeValue and MessageSystemAttributeValue require DataType.
fn attributes_are_complete(attributes: &MessageAttributeMap) -> bool {
    attributes.values().all(|v| v.data_type.is_some())
}

/// SendMessageRequest requires QueueUrl and MessageBody.
fn send_is_complete(r: &SendMessageRequest) -> bool {
    r.queue_url.is_some()
        && r.message_body.is_some()
        && attributes_are_complete(&r.message_attributes)
        && attributes_are_complete(&r.message_system_attributes)
}

/// SendMessageBatchRequest requires QueueUrl and Entries, each entry Id and MessageBody.
/// An empty list is left to the general path: the struct cannot tell it from a missing one.
fn batch_is_complete(r: &SendMessageBatchRequest) -> bool {
    r.queue_url.is_some()
        && !r.entries.is_empty()
        && r.entries.iter().all(|e| {
            e.id.is_some()
                && e.message_body.is_some()
                && attributes_are_complete(&e.message_attributes)
                && attributes_are_complete(&e.message_system_attributes)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::MODEL_JSON;
    use sluice_wire::query::first_missing_required;
    use sluice_wire::Model;

    /// Every body the typed path accepts is one the model finds complete, and every
    /// complete body that decodes is accepted: the two paths never disagree on whether a
    /// required member is missing.
    #[test]
    fn the_typed_path_takes_exactly_the_complete_bodies() {
        let model = Model::from_json(MODEL_JSON).unwrap();
        let attrs = r#"{"a": {"DataType": "String", "StringValue": "x"}}"#;
        let no_type = r#"{"a": {"StringValue": "x"}}"#;
        let sends = [
            r#"{"QueueUrl": "u", "MessageBody": "b"}"#.to_owned(),
            r#"{"QueueUrl": "u"}"#.to_owned(),
            r#"{"MessageBody": "b"}"#.to_owned(),
            r#"{"QueueUrl": null, "MessageBody": "b"}"#.to_owned(),
            r#"{"QueueUrl": "u", "MessageBody": null}"#.to_owned(),
            format!(r#"{{"QueueUrl": "u", "MessageBody": "b", "MessageAttributes": {attrs}}}"#),
            format!(r#"{{"QueueUrl": "u", "MessageBody": "b", "MessageAttributes": {no_type}}}"#),
            format!(r#"{{"QueueUrl": "u", "MessageBody": "b", "MessageSystemAttributes": {no_type}}}"#),
            format!(r#"{{"QueueUrl": "u", "MessageBody": "b", "MessageSystemAttributes": {attrs}, "Extra": 1}}"#),
            r#"{"QueueUrl": "u", "MessageBody": "b", "DelaySeconds": "5"}"#.to_owned(),
            r#"{"QueueUrl": "u", "MessageBody": "b", "MessageBody": "c"}"#.to_owned(),
        ];
        let batches = [
            r#"{"QueueUrl": "u", "Entries": [{"Id": "1", "MessageBody": "b"}]}"#.to_owned(),
            r#"{"QueueUrl": "u", "Entries": []}"#.to_owned(),
            r#"{"QueueUrl": "u"}"#.to_owned(),
            r#"{"Entries": [{"Id": "1", "MessageBody": "b"}]}"#.to_owned(),
            r#"{"QueueUrl": "u", "Entries": [{"Id": "1", "MessageBody": "b"}, {"Id": "2"}]}"#.to_owned(),
            r#"{"QueueUrl": "u", "Entries": [{"MessageBody": "b"}]}"#.to_owned(),
            r#"{"QueueUrl": "u", "Entries": null}"#.to_owned(),
            format!(
                r#"{{"QueueUrl": "u", "Entries": [{{"Id": "1", "MessageBody": "b", "MessageAttributes": {attrs}}}]}}"#
            ),
            format!(
                r#"{{"QueueUrl": "u", "Entries": [{{"Id": "1", "MessageBody": "b", "MessageAttributes": {no_type}}}]}}"#
            ),
            format!(
                r#"{{"QueueUrl": "u", "Entries": [{{"Id": "1", "MessageBody": "b", "MessageSystemAttributes": {no_type}}}]}}"#
            ),
        ];
        let mut taken = 0;
        for (action, shape, bodies) in [
            ("SendMessage", "SendMessageRequest", &sends[..]),
            ("SendMessageBatch", "SendMessageBatchRequest", &batches[..]),
        ] {
            for body in bodies {
                let value: serde_json::Value = serde_json::from_str(body).unwrap();
                let complete = first_missing_required(&model, shape, &value).is_none();
                let typed = decode(action, body.as_bytes()).is_some();
                if typed {
                    taken += 1;
                    assert!(complete, "{action} took an incomplete body: {body}");
                }
                // A complete body that the struct decodes (no wrong types, no duplicate
                // members; a batch with entries) must take the typed path.
                let decodes = match action {
                    "SendMessage" => serde_json::from_str::<SendMessageRequest>(body).is_ok(),
                    _ => serde_json::from_str::<SendMessageBatchRequest>(body).is_ok_and(|r| !r.entries.is_empty()),
                };
                assert_eq!(typed, complete && decodes, "{action}: {body}");
            }
        }
        assert_eq!(taken, 5, "the complete, well-typed bodies above");
    }

    /// Decoded bodies, escaped or not, read as sent and have room to be sealed in place.
    #[test]
    fn bodies_decode_whole_with_room_for_the_seal() {
        use sluice_engine::NewMessage;
        let room = |body: &String| body.capacity() - body.len();
        let Some(Decoded::SendMessage(send)) =
            decode("SendMessage", br#"{"QueueUrl": "u", "MessageBody": "a\"b\u00e9"}"#)
        else {
            panic!("a complete SendMessage takes the typed path")
        };
        let body = send.message_body.unwrap();
        assert_eq!(body, "a\"b\u{e9}");
        assert!(room(&body) >= NewMessage::BODY_ROOM, "room {}", room(&body));
        let batch = br#"{"QueueUrl": "u", "Entries": [{"Id": "1", "MessageBody": "plain"}, {"Id": "2", "MessageBody": "tab\t"}]}"#;
        let Some(Decoded::SendMessageBatch(batch)) = decode("SendMessageBatch", batch) else {
            panic!("a complete batch takes the typed path")
        };
        let bodies: Vec<String> = batch.entries.into_iter().map(|e| e.message_body.unwrap()).collect();
        assert_eq!(bodies, ["plain", "tab\t"]);
        assert!(bodies.iter().all(|b| room(b) >= NewMessage::BODY_ROOM));
    }
}
