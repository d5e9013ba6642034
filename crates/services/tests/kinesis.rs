//! Kinesis semantics on a manual clock over the on-disk embedded store: routing,
//! iterators and their expiry, retention, AT_TIMESTAMP, resharding lineage, restart.

use base64::Engine as _;
use serde_json::{json, Value};
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use sluice_services::kinesis::{hash_key, KinesisService};
use sluice_services::RequestContext;
use std::sync::Arc;

const START_MS: u64 = 1_700_000_000_000;

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    svc: KinesisService,
    ctx: RequestContext,
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> KinesisService {
    let store =
        Arc::new(EmbeddedStore::open(EmbeddedOptions::for_tests(dir), clock.clone() as Arc<dyn Clock>).unwrap());
    KinesisService::new(store, clock, tokio::sync::watch::channel(false).1)
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let svc = open(dir.path(), clock.clone());
        let ctx = RequestContext::local("000000000000", "us-east-1");
        Harness { dir, clock, svc, ctx }
    }

    fn restart(&mut self) {
        self.svc = open(self.dir.path(), self.clock.clone());
    }

    async fn call(&self, action: &str, input: Value) -> Result<Value, String> {
        self.svc.handle(&self.ctx, action, input).await.map_err(|e| format!("{}: {}", e.json_type, e.message))
    }

    async fn ok(&self, action: &str, input: Value) -> Value {
        self.call(action, input).await.unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    async fn put(&self, stream: &str, key: &str, data: &str) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        self.ok("PutRecord", json!({"StreamName": stream, "PartitionKey": key, "Data": b64})).await
    }

    async fn iterator(&self, stream: &str, shard: &str, kind: &str, extra: Value) -> String {
        let mut input = json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": kind});
        if let Value::Object(e) = extra {
            input.as_object_mut().unwrap().extend(e);
        }
        self.ok("GetShardIterator", input).await["ShardIterator"].as_str().unwrap().to_owned()
    }

    /// Reads a shard to its current end; returns the data and the last response.
    async fn read_all(&self, mut iterator: String) -> (Vec<String>, Value) {
        let mut data = Vec::new();
        loop {
            let r = self.ok("GetRecords", json!({"ShardIterator": iterator})).await;
            for rec in r["Records"].as_array().unwrap() {
                let bytes = base64::engine::general_purpose::STANDARD.decode(rec["Data"].as_str().unwrap()).unwrap();
                data.push(String::from_utf8(bytes).unwrap());
            }
            match r["NextShardIterator"].as_str() {
                Some(next) if !r["Records"].as_array().unwrap().is_empty() => iterator = next.to_owned(),
                _ => return (data, r),
            }
        }
    }
}

fn shards(describe: &Value) -> Vec<Value> {
    describe["StreamDescription"]["Shards"].as_array().unwrap().clone()
}

#[tokio::test]
async fn records_route_by_md5_to_the_shard_owning_the_hash() {
    let h = Harness::new();
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 3})).await;
    let d = h.ok("DescribeStream", json!({"StreamName": "s"})).await;
    let ranges: Vec<(String, u128, u128)> = shards(&d)
        .iter()
        .map(|s| {
            let r = &s["HashKeyRange"];
            (
                s["ShardId"].as_str().unwrap().to_owned(),
                r["StartingHashKey"].as_str().unwrap().parse().unwrap(),
                r["EndingHashKey"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranges[0].1, 0);
    assert_eq!(ranges[2].2, u128::MAX);
    assert_eq!(ranges[0].2, 113_427_455_640_312_821_154_458_202_477_256_070_484, "AWS's split of 2^128 into 3");
    for i in 0..50 {
        let key = format!("key-{i}");
        let put = h.put("s", &key, "x").await;
        let hash = hash_key(&key);
        let owner = ranges.iter().find(|(_, lo, hi)| *lo <= hash && hash <= *hi).unwrap();
        assert_eq!(put["ShardId"], owner.0.as_str(), "{key}");
    }
    let explicit = h
        .ok("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": "eA==", "ExplicitHashKey": "0"}))
        .await;
    assert_eq!(explicit["ShardId"], "shardId-000000000000");
    let bad = h
        .call("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": "eA==", "ExplicitHashKey": "x"}))
        .await;
    assert!(bad.unwrap_err().starts_with("ValidationException"));
}

