//! The HTTP endpoint destination: the Firehose HTTP endpoint delivery request format
//! (AWS "HTTP Endpoint Delivery Request and Response Specifications"), response
//! validation, retries for RetryOptions.DurationInSeconds, then the failed records to the
//! S3 error prefix; `AllData` backup also writes every delivered record to S3.

use super::*;
use flate2::write::GzEncoder;
use sluice_engine::firehose::Buffered;
use std::io::Write;

/// Defaults of HttpEndpointDestinationConfiguration.
const DEFAULT_RETRY_S: u64 = 300;
/// Wait between attempts while retrying (AWS backs off; Sluice retries every 2 seconds).
pub(crate) const RETRY_INTERVAL_MS: u64 = 2_000;

/// Why records are written under an error prefix.
pub(crate) struct FailureInfo<'a> {
    /// `http-endpoint-failed` or `processing-failed` (`!{firehose:error-output-type}`).
    pub error_type: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub attempts: u64,
}

/// Retry bookkeeping of the batch a stream is trying to deliver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempts {
    first_seq: i64,
    first_ms: u64,
    count: u32,
    next_ms: u64,
}

impl FirehoseService {
    /// Fills the HTTP endpoint destination's defaults and validates it.
    pub(crate) fn http_destination(config: &Value) -> Result<Value, AwsError> {
        let mut c = config.as_object().cloned().unwrap_or_default();
        let s3 = c.get("S3Configuration").cloned().ok_or_else(|| invalid_argument("S3Configuration is required."))?;
        c.insert("S3Configuration".into(), Self::s3_destination(&s3)?);
        let hints = c.entry("BufferingHints").or_insert_with(|| json!({}));
        let size = hints.get("SizeInMBs").and_then(Value::as_u64).unwrap_or(DEFAULT_SIZE_MB);
        let interval = hints.get("IntervalInSeconds").and_then(Value::as_u64).unwrap_or(DEFAULT_INTERVAL_S);
        *hints = json!({"SizeInMBs": size, "IntervalInSeconds": interval});
        c.entry("RequestConfiguration").or_insert_with(|| json!({"ContentEncoding": "NONE"}));
        c.entry("RetryOptions").or_insert_with(|| json!({"DurationInSeconds": DEFAULT_RETRY_S}));
        c.entry("S3BackupMode").or_insert_with(|| json!("FailedDataOnly"));
        c.entry("CloudWatchLoggingOptions").or_insert_with(|| json!({"Enabled": false}));
        Ok(Value::Object(c))
    }

    /// The HttpEndpointDestinationDescription (the access key is never returned).
    pub(crate) fn http_description(dest: &Value) -> Value {
        let mut d = dest.clone();
        if let Some(e) = d.get_mut("EndpointConfiguration").and_then(Value::as_object_mut) {
            e.remove("AccessKey");
        }
        if let Some(o) = d.as_object_mut() {
            if let Some(s3) = o.remove("S3Configuration") {
                o.insert("S3DestinationDescription".into(), s3);
            }
        }
        d
    }

    /// Tries to deliver `batch`; `Ok(true)` when done with it (delivered, or given up and
    /// written to the S3 error prefix), `Ok(false)` when it will be retried.
    pub(crate) async fn deliver_http(
        &self,
        stream: &DeliveryStream,
        dest: &Value,
        batch: &[Buffered],
    ) -> std::io::Result<bool> {
        let now = self.clock.now_ms();
        let first_seq = batch.first().map(|b| b.seq).unwrap_or(0);
        let mut attempts = {
            let mut retries = self.http_retries.lock().unwrap_or_else(|p| p.into_inner());
            let entry =
                retries.entry(stream.id).or_insert(Attempts { first_seq, first_ms: now, count: 0, next_ms: now });
            if entry.first_seq != first_seq {
                *entry = Attempts { first_seq, first_ms: now, count: 0, next_ms: now };
            }
            *entry
        };
        if now < attempts.next_ms {
            return Ok(false);
        }
        let result = self.post_batch(stream, dest, batch, now).await;
        attempts.count += 1;
        let retry_ms = dest["RetryOptions"]["DurationInSeconds"].as_u64().unwrap_or(DEFAULT_RETRY_S) * 1000;
        match result {
            Ok(()) => {
                self.http_retries.lock().unwrap_or_else(|p| p.into_inner()).remove(&stream.id);
                let bytes: usize = batch.iter().map(|r| r.data.len()).sum();
                self.metrics.update(stream.id, |c| {
                    c.delivered_records += batch.len() as u64;
                    c.delivered_bytes += bytes as u64;
                });
                if dest["S3BackupMode"] == "AllData" {
                    self.write_s3_records(stream, &dest["S3Configuration"], batch, None).await?;
                }
                Ok(true)
            }
            Err(error) if now >= attempts.first_ms + retry_ms => {
                tracing::warn!(stream = %stream.name, %error, "HTTP endpoint delivery failed; records go to the S3 error prefix");
                let failure = FailureInfo {
                    error_type: "http-endpoint-failed",
                    code: "HttpEndpoint.ResponseError",
                    message: &error,
                    attempts: u64::from(attempts.count),
                };
                self.write_s3_records(stream, &dest["S3Configuration"], batch, Some(failure)).await?;
                self.metrics.update(stream.id, |c| c.failed_records += batch.len() as u64);
                self.http_retries.lock().unwrap_or_else(|p| p.into_inner()).remove(&stream.id);
                Ok(true)
            }
            Err(error) => {
                tracing::debug!(stream = %stream.name, %error, "HTTP endpoint delivery failed; retrying");
                self.metrics.update(stream.id, |c| c.delivery_failures += 1);
                self.record_failure(stream, Some(format!("HTTP endpoint delivery failed: {error}"))).await;
                attempts.next_ms = now + RETRY_INTERVAL_MS;
                self.http_retries.lock().unwrap_or_else(|p| p.into_inner()).insert(stream.id, attempts);
                Ok(false)
            }
        }
    }

