"""Collocated mode: the booster runs inside the transformer (no predictor hop), for the lowest latency.

It loads the same artifact file the stock runtime serves; `inplace_predict` on the float32 matrix gives the same
scores as the runtime's `predict(DMatrix(...))` without building a DMatrix per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb

from contract.model_card import find_booster


class InProcessBooster:
    mode = "inprocess"

    def __init__(self, model_dir: Path, nthread: int = 1):
        path = find_booster(model_dir)
        self.booster = xgb.Booster(params={"nthread": nthread}, model_file=bytearray(path.read_bytes()))

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        return self.booster.inplace_predict(matrix, missing=np.nan).astype(np.float32, copy=False)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
