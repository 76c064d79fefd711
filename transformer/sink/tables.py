"""What a sink records: the table a batch becomes, where its files go, and what a malformed batch is.

ScoreSink owns the delivery machinery (queue, batcher, spool, uploads, retries, drops) and asks its table for
everything that depends on the rows. `ScoresTable` is the scored-leads table; `transformer/sink/outcomes.py` adds the
outcomes table. Each table brings its own Prometheus collectors, so two sinks in one process never overwrite each
other's gauges.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime
from functools import cached_property
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

from . import sink_metrics
from .journal_codec import decode_scored, encode_scored
from .layout import object_key
from .records import ScoredBatch, SinkConfig
from .schema_facts import MICROS_PER_HOUR, epoch_micros, feature_column_names

if TYPE_CHECKING:
    import pyarrow as pa


class RecordTable(Protocol):
    schema: pa.Schema
    metrics: SimpleNamespace  # the collectors of METRIC_NAMES (transformer/sink/sink_metrics.py for scores)
    records: str  # what a row is, for the log lines: "scored records", "outcomes"
    # Whether a refused submit() loses records. A scoring was answered already, so its refused records are lost
    # (counted as dropped); an outcome call is answered 503 and retried by its caller, so nothing is lost.
    refusal_is_loss: bool

    def check(self, batch) -> None:
        """Raise ValueError for a malformed batch (a caller bug), before anything is queued."""

    def recorded_at(self, batch) -> datetime:
        """The batch's timestamp (tz-aware): it picks the partition and ages the oldest unstored record."""

    def partition_of(self, batch) -> Hashable: ...

    def object_key(self, partition: Hashable) -> str: ...

    def build(self, batches: Sequence) -> pa.Table: ...

    def to_journal(self, batch) -> bytes:
        """The batch as one journal entry (transformer/sink/journal.py); on the request path, so cheap."""

    def from_journal(self, payload: bytes):
        """The batch a journal entry holds."""


METRIC_NAMES = (
    "QUEUE_DEPTH",
    "RECORDS_WRITTEN",
    "BYTES_WRITTEN",
    "UPLOAD_FAILURES",
    "QUARANTINED_FILES",
    "SPOOL_BYTES",
    "OLDEST_UNSTORED_AGE",
    "DROPPED_RECORDS",
    "DROP_REASONS",
)
SCORE_METRICS = SimpleNamespace(**{name: getattr(sink_metrics, name) for name in METRIC_NAMES})


class ScoresTable:
    """Scored leads: one row per lead, partitioned by model and UTC hour of `scored_at` (docs/data-lake.md)."""

    metrics = SCORE_METRICS
    records = "scored records"
    refusal_is_loss = True

    def __init__(self, config: SinkConfig) -> None:
        self.feature_names = tuple(config.feature_names)
        self.include_features = config.include_features
        self._feature_width = len(feature_column_names(self.feature_names)) if self.include_features else 0

    @cached_property
    def schema(self) -> pa.Schema:
        # On first use, not at construction: whatever only checks, partitions and keys batches (the server, when a
        # child process encodes the files) never loads pyarrow.
        from .schema import lake_schema

        return lake_schema(self.feature_names, self.include_features)

    # On the request path once per answer: plain functions, looked up once.
    to_journal = staticmethod(encode_scored)
    from_journal = staticmethod(decode_scored)

    def check(self, batch: ScoredBatch) -> None:
        n = len(batch.lead_ids)
        if not (len(batch.scores) == len(batch.buckets) == len(batch.tiers) == n):
            raise ValueError("lead_ids, scores, buckets and tiers must have the same length")
        if (
            batch.features is not None
            and self._feature_width
            and batch.features.shape != (n, self._feature_width)
        ):
            raise ValueError(
                f"features must have shape ({n}, {self._feature_width}), got {batch.features.shape}"
            )
        if batch.scored_at.tzinfo is None:
            raise ValueError("scored_at must be timezone-aware")

    def recorded_at(self, batch: ScoredBatch) -> datetime:
        return batch.scored_at

    def partition_of(self, batch: ScoredBatch) -> tuple[str, int]:
        return batch.model_name, epoch_micros(batch.scored_at) // MICROS_PER_HOUR

    def object_key(self, partition: tuple[str, int]) -> str:
        return object_key(*partition)

    def build(self, batches: Sequence[ScoredBatch]) -> pa.Table:
        from .schema import build_table

        return build_table(batches, self.schema)
