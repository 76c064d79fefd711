"""The data-lake sink: scored requests → Parquet files on a local spool → file | S3 | Azure Blob.

See docs/data-lake.md for the schema, layout and delivery semantics.
"""

from .records import ScoredBatch, SinkConfig
from .schema import SCHEMA_VERSION, lake_schema
from .sink import ScoreSink, SpoolInUse
from .writers import Writer, writer_for_uri

__all__ = [
    "SCHEMA_VERSION",
    "ScoreSink",
    "ScoredBatch",
    "SinkConfig",
    "SpoolInUse",
    "Writer",
    "lake_schema",
    "writer_for_uri",
]
