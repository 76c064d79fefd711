"""The leads every benchmark target is sent, as request bodies, and the booster's own scores for them.

One float32 matrix drives everything: the V2 tensor bodies (peers (a)/(b) and ours), the named-feature objects
(peer (c)) and the reference scores — `xgb.Booster(model_file=...).predict(DMatrix(matrix))`, as kserve-xgbserver
computes them. JSON has no NaN, so a missing optional feature is filled with that feature's declared minimum.
Every float32 is written as the float64 that equals it exactly, so each server rebuilds the same matrix bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import xgboost as xgb

from contract.features import FEATURE_NAMES, FEATURES
from contract.model_card import find_booster
from predictor.synthetic import sample_features

TOLERANCE = 1e-6


def lead_matrix(n: int, seed: int = 11) -> np.ndarray:
    x = sample_features(n, seed)
    minimum = np.array([f.minimum for f in FEATURES])
    return np.where(np.isnan(x), minimum, x).astype(np.float32)


def reference_scores(model_dir: Path, matrix: np.ndarray) -> np.ndarray:
    booster = xgb.Booster(model_file=str(find_booster(model_dir)))
    return booster.predict(xgb.DMatrix(matrix))


def v2_tensor_body(matrix: np.ndarray, parameters: dict | None = None) -> bytes:
    body: dict = {"inputs": [{"name": "leads", "datatype": "FP32", "shape": list(matrix.shape),
                              "data": matrix.astype(np.float64).reshape(-1).tolist()}]}
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def lead_objects(matrix: np.ndarray) -> list[dict]:
    kinds = [f.kind for f in FEATURES]
    leads = []
    for row in matrix.astype(np.float64):
        leads.append({name: (bool(v) if kind == "bool" else v if kind == "float" else int(v))
                      for name, kind, v in zip(FEATURE_NAMES, kinds, row.tolist(), strict=True)})
    return leads


@dataclass(frozen=True)
class Workload:
    single: np.ndarray          # [1, 50]
    batch: np.ndarray           # [N, 50]
    single_scores: np.ndarray
    batch_scores: np.ndarray

    @classmethod
    def build(cls, model_dir: Path, batch_size: int = 100) -> Workload:
        matrix = lead_matrix(batch_size + 1)
        single, batch = matrix[:1], matrix[1:]
        return cls(single, batch, reference_scores(model_dir, single), reference_scores(model_dir, batch))


def v2_scores(answer: dict, output_name: str) -> np.ndarray:
    for output in answer.get("outputs", []):
        if output.get("name") == output_name:
            return np.asarray(output["data"], dtype=np.float64).reshape(-1)
    raise AssertionError(f"no output {output_name!r} in answer: {str(answer)[:300]}")


def peer_scores(answer: dict) -> np.ndarray:
    results = answer["results"] if "results" in answer else [answer]
    return np.asarray([r["score"] for r in results], dtype=np.float64)


def max_difference(got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        raise AssertionError(f"expected {expected.shape[0]} scores, got {got.shape}")
    return float(np.max(np.abs(got - expected.astype(np.float64))))
