"""The model artifact comes down from a real object store (moto's S3 server on loopback) through kserve-storage in a
child process: the files arrive, the caller's interpreter never imports kserve-storage or the cloud SDKs, and a
failure is one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contract.artifact_fetch import ArtifactFetchError, fetch_artifact
from contract.model_card import CARD_FILE, load_card
from hack.stack import ROOT

# Run in a fresh interpreter: the test process itself may have imported anything by now.
_PROBE = """
import json, sys
from contract.artifact_fetch import fetch_artifact
folder = fetch_artifact(sys.argv[1], into=None)
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"kserve_storage", "boto3", "botocore", "azure", "google"})
print(json.dumps({"folder": str(folder), "loaded": loaded}))
"""


@pytest.fixture
def models_bucket(moto_s3, small_artifact, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint_url)  # kserve-storage's own variable
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="models")
    for path in small_artifact.iterdir():
        s3.upload_file(str(path), "models", f"lead-scoring/v1/{path.name}")
    return "s3://models/lead-scoring/v1/"


def test_an_s3_artifact_arrives_whole_and_the_caller_never_loads_the_storage_sdks(
    models_bucket, small_artifact
):
    import json

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, models_bucket],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    folder = Path(result["folder"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in small_artifact.iterdir())
    for path in small_artifact.iterdir():
        assert (folder / path.name).read_bytes() == path.read_bytes()
    assert load_card(folder).version == load_card(small_artifact).version  # the booster matches its card


def test_into_names_the_target_folder(models_bucket, tmp_path):
    folder = fetch_artifact(models_bucket, into=tmp_path / "card")
    assert (folder / CARD_FILE).is_file()
    assert folder.resolve().is_relative_to((tmp_path / "card").resolve())


def test_a_missing_artifact_is_one_clear_line_naming_the_uri(models_bucket):
    uri = "s3://models/lead-scoring/no-such-version/"
    with pytest.raises(ArtifactFetchError) as caught:
        fetch_artifact(uri)
    message = str(caught.value)
    assert message.startswith(f"cannot fetch {uri}: ")
    assert "\n" not in message and "Traceback" not in message
    assert "RuntimeError" in message  # kserve-storage's own account, carried over


def test_a_bucket_that_does_not_exist_is_a_clear_error(models_bucket):
    with pytest.raises(ArtifactFetchError, match=r"^cannot fetch s3://no-such-bucket/x/: \w+"):
        fetch_artifact("s3://no-such-bucket/x/")


def test_a_download_that_hangs_is_stopped(tmp_path, monkeypatch):
    # A loopback socket that accepts and never answers: the child waits; the parent's timeout ends it.
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(ArtifactFetchError, match=r"no answer within 3 s"):
            fetch_artifact("s3://models/v1/", into=tmp_path / "card", timeout=3)


def test_a_local_folder_is_used_where_it_is(small_artifact):
    assert fetch_artifact(str(small_artifact)) == small_artifact
    assert fetch_artifact(small_artifact.as_uri()) == small_artifact
