"""Batch validation is the contract's: the early exit of find_problems on clean matrices never hides a problem,
and the scorer rejects exactly the rows validate_matrix names, with its messages, numbered as the file counts."""

from __future__ import annotations

import numpy as np
import pytest

from batch.scorer import Scorer
from contract import validation
from contract.features import FEATURE_INDEX, FEATURES
from contract.model_card import load_booster
from contract.validation import LeadsRejected, find_problems, validate_matrix
from predictor.synthetic import sample_features

INTEGRAL = [i for i, f in enumerate(FEATURES) if f.kind != "float"]
REQUIRED = [i for i, f in enumerate(FEATURES) if f.required]


def _comparable(result: tuple[list, int]) -> tuple[list, int]:
    found, total = result
    return [(r, c, rule, repr(v)) for r, c, rule, v in found], total  # NaN != NaN, its repr does


def _fast(matrix: np.ndarray) -> tuple[list, int]:
    return _comparable(find_problems(matrix, limit=None))


def _slow(matrix: np.ndarray, monkeypatch) -> tuple[list, int]:
    with monkeypatch.context() as patch:
        patch.setattr(validation, "_surely_clean", lambda m: False)
        return _comparable(find_problems(matrix, limit=None))


def _plant(rng: np.random.Generator, x: np.ndarray) -> None:
    for _ in range(int(rng.integers(0, 4))):
        row, col = int(rng.integers(len(x))), int(rng.integers(x.shape[1]))
        kind = rng.integers(6)
        spec = FEATURES[col]
        if kind == 0:
            x[row, REQUIRED[col % len(REQUIRED)]] = np.nan
        elif kind == 1:
            x[row, col] = rng.choice([np.inf, -np.inf])
        elif kind == 2:
            x[row, INTEGRAL[col % len(INTEGRAL)]] += 0.5
        elif kind == 3:
            x[row, col] = spec.minimum - rng.choice([1e-9, 1.0, 1e12])
        elif kind == 4:
            x[row, col] = spec.maximum + rng.choice([1e-9, 1.0, 1e12])
        else:
            x[row, col] = np.nan  # missing: a problem only for required features


@pytest.mark.parametrize("order", ["C", "F"])
def test_the_early_exit_agrees_with_the_full_check(monkeypatch, order):
    rng = np.random.default_rng(4)
    base = sample_features(300, seed=8)
    for _ in range(150):
        x = np.array(base, order=order)
        _plant(rng, x)
        assert _fast(x) == _slow(x, monkeypatch)


def test_clean_population_passes_both_ways(monkeypatch):
    x = sample_features(5_000, seed=2)
    assert validation._surely_clean(x)  # the early exit is taken: this is the path batch runs on clean data
    assert _fast(x) == _slow(x, monkeypatch) == ([], 0)


@pytest.fixture(scope="module")
def scorer(small_artifact) -> Scorer:
    return Scorer(small_artifact, reasons_k=2)


def test_scorer_rejects_what_the_contract_rejects(scorer):
    x = sample_features(50, seed=6)
    x[4, FEATURE_INDEX["employee_count"]] = 0
    x[9, FEATURE_INDEX["industry"]] = 40
    x[9, FEATURE_INDEX["touches_30d"]] = 1.5
    with pytest.raises(LeadsRejected) as online:
        validate_matrix(x, max_reported=100)
    scored = scorer.score(x, first_row=1000)
    assert scored.valid.tolist() == [i not in (4, 9) for i in range(50)]
    assert len(scored.scores) == len(scored.buckets) == 48 and scored.reasons[0].shape == (48, 2)
    expected = [
        {
            **p,
            "row": p["row"] + 1000,
            "message": p["message"].replace(f"row {p['row']}:", f"row {p['row'] + 1000}:"),
        }
        for p in online.value.problems
    ]
    assert scored.problems == expected


def test_scores_and_tiers_are_the_boosters(scorer, small_artifact):
    x = sample_features(200, seed=12)
    scored = scorer.score(x)
    # The artifact through xgboost's Python package, as kserve-xgbserver loads it.
    direct = load_booster(small_artifact).inplace_predict(x.astype(np.float32), missing=np.nan)
    np.testing.assert_array_equal(scored.scores, direct.astype(np.float32))
    np.testing.assert_array_equal(scored.buckets, scorer.card.tier_map.buckets(direct))


def test_a_window_of_only_bad_rows_scores_nothing(scorer):
    x = sample_features(3, seed=1)
    x[:, FEATURE_INDEX["market_tier"]] = 9
    scored = scorer.score(x)
    assert not scored.valid.any() and len(scored.scores) == 0 and len(scored.problems) == 3
