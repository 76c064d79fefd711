"""A synthetic population scored by a real transformer, with outcomes decided by the documented ground truth,
and what that ground truth implies for the measured quality (expectations and sampling errors)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import httpx
import numpy as np

from predictor.synthetic import as_records, conversion_logit, sample_population

V1 = "/v1/models/lead-scoring:predict"
NOISE_SCALE = 0.6  # predictor/synthetic.py: logit + Logistic(0, 0.6) noise, then Bernoulli(sigmoid(.))


def true_probability(x: np.ndarray) -> np.ndarray:
    """P(converted | features) under the documented ground truth: E over the logistic noise of sigmoid(logit + e),
    by quadrature on 400 quantiles of the noise (deterministic, error < 1e-4)."""
    u = (np.arange(400) + 0.5) / 400
    noise = NOISE_SCALE * np.log(u / (1 - u))
    logit = conversion_logit(x)
    return (1 / (1 + np.exp(-(logit[:, None] + noise[None, :])))).mean(axis=1)


def expected_auc(p_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUC the scores should reach when labels are Bernoulli(p_true): the probability-weighted Mann-Whitney
    statistic, and its standard error (Hanley & McNeil 1982) for the expected class sizes."""
    order = np.argsort(scores, kind="stable")
    p, s = p_true[order], scores[order]
    neg = 1 - p
    # For each lead: expected negatives with a strictly lower score, plus half of those with an equal score.
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    cum_neg = np.concatenate([[0.0], np.cumsum(neg)])
    below = np.repeat(cum_neg[first], counts)
    equal = np.repeat(cum_neg[first + counts] - cum_neg[first], counts)
    numerator = float(np.sum(p * (below + 0.5 * (equal - neg))))
    n_pos, n_neg = p.sum(), neg.sum()
    a = numerator / (n_pos * n_neg - np.sum(p * neg))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg))
    return a, se


@dataclass
class Population:
    x: np.ndarray
    y: np.ndarray
    ids: list[str]
    p_true: np.ndarray
    scores: np.ndarray = field(default=None)
    tiers: np.ndarray = field(default=None)
    scoring_ids: list[str] = field(default_factory=list)

    @classmethod
    def draw(cls, n: int, seed: int, prefix: str = "lead") -> Population:
        x, y = sample_population(n, seed)
        return cls(x, y, [f"{prefix}-{seed}-{i}" for i in range(n)], true_probability(x))

    def score(
        self,
        url: str,
        api_key: str,
        batch: int = 1000,
        rows: slice | None = None,
        x: np.ndarray | None = None,
    ):
        """Score through the real V1 route; keep what the transformer answered, lead by lead."""
        rows = rows or slice(0, len(self.ids))
        x = self.x if x is None else x
        index = np.arange(len(self.ids))[rows]
        scores, tiers, sids = np.empty(index.size, np.float32), np.empty(index.size, object), []
        with httpx.Client(timeout=60) as client:
            for start in range(0, index.size, batch):
                part = index[start : start + batch]
                response = client.post(
                    url + V1,
                    headers={"x-api-key": api_key},
                    json={"instances": as_records(x[part], [self.ids[i] for i in part])},
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert [p["lead_id"] for p in body["predictions"]] == [self.ids[i] for i in part]
                scores[start : start + part.size] = [p["score"] for p in body["predictions"]]
                tiers[start : start + part.size] = [p["tier"] for p in body["predictions"]]
                sids += [body["scoring_id"]] * part.size
        return scores, tiers, sids

    def outcomes(self, occurred_at: str, rows=None) -> list[dict]:
        index = range(len(self.ids)) if rows is None else rows
        return [
            {
                "lead_id": self.ids[i],
                "outcome": "converted" if self.y[i] else "disqualified",
                "occurred_at": occurred_at,
                **({"deal_value": 1000.0 + i} if self.y[i] else {}),
            }
            for i in index
        ]


def post_outcomes(url: str, api_key: str, outcomes: list[dict], batch: int = 1000) -> list[dict]:
    answers = []
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(outcomes), batch):
            response = client.post(
                url + "/v1/outcomes",
                headers={"x-api-key": api_key},
                json={"outcomes": outcomes[start : start + batch]},
            )
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers
