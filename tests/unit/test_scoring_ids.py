"""Scoring ids: RFC 9562 UUIDv7 layout, time-ordered in issue order, unique."""

import time
import uuid

from transformer.ids import new_scoring_id, uuid7, uuid7_millis
from transformer.sink import ScoredBatch


def test_layout_is_uuid_version_7_with_the_rfc_variant_and_the_time():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= uuid7_millis(value) <= after
    text = new_scoring_id()
    assert len(text) == 36 and uuid.UUID(text).version == 7


def test_ids_sort_in_issue_order_even_within_one_millisecond_and_never_repeat():
    fixed = 1_800_000_000_000 * 1_000_000
    ids = [uuid7(fixed) for _ in range(5000)]  # far more than fit one ms: the counter spills over
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    normal = [new_scoring_id() for _ in range(20_000)]
    assert normal == sorted(normal) and len(set(normal)) == len(normal)


def test_every_scored_batch_gets_its_own_scoring_id():
    import numpy as np

    def batch():
        return ScoredBatch(
            request_id="same-client-id",
            scored_at=None,
            model_name="m",
            model_version="v",
            api_key_name="k",
            protocol="rest",
            request_form="v1_instances",
            latency_ms=1.0,
            lead_ids=["a"],
            scores=np.zeros(1),
            buckets=np.ones(1),
            tiers=["E"],
            features=None,
        )

    assert batch().scoring_id != batch().scoring_id