#[tokio::test]
async fn iterators_read_in_order_expire_and_resist_tampering() {
    let h = Harness::new();
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(h.put("s", "k", &format!("r{i}")).await["SequenceNumber"].as_str().unwrap().to_owned());
        h.clock.advance_ms(10);
    }
    let as_numbers: Vec<u128> = seqs.iter().map(|s| s.parse::<u128>().unwrap_or(0)).collect();
    assert!(seqs.windows(2).all(|w| w[0].len() == w[1].len() && w[0] < w[1]), "strictly increasing: {as_numbers:?}");
    let it = h.iterator("s", "shardId-000000000000", "TRIM_HORIZON", json!({})).await;
    let (data, _) = h.read_all(it).await;
    assert_eq!(data, vec!["r0", "r1", "r2", "r3", "r4"]);
    let it = h
        .iterator("s", "shardId-000000000000", "AFTER_SEQUENCE_NUMBER", json!({"StartingSequenceNumber": seqs[2]}))
        .await;
    assert_eq!(h.read_all(it).await.0, vec!["r3", "r4"]);
    let it =
        h.iterator("s", "shardId-000000000000", "AT_SEQUENCE_NUMBER", json!({"StartingSequenceNumber": seqs[2]})).await;
    assert_eq!(h.read_all(it).await.0, vec!["r2", "r3", "r4"]);
    let latest = h.iterator("s", "shardId-000000000000", "LATEST", json!({})).await;
    h.put("s", "k", "after-latest").await;
    assert_eq!(h.read_all(latest).await.0, vec!["after-latest"]);

    let it = h.iterator("s", "shardId-000000000000", "TRIM_HORIZON", json!({})).await;
    h.clock.advance_ms(300_001);
    let expired = h.call("GetRecords", json!({"ShardIterator": it})).await.unwrap_err();
    assert!(expired.starts_with("ExpiredIteratorException: Iterator expired."), "{expired}");
    let mut forged = it.clone();
    forged.replace_range(10..11, if &it[10..11] == "A" { "B" } else { "A" });
    assert!(h
        .call("GetRecords", json!({"ShardIterator": forged}))
        .await
        .unwrap_err()
        .starts_with("InvalidArgumentException"));
}

