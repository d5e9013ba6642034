//! SubscribeToShard: an event stream of a shard's records for a registered consumer,
//! pushed as they are committed (woken by the shard's signal, never by polling), with an
//! event at least every 5 seconds, for up to 5 minutes.

use super::*;
use sluice_wire::eventstream;
use tokio::sync::mpsc;

/// Events buffered for a slow reader before the stream waits for it.
const EVENT_BUFFER: usize = 4;
/// Records per event (the GetRecords limits apply).
const EVENT_RECORDS: usize = 10_000;

impl KinesisService {
    /// Validates a SubscribeToShard request and starts the stream; the receiver yields
    /// event-stream frames. `cbor` encodes event payloads as CBOR, for CBOR clients.
    pub async fn subscribe_to_shard(
        &self,
        ctx: &RequestContext,
        input: Value,
        cbor: bool,
    ) -> Result<mpsc::Receiver<Vec<u8>>, AwsError> {
        let op = self.model.operations.get("SubscribeToShard").ok_or_else(unknown_operation)?;
        if let Some(shape) = &op.input {
            if let Some(missing) = sluice_wire::query::first_missing_required(&self.model, shape, &input) {
                return Err(validation(format!(
                    "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                    missing[..1].to_lowercase() + &missing[1..]
                )));
            }
        }
        let req: Request = serde_json::from_value(input).map_err(|e| serialization(e.to_string()))?;
        if let Some(caller) = &ctx.caller {
            self.authorize(ctx, caller, "SubscribeToShard", &req)?;
        }
        let consumer_arn = req.consumer_arn.clone().unwrap_or_default();
        let (meta, consumer) = self.consumer(ctx, &req)?;
        let shard_id = req.shard_id.clone().unwrap_or_default();
        let shard = meta.shard(&shard_id).cloned().ok_or_else(|| {
            err(
                "ResourceNotFoundException",
                format!("Shard {shard_id} in stream {} under account {} does not exist", meta.name, meta.account),
            )
        })?;
        let start = req.starting_position.as_ref().ok_or_else(|| validation("StartingPosition must be provided."))?;
        let mut position =
            self.position(&shard, &shard_id, &start.r#type, start.sequence_number.as_deref(), start.timestamp)?;
        let now = self.clock.now_ms();
        {
            let mut subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
            let key = (consumer.arn.clone(), shard_id.clone());
            if let Some((active, started)) = subs.get(&key) {
                if *active || now < started + RESUBSCRIBE_GAP_MS {
                    return Err(resource_in_use(format!(
                        "Another active subscription exists for consumer {consumer_arn} and shard {shard_id}, or one was started less than 5 seconds ago."
                    )));
                }
            }
            subs.insert(key, (true, now));
        }
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let store = self.store.clone();
        let clock = self.clock.clone();
        let model_json = MODEL_JSON;
        let subscriptions = self.subscriptions.clone();
        let mut shutdown = self.shutdown.clone();
        let key = (consumer.arn.clone(), shard_id.clone());
        let stream_id = meta.id;
        tokio::spawn(async move {
            let model = Model::from_json(model_json).ok();
            let content_type = if cbor { "application/x-amz-cbor-1.1" } else { "application/x-amz-json-1.1" };
            let frame = |event_type: &str, payload: &Value| -> Vec<u8> {
                let bytes = match (&model, cbor) {
                    (Some(m), true) if event_type == "SubscribeToShardEvent" => {
                        sluice_wire::cbor::encode(m, "SubscribeToShardEvent", payload)
                    }
                    (_, true) => sluice_wire::cbor::encode_plain(payload),
                    _ => payload.to_string().into_bytes(),
                };
                eventstream::encode(
                    &[(":message-type", "event"), (":event-type", event_type), (":content-type", content_type)],
                    &bytes,
                )
            };
            let started = tokio::time::Instant::now();
            let deadline = started + std::time::Duration::from_millis(SUBSCRIPTION_LIFETIME_MS);
            let signal = store.shard_signal(shard.uid);
            if tx.send(frame("initial-response", &json!({}))).await.is_err() {
                subscriptions.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (false, clock.now_ms()));
                return;
            }
            let mut continuation = shard.sequence_number(position.saturating_sub(1), shard.created_ms);
            let mut last_event: Option<tokio::time::Instant> = None;
            loop {
                let notified = signal.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let Some(meta) = store.stream_by_id(stream_id) else { break };
                let Ok(read) = store.read_records(&meta, shard.uid, position, EVENT_RECORDS, MAX_GET_BYTES) else {
                    break;
                };
                let due = last_event.is_none_or(|t| t.elapsed().as_millis() as u64 >= HEARTBEAT_MS);
                if !read.records.is_empty() || due || read.shard_ended {
                    let now = clock.now_ms();
                    if let Some(last) = read.records.last() {
                        continuation = last.sequence_number.clone();
                    }
                    let caught_up = read.next_seq_ix >= store.shard_next_seq_ix(shard.uid);
                    let behind = match (caught_up, read.records.last()) {
                        (true, _) => 0,
                        (false, Some(last)) => now.saturating_sub(last.arrival_ms),
                        (false, None) => read.latest_arrival_ms.map(|l| now.saturating_sub(l)).unwrap_or(0),
                    };
                    let records: Vec<Value> = read.records.iter().map(record_json).collect();
                    let mut event = json!({"Records": records, "ContinuationSequenceNumber": continuation, "MillisBehindLatest": behind});
                    if read.shard_ended {
                        event["ChildShards"] = child_shards(&meta, shard.index).into();
                    }
                    position = read.next_seq_ix;
                    last_event = Some(tokio::time::Instant::now());
                    if tx.send(frame("SubscribeToShardEvent", &event)).await.is_err() || read.shard_ended {
                        break;
                    }
                    if !read.records.is_empty() {
                        // More may be waiting beyond this event's limits.
                        continue;
                    }
                }
                let heartbeat = last_event.unwrap_or(started) + std::time::Duration::from_millis(HEARTBEAT_MS);
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(heartbeat.min(deadline)) => {}
                    _ = tx.closed() => break,
                    _ = shutdown.changed() => break,
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            subscriptions.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (false, clock.now_ms()));
        });
        Ok(rx)
    }
}

/// The children of a closed shard, as GetRecords and SubscribeToShard report them.
pub(super) fn child_shards(meta: &StreamMeta, index: u32) -> Vec<Value> {
    meta.shards
        .iter()
        .filter(|c| c.parent == Some(index) || c.adjacent_parent == Some(index))
        .map(|c| {
            let parents: Vec<String> =
                [c.parent, c.adjacent_parent].into_iter().flatten().map(|p| format!("shardId-{p:012}")).collect();
            json!({"ShardId": c.shard_id(), "ParentShards": parents, "HashKeyRange": {"StartingHashKey": c.start_hash, "EndingHashKey": c.end_hash}})
        })
        .collect()
}
