#!/usr/bin/env python3
"""Every Firehose operation Sluice serves, through boto3, delivering into the
local-filesystem bucket root (SLUICE_BUCKET_ROOT) and reading the objects back.

Usage: SLUICE_ENDPOINT=http://127.0.0.1:4566 SLUICE_BUCKET_ROOT=./sluice-data/s3 python3 tests/compat/boto3_firehose.py
"""
import datetime
import gzip
import os
import sys
import time
from zoneinfo import ZoneInfo
import urllib.request

import boto3
from expect import expect_error

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
ROOT = os.environ["SLUICE_BUCKET_ROOT"]
KW = dict(endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
fh = boto3.client("firehose", **KW)
kinesis = boto3.client("kinesis", **KW)
ROLE = "arn:aws:iam::000000000000:role/firehose"


def objects(bucket, prefix=""):
    base = os.path.join(ROOT, bucket)
    out = []
    for dirpath, _, files in os.walk(base):
        for f in files:
            if f.startswith("."):
                continue
            key = os.path.relpath(os.path.join(dirpath, f), base)
            if key.startswith(prefix):
                with open(os.path.join(dirpath, f), "rb") as fp:
                    out.append((key, fp.read()))
    return sorted(out)


def wait_for(bucket, prefix, count):
    deadline = time.time() + 20
    while time.time() < deadline:
        found = objects(bucket, prefix)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no objects under {bucket}/{prefix}")


def direct_put():
    arn = fh.create_delivery_stream(
        DeliveryStreamName="events",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "events/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}, "CompressionFormat": "GZIP"},
        Tags=[{"Key": "team", "Value": "data"}],
    )["DeliveryStreamARN"]
    assert arn == "arn:aws:firehose:us-east-1:000000000000:deliverystream/events"
    expect_error("ResourceInUseException", fh.create_delivery_stream, DeliveryStreamName="events",
                 ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake"})
    desc = fh.describe_delivery_stream(DeliveryStreamName="events")["DeliveryStreamDescription"]
    assert desc["DeliveryStreamStatus"] == "ACTIVE" and desc["VersionId"] == "1"
    ext = desc["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["CompressionFormat"] == "GZIP" and ext["BufferingHints"]["SizeInMBs"] == 1
    assert "events" in fh.list_delivery_streams()["DeliveryStreamNames"]
    rid = fh.put_record(DeliveryStreamName="events", Record={"Data": b'{"n":1}\n'})["RecordId"]
    assert rid
    batch = fh.put_record_batch(DeliveryStreamName="events", Records=[{"Data": f'{{"n":{i}}}\n'.encode()} for i in range(2, 5)])
    assert batch["FailedPutCount"] == 0 and len(batch["RequestResponses"]) == 3
    found = wait_for("lake", "events/", 1)
    lines = b"".join(gzip.decompress(body) for _, body in wait_for("lake", "events/", len(found)))
    deadline = time.time() + 10
    while lines.count(b"\n") < 4 and time.time() < deadline:
        time.sleep(0.1)
        lines = b"".join(gzip.decompress(body) for _, body in objects("lake", "events/"))
    assert sorted(lines.splitlines()) == [f'{{"n":{i}}}'.encode() for i in range(1, 5)], lines
    key = found[0][0]
    assert key.startswith("events/") and "/events-1-" in key and key.endswith(".gz"), key

    fh.tag_delivery_stream(DeliveryStreamName="events", Tags=[{"Key": "env", "Value": "test"}])
    fh.untag_delivery_stream(DeliveryStreamName="events", TagKeys=["team"])
    assert fh.list_tags_for_delivery_stream(DeliveryStreamName="events")["Tags"] == [{"Key": "env", "Value": "test"}]
    fh.start_delivery_stream_encryption(DeliveryStreamName="events", DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"})
    assert fh.put_record(DeliveryStreamName="events", Record={"Data": b"x\n"})["Encrypted"] is True
    fh.stop_delivery_stream_encryption(DeliveryStreamName="events")
    fh.update_destination(DeliveryStreamName="events", CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001",
                          ExtendedS3DestinationUpdate={"Prefix": "v2/", "CompressionFormat": "UNCOMPRESSED"})
    expect_error("ConcurrentModificationException", fh.update_destination, DeliveryStreamName="events", CurrentDeliveryStreamVersionId="1",
                 DestinationId="destinationId-000000000001", ExtendedS3DestinationUpdate={"Prefix": "v3/"})
    fh.put_record(DeliveryStreamName="events", Record={"Data": b"after update\n"})
    v2 = wait_for("lake", "v2/", 1)
    assert "/events-2-" in v2[0][0] and v2[0][1] == b"after update\n", v2
    fh.delete_delivery_stream(DeliveryStreamName="events")
    expect_error("ResourceNotFoundException", fh.describe_delivery_stream, DeliveryStreamName="events")
    expect_error("ValidationException", fh.put_record, DeliveryStreamName="x" * 65, Record={"Data": b"x"})


def from_kinesis():
    kinesis.create_stream(StreamName="clicks", ShardCount=1)
    fh.create_delivery_stream(
        DeliveryStreamName="clicks-to-lake",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/clicks", "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "clicks/",
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}},
    )
    src = fh.describe_delivery_stream(DeliveryStreamName="clicks-to-lake")["DeliveryStreamDescription"]["Source"]
    assert src["KinesisStreamSourceDescription"]["KinesisStreamARN"].endswith("stream/clicks")
    time.sleep(0.01)
    kinesis.put_records(StreamName="clicks", Records=[{"Data": f"c{i};".encode(), "PartitionKey": "p"} for i in range(5)])
    deadline = time.time() + 20
    body = b""
    while time.time() < deadline and body.count(b";") < 5:
        body = b"".join(b for _, b in objects("lake", "clicks/"))
        time.sleep(0.1)
    assert sorted(x for x in body.split(b";") if x) == [f"c{i}".encode() for i in range(5)], body
    expect_error("InvalidArgumentException", fh.put_record, DeliveryStreamName="clicks-to-lake", Record={"Data": b"x"})


def from_sns():
    sns = boto3.client("sns", **KW)
    arn = fh.create_delivery_stream(
        DeliveryStreamName="notifications",
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "sns/",
                                            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}},
    )["DeliveryStreamARN"]
    topic = sns.create_topic(Name="to-firehose")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="firehose", Endpoint=arn,
                  Attributes={"SubscriptionRoleArn": ROLE, "RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message="from sns\n")
    found = wait_for("lake", "sns/", 1)
    assert found[0][1] == b"from sns\n", found


def partitioned():
    """Dynamic partitioning by a jq query, with the source records backed up."""
    base = {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake",
            "Prefix": "by-tenant/tenant=!{partitionKeyFromQuery:tenant}/",
            "ErrorOutputPrefix": "by-tenant-errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 1},
            "DynamicPartitioningConfiguration": {"Enabled": True, "RetryOptions": {"DurationInSeconds": 300}},
            "ProcessingConfiguration": {"Enabled": True, "Processors": [
                {"Type": "MetadataExtraction", "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{tenant: .tenant | ascii_downcase}"},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]},
                {"Type": "AppendDelimiterToRecord", "Parameters": []}]},
            "S3BackupMode": "Enabled",
            "S3BackupConfiguration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "by-tenant-source/"}}
    expect_error("InvalidArgumentException", fh.create_delivery_stream, DeliveryStreamName="partitioned",
                 ExtendedS3DestinationConfiguration={**base, "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    fh.create_delivery_stream(DeliveryStreamName="partitioned", ExtendedS3DestinationConfiguration=base)
    d = fh.describe_delivery_stream(DeliveryStreamName="partitioned")["DeliveryStreamDescription"]
    ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert ext["S3BackupDescription"]["Prefix"] == "by-tenant-source/", ext
    fh.put_record_batch(DeliveryStreamName="partitioned", Records=[
        {"Data": b'{"tenant":"Acme","n":1}'}, {"Data": b'{"tenant":"Globex","n":2}'}, {"Data": b'{"tenant":"acme","n":3}'}])
    acme = wait_for("lake", "by-tenant/tenant=acme/", 1)
    assert acme[0][0].split("/")[2].startswith("partitioned-1-"), acme
    assert acme[0][1] == b'{"tenant":"Acme","n":1}\n{"tenant":"acme","n":3}\n', acme
    globex = wait_for("lake", "by-tenant/tenant=globex/", 1)
    assert globex[0][1] == b'{"tenant":"Globex","n":2}\n', globex
    source = wait_for("lake", "by-tenant-source/", 1)
    assert b"".join(body for _, body in source) == b'{"tenant":"Acme","n":1}{"tenant":"Globex","n":2}{"tenant":"acme","n":3}'
    labels = '{account="000000000000",region="us-east-1",delivery_stream="partitioned"}'
    wanted = [f"sluice_firehose_incoming_records_total{labels} 3", f"sluice_firehose_objects_written_total{labels} 2"]
    deadline = time.time() + 10
    while True:  # the counters move just after the objects land
        metrics = urllib.request.urlopen(ENDPOINT + "/_sluice/metrics").read().decode()
        if all(w in metrics for w in wanted):
            break
        assert time.time() < deadline, metrics
        time.sleep(0.1)


def aggregated_and_zoned():
    """RecordDeAggregation ahead of partitioning, and CustomTimeZone in key prefixes."""
    fh.create_delivery_stream(DeliveryStreamName="aggregated", ExtendedS3DestinationConfiguration={
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "agg/k=!{partitionKeyFromQuery:k}/",
        "ErrorOutputPrefix": "agg-errors/", "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 1},
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {"Enabled": True, "Processors": [
            {"Type": "RecordDeAggregation", "Parameters": [{"ParameterName": "SubRecordType", "ParameterValue": "JSON"}]},
            {"Type": "MetadataExtraction", "Parameters": [
                {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{k: .k}"},
                {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]},
            {"Type": "AppendDelimiterToRecord", "Parameters": []}]}})
    fh.put_record(DeliveryStreamName="aggregated", Record={"Data": b'{"k":"a"}{"k":"b"}\n{"k":"a","n":2}'})
    assert wait_for("lake", "agg/k=a/", 1)[0][1] == b'{"k":"a"}\n{"k":"a","n":2}\n'
    assert wait_for("lake", "agg/k=b/", 1)[0][1] == b'{"k":"b"}\n'

    tokyo = ZoneInfo("Asia/Tokyo")
    before = datetime.datetime.now(tokyo).strftime("%Y/%m/%d/%H")
    fh.create_delivery_stream(DeliveryStreamName="tokyo", ExtendedS3DestinationConfiguration={
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "tz/", "CustomTimeZone": "Asia/Tokyo",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}})
    fh.put_record(DeliveryStreamName="tokyo", Record={"Data": b"konnichiwa"})
    key = wait_for("lake", "tz/", 1)[0][0]
    after = datetime.datetime.now(tokyo).strftime("%Y/%m/%d/%H")
    assert key[len("tz/"):len("tz/") + 13] in (before, after), key
    expect_error("InvalidArgumentException", fh.create_delivery_stream, DeliveryStreamName="nowhere",
                 ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake",
                                                     "CustomTimeZone": "Mars/Olympus"})


def main():
    direct_put()
    from_kinesis()
    from_sns()
    partitioned()
    aggregated_and_zoned()
    print("boto3 Firehose compatibility: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
