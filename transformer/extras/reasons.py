"""Reason codes: which features pushed a lead's score up or down, from xgboost's own TreeSHAP.

`booster.predict(..., pred_contribs=True)` gives, per lead, one additive contribution per feature plus a bias column,
in log-odds: contributions + bias = the model margin, and score = sigmoid(margin). We report the top-k features by
|contribution|. The booster is the very artifact file the predictor serves (in split mode the transformer loads its
own copy only for this), so the reasons explain the score the client got — except for a request KServe routes to
the other revision's predictor during a canary (docs/kubernetes.md, kserve/kserve#1669).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from contract.features import FEATURE_NAMES, FEATURES, N_FEATURES
from contract.model_card import find_booster
from transformer.codec import Tensor
from transformer.native_xgboost import NativeBooster

_NAMES = np.array(FEATURE_NAMES, dtype=object)
_LABELS = tuple(f.description for f in FEATURES)
_KINDS = tuple(f.kind for f in FEATURES)


class ReasonExplainer:
    def __init__(self, booster: NativeBooster):
        self.booster = booster

    @classmethod
    def from_model_dir(cls, model_dir: Path, nthread: int = 1) -> ReasonExplainer:
        """Load the artifact's booster. `model_card.load_card` has already checked it against the card's sha256, so
        the reasons explain the very model the predictor serves."""
        return cls(NativeBooster.from_model_dir(model_dir, nthread))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """[N, 51] float32: one log-odds contribution per feature, then the bias; each row sums to the margin."""
        data = np.ascontiguousarray(matrix, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != N_FEATURES:
            raise ValueError(f"expected a [N, {N_FEATURES}] matrix, got shape {list(data.shape)}")
        return self.booster.contributions(data)

    def top(self, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature indices [N, k] and signed contributions [N, k] by |contribution| descending, and the bias [N]."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= N_FEATURES:
            raise ValueError(f"k must be a whole number from 1 to {N_FEATURES}, got {k!r}")
        contribs = self.contributions(matrix)
        features, bias = contribs[:, :N_FEATURES], contribs[:, N_FEATURES]
        magnitude = np.abs(features)
        if k < N_FEATURES:
            # Partition first so only k columns per lead are sorted; ties beyond k are cut arbitrarily.
            candidates = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
        else:
            candidates = np.broadcast_to(np.arange(N_FEATURES), magnitude.shape)
        # Stable sort with candidates pre-ordered by feature index: equal magnitudes come out in feature order.
        candidates = np.sort(candidates, axis=1)
        order = np.argsort(-np.take_along_axis(magnitude, candidates, axis=1), axis=1, kind="stable")
        index = np.take_along_axis(candidates, order, axis=1)
        return index, np.take_along_axis(features, index, axis=1), bias

    def per_lead(self, matrix: np.ndarray, k: int) -> list[list[dict]]:
        """V1 form: per lead, the top-k reasons as dicts (feature, label, value, contribution, direction)."""
        return self.per_lead_from_top(matrix, *self.top(matrix, k))

    @staticmethod
    def per_lead_from_top(
        matrix: np.ndarray, index: np.ndarray, contribution: np.ndarray, bias: np.ndarray
    ) -> list[list[dict]]:
        values = np.take_along_axis(np.asarray(matrix), index, axis=1).tolist()
        result = []
        for lead_index, lead_values, lead_contribs in zip(
            index.tolist(), values, contribution.tolist(), strict=True
        ):
            result.append(
                [
                    {
                        "feature": FEATURE_NAMES[j],
                        "label": _LABELS[j],
                        "value": _plain(value, _KINDS[j]),
                        "contribution": c,
                        "direction": _direction(c),
                    }
                    for j, value, c in zip(lead_index, lead_values, lead_contribs, strict=True)
                ]
            )
        return result

    def tensors(self, matrix: np.ndarray, k: int) -> list[Tensor]:
        """V2 form: reason_feature BYTES [N, k], reason_contribution FP32 [N, k], margin_bias FP32 [N]."""
        return self.tensors_from_top(*self.top(matrix, k))

    @staticmethod
    def tensors_from_top(index: np.ndarray, contribution: np.ndarray, bias: np.ndarray) -> list[Tensor]:
        n, k = index.shape
        return [
            Tensor("reason_feature", "BYTES", [n, k], _NAMES[index]),
            Tensor("reason_contribution", "FP32", [n, k], contribution.astype(np.float32, copy=False)),
            Tensor("margin_bias", "FP32", [n], bias.astype(np.float32, copy=False)),
        ]


def output_metadata() -> list[dict]:
    """V2 model-metadata entries of the reason outputs (present only when a request asks for reasons).

    Both dimensions are variable: an answer carries [N, k], with k the request's own `reasons`."""
    return [
        {"name": "reason_feature", "datatype": "BYTES", "shape": [-1, -1]},
        {"name": "reason_contribution", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "margin_bias", "datatype": "FP32", "shape": [-1]},
    ]


def _direction(contribution: float) -> str:
    # An exact zero (a feature no tree of this lead's path splits on) neither raises nor lowers the score.
    return "raises" if contribution > 0 else "lowers" if contribution < 0 else "none"


def _plain(value: float, kind: str) -> float | int | bool | None:
    """The lead's value as the client sent it: null for missing, true/false, whole numbers as ints."""
    if value != value:  # NaN
        return None
    if kind == "bool":
        return bool(value)
    if kind in {"int", "category"}:
        return int(value)
    # The model saw a float32: show its shortest decimal form (0.1, not 0.10000000149011612).
    return float(str(np.float32(value)))


class LazyReasonExplainer:
    """Loads the booster on the first request that asks for reasons.

    In split mode the transformer needs xgboost only for reason codes; its C library and a loaded booster are ~11 MB
    of RSS in every replica (transformer/native_xgboost.py), for a feature that is off by default.
    """

    def __init__(self, model_dir: Path):
        find_booster(model_dir)  # a bad folder fails at start-up, not on the first request with reasons
        self._model_dir = model_dir
        self._explainer: ReasonExplainer | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> ReasonExplainer:
        with self._lock:  # top() runs in worker threads
            if self._explainer is None:
                self._explainer = ReasonExplainer.from_model_dir(self._model_dir)
            return self._explainer

    def top(self, matrix: np.ndarray, k: int):
        return self._loaded().top(matrix, k)

    per_lead_from_top = staticmethod(ReasonExplainer.per_lead_from_top)
    tensors_from_top = staticmethod(ReasonExplainer.tensors_from_top)
