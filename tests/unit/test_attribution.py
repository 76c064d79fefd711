"""The attribution rule (docs/model-quality.md): which scoring each outcome judges."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from quality.attribution import attribute, labels_of

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = timedelta(days=90)
TS = pa.timestamp("us", tz="UTC")


def scorings(rows: list[tuple]) -> pa.Table:
    """rows: (scoring_id, lead_id, day, model_version, score)"""
    return pa.table(
        {
            "scoring_id": [r[0] for r in rows],
            "lead_id": [r[1] for r in rows],
            "scored_at": pa.array([T0 + timedelta(days=r[2]) for r in rows], TS),
            "model_version": [r[3] for r in rows],
            "score": pa.array([r[4] for r in rows], pa.float32()),
            "tier": ["A"] * len(rows),
        }
    )


def outcomes(rows: list[tuple]) -> pa.Table:
    """rows: (outcome_id, lead_id, outcome, day, scoring_id)"""
    return pa.table(
        {
            "outcome_id": [r[0] for r in rows],
            "lead_id": [r[1] for r in rows],
            "outcome": [r[2] for r in rows],
            "occurred_at": pa.array([T0 + timedelta(days=r[3]) for r in rows], TS),
            "scoring_id": pa.array([r[4] for r in rows], pa.string()),
            "deal_value": pa.array([None] * len(rows), pa.float64()),
        }
    )


def picked(scored: pa.Table, outcome_rows: list[tuple]) -> dict[tuple, str]:
    labels, _ = labels_of(outcomes(outcome_rows))
    table = attribute(scored, labels, WINDOW)
    return {(r["lead_id"], r["model_version"]): (r["scoring_id"], r["label"]) for r in table.to_pylist()}


def test_latest_scoring_before_the_outcome_wins_and_later_ones_are_never_used():
    scored = scorings([("s1", "L", 1, "v1", 0.1), ("s2", "L", 5, "v1", 0.2), ("late", "L", 11, "v1", 0.9)])
    assert picked(scored, [("o1", "L", "converted", 10, None)]) == {("L", "v1"): ("s2", 1)}


def test_a_scoring_older_than_the_label_window_does_not_count():
    scored = scorings([("old", "L", 0, "v1", 0.3)])
    assert picked(scored, [("o1", "L", "disqualified", 91, None)]) == {}
    assert picked(scored, [("o1", "L", "disqualified", 89, None)]) == {("L", "v1"): ("old", 0)}


def test_the_scoring_an_outcome_names_wins_over_a_later_one():
    scored = scorings([("s1", "L", 1, "v1", 0.1), ("s2", "L", 5, "v1", 0.2)])
    assert picked(scored, [("o1", "L", "converted", 10, "s1")]) == {("L", "v1"): ("s1", 1)}
    # A named scoring made after the outcome is not eligible: the latest eligible one is used instead.
    scored = scorings([("s1", "L", 1, "v1", 0.1), ("after", "L", 12, "v1", 0.2)])
    assert picked(scored, [("o1", "L", "converted", 10, "after")]) == {("L", "v1"): ("s1", 1)}


def test_each_model_version_is_judged_on_its_own_latest_scoring():
    scored = scorings([("a", "L", 1, "v1", 0.1), ("b", "L", 2, "v2", 0.2), ("c", "M", 3, "v2", 0.4)])
    assert picked(scored, [("o1", "L", "converted", 10, None), ("o2", "M", "disqualified", 10, None)]) == {
        ("L", "v1"): ("a", 1),
        ("L", "v2"): ("b", 1),
        ("M", "v2"): ("c", 0),
    }


def test_open_is_not_a_label_and_the_first_terminal_outcome_decides():
    labels, counts = labels_of(
        outcomes(
            [
                ("o1", "L", "open", 2, None),
                ("o2", "L", "disqualified", 5, None),
                ("o3", "L", "converted", 9, None),
                ("o4", "M", "open", 3, None),
                ("o5", "N", "disqualified", 4, None),
                ("o6", "N", "converted", 4, None),
            ]
        )
    )
    assert {r["lead_id"]: (r["label"], r["occurred_at"].day) for r in labels.to_pylist()} == {
        "L": (0, 6),
        "N": (1, 5),
    }
    assert counts == {"converted": 2, "disqualified": 2, "open": 2, "labelled_leads": 2}
