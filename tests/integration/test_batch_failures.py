"""How `python -m batch` fails, end to end: a storage or network failure exits 1 (the Job retries it), what the
operator must fix exits 2 (it does not); always one line on stderr and one `shard_failed` line on stdout, never a
traceback, never a secret of a URI. Real processes against moto's S3 and azurite, with tests/support/fault_proxy.py
in front of them where a store must answer 503 or 403."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from botocore.config import Config

from tests.batch_export import crm_export, run_batch, start_batch, write_csv
from tests.sink_servers import free_port
from tests.support.batch_models import artifact_tarball, booster_variant
from tests.support.fault_proxy import FaultProxy

SECRET = "c2VjcmV0LXNpZ25hdHVyZQ"


def _run(source, out, model, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_batch("--input", str(source), "--output", str(out), "--model", str(model), *extra, env=env)


def _failed(result, code: int, *needles: str) -> dict:
    """Exit `code`, one `batch: …` line on stderr holding the needles, and the shard_failed line (returned)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batch: "), result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["event"] == "shard_failed" and event["exit_code"] == code
    assert event["error"] == lines[0].removeprefix("batch: ")
    return event


def _s3_with_export(moto_s3, rows: int = 400, row_group: int = 100):
    s3 = moto_s3.client()
    for bucket in ("crm", "lake", "models"):
        s3.create_bucket(Bucket=bucket)
    sink = pa.BufferOutputStream()
    pq.write_table(crm_export(rows, seed=51, planted=False)[0], sink, row_group_size=row_group)
    s3.put_object(Bucket="crm", Key="nightly/crm.parquet", Body=sink.getvalue().to_pybytes())
    return s3


# 3. Transient failures exit 1, the operator's exit 2


def _run_through_faults(moto_s3, model, fault):
    """The export of s3://crm/nightly/ scored into s3://lake/run/ with every S3 call going through a proxy that
    answers `fault(method, path)` (an HTTP status) instead of moto when it is not None."""
    _s3_with_export(moto_s3)
    with FaultProxy(moto_s3.endpoint_url) as proxy:
        proxy.fault = fault
        result = _run(
            "s3://crm/nightly/", "s3://lake/run/", model, env={"AWS_ENDPOINT_URL": proxy.endpoint_url}
        )
    return result, proxy


@pytest.mark.parametrize("status, code", [(503, 1), (500, 1), (403, 2)])
def test_a_failed_put_exits_by_what_failed(moto_s3, small_artifact, status, code):
    result, proxy = _run_through_faults(
        moto_s3, small_artifact, lambda method, path: status if method == "PUT" else None
    )
    _failed(result, code, "cannot write s3://lake/run/scores/part-00000-of-00001.parquet")
    assert proxy.faults and all(method == "PUT" for method, _, _ in proxy.faults)


@pytest.mark.parametrize("status, code", [(503, 1), (403, 2)])
def test_reading_the_output_exits_by_what_failed(moto_s3, small_artifact, status, code):
    result, _ = _run_through_faults(
        moto_s3, small_artifact, lambda method, path: status if path.startswith("/lake") else None
    )
    _failed(result, code, "cannot read the output s3://lake/run/")


def test_an_input_store_failing_mid_run_exits_1(moto_s3, small_artifact):
    """The audit's case: the store goes away after planning, while the shard reads its row groups."""
    _s3_with_export(moto_s3)
    planned = threading.Event()

    def after_planning(method: str, path: str) -> int | None:
        if path.startswith("/lake"):
            planned.set()  # the output is checked after the plan is made
        return 503 if planned.is_set() and path.startswith("/crm") else None

    with FaultProxy(moto_s3.endpoint_url) as proxy:
        proxy.fault = after_planning
        result = _run(
            "s3://crm/nightly/",
            "s3://lake/run/",
            small_artifact,
            env={"AWS_ENDPOINT_URL": proxy.endpoint_url},
        )
    _failed(result, 1, "cannot read s3://crm/nightly/crm.parquet (crm.parquet#rg0)")


