#!/usr/bin/env python3
"""Every Kinesis Data Streams operation Sluice serves, through boto3 (JSON 1.1).

Usage: SLUICE_ENDPOINT=http://127.0.0.1:4566 python3 tests/compat/boto3_kinesis.py
"""
import hashlib
import json
import os
import sys

import boto3
from expect import expect_error

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
k = boto3.client("kinesis", endpoint_url=ENDPOINT, region_name="us-east-1",
                 aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")


def read_shard(stream, shard_id, kind="TRIM_HORIZON", **extra):
    it = k.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType=kind, **extra)["ShardIterator"]
    out = []
    while it:
        r = k.get_records(ShardIterator=it, Limit=1000)
        out.extend(r["Records"])
        if not r["Records"]:
            return out, r
        it = r.get("NextShardIterator")
    return out, r


def streams_and_records():
    k.create_stream(StreamName="clicks", ShardCount=2, Tags={"team": "web"})
    k.get_waiter("stream_exists").wait(StreamName="clicks", WaiterConfig={"Delay": 0.1})
    expect_error("ResourceInUseException", k.create_stream, StreamName="clicks", ShardCount=1)
    desc = k.describe_stream(StreamName="clicks")["StreamDescription"]
    assert desc["StreamStatus"] == "ACTIVE" and len(desc["Shards"]) == 2
    arn = desc["StreamARN"]
    assert arn == "arn:aws:kinesis:us-east-1:000000000000:stream/clicks"
    summary = k.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2 and summary["RetentionPeriodHours"] == 24
    assert k.list_streams()["StreamNames"] == ["clicks"]
    shards = k.list_shards(StreamName="clicks")["Shards"]
    page = k.list_shards(StreamName="clicks", MaxResults=1)
    assert len(page["Shards"]) == 1 and "NextToken" in page
    assert k.list_shards(NextToken=page["NextToken"])["Shards"][0]["ShardId"] == shards[1]["ShardId"]

    put = k.put_record(StreamName="clicks", Data=b"first", PartitionKey="user-1")
    h = int(hashlib.md5(b"user-1").hexdigest(), 16)
    owner = next(s for s in shards if int(s["HashKeyRange"]["StartingHashKey"]) <= h <= int(s["HashKeyRange"]["EndingHashKey"]))
    assert put["ShardId"] == owner["ShardId"], "routed by MD5 of the partition key"
    batch = k.put_records(StreamARN=arn, Records=[{"Data": f"r{i}".encode(), "PartitionKey": "user-1"} for i in range(5)])
    assert batch["FailedRecordCount"] == 0 and len(batch["Records"]) == 5
    seqs = [int(r["SequenceNumber"]) for r in batch["Records"]]
    assert seqs == sorted(seqs) and seqs[0] > int(put["SequenceNumber"])
    records, last = read_shard("clicks", owner["ShardId"])
    assert [r["Data"] for r in records] == [b"first"] + [f"r{i}".encode() for i in range(5)]
    assert last["MillisBehindLatest"] == 0
    at = read_shard("clicks", owner["ShardId"], "AT_SEQUENCE_NUMBER", StartingSequenceNumber=batch["Records"][2]["SequenceNumber"])[0]
    assert [r["Data"] for r in at] == [b"r2", b"r3", b"r4"]
    ts = read_shard("clicks", owner["ShardId"], "AT_TIMESTAMP", Timestamp=records[0]["ApproximateArrivalTimestamp"])[0]
    assert len(ts) == 6
    expect_error("ValidationException", k.put_record, StreamName="clicks", Data=b"x" * (1024 * 1024 + 1), PartitionKey="p")
    expect_error("ResourceNotFoundException", k.put_record, StreamName="missing", Data=b"x", PartitionKey="p")
    expect_error("InvalidArgumentException", k.get_records, ShardIterator="bogus")
    return arn


