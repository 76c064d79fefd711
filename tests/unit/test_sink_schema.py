"""The lake's Parquet schema: documented columns and types, schema version in the file, contents column-wise."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.sink_servers import FEATURE_NAMES, expected_rows, sample_batch, sorted_rows
from transformer.sink import SCHEMA_VERSION, lake_schema
from transformer.sink.schema import build_table
from transformer.sink.spool import Spool

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-lake.md"


def documented_columns() -> dict[str, str]:
    """`| column | type | ... |` rows of the schema table in docs/data-lake.md."""
    rows = re.findall(r"^\|\s*`([a-z_<>]+)`\s*\|\s*`([^`]+)`\s*\|", DOC.read_text(), flags=re.M)
    return dict(rows)


def test_every_column_is_documented_with_its_type():
    schema = lake_schema(FEATURE_NAMES)
    documented = documented_columns()
    for field in schema:
        name = "f_<feature>" if field.name.startswith("f_") else field.name
        assert documented.get(name) == str(field.type), field.name
    assert set(documented) == {"f_<feature>"} | {f.name for f in schema if not f.name.startswith("f_")}


def test_schema_columns_and_version_metadata():
    schema = lake_schema(FEATURE_NAMES)
    assert schema.names[:3] == ["scoring_id", "request_id", "row"]  # the dedupe key (scoring_id, row) first
    assert schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("score").type == pa.float32()
    assert schema.field("bucket").type == pa.int8()
    assert [n for n in schema.names if n.startswith("f_")] == [f"f_{n}" for n in FEATURE_NAMES]
    assert schema.metadata[b"lead_scoring.schema_version"] == str(SCHEMA_VERSION).encode()
    assert not any(n.startswith("f_") for n in lake_schema(FEATURE_NAMES, include_features=False).names)


def test_table_holds_every_lead_with_request_fields_repeated(tmp_path):
    batches = [sample_batch(1, seed=1), sample_batch(3, seed=2), sample_batch(2, seed=3, with_features=False)]
    table = build_table(batches, lake_schema(FEATURE_NAMES))
    assert table.num_rows == 6
    assert sorted_rows(table) == expected_rows(batches)
    # NaN on the wire is stored as null: one missing value in each of the first two batches, the third has none
    assert table.column("f_feature_03").null_count == 1 + 1 + 2
    assert table.column("f_feature_04").null_count == 2


def test_features_can_be_left_out():
    batches = [sample_batch(2, seed=4)]
    table = build_table(batches, lake_schema(FEATURE_NAMES, include_features=False))
    assert sorted_rows(table) == expected_rows(batches, include_features=False)


def test_spooled_file_carries_the_schema_version(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 30)
    table = build_table([sample_batch(5, seed=5)], lake_schema(FEATURE_NAMES))
    entry = spool.write("model=m/dt=2025-01-01/hour=00/x.parquet", table, datetime.now(UTC).timestamp())
    metadata = pq.read_metadata(entry.path).metadata
    assert metadata[b"lead_scoring.schema_version"] == str(SCHEMA_VERSION).encode()
    assert pq.read_table(entry.path).schema.equals(lake_schema(FEATURE_NAMES), check_metadata=False)
    assert entry.records == 5
