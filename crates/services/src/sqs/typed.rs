//! The hot JSON operations, SendMessage, SendMessageBatch and DeleteMessageBatch, decoded
//! straight from the request body into their structs instead of through a
//! `serde_json::Value` (building, converting and dropping that `Value` was ~12% of the
//! HTTP workers' time in sqs-send-batch, and DeleteMessageBatch's with its model check
//! ~4% of sqs-cycle's instructions). Only a body that decodes cleanly and has every member the model
//! requires takes this path; any other body goes the general way, which words the errors
//! (first missing member in model order, wrong types, duplicate keys) as before.

use super::types::{
    DeleteMessageBatchRequest, MessageAttributeMap, SendMessageBatchEntry, SendMessageBatchRequest, SendMessageRequest,
};

pub(super) enum Decoded {
    SendMessage(SendMessageRequest),
    SendMessageBatch(SendMessageBatchRequest),
    DeleteMessageBatch(DeleteMessageBatchRequest),
}

/// The typed request, when `action` is a hot operation and `body` is complete.
pub(super) fn decode(action: &str, body: &[u8]) -> Option<Decoded> {
    match action {
        "SendMessage" => plain_send(body)
            .or_else(|| serde_json::from_slice(body).ok())
            .filter(send_is_complete)
            .map(Decoded::SendMessage),
        "SendMessageBatch" => plain_batch(body)
            .or_else(|| serde_json::from_slice(body).ok())
            .filter(batch_is_complete)
            .map(Decoded::SendMessageBatch),
        "DeleteMessageBatch" => {
            serde_json::from_slice(body).ok().filter(delete_batch_is_complete).map(Decoded::DeleteMessageBatch)
        }
        _ => None,
    }
}

/// A SendMessage of string members that need no decoding (and DelaySeconds as a plain
/// integer), read without serde: serde_json reads a string eight bytes at a time, and
/// the body is most of the request. `None` for anything else (attributes, other or
/// repeated members, escapes, `null`, other numbers, malformed JSON), which serde reads
/// as before; when this reads a body, serde reads it the same (tests compare).
fn plain_send(body: &[u8]) -> Option<SendMessageRequest> {
    let mut json = PlainJson { bytes: body, at: 0 };
    let m = plain_message(&mut json, "QueueUrl")?;
    json.at_end().then(|| SendMessageRequest {
        queue_url: m.key,
        message_body: m.body,
        delay_seconds: m.delay_seconds,
        message_deduplication_id: m.deduplication_id,
        message_group_id: m.group_id,
        ..Default::default()
    })
}

/// The members a SendMessage and a SendMessageBatch entry share, and `key`, the one they
/// differ by (`QueueUrl`, `Id`).
#[derive(Default)]
struct PlainMessage {
    key: Option<String>,
    body: Option<String>,
    delay_seconds: Option<i64>,
    deduplication_id: Option<String>,
    group_id: Option<String>,
}

fn plain_message(json: &mut PlainJson<'_>, key: &str) -> Option<PlainMessage> {
    let mut m = PlainMessage::default();
    json.object(|json, member| {
        Some(match member {
            _ if member == key => json.set_string(&mut m.key)?,
            "MessageBody" => json.set_string(&mut m.body)?,
            "DelaySeconds" => m.delay_seconds.replace(json.integer()?).is_none(),
            "MessageDeduplicationId" => json.set_string(&mut m.deduplication_id)?,
            "MessageGroupId" => json.set_string(&mut m.group_id)?,
            _ => return None,
        })
    })?;
    Some(m)
}

/// A SendMessageBatch whose entries are as [`plain_send`] takes a SendMessage (with `Id`
/// for `QueueUrl`), read the same way: through serde_json, the scan of each body for
/// escapes was 11% of sqs-send-batch's instructions and its UTF-8 check 4%
/// (`bench/callgrind.sh`).
fn plain_batch(body: &[u8]) -> Option<SendMessageBatchRequest> {
    let mut json = PlainJson { bytes: body, at: 0 };
    let mut request = SendMessageBatchRequest::default();
    let mut listed = false;
    json.object(|json, member| {
        Some(match member {
            "QueueUrl" => json.set_string(&mut request.queue_url)?,
            "Entries" => {
                request.entries = json.array(plain_batch_entry)?;
                !std::mem::replace(&mut listed, true)
            }
            _ => return None,
        })
    })?;
    json.at_end().then_some(request)
}

fn plain_batch_entry(json: &mut PlainJson<'_>) -> Option<SendMessageBatchEntry> {
    let m = plain_message(json, "Id")?;
    Some(SendMessageBatchEntry {
        id: m.key,
        message_body: m.body,
        delay_seconds: m.delay_seconds,
        message_deduplication_id: m.deduplication_id,
        message_group_id: m.group_id,
        ..Default::default()
    })
}

