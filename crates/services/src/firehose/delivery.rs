//! Buffer flushing: an object is written when a stream's buffer reaches SizeInMBs or its
//! oldest record is IntervalInSeconds old, and everything is flushed on shutdown. An
//! object is written (fsynced, then renamed into place) before its records leave the
//! durable buffer, so a crash can repeat an object but never lose a record.

use super::partition::PartitionKeys;
use super::transform::{Failed, KeysBySeq};
use super::{bucket_name, compress, keys, FirehoseService, ObjectTarget, S3Settings};
use serde_json::{json, Value};
use sluice_engine::firehose::{Buffered, DeliveryStream};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const MIB: u64 = 1024 * 1024;
/// After a failed write, try again this much later.
const RETRY_MS: u64 = 5_000;
/// How often Kinesis sources are read while any exist.
const SOURCE_POLL: Duration = Duration::from_secs(1);

impl FirehoseService {
    /// Writes objects for every buffer that is due (all of them when `force`); returns
    /// the time the next buffer becomes due.
    pub async fn flush(&self, force: bool) -> Option<u64> {
        let now = self.clock.now_ms();
        let mut next: Option<u64> = None;
        for stream in self.store.delivery_streams() {
            let dest = stream.config["destination"]["config"].clone();
            let size_limit = dest["BufferingHints"]["SizeInMBs"].as_u64().unwrap_or(super::DEFAULT_SIZE_MB) * MIB;
            let interval_ms =
                dest["BufferingHints"]["IntervalInSeconds"].as_u64().unwrap_or(super::DEFAULT_INTERVAL_S) * 1000;
            loop {
                let stats = self.store.buffer_stats(stream.id);
                let Some(oldest) = stats.oldest_arrival_ms.filter(|_| stats.records > 0) else { break };
                let due_at = oldest + interval_ms;
                if !(force || stats.bytes >= size_limit || now >= due_at) {
                    next = Some(next.map_or(due_at, |n| n.min(due_at)));
                    break;
                }
                let batch = match self.store.read_buffer(stream.id, size_limit) {
                    Ok(b) if !b.is_empty() => b,
                    _ => break,
                };
                let max_seq = batch.last().map(|b| b.seq).unwrap_or(0);
                let is_http = stream.config["destination"]["kind"] == "HttpEndpoint";
                if !is_http && dest["S3BackupMode"] == "Enabled" {
                    // Backup holds the source records, as received, before any processing.
                    if let Err(e) = self.write_object(&stream, &dest["S3BackupConfiguration"], &batch, None).await {
                        tracing::warn!(stream = %stream.name, error = %e, "S3 backup failed; will retry");
                        self.record_failure(&stream, Some(e.to_string())).await;
                        let retry = now + RETRY_MS;
                        next = Some(next.map_or(retry, |n| n.min(retry)));
                        break;
                    }
                }
                let (records, mut failed, keys) = self.transform(&stream, &dest, batch.clone()).await;
                let groups = if !is_http && super::dynamic_partitioning(&dest) {
                    partition_groups(&dest, records, &keys, &mut failed)
                } else {
                    vec![(None, records)]
                };
                if !failed.is_empty() {
                    let s3 = if stream.config["destination"]["kind"] == "HttpEndpoint" {
                        &dest["S3Configuration"]
                    } else {
                        &dest
                    };
                    if let Err(e) = self.write_processing_failures(&stream, s3, &failed).await {
                        tracing::warn!(stream = %stream.name, error = %e, "writing failed records failed; will retry");
                        let retry = now + RETRY_MS;
                        next = Some(next.map_or(retry, |n| n.min(retry)));
                        break;
                    }
                }
                let records: Vec<Buffered> = groups.iter().flat_map(|(_, g)| g.iter().cloned()).collect();
                let outcome = if records.is_empty() {
                    Ok("nothing left after transformation".to_owned())
                } else if is_http {
                    match self.deliver_http(&stream, &dest, &records).await {
                        Ok(true) => Ok("HTTP endpoint".to_owned()),
                        Ok(false) => {
                            let retry = now + super::http_endpoint::RETRY_INTERVAL_MS;
                            next = Some(next.map_or(retry, |n| n.min(retry)));
                            break;
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    let mut written = Ok(String::new());
                    for (partition, group) in &groups {
                        match self.write_object(&stream, &dest, group, partition.as_ref()).await {
                            Ok(key) => written = Ok(key),
                            Err(e) => {
                                written = Err(e);
                                break;
                            }
                        }
                    }
                    written
                };
                match outcome {
                    Ok(key) => {
                        if !is_http {
                            // (HTTP deliveries count themselves: giving up is not delivering.)
                            let bytes: usize = records.iter().map(|r| r.data.len()).sum();
                            let objects = groups.iter().filter(|(_, g)| !g.is_empty()).count();
                            self.metrics.update(stream.id, |c| {
                                c.delivered_records += records.len() as u64;
                                c.delivered_bytes += bytes as u64;
                                c.objects_written += objects as u64;
                            });
                        }
                        tracing::debug!(stream = %stream.name, %key, records = batch.len(), "delivered");
                        match self.store.remove_buffered(stream.id, max_seq, &batch) {
                            Ok(d) => {
                                let _ = d.wait().await;
                            }
                            Err(e) => tracing::warn!(error = %e, "could not release delivered records"),
                        }
                        self.record_failure(&stream, None).await;
                    }
                    Err(e) => {
                        tracing::warn!(stream = %stream.name, error = %e, "S3 delivery failed; will retry");
                        self.metrics.update(stream.id, |c| c.delivery_failures += 1);
                        self.record_failure(&stream, Some(format!("Writing to S3 failed: {e}"))).await;
                        let retry = now + RETRY_MS;
                        next = Some(next.map_or(retry, |n| n.min(retry)));
                        break;
                    }
                }
            }
        }
        next
    }

    /// Keeps the last delivery error in the stream's description (FailureDescription),
    /// until a delivery succeeds. AWS fills FailureDescription for KMS and VPC failures
    /// only; Sluice also shows delivery errors there, typed UNKNOWN_ERROR (the one
    /// DeliveryStreamFailureType that fits) so that SDKs with closed enums parse it.
    pub(crate) async fn record_failure(&self, stream: &DeliveryStream, error: Option<String>) {
        let failure = error.map(|e| json!({"Type": "UNKNOWN_ERROR", "Details": e})).unwrap_or(Value::Null);
        if stream.config.get("failure").cloned().unwrap_or(Value::Null) == failure {
            return;
        }
        if let Ok(d) = self.store.update_delivery_stream(stream.id, &mut |c| {
            c["failure"] = failure.clone();
            Ok(())
        }) {
            let _ = d.wait().await;
        }
    }

    async fn write_object(
        &self,
        stream: &DeliveryStream,
        dest: &Value,
        batch: &[Buffered],
        partition: Option<&PartitionKeys>,
    ) -> std::io::Result<String> {
        let bucket = bucket_name(dest["BucketARN"].as_str().unwrap_or_default())
            .ok_or_else(|| std::io::Error::other("invalid BucketARN"))?;
        let format = dest["CompressionFormat"].as_str().unwrap_or("UNCOMPRESSED");
        let extension = dest["FileExtension"].as_str().unwrap_or_else(|| compress::default_extension(format));
        let version = stream.config["version"].as_u64().unwrap_or(1);
        let oldest = batch.first().map(|b| b.arrival_ms).unwrap_or_else(|| self.clock.now_ms());
        let oldest = keys::zoned_ms(oldest, dest["CustomTimeZone"].as_str()).map_err(std::io::Error::other)?;
        let key = keys::object_key(dest["Prefix"].as_str(), &stream.name, version, oldest, extension, partition)
            .map_err(std::io::Error::other)?;
        let data: Vec<u8> = batch.iter().flat_map(|b| b.data.iter().copied()).collect();
        let entry_name = key.rsplit('/').next().unwrap_or(&key).trim_end_matches(extension);
        let body = compress::compress(format, &data, entry_name)?;
        self.put_object(bucket, &key, body).await?;
        Ok(key)
    }

    /// Stores one object durably at its destination.
    pub(crate) async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> std::io::Result<()> {
        match &self.target {
            ObjectTarget::Local(root) => {
                let path = root.join(bucket).join(key);
                let dir = path.parent().ok_or_else(|| std::io::Error::other("object key has no parent"))?.to_owned();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    std::fs::create_dir_all(&dir)?;
                    let tmp = dir.join(format!(".{}.partial", uuid::Uuid::new_v4()));
                    let mut file = std::fs::File::create(&tmp)?;
                    file.write_all(&body)?;
                    file.sync_all()?;
                    std::fs::rename(&tmp, &path)?;
                    std::fs::File::open(&dir)?.sync_all()
                })
                .await
                .map_err(std::io::Error::other)?
            }
            ObjectTarget::S3(settings) => {
                let client = self.s3_client(settings, bucket)?;
                client
                    .put_opts(
                        &object_store::path::Path::from(key),
                        object_store::PutPayload::from(body),
                        object_store::PutOptions::default(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            }
        }
    }

    fn s3_client(&self, settings: &S3Settings, bucket: &str) -> std::io::Result<Arc<dyn object_store::ObjectStore>> {
        let mut clients = self.s3_clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(bucket) {
            return Ok(c.clone());
        }
        // reqwest is built without a bundled crypto provider (see Cargo.toml); ring is the
        // process's provider. Err only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Failed puts are retried by the worker; keep each attempt short.
        let retry =
            object_store::RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..Default::default() };
        let mut options = object_store::ClientOptions::new().with_allow_http(true);
        for pem in &settings.extra_ca_pems {
            for certificate in object_store::Certificate::from_pem_bundle(pem).map_err(std::io::Error::other)? {
                options = options.with_root_certificate(certificate);
            }
        }
        let client: Arc<dyn object_store::ObjectStore> = Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_client_options(options)
                .with_endpoint(&settings.endpoint)
                .with_bucket_name(bucket)
                .with_access_key_id(&settings.access_key_id)
                .with_secret_access_key(&settings.secret_access_key)
                .with_region(&settings.region)
                .with_virtual_hosted_style_request(false)
                .with_retry(retry)
                .build()
                .map_err(std::io::Error::other)?,
        );
        clients.insert(bucket.to_owned(), client.clone());
        Ok(client)
    }
}

