"""One output, one run: the shards of a run must have read the same input and scored with the same booster, and a
shard must not commit beside shards (or objects) of another run, even when they appeared while it was scoring.
Real CLI processes, local files, moto's S3 and azurite."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from batch.inputs import plan_input
from batch.storage import Location, StorageOptions
from tests.batch_export import crm_export, run_batch, start_batch
from tests.support.batch_models import booster_variant
from tests.support.fault_proxy import FaultProxy

N = 1_000


def _swapped(table: pa.Table, a: int = 2, b: int = 494) -> pa.Table:
    """The same leads with rows a and b exchanged: what a re-export sorted a little differently gives. Row groups
    of 250 rows keep their row counts, the file its size, yet rows change shards."""
    order = np.arange(table.num_rows)
    order[a], order[b] = b, a
    return table.take(order)


def _shard(source, out, model, index: int, *extra: str, count: int = 2, env: dict | None = None):
    return run_batch(
        "--input",
        str(source),
        "--output",
        str(out),
        "--model",
        str(model),
        "--shard-count",
        str(count),
        "--shard-index",
        str(index),
        *extra,
        env=env,
    )


def _refused(result, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batch: ") and "Traceback" not in result.stderr, (
        result.stderr
    )
    for needle in needles:
        assert needle in lines[0], lines[0]


# 1. The input's identity


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["rewritten", "rewritten-keeping-mtime"])
def test_a_reexport_with_the_same_sizes_is_another_input(small_artifact, tmp_path, keep_mtime):
    table, _ = crm_export(N, seed=5, planted=False)  # the audit's export: these sizes coincide
    folder = tmp_path / "in"
    folder.mkdir()
    source = folder / "crm.parquet"
    pq.write_table(table, source, row_group_size=250)
    reexport = tmp_path / "reexport.parquet"
    pq.write_table(_swapped(table), reexport, row_group_size=250)
    # The audit's premise: file name, row groups, their row counts and sizes all equal.
    units = [
        (u.key, u.row_group, u.rows, u.size)
        for u in plan_input(Location(str(folder), StorageOptions())).units
    ]

    out = tmp_path / "out"
    assert _shard(folder, out, small_artifact, 0).returncode == 0
    before = source.stat()
    source.write_bytes(reexport.read_bytes())
    if keep_mtime:  # cp -p, rsync -t, an unzip: only the footer's statistics tell the files apart
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    plan = plan_input(Location(str(folder), StorageOptions()))
    assert [(u.key, u.row_group, u.rows, u.size) for u in plan.units] == units

    _refused(_shard(folder, out, small_artifact, 1), f"{out} holds shards scored from a different input")
    assert (
        not (out / "_shards" / "part-00001-of-00002.json").exists() and not (out / "_manifest.json").exists()
    )


def _csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def _same_size_csvs() -> tuple[bytes, bytes]:
    table, _ = crm_export(300, seed=42, planted=False)
    first, second = _csv_bytes(table), _csv_bytes(_swapped(table, 1, 250))
    assert len(first) == len(second) and first != second
    return first, second


def test_an_s3_object_rewritten_with_the_same_size_is_another_input(moto_s3, small_artifact, tmp_path):
    """CSV has no footer: the object's ETag tells the re-export apart."""
    s3 = moto_s3.client()
    for bucket in ("crm", "lake"):
        s3.create_bucket(Bucket=bucket)
    first, second = _same_size_csvs()
    s3.put_object(Bucket="crm", Key="nightly/a.csv", Body=first)
    s3.put_object(Bucket="crm", Key="nightly/b.csv", Body=first)
    env = {"AWS_ENDPOINT_URL": moto_s3.endpoint_url}
    assert _shard("s3://crm/nightly/", "s3://lake/run/", small_artifact, 0, env=env).returncode == 0
    s3.put_object(Bucket="crm", Key="nightly/a.csv", Body=second)
    _refused(
        _shard("s3://crm/nightly/", "s3://lake/run/", small_artifact, 1, env=env),
        "s3://lake/run/ holds shards scored from a different input",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="run/_shards/")["Contents"]]
    assert keys == ["run/_shards/part-00000-of-00002.json"]


@pytest.mark.parametrize("store", ["s3", "blob"])
def test_an_object_is_known_by_its_etag_so_a_rewrite_within_the_same_second_is_another_input(
    store, moto_s3, azurite
):
    """The ETag was looked up under a bytes key pyarrow never uses: every object was known by its modification
    time (one-second resolution) and size, so a same-size re-export within that second passed as the same input."""
    first, second = _same_size_csvs()
    if store == "s3":
        s3 = moto_s3.client()
        s3.create_bucket(Bucket="crm")
        write = lambda body: s3.put_object(Bucket="crm", Key="nightly/a.csv", Body=body)  # noqa: E731
        location = Location("s3://crm/nightly/", StorageOptions(s3_endpoint_url=moto_s3.endpoint_url))
    else:
        crm = azurite.service_with("crm").get_container_client("crm")
        write = lambda body: crm.upload_blob("nightly/a.csv", body, overwrite=True)  # noqa: E731
        location = Location(
            azurite.url("crm", "nightly"), StorageOptions(azure_connection_string=azurite.connection_string)
        )
    write(first)
    before = plan_input(location)
    write(second)
    after = plan_input(location)
    assert [u.identity.split("|")[0][:5] for u in before.units + after.units] == ["etag:", "etag:"]
    assert before.fingerprint != after.fingerprint


