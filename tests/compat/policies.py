#!/usr/bin/env python3
"""With --auth sigv4, queue, topic and stream policies and per-credential identity policies
decide who may do what, as on AWS: boto3 in two accounts and one least-privilege user.

Usage: SLUICE_ENDPOINT=… python3 tests/compat/policies.py
(Sluice must run with --auth sigv4 --credential AKIDALICE:alice-secret:111122223333
 --credential AKIDBOB:bob-secret:444455556666 and the config file's user AKIDREADER, named
 "reader" in account 111122223333, limited by the identity policy in compat.rs)
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from expect import expect_error

ENDPOINT = os.environ["SLUICE_ENDPOINT"]
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})
ALICE, BOB = "111122223333", "444455556666"
SECRETS = {"AKIDALICE": "alice-secret", "AKIDBOB": "bob-secret", "AKIDREADER": "reader-secret"}


def client(service, key):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="eu-west-1", aws_access_key_id=key,
                        aws_secret_access_key=SECRETS[key], config=NO_RETRY)


def sqs_identity_and_queue_policies():
    alice, bob, reader = client("sqs", "AKIDALICE"), client("sqs", "AKIDBOB"), client("sqs", "AKIDREADER")
    url = alice.create_queue(QueueName="work")["QueueUrl"]
    arn = f"arn:aws:sqs:eu-west-1:{ALICE}:work"
    alice.send_message(QueueUrl=url, MessageBody="job")

    # The reader's identity policy allows receiving and deleting only.
    assert reader.get_queue_url(QueueName="work")["QueueUrl"] == url
    msgs = reader.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in msgs] == ["job"]
    message = expect_error("AccessDenied", reader.send_message, status=403, QueueUrl=url, MessageBody="x")
    assert message == (f"User: arn:aws:iam::{ALICE}:user/reader is not authorized to perform: sqs:SendMessage "
                       f"on resource: {arn} because no identity-based policy allows the sqs:SendMessage action"), message
    expect_error("AccessDenied", reader.send_message_batch, status=403, QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x"}])
    expect_error("AccessDenied", reader.list_queues, status=403)

    # Another account needs the queue policy: AddPermission grants exactly what it names.
    message = expect_error("AccessDenied", bob.send_message, status=403, QueueUrl=url, MessageBody="from bob")
    assert message.endswith("because no resource-based policy allows the sqs:SendMessage action"), message
    alice.add_permission(QueueUrl=url, Label="bob-sends", AWSAccountIds=[BOB], Actions=["SendMessage"])
    bob.send_message(QueueUrl=url, MessageBody="from bob")
    expect_error("AccessDenied", bob.receive_message, status=403, QueueUrl=url)
    expect_error("AccessDenied", bob.get_queue_url, status=403, QueueName="work", QueueOwnerAWSAccountId=ALICE)
    # Some operations stay with the owner whatever the policy says.
    alice.add_permission(QueueUrl=url, Label="bob-all", AWSAccountIds=[BOB], Actions=["*"])
    assert bob.get_queue_url(QueueName="work", QueueOwnerAWSAccountId=ALICE)["QueueUrl"] == url
    expect_error("AccessDenied", bob.set_queue_attributes, status=403, QueueUrl=url, Attributes={"DelaySeconds": "5"})
    expect_error("AccessDenied", bob.delete_queue, status=403, QueueUrl=url)
    alice.remove_permission(QueueUrl=url, Label="bob-all")
    alice.remove_permission(QueueUrl=url, Label="bob-sends")
    expect_error("AccessDenied", bob.send_message, status=403, QueueUrl=url, MessageBody="again")

    # An explicit deny in the queue policy overrides the reader's identity policy.
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Resource": arn, "Action": "sqs:DeleteMessage",
                                                    "Principal": {"AWS": f"arn:aws:iam::{ALICE}:user/reader"}}]}
    alice.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(deny)})
    msgs = reader.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1)["Messages"]
    message = expect_error("AccessDenied", reader.delete_message, status=403, QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])
    assert message.endswith("with an explicit deny in a resource-based policy"), message
    alice.delete_message(QueueUrl=url, ReceiptHandle=msgs[0]["ReceiptHandle"])

    # A policy Sluice cannot evaluate is refused when set, not ignored later.
    no_principal = {"Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": arn}]}
    expect_error("InvalidAttributeValue", alice.set_queue_attributes, status=400, QueueUrl=url,
           Attributes={"Policy": json.dumps(no_principal)})


def sns_to_sqs_across_accounts():
    alice_sns, bob_sns = client("sns", "AKIDALICE"), client("sns", "AKIDBOB")
    bob_sqs = client("sqs", "AKIDBOB")
    topic = alice_sns.create_topic(Name="news")["TopicArn"]
    inbox = bob_sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = f"arn:aws:sqs:eu-west-1:{BOB}:inbox"
    alice_sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn,
                        Attributes={"RawMessageDelivery": "true"})

    def delivered():
        got = bob_sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            bob_sqs.delete_message(QueueUrl=inbox, ReceiptHandle=m["ReceiptHandle"])
        return [m["Body"] for m in got]

    def allow_from(source_arn):
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": inbox_arn, "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}}}]})

    # No queue policy: SNS may not send, and AWS drops the delivery.
    alice_sns.publish(TopicArn=topic, Message="no policy")
    assert delivered() == []
    bob_sqs.set_queue_attributes(QueueUrl=inbox, Attributes={"Policy": allow_from(topic + "-other")})
    alice_sns.publish(TopicArn=topic, Message="other topic allowed")
    assert delivered() == []
    bob_sqs.set_queue_attributes(QueueUrl=inbox, Attributes={"Policy": allow_from(topic)})
    alice_sns.publish(TopicArn=topic, Message="allowed")
    assert delivered() == ["allowed"]

    # Publishing to another account's topic needs its topic policy.
    message = expect_error("AuthorizationError", bob_sns.publish, status=403, TopicArn=topic, Message="from bob")
    assert message.startswith(f"User: arn:aws:iam::{BOB}:root is not authorized to perform: SNS:Publish"), message
    alice_sns.add_permission(TopicArn=topic, Label="bob-publishes", AWSAccountId=[BOB], ActionName=["Publish"])
    bob_sns.publish(TopicArn=topic, Message="from bob")
    assert delivered() == ["from bob"]
    expect_error("AuthorizationError", bob_sns.delete_topic, status=403, TopicArn=topic)
    # Subscribing needs the topic policy too; the subscription is then Bob's to manage.
    bob_sqs.create_queue(QueueName="inbox2")
    inbox2_arn = f"arn:aws:sqs:eu-west-1:{BOB}:inbox2"
    expect_error("AuthorizationError", bob_sns.subscribe, status=403, TopicArn=topic, Protocol="sqs", Endpoint=inbox2_arn)
    alice_sns.add_permission(TopicArn=topic, Label="bob-subscribes", AWSAccountId=[BOB], ActionName=["Subscribe"])
    own = bob_sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox2_arn,
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert bob_sns.get_subscription_attributes(SubscriptionArn=own)["Attributes"]["Owner"] == BOB
    bob_sns.unsubscribe(SubscriptionArn=own)
    # The default topic policy admits every principal of the owner's account (Principal
    # "*" with AWS:SourceOwner), so the reader may publish; creating topics it may not.
    client("sns", "AKIDREADER").publish(TopicArn=topic, Message="from the reader")
    assert delivered() == ["from the reader"]
    expect_error("AuthorizationError", client("sns", "AKIDREADER").create_topic, status=403, Name="mine")
    expect_error("InvalidParameter", alice_sns.set_topic_attributes, status=400, TopicArn=topic, AttributeName="Policy",
           AttributeValue=json.dumps({"Statement": [{"Effect": "Allow", "Action": "SNS:Publish"}]}))


def kinesis_resource_policy():
    alice, bob = client("kinesis", "AKIDALICE"), client("kinesis", "AKIDBOB")
    alice.create_stream(StreamName="shared", ShardCount=1)
    arn = alice.describe_stream_summary(StreamName="shared")["StreamDescriptionSummary"]["StreamARN"]
    expect_error("AccessDeniedException", bob.put_record, status=400, StreamARN=arn, Data=b"x", PartitionKey="k")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": BOB}, "Resource": arn,
        "Action": ["kinesis:PutRecord", "kinesis:DescribeStreamSummary"]}]}
    alice.put_resource_policy(ResourceARN=arn, Policy=json.dumps(policy))
    assert bob.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["StreamName"] == "shared"
    bob.put_record(StreamARN=arn, Data=b"from bob", PartitionKey="k")
    expect_error("AccessDeniedException", bob.list_shards, status=400, StreamARN=arn)
    expect_error("AccessDeniedException", bob.delete_stream, status=400, StreamARN=arn)
    shard = alice.list_shards(StreamName="shared")["Shards"][0]["ShardId"]
    it = alice.get_shard_iterator(StreamName="shared", ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in alice.get_records(ShardIterator=it)["Records"]] == [b"from bob"]
    # The iterator names Alice's stream: Bob may not read through it.
    expect_error("AccessDeniedException", bob.get_records, status=400, ShardIterator=it)
    expect_error("InvalidArgumentException", alice.put_resource_policy, status=400, ResourceARN=arn,
           Policy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "kinesis:*"}]}))

    # A consumer has its own resource policy; the stream's does not cover it.
    consumer = alice.register_stream_consumer(StreamARN=arn, ConsumerName="bobs-reader")["Consumer"]["ConsumerARN"]
    expect_error("AccessDeniedException", bob.describe_stream_consumer, status=400, ConsumerARN=consumer)
    alice.put_resource_policy(ResourceARN=consumer, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": BOB}, "Resource": consumer,
        "Action": ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]}]}))
    described = bob.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]
    assert described["ConsumerName"] == "bobs-reader", described


def firehose_identity_policy():
    reader = client("firehose", "AKIDREADER")
    # Allowed by the reader's policy: the operation runs (and finds nothing).
    expect_error("ResourceNotFoundException", reader.describe_delivery_stream, status=400, DeliveryStreamName="none")
    message = expect_error("AccessDeniedException", reader.put_record, status=400, DeliveryStreamName="none",
                           Record={"Data": b"x"})
    assert "firehose:PutRecord" in message, message


def main():
    sqs_identity_and_queue_policies()
    sns_to_sqs_across_accounts()
    kinesis_resource_policy()
    firehose_identity_policy()
    print("policies: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
