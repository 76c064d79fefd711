"""metrics.observe_many must be indistinguishable, on /metrics, from calling observe() once per value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from transformer import metrics

SCORE_BUCKETS = tuple(
    metrics.SCORE._upper_bounds[:-1]
)  # the production buckets (0.05 … 1.0), +Inf re-added by the client


def exposition(registry: CollectorRegistry) -> dict[tuple, float]:
    """Every sample of the text exposition by (name, labels), without the wall-clock `_created` samples."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def assert_same_exposition(one_by_one: CollectorRegistry, vectorised: CollectorRegistry) -> None:
    expected, actual = exposition(one_by_one), exposition(vectorised)
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        if key[0].endswith("_sum"):
            # observe() adds left to right; numpy sums pairwise. Both are correct to ~1e-16 relative; bucket counts
            # and _count below are compared exactly.
            assert actual[key] == pytest.approx(value, rel=1e-12, abs=1e-12) or (
                math.isnan(value) and math.isnan(actual[key])
            ), key
        else:
            assert actual[key] == value, key


def pair(labelnames=()) -> tuple[tuple[CollectorRegistry, Histogram], tuple[CollectorRegistry, Histogram]]:
    made = []
    for _ in range(2):
        registry = CollectorRegistry()
        made.append(
            (
                registry,
                Histogram(
                    "lead_scoring_score", "scores", labelnames, registry=registry, buckets=SCORE_BUCKETS
                ),
            )
        )
    return made[0], made[1]


EDGE_VALUES = np.array(
    [0.0, 0.05, 0.1, 0.15000001, 0.15, 0.3, 0.35, 0.7, 0.95, 1.0, 1.0000001, 2.5, -0.2, 1e-9]
)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(
            np.random.default_rng(3).random(10_000).astype(np.float32), id="float32 scores like the booster's"
        ),
        pytest.param(EDGE_VALUES, id="on and around every kind of bound, negative, above 1"),
        pytest.param(
            np.concatenate([SCORE_BUCKETS, np.nextafter(SCORE_BUCKETS, 2.0)]), id="exactly on each bound"
        ),
        pytest.param(np.array([0.42]), id="one value"),
        pytest.param(np.array([], dtype=np.float32), id="empty batch"),
    ],
)
def test_observe_many_exposes_exactly_what_observe_per_value_does(values):
    (reg_a, one_by_one), (reg_b, vectorised) = pair()
    for value in values.tolist():
        one_by_one.observe(value)
    metrics.observe_many(vectorised, values)
    assert_same_exposition(reg_a, reg_b)


def test_successive_batches_accumulate_on_a_labelled_child():
    (reg_a, one_by_one), (reg_b, vectorised) = pair(("mode",))
    rng = np.random.default_rng(11)
    for _ in range(5):
        batch = rng.random(int(rng.integers(1, 300))).astype(np.float32)
        for value in batch.tolist():
            one_by_one.labels("grpc").observe(value)
        metrics.observe_many(vectorised.labels("grpc"), batch)
    assert_same_exposition(reg_a, reg_b)
    assert exposition(reg_b)[("lead_scoring_score_count", (("mode", "grpc"),))] > 0


def test_nan_is_counted_nowhere_but_poisons_the_sum_like_observe():
    (reg_a, one_by_one), (reg_b, vectorised) = pair()
    values = np.array([0.2, np.nan, 0.9])
    for value in values.tolist():
        one_by_one.observe(value)
    metrics.observe_many(vectorised, values)
    assert_same_exposition(reg_a, reg_b)
    assert exposition(reg_b)[("lead_scoring_score_count", ())] == 2


def test_a_labelled_parent_is_refused_like_observe():
    _, (_, vectorised) = pair(("mode",))
    with pytest.raises(ValueError, match="missing label values"):
        vectorised.observe(0.5)
    with pytest.raises(ValueError, match="missing label values"):
        metrics.observe_many(vectorised, np.array([0.5]))


def test_the_production_score_histogram_has_the_contract_buckets():
    assert SCORE_BUCKETS == tuple(round(0.05 * i, 2) for i in range(1, 21))
