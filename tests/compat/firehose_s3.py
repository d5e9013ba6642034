#!/usr/bin/env python3
"""Firehose into a real S3-compatible server (moto's, on loopback): objects land with
AWS's key layout and are read back with boto3's S3 client and decompressed.

Usage: SLUICE_ENDPOINT=… S3_ENDPOINT=… python3 tests/compat/firehose_s3.py
(Sluice must run with --s3-endpoint $S3_ENDPOINT.)
"""
import gzip
import os
import sys
import time

import boto3

KW = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], **KW)
fh = boto3.client("firehose", endpoint_url=os.environ["SLUICE_ENDPOINT"], **KW)


def main():
    s3.create_bucket(Bucket="remote-lake")
    fh.create_delivery_stream(
        DeliveryStreamName="to-s3",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::remote-lake",
            "Prefix": "raw/!{timestamp:yyyy}/", "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}, "CompressionFormat": "GZIP"},
    )
    fh.put_record_batch(DeliveryStreamName="to-s3", Records=[{"Data": f"row {i}\n".encode()} for i in range(10)])
    deadline = time.time() + 30
    body = b""
    while time.time() < deadline:
        listing = s3.list_objects_v2(Bucket="remote-lake", Prefix="raw/").get("Contents", [])
        body = b"".join(gzip.decompress(s3.get_object(Bucket="remote-lake", Key=o["Key"])["Body"].read()) for o in listing)
        if body.count(b"\n") >= 10:
            break
        time.sleep(0.2)
    assert sorted(body.splitlines()) == sorted(f"row {i}".encode() for i in range(10)), body
    key = listing[0]["Key"]
    assert key.startswith(f"raw/{time.gmtime().tm_year}/to-s3-1-") and key.endswith(".gz"), key
    print("Firehose to an S3-compatible server: all flows passed")


if __name__ == "__main__":
    sys.exit(main())
