"""Where a file goes in the lake: Hive-style partitions and names unique across replicas and restarts."""

from __future__ import annotations

import os
import re
import socket
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from .schema_facts import MICROS_PER_HOUR

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def partition_path(model_name: str, hour_index: int) -> str:
    """`model=<name>/dt=YYYY-MM-DD/hour=HH` for the UTC hour `hour_index` (hours since the epoch)."""
    start = datetime.fromtimestamp(hour_index * (MICROS_PER_HOUR // 1_000_000), tz=UTC)
    # Percent-encoding keeps a model name with '/' or '=' from inventing partitions; Hive decodes it back.
    return f"model={quote(model_name, safe='')}/dt={start:%Y-%m-%d}/hour={start:%H}"


def replica_name() -> str:
    """The pod name ($HOSTNAME), safe in a file name."""
    return _UNSAFE.sub("-", os.environ.get("HOSTNAME") or socket.gethostname())[:63] or "host"


def unique_file_name(now: datetime | None = None) -> str:
    """`<UTC time>-<replica>-<uuid4>.parquet`: sorts by write time; the uuid4 makes collisions impossible in
    practice across replicas and restarts, so an object is never overwritten by another batch."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%dT%H%M%S}Z-{replica_name()}-{uuid.uuid4().hex}.parquet"


def object_key(model_name: str, hour_index: int, now: datetime | None = None) -> str:
    return f"{partition_path(model_name, hour_index)}/{unique_file_name(now)}"


def join_key(prefix: str, key: str) -> str:
    """The object name in a bucket or container: the backend's prefix, then the key."""
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key
