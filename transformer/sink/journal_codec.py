"""How a batch is written to the journal and read back: the small fields as JSON, the arrays as their raw bytes.

Written on the request path (one per answered request), so it is built for speed: one orjson call and the arrays'
own buffers, no per-lead Python work. Read back only when a start finds a journal an earlier process left.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import orjson

from .records import ScoredBatch

if TYPE_CHECKING:
    from .outcomes import OutcomeBatch

_LENGTH = struct.Struct("<I")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


# dtype.str builds a new string on every call, and a batch has three arrays.
_DTYPE_NAMES: dict[np.dtype, str] = {}


def _array_spec(array: np.ndarray | None) -> tuple | None:
    if array is None:
        return None
    dtype = array.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = dtype.str
    return name, array.shape


# The order encode_scored writes the small fields in (it lists them by hand: it runs once per answered request).
_SCORED_HEAD = (
    "scoring_id",
    "request_id",
    "scored_at",
    "model_name",
    "model_version",
    "api_key_name",
    "protocol",
    "request_form",
    "latency_ms",
    "lead_ids",
    "tiers",
)


def encode_scored(batch: ScoredBatch) -> bytes:
    features = batch.features
    arrays = (
        np.ascontiguousarray(batch.scores),
        np.ascontiguousarray(batch.buckets),
        None if features is None else np.ascontiguousarray(features),
    )
    head = orjson.dumps(
        [
            batch.scoring_id,
            batch.request_id,
            _micros(batch.scored_at),
            batch.model_name,
            batch.model_version,
            batch.api_key_name,
            batch.protocol,
            batch.request_form,
            batch.latency_ms,
            batch.lead_ids,
            batch.tiers,
            (_array_spec(arrays[0]), _array_spec(arrays[1]), _array_spec(arrays[2])),
        ]
    )
    if arrays[2] is None:
        return b"".join((_LENGTH.pack(len(head)), head, arrays[0].data, arrays[1].data))
    return b"".join((_LENGTH.pack(len(head)), head, arrays[0].data, arrays[1].data, arrays[2].data))


def decode_scored(payload: bytes) -> ScoredBatch:
    (size,) = _LENGTH.unpack_from(payload)
    head = orjson.loads(payload[_LENGTH.size : _LENGTH.size + size])
    at = _LENGTH.size + size
    arrays = []
    for spec in head[11]:
        if spec is None:
            arrays.append(None)
            continue
        dtype, shape = np.dtype(spec[0]), tuple(spec[1])
        count = int(np.prod(shape)) if shape else 1
        arrays.append(np.frombuffer(payload, dtype=dtype, count=count, offset=at).reshape(shape).copy())
        at += count * dtype.itemsize
    scores, buckets, features = arrays
    fields = dict(zip(_SCORED_HEAD, head[:11], strict=True))
    fields["scored_at"] = _moment(fields["scored_at"])
    return ScoredBatch(**fields, scores=scores, buckets=buckets, features=features)


# The outcomes path is not the scoring path: one field list drives both directions, so they cannot drift apart.
_OUTCOME_FIELDS = (
    "request_id",
    "received_at",
    "source",
    "api_key_name",
    "lead_ids",
    "outcomes",
    "occurred_at",
    "outcome_ids",
    "deal_values",
    "scoring_ids",
    "request_ids",
)


def encode_outcomes(batch: OutcomeBatch) -> bytes:
    head = [getattr(batch, name) for name in _OUTCOME_FIELDS]
    head[1] = _micros(batch.received_at)
    head[6] = [_micros(t) for t in batch.occurred_at]
    return orjson.dumps(head)


def decode_outcomes(payload: bytes) -> OutcomeBatch:
    from .outcomes import OutcomeBatch  # here: importing the outcomes table registers its metrics

    fields = dict(zip(_OUTCOME_FIELDS, orjson.loads(payload), strict=True))
    fields["received_at"] = _moment(fields["received_at"])
    fields["occurred_at"] = [_moment(t) for t in fields["occurred_at"]]
    return OutcomeBatch(**fields)
