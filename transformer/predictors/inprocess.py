"""Collocated mode: the booster runs inside the transformer (no predictor hop), for the lowest latency.

It loads the same artifact file the stock runtime serves, through xgboost's C library (transformer/native_xgboost.py):
in-place prediction on the float32 matrix gives the same scores as the runtime's `predict(DMatrix(...))` without
building a DMatrix per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transformer.native_xgboost import NativeBooster


class InProcessBooster:
    mode = "inprocess"

    def __init__(self, model_dir: Path, nthread: int = 1):
        self.booster = NativeBooster.from_model_dir(model_dir, nthread)

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        return self.booster.predict(matrix)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        self.booster.close()
