#!/usr/bin/env python3
"""With --auth sigv4, every service verifies SigV4 through boto3 (JSON 1.0, JSON 1.1 and
Query, header and presigned forms), acts as the credential's account, and refuses wrong
secrets, unknown keys, unsigned, stale and expired requests with AWS's errors.

Usage: SLUICE_ENDPOINT=… python3 tests/compat/sigv4_auth.py
(Sluice must run with --auth sigv4 --credential AKIDALICE:alice-secret:111122223333
 --credential AKIDBOB:bob-secret:444455556666)
"""
import datetime
import os
import sys
import time
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config
from expect import expect_error

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(service, key="AKIDALICE", secret="alice-secret", token=None):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="eu-west-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=NO_RETRY)


def main():
    # Right credentials: each protocol works and the account is the credential's.
    url = client("sqs").create_queue(QueueName="signed")["QueueUrl"]
    assert "/111122223333/signed" in url, url
    client("sqs").send_message(QueueUrl=url, MessageBody="hello")
    assert client("sqs").receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hello"
    topic = client("sns").create_topic(Name="signed")["TopicArn"]
    assert topic == "arn:aws:sns:eu-west-1:111122223333:signed", topic
    client("kinesis").create_stream(StreamName="signed", ShardCount=1)
    arn = client("kinesis").describe_stream_summary(StreamName="signed")["StreamDescriptionSummary"]["StreamARN"]
    assert ":111122223333:" in arn, arn
    client("firehose").list_delivery_streams()
    # Another credential is another account: it does not see Alice's queue.
    assert "QueueUrls" not in client("sqs", "AKIDBOB", "bob-secret").list_queues()
    assert ":444455556666:" in client("sns", "AKIDBOB", "bob-secret").create_topic(Name="b")["TopicArn"]

    # A wrong secret, an unknown key.
    expect_error("SignatureDoesNotMatch", client("sqs", secret="wrong").list_queues, status=403)
    expect_error("SignatureDoesNotMatch", client("sns", secret="wrong").list_topics)
    expect_error("InvalidSignatureException", client("kinesis", secret="wrong").list_streams)
    expect_error("InvalidClientTokenId", client("sqs", key="AKIDNOBODY").list_queues)
    expect_error("InvalidClientTokenId", client("sns", key="AKIDNOBODY").list_topics)
    expect_error("UnrecognizedClientException", client("kinesis", key="AKIDNOBODY").list_streams)

    # Temporary credentials: the session token must be the configured one.
    temp = client("sns", "ASIATEMP", "temp-secret", "the-session-token").create_topic(Name="t")["TopicArn"]
    assert ":777788889999:" in temp, temp
    expect_error("InvalidClientTokenId", client("sns", "ASIATEMP", "temp-secret").list_topics)
    expect_error("InvalidClientTokenId", client("sns", "ASIATEMP", "temp-secret", "another-token").list_topics)
    expect_error("InvalidClientTokenId", client("sqs", token="unexpected").list_queues)

    # Signed 20 minutes ago: outside AWS's 15 minutes of skew.
    stale = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=stale):
        message = expect_error("SignatureDoesNotMatch", client("sns").list_topics)
    assert message.startswith("Signature expired:"), message

    # Unsigned requests.
    req = urllib.request.Request(ENDPOINT + "/", data=b"Action=ListTopics&Version=2010-03-31",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        urllib.request.urlopen(req)
        raise AssertionError("an unsigned request is refused")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"MissingAuthenticationToken" in e.read(), e
    assert urllib.request.urlopen(ENDPOINT + "/health").status == 200, "health needs no credentials"

    # The SNS outbox holds message bodies: it needs a signed request; metrics stay open.
    try:
        urllib.request.urlopen(ENDPOINT + "/_sluice/sns/outbox")
        raise AssertionError("an unsigned outbox request is refused")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"MissingAuthenticationToken" in e.read(), e
    signed = botocore.awsrequest.AWSRequest(method="GET", url=ENDPOINT + "/_sluice/sns/outbox")
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("AKIDALICE", "alice-secret"), "sns",
                            "eu-west-1").add_auth(signed)
    req = urllib.request.Request(ENDPOINT + "/_sluice/sns/outbox", headers=dict(signed.headers.items()))
    assert urllib.request.urlopen(req).status == 200
    assert urllib.request.urlopen(ENDPOINT + "/_sluice/metrics").status == 200

    # Presigned (query-string) requests, valid until X-Amz-Expires.
    presigned = client("sns").generate_presigned_url("list_topics", ExpiresIn=2, HttpMethod="GET")
    assert "X-Amz-Signature=" in presigned
    body = urllib.request.urlopen(presigned).read()
    assert b"arn:aws:sns:eu-west-1:111122223333:signed" in body, body
    time.sleep(3)
    try:
        urllib.request.urlopen(presigned)
        raise AssertionError("an expired presigned URL is refused")
    except urllib.error.HTTPError as e:
        assert b"RequestExpired" in e.read(), e
    tampered = client("sns").generate_presigned_url("list_topics", ExpiresIn=60, HttpMethod="GET").replace(
        "Action=ListTopics", "Action=ListSubscriptions")
    try:
        urllib.request.urlopen(tampered)
        raise AssertionError("a tampered presigned URL is refused")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"SignatureDoesNotMatch" in e.read(), e
    print("SigV4 authentication: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
