"""Scored batches across a process boundary, as few and as cheap GIL-holding steps as possible.

The sender is the sink's batcher thread in the server, where every millisecond holding the GIL is taken from the
event loop, and costs it more than a millisecond (docs/performance.md, seventh pass). Pickling 50 ScoredBatch objects
(5,000 leads) holds the GIL ~2 ms, most of it copying the feature matrices into the pickle stream. Packed, the same
file is ~0.4 ms: the per-request values and the lead ids are pickled (small), the numbers travel as raw buffers that
the socket copies with the GIL released. The receiver rebuilds the same ScoredBatch objects (views, no copy), so the
table builder does not know which side of the boundary it runs on.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Sequence

import numpy as np

from .records import ScoredBatch
from .schema_facts import epoch_micros, from_epoch_micros


def pack(batches: Sequence) -> list[bytes | memoryview]:
    """Frames for `unpack`: one pickled header, then the number buffers (ScoredBatch), or one pickle (anything
    else, e.g. outcomes: rare and small)."""
    if not batches or not all(type(b) is ScoredBatch for b in batches):
        return [pickle.dumps(("pickled", list(batches)), protocol=pickle.HIGHEST_PROTOCOL)]
    features = [b.features for b in batches]
    with_features = all(f is not None for f in features)
    if with_features:
        dtypes = {f.dtype for f in features}
        widths = {f.shape[1] for f in features if f.ndim == 2}
        with_features = (
            dtypes == {np.dtype(np.float32)} and len(widths) == 1 and all(f.ndim == 2 for f in features)
        )
    if not with_features and any(f is not None for f in features):
        # Mixed or unusual features (a caller's quirk): correctness first, the plain pickle keeps them as they are.
        return [pickle.dumps(("pickled", list(batches)), protocol=pickle.HIGHEST_PROTOCOL)]
    header = (
        "packed",
        [
            (
                b.request_id,
                b.scoring_id,
                epoch_micros(b.scored_at),
                b.model_name,
                b.model_version,
                b.api_key_name,
                b.protocol,
                b.request_form,
                b.latency_ms,
                len(b.lead_ids),
            )
            for b in batches
        ],
        list(itertools.chain.from_iterable(b.lead_ids for b in batches)),
        list(itertools.chain.from_iterable(b.tiers for b in batches)),
        widths.pop() if with_features else None,
    )
    frames: list[bytes | memoryview] = [
        pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL),
        _raw(np.concatenate([b.scores for b in batches]).astype(np.float32, copy=False)),
        _raw(np.concatenate([b.buckets for b in batches]).astype(np.int8, copy=False)),
    ]
    if with_features:
        frames.append(_raw(np.concatenate(features)))
    return frames


def _raw(array: np.ndarray) -> memoryview:
    """The array's bytes, without a copy (the arrays here are fresh, contiguous concatenations)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def unpack(frames: Sequence[bytes]) -> list:
    """The batches `pack` was given (equal field by field; features as float32 views)."""
    # Frames come from our own parent process over a socketpair no one else holds (bandit B301 reviewed).
    header = pickle.loads(frames[0])  # noqa: S301  # nosec B301
    if header[0] == "pickled":
        return header[1]
    _, requests, lead_ids, tiers, width = header
    scores = np.frombuffer(frames[1], dtype=np.float32)
    buckets = np.frombuffer(frames[2], dtype=np.int8)
    features = np.frombuffer(frames[3], dtype=np.float32).reshape(-1, width) if width is not None else None
    batches, start = [], 0
    for request_id, scoring_id, micros, model, version, key_name, protocol, form, latency, n in requests:
        end = start + n
        batches.append(
            ScoredBatch(
                request_id=request_id,
                scored_at=from_epoch_micros(micros),
                model_name=model,
                model_version=version,
                api_key_name=key_name,
                protocol=protocol,
                request_form=form,
                latency_ms=latency,
                lead_ids=lead_ids[start:end],
                scores=scores[start:end],
                buckets=buckets[start:end],
                tiers=tiers[start:end],
                features=features[start:end] if features is not None else None,
                scoring_id=scoring_id,
            )
        )
        start = end
    return batches
