//! SQS's Query names. The current botocore model for SQS is JSON and lost the
//! `locationName`s of the old Query model; these are the names AWS's Query API
//! still uses (e.g. `Attribute.1.Name`, `<Message>`, `SendMessageBatchResultEntry`).

use sluice_wire::model::{Member, Model, Shape};
use sluice_wire::query::QueryNaming;

pub struct SqsNaming;

impl QueryNaming for SqsNaming {
    fn member_name<'m>(&self, model: &'m Model, _structure: &str, member: &'m Member) -> &'m str {
        match model.shape(&member.target) {
            Some(Shape::List { member: element, .. }) => {
                if let Some(Shape::Structure { .. }) = model.shape(element) {
                    // Lists of structures are named after the element shape.
                    return element;
                }
                match member.name.as_str() {
                    "Actions" => "ActionName",
                    "QueueUrls" | "queueUrls" => "QueueUrl",
                    name => name.strip_suffix('s').unwrap_or(name),
                }
            }
            Some(Shape::Map { .. }) => match member.name.as_str() {
                "tags" | "Tags" => "Tag",
                name => name.strip_suffix('s').unwrap_or(name),
            },
            _ => &member.name,
        }
    }

    fn map_entry_names<'m>(&self, _model: &'m Model, map_shape: &str) -> (&'m str, &'m str) {
        if map_shape == "TagMap" {
            ("Key", "Value")
        } else {
            ("Name", "Value")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::MODEL_JSON;
    use serde_json::json;
    use sluice_wire::query::decode;
    use sluice_wire::xml::XmlResponse;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn decodes_query_batches_with_nested_attributes() {
        let model = Model::from_json(MODEL_JSON).unwrap();
        let form = params(&[
            ("QueueUrl", "http://h/1/q"),
            ("SendMessageBatchRequestEntry.1.Id", "a"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "one"),
            ("SendMessageBatchRequestEntry.1.DelaySeconds", "5"),
            ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Name", "k"),
            ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType", "String"),
            ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue", "v"),
            ("SendMessageBatchRequestEntry.10.Id", "b"),
            ("SendMessageBatchRequestEntry.10.MessageBody", "ten"),
            ("SendMessageBatchRequestEntry.2.Id", "c"),
            ("SendMessageBatchRequestEntry.2.MessageBody", "two"),
        ]);
        let v = decode(&model, &SqsNaming, "SendMessageBatchRequest", &form).unwrap();
        assert_eq!(
            v,
            json!({"QueueUrl": "http://h/1/q", "Entries": [
                {"Id": "a", "MessageBody": "one", "DelaySeconds": 5,
                 "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
                {"Id": "c", "MessageBody": "two"},
                {"Id": "b", "MessageBody": "ten"}
            ]})
        );
        let v = decode(
            &model,
            &SqsNaming,
            "CreateQueueRequest",
            &params(&[
                ("QueueName", "q"),
                ("Attribute.1.Name", "DelaySeconds"),
                ("Attribute.1.Value", "3"),
                ("Tag.1.Key", "t"),
                ("Tag.1.Value", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(v, json!({"QueueName": "q", "Attributes": {"DelaySeconds": "3"}, "tags": {"t": "x"}}));
        assert!(decode(&model, &SqsNaming, "ReceiveMessageRequest", &params(&[("MaxNumberOfMessages", "x")])).is_err());
    }

    #[test]
    fn renders_query_xml_with_sqs_element_names() {
        let model = Model::from_json(MODEL_JSON).unwrap();
        let xml = XmlResponse { model: &model, naming: &SqsNaming, xmlns: "ns" };
        let out = xml.render(
            "ReceiveMessage",
            Some(&json!({"Messages": [{"MessageId": "m", "Body": "<b>", "Attributes": {"SenderId": "s"},
                "MessageAttributes": {"k": {"DataType": "Binary", "BinaryValue": "AAE="}}}]})),
            "rid",
        );
        assert!(out.starts_with(
            "<?xml version=\"1.0\"?><ReceiveMessageResponse xmlns=\"ns\"><ReceiveMessageResult><Message>"
        ));
        assert!(out.contains("<Body>&lt;b&gt;</Body>"));
        assert!(out.contains("<Attribute><Name>SenderId</Name><Value>s</Value></Attribute>"));
        assert!(out.contains("<MessageAttribute><Name>k</Name><Value><BinaryValue>AAE=</BinaryValue><DataType>Binary</DataType></Value></MessageAttribute>"));
        assert!(
            out.ends_with("<ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></ReceiveMessageResponse>")
        );
        let out = xml.render("ListQueueTags", Some(&json!({"Tags": {"a": "1"}})), "r");
        assert!(out.contains("<Tag><Key>a</Key><Value>1</Value></Tag>"), "{out}");
        let out = xml.render("DeleteMessage", Some(&json!({})), "r");
        assert_eq!(out, "<?xml version=\"1.0\"?><DeleteMessageResponse xmlns=\"ns\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteMessageResponse>");
    }
}
