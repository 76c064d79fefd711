"""The measures of realised quality, on (score, label) arrays: vectorised numpy, no Python loop over rows.

AUC and log-loss are the training code's own (contract/measures.py), so the card's held-out AUC and the realised one
are computed the same way.
"""

from __future__ import annotations

import numpy as np

from contract.measures import auc, log_loss

TIERS = ("A", "B", "C", "D", "E")
DECILES = 10


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p.astype(np.float64) - y) ** 2))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = DECILES) -> list[dict]:
    """Predicted vs observed by score decile (equal-count bins of this population's scores)."""
    if y.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    rows = []
    for decile, part in enumerate(np.array_split(order, bins), start=1):
        if part.size == 0:
            continue
        rows.append(
            {
                "decile": decile,
                "leads": int(part.size),
                "score_min": float(p[part].min()),
                "score_max": float(p[part].max()),
                "predicted": float(p[part].mean()),
                "observed": float(y[part].mean()),
            }
        )
    return rows


def calibration_error(table: list[dict]) -> float:
    """Expected calibration error: the lead-weighted mean |predicted - observed| over the deciles."""
    total = sum(r["leads"] for r in table)
    return (
        float(sum(r["leads"] * abs(r["predicted"] - r["observed"]) for r in table) / total)
        if total
        else float("nan")
    )


def summarise(y: np.ndarray, p: np.ndarray, base_rate: float) -> dict:
    """The measures of one group of labelled leads. AUC needs both classes: NaN otherwise."""
    n = int(y.size)
    positives = int(y.sum())
    both = 0 < positives < n
    rate = positives / n if n else float("nan")
    return {
        "labelled_leads": n,
        "conversions": positives,
        "conversion_rate": rate,
        "lift": rate / base_rate if n and base_rate > 0 else float("nan"),
        "mean_score": float(p.mean()) if n else float("nan"),
        "auc": auc(y, p) if both else float("nan"),
        "log_loss": log_loss(y, p) if n else float("nan"),
        "brier": brier(y, p) if n else float("nan"),
    }


def conversion_rate_stderr(rate: float, n: int) -> float:
    return float(np.sqrt(rate * (1 - rate) / n)) if n else float("nan")