def test_azure_input_unavailable_exits_1_and_refused_exits_2(azurite, small_artifact, tmp_path):
    service = BlobServiceClient.from_connection_string(azurite.connection_string, api_version="2025-11-05")
    service.create_container("crm")
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(50, seed=52, planted=False)[0], source)
    service.get_container_client("crm").upload_blob("nightly/crm.parquet", source.read_bytes())
    out = tmp_path / "out"
    with FaultProxy(f"http://127.0.0.1:{azurite.port}") as proxy:
        proxy.fault = lambda method, path: 503 if "crm.parquet" in path else None
        connection = azurite.connection_string.replace(str(azurite.port), str(proxy.port))
        url = azurite.url("crm", "nightly").replace(str(azurite.port), str(proxy.port))
        result = _run(url, out, small_artifact, env={"AZURE_STORAGE_CONNECTION_STRING": connection})
    _failed(result, 1, "cannot read", "crm.parquet", "503")
    wrong_key = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=Xby8")
    result = _run(
        azurite.url("crm", "nightly"), out, small_artifact, env={"AZURE_STORAGE_CONNECTION_STRING": wrong_key}
    )
    _failed(result, 2, "cannot", "403")
    assert not out.exists()


def test_a_model_download_exits_1_when_the_store_is_down_and_2_when_the_model_is_missing(
    moto_s3, small_artifact, tmp_path
):
    s3 = _s3_with_export(moto_s3)
    for path in small_artifact.iterdir():
        s3.upload_file(str(path), "models", f"lead-scoring/v1/{path.name}")
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(20, seed=53, planted=False)[0], source)
    down = _run(
        source,
        tmp_path / "a",
        "s3://models/lead-scoring/v1/",
        env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
    )
    _failed(down, 1, "cannot load the model from s3://models/lead-scoring/v1/", "EndpointConnectionError")
    with FaultProxy(moto_s3.endpoint_url) as proxy:
        proxy.fault = lambda method, path: 503
        busy = _run(
            source,
            tmp_path / "b",
            "s3://models/lead-scoring/v1/",
            env={"AWS_ENDPOINT_URL": proxy.endpoint_url},
        )
    _failed(busy, 1, "S3 error [503]")
    missing = _run(
        source, tmp_path / "c", "s3://models/lead-scoring/v9/", env={"AWS_ENDPOINT_URL": moto_s3.endpoint_url}
    )
    _failed(missing, 2, "No model found")


# 4. Scores are probabilities


def test_a_booster_that_outputs_margins_is_refused_at_load(small_artifact, tmp_path):
    margins = booster_variant(small_artifact, tmp_path / "logitraw", params={"objective": "binary:logitraw"})
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(50, seed=54, planted=False)[0], source)
    out = tmp_path / "out"
    _failed(
        _run(source, out, margins),
        2,
        f"cannot load the model from {margins}: the booster's objective is binary:logitraw, not binary:logistic",
    )
    assert not out.exists()


# 5. No secret of a URI in stderr, logs or the manifest


def _presigned(moto_s3, key: str) -> str:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_s3.endpoint_url,
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    url = client.generate_presigned_url("get_object", Params={"Bucket": "models", "Key": key}, ExpiresIn=600)
    assert "X-Amz-Signature=" in url
    return url


def test_a_signed_model_url_is_never_shown(moto_s3, small_artifact, tmp_path):
    s3 = _s3_with_export(moto_s3)
    tarball = artifact_tarball(small_artifact, tmp_path / "model.tar.gz")
    s3.upload_file(str(tarball), "models", "v1/model.tar.gz", ExtraArgs={"ContentType": "application/x-gzip"})
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(40, seed=55, planted=False)[0], source)

    signed = _presigned(moto_s3, "v1/model.tar.gz")
    signature = signed.split("X-Amz-Signature=")[1].split("&")[0]
    out = tmp_path / "out"
    ok = _run(source, out, signed)
    assert ok.returncode == 0, ok.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["model"] == signed.split("?")[0] + "?REDACTED"
    run_done = json.loads(ok.stdout.strip().splitlines()[-1])
    assert run_done["event"] == "run_done" and run_done["model"] == manifest["model"]
    for text in (ok.stdout, ok.stderr, (out / "_manifest.json").read_text()):
        assert signature not in text and "X-Amz-Credential" not in text

    missing = _presigned(moto_s3, "v2/model.tar.gz")
    failed = _run(source, tmp_path / "out2", missing)
    event = _failed(failed, 2, "cannot load the model from", "?REDACTED", "not found")
    for text in (failed.stdout, failed.stderr, event["error"]):
        assert missing.split("X-Amz-Signature=")[1] not in text and "X-Amz-Credential" not in text


