"""The file:// backend end to end with the worker threads, read back as a Hive-partitioned dataset."""

import pyarrow.dataset as ds

from tests.sink_servers import FEATURE_NAMES, expected_rows, sample_batch, sorted_rows
from transformer.sink import ScoreSink, SinkConfig


def test_lake_reads_back_as_a_hive_partitioned_dataset(tmp_path):
    sink = ScoreSink(
        SinkConfig(uri=f"file://{tmp_path / 'lake'}", spool_dir=tmp_path / "spool", feature_names=FEATURE_NAMES,
                   flush_records=40)
    )
    sink.start()
    batches = [sample_batch(1, seed=s) for s in range(50)] + [sample_batch(100, seed=99)]
    for batch in batches:
        assert sink.submit(batch)
    sink.close()
    dataset = ds.dataset(tmp_path / "lake", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert set(table.column("model").to_pylist()) == {"lead-scoring"}
    assert len(list((tmp_path / "lake").rglob("*.parquet"))) >= 2
    rows = [{k: v for k, v in r.items() if k not in ("model", "dt", "hour")} for r in sorted_rows(table)]
    assert rows == expected_rows(batches)
    assert not list((tmp_path / "lake").rglob("*.tmp"))
