"""How batch words and classifies its failures: which storage errors a retry may cure (exit 1) and which the
operator must fix (exit 2), URIs shown without their secrets, SIGTERM's message by how far the commit got, the Azure
URL rule shared with the sink, a manifest refused over markers of two runs, and scores that are no probabilities."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from batch.errors import BatchError, OutputConflict, Terminated
from batch.failures import is_transient, model_fetch_is_transient, storage_failure
from batch.output import marker_key, write_manifest_if_complete
from batch.redaction import redact_text, redact_uri
from batch.scorer import ModelError, Scorer
from batch.storage import Location, StorageOptions, azure_account_and_root
from predictor.synthetic import sample_features
from transformer.sink.locations import blob_location


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


def _azure_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    return error


# The messages pyarrow 26 gives through tests/support/fault_proxy.py in front of moto and azurite.
ARROW_S3_503 = "When reading information for key 'x/a.parquet' in bucket 'b': AWS Error UNKNOWN (HTTP status 503) during HeadObject operation: No response body."
ARROW_S3_SLOW = "When listing objects under key 'x/_shards/' in bucket 'b': AWS Error SLOW_DOWN during ListObjectsV2 operation: injected 503"
ARROW_S3_DOWN = "When reading information for key 'x/a' in bucket 'b': AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 7, Could not connect to server"
ARROW_S3_403 = "When listing objects under key 'x/_shards/' in bucket 'b': AWS Error ACCESS_DENIED during ListObjectsV2 operation: injected 403"
ARROW_AZ_503 = "GetProperties failed for 'http://h/a/c/x'. Cannot initialise an ObjectInputFile without knowing the file size. Azure Error: [SlowDown] 503 Service Unavailable"
ARROW_AZ_403 = "GetProperties failed for 'http://h/a/c/x'. Azure Error: [AuthorizationFailure] 403 Server failed to authenticate the request."
ARROW_AZ_DOWN = "Check for Hierarchical Namespace support on 'http://h/a/c' failed. Azure Error: [] Fail to get a new connection for: http://h. Could not connect to server"
ARROW_THRIFT = "Couldn't deserialize thrift: TProtocolException: Invalid data"


@pytest.mark.parametrize(
    "error",
    [
        _client_error("SlowDown", 503),
        _client_error("InternalError", 500),
        _client_error("ServiceUnavailable", 503),
        _client_error("Throttling", 400),
        _client_error("RequestTimeout", 400),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset"),
        _azure_error(503),
        _azure_error(500),
        _azure_error(429),
        ConnectionResetError("reset by peer"),
        TimeoutError("timed out"),
        OSError(errno.EIO, "Input/output error"),
        OSError(ARROW_S3_503),
        OSError(ARROW_S3_SLOW),
        OSError(ARROW_S3_DOWN),
        OSError(ARROW_AZ_503),
        OSError(ARROW_AZ_DOWN),
    ],
    ids=repr,
)
def test_network_5xx_and_throttling_are_transient(error):
    assert is_transient(error)
    assert storage_failure("cannot write s3://b/k", error).exit_code == 1


@pytest.mark.parametrize(
    "error",
    [
        _client_error("AccessDenied", 403),
        _client_error("NoSuchBucket", 404),
        _client_error("InvalidAccessKeyId", 403),
        _azure_error(403),
        _azure_error(404),
        _azure_error(409),
        FileNotFoundError(errno.ENOENT, "No such file"),
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(ARROW_S3_403),
        OSError(ARROW_AZ_403),
        OSError(ARROW_THRIFT),
        ValueError("not a storage error"),
    ],
    ids=repr,
)
def test_what_the_operator_must_fix_is_not_transient(error):
    assert not is_transient(error)
    assert storage_failure("cannot read s3://b/k", error).exit_code == 2


@pytest.mark.parametrize(
    "message, transient",
    [
        ('EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:1/models"', True),
        ("RuntimeError: S3 error [503]: Service Unavailable", True),
        ("RuntimeError: S3 error [SlowDown]: Please reduce your request rate", True),
        ("RuntimeError: Failed to connect to HTTP endpoint '127.0.0.1'.", True),
        ("RuntimeError: HTTP request to 'https://h/m.tgz' failed with status code 502.", True),
        ("cannot fetch s3://m/v1: no answer within 600 s", True),
        ("RuntimeError: S3 error [403]: Forbidden", False),
        ("RuntimeError: Failed to fetch model. No model found in nope/.", False),
        ("RuntimeError: S3 resource 'nobucket' not found.", False),
        ("RuntimeError: HTTP resource not found at 'https://h/m.tgz'.", False),
    ],
)
def test_a_failed_model_download_is_classified_by_its_message(message, transient):
    assert model_fetch_is_transient(message) is transient


@pytest.mark.parametrize(
    "uri, shown",
    [
        (
            "https://lake.s3.amazonaws.com/m/model.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeef",
            "https://lake.s3.amazonaws.com/m/model.tar.gz?REDACTED",
        ),
        (
            "https://acct.blob.core.windows.net/models/v1?sv=2024-11-04&sp=rl&sig=c2VjcmV0",
            "https://acct.blob.core.windows.net/models/v1?REDACTED",
        ),
        ("https://user:hunter2@models.example.com/v1/", "https://REDACTED@models.example.com/v1/"),
        ("s3://lake/batch/2026-12-04/", "s3://lake/batch/2026-12-04/"),
        ("/var/data/exports?odd name", "/var/data/exports?odd name"),
        ("http://[bad/x?sig=1", "http://REDACTED"),
    ],
)
def test_uris_are_shown_without_userinfo_or_query(uri, shown):
    assert redact_uri(uri) == shown


def test_every_uri_in_a_message_is_redacted_and_the_sentence_kept():
    text = (
        "cannot load the model from https://h/m.tgz?X-Amz-Signature=s3cr3t: RuntimeError: HTTP resource not "
        "found at 'https://h/m.tgz?X-Amz-Signature=s3cr3t'. (also s3://k:p@bucket/x)"
    )
    shown = redact_text(text)
    assert "s3cr3t" not in shown and "k:p" not in shown
    assert shown == (
        "cannot load the model from https://h/m.tgz?REDACTED: RuntimeError: HTTP resource not found at "
        "'https://h/m.tgz?REDACTED'. (also s3://REDACTED@bucket/x)"
    )


def test_sigterm_is_worded_by_how_far_the_commit_got():
    stop = Terminated()
    assert "before the commit: nothing of this shard was written" in stop.message
    stop.stored = ["scores/part-00000-of-00002.parquet"]
    assert "during the commit: scores/part-00000-of-00002.parquet stored, the marker not" in stop.message
    stop.committed = True
    assert "after this shard committed" in stop.message
    assert stop.exit_code == 143 and not isinstance(stop, Exception)  # no `except Exception` swallows it


@pytest.mark.parametrize(
    "host, port",
    [("127.0.0.1", 10000), ("localhost", 10000), ("[::1]", 10000), ("192.0.2.2", 10000), ("10.0.0.7", None)],
)
def test_batch_reads_blob_urls_as_the_sink_writes_them(host, port):
    """One rule for path-style (emulator) URLs: the account is the first path segment on any IP or localhost."""
    netloc = f"{host}:{port}" if port else host
    uri = f"http://{netloc}/devstoreaccount1/crm/nightly/2026"
    connection = (
        f"AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://{netloc}/devstoreaccount1;"
    )
    sink = blob_location(uri, connection)
    assert (sink.account_url, sink.container, sink.prefix) == (
        f"http://{netloc}/devstoreaccount1",
        "crm",
        "nightly/2026",
    )
    assert azure_account_and_root(uri, connection) == ("devstoreaccount1", "crm/nightly/2026")
    if ":" not in host:
        assert Location(uri, StorageOptions(azure_connection_string=connection)).root == "crm/nightly/2026"


def test_an_ipv6_blob_endpoint_is_refused_not_a_crash():
    """pyarrow's Azure client aborts the process on an authority like [::1]:10000: batch says so first."""
    connection = (
        "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://[::1]:10000/devstoreaccount1;"
    )
    with pytest.raises(BatchError, match=r"the blob endpoint \[::1\]:10000 is an IPv6 address"):
        Location(
            "http://[::1]:10000/devstoreaccount1/crm", StorageOptions(azure_connection_string=connection)
        )


