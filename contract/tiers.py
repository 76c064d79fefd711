"""Score → bucket 1–5 → tier A–E (bucket 5 is tier A, the best leads).

Thresholds are four ascending cut points on the score, taken from the model card. The training policy
(predictor/train.py) puts them at quantiles of the validation scores so that tiers have known expected shares:
E 30 %, D 25 %, C 20 %, B 15 %, A 10 %. A score equal to a cut point belongs to the higher bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIER_OF_BUCKET = ("E", "D", "C", "B", "A")  # index = bucket - 1
TIER_SHARES = {"E": 0.30, "D": 0.25, "C": 0.20, "B": 0.15, "A": 0.10}
CUT_QUANTILES = (0.30, 0.55, 0.75, 0.90)
_TIER_ARRAY = np.array(TIER_OF_BUCKET, dtype=object)


class TierMap:
    def __init__(self, thresholds: Sequence[float]):
        cuts = np.asarray(thresholds, dtype=np.float64)
        if cuts.shape != (4,) or not np.all(np.diff(cuts) > 0) or cuts[0] <= 0 or cuts[-1] >= 1:
            raise ValueError(
                f"tier thresholds must be 4 strictly ascending scores in (0, 1), got {list(thresholds)}"
            )
        self.thresholds = cuts

    def buckets(self, scores: np.ndarray) -> np.ndarray:
        return (np.searchsorted(self.thresholds, scores, side="right") + 1).astype(np.int32)

    @staticmethod
    def tiers(buckets: np.ndarray) -> np.ndarray:
        return _TIER_ARRAY[buckets - 1]

    @staticmethod
    def thresholds_from_scores(scores: np.ndarray) -> list[float]:
        return [float(v) for v in np.quantile(scores, CUT_QUANTILES)]