def settings(arn):
    k.increase_stream_retention_period(StreamName="clicks", RetentionPeriodHours=48)
    k.decrease_stream_retention_period(StreamName="clicks", RetentionPeriodHours=24)
    expect_error("InvalidArgumentException", k.decrease_stream_retention_period, StreamName="clicks", RetentionPeriodHours=12)
    k.add_tags_to_stream(StreamName="clicks", Tags={"env": "test"})
    k.remove_tags_from_stream(StreamName="clicks", TagKeys=["team"])
    assert k.list_tags_for_stream(StreamName="clicks")["Tags"] == [{"Key": "env", "Value": "test"}]
    k.tag_resource(ResourceARN=arn, Tags={"owner": "me"})
    k.untag_resource(ResourceARN=arn, TagKeys=["env"])
    assert k.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "owner", "Value": "me"}]
    k.start_stream_encryption(StreamName="clicks", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert k.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"]["EncryptionType"] == "KMS"
    k.stop_stream_encryption(StreamName="clicks", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    mon = k.enable_enhanced_monitoring(StreamName="clicks", ShardLevelMetrics=["IncomingBytes"])
    assert mon["DesiredShardLevelMetrics"] == ["IncomingBytes"]
    mon = k.disable_enhanced_monitoring(StreamName="clicks", ShardLevelMetrics=["ALL"])
    assert mon["DesiredShardLevelMetrics"] == []
    k.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    k.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    k.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=2048)
    k.put_record(StreamName="clicks", Data=b"x" * (1024 * 1024 + 1), PartitionKey="big")
    k.update_stream_warm_throughput(StreamARN=arn, WarmThroughputMiBps=10)
    k.put_resource_policy(ResourceARN=arn, Policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
    assert json.loads(k.get_resource_policy(ResourceARN=arn)["Policy"])["Version"] == "2012-10-17"
    k.delete_resource_policy(ResourceARN=arn)
    expect_error("ResourceNotFoundException", k.delete_resource_policy, ResourceARN=arn)
    limits = k.describe_limits()
    assert limits["ShardLimit"] == 500 and limits["OpenShardCount"] == 2
    assert k.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"] == "DISABLED"
    k.update_account_settings(MinimumThroughputBillingCommitment={"Status": "DISABLED"})


def consumers(arn):
    c = k.register_stream_consumer(StreamARN=arn, ConsumerName="app")["Consumer"]
    assert c["ConsumerStatus"] == "ACTIVE" and c["ConsumerARN"].startswith(arn + "/consumer/app:")
    expect_error("ResourceInUseException", k.register_stream_consumer, StreamARN=arn, ConsumerName="app")
    assert k.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]["StreamARN"] == arn
    assert [x["ConsumerName"] for x in k.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["app"]
    expect_error("ResourceInUseException", k.delete_stream, StreamName="clicks")
    k.deregister_stream_consumer(StreamARN=arn, ConsumerName="app")
    assert k.list_stream_consumers(StreamARN=arn)["Consumers"] == []


def resharding():
    k.create_stream(StreamName="orders", ShardCount=1)
    k.put_record(StreamName="orders", Data=b"old", PartitionKey="p")
    k.split_shard(StreamName="orders", ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2 ** 127))
    shards = k.list_shards(StreamName="orders")["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]
    assert "EndingSequenceNumber" in shards[0]["SequenceNumberRange"]
    records, last = read_shard("orders", "shardId-000000000000")
    assert [r["Data"] for r in records] == [b"old"] and last.get("NextShardIterator") is None
    assert sorted(c["ShardId"] for c in last["ChildShards"]) == ["shardId-000000000001", "shardId-000000000002"]
    k.merge_shards(StreamName="orders", ShardToMerge="shardId-000000000001", AdjacentShardToMerge="shardId-000000000002")
    open_shards = k.list_shards(StreamName="orders", ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert [s["ShardId"] for s in open_shards] == ["shardId-000000000003"]
    out = k.update_shard_count(StreamName="orders", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    assert out["TargetShardCount"] == 2
    assert len(k.list_shards(StreamName="orders", ShardFilter={"Type": "AT_LATEST"})["Shards"]) == 2
    k.delete_stream(StreamName="orders")
    expect_error("ResourceNotFoundException", k.describe_stream, StreamName="orders")


def main():
    arn = streams_and_records()
    settings(arn)
    consumers(arn)
    resharding()
    k.delete_stream(StreamName="clicks", EnforceConsumerDeletion=True)
    print("boto3 Kinesis compatibility: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