    async fn post_batch(
        &self,
        stream: &DeliveryStream,
        dest: &Value,
        batch: &[Buffered],
        now: u64,
    ) -> Result<(), String> {
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let endpoint = &dest["EndpointConfiguration"];
        let url = endpoint["Url"].as_str().ok_or("no endpoint URL")?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let records: Vec<Value> =
            batch.iter().map(|b| json!({"data": sluice_wire::record_base64::encode(&b.data)})).collect();
        let body = json!({"requestId": request_id, "timestamp": now, "records": records}).to_string();
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Amz-Firehose-Protocol-Version".to_string(), "1.0".to_string()),
            ("X-Amz-Firehose-Request-Id".to_string(), request_id.clone()),
            ("X-Amz-Firehose-Source-Arn".to_string(), stream.config["arn"].as_str().unwrap_or_default().to_string()),
            ("User-Agent".to_string(), "Amazon Kinesis Data Firehose Agent/1.0".to_string()),
        ];
        if let Some(key) = endpoint["AccessKey"].as_str() {
            headers.push(("X-Amz-Firehose-Access-Key".to_string(), key.to_string()));
        }
        let attributes: Map<String, Value> = dest["RequestConfiguration"]["CommonAttributes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some((str_of(x, "AttributeName")?.to_owned(), json!(str_of(x, "AttributeValue").unwrap_or(""))))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !attributes.is_empty() {
            headers.push((
                "X-Amz-Firehose-Common-Attributes".to_string(),
                json!({"commonAttributes": attributes}).to_string(),
            ));
        }
        let payload = if dest["RequestConfiguration"]["ContentEncoding"] == "GZIP" {
            headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
            e.finish().map_err(|e| e.to_string())?
        } else {
            body.into_bytes()
        };
        let (status, response) = http.post(url, &headers, &payload).await?;
        if status != 200 {
            return Err(format!("The endpoint returned HTTP {status}."));
        }
        // "The response must include the requestId of the request."
        let answer: Value =
            serde_json::from_slice(&response).map_err(|_| "The response is not valid JSON.".to_string())?;
        if answer["requestId"] != request_id.as_str() {
            return Err("The response's requestId does not match the request.".into());
        }
        Ok(())
    }

    /// Writes records to the S3 part of an HTTP endpoint destination: as an object under
    /// the Prefix (backup), or, with an error, as failure records under the error prefix.
    pub(crate) async fn write_s3_records(
        &self,
        stream: &DeliveryStream,
        s3: &Value,
        batch: &[Buffered],
        error: Option<FailureInfo<'_>>,
    ) -> std::io::Result<()> {
        let bucket = bucket_name(s3["BucketARN"].as_str().unwrap_or_default())
            .ok_or_else(|| std::io::Error::other("invalid BucketARN"))?;
        let now = self.clock.now_ms();
        let oldest = batch.first().map(|b| b.arrival_ms).unwrap_or(now);
        let oldest = keys::zoned_ms(oldest, s3["CustomTimeZone"].as_str()).map_err(std::io::Error::other)?;
        let version = stream.config["version"].as_u64().unwrap_or(1);
        let (prefix, body) = match error {
            None => {
                let data: Vec<u8> = batch.iter().flat_map(|b| b.data.iter().copied()).collect();
                (keys::evaluate(s3["Prefix"].as_str(), oldest, None, None).map_err(std::io::Error::other)?, data)
            }
            Some(failure) => {
                let prefix = match s3["ErrorOutputPrefix"].as_str().filter(|p| !p.is_empty()) {
                    Some(p) => keys::evaluate(Some(p), oldest, Some(failure.error_type), None),
                    None => keys::evaluate(Some(&format!("{}/", failure.error_type)), oldest, None, None),
                }
                .map_err(std::io::Error::other)?;
                let lines: String = batch
                    .iter()
                    .map(|b| {
                        json!({
                            "attemptsMade": failure.attempts,
                            "arrivalTimestamp": b.arrival_ms,
                            "errorCode": failure.code,
                            "errorMessage": failure.message,
                            "attemptEndingTimestamp": now,
                            "rawData": sluice_wire::record_base64::encode(&b.data),
                        })
                        .to_string()
                            + "\n"
                    })
                    .collect();
                (prefix, lines.into_bytes())
            }
        };
        let when = keys::format_timestamp("yyyy-MM-dd-HH-mm-ss", oldest).map_err(std::io::Error::other)?;
        let key = format!("{prefix}{}-{version}-{when}-{}", stream.name, uuid::Uuid::new_v4());
        self.put_object(bucket, &key, body).await
    }
}
