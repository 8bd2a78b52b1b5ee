"""boto3 clients for one region, pointed at the sandbox when an endpoint is configured."""
from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

from conf.settings import AwsSettings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def client(service: str, region: str, aws: AwsSettings) -> Any:
    kwargs: dict[str, Any] = {"region_name": region, "config": _RETRIES}
    if aws.endpoint:
        kwargs["endpoint_url"] = aws.endpoint
    if aws.access_key_id:
        kwargs["aws_access_key_id"] = aws.access_key_id
        kwargs["aws_secret_access_key"] = aws.secret_access_key
    return boto3.client(service, **kwargs)


def export_credentials_for_jvm(aws: AwsSettings) -> None:
    """The Java SDKs (Iceberg's DynamoDB/S3 clients) use the default credential chain: on AWS the
    application's role; locally the sandbox keys, handed over through the environment before the
    JVM starts. Locally the Kinesis emulator speaks JSON, not CBOR, so CBOR is turned off."""
    if aws.access_key_id:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", aws.access_key_id)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", aws.secret_access_key or "")
    if aws.endpoint:
        opts = os.environ.get("JVM_ARGS", "")
        if "aws.cborEnabled" not in opts:
            os.environ["JVM_ARGS"] = (opts + " -Daws.cborEnabled=false").strip()
        os.environ.setdefault("AWS_CBOR_DISABLE", "true")
