"""Arrow columns for the lake tables, built from numpy and bytes alone.

A request's own values (its ids, key name, protocol, time …) are stored once per lead, so they are repeated by the
request's lead count. `Array.take` or `cast` would do it in one line, but either one imports `pyarrow.compute`,
which registers every kernel it has: ~9 MB of RSS for one repeat and one reinterpretation (issue 17). numpy does
the repeat, the string column is laid out as Arrow's offsets + bytes buffers directly, and timestamps are int64
microseconds viewed as the timestamp type (the same bits).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .arrow import pa

TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")
_INT32_MAX = np.iinfo(np.int32).max


def repeated(values: Sequence, counts: np.ndarray | None, dtype: pa.DataType) -> pa.Array:
    """values[i] repeated counts[i] times (counts None: once each). Strings and numbers of a numpy-backed type."""
    if pa.types.is_string(dtype):
        return _repeated_strings(values, counts)
    array = np.asarray(values, dtype=dtype.to_pandas_dtype())
    return pa.array(array if counts is None else np.repeat(array, counts), type=dtype)


def timestamps_utc(micros: Sequence[int] | np.ndarray, counts: np.ndarray | None = None) -> pa.Array:
    """Exact integer microseconds since the epoch → timestamp[us, UTC] (repeated like `repeated`)."""
    return repeated(micros, counts, pa.int64()).view(TIMESTAMP_UTC)


def _repeated_strings(values: Sequence[str], counts: np.ndarray | None) -> pa.Array:
    if counts is None:
        return pa.array(values, type=pa.string())
    encoded = [value.encode() for value in values]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    ends = np.cumsum(np.repeat(lengths, counts))
    if ends.size and ends[-1] > _INT32_MAX:  # beyond string's 32-bit offsets: let pyarrow chunk it
        return pa.array([v for v, c in zip(values, counts, strict=True) for _ in range(c)], type=pa.string())
    offsets = np.zeros(ends.size + 1, dtype=np.int32)
    offsets[1:] = ends
    data = b"".join(value * int(count) for value, count in zip(encoded, counts, strict=True))
    return pa.Array.from_buffers(pa.string(), ends.size, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