def test_an_account_host_is_not_path_style(monkeypatch):
    # The credential check is the integration tests' (test_batch_failures.py there); this one is about the path.
    monkeypatch.setattr("batch.storage._check_azure_credential", lambda uri: None)
    uri = "https://acct.blob.core.windows.net/crm/nightly"
    sink = blob_location(uri)
    assert (sink.account_url, sink.container, sink.prefix) == (
        "https://acct.blob.core.windows.net",
        "crm",
        "nightly",
    )
    assert azure_account_and_root(uri, None) == ("acct", "crm/nightly")
    assert Location(uri, StorageOptions()).root == "crm/nightly"


def _marker(shard: int, **changes) -> dict:
    marker = {
        "shard": shard,
        "shard_count": 2,
        "plan": "p1",
        "model_version": "v1",
        "model_sha256": "a" * 64,
        "reasons": 0,
        "units": 1,
        "rows_read": 10,
        "rows_scored": 10,
        "rows_rejected": 0,
        "problems": 0,
        "tiers": {"A": 2, "B": 2, "C": 2, "D": 2, "E": 2},
        "seconds": 0.1,
        "scores": f"scores/part-0000{shard}-of-00002.parquet",
        "rejects": f"rejects/part-0000{shard}-of-00002.parquet",
    }
    return {**marker, **changes}


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"plan": "p2"}, "scored from a different input (plan p2, now p1)"),
        ({"model_sha256": "b" * 64}, "scored by model v1 (booster sha256 bbbbbbbbbbbb…)"),
        ({"model_version": "v2"}, "scored by model v2"),
        ({"reasons": 3}, "scored with --reasons 3, this run has --reasons 0"),
    ],
)
def test_no_manifest_over_markers_of_two_runs(tmp_path, changes, needle):
    out = tmp_path / "out"
    (out / "_shards").mkdir(parents=True)
    (out / marker_key(0, 2)).write_text(json.dumps(_marker(0)))
    (out / marker_key(1, 2)).write_text(json.dumps(_marker(1, **changes)))
    run = {k: _marker(0)[k] for k in ("shard_count", "plan", "model_version", "model_sha256", "reasons")}
    with pytest.raises(OutputConflict) as refused:
        write_manifest_if_complete(Location(str(out), StorageOptions()), run, tmp_path, {})
    assert refused.value.message.startswith(f"{out}/_shards/part-00001-of-00002.json is a shard {needle}")
    assert "no manifest" in refused.value.message and "\n" not in refused.value.message
    assert not (out / "_manifest.json").exists()
    (out / marker_key(1, 2)).write_text(json.dumps(_marker(1)))
    assert (
        write_manifest_if_complete(Location(str(out), StorageOptions()), run, tmp_path, {})["rows_read"] == 20
    )


class _Margins:
    """A booster collaborator that answers what a binary:logitraw booster (or a broken one) would."""

    def __init__(self, value: float):
        self.value = value

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        scores = np.full(len(matrix), 0.5, dtype=np.float32)
        scores[3] = self.value
        return scores


@pytest.mark.parametrize("value", [1.7, -0.2, np.nan, np.inf])
def test_a_score_that_is_no_probability_stops_the_shard(small_artifact, value):
    scorer = Scorer(small_artifact)
    scorer.booster = _Margins(value)
    with pytest.raises(ModelError) as stopped:
        scorer.score(sample_features(10, seed=3), first_row=500, where="s3://crm/x.parquet")
    assert stopped.value.exit_code == 2
    assert stopped.value.message.startswith(
        f"s3://crm/x.parquet: row 503: the booster scored {float(np.float32(value))!r}"
    )
