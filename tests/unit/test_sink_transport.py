"""Batches packed for the encoder process come out the other side as the same lake rows: the table built from the
unpacked batches equals, value for value, the one built from the originals — for any lead counts, text, gaps,
time zones and feature layouts, and for batches the packer hands over as a plain pickle."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sink_servers import FEATURE_NAMES, sample_batch
from transformer.sink import ScoredBatch, lake_schema
from transformer.sink.outcomes import OutcomesTable
from transformer.sink.schema import build_table
from transformer.sink.transport import pack, unpack

SCHEMA = lake_schema(FEATURE_NAMES)


def across(batches: list) -> list:
    """What the child receives: every frame as the bytes the socket delivers."""
    return unpack([bytes(frame) for frame in pack(batches)])


def same_table(batches: list[ScoredBatch], schema=SCHEMA) -> None:
    original = build_table(batches, schema)
    rebuilt = build_table(across(batches), schema)
    assert rebuilt.equals(original)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.lists(st.text(max_size=6), max_size=40), st.integers(-12, 14)),
        min_size=1,
        max_size=8,
    )
)
def test_packed_batches_build_the_same_table(requests):
    batches = []
    for seed, (leads, texts, offset_hours) in enumerate(requests):
        batch = sample_batch(
            leads, seed=seed, scored_at=datetime.now(timezone(timedelta(hours=offset_hours)))
        )
        ids = (texts + [f"x{i}" for i in range(leads)])[:leads]  # any text, empty and non-ASCII included
        batches.append(
            ScoredBatch(**{**{f: getattr(batch, f) for f in ScoredBatch.__slots__}, "lead_ids": ids})
        )
    same_table(batches)


def test_the_packed_form_keeps_the_numbers_out_of_the_pickle():
    batches = [sample_batch(100, seed=s) for s in range(50)]
    frames = pack(batches)
    header = pickle.loads(frames[0])
    assert header[0] == "packed"
    # 5,000 × 50 float32 features travel as one raw buffer, not inside the pickled header.
    assert len(frames[-1]) == 5000 * 50 * 4
    assert len(frames[0]) < 200_000


def test_requests_without_features_are_packed_without_a_feature_frame():
    batches = [sample_batch(3, seed=s, with_features=False) for s in range(4)]
    assert len(pack(batches)) == 3
    same_table(batches, lake_schema(FEATURE_NAMES, include_features=False))
    assert all(b.features is None for b in across(batches))


def test_mixed_or_unusual_features_go_as_a_plain_pickle_and_arrive_unchanged():
    with_gaps = sample_batch(2, seed=1)
    without = sample_batch(3, seed=2, with_features=False)
    as_float64 = sample_batch(2, seed=3)
    as_float64 = ScoredBatch(
        **{
            **{f: getattr(as_float64, f) for f in ScoredBatch.__slots__},
            "features": as_float64.features.astype(np.float64),
        }
    )
    for batches in ([with_gaps, without], [as_float64]):
        assert len(pack(batches)) == 1
        same_table(batches)


def test_other_records_than_scored_leads_are_pickled_whole():
    from transformer.sink.outcomes import OutcomeBatch

    outcome = OutcomeBatch(
        request_id="r1",
        received_at=datetime.now(UTC),
        source="api",
        api_key_name="crm-prod",
        lead_ids=["l1"],
        outcomes=["converted"],
        occurred_at=[datetime.now(UTC)],
        outcome_ids=["o1"],
        deal_values=[1200.0],
        scoring_ids=[None],
        request_ids=[None],
    )
    table = OutcomesTable()
    assert table.build(across([outcome])).equals(table.build([outcome]))
