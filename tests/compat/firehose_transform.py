#!/usr/bin/env python3
"""Firehose data transformation through a Lambda-style processor served over HTTP on
loopback: Ok records are delivered transformed, Dropped ones vanish, ProcessingFailed ones
land under the error prefix as processing-failed; AppendDelimiterToRecord follows.

Usage: SLUICE_ENDPOINT=… SLUICE_BUCKET_ROOT=… FUNCTION_PORT=… python3 tests/compat/firehose_transform.py
(Sluice must run with --lambda-url arn:aws:lambda:us-east-1:000000000000:function:upper=http://127.0.0.1:$FUNCTION_PORT/)
"""
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

fh = boto3.client("firehose", endpoint_url=os.environ["SLUICE_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
ROOT = os.environ["SLUICE_BUCKET_ROOT"]
ROLE = "arn:aws:iam::000000000000:role/firehose"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:upper"


class Function(BaseHTTPRequestHandler):
    events = []

    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Function.events.append(event)
        out = []
        for r in event["records"]:
            data = base64.b64decode(r["data"]).decode()
            if "drop" in data:
                out.append({"recordId": r["recordId"], "result": "Dropped", "data": r["data"]})
            elif "fail" in data:
                out.append({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]})
            else:
                out.append({"recordId": r["recordId"], "result": "Ok", "data": base64.b64encode(data.upper().encode()).decode(),
                            "metadata": {"partitionKeys": {"first": data[:1]}}})
        body = json.dumps({"records": out}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def files(prefix):
    base = os.path.join(ROOT, "lake", prefix)
    out = []
    for dirpath, _, names in os.walk(base):
        out += [open(os.path.join(dirpath, n), "rb").read() for n in names if not n.startswith(".")]
    return out


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["FUNCTION_PORT"])), Function)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fh.create_delivery_stream(
        DeliveryStreamName="transformed",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "out/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "ProcessingConfiguration": {"Enabled": True, "Processors": [
                {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": ARN}]},
                {"Type": "AppendDelimiterToRecord", "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}]},
            ]},
        },
    )
    fh.put_record_batch(DeliveryStreamName="transformed", Records=[{"Data": d} for d in [b"hello", b"please drop", b"world", b"fail me"]])
    deadline = time.time() + 20
    while time.time() < deadline and not (files("out") and files("processing-failed")):
        time.sleep(0.1)
    assert b"".join(files("out")) == b"HELLO\nWORLD\n", files("out")
    failed = [json.loads(line) for blob in files("processing-failed") for line in blob.splitlines()]
    assert [base64.b64decode(f["rawData"]) for f in failed] == [b"fail me"], failed
    assert failed[0]["errorCode"] == "Lambda.ProcessingFailedStatus"
    event = Function.events[0]
    assert event["deliveryStreamArn"].endswith("deliverystream/transformed") and event["region"] == "us-east-1"
    assert all({"recordId", "approximateArrivalTimestamp", "data"} <= set(r) for r in event["records"])
    # Dynamic partitioning by the keys the function returns.
    fh.create_delivery_stream(DeliveryStreamName="by-letter", ExtendedS3DestinationConfiguration={
        "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "Prefix": "letters/first=!{partitionKeyFromLambda:first}/",
        "ErrorOutputPrefix": "letters-errors/", "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 1},
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {"Enabled": True, "Processors": [
            {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": ARN}]}]}})
    fh.put_record_batch(DeliveryStreamName="by-letter", Records=[{"Data": d} for d in [b"hello", b"world", b"hat"]])
    deadline = time.time() + 20
    while time.time() < deadline and not (files("letters/first=h") and files("letters/first=w")):
        time.sleep(0.1)
    assert files("letters/first=h") == [b"HELLOHAT"], files("letters")
    assert files("letters/first=w") == [b"WORLD"], files("letters")
    try:
        fh.create_delivery_stream(DeliveryStreamName="unmapped", ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::lake", "ProcessingConfiguration": {"Enabled": True, "Processors": [
                {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": ARN + "-other"}]}]}})
        raise AssertionError("an unmapped Lambda ARN is refused")
    except fh.exceptions.InvalidArgumentException:
        pass
    server.shutdown()
    print("Firehose transformation: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
