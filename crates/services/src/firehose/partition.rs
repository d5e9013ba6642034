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
        key_values(&fields)
    }
}

/// "Record deaggregation by JSON or by delimiter is capped at 500 per record."
pub const MAX_SUB_RECORDS: usize = 500;

/// How a RecordDeAggregation processor splits records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubRecords {
    /// Consecutive JSON objects, on one line or newline-delimited (not an array).
    Json,
    /// Split on a delimiter (given base64-encoded in the configuration).
    Delimited(Vec<u8>),
}

impl SubRecords {
    /// Reads SubRecordType and Delimiter.
    pub fn from_parameters(sub_record_type: Option<&str>, delimiter: Option<&str>) -> Result<SubRecords, String> {
        match sub_record_type {
            Some("JSON") => Ok(SubRecords::Json),
            Some("DELIMITED") => {
                use base64::Engine as _;
                let d = base64::engine::general_purpose::STANDARD
                    .decode(delimiter.ok_or("A DELIMITED RecordDeAggregation processor needs a Delimiter.")?)
                    .map_err(|_| "Delimiter must be base64-encoded.".to_string())?;
                if d.is_empty() {
                    return Err("Delimiter must not be empty.".into());
                }
                Ok(SubRecords::Delimited(d))
            }
            other => Err(format!("SubRecordType must be JSON or DELIMITED, not {}.", other.unwrap_or("missing"))),
        }
    }

    /// Splits one record into its sub-records.
    pub fn split(&self, record: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let parts: Vec<Vec<u8>> = match self {
            SubRecords::Json => {
                let mut parts = Vec::new();
                let mut stream = serde_json::Deserializer::from_slice(record).into_iter::<serde::de::IgnoredAny>();
                let mut start = 0;
                while let Some(next) = stream.next() {
                    next.map_err(|_| "The record is not a sequence of JSON objects.".to_string())?;
                    let end = stream.byte_offset();
                    let part = record[start..end].trim_ascii();
                    if !part.starts_with(b"{") {
                        return Err("The record is not a sequence of JSON objects.".into());
                    }
                    parts.push(part.to_vec());
                    start = end;
                }
                parts
            }
            SubRecords::Delimited(d) => {
                let mut parts = Vec::new();
                let mut rest = record;
                while let Some(at) = rest.windows(d.len()).position(|w| w == d.as_slice()) {
                    parts.push(rest[..at].to_vec());
                    rest = &rest[at + d.len()..];
                }
                if !rest.is_empty() {
                    parts.push(rest.to_vec());
                }
                parts
            }
        };
        if parts.len() > MAX_SUB_RECORDS {
            return Err(format!("The record holds more than {MAX_SUB_RECORDS} sub-records."));
        }
        Ok(parts)
    }
}

/// The `partitionKeyFromLambda` keys in a transformation result record.
pub fn lambda_keys(result: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(keys) = result["metadata"]["partitionKeys"].as_object() else {
        return Ok(BTreeMap::new());
    };
    key_values(keys)
}

/// Partition key values as text: strings as they are, numbers and booleans as JSON
/// renders them; null, arrays and objects cannot name a partition.
fn key_values(fields: &serde_json::Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    fields
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            Value::Null => Err(format!("The partition key {k} is null.")),
            _ => Err(format!("The partition key {k} is not a string, number or boolean.")),
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
    fn deaggregation_splits_json_and_delimited_records() {
        let json = SubRecords::from_parameters(Some("JSON"), None).unwrap();
        assert_eq!(json.split(br#"{"a":1}{"a":2}"#).unwrap(), vec![br#"{"a":1}"#.to_vec(), br#"{"a":2}"#.to_vec()]);
        assert_eq!(json.split(b"{\"a\":1}\n{\"b\":{\"c\":2}}\n").unwrap().len(), 2);
        assert!(json.split(br#"[{"a":1},{"a":2}]"#).is_err(), "arrays are not valid input");
        assert!(json.split(br#"{"a":1}{"a""#).is_err());
        let many: Vec<u8> = br#"{"a":1}"#.repeat(MAX_SUB_RECORDS + 1);
        assert!(json.split(&many).is_err());
        let hashes = SubRecords::from_parameters(Some("DELIMITED"), Some("IyMjIw==")).unwrap();
        assert_eq!(hashes, SubRecords::Delimited(b"####".to_vec()));
        assert_eq!(hashes.split(b"a####b####").unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(SubRecords::from_parameters(Some("DELIMITED"), None).is_err());
        assert!(SubRecords::from_parameters(Some("CSV"), None).is_err());
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
