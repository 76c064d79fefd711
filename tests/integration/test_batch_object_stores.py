"""`python -m batch` from and to real object stores on loopback: moto's S3 server (the model too, through
kserve-storage) and azurite. Sharded, so every pod's reads of footers and row groups go over the wire."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq

from contract.model_card import load_card
from tests.batch_export import BAD_ROWS, PLANTED, crm_export, run_batch

N = 1_500


def _parquet_bytes(table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=400)
    return sink.getvalue()


def _two_files():
    first, x1 = crm_export(N, seed=21)
    second, x2 = crm_export(N, seed=22, planted=False, first_id=N)
    return first, second


def _check_outputs(read, list_keys, card) -> None:
    keys = list_keys()
    assert sorted(k for k in keys if k.startswith("scores/")) == [
        f"scores/part-0000{i}-of-00002.parquet" for i in (0, 1)
    ]
    scores = [pq.read_table(io.BytesIO(read(k))) for k in keys if k.startswith("scores/")]
    ids = [i for t in scores for i in t.column("lead_id").to_pylist()]
    assert len(ids) == len(set(ids)) == 2 * N - len(BAD_ROWS)
    rejects = [
        r for k in keys if k.startswith("rejects/") for r in pq.read_table(io.BytesIO(read(k))).to_pylist()
    ]
    assert sorted((r["row"], r["field"], r["rule"]) for r in rejects) == sorted(
        (r, f, rule) for r, f, rule, _ in PLANTED
    )
    assert {r["source"] for r in rejects} == {"exports/crm-1.parquet"}
    manifest = json.loads(read("_manifest.json"))
    assert manifest["rows_read"] == 2 * N and manifest["rows_rejected"] == len(BAD_ROWS)
    assert manifest["model_version"] == card.version
    assert all(s.column("model_version").to_pylist()[0] == card.version for s in scores)
    tiers = np.unique([t for s in scores for t in s.column("tier").to_pylist()], return_counts=True)
    assert manifest["tiers"] == {t: int(c) for t, c in zip(*tiers, strict=True)}


def test_s3_in_s3_out_model_from_s3(moto_s3, small_artifact):
    s3 = moto_s3.client()
    for bucket in ("crm", "lake", "models"):
        s3.create_bucket(Bucket=bucket)
    for path in small_artifact.iterdir():
        s3.upload_file(str(path), "models", f"lead-scoring/v1/{path.name}")
    first, second = _two_files()
    s3.put_object(Bucket="crm", Key="nightly/exports/crm-1.parquet", Body=_parquet_bytes(first))
    s3.put_object(Bucket="crm", Key="nightly/exports/crm-2.parquet", Body=_parquet_bytes(second))
    s3.put_object(Bucket="crm", Key="nightly/exports/_SUCCESS", Body=b"")  # a Spark marker: not input

    env = {"AWS_ENDPOINT_URL": moto_s3.endpoint_url}
    for index in (1, 0):
        result = run_batch(
            "--input",
            "s3://crm/nightly",
            "--output",
            "s3://lake/batch/run-1",
            "--model",
            "s3://models/lead-scoring/v1/",
            "--shard-count",
            "2",
            "--shard-index",
            str(index),
            env=env,
        )
        assert result.returncode == 0, result.stderr

    def read(key: str) -> bytes:
        return s3.get_object(Bucket="lake", Key=f"batch/run-1/{key}")["Body"].read()

    def list_keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket="lake", Prefix="batch/run-1/")["Contents"]
        return [o["Key"][len("batch/run-1/") :] for o in listed]

    _check_outputs(read, list_keys, load_card(small_artifact))


def test_azure_blob_in_and_out(azurite, small_artifact):
    service = azurite.service_with("crm", "lake")
    first, second = _two_files()
    crm = service.get_container_client("crm")
    crm.upload_blob("nightly/exports/crm-1.parquet", _parquet_bytes(first))
    crm.upload_blob("nightly/exports/crm-2.parquet", _parquet_bytes(second))

    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    for index in (0, 1):
        result = run_batch(
            "--input",
            azurite.url("crm", "nightly"),
            "--output",
            azurite.url("lake", "batch/run-1"),
            "--model",
            str(small_artifact),
            "--shard-count",
            "2",
            "--shard-index",
            str(index),
            env=env,
        )
        assert result.returncode == 0, result.stderr

    lake = service.get_container_client("lake")

    def read(key: str) -> bytes:
        return lake.download_blob(f"batch/run-1/{key}").readall()

    def list_keys() -> list[str]:
        return [b.name[len("batch/run-1/") :] for b in lake.list_blobs(name_starts_with="batch/run-1/")]

    _check_outputs(read, list_keys, load_card(small_artifact))


def test_an_output_bucket_that_does_not_exist_is_a_clear_error(moto_s3, small_artifact, tmp_path):
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="crm")
    first, _ = _two_files()
    s3.put_object(Bucket="crm", Key="exports/crm-1.parquet", Body=_parquet_bytes(first))
    result = run_batch(
        "--input",
        "s3://crm/exports/",
        "--output",
        "s3://no-such-bucket/batch/",
        "--model",
        str(small_artifact),
        env={"AWS_ENDPOINT_URL": moto_s3.endpoint_url},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "batch: cannot write s3://no-such-bucket/batch/scores/part-00000-of-00001.parquet"
    )
