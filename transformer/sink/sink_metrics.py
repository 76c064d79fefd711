"""Prometheus collectors of the sink, on the default registry (rendered by the transformer's /metrics)."""

from prometheus_client import Counter, Gauge

QUEUE_DEPTH = Gauge("lead_scoring_sink_queue_depth", "Scored records waiting in memory, not yet on the spool.")
RECORDS_WRITTEN = Counter(
    "lead_scoring_sink_records_written_total", "Scored records uploaded to the data lake backend."
)
BYTES_WRITTEN = Counter("lead_scoring_sink_bytes_written_total", "Parquet bytes uploaded to the data lake backend.")
UPLOAD_FAILURES = Counter(
    "lead_scoring_sink_upload_failures_total", "Failed upload attempts (each is retried with backoff)."
)
SPOOL_BYTES = Gauge("lead_scoring_sink_spool_bytes", "Bytes of Parquet files on the local spool, awaiting upload.")
OLDEST_UNSTORED_AGE = Gauge(
    "lead_scoring_sink_oldest_unstored_age_seconds",
    "Age (now - scored_at) of the oldest record not yet in the backend; 0 when nothing is waiting.",
)
DROPPED_RECORDS = Counter(
    "lead_scoring_sink_dropped_records_total",
    "Scored records the sink dropped to protect scoring (queue full) or the disk (spool full).",
    ["reason"],
)
DROP_REASONS = ("queue_full", "spool_full")
for _reason in DROP_REASONS:
    DROPPED_RECORDS.labels(reason=_reason)  # so the series exist at 0 before the first drop
