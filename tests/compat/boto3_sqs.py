#!/usr/bin/env python3
"""Common SQS flows through boto3 (JSON protocol) and a raw SigV4-signed Query request.
boto3 does not check the MD5s SQS answers with, so this script does, from AWS's
description of them.

Usage: SLUICE_ENDPOINT=http://127.0.0.1:4566 python3 tests/compat/boto3_sqs.py
"""
import hashlib
import json
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from expect import expect_error

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
REGION = "us-east-1"
CREDS = dict(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION, **CREDS)
NS = {"q": "http://queue.amazonaws.com/doc/2012-11-05/"}


def body_md5(body):
    return hashlib.md5(body.encode()).hexdigest()


def attributes_md5(attributes):
    """MD5OfMessageAttributes as AWS documents it: by name, each attribute's name, data
    type and value, each with a 4-byte big-endian length, and a transport byte between
    type and value (1 for String and Number, 2 for Binary)."""
    out = bytearray()
    for name in sorted(attributes):
        attr = attributes[name]
        for part in (name.encode(), attr["DataType"].encode()):
            out += len(part).to_bytes(4, "big") + part
        if attr["DataType"].startswith("Binary"):
            value, transport = attr["BinaryValue"], 2
        else:
            value, transport = attr["StringValue"].encode(), 1
        out += bytes([transport]) + len(value).to_bytes(4, "big") + value
    return hashlib.md5(bytes(out)).hexdigest()


def standard_queue_flow():
    url = sqs.create_queue(QueueName="boto-std", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    assert url.endswith("/000000000000/boto-std"), url
    attributes = {
        "str": {"DataType": "String", "StringValue": "v"},
        "num": {"DataType": "Number.float", "StringValue": "3.14"},
        "bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    }
    system = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="héllo wörld", MessageAttributes=attributes, MessageSystemAttributes=system)
    assert sent["MD5OfMessageBody"] == body_md5("héllo wörld"), sent
    assert sent["MD5OfMessageAttributes"] == attributes_md5(attributes), sent
    assert sent["MD5OfMessageSystemAttributes"] == attributes_md5(system), sent
    entries = [{"Id": f"e{i}", "MessageBody": f"batch-{i}", "MessageAttributes": {"i": {"DataType": "Number", "StringValue": str(i)}}} for i in range(5)]
    batch = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert len(batch["Successful"]) == 5 and not batch.get("Failed"), batch
    for entry, answered in zip(entries, sorted(batch["Successful"], key=lambda e: e["Id"])):
        assert answered["MD5OfMessageBody"] == body_md5(entry["MessageBody"]), answered
        assert answered["MD5OfMessageAttributes"] == attributes_md5(entry["MessageAttributes"]), answered
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
    msgs = got["Messages"]
    assert len(msgs) == 6, len(msgs)
    # MD5OfBody is stored at send and returned at receive: it must still be the body's.
    for m in msgs:
        assert m["MD5OfBody"] == body_md5(m["Body"]), m
    first = next(m for m in msgs if m["Body"] == "héllo wörld")
    assert first["MessageAttributes"]["bin"]["BinaryValue"] == b"\x00\x01\xff"
    assert first["Attributes"]["AWSTraceHeader"].startswith("Root=1-")
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs) if m is not first])
    assert len(deleted["Successful"]) == 5, deleted
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert again[0]["Body"] == "héllo wörld"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0" and attrs["VisibilityTimeout"] == "5", attrs
    sqs.tag_queue(QueueUrl=url, Tags={"team": "a"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a"}
    assert url in sqs.list_queues(QueueNamePrefix="boto-")["QueueUrls"]
    expect_error("AWS.SimpleQueueService.NonExistentQueue", sqs.get_queue_url, QueueName="nope")
    expect_error("InvalidParameterValue", sqs.send_message, QueueUrl=url, MessageBody="x", DelaySeconds=1000)
    sqs.purge_queue(QueueUrl=url)
    expect_error("AWS.SimpleQueueService.PurgeQueueInProgress", sqs.purge_queue, QueueUrl=url)
    return url


def fifo_flow():
    url = sqs.create_queue(QueueName="boto.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    ids = [sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", MessageGroupId="g")["MessageId"] for i in range(3)]
    dup = sqs.send_message(QueueUrl=url, MessageBody="m0", MessageGroupId="g")
    assert dup["MessageId"] == ids[0], "content-based deduplication returns the original id"
    # A duplicate writes nothing, yet answers its own body's digest.
    assert dup["MD5OfMessageBody"] == body_md5("m0"), dup
    again = sqs.send_message(QueueUrl=url, MessageBody="m9", MessageGroupId="g", MessageDeduplicationId="d")
    twice = sqs.send_message(QueueUrl=url, MessageBody="other text", MessageGroupId="g", MessageDeduplicationId="d")
    assert twice["MessageId"] == again["MessageId"], twice
    assert twice["MD5OfMessageBody"] == body_md5("other text"), twice
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert bodies == ["m0", "m1", "m2", "m9"], bodies
    expect_error("MissingParameter", sqs.send_message, QueueUrl=url, MessageBody="x")


def dead_letter_flow():
    dlq = sqs.create_queue(QueueName="boto-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    src = sqs.create_queue(QueueName="boto-src", Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})})["QueueUrl"]
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src]
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    assert len(sqs.receive_message(QueueUrl=src, VisibilityTimeout=0)["Messages"]) == 1
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    assert sqs.receive_message(QueueUrl=dlq)["Messages"][0]["Body"] == "poison"


def query_protocol_flow(url):
    """A Query request signed with SigV4, as older SDKs send it."""
    params = {"Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": url, "MessageBody": "via query",
              "MessageAttribute.1.Name": "k", "MessageAttribute.1.Value.DataType": "String", "MessageAttribute.1.Value.StringValue": "v"}
    body = urllib.parse.urlencode(params)
    req = botocore.awsrequest.AWSRequest(method="POST", url=ENDPOINT + "/", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("AKIDEXAMPLE", "secret"), "sqs", REGION).add_auth(req)
    prepared = req.prepare()
    http_req = urllib.request.Request(prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST")
    with urllib.request.urlopen(http_req) as resp:
        root = ET.fromstring(resp.read())
    md5 = root.find("q:SendMessageResult/q:MD5OfMessageBody", NS).text
    assert md5 == body_md5("via query"), md5
    assert root.find("q:SendMessageResult/q:MD5OfMessageAttributes", NS) is not None
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"][0]
    assert got["Body"] == "via query" and got["MessageAttributes"]["k"]["StringValue"] == "v"


def main():
    url = standard_queue_flow()
    fifo_flow()
    dead_letter_flow()
    query_protocol_flow(sqs.create_queue(QueueName="boto-query")["QueueUrl"])
    print("boto3 SQS compatibility: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
