#!/usr/bin/env python3
"""SNS flows through boto3: fan-out to SQS with filter policies, raw and enveloped
delivery, FIFO topics, and an HTTP subscriber on loopback that confirms, verifies each
message's signature with the certificate at SigningCertURL, fails twice and then
succeeds; a failing endpoint's messages land in its dead-letter queue.

Usage: SLUICE_ENDPOINT=http://127.0.0.1:4566 python3 tests/compat/boto3_sns.py
"""
import base64
import hashlib
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from expect import expect_error

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
KW = dict(endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
sns = boto3.client("sns", **KW)
sqs = boto3.client("sqs", **KW)


def queue(name, **attrs):
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def drain(url, wait=1):
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                   MessageAttributeNames=["All"], AttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return out
        # Deliveries are stored without an MD5 and hashed when received.
        for m in msgs:
            assert m["MD5OfBody"] == hashlib.md5(m["Body"].encode()).hexdigest(), m
        out.extend(msgs)
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])


def string_to_sign(m):
    if m["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{m[k]}\n" for k in keys if k in m).encode()


def verify_signature(m):
    """What SDK message validators do: fetch the certificate, check the signature."""
    pem = urllib.request.urlopen(m["SigningCertURL"]).read()
    cert = x509.load_pem_x509_certificate(pem)
    digest = hashes.SHA1() if m["SignatureVersion"] == "1" else hashes.SHA256()
    cert.public_key().verify(base64.b64decode(m["Signature"]), string_to_sign(m), padding.PKCS1v15(), digest)


def fan_out_with_filters():
    topic = sns.create_topic(Name="orders", Tags=[{"Key": "team", "Value": "a"}])["TopicArn"]
    assert sns.create_topic(Name="orders")["TopicArn"] == topic, "CreateTopic is idempotent"
    big_url, big_arn = queue("big-orders")
    eu_url, eu_arn = queue("eu-orders")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=big_arn,
                  Attributes={"FilterPolicy": json.dumps({"amount": [{"numeric": [">=", 100]}]}), "RawMessageDelivery": "true"})
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=eu_arn,
                  Attributes={"FilterPolicyScope": "MessageBody", "FilterPolicy": json.dumps({"region": [{"prefix": "eu-"}]})})
    sns.publish(TopicArn=topic, Message=json.dumps({"region": "eu-west-1"}),
                MessageAttributes={"amount": {"DataType": "Number", "StringValue": "250"}})
    sns.publish(TopicArn=topic, Message=json.dumps({"region": "us-east-1"}),
                MessageAttributes={"amount": {"DataType": "Number", "StringValue": "5"}})
    sns.publish(TopicArn=topic, Message=json.dumps({"region": "eu-central-1"}), Subject="small")
    big = drain(big_url)
    assert [m["Body"] for m in big] == ['{"region": "eu-west-1"}'], big
    assert big[0]["MessageAttributes"]["amount"] == {"StringValue": "250", "DataType": "Number"}, "raw delivery keeps attributes"
    eu = sorted(json.loads(m["Body"])["Message"] for m in drain(eu_url))
    assert eu == ['{"region": "eu-central-1"}', '{"region": "eu-west-1"}'], eu
    env = json.loads(sqs_peek_envelope(topic, eu_url))
    verify_signature(env)
    assert sns.list_tags_for_resource(ResourceArn=topic)["Tags"] == [{"Key": "team", "Value": "a"}]
    reason = expect_error("InvalidParameter", sns.subscribe, TopicArn=topic, Protocol="sqs", Endpoint=eu_arn,
                          Attributes={"FilterPolicy": json.dumps({"a": [{"anything-but": {"suffix": "x"}}]})})
    assert "Unsupported anything-but pattern: suffix" in reason, reason
    expect_error("NotFound", sns.publish, TopicArn=topic + "-missing", Message="x")
    expect_error("InvalidParameter", sns.publish, TopicArn=topic, Message="")


