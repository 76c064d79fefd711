"""The versioned Parquet schema of the data lake, and the column-wise table builder.

Bump SCHEMA_VERSION (schema_facts.py) on any change; only add columns (readers of older files see them as null).
docs/data-lake.md documents every column.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .arrow import pa
from .columns import TIMESTAMP_UTC, repeated, timestamps_utc
from .records import ScoredBatch
from .schema_facts import (  # noqa: F401 - re-exported: the schema's facts, for readers of this module
    DEFAULT_FEATURE_COUNT,
    FEATURE_COLUMN_PREFIX,
    METADATA_FEATURES_INCLUDED,
    METADATA_SCHEMA_VERSION,
    MICROS_PER_HOUR,
    SCHEMA_VERSION,
    epoch_micros,
    feature_column_names,
)

# (name, type, nullable) of the fixed columns, in file order. The dedupe key is (scoring_id, row); request_id is the
# client's correlation id, which a client may reuse across requests.
BASE_COLUMNS: tuple[tuple[str, pa.DataType, bool], ...] = (
    ("scoring_id", pa.string(), False),
    ("request_id", pa.string(), False),
    ("row", pa.int32(), False),
    ("lead_id", pa.string(), False),
    ("scored_at", TIMESTAMP_UTC, False),
    ("model_name", pa.string(), False),
    ("model_version", pa.string(), False),
    ("score", pa.float32(), False),
    ("bucket", pa.int8(), False),
    ("tier", pa.string(), False),
    ("api_key_name", pa.string(), False),
    ("protocol", pa.string(), False),
    ("request_form", pa.string(), False),
    ("latency_ms", pa.float32(), False),
    ("schema_version", pa.int16(), False),
)


def lake_schema(feature_names: Sequence[str] = (), include_features: bool = True) -> pa.Schema:
    fields = [pa.field(name, dtype, nullable=nullable) for name, dtype, nullable in BASE_COLUMNS]
    if include_features:
        # Nullable: a missing feature (NaN on the wire) is stored as null, which SQL engines aggregate correctly.
        fields += [
            pa.field(name, pa.float32(), nullable=True) for name in feature_column_names(feature_names)
        ]
    return pa.schema(
        fields,
        metadata={
            METADATA_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
            METADATA_FEATURES_INCLUDED: b"true" if include_features else b"false",
        },
    )


# The Hive partition columns of an object key (model=<name>/dt=YYYY-MM-DD/hour=HH/...), as strings, the Athena DDL's
# types: `hour` stays "07", not 7.
PARTITION_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("model", pa.string()),
    ("dt", pa.string()),
    ("hour", pa.string()),
)


def reading_schema(feature_names: Sequence[str] = ()) -> pa.Schema:
    """What a reader of the whole lake passes to pyarrow.dataset: every column any version or writer setting has
    written, all nullable, then the partition columns. Without it the dataset takes the schema of the first file it
    lists, so the features vanish when that file was written with --sink_include_features false, and scoring_id
    when it is a version-1 file."""
    written = lake_schema(feature_names, include_features=True)
    return pa.schema(
        [field.with_nullable(True) for field in written] + [pa.field(n, t) for n, t in PARTITION_FIELDS],
        metadata=written.metadata,
    )


def lake_partitioning():
    """The lake's Hive partitioning with PARTITION_FIELDS' types (pyarrow.dataset's `partitioning=`)."""
    import pyarrow.dataset as ds

    return ds.partitioning(pa.schema(list(PARTITION_FIELDS)), flavor="hive")


def build_table(batches: Sequence[ScoredBatch], schema: pa.Schema) -> pa.Table:
    """One row per lead. Per-request values are gathered once per batch and repeated per lead (`columns`)."""
    counts = np.fromiter((len(b.lead_ids) for b in batches), dtype=np.int64, count=len(batches))
    total = int(counts.sum())
    # Repeats are skipped when every batch has exactly one lead.
    repeats = None if total == len(batches) else counts

    def per_request(values: list, dtype: pa.DataType) -> pa.Array:
        return repeated(values, repeats, dtype)

    if repeats is None:
        row = np.zeros(total, dtype=np.int32)
    else:
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        row = (np.arange(total, dtype=np.int64) - starts).astype(np.int32)

    columns: dict[str, pa.Array] = {
        "scoring_id": per_request([b.scoring_id for b in batches], pa.string()),
        "request_id": per_request([b.request_id for b in batches], pa.string()),
        "row": pa.array(row, type=pa.int32()),
        "lead_id": pa.array(
            list(itertools.chain.from_iterable(b.lead_ids for b in batches)), type=pa.string()
        ),
        "scored_at": timestamps_utc([epoch_micros(b.scored_at) for b in batches], repeats),
        "model_name": per_request([b.model_name for b in batches], pa.string()),
        "model_version": per_request([b.model_version for b in batches], pa.string()),
        "score": pa.array(np.concatenate([b.scores for b in batches]).astype(np.float32, copy=False)),
        "bucket": pa.array(np.concatenate([b.buckets for b in batches]).astype(np.int8, copy=False)),
        "tier": pa.array(list(itertools.chain.from_iterable(b.tiers for b in batches)), type=pa.string()),
        "api_key_name": per_request([b.api_key_name for b in batches], pa.string()),
        "protocol": per_request([b.protocol for b in batches], pa.string()),
        "request_form": per_request([b.request_form for b in batches], pa.string()),
        "latency_ms": per_request([b.latency_ms for b in batches], pa.float32()),
        "schema_version": pa.array(np.full(total, SCHEMA_VERSION, dtype=np.int16)),
    }
    feature_fields = schema.names[len(BASE_COLUMNS) :]
    if feature_fields:
        width = len(feature_fields)
        matrix = np.concatenate(
            [
                np.full((len(b.lead_ids), width), np.nan, dtype=np.float32)
                if b.features is None
                else b.features
                for b in batches
            ]
        ).astype(np.float32, copy=False)
        # Gaps are found in one pass and masks built only for the columns that have them. The NaN test of the whole
        # transposed matrix plus an `any` per column cost 0.2–0.4 ms more a file, and each numpy call in this background
        # thread is a GIL handoff with the event loop (docs/performance.md, sixth pass; hack/bench_gil.py).
        has_gaps = np.isnan(matrix).any(axis=0).tolist()
        by_feature = np.ascontiguousarray(matrix.T)  # one contiguous vector per column
        for j, name in enumerate(feature_fields):
            column = by_feature[j]
            columns[name] = pa.array(column, mask=np.isnan(column) if has_gaps[j] else None)
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