def test_a_sas_token_and_a_password_in_the_input_are_never_shown(azurite, small_artifact, tmp_path):
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    sas = azurite.url("missing", "nightly") + f"?sv=2025-11-05&sp=rl&sig={SECRET}"
    result = _run(sas, tmp_path / "out", small_artifact, env=env)
    _failed(result, 2, "input", "?REDACTED")
    assert SECRET not in result.stderr + result.stdout
    userinfo = f"s3://reader:{SECRET}@crm/nightly/"
    result = _run(userinfo, tmp_path / "out", small_artifact)
    _failed(result, 2, "s3://REDACTED@crm/nightly/: credentials do not belong in the URI")
    assert SECRET not in result.stderr + result.stdout


def test_a_single_files_sas_token_is_not_stored_in_the_rejects(azurite, small_artifact, tmp_path):
    """The rejects' `source` of a single-file input was the URL's last segment, query string and all."""
    crm = azurite.service_with("crm").get_container_client("crm")
    table, planted = crm_export(80, seed=57, planted=True)
    write_csv(table, tmp_path / "export.csv")
    crm.upload_blob("sas/export.csv", (tmp_path / "export.csv").read_bytes())
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    sas = azurite.url("crm", "sas/export.csv") + f"?sv=2025-11-05&sp=rl&sig={SECRET}"
    out = tmp_path / "out"
    result = _run(sas, out, small_artifact, env=env)
    assert result.returncode == 0, result.stderr
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert rejects and {r["source"] for r in rejects} == {"export.csv"}
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "where, said",
    [
        ("input", "is not an Azure Blob URL"),  # https://example.com/…: arrow would read example.blob.core…
        ("input-presigned-s3", "is not an Azure Blob URL"),
        ("input-container", "no Azure credential"),
        ("output", "no Azure credential"),
    ],
)
def test_an_azure_url_without_a_credential_or_not_azure_at_all_is_one_line_and_exit_2(
    where, said, small_artifact, tmp_path
):
    """pyarrow's Azure client aborted the process from C++ when its credential chain found nothing (exit 134, no
    shard_failed line), and took any https URL for a blob account; on the output side it was exit 1 (retried)."""
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(20, seed=58, planted=False)[0], source)
    uris = {
        "input": ("https://example.com/exports/x.csv", tmp_path / "out"),
        "input-presigned-s3": (
            f"https://crm.s3.amazonaws.com/x.csv?X-Amz-Signature={SECRET}",
            tmp_path / "out",
        ),
        "input-container": ("https://acct.blob.core.windows.net/crm", tmp_path / "out"),
        "output": (source, "https://acct.blob.core.windows.net/lake/batch"),
    }
    source_uri, out = uris[where]
    # No credential anywhere: no connection string, no environment credential, an Azure CLI that is not logged in.
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": "",
        "AZURE_CLIENT_ID": "",
        "AZURE_CONFIG_DIR": str(tmp_path / "az"),
    }
    result = _run(source_uri, out, small_artifact, env=env)
    event = _failed(result, 2, said)
    assert said in event["error"] and SECRET not in result.stderr + result.stdout


def test_an_s3_endpoint_without_a_scheme_is_a_setting_to_fix_not_a_retry(small_artifact, tmp_path):
    """`AWS_ENDPOINT_URL=localhost:5055` reached Arrow, whose "Invalid S3 connection scheme" was an unexpected
    error: exit 1, which the Job retries."""
    result = _run(
        "s3://crm/nightly/", tmp_path / "out", small_artifact, env={"AWS_ENDPOINT_URL": "localhost:5055"}
    )
    _failed(result, 2, "S3 endpoint 'localhost:5055'", "must be http(s)://host[:port]")


# 7. A CSV column of text stops every shard before any commits


