"""Where files land: Hive-style partitions by model and UTC hour, unique names, never overwriting."""

import re
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from tests.sink_servers import FEATURE_NAMES, expected_rows, sample_batch, sorted_rows
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink.layout import object_key, partition_path, unique_file_name
from transformer.sink.local import LocalFolderWriter
from transformer.sink.schema import MICROS_PER_HOUR, epoch_micros

NAME = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9._-]+-[0-9a-f]{32}\.parquet$")


def hour_of(moment: datetime) -> int:
    return epoch_micros(moment) // MICROS_PER_HOUR


def test_partition_path_is_hive_style_in_utc():
    moment = datetime(2025, 3, 9, 7, 59, 59, tzinfo=UTC)
    assert partition_path("lead-scoring", hour_of(moment)) == "model=lead-scoring/dt=2025-03-09/hour=07"
    # a model name cannot invent extra partition levels
    assert partition_path("a/b=c", hour_of(moment)).startswith("model=a%2Fb%3Dc/dt=2025-03-09/")


def test_file_names_are_unique_and_well_formed(monkeypatch):
    names = {unique_file_name() for _ in range(5000)}
    assert len(names) == 5000
    assert all(NAME.match(n) for n in names)
    monkeypatch.setenv("HOSTNAME", "lead-scoring-transformer-7d9f/x")
    name = unique_file_name(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert name.startswith("20250102T030405Z-lead-scoring-transformer-7d9f-x-")
    assert object_key("m", hour_of(datetime(2025, 1, 2, 3, tzinfo=UTC))).startswith(
        "model=m/dt=2025-01-02/hour=03/"
    )


def test_records_are_split_by_model_and_hour(tmp_path):
    lake = tmp_path / "lake"
    hour = datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)
    batches = [
        sample_batch(2, scored_at=hour, seed=1),
        sample_batch(3, scored_at=hour + timedelta(microseconds=1), seed=2),  # next day, hour 00
        sample_batch(1, scored_at=hour, model_name="challenger", seed=3),
    ]
    sink = ScoreSink(
        SinkConfig(uri=f"file://{lake}", spool_dir=tmp_path / "spool", feature_names=FEATURE_NAMES)
    )
    for batch in batches:
        assert sink.submit(batch)
    sink.close()
    files = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "model=challenger/dt=2025-06-30/hour=23",
        "model=lead-scoring/dt=2025-06-30/hour=23",
        "model=lead-scoring/dt=2025-07-01/hour=00",
    ]
    assert all(NAME.match(f.rsplit("/", 1)[1]) for f in files)
    table = pq.read_table(lake, partitioning="hive")
    rows = [{k: v for k, v in r.items() if k not in ("model", "dt", "hour")} for r in table.to_pylist()]
    assert sorted(rows, key=lambda r: (r["scoring_id"], r["row"])) == expected_rows(batches)
    assert sorted_rows(table)[0]["dt"] in ("2025-06-30", "2025-07-01")


def test_local_writer_never_overwrites(tmp_path):
    writer = LocalFolderWriter(tmp_path / "lake")
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    writer.put("model=m/dt=2025-01-01/hour=00/a.parquet", first)
    writer.put("model=m/dt=2025-01-01/hour=00/a.parquet", second)  # a retry after a crash: already stored
    assert (tmp_path / "lake/model=m/dt=2025-01-01/hour=00/a.parquet").read_bytes() == b"first"
    # Nothing else: no temp file left in the (empty) staging folder, which readers skip as a dot-folder.
    assert sorted(p.relative_to(tmp_path / "lake").as_posix() for p in (tmp_path / "lake").rglob("*")) == [
        ".incoming",
        "model=m",
        "model=m/dt=2025-01-01",
        "model=m/dt=2025-01-01/hour=00",
        "model=m/dt=2025-01-01/hour=00/a.parquet",
    ]