#[tokio::test]
async fn at_timestamp_and_retention_follow_arrival_times() {
    let h = Harness::new();
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).await;
    h.put("s", "k", "old").await;
    h.clock.advance_secs(3600);
    let middle = h.clock.now_ms();
    h.put("s", "k", "new").await;
    let ts = middle as f64 / 1000.0;
    let it = h.iterator("s", "shardId-000000000000", "AT_TIMESTAMP", json!({"Timestamp": ts})).await;
    assert_eq!(h.read_all(it).await.0, vec!["new"]);
    let future = (h.clock.now_ms() + 60_000) as f64 / 1000.0;
    assert!(h.call("GetShardIterator", json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": future})).await.is_err());

    // 24 hours after "old" arrived (and 23 after "new"), only "new" remains.
    h.clock.advance_secs(23 * 3600 + 1);
    let store_trim = h.ok("DescribeStreamSummary", json!({"StreamName": "s"})).await;
    assert_eq!(store_trim["StreamDescriptionSummary"]["RetentionPeriodHours"], 24);
    h.svc_trim().await;
    let it = h.iterator("s", "shardId-000000000000", "TRIM_HORIZON", json!({})).await;
    assert_eq!(h.read_all(it).await.0, vec!["new"], "TRIM_HORIZON moved with retention");
    assert!(h
        .call("IncreaseStreamRetentionPeriod", json!({"StreamName": "s", "RetentionPeriodHours": 8761}))
        .await
        .is_err());
    h.ok("IncreaseStreamRetentionPeriod", json!({"StreamName": "s", "RetentionPeriodHours": 48})).await;
    assert!(h
        .call("DecreaseStreamRetentionPeriod", json!({"StreamName": "s", "RetentionPeriodHours": 72}))
        .await
        .is_err());
}

impl Harness {
    async fn svc_trim(&self) {
        self.svc.trim_for_tests().await;
    }
}

#[tokio::test]
async fn split_and_merge_close_parents_and_readers_follow_children() {
    let h = Harness::new();
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).await;
    h.put("s", "k", "before-split").await;
    let parent_it = h.iterator("s", "shardId-000000000000", "TRIM_HORIZON", json!({})).await;
    let half = (u128::MAX / 2 + 1).to_string();
    h.ok("SplitShard", json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": half}))
        .await;
    let d = h.ok("DescribeStream", json!({"StreamName": "s"})).await;
    let all = shards(&d);
    assert_eq!(all.len(), 3);
    assert!(all[0]["SequenceNumberRange"]["EndingSequenceNumber"].is_string(), "the parent is closed");
    assert_eq!(all[1]["ParentShardId"], "shardId-000000000000");
    assert_eq!(all[2]["HashKeyRange"]["StartingHashKey"], half.as_str());
    // Writes after the split go to the children.
    let put = h
        .ok("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": "eA==", "ExplicitHashKey": "1"}))
        .await;
    assert_eq!(put["ShardId"], "shardId-000000000001");
    let (data, last) = h.read_all(parent_it).await;
    assert_eq!(data, vec!["before-split"]);
    assert!(last["NextShardIterator"].is_null(), "a drained closed shard has no next iterator");
    let children: Vec<&str> =
        last["ChildShards"].as_array().unwrap().iter().map(|c| c["ShardId"].as_str().unwrap()).collect();
    assert_eq!(children, vec!["shardId-000000000001", "shardId-000000000002"]);

    let bad = h.call("MergeShards", json!({"StreamName": "s", "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"})).await;
    assert!(bad.unwrap_err().starts_with("ResourceNotFoundException"), "closed shards cannot merge");
    h.ok("MergeShards", json!({"StreamName": "s", "ShardToMerge": "shardId-000000000001", "AdjacentShardToMerge": "shardId-000000000002"})).await;
    let d = h.ok("DescribeStream", json!({"StreamName": "s"})).await;
    let merged = shards(&d).last().cloned().unwrap();
    assert_eq!(merged["ParentShardId"], "shardId-000000000001");
    assert_eq!(merged["AdjacentParentShardId"], "shardId-000000000002");
    assert_eq!(merged["HashKeyRange"]["StartingHashKey"], "0");
    let summary = h.ok("DescribeStreamSummary", json!({"StreamName": "s"})).await;
    assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 1);
    let r = h
        .ok("UpdateShardCount", json!({"StreamName": "s", "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}))
        .await;
    assert_eq!((r["CurrentShardCount"].as_u64(), r["TargetShardCount"].as_u64()), (Some(1), Some(2)));
    assert!(h
        .call("UpdateShardCount", json!({"StreamName": "s", "TargetShardCount": 5, "ScalingType": "UNIFORM_SCALING"}))
        .await
        .is_err());
}

#[tokio::test]
async fn records_and_sequence_numbers_survive_restart() {
    let mut h = Harness::new();
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).await;
    let first = h.put("s", "k", "one").await["SequenceNumber"].as_str().unwrap().to_owned();
    h.restart();
    let second = h.put("s", "k", "two").await["SequenceNumber"].as_str().unwrap().to_owned();
    assert!(first.len() == second.len() && first < second);
    let it = h.iterator("s", "shardId-000000000000", "TRIM_HORIZON", json!({})).await;
    let r = h.ok("GetRecords", json!({"ShardIterator": it})).await;
    let seqs: Vec<&str> =
        r["Records"].as_array().unwrap().iter().map(|r| r["SequenceNumber"].as_str().unwrap()).collect();
    assert_eq!(seqs, vec![first.as_str(), second.as_str()], "same sequence numbers after restart");
}

#[tokio::test]
async fn optional_per_shard_limits_throttle_writes_and_reads() {
    let mut h = Harness::new();
    h.svc = open(h.dir.path(), h.clock.clone()).with_throughput_limits(true);
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).await;
    let records: Vec<Value> = (0..500).map(|i| json!({"PartitionKey": format!("k{i}"), "Data": "eA=="})).collect();
    for _ in 0..2 {
        let r = h.ok("PutRecords", json!({"StreamName": "s", "Records": records})).await;
        assert_eq!(r["FailedRecordCount"], 0);
    }
    let r = h.ok("PutRecords", json!({"StreamName": "s", "Records": records[..3]})).await;
    assert_eq!(r["FailedRecordCount"], 3, "the 1,001st record in a second is throttled");
    assert_eq!(r["Records"][0]["ErrorCode"], "ProvisionedThroughputExceededException");
    let single = h.call("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": "eA=="})).await;
    assert!(single
        .unwrap_err()
        .starts_with("ProvisionedThroughputExceededException: Rate exceeded for shard shardId-000000000000"));
    h.clock.advance_secs(1);
    h.put("s", "k", "x").await;

    let it = h.iterator("s", "shardId-000000000000", "TRIM_HORIZON", json!({})).await;
    for _ in 0..5 {
        h.ok("GetRecords", json!({"ShardIterator": it, "Limit": 1})).await;
    }
    let sixth = h.call("GetRecords", json!({"ShardIterator": it, "Limit": 1})).await;
    assert!(sixth.unwrap_err().starts_with("ProvisionedThroughputExceededException"), "five reads a second");
    h.clock.advance_secs(1);
    h.ok("GetRecords", json!({"ShardIterator": it, "Limit": 1})).await;
}

