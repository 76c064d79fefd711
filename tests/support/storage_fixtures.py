"""Fixtures for real storage servers (azurite, moto S3), registered for every test by `pytest_plugins` in
tests/conftest.py. Function-scoped so a test may stop and restart its server without disturbing others."""

from __future__ import annotations

import pytest

from tests.sink_servers import AzuriteServer, MotoS3Server


@pytest.fixture
def azurite(tmp_path):
    server = AzuriteServer(tmp_path / "azurite").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_s3(monkeypatch):
    # moto accepts any credentials; set them so boto3's default chain never looks further (offline, no IMDS).
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    server = MotoS3Server().start()
    server.reset()
    try:
        yield server
    finally:
        server.stop()
