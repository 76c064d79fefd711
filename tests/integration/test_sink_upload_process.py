"""`--sink_uploader process`: lake files uploaded by a real child process to real stores (moto's S3 server,
azurite). Records arrive as with the server's own uploader thread; a store's refusal is retried as before; the
child's failures — killed, stuck, never started — cost no record: the server uploads meanwhile, and a new child
takes over later. A URI no writer accepts still stops the server at start-up."""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from tests.child_processes import alive, child_running, work_with_a_stuck_child
from tests.sink_servers import FEATURE_NAMES, expected_rows, sample_batch, sorted_rows, wait_for
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink import writer_process as writer_process_module
from transformer.sink.schema import lake_schema


def s3_config(server, tmp_path: Path, **overrides) -> SinkConfig:
    values = dict(
        uri="s3://lake/scores",
        spool_dir=tmp_path / "spool",
        s3_endpoint_url=server.endpoint_url,
        feature_names=FEATURE_NAMES,
        uploader="process",
        upload_retry_initial_seconds=0.05,
        upload_retry_max_seconds=0.5,
    )
    values.update(overrides)
    return SinkConfig(**values)


def s3_rows(server) -> list:
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="lake").get("Contents", [])]
    tables = [pq.read_table(io.BytesIO(client.get_object(Bucket="lake", Key=k)["Body"].read())) for k in keys]
    return sorted_rows(pa.concat_tables(tables) if tables else lake_schema(FEATURE_NAMES).empty_table())


def uploader_child(sink: ScoreSink) -> int:
    return child_running(sink.writer.pid, "transformer.sink.writer_process")


def failures() -> float:
    return REGISTRY.get_sample_value("lead_scoring_sink_upload_failures_total") or 0.0


def spool_and_upload(sink: ScoreSink, *batches) -> None:
    for batch in batches:
        assert sink.submit(batch)
    sink.flush()
    wait_for(lambda: not sink.spool.pending(), timeout=30)


def test_every_record_reaches_s3_through_the_child_and_the_child_ends_with_the_sink(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(s3_config(moto_s3, tmp_path, flush_records=25))
    sink.start()
    assert sink.writer.pid is None  # started by the first put, not with the server
    batches = [sample_batch(10, seed=s) for s in range(6)] + [sample_batch(1, seed=7, with_features=False)]
    spool_and_upload(sink, *batches[:3])
    pid = uploader_child(sink)
    spool_and_upload(sink, *batches[3:])
    assert uploader_child(sink) == pid  # one child made every put
    sink.close(grace_seconds=10)
    assert s3_rows(moto_s3) == expected_rows(batches)
    wait_for(lambda: not alive(pid), timeout=10)


def test_every_record_reaches_azure_blob_through_the_child(azurite, tmp_path):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container("lake")
    sink = ScoreSink(azurite.sink_config(tmp_path, uploader="process"))
    sink.start()
    batches = [sample_batch(4, seed=s) for s in range(3)]
    spool_and_upload(sink, *batches)
    uploader_child(sink)
    sink.close(grace_seconds=10)
    container = service.get_container_client("lake")
    tables = [
        pq.read_table(io.BytesIO(container.download_blob(b.name).readall()))
        for b in container.list_blobs(name_starts_with="scores/")
    ]
    assert sorted_rows(pa.concat_tables(tables)) == expected_rows(batches)


def test_a_refusal_in_the_child_is_retried_by_the_server_until_the_store_accepts(moto_s3, tmp_path, caplog):
    sink = ScoreSink(s3_config(moto_s3, tmp_path))  # no bucket yet: S3 answers NoSuchBucket
    sink.start()
    before = failures()
    batch = sample_batch(5, seed=1)
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        assert sink.submit(batch)
        sink.flush()
        wait_for(lambda: failures() > before, timeout=30)
    refused = [r.getMessage() for r in caplog.records if "upload of" in r.getMessage()]
    assert refused and "NoSuchBucket" in refused[0]  # the child's error, by type and message
    assert "testing" not in " ".join(r.getMessage() for r in caplog.records)  # no credential in any log line
    pid = uploader_child(sink)
    moto_s3.client().create_bucket(Bucket="lake")
    wait_for(lambda: not sink.spool.pending(), timeout=30)
    assert uploader_child(sink) == pid  # a refusal is an answer, not a failed child
    sink.close(grace_seconds=10)
    assert s3_rows(moto_s3) == expected_rows([batch])


def test_a_killed_child_costs_no_record_the_server_uploads_and_a_new_child_takes_over(
    moto_s3, tmp_path, monkeypatch, caplog
):
    moto_s3.client().create_bucket(Bucket="lake")
    restart_after = 1.0
    monkeypatch.setattr(writer_process_module, "RESTART_AFTER_SECONDS", restart_after)
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    sink.start()
    first = sample_batch(5, seed=1)
    spool_and_upload(sink, first)
    pid = uploader_child(sink)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid) or sink.writer.child.process.poll() is not None, timeout=10)
    during = sample_batch(6, seed=2)
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        spool_and_upload(sink, during)  # the dead child's socket fails: the server's own writer puts it
    assert any("upload process failed" in r.getMessage() for r in caplog.records)
    assert sink.writer._fallback is not None and sink.writer.pid is None
    after = sample_batch(7, seed=3)
    wait_for(lambda: sink.writer.child.start(), timeout=10)  # the pause is over: a new child
    spool_and_upload(sink, after)
    assert uploader_child(sink) != pid
    sink.close(grace_seconds=10)
    assert s3_rows(moto_s3) == expected_rows([first, during, after])


def test_a_stuck_child_is_replaced_after_its_timeout_and_its_file_still_arrives(moto_s3, tmp_path, caplog):
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    sink.start()
    first = sample_batch(3, seed=4)
    spool_and_upload(sink, first)
    pid = uploader_child(sink)
    sink.writer.timeout = 1.0
    stuck = sample_batch(4, seed=5)
    work_with_a_stuck_child(pid, caplog, lambda: spool_and_upload(sink, stuck))
    sink.close(grace_seconds=10)
    assert s3_rows(moto_s3) == expected_rows([first, stuck])


def test_a_child_that_cannot_start_leaves_the_server_to_upload(moto_s3, tmp_path, monkeypatch, caplog):
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    sink.start()
    batch = sample_batch(3, seed=7)
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        spool_and_upload(sink, batch)
    assert any("cannot start" in r.getMessage() for r in caplog.records)
    assert sink.writer.pid is None
    sink.close(grace_seconds=10)
    assert s3_rows(moto_s3) == expected_rows([batch])


@pytest.mark.parametrize(
    ("uri", "rule"),
    [
        ("s3:///no-bucket", "S3 URI must be s3://bucket/prefix"),
        ("http://127.0.0.1:10000/devstoreaccount1/lake", "needs a connection string"),
        ("ftp://lake/scores", "unsupported sink URI"),
    ],
)
def test_a_uri_no_writer_accepts_stops_the_sink_at_construction(tmp_path, uri, rule):
    with pytest.raises(ValueError, match=rule):
        ScoreSink(SinkConfig(uri=uri, spool_dir=tmp_path, feature_names=FEATURE_NAMES, uploader="process"))


def test_an_unknown_uploader_is_refused(tmp_path):
    with pytest.raises(ValueError, match="uploader must be one of thread, process"):
        SinkConfig(uri=(tmp_path / "lake").as_uri(), spool_dir=tmp_path, uploader="fork")
