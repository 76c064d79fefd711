"""The outcomes table: what leads became (contract/outcomes.py), recorded with the same delivery as scores.

    <outcomes uri>/dt=YYYY-MM-DD/<YYYYMMDDTHHMMSS>Z-<pod>-<uuid4>.parquet      (dt = UTC date of occurred_at)

`outcome_sink(config)` is a ScoreSink with this table: same queue, spool, fsync, retries, drops and SIGTERM flush,
its own spool directory and its own `lead_scoring_outcomes_sink_*` metrics. docs/model-quality.md documents the
columns; `outcome_id` (a uuid5 of lead_id, outcome, occurred_at) is the dedupe key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
from prometheus_client import Counter, Gauge

from . import sink_metrics
from .arrow import pa
from .columns import TIMESTAMP_UTC, repeated, timestamps_utc
from .journal_codec import decode_outcomes, encode_outcomes
from .layout import unique_file_name
from .records import SinkConfig
from .schema_facts import METADATA_SCHEMA_VERSION, epoch_micros

OUTCOMES_SCHEMA_VERSION = 1
OUTCOME_COLUMNS: tuple[tuple[str, pa.DataType, bool], ...] = (
    ("outcome_id", pa.string(), False),
    ("lead_id", pa.string(), False),
    ("outcome", pa.string(), False),
    ("occurred_at", TIMESTAMP_UTC, False),
    ("deal_value", pa.float64(), True),
    ("scoring_id", pa.string(), True),
    ("request_id", pa.string(), True),
    ("received_at", TIMESTAMP_UTC, False),
    ("source", pa.string(), False),
    ("api_key_name", pa.string(), False),
    ("schema_version", pa.int16(), False),
)


def utc_day(moment: datetime) -> str:
    """The `dt=` partition: the UTC day, always YYYY-MM-DD (strftime's %Y drops the zeros of a year below 1000)."""
    day = moment.astimezone(UTC)
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def outcomes_schema() -> pa.Schema:
    return pa.schema(
        [pa.field(n, t, nullable=nullable) for n, t, nullable in OUTCOME_COLUMNS],
        metadata={METADATA_SCHEMA_VERSION: str(OUTCOMES_SCHEMA_VERSION).encode()},
    )


@dataclass(frozen=True, slots=True)
class OutcomeBatch:
    """Accepted outcomes of one call (or one backfill chunk), all of one UTC day of occurred_at."""

    request_id: str  # the call's correlation id (logs); not stored per row
    received_at: datetime  # tz-aware UTC
    source: str  # "api" | "backfill"
    api_key_name: str  # the key's name, never the key
    lead_ids: list[str]
    outcomes: list[str]
    occurred_at: list[datetime]  # tz-aware
    outcome_ids: list[str]
    deal_values: list[float | None]
    scoring_ids: list[str | None]
    request_ids: list[str | None]  # per outcome: the request id of the scoring it refers to

    def __len__(self) -> int:
        return len(self.lead_ids)


OUTCOME_METRICS = SimpleNamespace(
    QUEUE_DEPTH=Gauge(
        "lead_scoring_outcomes_sink_queue_depth", "Outcomes waiting in memory, not yet on the spool."
    ),
    RECORDS_WRITTEN=Counter(
        "lead_scoring_outcomes_sink_records_written_total", "Outcomes uploaded to the data lake."
    ),
    BYTES_WRITTEN=Counter(
        "lead_scoring_outcomes_sink_bytes_written_total", "Parquet bytes of outcomes uploaded."
    ),
    UPLOAD_FAILURES=Counter(
        "lead_scoring_outcomes_sink_upload_failures_total",
        "Failed upload attempts of outcome files (each is retried with backoff).",
    ),
    QUARANTINED_FILES=Counter(
        "lead_scoring_outcomes_sink_quarantined_files_total",
        "Outcome spool files that failed the integrity check, moved to <spool>/quarantine.",
    ),
    SPOOL_BYTES=Gauge("lead_scoring_outcomes_sink_spool_bytes", "Bytes of outcome files on the spool."),
    OLDEST_UNSTORED_AGE=Gauge(
        "lead_scoring_outcomes_sink_oldest_unstored_age_seconds",
        "Age (now - received_at) of the oldest outcome not yet in the backend.",
    ),
    DROPPED_RECORDS=Counter(
        "lead_scoring_outcomes_sink_dropped_records_total",
        "Outcomes lost before reaching the data lake, by reason (as for scores).",
        ["reason"],
    ),
    DROP_REASONS=sink_metrics.DROP_REASONS,
)
for _reason in OUTCOME_METRICS.DROP_REASONS:
    OUTCOME_METRICS.DROPPED_RECORDS.labels(reason=_reason)  # the series exist at 0 before the first drop


class OutcomesTable:
    metrics = OUTCOME_METRICS
    records = "outcomes"
    refusal_is_loss = False  # the call is answered 503 and retried: a refusal is not a drop

    def __init__(self) -> None:
        self.schema = outcomes_schema()

    def check(self, batch: OutcomeBatch) -> None:
        n = len(batch.lead_ids)
        columns = (
            batch.outcomes,
            batch.occurred_at,
            batch.outcome_ids,
            batch.deal_values,
            batch.scoring_ids,
            batch.request_ids,
        )
        if any(len(c) != n for c in columns):
            raise ValueError("every outcome column must have one value per lead")
        if batch.received_at.tzinfo is None or any(t.tzinfo is None for t in batch.occurred_at):
            raise ValueError("received_at and occurred_at must be timezone-aware")
        if len({utc_day(t) for t in batch.occurred_at}) > 1:
            raise ValueError("one OutcomeBatch holds outcomes of one UTC day (split by day)")

    to_journal = staticmethod(encode_outcomes)
    from_journal = staticmethod(decode_outcomes)

    def recorded_at(self, batch: OutcomeBatch) -> datetime:
        return batch.received_at

    def partition_of(self, batch: OutcomeBatch) -> str:
        return utc_day(batch.occurred_at[0]) if batch.occurred_at else "none"

    def object_key(self, partition: str) -> str:
        return f"dt={partition}/{unique_file_name()}"

    def build(self, batches: Sequence[OutcomeBatch]) -> pa.Table:
        def flat(attr: str) -> list:
            return [v for b in batches for v in getattr(b, attr)]

        counts = np.fromiter((len(b) for b in batches), dtype=np.int64, count=len(batches))
        total = int(counts.sum())
        columns = {
            "outcome_id": pa.array(flat("outcome_ids"), pa.string()),
            "lead_id": pa.array(flat("lead_ids"), pa.string()),
            "outcome": pa.array(flat("outcomes"), pa.string()),
            "occurred_at": timestamps_utc([epoch_micros(t) for t in flat("occurred_at")]),
            "deal_value": pa.array(flat("deal_values"), pa.float64()),
            "scoring_id": pa.array(flat("scoring_ids"), pa.string()),
            "request_id": pa.array(flat("request_ids"), pa.string()),
            "received_at": timestamps_utc([epoch_micros(b.received_at) for b in batches], counts),
            "source": repeated([b.source for b in batches], counts, pa.string()),
            "api_key_name": repeated([b.api_key_name for b in batches], counts, pa.string()),
            "schema_version": pa.array(np.full(total, OUTCOMES_SCHEMA_VERSION, dtype=np.int16)),
        }
        return pa.Table.from_arrays([columns[n] for n in self.schema.names], schema=self.schema)


def outcome_sink(config: SinkConfig, writer=None):
    """A sink for outcomes: `config.uri` is the outcomes table's URI, `config.spool_dir` its own spool."""
    from .sink import ScoreSink

    return ScoreSink(config, writer=writer, table=OutcomesTable())
