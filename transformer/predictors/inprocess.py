"""Collocated mode: the booster runs inside the transformer (no predictor hop), for the lowest latency.

It loads the same artifact file the stock runtime serves, through xgboost's C library (transformer/native_xgboost.py):
in-place prediction on the float32 matrix gives the same scores as the runtime's `predict(DMatrix(...))` without
building a DMatrix per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transformer.native_xgboost import NativeBooster

# The card's tier thresholds cut probabilities; kserve-xgbserver answers whatever the booster outputs.
PROBABILITY_OBJECTIVE = "binary:logistic"


class InProcessBooster:
    mode = "inprocess"

    def __init__(self, model_dir: Path, nthread: int = 1):
        self.booster = NativeBooster.from_model_dir(model_dir, nthread)
        objective = self.booster.objective
        if objective != PROBABILITY_OBJECTIVE:
            # A margin (binary:logitraw) or a regression would be tiered as if it were a probability.
            self.booster.close()
            raise ValueError(
                f"the booster's objective is {objective}, not {PROBABILITY_OBJECTIVE}: its outputs are not "
                "probabilities in [0, 1] and cannot be tiered; train it with binary:logistic"
            )

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        return self.booster.predict(matrix)

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        self.booster.close()