def sqs_peek_envelope(topic, url):
    sns.publish(TopicArn=topic, Message=json.dumps({"region": "eu-north-1"}), Subject="signed")
    body = drain(url)[0]["Body"]
    m = json.loads(body)
    assert m["Type"] == "Notification" and m["Subject"] == "signed" and m["TopicArn"] == topic
    for k in ["MessageId", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL"]:
        assert k in m, k
    return body


def signed_fan_out():
    """Every queue of a publish gets its own envelope (own UnsubscribeURL) whose signature
    verifies; the signed text is the same, so the signature is too (PKCS#1 v1.5 is
    deterministic), as on AWS, where one publish is signed once."""
    topic = sns.create_topic(Name="signed-fan")["TopicArn"]
    urls = []
    for i in range(3):
        url, arn = queue(f"signed-fan-{i}")
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        urls.append(url)
    sns.publish(TopicArn=topic, Message="to all", Subject="fan")
    sns.publish(TopicArn=topic, MessageStructure="json", Message=json.dumps({"default": "d", "sqs": "for queues"}))
    per_queue = [sorted((json.loads(m["Body"]) for m in drain(url)), key=lambda e: e["Message"]) for url in urls]
    for n, text in enumerate(["for queues", "to all"]):
        envelopes = [bodies[n] for bodies in per_queue]
        for e in envelopes:
            assert e["Message"] == text, e
            verify_signature(e)
        assert len({e["UnsubscribeURL"] for e in envelopes}) == 3, envelopes
        assert len({e["Signature"] for e in envelopes}) == 1, envelopes
    assert all(len(bodies) == 2 for bodies in per_queue), per_queue
    # SignatureVersion 2 (SHA256withRSA) verifies the same way.
    sns.set_topic_attributes(TopicArn=topic, AttributeName="SignatureVersion", AttributeValue="2")
    sns.publish(TopicArn=topic, Message="sha256")
    for url in urls:
        (e,) = [json.loads(m["Body"]) for m in drain(url)]
        assert e["SignatureVersion"] == "2" and e["Message"] == "sha256", e
        verify_signature(e)


def fifo_topic():
    topic = sns.create_topic(Name="jobs.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"})["TopicArn"]
    url, arn = queue("jobs.fifo", FifoQueue="true")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    first = sns.publish(TopicArn=topic, Message="one", MessageGroupId="g")
    dup = sns.publish(TopicArn=topic, Message="one", MessageGroupId="g")
    assert first["MessageId"] == dup["MessageId"], "content-based dedup on the topic"
    second = sns.publish(TopicArn=topic, Message="two", MessageGroupId="g")
    assert int(second["SequenceNumber"]) > int(first["SequenceNumber"])
    msgs = drain(url)
    assert [m["Body"] for m in msgs] == ["one", "two"], msgs
    assert msgs[0]["Attributes"]["MessageGroupId"] == "g"
    expect_error("InvalidParameter", sns.publish, TopicArn=topic, Message="x")
    std_topic = sns.create_topic(Name="std")["TopicArn"]
    expect_error("InvalidParameter", sns.subscribe, TopicArn=std_topic, Protocol="sqs", Endpoint=arn)


