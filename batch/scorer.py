"""One window of leads → scores, buckets, tiers (and reason codes) for the valid rows, rejects for the others.

Every step is the online path's own code: `contract.validation` finds the problems and words them, the booster is
loaded and called like the in-process predictor (`transformer/predictors/inprocess.py`), the card's `TierMap` cuts
buckets and tiers, and `transformer/extras/reasons.py` explains. Nothing here re-states a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batch.errors import BatchError
from contract.features import FEATURE_INDEX
from contract.model_card import ModelCard, load_card
from contract.validation import describe_problem, find_problems, problem_dict
from transformer.extras.reasons import ReasonExplainer
from transformer.predictors.inprocess import InProcessBooster


class ModelError(BatchError):
    """The model cannot score this run: another objective, or a score that is no probability."""


@dataclass
class Scored:
    valid: np.ndarray  # bool [N]: rows that were scored
    scores: np.ndarray  # float32 [n_valid]
    buckets: np.ndarray  # int32 [n_valid], 1..5
    reasons: tuple | None  # ReasonExplainer.top() of the valid rows, or None
    problems: list[dict]  # every problem of the rejected rows (row = index within the window)


class Scorer:
    def __init__(self, model_dir: Path, reasons_k: int = 0):
        self.card: ModelCard = load_card(model_dir)  # checks the booster's sha256 against the card
        self.tier_map = self.card.tier_map
        try:
            # The online in-process predictor's own load, objective check included.
            self.booster = InProcessBooster(model_dir, nthread=1).booster
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        self.reasons_k = reasons_k
        self.explainer = ReasonExplainer(self.booster) if reasons_k else None

    @property
    def model_version(self) -> str:
        return self.card.version

    @property
    def model_sha256(self) -> str:
        """The booster file's sha256 (load_card checked the file against it): a retrained booster under the same
        version label is another model."""
        return self.card.booster_sha256

    def score(
        self,
        matrix: np.ndarray,
        first_row: int = 0,
        unparsable: dict[int, list[tuple[str, str]]] | None = None,
        id_problems: list[tuple[int, str, str | None, str]] | None = None,
        where: str = "",
    ) -> Scored:
        """`first_row` is the window's first row number in its file: problems name rows as the file counts them.
        `unparsable` (CSV cells that are no number) and `id_problems` (batch.columns.lead_id_problems) are
        rejects found before the matrix. `where` names the file in a ModelError."""
        found, _ = find_problems(matrix, limit=None)
        unparsable = unparsable or {}
        if unparsable:
            # An unparsable cell is NaN in the matrix: its `type` reject is its one problem, not also `required`.
            cells = {(r, FEATURE_INDEX[name]) for r, names in unparsable.items() for name, _ in names}
            found = [f for f in found if (f[0], f[1]) not in cells]
        problems = [describe_problem(first_row + r, c, rule, v) for r, c, rule, v in found]
        for r, cells in unparsable.items():
            row = first_row + r
            problems.extend(
                problem_dict(
                    row,
                    name,
                    "type",
                    text[:40],
                    f"row {row}: {name} must be a number, true/false or empty, got {text[:40]!r}",
                )
                for name, text in cells
            )
        problems.extend(
            problem_dict(first_row + r, "lead_id", rule, value, f"row {first_row + r}: {message}")
            for r, rule, value, message in id_problems or ()
        )
        valid = np.ones(matrix.shape[0], dtype=bool)
        if problems:
            valid[[p["row"] - first_row for p in problems]] = False
            problems.sort(key=lambda p: p["row"])
            matrix = matrix[valid]
        # Validated in float64, scored in float32: the online path's order (transformer/scoring.py).
        features = np.ascontiguousarray(matrix, dtype=np.float32)
        if not len(features):
            return Scored(valid, np.empty(0, np.float32), np.empty(0, np.int32), None, problems)
        scores = self.booster.predict(features)
        _check_probabilities(scores, np.flatnonzero(valid) + first_row, where)
        buckets = self.tier_map.buckets(scores)
        reasons = self.explainer.top(features, self.reasons_k) if self.explainer else None
        return Scored(valid, scores, buckets, reasons, problems)


def _check_probabilities(scores: np.ndarray, rows: np.ndarray, where: str) -> None:
    """ModelError naming the first row whose score is NaN, infinite or outside [0, 1]: tiering it would put a lead
    in a tier by accident (NaN sorts past every cut-off), and the online path answers 503 for the same lead."""
    bad = ~((scores >= 0.0) & (scores <= 1.0))  # NaN compares false: caught too
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        row = f"{where}: row {int(rows[first])}" if where else f"row {int(rows[first])}"
        raise ModelError(
            f"{row}: the booster scored {float(scores[first])!r}, not a probability in [0, 1] "
            f"({int(bad.sum())} such score(s) in this window); nothing of this shard is written"
        )
