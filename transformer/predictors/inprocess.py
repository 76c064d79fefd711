"""Collocated mode: the booster runs inside the transformer (no predictor hop), for the lowest latency.

It loads the same artifact file the stock runtime serves; `inplace_predict` on the float32 matrix gives the same
scores as the runtime's `predict(DMatrix(...))` without building a DMatrix per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.model_card import load_booster


class InProcessBooster:
    mode = "inprocess"

    def __init__(self, model_dir: Path, nthread: int = 1):
        self.booster = load_booster(model_dir, nthread)

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        return self.booster.inplace_predict(matrix, missing=np.nan).astype(np.float32, copy=False)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