/// A reader of the little JSON [`plain_send`] takes.
struct PlainJson<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> PlainJson<'a> {
    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat_if(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.eat_if(byte).then_some(())
    }

    /// An object, each of whose members `member` reads: it answers false for a member
    /// read before (serde refuses repeats), `None` for one it does not take.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<bool>) -> Option<()> {
        self.eat(b'{')?;
        let mut first = true;
        while !self.eat_if(b'}') {
            if !std::mem::take(&mut first) {
                self.eat(b',')?;
            }
            let name = self.string()?;
            self.eat(b':')?;
            if !member(self, name)? {
                return None;
            }
        }
        Some(())
    }

    /// An array, each of whose items `item` reads.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        while !self.eat_if(b']') {
            if !items.is_empty() {
                self.eat(b',')?;
            }
            items.push(item(self)?);
        }
        Some(items)
    }

    /// Reads a string into `slot`; false when the slot was set already.
    fn set_string(&mut self, slot: &mut Option<String>) -> Option<bool> {
        Some(slot.replace(self.string()?.to_owned()).is_none())
    }

    /// Whether nothing but whitespace is left.
    fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.at == self.bytes.len()
    }

    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let (end, text) = sluice_wire::json_text::plain_string(&self.bytes[self.at..])?;
        self.at += end + 1;
        Some(text)
    }

    /// An integer as JSON writes one (no leading zeros, fraction or exponent) that fits;
    /// not `-0`, which serde_json reads as a float.
    fn integer(&mut self) -> Option<i64> {
        self.skip_whitespace();
        let start = self.at;
        let negative = self.bytes.get(self.at) == Some(&b'-');
        self.at += usize::from(negative);
        let digits = self.bytes[self.at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let first = *self.bytes.get(self.at)?;
        if digits == 0 || (first == b'0' && (digits > 1 || negative)) {
            return None;
        }
        self.at += digits;
        if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()?.parse().ok()
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

/// DeleteMessageBatchRequest requires QueueUrl and Entries, each entry Id and
/// ReceiptHandle; an empty list is left to the general path, as for sends.
fn delete_batch_is_complete(r: &DeleteMessageBatchRequest) -> bool {
    r.queue_url.is_some()
        && !r.entries.is_empty()
        && r.entries.iter().all(|e| e.id.is_some() && e.receipt_handle.is_some())
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
        let deletes = [
            r#"{"QueueUrl": "u", "Entries": [{"Id": "1", "ReceiptHandle": "h"}, {"Id": "2", "ReceiptHandle": "i"}]}"#,
            r#"{"QueueUrl": "u", "Entries": []}"#,
            r#"{"QueueUrl": "u"}"#,
            r#"{"Entries": [{"Id": "1", "ReceiptHandle": "h"}]}"#,
            r#"{"QueueUrl": "u", "Entries": [{"Id": "1", "ReceiptHandle": "h"}, {"Id": "2"}]}"#,
            r#"{"QueueUrl": "u", "Entries": [{"ReceiptHandle": "h"}]}"#,
            r#"{"QueueUrl": "u", "Entries": [{"Id": "1", "ReceiptHandle": null}]}"#,
            r#"{"QueueUrl": "u", "Entries": [{"Id": 1, "ReceiptHandle": "h"}]}"#,
            r#"{"QueueUrl": "u", "Entries": [{"Id": "1", "ReceiptHandle": "h", "Extra": true}], "More": 1}"#,
            r#"{"QueueUrl": "u", "QueueUrl": "v", "Entries": [{"Id": "1", "ReceiptHandle": "h"}]}"#,
        ]
        .map(str::to_owned);
        let mut taken = 0;
        for (action, shape, bodies) in [
            ("SendMessage", "SendMessageRequest", &sends[..]),
            ("SendMessageBatch", "SendMessageBatchRequest", &batches[..]),
            ("DeleteMessageBatch", "DeleteMessageBatchRequest", &deletes[..]),
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
                    "SendMessageBatch" => {
                        serde_json::from_str::<SendMessageBatchRequest>(body).is_ok_and(|r| !r.entries.is_empty())
                    }
                    _ => serde_json::from_str::<DeleteMessageBatchRequest>(body).is_ok_and(|r| !r.entries.is_empty()),
                };
                assert_eq!(typed, complete && decodes, "{action}: {body}");
            }
        }
        assert_eq!(taken, 7, "the complete, well-typed bodies above");
    }

    /// `seed`, and every body one byte away from it (deleted, replaced or inserted).
    fn one_byte_away(seed: &[u8]) -> Vec<Vec<u8>> {
        let bytes = [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'1', b'-', b'.', b'e', 0x01, 0x7F, 0xC3,
            0xA9, b'n', b'Q',
        ];
        let mut bodies = vec![seed.to_vec()];
        for at in 0..=seed.len() {
            for &b in &bytes {
                let mut inserted = seed.to_vec();
                inserted.insert(at, b);
                bodies.push(inserted);
                if at < seed.len() {
                    let mut replaced = seed.to_vec();
                    replaced[at] = b;
                    bodies.push(replaced);
                }
            }
            if at < seed.len() {
                let mut deleted = seed.to_vec();
                deleted.remove(at);
                bodies.push(deleted);
            }
        }
        bodies
    }

    /// Reads every body one byte away from each seed with `plain` and with serde,
    /// asserting they agree wherever `plain` reads one; how many it read.
    fn compare_with_serde<T>(seeds: &[&str], plain: fn(&[u8]) -> Option<T>) -> usize
    where
        T: std::fmt::Debug + serde::de::DeserializeOwned,
    {
        let mut read = 0;
        for seed in seeds {
            assert!(plain(seed.as_bytes()).is_some(), "{seed}");
            for body in one_byte_away(seed.as_bytes()) {
                let Some(ours) = plain(&body) else { continue };
                read += 1;
                let theirs: T = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("serde refuses {:?}: {e}", String::from_utf8_lossy(&body)));
                assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{:?}", String::from_utf8_lossy(&body));
            }
        }
        read
    }

    /// Whatever the plain reader reads, serde reads the same: typical bodies, and every
    /// body one byte away from them (deleted, replaced or inserted).
    #[test]
    fn the_plain_reader_reads_what_serde_reads() {
        let seeds = [
            r#"{"QueueUrl":"http://127.0.0.1:9324/000000000000/q","MessageBody":"hello wörld","DelaySeconds":5}"#,
            "{ \"MessageGroupId\" : \"g\" ,\n\t\"MessageDeduplicationId\":\"d\",\r\"QueueUrl\":\"q\", \"MessageBody\":\"\", \"DelaySeconds\":-10 } ",
            r#"{"QueueUrl":"q","MessageBody":"b","DelaySeconds":0}"#,
        ];
        let read = compare_with_serde::<SendMessageRequest>(&seeds, plain_send);
        assert!(read > 1000, "{read} bodies read");
    }

    /// The same for SendMessageBatch: entries of every member the plain reader takes,
    /// one entry, and whitespace between the tokens.
    #[test]
    fn the_plain_batch_reader_reads_what_serde_reads() {
        let seeds = [
            r#"{"QueueUrl":"http://127.0.0.1:9324/000000000000/q","Entries":[{"Id":"0","MessageBody":"hello wörld"},{"Id":"1","MessageBody":"b","DelaySeconds":5}]}"#,
            r#"{"Entries":[{"MessageGroupId":"g","MessageDeduplicationId":"d","Id":"a","MessageBody":""}],"QueueUrl":"q"}"#,
            "{ \"QueueUrl\" : \"q\" ,\n\t\"Entries\" : [ { \"Id\" : \"x\" , \"MessageBody\" : \"m\" , \"DelaySeconds\" : -1 } ] } ",
        ];
        let read = compare_with_serde::<SendMessageBatchRequest>(&seeds, plain_batch);
        assert!(read > 1000, "{read} bodies read");
        assert!(
            plain_batch(br#"{"QueueUrl":"q","Entries":[{"Id":"1","MessageBody":"b","MessageAttributes":{}}]}"#)
                .is_none(),
            "attributes go to serde"
        );
        assert!(
            plain_batch(br#"{"QueueUrl":"q","Entries":[],"Entries":[]}"#).is_none(),
            "a repeated member goes to serde"
        );
    }

    /// Decoded bodies, escaped or not, read as sent.
    #[test]
    fn bodies_decode_whole() {
        let Some(Decoded::SendMessage(send)) =
            decode("SendMessage", br#"{"QueueUrl": "u", "MessageBody": "a\"b\u00e9"}"#)
        else {
            panic!("a complete SendMessage takes the typed path")
        };
        let body = send.message_body.unwrap();
        assert_eq!(body, "a\"b\u{e9}");
        let batch = br#"{"QueueUrl": "u", "Entries": [{"Id": "1", "MessageBody": "plain"}, {"Id": "2", "MessageBody": "tab\t"}]}"#;
        let Some(Decoded::SendMessageBatch(batch)) = decode("SendMessageBatch", batch) else {
            panic!("a complete batch takes the typed path")
        };
        let bodies: Vec<String> = batch.entries.into_iter().map(|e| e.message_body.unwrap()).collect();
        assert_eq!(bodies, ["plain", "tab\t"]);
    }
}
