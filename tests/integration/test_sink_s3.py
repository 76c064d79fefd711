"""The sink against a real S3 API (moto's server on a free port): layout, contents, outage, crash recovery."""

import io
import os
import re
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import REGISTRY

from tests.sink_servers import (
    FEATURE_NAMES,
    REPO,
    expected_rows,
    free_port,
    sample_batch,
    sorted_rows,
    wait_for,
)
from transformer.sink import SCHEMA_VERSION, ScoreSink, SinkConfig, lake_schema

KEY = re.compile(
    r"^scores/model=lead-scoring/dt=\d{4}-\d\d-\d\d/hour=\d\d/\d{8}T\d{6}Z-[\w.-]+-[0-9a-f]{32}\.parquet$"
)


def sink_config(server, tmp_path, **overrides) -> SinkConfig:
    values = dict(
        uri="s3://lake/scores",
        spool_dir=tmp_path / "spool",
        s3_endpoint_url=server.endpoint_url,
        feature_names=FEATURE_NAMES,
        upload_retry_initial_seconds=0.05,
        upload_retry_max_seconds=0.5,
    )
    values.update(overrides)
    return SinkConfig(**values)


def read_lake(server) -> tuple[list[str], pa.Table]:
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="lake", Prefix="scores/").get("Contents", [])]
    tables = []
    for key in keys:
        body = client.get_object(Bucket="lake", Key=key)["Body"].read()
        assert (
            pq.read_metadata(io.BytesIO(body)).metadata[b"lead_scoring.schema_version"]
            == str(SCHEMA_VERSION).encode()
        )
        tables.append(pq.read_table(io.BytesIO(body)))
    return keys, pa.concat_tables(tables) if tables else lake_schema(FEATURE_NAMES).empty_table()


def failures() -> float:
    return REGISTRY.get_sample_value("lead_scoring_sink_upload_failures_total")


def test_records_arrive_with_schema_and_partitions(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(sink_config(moto_s3, tmp_path, flush_records=25))
    sink.start()
    batches = [sample_batch(10, seed=s) for s in range(6)] + [sample_batch(1, seed=7)]
    for batch in batches:
        assert sink.submit(batch)
    sink.close()
    keys, table = read_lake(moto_s3)
    assert len(keys) >= 2 and all(KEY.match(k) for k in keys)  # 61 records, files of ~25
    assert table.schema.equals(lake_schema(FEATURE_NAMES), check_metadata=False)
    assert sorted_rows(table) == expected_rows(batches)
    assert sink.spool.pending() == []


def test_every_record_arrives_after_an_outage(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    moto_s3.stop()  # storage unreachable from the start
    sink = ScoreSink(sink_config(moto_s3, tmp_path))
    sink.start()
    before = failures()
    batches = [sample_batch(5, seed=s) for s in range(4)]
    for batch in batches[:2]:
        sink.submit(batch)
    sink.flush()
    wait_for(lambda: failures() > before)  # the upload failed and is being retried
    for batch in batches[2:]:  # scoring goes on during the outage
        assert sink.submit(batch)
    sink.flush()
    assert len(sink.spool.pending()) == 2
    moto_s3.start()  # back, same port
    wait_for(lambda: not sink.spool.pending())
    sink.close()
    _, table = read_lake(moto_s3)
    assert sorted_rows(table) == expected_rows(batches)


CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    from pathlib import Path
    from tests.sink_servers import FEATURE_NAMES, sample_batch
    from transformer.sink import ScoreSink, SinkConfig

    spool, dead_port, scored_at = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
    sink = ScoreSink(SinkConfig(uri="s3://lake/scores", spool_dir=Path(spool), feature_names=FEATURE_NAMES,
                                s3_endpoint_url=f"http://127.0.0.1:{dead_port}", flush_records=8))
    sink.start()
    for seed in range(5):
        sink.submit(sample_batch(4, seed=seed, scored_at=scored_at))
    sink.flush()
    print("SPOOLED", flush=True)
    time.sleep(600)
    """
)


def test_spool_of_a_killed_process_is_uploaded_by_the_next(moto_s3, tmp_path):
    from datetime import UTC, datetime

    moto_s3.client().create_bucket(Bucket="lake")
    scored_at = datetime.now(UTC)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "spool"), str(free_port()), scored_at.isoformat()],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout.readline().strip() == "SPOOLED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert list((tmp_path / "spool").rglob("*.parquet"))

    sink = ScoreSink(sink_config(moto_s3, tmp_path))
    sink.start()
    wait_for(lambda: not sink.spool.pending())
    sink.close()
    _, table = read_lake(moto_s3)
    assert sorted_rows(table) == expected_rows(
        [sample_batch(4, seed=s, scored_at=scored_at) for s in range(5)]
    )