def test_a_text_column_in_another_shards_csv_stops_this_shard_before_it_writes(small_artifact, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    table, _ = crm_export(60, seed=56, planted=False)
    write_csv(table, folder / "a.csv")
    texts = pa.array(["software"] * table.num_rows)
    write_csv(table.set_column(table.schema.get_field_index("industry"), "industry", texts), folder / "b.csv")
    out = tmp_path / "out"
    # Shard 0 reads a.csv only; b.csv is shard 1's.
    result = _run(folder, out, small_artifact, "--shard-count", "2", "--shard-index", "0")
    _failed(result, 2, f"{folder}/b.csv: column industry holds text ('software'")
    assert not out.exists()


# 8. What the operator must fix: one line, exit 2


def test_a_broken_model_card_is_one_line(small_artifact, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(small_artifact, model)
    card = model / "model-card.yaml"
    card.write_text(card.read_text().replace("name: lead-scoring", "name: [lead-scoring", 1))
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(20, seed=57, planted=False)[0], source)
    _failed(
        _run(source, tmp_path / "out", model),
        2,
        f"cannot load the model from {model}: model-card.yaml is not valid YAML:",
        "at line ",
    )


def test_a_lead_id_that_is_not_utf8_names_its_file_and_row(small_artifact, tmp_path):
    table, _ = crm_export(30, seed=58, planted=False)
    ids = [i.encode() for i in table.column("lead_id").to_pylist()]
    ids[17] = b"caf\xe9-latin1"  # Latin-1, not UTF-8
    offsets = np.cumsum([0, *map(len, ids)], dtype=np.int32)
    raw = pa.StringArray.from_buffers(len(ids), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(ids)))
    source = tmp_path / "crm.parquet"
    pq.write_table(table.set_column(0, "lead_id", raw), source)
    out = tmp_path / "out"
    _failed(_run(source, out, small_artifact), 2, f"{source}: row 17: lead_id is not valid UTF-8 (byte 0xe9")
    assert not out.exists()


def test_a_malformed_pushgateway_url_is_refused_before_anything_is_read(small_artifact, tmp_path):
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(20, seed=59, planted=False)[0], source)
    out = tmp_path / "out"
    result = _run(source, out, small_artifact, "--pushgateway-url", "http://[bad")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        "batch: --pushgateway-url 'http://REDACTED' is not a URL: Invalid IPv6 URL (python -m batch --help)\n"
    )
    assert not out.exists()


class _RecordingPushgateway(ThreadingHTTPServer):
    """Accepts pushes and records, at each, whether the run's manifest already existed."""

    def __init__(self, manifest: Path):
        self.manifest, self.seen = manifest, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append(outer.manifest.exists())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)


def test_metrics_are_pushed_after_the_manifest_is_written(small_artifact, tmp_path):
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(20, seed=60, planted=False)[0], source)
    out = tmp_path / "out"
    gateway = _RecordingPushgateway(out / "_manifest.json")
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        result = _run(
            source, out, small_artifact, "--pushgateway-url", f"http://127.0.0.1:{gateway.server_port}"
        )
    finally:
        gateway.shutdown()
        gateway.server_close()
    assert result.returncode == 0, result.stderr
    assert gateway.seen == [True]


# 9. Upper-case .CSV.GZ


def test_an_upper_case_csv_gz_is_decompressed(small_artifact, tmp_path):
    table, _ = crm_export(80, seed=61, planted=False)
    plain = tmp_path / "crm.csv"
    write_csv(table, plain)
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "CRM-EXPORT.CSV.GZ").write_bytes(gzip.compress(plain.read_bytes()))
    assert _run(plain, tmp_path / "plain", small_artifact).returncode == 0
    result = _run(folder, tmp_path / "upper", small_artifact)
    assert result.returncode == 0, result.stderr
    expected = pq.read_table(tmp_path / "plain" / "scores").sort_by("lead_id")
    got = pq.read_table(tmp_path / "upper" / "scores").sort_by("lead_id")
    assert got.column("lead_id").equals(expected.column("lead_id")) and got.num_rows == 80
    assert got.column("score").equals(expected.column("score"))


# 10. SIGTERM


def test_sigterm_is_reported_like_every_failure(small_artifact, tmp_path):
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(200_000, seed=62, planted=False)[0], source, row_group_size=50_000)
    out, work = tmp_path / "out", tmp_path / "work"
    child = start_batch(
        "--input", str(source), "--output", str(out), "--model", str(small_artifact),
        "--work-dir", str(work), "--window-rows", "200",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(work.glob("batch-*/scores.parquet")):  # scoring: past the checks, nothing committed
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 143
    message = (
        "terminated (SIGTERM) before the commit: nothing of this shard was written; a re-run scores it again"
    )
    assert stderr == f"batch: {message}\n"
    event = json.loads(stdout.strip().splitlines()[-1])
    assert event == {
        "event": "shard_failed",
        "shard": 0,
        "shard_count": 1,
        "exit_code": 143,
        "error": message,
    }
    assert not out.exists() and not list(work.iterdir())  # the scratch files are gone too