def test_a_blob_rewritten_with_the_same_size_is_another_input(azurite, small_artifact):
    service = azurite.service_with("crm", "lake")
    first, second = _same_size_csvs()
    crm = service.get_container_client("crm")
    crm.upload_blob("nightly/a.csv", first)
    crm.upload_blob("nightly/b.csv", first)
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    source, out = azurite.url("crm", "nightly"), azurite.url("lake", "run")
    assert _shard(source, out, small_artifact, 0, env=env).returncode == 0
    crm.upload_blob("nightly/a.csv", second, overwrite=True)
    _refused(
        _shard(source, out, small_artifact, 1, env=env), f"{out} holds shards scored from a different input"
    )


def test_a_retrained_booster_under_the_same_version_label_is_another_model(small_artifact, tmp_path):
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(400, seed=43, planted=False)[0], source, row_group_size=100)
    retrained = booster_variant(small_artifact, tmp_path / "retrained", note="retrained, same version label")
    out = tmp_path / "out"
    assert _shard(source, out, small_artifact, 0).returncode == 0
    result = _shard(source, out, retrained, 1)
    _refused(result, "holds shards scored by model", "(booster sha256 ")
    shards = json.loads((out / "_shards" / "part-00000-of-00002.json").read_text())
    assert shards["model_sha256"] in (small_artifact / "model-card.yaml").read_text()
    assert not (out / "_shards" / "part-00001-of-00002.json").exists()


# 2. Checked again just before the commit, and after every put


def _popen_shard(source: Path, out: Path, model: Path, work: Path, *extra: str) -> subprocess.Popen:
    return start_batch(
        "--input", str(source), "--output", str(out), "--model", str(model), "--work-dir", str(work), *extra
    )  # fmt: skip


def _wait_until_scoring(child: subprocess.Popen, work: Path) -> None:
    """Until the shard's scores file exists in its work folder: past every start-up check, not committed."""
    deadline = time.monotonic() + 120
    while not list(work.glob("batch-*/scores.parquet")):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_shard_of_another_run_committed_while_this_one_scored_stops_its_commit(small_artifact, tmp_path):
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(200_000, seed=44, planted=False)[0], source, row_group_size=50_000)
    out, work = tmp_path / "out", tmp_path / "work"
    child = _popen_shard(
        source, out, small_artifact, work, "--shard-count", "2", "--shard-index", "1", "--window-rows", "200"
    )
    _wait_until_scoring(child, work)
    child.send_signal(signal.SIGSTOP)  # held mid-scoring, its start-up checks passed over an empty output
    try:
        other = _shard(source, out, small_artifact, 0, "--reasons", "1")  # another run's shard 0
        assert other.returncode == 0, other.stderr
    finally:
        child.send_signal(signal.SIGCONT)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 2, stderr
    assert stderr.strip() == (
        f"batch: {out} holds shards scored with --reasons 1, this run has --reasons 0 (committed while this shard "
        "was scoring; nothing of it is written): use a new output folder"
    )
    assert json.loads(stdout.splitlines()[-1])["event"] == "shard_failed"
    assert sorted(p.name for p in (out / "scores").iterdir()) == ["part-00000-of-00002.parquet"]
    assert (
        not (out / "_shards" / "part-00001-of-00002.json").exists() and not (out / "_manifest.json").exists()
    )


def test_a_put_that_finds_another_runs_object_fails_the_shard(moto_s3, small_artifact, tmp_path):
    """Another run puts the same key between this shard's last check and its own put: S3 keeps the first object
    (If-None-Match), the writer returns as if stored, and the shard must notice that the object is not its own."""
    s3 = moto_s3.client()
    for bucket in ("crm", "lake"):
        s3.create_bucket(Bucket=bucket)
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(300, seed=45, planted=False)[0], source)
    other = tmp_path / "other.parquet"
    pq.write_table(crm_export(30, seed=46, planted=False)[0], other)
    foreign = tmp_path / "foreign-out"
    assert (
        run_batch("--input", str(other), "--output", str(foreign), "--model", str(small_artifact)).returncode
        == 0
    )
    scores_key = "run/scores/part-00000-of-00001.parquet"

    def another_run_first(method: str, path: str) -> None:
        if method == "PUT" and path.startswith(f"/lake/{scores_key}"):
            body = (foreign / "scores" / "part-00000-of-00001.parquet").read_bytes()
            s3.put_object(Bucket="lake", Key=scores_key, Body=body)

    with FaultProxy(moto_s3.endpoint_url) as proxy:
        proxy.before = another_run_first
        result = run_batch(
            "--input",
            str(source),
            "--output",
            "s3://lake/run/",
            "--model",
            str(small_artifact),
            env={"AWS_ENDPOINT_URL": proxy.endpoint_url},
        )
    _refused(result, f"s3://lake/run/{scores_key[4:]} already exists and is not this shard's")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="run/").get("Contents", [])]
    assert listed == [scores_key]  # no rejects, no marker, no manifest after it
