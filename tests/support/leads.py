"""Leads for requests: the synthetic population as JSON can carry it."""

from __future__ import annotations

import numpy as np

from contract.features import FEATURES


def filled(x: np.ndarray) -> np.ndarray:
    """A copy with every missing value set to the feature's minimum (JSON tensors cannot carry NaN)."""
    out = x.copy()
    for i, feature in enumerate(FEATURES):
        out[np.isnan(out[:, i]), i] = feature.minimum
    return out
