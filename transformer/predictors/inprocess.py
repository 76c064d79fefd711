"""Collocated mode: the booster runs inside the transformer (no predictor hop), for the lowest latency.

It loads the same artifact file the stock runtime serves; in-place prediction on the float32 matrix gives the same
scores as the runtime's `predict(DMatrix(...))` without building a DMatrix per request, through one long-lived proxy
(dense_predict.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transformer.lean_xgboost import load_booster

from .dense_predict import DensePredictor


class InProcessBooster:
    mode = "inprocess"

    def __init__(self, model_dir: Path, nthread: int = 1):
        self.booster = load_booster(model_dir, nthread)
        self._predict = DensePredictor(self.booster)

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        return self._predict(matrix)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        self._predict.close()
