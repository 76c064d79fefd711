"""Drift: PSI of live traffic vs the card's reference histograms, the sliding window, and the Prometheus gauges.

The "score" here is the synthetic population's true conversion probability: it needs no booster and moves when the
inputs move, like a model's score does.
"""

import math

import numpy as np
import pytest
from prometheus_client import REGISTRY

from contract.features import FEATURE_INDEX, FEATURE_NAMES, FEATURES
from predictor.synthetic import conversion_logit, sample_features
from predictor.train import reference_histogram
from transformer.extras.drift import DriftMonitor

SHIFTED = ("web_visits_30d", "intent_score")


def true_score(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-conversion_logit(x.astype(np.float64))))


@pytest.fixture(scope="module")
def reference():
    x = sample_features(100_000, seed=7)
    hists = {
        spec.name: reference_histogram(x[:, i], spec.kind, len(spec.choices) if spec.choices else None)
        for i, spec in enumerate(FEATURES)
    }
    hists["score"] = reference_histogram(true_score(x), "float", None)
    return hists


@pytest.fixture(scope="module")
def like_training():
    x = sample_features(20_000, seed=2024)
    return x.astype(np.float32), true_score(x).astype(np.float32)


@pytest.fixture(scope="module")
def shifted():
    x = sample_features(20_000, seed=2025)
    x[:, FEATURE_INDEX["web_visits_30d"]] = np.minimum(x[:, FEATURE_INDEX["web_visits_30d"]] * 5, 100_000)
    x[:, FEATURE_INDEX["intent_score"]] = np.clip(
        x[:, FEATURE_INDEX["intent_score"]] + 30, 0, 100
    )  # NaN stays NaN
    return x.astype(np.float32), true_score(x).astype(np.float32)


def feed(monitor: DriftMonitor, traffic, rows: int, batch: int = 100) -> None:
    """Send `rows` leads in requests of `batch` leads, as the scorer does after each request."""
    x, scores = traffic
    for start in range(0, rows, batch):
        end = min(start + batch, rows)
        monitor.observe(x[start:end], scores[start:end])


def quiet(reference, **kwargs) -> DriftMonitor:
    return DriftMonitor(reference, publish_every_seconds=math.inf, **kwargs)


def gauge(feature: str) -> float | None:
    return REGISTRY.get_sample_value("lead_scoring_feature_psi", {"feature": feature})


def test_traffic_like_training_has_psi_near_zero(reference, like_training):
    monitor = quiet(reference)
    feed(monitor, like_training, 5_000)
    features, score = monitor.psi()
    assert set(features) == set(FEATURE_NAMES)
    assert max(features.values()) < 0.05, max(features.items(), key=lambda item: item[1])
    assert 0 <= score < 0.05


def test_shifted_features_and_the_score_show_high_psi_untouched_ones_stay_low(reference, shifted):
    monitor = quiet(reference)
    feed(monitor, shifted, 5_000)
    features, score = monitor.psi()
    for name in SHIFTED:
        assert features[name] > 0.25, (name, features[name])
    untouched = {name: value for name, value in features.items() if name not in SHIFTED}
    assert max(untouched.values()) < 0.05, max(untouched.items(), key=lambda item: item[1])
    assert score > 0.25


def test_missing_values_are_their_own_bin(reference, like_training):
    x, scores = like_training
    blanked = x.copy()
    blanked[:, FEATURE_INDEX["intent_score"]] = np.nan  # the intent vendor stopped answering
    monitor = quiet(reference)
    feed(monitor, (blanked, scores), 5_000)
    features, _ = monitor.psi()
    assert features["intent_score"] > 0.25
    assert features["web_visits_30d"] < 0.05


def test_the_window_forgets_old_traffic(reference, shifted, like_training):
    monitor = quiet(reference, window=5_000)
    feed(monitor, shifted, 5_000)
    assert monitor.psi()[0]["web_visits_30d"] > 0.25
    feed(monitor, like_training, 5_500)  # a full window plus one chunk of training-like traffic
    features, score = monitor.psi()
    assert max(features[name] for name in SHIFTED) < 0.05
    assert score < 0.05
    assert 5_000 <= monitor.rows <= 5_000 + monitor.chunk_rows


