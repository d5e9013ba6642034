//! Data transformation (ProcessingConfiguration): Lambda processors are invoked as an
//! HTTP POST to the URL Sluice's configuration maps the function ARN to, with the
//! documented event, and their response contract is applied exactly (AWS "Data
//! transformation and status model"): every record comes back with its recordId and a
//! result of Ok, Dropped or ProcessingFailed; anything else fails the invocation, which is
//! retried NumberOfRetries times before its records go to the error prefix as
//! `processing-failed`. AppendDelimiterToRecord is applied in place.

use super::partition::{self, PartitionKeys};
use super::*;
use sluice_engine::firehose::Buffered;
use std::collections::HashMap;

/// Partition keys of transformed records, by buffer sequence number.
pub(crate) type KeysBySeq = HashMap<i64, PartitionKeys>;

/// NumberOfRetries default (AWS: 3).
const DEFAULT_RETRIES: u64 = 3;
/// A response larger than 6 MiB fails the invocation (the synchronous Lambda payload limit).
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// A record that could not be transformed, with why.
pub(crate) struct Failed {
    pub record: Buffered,
    pub code: String,
    pub message: String,
    pub attempts: u64,
}

fn parameter<'a>(processor: &'a Value, name: &str) -> Option<&'a str> {
    processor["Parameters"]
        .as_array()?
        .iter()
        .find(|p| p["ParameterName"] == name)
        .and_then(|p| p["ParameterValue"].as_str())
}