class Receiver(BaseHTTPRequestHandler):
    """Confirms subscriptions through SubscribeURL; fails the first `fail` notifications."""
    received = []
    times = []
    fail = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        verify_signature(body)
        assert self.headers["x-amz-sns-message-type"] == body["Type"]
        if body["Type"] == "SubscriptionConfirmation":
            urllib.request.urlopen(body["SubscribeURL"]).read()
            self.send_response(200)
        elif body["Type"] == "UnsubscribeConfirmation":
            Receiver.received.append((self.path, "unsubscribed"))
            self.send_response(200)
        elif Receiver.fail.get(self.path, 0) > 0:
            Receiver.fail[self.path] -= 1
            self.send_response(500)
        else:
            Receiver.received.append((self.path, body["Message"]))
            Receiver.times.append((self.path, time.time()))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def http_subscriber():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    topic = sns.create_topic(Name="webhooks")["TopicArn"]
    quick = json.dumps({"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 3}})
    Receiver.fail["/flaky"] = 2
    sub = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=base + "/flaky", Attributes={"DeliveryPolicy": quick})
    assert sub["SubscriptionArn"] == "pending confirmation", sub
    dlq_url, dlq_arn = queue("webhook-dlq")
    Receiver.fail["/down"] = 1000
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=base + "/down",
                  Attributes={"DeliveryPolicy": quick, "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn})})
    deadline = time.time() + 20
    while time.time() < deadline:
        subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if all(s["SubscriptionArn"] != "PendingConfirmation" for s in subs):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the HTTP endpoints did not confirm")
    sns.publish(TopicArn=topic, Message="webhook payload")
    deadline = time.time() + 30
    while time.time() < deadline and ("/flaky", "webhook payload") not in Receiver.received:
        time.sleep(0.1)
    assert ("/flaky", "webhook payload") in Receiver.received, Receiver.received
    assert Receiver.fail["/flaky"] == 0, "two failures were retried"
    dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=20).get("Messages", [])
    assert len(dead) == 1 and json.loads(dead[0]["Body"])["Message"] == "webhook payload", dead
    # A throttled subscription: at most one delivery a second.
    throttled_topic = sns.create_topic(Name="throttled")["TopicArn"]
    sns.subscribe(TopicArn=throttled_topic, Protocol="http", Endpoint=base + "/slow", ReturnSubscriptionArn=True,
                  Attributes={"DeliveryPolicy": json.dumps({"throttlePolicy": {"maxReceivesPerSecond": 1}})})
    deadline = time.time() + 10
    while time.time() < deadline and any(s["SubscriptionArn"] == "PendingConfirmation" for s in sns.list_subscriptions_by_topic(TopicArn=throttled_topic)["Subscriptions"]):
        time.sleep(0.05)
    for i in range(3):
        sns.publish(TopicArn=throttled_topic, Message=f"t{i}")
    deadline = time.time() + 20
    while time.time() < deadline and len([t for p, t in Receiver.times if p == "/slow"]) < 3:
        time.sleep(0.05)
    slow = sorted(t for p, t in Receiver.times if p == "/slow")
    assert len(slow) == 3, slow
    assert slow[2] - slow[0] >= 1.5, f"throttled to one a second, got {slow}"
    flaky = next(s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] if s["Endpoint"].endswith("/flaky"))
    sns.unsubscribe(SubscriptionArn=flaky)
    deadline = time.time() + 10
    while time.time() < deadline and ("/flaky", "unsubscribed") not in Receiver.received:
        time.sleep(0.05)
    assert ("/flaky", "unsubscribed") in Receiver.received, "UnsubscribeConfirmation reached the endpoint"
    server.shutdown()


def outbox_protocols():
    topic = sns.create_topic(Name="people")["TopicArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")
    assert sub["SubscriptionArn"] == "pending confirmation"
    sns.subscribe(TopicArn=topic, Protocol="sms", Endpoint="+15555550100")
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint="arn:aws:lambda:us-east-1:000000000000:function:f")
    sns.publish(TopicArn=topic, Message="hello people")
    outbox = json.load(urllib.request.urlopen(ENDPOINT + "/_sluice/sns/outbox"))["messages"]
    sms = [m for m in outbox if m["protocol"] == "sms"]
    assert len(sms) == 1 and sms[0]["body"] == "hello people", "SMS carries the text only"
    event = json.loads(next(m for m in outbox if m["protocol"] == "lambda")["body"])
    record = event["Records"][0]
    assert record["EventSource"] == "aws:sns" and record["Sns"]["Message"] == "hello people", event
    assert record["Sns"]["SigningCertUrl"].endswith("/_sluice/sns/SimpleNotificationService.pem")
    confirmation = [m for m in outbox if m["protocol"] == "email"]
    assert confirmation and json.loads(confirmation[0]["body"])["Type"] == "SubscriptionConfirmation"
    token = json.loads(confirmation[0]["body"])["Token"]
    arn = sns.confirm_subscription(TopicArn=topic, Token=token)["SubscriptionArn"]
    assert sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"] == "false"
    req = urllib.request.Request(ENDPOINT + "/_sluice/sns/outbox", method="DELETE")
    urllib.request.urlopen(req).read()
    assert json.load(urllib.request.urlopen(ENDPOINT + "/_sluice/sns/outbox"))["messages"] == []