/// Splits delivered records into partitions by the values of the partition keys the
/// prefix uses, keeping arrival order within each; a record without a key the prefix
/// needs fails to the error prefix.
fn partition_groups(
    dest: &Value,
    records: Vec<Buffered>,
    keys: &KeysBySeq,
    failed: &mut Vec<Failed>,
) -> Vec<(Option<PartitionKeys>, Vec<Buffered>)> {
    let prefix = dest["Prefix"].as_str();
    let mut groups: Vec<(Option<PartitionKeys>, Vec<Buffered>)> = Vec::new();
    let mut index: std::collections::HashMap<Vec<String>, usize> = std::collections::HashMap::new();
    let none = PartitionKeys::default();
    for record in records {
        let record_keys = keys.get(&record.seq).unwrap_or(&none);
        match keys::partition_values(prefix, record_keys) {
            Ok(values) => match index.get(&values) {
                Some(&i) => groups[i].1.push(record),
                None => {
                    index.insert(values, groups.len());
                    groups.push((Some(record_keys.clone()), vec![record]));
                }
            },
            Err(message) => failed.push(Failed {
                record,
                code: super::transform::METADATA_EXTRACTION_FAILED.into(),
                message,
                attempts: 1,
            }),
        }
    }
    groups
}

/// Reads Kinesis sources, flushes due buffers, and flushes everything at shutdown.
pub async fn run(service: Arc<FirehoseService>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let has_sources = service.poll_sources().await;
        let next = service.flush(false).await;
        let now = service.clock.now_ms();
        let mut wait = next.map(|t| Duration::from_millis(t.saturating_sub(now))).unwrap_or(Duration::from_secs(3600));
        if has_sources {
            wait = wait.min(SOURCE_POLL);
        }
        tokio::select! {
            _ = service.buffered.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {
                service.flush(true).await;
                return;
            }
        }
    }
}
