//! A botocore service model, reduced to what the codecs need.

use serde_json::Value;
use std::collections::HashMap;

/// A map looked up on every request: foldhash, seeded per process, rather than SipHash,
/// which took ~500 instructions a lookup. The model's maps hold the service models' own
/// names; where a map's keys come from callers, its use says why this hasher will do.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub target: String,
    /// `locationName` of the member, where the model has one.
    pub location_name: Option<String>,
    pub flattened: bool,
}

#[derive(Debug, Clone)]
pub enum Shape {
    Structure { members: Vec<Member>, required: Vec<String> },
    List { member: String, member_location_name: Option<String>, flattened: bool },
    Map { key: String, value: String, key_name: Option<String>, value_name: Option<String>, flattened: bool },
    String,
    Integer,
    Long,
    Boolean,
    Blob,
    Timestamp,
    Double,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub input: Option<String>,
    pub output: Option<String>,
    /// botocore's `resultWrapper` for Query services.
    pub result_wrapper: Option<String>,
}

/// Constraints the model puts on a shape's values.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub pattern: Option<String>,
    pub enum_values: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct Model {
    pub shapes: FastMap<String, Shape>,
    pub constraints: FastMap<String, Constraints>,
    pub operations: FastMap<String, Operation>,
    pub api_version: String,
    pub target_prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid service model: {0}")]
pub struct ModelError(String);

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Model {
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        let root: Value = serde_json::from_str(text).map_err(|e| ModelError(e.to_string()))?;
        let metadata = root.get("metadata").ok_or_else(|| ModelError("no metadata".into()))?;
        let mut shapes = FastMap::default();
        let mut constraints = FastMap::default();
        let raw_shapes = root.get("shapes").and_then(Value::as_object).ok_or_else(|| ModelError("no shapes".into()))?;
        for (name, raw) in raw_shapes {
            shapes.insert(name.clone(), parse_shape(name, raw)?);
            let c = Constraints {
                min: raw.get("min").and_then(Value::as_f64),
                max: raw.get("max").and_then(Value::as_f64),
                pattern: str_field(raw, "pattern"),
                enum_values: raw
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
            };
            if c.min.is_some() || c.max.is_some() || c.pattern.is_some() || c.enum_values.is_some() {
                constraints.insert(name.clone(), c);
            }
        }
        let mut operations = FastMap::default();
        if let Some(ops) = root.get("operations").and_then(Value::as_object) {
            for (name, raw) in ops {
                operations.insert(
                    name.clone(),
                    Operation {
                        input: raw.get("input").and_then(|i| str_field(i, "shape")),
                        output: raw.get("output").and_then(|o| str_field(o, "shape")),
                        result_wrapper: raw.get("output").and_then(|o| str_field(o, "resultWrapper")),
                    },
                );
            }
        }
        Ok(Model {
            shapes,
            constraints,
            operations,
            api_version: str_field(metadata, "apiVersion").unwrap_or_default(),
            target_prefix: str_field(metadata, "targetPrefix"),
        })
    }

    /// A model with no shapes.
    pub fn empty() -> Model {
        Model {
            shapes: FastMap::default(),
            constraints: FastMap::default(),
            operations: FastMap::default(),
            api_version: String::new(),
            target_prefix: None,
        }
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }
}

fn parse_shape(name: &str, raw: &Value) -> Result<Shape, ModelError> {
    let kind =
        raw.get("type").and_then(Value::as_str).ok_or_else(|| ModelError(format!("shape {name} has no type")))?;
    let flattened = raw.get("flattened").and_then(Value::as_bool).unwrap_or(false);
    Ok(match kind {
        "structure" => {
            let mut members = Vec::new();
            if let Some(obj) = raw.get("members").and_then(Value::as_object) {
                for (member_name, m) in obj {
                    members.push(Member {
                        name: member_name.clone(),
                        target: str_field(m, "shape").unwrap_or_default(),
                        location_name: str_field(m, "locationName"),
                        flattened: m.get("flattened").and_then(Value::as_bool).unwrap_or(false),
                    });
                }
            }
            let required = raw
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            Shape::Structure { members, required }
        }
        "list" => {
            let member = raw.get("member").cloned().unwrap_or(Value::Null);
            Shape::List {
                member: str_field(&member, "shape").unwrap_or_default(),
                member_location_name: str_field(&member, "locationName"),
                flattened,
            }
        }
        "map" => {
            let key = raw.get("key").cloned().unwrap_or(Value::Null);
            let value = raw.get("value").cloned().unwrap_or(Value::Null);
            Shape::Map {
                key: str_field(&key, "shape").unwrap_or_default(),
                value: str_field(&value, "shape").unwrap_or_default(),
                key_name: str_field(&key, "locationName"),
                value_name: str_field(&value, "locationName"),
                flattened,
            }
        }
        "string" => Shape::String,
        "integer" => Shape::Integer,
        "long" => Shape::Long,
        "boolean" => Shape::Boolean,
        "blob" => Shape::Blob,
        "timestamp" => Shape::Timestamp,
        "double" | "float" => Shape::Double,
        other => return Err(ModelError(format!("shape {name}: unknown type {other}"))),
    })
}