#[tokio::test]
async fn streams_report_creating_and_updating_for_the_configured_delay() {
    let mut h = Harness::new();
    h.svc = open(h.dir.path(), h.clock.clone()).with_status_delay_ms(500);
    h.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).await;
    let status = |v: &Value| v["StreamDescriptionSummary"]["StreamStatus"].as_str().unwrap().to_owned();
    assert_eq!(status(&h.ok("DescribeStreamSummary", json!({"StreamName": "s"})).await), "CREATING");
    let early = h.call("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": "eA=="})).await;
    assert!(early.unwrap_err().starts_with("ResourceNotFoundException"), "no writes while CREATING");
    h.clock.advance_ms(500);
    assert_eq!(status(&h.ok("DescribeStreamSummary", json!({"StreamName": "s"})).await), "ACTIVE");
    h.ok("IncreaseStreamRetentionPeriod", json!({"StreamName": "s", "RetentionPeriodHours": 48})).await;
    assert_eq!(status(&h.ok("DescribeStreamSummary", json!({"StreamName": "s"})).await), "UPDATING");
    h.put("s", "k", "writes continue while UPDATING").await;
    let busy = h.call("IncreaseStreamRetentionPeriod", json!({"StreamName": "s", "RetentionPeriodHours": 72})).await;
    assert!(busy.unwrap_err().starts_with(
        "ResourceInUseException: Stream s under account 000000000000 not ACTIVE, instead in state UPDATING"
    ));
    h.clock.advance_ms(500);
    h.ok("IncreaseStreamRetentionPeriod", json!({"StreamName": "s", "RetentionPeriodHours": 72})).await;
}
