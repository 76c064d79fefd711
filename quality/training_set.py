"""A training set from the lake: the features recorded with each attributed scoring, and the lead's label.

The attribution rule is the quality job's (quality/attribution.py), applied across model versions: per labelled
lead (label = its first terminal outcome, the same whatever the window), the scoring the outcome names by
`scoring_id` if it is eligible, else the latest scoring before the outcome within the label window. A scoring made
after the outcome is never used — its features may already reflect the outcome (a won deal changes engagement,
status, meetings), which would leak the label into training.

Only scorings that recorded features are candidates. Shadow rows (the legacy endpoint's answers,
`model=<name>-shadow`, docs/migration.md) record none, carry the live scoring's `scoring_id` and are stamped when the
legacy call returns, after the live row: they would win the named rule and the latest rule alike, and the booster
would learn from empty rows and the legacy endpoint's scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.features import FEATURE_NAMES
from quality import attribution
from quality.attribution import Window
from quality.lake import Lake
from transformer.sink.schema import feature_column_names


@dataclass
class TrainingSet:
    x: np.ndarray  # [n, 50] float64, NaN = missing
    y: np.ndarray  # [n] int8
    served_scores: np.ndarray  # [n] the score the serving model gave that very scoring
    served_versions: list[str]
    lead_ids: list[str]
    window: Window


def training_set(lake: Lake, window: Window, *, outcomes: Lake | None = None) -> TrainingSet:
    """`outcomes`: the outcomes table, when not <lake>/_outcomes (predictor.train --outcomes-uri)."""
    outcomes = attribution.read_outcomes(lake, window, outcomes=outcomes)
    labels, _ = attribution.labels_of(outcomes, since=window.since)
    keys = attribution.score_keys(lake, window.scorings_from, window.until)
    columns = feature_column_names(FEATURE_NAMES)
    scorings = attribution.read_scorings(lake, keys, labels["lead_id"], features=columns)
    if scorings.num_rows:
        recorded = _recorded_features(scorings, columns)
        if not pc.any(recorded).as_py():
            raise ValueError(
                "the lake's scorings carry no features (--sink_include_features false): cannot train from it"
            )
        scorings = scorings.filter(recorded)
    versions = sorted(set(pc.unique(scorings["model_version"]).to_pylist())) if scorings.num_rows else []
    # One row per lead, whichever version made the attributed scoring: the features are the lead's, not the model's.
    index = scorings.schema.get_field_index("model_version")
    scorings = scorings.set_column(index, "model_version", pa.array(["any"] * scorings.num_rows, pa.string()))
    # Sorted by lead: the join's row order depends on threads, and the same lake must give the same booster.
    chosen = attribution.attribute(scorings, labels, window.label_window).sort_by("lead_id")
    x = (
        np.column_stack([pc.fill_null(chosen[c].cast(pa.float64()), np.nan).to_numpy() for c in columns])
        if chosen.num_rows
        else np.empty((0, len(columns)))
    )
    return TrainingSet(
        x=x,
        y=chosen["label"].to_numpy().astype(np.int8) if chosen.num_rows else np.empty(0, np.int8),
        served_scores=chosen["score"].to_numpy().astype(np.float64) if chosen.num_rows else np.empty(0),
        served_versions=versions,
        lead_ids=chosen["lead_id"].to_pylist() if chosen.num_rows else [],
        window=window,
    )


def _recorded_features(table: pa.Table, columns: list[str]) -> pa.ChunkedArray:
    """Per row: whether any feature is present. A row written without features has every feature column null; so
    has a lead sent with all its features missing (the lake stores a missing value as null), which gives a booster
    nothing to learn from either."""
    recorded = pc.is_valid(table[columns[0]])
    for column in columns[1:]:
        recorded = pc.or_(recorded, pc.is_valid(table[column]))
    return recorded