def mobile_and_sms():
    app = sns.create_platform_application(Name="app", Platform="GCM", Attributes={"PlatformCredential": "secret-key"})["PlatformApplicationArn"]
    assert app.endswith(":app/GCM/app"), app
    attrs = sns.get_platform_application_attributes(PlatformApplicationArn=app)["Attributes"]
    assert "PlatformCredential" not in attrs and attrs["Enabled"] == "true", attrs
    sns.set_platform_application_attributes(PlatformApplicationArn=app, Attributes={"EventEndpointCreated": "arn:aws:sns:us-east-1:000000000000:x"})
    assert [a["PlatformApplicationArn"] for a in sns.list_platform_applications()["PlatformApplications"]] == [app]
    ep = sns.create_platform_endpoint(PlatformApplicationArn=app, Token="device-1", CustomUserData="u1")["EndpointArn"]
    assert sns.create_platform_endpoint(PlatformApplicationArn=app, Token="device-1")["EndpointArn"] == ep, "same token, same endpoint"
    assert sns.get_endpoint_attributes(EndpointArn=ep)["Attributes"]["CustomUserData"] == "u1"
    sns.publish(TargetArn=ep, Message="push!")
    sns.set_endpoint_attributes(EndpointArn=ep, Attributes={"Enabled": "false"})
    expect_error("EndpointDisabled", sns.publish, TargetArn=ep, Message="push!")
    assert len(sns.list_endpoints_by_platform_application(PlatformApplicationArn=app)["Endpoints"]) == 1
    sns.delete_endpoint(EndpointArn=ep)
    sns.delete_platform_application(PlatformApplicationArn=app)
    expect_error("NotFound", sns.get_platform_application_attributes, PlatformApplicationArn=app)

    sns.set_sms_attributes(attributes={"DefaultSMSType": "Transactional"})
    assert sns.get_sms_attributes(attributes=["DefaultSMSType"])["attributes"] == {"DefaultSMSType": "Transactional"}
    assert sns.check_if_phone_number_is_opted_out(phoneNumber="+15555550100")["isOptedOut"] is False
    assert sns.list_phone_numbers_opted_out()["phoneNumbers"] == []
    sns.opt_in_phone_number(phoneNumber="+15555550100")
    sns.create_sms_sandbox_phone_number(PhoneNumber="+15555550101")
    outbox = json.load(urllib.request.urlopen(ENDPOINT + "/_sluice/sns/outbox"))["messages"]
    code = next(m["body"] for m in outbox if m["endpoint"] == "+15555550101").split()[-1]
    expect_error("VerificationException", sns.verify_sms_sandbox_phone_number, PhoneNumber="+15555550101", OneTimePassword="000000x")
    sns.verify_sms_sandbox_phone_number(PhoneNumber="+15555550101", OneTimePassword=code)
    assert sns.list_sms_sandbox_phone_numbers()["PhoneNumbers"] == [{"PhoneNumber": "+15555550101", "Status": "Verified"}]
    sns.delete_sms_sandbox_phone_number(PhoneNumber="+15555550101")
    assert sns.get_sms_sandbox_account_status()["IsInSandbox"] is False
    assert sns.list_origination_numbers()["PhoneNumbers"] == []
    sns.publish(PhoneNumber="+15555550102", Message="direct text")
    outbox = json.load(urllib.request.urlopen(ENDPOINT + "/_sluice/sns/outbox"))["messages"]
    assert any(m["endpoint"] == "+15555550102" and m["body"] == "direct text" for m in outbox)
    assert any(m["endpoint"] == ep and m["protocol"] == "application" for m in outbox)


def main():
    fan_out_with_filters()
    signed_fan_out()
    fifo_topic()
    http_subscriber()
    outbox_protocols()
    mobile_and_sms()
    print("boto3 SNS compatibility: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
