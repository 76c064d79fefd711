"""Prometheus collectors of the sink, on the default registry (rendered by the transformer's /metrics)."""

from prometheus_client import Counter, Gauge

QUEUE_DEPTH = Gauge(
    "lead_scoring_sink_queue_depth", "Scored records waiting in memory, not yet on the spool."
)
RECORDS_WRITTEN = Counter(
    "lead_scoring_sink_records_written_total", "Scored records uploaded to the data lake backend."
)
BYTES_WRITTEN = Counter(
    "lead_scoring_sink_bytes_written_total", "Parquet bytes uploaded to the data lake backend."
)
UPLOAD_FAILURES = Counter(
    "lead_scoring_sink_upload_failures_total", "Failed upload attempts (each is retried with backoff)."
)
QUARANTINED_FILES = Counter(
    "lead_scoring_sink_quarantined_files_total",
    "Spool files that failed the integrity check before upload, moved to <spool>/quarantine instead of the lake.",
)
SPOOL_BYTES = Gauge(
    "lead_scoring_sink_spool_bytes", "Bytes of Parquet files on the local spool, awaiting upload."
)
OLDEST_UNSTORED_AGE = Gauge(
    "lead_scoring_sink_oldest_unstored_age_seconds",
    "Age (now - scored_at) of the oldest record not yet in the backend; 0 when nothing is waiting.",
)
DROPPED_RECORDS = Counter(
    "lead_scoring_sink_dropped_records_total",
    "Scored records lost before reaching the data lake, by reason (see docs/data-lake.md).",
    ["reason"],
)
# queue_full: the in-memory bound; spool_full: the spool's byte budget; disk_full: ENOSPC/EDQUOT while spooling;
# disk_error: any other OS error while spooling (EIO, EROFS …); build_error: the records could not be encoded;
# spool_file_lost: a spool file vanished before it was uploaded; closed: submitted once close() had begun.
DROP_REASONS = (
    "queue_full",
    "spool_full",
    "disk_full",
    "disk_error",
    "build_error",
    "spool_file_lost",
    "closed",
)
for _reason in DROP_REASONS:
    DROPPED_RECORDS.labels(reason=_reason)  # so the series exist at 0 before the first drop