impl FirehoseService {
    /// Checks a destination's ProcessingConfiguration: known processor types, and a
    /// function URL configured for every Lambda ARN.
    pub(crate) fn check_processing(&self, destination: &Value) -> Result<(), AwsError> {
        let processing = &destination["ProcessingConfiguration"];
        if !processing["Enabled"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        for p in processing["Processors"].as_array().map(Vec::as_slice).unwrap_or_default() {
            match p["Type"].as_str().unwrap_or_default() {
                "Lambda" => {
                    let arn = parameter(p, "LambdaArn")
                        .ok_or_else(|| invalid_argument("A Lambda processor needs a LambdaArn parameter."))?;
                    if !self.lambda_urls.contains_key(arn) {
                        return Err(invalid_argument(format!(
                            "No function URL is configured for {arn}: start Sluice with --lambda-url {arn}=http://…"
                        )));
                    }
                }
                "AppendDelimiterToRecord" => {}
                "RecordDeAggregation" => {
                    partition::SubRecords::from_parameters(parameter(p, "SubRecordType"), parameter(p, "Delimiter"))
                        .map_err(invalid_argument)?;
                }
                "MetadataExtraction" if super::dynamic_partitioning(destination) => {
                    if parameter(p, "JsonParsingEngine").unwrap_or(partition::JSON_PARSING_ENGINE)
                        != partition::JSON_PARSING_ENGINE
                    {
                        return Err(invalid_argument("JsonParsingEngine must be JQ-1.6."));
                    }
                    let query = parameter(p, "MetadataExtractionQuery").ok_or_else(|| {
                        invalid_argument("MetadataExtraction needs a MetadataExtractionQuery parameter.")
                    })?;
                    partition::Extractor::new(query).map_err(invalid_argument)?;
                }
                "MetadataExtraction" => {
                    return Err(invalid_argument(
                        "The MetadataExtraction processor requires dynamic partitioning to be enabled.",
                    ))
                }
                other => {
                    return Err(invalid_argument(format!("Processor type {other} is not supported by Sluice yet.")))
                }
            }
        }
        Ok(())
    }

    /// Applies the processors to `batch`: the records to deliver (transformed), the
    /// records that failed, and the partition keys processors extracted.
    pub(crate) async fn transform(
        &self,
        stream: &DeliveryStream,
        destination: &Value,
        batch: Vec<Buffered>,
    ) -> (Vec<Buffered>, Vec<Failed>, KeysBySeq) {
        let mut keys = KeysBySeq::new();
        let processing = &destination["ProcessingConfiguration"];
        if !processing["Enabled"].as_bool().unwrap_or(false) {
            return (batch, vec![], keys);
        }
        let mut records = batch;
        let mut failed = Vec::new();
        // AWS runs processors in a fixed order whatever the list's: "deaggregation → data
        // transformation through Lambda → partitioning keys", and the delimiter is appended
        // to the records as delivered.
        let stage = |p: &Value| match p["Type"].as_str().unwrap_or_default() {
            "RecordDeAggregation" => 0,
            "Lambda" => 1,
            "MetadataExtraction" => 2,
            _ => 3,
        };
        let mut processors = processing["Processors"].as_array().cloned().unwrap_or_default();
        processors.sort_by_key(stage);
        for p in processors {
            match p["Type"].as_str().unwrap_or_default() {
                "Lambda" => {
                    let (ok, bad) = self.invoke(stream, &p, records, &mut keys).await;
                    records = ok;
                    failed.extend(bad);
                }
                "AppendDelimiterToRecord" => {
                    let delimiter = parameter(&p, "Delimiter").unwrap_or("\\n").replace("\\n", "\n");
                    for r in &mut records {
                        r.data.extend_from_slice(delimiter.as_bytes());
                    }
                }
                "RecordDeAggregation" => {
                    let (ok, bad) = deaggregate(&p, records);
                    records = ok;
                    failed.extend(bad);
                }
                "MetadataExtraction" => {
                    let query = parameter(&p, "MetadataExtractionQuery").unwrap_or_default();
                    let (ok, bad) = extract_metadata(query, records, &mut keys);
                    records = ok;
                    failed.extend(bad);
                }
                _ => {}
            }
        }
        (records, failed, keys)
    }

    async fn invoke(
        &self,
        stream: &DeliveryStream,
        processor: &Value,
        batch: Vec<Buffered>,
        keys: &mut KeysBySeq,
    ) -> (Vec<Buffered>, Vec<Failed>) {
        let arn = parameter(processor, "LambdaArn").unwrap_or_default().to_owned();
        let retries = parameter(processor, "NumberOfRetries").and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_RETRIES);
        let url = self.lambda_urls.get(&arn).cloned();
        let region = stream.region.clone();
        let event_records: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    "recordId": format!("{i:08}{}", r.seq),
                    "approximateArrivalTimestamp": r.arrival_ms,
                    "data": sluice_wire::record_base64::encode(&r.data),
                })
            })
            .collect();
        let ids: Vec<String> =
            event_records.iter().map(|r| r["recordId"].as_str().unwrap_or_default().to_owned()).collect();
        let mut last_error = String::new();
        let mut attempts = 0;
        for _ in 0..=retries {
            attempts += 1;
            let event = json!({
                "invocationId": uuid::Uuid::new_v4().to_string(),
                "deliveryStreamArn": stream.config["arn"],
                "region": region,
                "records": event_records,
            });
            let result = match (&self.http, &url) {
                (Some(http), Some(url)) => {
                    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
                    http.post(url, &headers, event.to_string().as_bytes()).await
                }
                _ => Err("no function URL".to_string()),
            };
            match result.and_then(|(status, body)| {
                if status != 200 {
                    return Err(format!("The function returned HTTP {status}."));
                }
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err("The function response exceeds 6 MiB.".into());
                }
                apply_response(&ids, &batch, &body)
            }) {
                Ok(outcome) => {
                    let (mut ok, mut failed) = (Vec::new(), Vec::new());
                    for (record, result) in batch.into_iter().zip(outcome) {
                        match result {
                            Outcome::Ok(data, lambda_keys) => {
                                if !lambda_keys.is_empty() {
                                    keys.entry(record.seq).or_default().lambda = lambda_keys;
                                }
                                ok.push(Buffered { data, ..record })
                            }
                            Outcome::Dropped => {}
                            Outcome::Failed => failed.push(Failed {
                                record,
                                code: "Lambda.ProcessingFailedStatus".into(),
                                message: "The function returned ProcessingFailed for this record.".into(),
                                attempts,
                            }),
                        }
                    }
                    return (ok, failed);
                }
                Err(e) => last_error = e,
            }
        }
        tracing::warn!(stream = %stream.name, error = %last_error, "transformation failed; records go to the error prefix");
        let failed = batch
            .into_iter()
            .map(|record| Failed { record, code: "Lambda.FunctionError".into(), message: last_error.clone(), attempts })
            .collect();
        (vec![], failed)
    }
}

enum Outcome {
    Ok(Vec<u8>, std::collections::BTreeMap<String, String>),
    Dropped,
    Failed,
}

