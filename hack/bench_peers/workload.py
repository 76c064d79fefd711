"""The leads every benchmark target is sent, as rotating request bodies, and the booster's own scores for them.

The leads are drawn from the project's synthetic population (`predictor.synthetic.sample_features`): realistic
heavy tails and realistic gaps (optional enrichment fields missing at 5–45 %). Each workload rotates through
`rotation` different bodies (32 by default) so no server can profit from seeing one body over and over.

Two request forms, as clients send them:
* V2 JSON tensor `[N, 50]` FP32 — to ours and to the stock KServe pairs. JSON has no NaN and kserve-xgbserver does
  not accept null in a tensor, so a missing optional feature is filled with that feature's declared minimum. Every
  float32 is written as the float64 that equals it exactly, so each server rebuilds the same matrix bit for bit.
* named-field objects — V1 `{"instances": [...]}` to ours, one object (or `{"leads": [...]}`) to the FastAPI
  design. Missing optional features are left out of the object, as a CRM export would.
The reference scores are `xgb.Booster(model_file=...).predict(DMatrix(matrix))`, as kserve-xgbserver computes them
(NaN = missing for the named forms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import xgboost as xgb

from contract.features import FEATURE_NAMES, FEATURES
from contract.model_card import find_booster
from predictor.synthetic import sample_features

TOLERANCE = 1e-6
ROTATION = 32
_KINDS = [f.kind for f in FEATURES]
_MINIMUM = np.array([f.minimum for f in FEATURES])


def fill_missing(matrix: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(matrix), _MINIMUM, matrix).astype(np.float32)


def lead_matrix(n: int, seed: int = 11) -> np.ndarray:
    """n leads of the synthetic population with every gap filled (the tensor form)."""
    return fill_missing(sample_features(n, seed))


def reference_scores(model_dir: Path, matrix: np.ndarray) -> np.ndarray:
    booster = xgb.Booster(model_file=str(find_booster(model_dir)))
    return booster.predict(xgb.DMatrix(matrix, missing=np.nan))


def v2_tensor_body(matrix: np.ndarray, parameters: dict | None = None) -> bytes:
    body: dict = {
        "inputs": [
            {
                "name": "leads",
                "datatype": "FP32",
                "shape": list(matrix.shape),
                "data": matrix.astype(np.float64).reshape(-1).tolist(),
            }
        ]
    }
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def lead_objects(matrix: np.ndarray) -> list[dict]:
    """One JSON object of named features per row; a NaN (missing) feature is left out."""
    leads = []
    for row in matrix.astype(np.float64).tolist():
        leads.append(
            {
                name: (bool(v) if kind == "bool" else v if kind == "float" else int(v))
                for name, kind, v in zip(FEATURE_NAMES, _KINDS, row, strict=True)
                if not math.isnan(v)
            }
        )
    return leads


@dataclass(frozen=True)
class Bodies:
    """What one workload sends: `rotation` bodies of `leads` leads each, and the booster's scores for each body."""

    leads: int
    bodies: list[bytes]
    expected: list[np.ndarray]


@dataclass(frozen=True)
class Workload:
    population: np.ndarray  # [rotation * (1 + batch), 50] float32, NaN = missing (as drawn)
    rotation: int
    batch_size: int
    scores_raw: np.ndarray  # booster scores of `population` (NaN = missing)
    scores_filled: np.ndarray  # booster scores of `population` with the gaps filled (the tensor form)

    @classmethod
    def build(
        cls, model_dir: Path, batch_size: int = 100, rotation: int = ROTATION, seed: int = 11
    ) -> Workload:
        population = sample_features(rotation * (1 + batch_size), seed).astype(np.float32)
        return cls(
            population,
            rotation,
            batch_size,
            reference_scores(model_dir, population),
            reference_scores(model_dir, fill_missing(population)),
        )

    def _slices(self, kind: str) -> list[slice]:
        if kind == "single":
            return [slice(i, i + 1) for i in range(self.rotation)]
        first = self.rotation
        return [
            slice(first + i * self.batch_size, first + (i + 1) * self.batch_size)
            for i in range(self.rotation)
        ]

    def tensor(self, kind: str, parameters: dict | None = None) -> Bodies:
        parts = self._slices(kind)
        filled = fill_missing(self.population)
        return Bodies(
            parts[0].stop - parts[0].start,
            [v2_tensor_body(filled[s], parameters) for s in parts],
            [self.scores_filled[s] for s in parts],
        )

    def v1(self, kind: str) -> Bodies:
        parts = self._slices(kind)
        return Bodies(
            parts[0].stop - parts[0].start,
            [orjson.dumps({"instances": lead_objects(self.population[s])}) for s in parts],
            [self.scores_raw[s] for s in parts],
        )

    def named(self, kind: str) -> Bodies:
        """The FastAPI design's own form: one lead object, or {"leads": [...]} for a batch."""
        parts = self._slices(kind)
        bodies = [
            orjson.dumps(
                lead_objects(self.population[s])[0]
                if kind == "single"
                else {"leads": lead_objects(self.population[s])}
            )
            for s in parts
        ]
        return Bodies(parts[0].stop - parts[0].start, bodies, [self.scores_raw[s] for s in parts])


def v2_scores(answer: dict, output_name: str) -> np.ndarray:
    for output in answer.get("outputs", []):
        if output.get("name") == output_name:
            return np.asarray(output["data"], dtype=np.float64).reshape(-1)
    raise AssertionError(f"no output {output_name!r} in answer: {str(answer)[:300]}")


def v1_scores(answer: dict) -> np.ndarray:
    return np.asarray([p["score"] for p in answer["predictions"]], dtype=np.float64)


def peer_scores(answer: dict) -> np.ndarray:
    results = answer["results"] if "results" in answer else [answer]
    return np.asarray([r["score"] for r in results], dtype=np.float64)


def max_difference(got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        raise AssertionError(f"expected {expected.shape[0]} scores, got {got.shape}")
    return float(np.max(np.abs(got - expected.astype(np.float64))))
