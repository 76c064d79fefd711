"""The data-lake sink: scored requests → Parquet files on a local spool → file | S3 | Azure Blob.

See docs/data-lake.md for the schema, layout and delivery semantics.

The records (`ScoredBatch`, `SinkConfig`) are plain Python; the rest is imported on first use (PEP 562), so that the
scoring path, which imports `ScoredBatch`, does not load pyarrow (~29 MB of RSS, docs/performance.md) into a
transformer that runs without a data lake.
"""

from importlib import import_module

from .records import ScoredBatch, SinkConfig

_LAZY = {
    "SCHEMA_VERSION": ".schema",
    "lake_schema": ".schema",
    "reading_schema": ".schema",
    "lake_partitioning": ".schema",
    "ScoreSink": ".sink",
    "SpoolInUse": ".sink",
    "Writer": ".writers",
    "writer_for_uri": ".writers",
}

__all__ = [
    "SCHEMA_VERSION",
    "ScoreSink",
    "ScoredBatch",
    "SinkConfig",
    "SpoolInUse",
    "Writer",
    "lake_partitioning",
    "lake_schema",
    "reading_schema",
    "writer_for_uri",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
