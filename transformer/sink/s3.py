"""Amazon S3 (or an S3-compatible store through `endpoint_url`). Credentials come from boto3's default chain,
so IRSA / EKS Pod Identity / instance roles work without configuration."""

from __future__ import annotations

from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .layout import join_key
from .locations import s3_location

# Our own loop retries forever with backoff; the SDK only smooths over brief blips.
_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})


class S3Writer:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client=None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, config=_CLIENT_CONFIG)

    @classmethod
    def from_uri(cls, uri: str, endpoint_url: str | None = None) -> S3Writer:
        location = s3_location(uri)
        return cls(location.bucket, location.prefix, endpoint_url=endpoint_url)

    def put(self, key: str, local_path: Path) -> bool:
        with open(local_path, "rb") as body:
            try:
                # If-None-Match makes the write conditional: S3 refuses to replace an existing object.
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=join_key(self.prefix, key),
                    Body=body,
                    ContentType="application/vnd.apache.parquet",
                    IfNoneMatch="*",
                )
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "PreconditionFailed" or status == 412:
                    return False  # stored by an earlier attempt of this same spool file
                raise
        return True
