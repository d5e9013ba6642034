#!/usr/bin/env python3
"""Firehose HTTP endpoint destination against an HTTPS endpoint on loopback: the request
format (headers, requestId, base64 records, access key, common attributes), a failed
attempt retried, and an endpoint that never succeeds, whose records land under the S3
error prefix once RetryOptions.DurationInSeconds has passed.

Usage: SLUICE_ENDPOINT=… SLUICE_BUCKET_ROOT=… TLS_CERT=… TLS_KEY=… python3 tests/compat/firehose_http.py
(Sluice must trust TLS_CERT: --extra-ca-cert.)
"""
import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

KW = dict(endpoint_url=os.environ["SLUICE_ENDPOINT"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
fh = boto3.client("firehose", **KW)
ROOT = os.environ["SLUICE_BUCKET_ROOT"]
ROLE = "arn:aws:iam::000000000000:role/firehose"


class Endpoint(BaseHTTPRequestHandler):
    calls = {}
    delivered = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.headers["X-Amz-Firehose-Protocol-Version"] == "1.0"
        assert self.headers["X-Amz-Firehose-Request-Id"] == body["requestId"]
        assert self.headers["X-Amz-Firehose-Source-Arn"].startswith("arn:aws:firehose:us-east-1:000000000000:deliverystream/")
        assert self.headers["X-Amz-Firehose-Access-Key"] == "secret-key"
        assert json.loads(self.headers["X-Amz-Firehose-Common-Attributes"]) == {"commonAttributes": {"env": "test"}}
        Endpoint.calls[self.path] = Endpoint.calls.get(self.path, 0) + 1
        if self.path == "/down" or Endpoint.calls[self.path] == 1:
            self.send_response(500)
            self.end_headers()
            return
        Endpoint.delivered.extend(base64.b64decode(r["data"]) for r in body["records"])
        answer = json.dumps({"requestId": body["requestId"], "timestamp": int(time.time() * 1000)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def create(name, path, retry_seconds):
    fh.create_delivery_stream(
        DeliveryStreamName=name,
        HttpEndpointDestinationConfiguration={
            "EndpointConfiguration": {"Url": f"{BASE}{path}", "Name": "test", "AccessKey": "secret-key"},
            "RequestConfiguration": {"ContentEncoding": "NONE", "CommonAttributes": [{"AttributeName": "env", "AttributeValue": "test"}]},
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "RetryOptions": {"DurationInSeconds": retry_seconds},
            "RoleARN": ROLE,
            "S3BackupMode": "FailedDataOnly",
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::http-backup"},
        },
    )


def main():
    global BASE
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    BASE = f"https://127.0.0.1:{server.server_address[1]}"

    create("to-http", "/flaky", 60)
    desc = fh.describe_delivery_stream(DeliveryStreamName="to-http")["DeliveryStreamDescription"]["Destinations"][0]
    http = desc["HttpEndpointDestinationDescription"]
    assert http["EndpointConfiguration"]["Url"] == f"{BASE}/flaky" and "AccessKey" not in http["EndpointConfiguration"]
    fh.put_record_batch(DeliveryStreamName="to-http", Records=[{"Data": f"r{i}".encode()} for i in range(3)])
    deadline = time.time() + 30
    while time.time() < deadline and len(Endpoint.delivered) < 3:
        time.sleep(0.1)
    assert sorted(Endpoint.delivered) == [b"r0", b"r1", b"r2"], Endpoint.delivered
    assert Endpoint.calls["/flaky"] >= 2, "the failed attempt was retried"

    create("to-down", "/down", 1)
    fh.put_record(DeliveryStreamName="to-down", Record={"Data": b"lost?"})
    deadline = time.time() + 30
    failed = []
    base = os.path.join(ROOT, "http-backup", "http-endpoint-failed")
    while time.time() < deadline and not failed:
        for dirpath, _, files in os.walk(base):
            failed += [os.path.join(dirpath, f) for f in files if not f.startswith(".")]
        time.sleep(0.2)
    assert failed, "failed records went to the S3 error prefix"
    record = json.loads(open(failed[0]).read().splitlines()[0])
    assert base64.b64decode(record["rawData"]) == b"lost?" and record["attemptsMade"] >= 1, record
    server.shutdown()
    print("Firehose HTTP endpoint destination: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