def test_the_window_is_exactly_the_most_recent_rows(reference, shifted, like_training):
    monitor = quiet(reference, window=2_000)
    feed(monitor, shifted, 3_000, batch=37)
    feed(monitor, like_training, 1_500, batch=37)
    recent = monitor.rows
    # The same last `recent` rows, alone in a monitor whose window never rotates, give the same PSI.
    last = (
        np.concatenate([shifted[0][:3_000], like_training[0][:1_500]])[-recent:],
        np.concatenate([shifted[1][:3_000], like_training[1][:1_500]])[-recent:],
    )
    alone = quiet(reference, window=20_000, min_rows=1)
    feed(alone, last, recent, batch=recent)
    assert monitor.psi() == alone.psi()


@pytest.mark.parametrize("batch", [1, 37, 1_000])
def test_the_window_holds_about_window_rows_whatever_the_request_size(reference, like_training, batch):
    monitor = quiet(reference, window=2_000)
    feed(monitor, like_training, 12_000, batch=batch)
    # At least the window, at most the window plus one (possibly overfilled) chunk.
    assert 2_000 <= monitor.rows <= 2_000 + max(monitor.chunk_rows, batch)


def test_sampling_keeps_every_nth_request(reference, like_training):
    monitor = quiet(reference, sample_every=4)
    feed(monitor, like_training, 4_000, batch=10)  # 400 requests → 100 kept
    assert monitor.rows == 1_000


def test_publish_sets_the_gauges_to_the_psi(reference, shifted):
    monitor = quiet(reference)
    feed(monitor, shifted, 5_000)
    assert monitor.publish() is True
    features, score = monitor.psi()
    for name in FEATURE_NAMES:
        assert gauge(name) == pytest.approx(features[name])
    assert REGISTRY.get_sample_value("lead_scoring_score_psi") == pytest.approx(score)
    assert gauge("web_visits_30d") > 0.25


def test_nothing_is_published_below_min_rows(reference, shifted, like_training):
    calm = quiet(reference)
    feed(calm, like_training, 5_000)
    assert calm.publish() is True
    before = gauge("web_visits_30d")
    monitor = quiet(reference, min_rows=500)
    feed(monitor, shifted, 400)
    assert monitor.psi()[0]["web_visits_30d"] > 0.25  # computable, but 400 rows are not enough to publish
    assert monitor.publish() is False
    assert gauge("web_visits_30d") == before


def test_observe_publishes_when_the_interval_is_due(reference, shifted, like_training):
    now = [0.0]
    calm = quiet(reference)
    feed(calm, like_training, 5_000)
    calm.publish()
    monitor = DriftMonitor(reference, publish_every_seconds=10, clock=lambda: now[0])
    feed(monitor, shifted, 5_000)
    assert gauge("web_visits_30d") < 0.05  # the interval has not passed: still the calm monitor's value
    now[0] = 10.0
    feed(monitor, shifted, 100)
    assert gauge("web_visits_30d") > 0.25


def test_an_empty_window_has_no_psi(reference):
    features, score = quiet(reference).psi()
    assert all(math.isnan(v) for v in features.values()) and math.isnan(score)


def test_features_without_a_reference_are_not_monitored(reference, like_training):
    partial = {name: reference[name] for name in ("web_visits_30d", "score")}
    monitor = quiet(partial)
    feed(monitor, like_training, 1_000)
    features, score = monitor.psi()
    assert list(features) == ["web_visits_30d"] and features["web_visits_30d"] < 0.05 and score < 0.05


@pytest.mark.parametrize("kwargs", [{"sample_every": 0}, {"min_rows": 0}, {"min_rows": 6_000}, {"window": 5}])
def test_nonsense_settings_are_refused(reference, kwargs):
    with pytest.raises(ValueError):
        DriftMonitor(reference, **kwargs)


def test_a_histogram_with_the_wrong_number_of_shares_is_refused(reference):
    broken = dict(reference)
    broken["intent_score"] = reference["intent_score"].model_copy(update={"shares": [1.0]})
    with pytest.raises(ValueError, match="intent_score"):
        DriftMonitor(broken)
