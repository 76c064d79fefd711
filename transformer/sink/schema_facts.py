"""The lake schema's plain facts: versions, metadata keys, feature column names, the time unit and the hour.

Kept apart from `schema.py`, which builds Arrow schemas and tables, so that the server's side of the sink (submit
checks, partitions, object keys, the spool's bookkeeping) can run without pyarrow: with `--sink_encoder process`
only the encoder's child process loads it (~30 MB of RSS, docs/performance.md, eighth pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

SCHEMA_VERSION = 2  # 2: scoring_id (the server's id of a scoring) is the dedupe key with row
METADATA_SCHEMA_VERSION = b"lead_scoring.schema_version"
METADATA_FEATURES_INCLUDED = b"lead_scoring.features_included"
FEATURE_COLUMN_PREFIX = "f_"
DEFAULT_FEATURE_COUNT = 50

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
MICROS_PER_HOUR = 3_600_000_000


def feature_column_names(feature_names: Sequence[str]) -> list[str]:
    """Feature columns carry a prefix so a feature can never collide with a fixed column."""
    names = feature_names or [f"{i:02d}" for i in range(DEFAULT_FEATURE_COUNT)]
    return [FEATURE_COLUMN_PREFIX + name for name in names]


def epoch_micros(moment: datetime) -> int:
    """Exact integer microseconds (float timestamps lose the last digit)."""
    return (moment - EPOCH) // _ONE_MICROSECOND


def from_epoch_micros(micros: int) -> datetime:
    """The tz-aware UTC moment `epoch_micros` came from, exactly."""
    return EPOCH + timedelta(microseconds=micros)
