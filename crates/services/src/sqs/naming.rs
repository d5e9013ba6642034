//! SQS's Query names. The current botocore model for SQS is JSON and lost the
//! `locationName`s of the old Query model; these are the names AWS's Query API
//! still uses (e.g. `Attribute.1.Name`, `<Message>`, `SendMessageBatchResultEntry`).

use sluice_wire::model::{Member, Model, Shape};
use sluice_wire::query::QueryNaming;

pub struct SqsNaming;

impl QueryNaming for SqsNaming {
    fn member_name(&self, model: &Model, _structure: &str, member: &Member) -> String {
        match model.shape(&member.target) {
            Some(Shape::List { member: element, .. }) => {
                if let Some(Shape::Structure { .. }) = model.shape(element) {
                    // Lists of structures are named after the element shape.
                    return element.clone();
                }
                match member.name.as_str() {
                    "Actions" => "ActionName".into(),
                    "QueueUrls" | "queueUrls" => "QueueUrl".into(),
                    name => name.strip_suffix('s').unwrap_or(name).to_owned(),
                }
            }
            Some(Shape::Map { .. }) => match member.name.as_str() {
                "tags" | "Tags" => "Tag".into(),
                name => name.strip_suffix('s').unwrap_or(name).to_owned(),
            },
            _ => member.name.clone(),
        }
    }

    fn map_entry_names(&self, _model: &Model, map_shape: &str) -> (String, String) {
        if map_shape == "TagMap" {
            ("Key".into(), "Value".into())
        } else {
            ("Name".into(), "Value".into())
        }
    }
}
