"""docs/data-lake.md's pyarrow read works on a lake that mixes writer settings and schema versions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tests.sink_servers import FEATURE_NAMES, sample_batch
from transformer.sink import ScoreSink, SinkConfig, lake_partitioning, reading_schema

EARLY = datetime(2026, 11, 20, 7, 15, tzinfo=UTC)  # hour=07: listed before hour=08
LATE = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)


def write(tmp_path, name: str, batches, include_features: bool) -> None:
    sink = ScoreSink(
        SinkConfig(
            uri=(tmp_path / "lake").as_uri(),
            spool_dir=tmp_path / f"spool-{name}",
            feature_names=FEATURE_NAMES,
            include_features=include_features,
        )
    )
    sink.start()
    for batch in batches:
        assert sink.submit(batch)
    sink.close(grace_seconds=10)


def test_the_documented_read_keeps_features_partitions_and_old_files(tmp_path):
    # First in listing order: a file without features (--sink_include_features false) ...
    write(
        tmp_path,
        "plain",
        [sample_batch(2, scored_at=EARLY, seed=1, with_features=False)],
        include_features=False,
    )
    # ... then files with them, and a version-1 file (no scoring_id column) as an old writer left it.
    with_features = sample_batch(3, scored_at=LATE, seed=2)
    write(tmp_path, "full", [with_features], include_features=True)
    (written,) = (tmp_path / "lake").rglob("hour=08/*.parquet")
    v1 = pq.read_table(written).drop_columns(["scoring_id"])
    pq.write_table(
        v1, written.parent / "20261120T081600Z-old-writer-0123456789abcdef0123456789abcdef.parquet"
    )

    lake = ds.dataset(
        tmp_path / "lake",
        format="parquet",
        schema=reading_schema(FEATURE_NAMES),
        partitioning=lake_partitioning(),
    )
    table = lake.to_table(filter=(ds.field("dt") == "2026-11-20") & (ds.field("hour") == "08"))
    assert table.num_rows == 6 and set(table["model"].to_pylist()) == {"lead-scoring"}
    column = f"f_{FEATURE_NAMES[0]}"
    np.testing.assert_array_equal(
        np.array(
            table.filter(pa.compute.is_valid(table["scoring_id"]))[column].to_pylist(), dtype=np.float32
        ),
        with_features.features[:, 0],
    )
    assert table["scoring_id"].null_count == 3, "the version-1 rows read with a null scoring_id"
    everything = lake.to_table()
    assert everything.num_rows == 8
    early = everything.filter(pa.compute.equal(everything["hour"], "07"))
    assert early.num_rows == 2 and early[column].null_count == 2, (
        "no features stored: null, not a lost column"
    )
