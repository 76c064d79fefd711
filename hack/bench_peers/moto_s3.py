"""An S3 API for benchmarks: moto's server in its own process on loopback, so its CPU is never the measured
process's GIL. Not a stand-in for S3's speed; it makes the client side (boto3 signing, HTTP, the answer) real."""

from __future__ import annotations

import contextlib
import os
import socket

# subprocess runs our own interpreter with a fixed argument list (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
import time
from collections.abc import Iterator

# moto needs some credentials to sign with; they are never checked. The config files are pointed away so boto3's
# default chain stops at the environment (offline, no IMDS).
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def s3_client(endpoint: str):
    """A client configured as the sink's, with moto's credentials given to it (the caller's environment is left
    alone)."""
    import boto3

    from transformer.sink.s3 import _CLIENT_CONFIG

    session = boto3.session.Session(
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
    )
    return session.client("s3", endpoint_url=endpoint, config=_CLIENT_CONFIG)


@contextlib.contextmanager
def s3_server(bucket: str) -> Iterator[str]:
    """A moto S3 server holding an empty `bucket`; yields its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import time; from moto.server import ThreadedMotoServer as S; "
        f"S(ip_address='127.0.0.1', port={port}, verbose=False).start(); time.sleep(1e9)"
    )
    server = subprocess.Popen(  # noqa: S603 # nosec B603
        [sys.executable, "-c", code],
        env={**os.environ, **S3_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # its access log: a line per put
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.1)
        s3_client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.kill()
        server.wait()
