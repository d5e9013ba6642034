#!/usr/bin/env python3
"""Encryption at rest through boto3: queues, streams, delivery streams and topics that request
server-side encryption are written sealed; a queue with SSE turned off is written in clear.
The Rust test (crates/server/tests/encryption.rs) scans the data directory between the
phases and restarts the server with the right and a wrong key.

Usage: SLUICE_ENDPOINT=… python3 tests/compat/encryption_at_rest.py write|read
"""
import json
import os
import sys
import urllib.request

import boto3

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
MARK = "7f3a"


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")


def write():
    sqs, kinesis, firehose, sns = client("sqs"), client("kinesis"), client("firehose"), client("sns")
    # New queues use SSE-SQS by default, as on AWS.
    sealed = sqs.create_queue(QueueName="sealed")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=sealed, AttributeNames=["SqsManagedSseEnabled"])["Attributes"]
    assert attrs["SqsManagedSseEnabled"] == "true", attrs
    sqs.send_message(QueueUrl=sealed, MessageBody=f"SECRET-SQS-{MARK}")
    kms = sqs.create_queue(QueueName="kms", Attributes={"KmsMasterKeyId": "alias/aws/sqs"})["QueueUrl"]
    sqs.send_message(QueueUrl=kms, MessageBody=f"SECRET-KMS-{MARK}")
    clear = sqs.create_queue(QueueName="clear", Attributes={"SqsManagedSseEnabled": "false"})["QueueUrl"]
    sqs.send_message(QueueUrl=clear, MessageBody=f"PLAIN-SQS-{MARK}")

    kinesis.create_stream(StreamName="sealed", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName="sealed", WaiterConfig={"Delay": 1})
    kinesis.start_stream_encryption(StreamName="sealed", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    summary = kinesis.describe_stream_summary(StreamName="sealed")["StreamDescriptionSummary"]
    assert summary["EncryptionType"] == "KMS", summary
    kinesis.get_waiter("stream_exists").wait(StreamName="sealed", WaiterConfig={"Delay": 1})
    kinesis.put_record(StreamName="sealed", Data=f"SECRET-KINESIS-{MARK}".encode(), PartitionKey="k")
    # A stream without encryption: the disk scan must find its record (in the record log).
    kinesis.create_stream(StreamName="clear", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName="clear", WaiterConfig={"Delay": 1})
    kinesis.put_record(StreamName="clear", Data=f"PLAIN-KINESIS-{MARK}".encode(), PartitionKey="k")

    # Long buffering keeps the records in the at-rest buffer while the test looks.
    firehose.create_delivery_stream(
        DeliveryStreamName="sealed", DeliveryStreamType="DirectPut",
        DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"},
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::at-rest",
            "BufferingHints": {"IntervalInSeconds": 900, "SizeInMBs": 128}})
    r = firehose.put_record(DeliveryStreamName="sealed", Record={"Data": f"SECRET-FIREHOSE-{MARK}".encode()})
    assert r["Encrypted"] is True, r

    topic = sns.create_topic(Name="sealed", Attributes={"KmsMasterKeyId": "alias/aws/sns"})["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sms", Endpoint="+15555550100")
    sns.publish(TopicArn=topic, Message=f"SECRET-SNS-{MARK}")
    assert f"SECRET-SNS-{MARK}" in outbox(), "the outbox reads the sealed entry back"

    # Everything reads back while the server runs.
    assert receive(sealed) == f"SECRET-SQS-{MARK}"
    assert receive(kms) == f"SECRET-KMS-{MARK}"
    assert records("sealed") == [f"SECRET-KINESIS-{MARK}".encode()]


def outbox():
    with urllib.request.urlopen(ENDPOINT + "/_sluice/sns/outbox") as r:
        return json.dumps(json.load(r))


def receive(url):
    sqs = client("sqs")
    # Visibility 0: the read phase receives the same messages again after the restart.
    msgs = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1)["Messages"]
    return msgs[0]["Body"]


def records(stream):
    kinesis = client("kinesis")
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]]


def read():
    sqs = client("sqs")
    for name, body in [("sealed", "SECRET-SQS"), ("kms", "SECRET-KMS"), ("clear", "PLAIN-SQS")]:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        assert receive(url) == f"{body}-{MARK}", name
    assert records("sealed") == [f"SECRET-KINESIS-{MARK}".encode()]
    assert records("clear") == [f"PLAIN-KINESIS-{MARK}".encode()]
    assert f"SECRET-SNS-{MARK}" in outbox()


def main():
    {"write": write, "read": read}[sys.argv[1]]()
    print("encryption at rest: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
