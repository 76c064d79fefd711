"""Prometheus collectors of the scoring path, on KServe's /metrics beside its own histograms.

Labels are low-cardinality by construction: protocol, request form, outcome, tier, feature name, rule, hop mode.
Never a lead id, a key (or key name), or free text.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

REQUESTS = Counter(
    "lead_scoring_requests",
    "Scoring requests by protocol, request form and outcome",
    ["protocol", "form", "outcome"],
)
LEADS_SCORED = Counter("lead_scoring_leads_scored", "Leads scored, by tier", ["tier"])
SCORE = Histogram(
    "lead_scoring_score",
    "Distribution of conversion scores",
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)
VALIDATION_FAILURES = Counter(
    "lead_scoring_validation_failures", "Rejected values by feature and rule", ["field", "rule"]
)
PREDICTOR_HOP = Histogram(
    "lead_scoring_predictor_hop_seconds",
    "Time to get scores from the predictor",
    ["mode"],
    buckets=LATENCY_BUCKETS,
)
# Successful scorings only: a flood of sub-millisecond 401s or 400s would otherwise pull the latency SLO's p95 down
# and hide a slow predictor. Refusals are counted in REQUESTS by outcome.
REQUEST_DURATION = Histogram(
    "lead_scoring_request_duration_seconds",
    "End-to-end scoring time in the transformer, of requests answered with scores (outcome ok)",
    ["protocol"],
    buckets=LATENCY_BUCKETS,
)
# Set by every readiness check: once the predictor is down, Knative stops routing here and the request counters go
# quiet, so an outage must be visible without traffic (alert LeadScoringPredictorDown). Labelled by hop mode so the
# series is absent until the first check, rather than a 0 that no check measured.
PREDICTOR_READY = Gauge(
    "lead_scoring_predictor_ready",
    "1 when the last readiness check reached the predictor, 0 when it did not",
    ["mode"],
)
COALESCED_ROWS = Histogram(
    "lead_scoring_coalesced_batch_rows",
    "Leads per predictor call after request coalescing",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
MODEL_INFO = Gauge("lead_scoring_model_info", "The model being served (value 1)", ["model", "version"])
EXPECTED_TIER_SHARE = Gauge(
    "lead_scoring_model_expected_tier_share",
    "Share of leads per tier on training-like traffic, from the model card",
    ["tier"],
)

OUTCOMES = ("ok", "unauthorized", "invalid", "rate_limited", "predictor_unavailable", "error", "cancelled")
FORMS = ("v1_instances", "v2_columns", "v2_tensor", "unknown")
TIERS = ("A", "B", "C", "D", "E")


def prime(protocols: tuple[str, ...] = ("rest", "grpc"), hop_mode: str = "inprocess") -> None:
    """Create every expected series at zero, so rate() and absent() work from the first scrape."""
    for protocol in protocols:
        REQUEST_DURATION.labels(protocol)
        for form in FORMS:
            for outcome in OUTCOMES:
                REQUESTS.labels(protocol, form, outcome)
    for tier in TIERS:
        LEADS_SCORED.labels(tier)
    PREDICTOR_HOP.labels(hop_mode)


def count_unread(protocol: str) -> None:
    """A scoring request answered before the scoring path could read it: a body over --max_body_bytes (413) or a
    model this server does not serve (404). Client errors, so `invalid`, which the SLO ratio leaves out; without
    them a fleet of clients calling a renamed model would show on the dashboard as traffic that stopped."""
    child(REQUESTS, protocol, "unknown", "invalid").inc()


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every v in `values`, in one pass: a batch of 1000 scores costs one searchsorted
    and at most len(buckets) + 1 locked increments instead of 1000 Python-level observe() calls.

    Relies on prometheus_client internals (`_upper_bounds`, `_buckets`, `_sum`, `_raise_if_not_observable`) as of
    0.26.0, the version pinned in pyproject.toml; tests/unit/test_metrics.py compares the exposition with
    one-by-one observe() so a version bump that changes them fails there, not in production.
    """
    histogram._raise_if_not_observable()  # a labelled parent has no buckets of its own
    amounts = np.asarray(
        values, dtype=np.float64
    ).ravel()  # float64: a float32 sum would drift from observe()'s
    if amounts.size == 0:
        return
    if amounts.size == 1:  # a single lead: observe() itself is ~7 µs cheaper than the numpy pass below
        histogram.observe(float(amounts[0]))
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    # observe() puts v in the first bucket with v <= bound: that is searchsorted's side="left".
    # NaN sorts past +Inf and lands in no bucket, exactly as observe() leaves it out of every bucket.
    counts = np.bincount(np.searchsorted(bounds, amounts, side="left"), minlength=bounds.size + 1)[
        : bounds.size
    ]
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(amounts.sum()))


@lru_cache(maxsize=1024)
def child(metric, *labelvalues: str):
    """`metric.labels(*labelvalues)`, looked up once per label set. prometheus_client takes a lock and builds a key
    on every `.labels()` call (~1 µs); the hot path makes ~7 of them per request, always from the same small sets
    (protocol × form × outcome, tier, hop mode). Only for those fixed, low-cardinality label sets."""
    return metric.labels(*labelvalues)
