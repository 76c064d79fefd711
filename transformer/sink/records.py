"""What the transformer hands to the sink, and how the sink is configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transformer.ids import new_scoring_id

if TYPE_CHECKING:  # annotations only: the upload child (writer_process.py) imports this package without numpy
    import numpy as np

ENCODERS = ("thread", "process")
UPLOADERS = ("thread", "process")


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """One scoring request: N leads scored together. One request is one enqueue, never one per lead.

    `scoring_id` is the server's id of this scoring (UUIDv7, returned to the client); `request_id` is the client's
    correlation id (its x-request-id), which clients may reuse: the lake dedupes on (scoring_id, row), never on it.
    """

    request_id: str
    scored_at: datetime  # tz-aware UTC
    model_name: str
    model_version: str
    api_key_name: str  # the key's name, never the key
    protocol: str  # "rest" | "grpc"
    request_form: str  # "v1_instances" | "v2_columns" | "v2_tensor"
    latency_ms: float
    lead_ids: list[str]  # N
    scores: np.ndarray  # float32 [N]
    buckets: np.ndarray  # int [N], 1..5
    tiers: list[str]  # N, "A".."E"
    features: np.ndarray | None  # float32 [N, F] in feature order, NaN = missing
    scoring_id: str = field(default_factory=new_scoring_id)

    def __len__(self) -> int:
        return len(self.lead_ids)


@dataclass(frozen=True)
class SinkConfig:
    uri: str
    spool_dir: Path
    flush_records: int = 5000
    flush_seconds: float = 5.0
    spool_max_bytes: int = 1 << 30
    queue_max_records: int = 200_000
    include_features: bool = True
    feature_names: tuple[str, ...] = ()  # column names for the features, in order
    s3_endpoint_url: str | None = None
    azure_connection_string: str | None = None
    upload_retry_max_seconds: float = 30.0  # backoff cap
    upload_retry_initial_seconds: float = 0.5
    compression: str = "zstd"
    encoder: str = "thread"  # where files are encoded: ENCODERS, transformer/sink/encoder.py
    uploader: str = "thread"  # where files are uploaded: UPLOADERS, transformer/sink/writer_process.py
    # Each accepted batch is also appended to <spool>/journal before the answer (transformer/sink/journal.py).
    journal: bool = True

    def __post_init__(self) -> None:
        if self.flush_records < 1:
            raise ValueError("flush_records must be >= 1")
        if self.flush_seconds <= 0:
            raise ValueError("flush_seconds must be > 0")
        if self.queue_max_records < 1:
            raise ValueError("queue_max_records must be >= 1")
        if self.spool_max_bytes < 1:
            raise ValueError("spool_max_bytes must be >= 1")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.uploader not in UPLOADERS:
            raise ValueError(f"uploader must be one of {', '.join(UPLOADERS)}, got {self.uploader!r}")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names must be unique")
