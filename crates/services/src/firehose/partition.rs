//! Dynamic partitioning (AWS "Partition streaming data in Amazon Data Firehose"): partition
//! keys come from a MetadataExtraction processor's jq query over each JSON record
//! (`!{partitionKeyFromQuery:…}`) or from the `metadata.partitionKeys` a transformation
//! Lambda returns (`!{partitionKeyFromLambda:…}`); records with equal keys share objects.
//! The jq engine is jaq, which implements jq 1.6's language.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, unwrap_valr, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;
use std::collections::BTreeMap;

/// The only JsonParsingEngine AWS accepts.
pub const JSON_PARSING_ENGINE: &str = "JQ-1.6";

/// The partition keys of one record, by namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionKeys {
    pub query: BTreeMap<String, String>,
    pub lambda: BTreeMap<String, String>,
}

impl PartitionKeys {
    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        match namespace {
            "partitionKeyFromQuery" => self.query.get(key),
            "partitionKeyFromLambda" => self.lambda.get(key),
            _ => None,
        }
        .map(String::as_str)
    }
}

/// A compiled MetadataExtractionQuery, applied to a batch of records.
pub struct Extractor {
    filter: jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>,
}

impl Extractor {
    /// Compiles `query`; the error says why it is not valid jq.
    pub fn new(query: &str) -> Result<Extractor, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code: query, path: () })
            .map_err(|_| format!("MetadataExtractionQuery {query} is not a valid jq expression."))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|_| format!("MetadataExtractionQuery {query} is not a valid jq expression."))?;
        Ok(Extractor { filter })
    }

    /// The keys the query extracts from one record: its first output must be an object
    /// whose values are strings, numbers or booleans (AWS renders them as text).
    pub fn extract(&self, record: &[u8]) -> Result<BTreeMap<String, String>, String> {
        let text = std::str::from_utf8(record).map_err(|_| "The record is not UTF-8 JSON.".to_string())?;
        let input = jaq_json::read::parse_single(text.trim().as_bytes())
            .map_err(|_| "The record is not valid JSON.".to_string())?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let first = self
            .filter
            .id
            .run((ctx, input))
            .map(unwrap_valr)
            .next()
            .ok_or("The query produced no output.")?
            .map_err(|e| format!("The query failed: {e}"))?;
        let output: Value =
            serde_json::from_str(&first.to_string()).map_err(|_| "The query output is not JSON.".to_string())?;
        let Value::Object(fields) = output else {
            return Err("The query output is not a JSON object.".into());
        };
        fields
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                Value::Bool(b) => Ok((k, b.to_string())),
                Value::Null => Err(format!("The partition key {k} is null.")),
                _ => Err(format!("The partition key {k} is not a string, number or boolean.")),
            })
            .collect()
    }
}

/// The `partitionKeyFromLambda` keys in a transformation result record.
pub fn lambda_keys(result: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(keys) = result["metadata"]["partitionKeys"].as_object() else {
        return Ok(BTreeMap::new());
    };
    keys.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(format!("The partition key {k} returned by the function is not a string.")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jq_queries_extract_keys() {
        let q =
            Extractor::new("{customer_id: .customer_id, device: .type.device, n: .n, up: (.c|ascii_upcase)}").unwrap();
        let keys = q.extract(br#"{"customer_id":"c1","type":{"device":"phone"},"n":5,"c":"x"}"#).unwrap();
        assert_eq!(keys["customer_id"], "c1");
        assert_eq!(keys["device"], "phone");
        assert_eq!(keys["n"], "5");
        assert_eq!(keys["up"], "X");
        assert!(q.extract(b"not json").is_err());
        assert!(q.extract(br#"{"type":{}}"#).is_err(), "null keys fail the record");
        assert!(Extractor::new("{a: .a").is_err());
        assert!(Extractor::new("{a: nosuchfunction}").is_err());
        // jq's date functions are there for the common `.ts | strftime(...)` partitions.
        let d = Extractor::new(r#"{day: (.ts | strftime("%Y-%m-%d"))}"#).unwrap();
        assert_eq!(d.extract(br#"{"ts":1772694489}"#).unwrap()["day"], "2026-03-05");
    }

    #[test]
    fn lambda_metadata_keys() {
        let r: Value = serde_json::json!({"metadata": {"partitionKeys": {"a": "x", "b": 2}}});
        let keys = lambda_keys(&r).unwrap();
        assert_eq!(keys["a"], "x");
        assert_eq!(keys["b"], "2");
        assert!(lambda_keys(&serde_json::json!({})).unwrap().is_empty());
        assert!(lambda_keys(&serde_json::json!({"metadata": {"partitionKeys": {"a": [1]}}})).is_err());
    }
}
