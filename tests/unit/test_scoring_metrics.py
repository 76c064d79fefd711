"""What the Scorer tells Prometheus about the requests it ends, and how it runs reason codes: the real Scorer, key
store and explainer, with a predictor that answers at once."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from contract.model_card import load_card
from predictor.synthetic import as_records, sample_features
from transformer.auth import KeyStore
from transformer.errors import ScoringError
from transformer.extras.reasons import ReasonExplainer
from transformer.scoring import Extras, Scorer, ScoringLimits, ScoringRequest

X = sample_features(100, seed=5)


class Instant:
    mode = "fake"

    async def predict(self, matrix, headers=None):
        return np.full(len(matrix), 0.5, dtype=np.float32)


def scorer_for(artifact, **extras) -> Scorer:
    return Scorer(
        load_card(artifact),
        Instant(),
        KeyStore(env_keys="t:k"),
        model_name="lead-scoring",
        limits=ScoringLimits(max_reported=20),
        extras=Extras(**extras),
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def score(scorer: Scorer, records: list[dict], key: str = "k", **parameters) -> dict:
    body = {"instances": records, **({"parameters": parameters} if parameters else {})}
    return asyncio.run(scorer.score_v1(ScoringRequest("rest", "r"), key, body))


def test_refused_requests_stay_out_of_the_latency_histogram(small_artifact):
    """A flood of fast 401s and 400s pulled the latency SLO's p95 down and hid a slow predictor: only requests
    answered with scores are timed; the refusals are still counted by outcome."""
    scorer = scorer_for(small_artifact)
    timed = sample("lead_scoring_request_duration_seconds_count", protocol="rest")
    unauthorized = sample(
        "lead_scoring_requests_total", protocol="rest", form="unknown", outcome="unauthorized"
    )
    for _ in range(5):
        with pytest.raises(ScoringError):
            score(scorer, as_records(X[:1]), key="wrong")
    bad = as_records(X[:1])
    bad[0]["employee_count"] = -5
    with pytest.raises(ScoringError):
        score(scorer, bad)
    assert score(scorer, as_records(X[:1]))["predictions"]
    assert sample("lead_scoring_request_duration_seconds_count", protocol="rest") == timed + 1
    assert (
        sample("lead_scoring_requests_total", protocol="rest", form="unknown", outcome="unauthorized")
        == unauthorized + 5
    )


def test_every_rejected_value_is_counted_not_only_the_reported_ones(small_artifact):
    """The answer lists the first --max_errors_reported (20) problems; the counter used to stop there too, so the
    dashboard's top fields favoured whichever came first in a row."""
    scorer = scorer_for(small_artifact)
    before = sample("lead_scoring_validation_failures_total", field="employee_count", rule="minimum")
    records = as_records(X)
    for record in records:
        record["employee_count"] = -5
    with pytest.raises(ScoringError) as refused:
        score(scorer, records)
    assert len(refused.value.problems) == 20
    after = sample("lead_scoring_validation_failures_total", field="employee_count", rule="minimum")
    assert after - before == len(records)


def test_values_refused_while_decoding_are_validation_failures_too(small_artifact):
    """Only validate_matrix's refusals were counted: a feature sent as text (a unit changed to "12k") or renamed
    by the client never showed in lead_scoring_validation_failures_total, which the drift runbook reads. A name
    that is no feature is counted as "unknown", never as itself (a client must not mint label values)."""
    scorer = scorer_for(small_artifact)
    name = "lead_scoring_validation_failures_total"

    def failures(field: str, rule: str) -> float:
        return sample(name, field=field, rule=rule)

    typed, unknown = failures("employee_count", "type"), failures("unknown", "unknown_feature")
    records = as_records(X)
    for record in records:
        record["employee_count"] = "12k"
    with pytest.raises(ScoringError) as refused:
        score(scorer, records)
    assert len(refused.value.problems) == 20 and refused.value.total == len(records)
    renamed = as_records(X[:3])
    for record in renamed:
        record["headcount_v2_x9"] = record.pop("employee_count")
    with pytest.raises(ScoringError):
        score(scorer, renamed)
    assert failures("employee_count", "type") - typed == len(records)
    assert failures("unknown", "unknown_feature") - unknown == 3
    assert REGISTRY.get_sample_value(name, {"field": "headcount_v2_x9", "rule": "unknown_feature"}) is None


class Watched:
    """The real explainer, recording how many of its TreeSHAP calls run at once and on which threads."""

    def __init__(self, explainer: ReasonExplainer):
        self.explainer = explainer
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()

    def top(self, matrix, k):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(0.02)  # long enough for the other requests to be waiting
            return self.explainer.top(matrix, k)
        finally:
            with self.lock:
                self.running -= 1

    def per_lead_from_top(self, *args):
        return self.explainer.per_lead_from_top(*args)

    def tensors_from_top(self, *args):
        return self.explainer.tensors_from_top(*args)


def test_reason_codes_run_one_request_at_a_time_on_a_thread_of_their_own(small_artifact):
    """On asyncio's shared pool, concurrent reason requests took every core from the event loop and held up the
    requests that asked for none (p99 of plain single leads 4-6x). They now queue on one thread."""
    watched = Watched(ReasonExplainer.from_model_dir(small_artifact))
    scorer = scorer_for(small_artifact, explainer=watched)

    async def many():
        return await asyncio.gather(
            *(
                scorer.score_v1(
                    ScoringRequest("rest", f"r{i}"),
                    "k",
                    {"instances": as_records(X[:20]), "parameters": {"reasons": 3}},
                )
                for i in range(6)
            )
        )

    answers = asyncio.run(many())
    assert all(len(p["reasons"]) == 3 for answer in answers for p in answer["predictions"])
    assert watched.most == 1
    assert len(watched.threads) == 1 and next(iter(watched.threads)).startswith("reasons")