/// Checks the function's answer: a result for every recordId, no others, valid statuses,
/// base64 data for Ok records.
fn apply_response(ids: &[String], batch: &[Buffered], body: &[u8]) -> Result<Vec<Outcome>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "The function response is not valid JSON.".to_string())?;
    let records = v["records"].as_array().ok_or("The function response has no records.")?;
    if records.len() != batch.len() {
        return Err(format!("The function returned {} records for {} sent.", records.len(), batch.len()));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let r = records
            .iter()
            .find(|r| r["recordId"] == id.as_str())
            .ok_or_else(|| format!("The function response is missing recordId {id}."))?;
        out.push(match r["result"].as_str() {
            Some("Ok") => Outcome::Ok(
                sluice_wire::record_base64::decode(r["data"].as_str().unwrap_or_default().as_bytes())
                    .map_err(|_| format!("Record {id} has data that is not base64."))?,
                partition::lambda_keys(r)?,
            ),
            Some("Dropped") => Outcome::Dropped,
            Some("ProcessingFailed") => Outcome::Failed,
            other => return Err(format!("Record {id} has an invalid result {other:?}.")),
        });
    }
    Ok(out)
}

/// Splits records into their sub-records. Each sub-record needs its own identity for
/// recordIds and partition keys, so it gets `seq * 1000 + index` (at most 500 per record);
/// the buffer is released by the source records' sequence numbers, not these. A record
/// that cannot be split fails whole with `RecordDeAggregation.Failed` (Sluice's code; AWS
/// documents none).
fn deaggregate(processor: &Value, records: Vec<Buffered>) -> (Vec<Buffered>, Vec<Failed>) {
    let how = partition::SubRecords::from_parameters(
        parameter(processor, "SubRecordType"),
        parameter(processor, "Delimiter"),
    );
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for record in records {
        match how.as_ref().map_err(Clone::clone).and_then(|h| h.split(&record.data)) {
            Ok(parts) => ok.extend(parts.into_iter().enumerate().map(|(i, data)| Buffered {
                seq: record.seq * 1000 + i as i64,
                arrival_ms: record.arrival_ms,
                data,
            })),
            Err(message) => {
                failed.push(Failed { record, code: "RecordDeAggregation.Failed".into(), message, attempts: 1 })
            }
        }
    }
    (ok, failed)
}

/// Runs a MetadataExtraction query over each record. Records it cannot parse or extract
/// from fail with DynamicPartitioning.MetadataExtractionFailed (AWS's error code) and go
/// to the error prefix as `processing-failed` (a Sluice decision: AWS documents only that
/// they land under the error prefix, organised by error type).
fn extract_metadata(query: &str, records: Vec<Buffered>, keys: &mut KeysBySeq) -> (Vec<Buffered>, Vec<Failed>) {
    let extractor = match partition::Extractor::new(query) {
        Ok(e) => e,
        Err(message) => {
            let failed = records
                .into_iter()
                .map(|record| Failed {
                    record,
                    code: METADATA_EXTRACTION_FAILED.into(),
                    message: message.clone(),
                    attempts: 1,
                })
                .collect();
            return (vec![], failed);
        }
    };
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for record in records {
        match extractor.extract(&record.data) {
            Ok(query_keys) => {
                keys.entry(record.seq).or_default().query = query_keys;
                ok.push(record);
            }
            Err(message) => {
                failed.push(Failed { record, code: METADATA_EXTRACTION_FAILED.into(), message, attempts: 1 })
            }
        }
    }
    (ok, failed)
}

/// The errorCode of records dynamic partitioning could not assign to a partition.
pub(crate) const METADATA_EXTRACTION_FAILED: &str = "DynamicPartitioning.MetadataExtractionFailed";

impl FirehoseService {
    /// Writes records that failed transformation under the error prefix, grouped by reason.
    pub(crate) async fn write_processing_failures(
        &self,
        stream: &DeliveryStream,
        s3: &Value,
        failed: &[Failed],
    ) -> std::io::Result<()> {
        let mut groups: Vec<(&str, &str, u64, Vec<Buffered>)> = Vec::new();
        for f in failed {
            match groups.iter_mut().find(|g| g.0 == f.code && g.1 == f.message) {
                Some(g) => g.3.push(f.record.clone()),
                None => groups.push((&f.code, &f.message, f.attempts, vec![f.record.clone()])),
            }
        }
        for (code, message, attempts, records) in groups {
            let info = super::http_endpoint::FailureInfo { error_type: "processing-failed", code, message, attempts };
            self.write_s3_records(stream, s3, &records, Some(info)).await?;
            self.metrics.update(stream.id, |c| c.failed_records += records.len() as u64);
        }
        Ok(())
    }
}
