"""Drift: PSI of live traffic vs the card's reference histograms, the sliding window, and the Prometheus gauges.

The "score" here is the synthetic population's true conversion probability: it needs no booster and moves when the
inputs move, like a model's score does.
"""

import math
from pathlib import Path

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


@pytest.mark.parametrize("kwargs", [{"min_rows": 0}, {"min_rows": 6_000}, {"window": 5}])
def test_nonsense_settings_are_refused(reference, kwargs):
    with pytest.raises(ValueError):
        DriftMonitor(reference, **kwargs)


def test_a_histogram_with_the_wrong_number_of_shares_is_refused(reference):
    broken = dict(reference)
    broken["intent_score"] = reference["intent_score"].model_copy(update={"shares": [1.0]})
    with pytest.raises(ValueError, match="intent_score"):
        DriftMonitor(broken)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def at_rate(
    monitor: DriftMonitor, clock: Clock, traffic, leads_per_second: float, seconds: float, batch: int
) -> None:
    """Feed `traffic` (cycled) at a steady lead rate, in requests of `batch` leads, advancing the clock."""
    x, scores = traffic
    step = batch / leads_per_second
    for i in range(int(leads_per_second * seconds / batch)):
        start = (i * batch) % (len(x) - batch)
        monitor.observe(x[start : start + batch], scores[start : start + batch])
        clock.now += step


def capped(reference, clock: Clock, cap: float, **kwargs) -> DriftMonitor:
    return DriftMonitor(
        reference,
        publish_every_seconds=math.inf,
        clock=clock,
        max_rows_per_second=cap,
        seed=11,
        **{"window": 200_000, "min_rows": 1, **kwargs},
    )


def test_below_the_cap_every_lead_is_binned_as_without_one(reference, like_training):
    clock = Clock()
    monitor = capped(reference, clock, cap=500, window=5_000)
    at_rate(monitor, clock, like_training, leads_per_second=400, seconds=10, batch=20)
    uncapped = quiet(reference, window=5_000)
    feed(uncapped, like_training, 4_000, batch=20)
    assert monitor.rows == uncapped.rows
    assert monitor.psi() == uncapped.psi()


def test_above_the_cap_about_cap_leads_a_second_are_binned(reference, like_training):
    clock = Clock()
    monitor = capped(reference, clock, cap=500)
    at_rate(monitor, clock, like_training, leads_per_second=50_000, seconds=1, batch=100)
    first_second = monitor.rows  # no rate known yet: everything
    assert first_second == 50_000
    at_rate(monitor, clock, like_training, leads_per_second=50_000, seconds=4, batch=100)
    binned = monitor.rows - first_second
    assert 1_800 <= binned <= 2_200  # 4 s x 500, binomial spread ~45


def missing_share(monitor: DriftMonitor, feature: str) -> float:
    counts = monitor._counts.sum(axis=0).reshape(len(monitor.names), monitor._slots)
    return counts[monitor.names.index(feature), monitor._missing_slot] / monitor.rows


def test_a_leads_chance_does_not_depend_on_the_size_of_its_request(reference, like_training):
    # Half the leads come one per request with web_visits_30d missing, half in requests of 1,000 with it present.
    # A budget that requests draw on as they arrive (a token bucket) would go almost all to the single-lead half,
    # which arrives 1,000 times as often; a probability per lead keeps the window 50/50.
    x, scores = like_training
    present = x[~np.isnan(x[:, FEATURE_INDEX["web_visits_30d"]])]
    single = present[:2_000].copy()
    single[:, FEATURE_INDEX["web_visits_30d"]] = np.nan
    big = present[2_000:4_000]
    clock = Clock()
    monitor = capped(reference, clock, cap=1_000)
    for second in range(12):
        for i in range(10):  # per second: 10 bursts of 1,000 single-lead requests and one 1,000-lead request
            for j in range(1_000):
                row = (i * 1_000 + j) % 2_000
                monitor.observe(single[row : row + 1], scores[row : row + 1])
            start = 1_000 * (i % 2)
            monitor.observe(big[start : start + 1_000], scores[start : start + 1_000])
            clock.now += 0.1
        if second == 1:
            before = monitor.rows  # the first second keeps everything; measure after it
            missing_before = missing_share(monitor, "web_visits_30d") * before
    sampled = monitor.rows - before
    share = (missing_share(monitor, "web_visits_30d") * monitor.rows - missing_before) / sampled
    assert 9_000 <= sampled <= 11_000  # 10 s x 1,000
    assert 0.45 <= share <= 0.55


@pytest.mark.parametrize("cap", [0, -1.0])
def test_a_cap_must_be_positive(reference, cap):
    with pytest.raises(ValueError, match="max_rows_per_second"):
        DriftMonitor(reference, max_rows_per_second=cap)


@pytest.mark.parametrize(
    ("argv", "cap"),
    [
        ([], 500.0),  # drift_window / drift_publish_seconds: the window turns over once per publish
        (["--drift_window", "2000", "--drift_publish_seconds", "0.5"], 4_000.0),
        (["--drift_max_leads_per_second", "250"], 250.0),
        (["--drift_max_leads_per_second", "0"], None),  # every lead
    ],
)
def test_the_flag_sets_the_cap(argv, cap):
    from transformer.cli import build_parser, drift_rate_cap

    assert drift_rate_cap(build_parser(environ={}).parse_args(argv)) == cap


@pytest.mark.parametrize("value", ["-1", "inf", "nan", "many"])
def test_the_flag_refuses_nonsense(value, capsys):
    from transformer.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser(environ={}).parse_args(["--drift_max_leads_per_second", value])
    assert "--drift_max_leads_per_second" in capsys.readouterr().err


def test_the_documented_window_bound_is_what_the_window_holds(reference, like_training):
    """docs/reasons-and-drift.md: at least the window, less than the window plus one chunk (a tenth of the window plus
    at most one request); its example, 400-lead requests, reaches 5,600."""
    monitor = quiet(reference)
    x, scores = like_training
    sizes = []
    for start in range(0, 16_000, 400):
        monitor.observe(x[start : start + 400], scores[start : start + 400])
        sizes.append(monitor.rows)
    warmed = sizes[len(sizes) // 2 :]
    assert min(warmed) >= 5_000 and max(warmed) == 5_600 < 5_000 + 500 + 400
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reasons-and-drift.md").read_text()
    assert "with 400-lead requests each chunk holds 800 and the window up to 5,600" in " ".join(docs.split())
