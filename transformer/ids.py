"""Scoring ids the server owns: UUIDv7 (RFC 9562), time-ordered and unique without coordination.

Python 3.11's `uuid` has no uuid7 (3.14 adds it). The layout: 48-bit Unix milliseconds, version 7, 12 bits that count
up within one millisecond (RFC 9562 §6.2 method 1, so ids from one process sort in issue order), variant 10, 62
random bits. Ids from different replicas never collide in practice (62 random bits per millisecond and counter).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(now_ns: int | None = None) -> uuid.UUID:
    global _last_ms, _counter
    ms = (now_ns if now_ns is not None else time.time_ns()) // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms, _counter = (
                ms,
                int.from_bytes(os.urandom(2), "big") & 0x3FF,
            )  # random start, room to count up
        else:
            # Same millisecond (or the clock stepped back): keep the order by counting; on overflow borrow the next ms.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
            ms = _last_ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


def new_scoring_id() -> str:
    """The canonical 36-character text form, as returned to clients and stored in the lake."""
    return str(uuid7())


def uuid7_millis(value: str | uuid.UUID) -> int:
    """Unix milliseconds a UUIDv7 was made at."""
    return (value if isinstance(value, uuid.UUID) else uuid.UUID(value)).int >> 80
