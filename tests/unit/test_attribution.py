"""The attribution rule (docs/model-quality.md): which scoring each outcome judges."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contract.features import FEATURE_NAMES
from contract.outcomes import outcome_key
from quality.attribution import Window, attribute, has_outcome_files, labels_of, named_scorings_unused
from quality.lake import Lake
from quality.report import measure
from quality.training_set import training_set
from transformer.sink.schema import feature_column_names

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
    assert counts == {
        "converted": 2,
        "disqualified": 2,
        "open": 2,
        "labelled_leads": 2,
        "labelled_before_window": 0,
    }


# ---- the label does not depend on the report window ------------------------------------------------------------


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


FEATURES = feature_column_names(FEATURE_NAMES)


def write_scoring(
    root,
    scoring_id: str,
    lead: str,
    when: datetime,
    *,
    model: str = "lead-scoring",
    version: str = "v1",
    score: float = 0.5,
    feature: float | None = 1.0,
) -> None:
    """One scoring row in its own file of the real layout; `feature` None: a row written without features."""
    folder = root / f"model={model}/dt={when:%Y-%m-%d}/hour={when:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "scoring_id": [scoring_id],
            "request_id": ["r"],
            "row": pa.array([0], pa.int32()),
            "lead_id": [lead],
            "scored_at": pa.array([when], TS),
            "model_name": [model],
            "model_version": [version],
            "score": pa.array([score], pa.float32()),
            "tier": ["C"],
            **{column: pa.array([feature], pa.float32()) for column in FEATURES},
        }
    )
    pq.write_table(table, folder / f"{scoring_id}-{model}.parquet")


def write_lake(root, scored: list[tuple], outcome_rows: list[tuple]) -> Lake:
    """A file lake in the real layout. scored: (scoring_id, lead_id, scored_at); outcome_rows: (lead_id, outcome,
    occurred_at[, named scoring_id]), each in its `dt=` partition (the UTC day of occurred_at), one file per day."""
    for scoring_id, lead, when in scored:
        write_scoring(root, scoring_id, lead, when)
    by_day: dict[str, list[tuple]] = {}
    for row in outcome_rows:
        by_day.setdefault(f"{row[2]:%Y-%m-%d}", []).append(row)
    for name, rows in by_day.items():
        folder = root / "_outcomes" / f"dt={name}"
        folder.mkdir(parents=True)
        table = pa.table(
            {
                "outcome_id": [outcome_key(*r[:3]) for r in rows],
                "lead_id": [r[0] for r in rows],
                "outcome": [r[1] for r in rows],
                "occurred_at": pa.array([r[2] for r in rows], TS),
                "scoring_id": pa.array([r[3] if len(r) > 3 else None for r in rows], pa.string()),
                "deal_value": pa.array([None] * len(rows), pa.float64()),
            }
        )
        pq.write_table(table, folder / "20261101T000000Z-test.parquet")
    return Lake(root.as_uri())


def measured_labels(lake: Lake, since: str, until: str, label_window_days: float = 30) -> dict[str, int]:
    """{lead: label} of the leads the quality job attributes in [since, until) (the report's pipeline)."""
    result = measure(lake, Window(day(since), day(until), timedelta(days=label_window_days)))
    attributed = result.attributed.to_pylist() if result.attributed is not None else []
    return {r["lead_id"]: r["label"] for r in attributed}


def trained_labels(lake: Lake, since: str, until: str, label_window_days: float = 30) -> dict[str, int]:
    """{lead: label} of the training set from the lake over [since, until) (predictor.train --from-lake)."""
    data = training_set(lake, Window(day(since), day(until), timedelta(days=label_window_days)))
    return dict(zip(data.lead_ids, data.y.tolist(), strict=True))


FLIP_FLOPS = (
    # E9: disqualified in September, converted in October. Its label is 0, and it belongs to September.
    [("s-e9", "E9", day("2026-09-15"))],
    [("E9", "disqualified", day("2026-09-20")), ("E9", "converted", day("2026-10-10"))],
)
MIRROR = (
    # M1: converted in September, disqualified in October. Its label is 1, and it belongs to September.
    [("s-m1", "M1", day("2026-09-15"))],
    [("M1", "converted", day("2026-09-20")), ("M1", "disqualified", day("2026-10-10"))],
)


def test_a_lead_labelled_before_the_window_is_not_relabelled_by_a_later_outcome_in_it(tmp_path):
    """The lead's first terminal outcome decides, whatever window the report covers: E9 was 0 in a September report
    and became 1 in an October one (its October 'converted' was taken as the label)."""
    lake = write_lake(tmp_path / "lake", FLIP_FLOPS[0] + MIRROR[0], FLIP_FLOPS[1] + MIRROR[1])
    assert measured_labels(lake, "2026-09-01", "2026-10-01") == {"E9": 0, "M1": 1}
    assert measured_labels(lake, "2026-09-01", "2026-11-01") == {"E9": 0, "M1": 1}
    # October: both leads were labelled in September; their October outcomes are not labels.
    assert measured_labels(lake, "2026-10-01", "2026-11-01") == {}
    # A window that starts between the two outcomes, so the first lies in the partition of --since's own day.
    assert measured_labels(lake, "2026-09-20T12:00:00", "2026-11-01") == {}


def test_the_training_set_takes_the_same_labels(tmp_path):
    lake = write_lake(tmp_path / "lake", FLIP_FLOPS[0] + MIRROR[0], FLIP_FLOPS[1] + MIRROR[1])
    assert trained_labels(lake, "2026-09-01", "2026-10-01") == {"E9": 0, "M1": 1}
    assert trained_labels(lake, "2026-10-01", "2026-11-01") == {}


def test_with_since_earlier_outcomes_choose_the_label_but_are_neither_counted_nor_labelled_here():
    labels, counts = labels_of(
        outcomes(
            [
                ("o1", "E", "disqualified", -3, None),  # history: E was labelled 0 before the window
                ("o2", "E", "converted", 4, None),
                (
                    "o3",
                    "F",
                    "open",
                    -2,
                    None,
                ),  # history, not terminal: F's first terminal outcome is in the window
                ("o4", "F", "converted", 5, None),
                ("o5", "G", "disqualified", 6, None),
            ]
        ),
        since=T0,
    )
    assert {r["lead_id"]: r["label"] for r in labels.to_pylist()} == {"F": 1, "G": 0}
    assert counts == {
        "converted": 2,
        "disqualified": 1,
        "open": 0,
        "labelled_leads": 2,
        "labelled_before_window": 1,
    }


def test_history_is_read_back_one_label_window_and_no_further(tmp_path, monkeypatch):
    """The documented bound (docs/model-quality.md § Measures): outcomes are read from --since minus the label
    window. R was disqualified in June, scored again in late September and converted in October: with a 30-day
    window the June outcome is not read, so R is labelled by its October outcome — on the September scoring only,
    made after the June outcome; the June scoring keeps its own label, 0, in a report that covers June."""
    lake = write_lake(
        tmp_path / "lake",
        [("s-r1", "R", day("2026-06-01")), ("s-r2", "R", day("2026-09-25"))],
        [("R", "disqualified", day("2026-06-05")), ("R", "converted", day("2026-10-10"))],
    )
    listed = []
    original = Lake.list

    def spy(self, under=""):
        listed.append(under)
        return original(self, under)

    monkeypatch.setattr(Lake, "list", spy)
    result = measure(lake, Window(day("2026-10-01"), day("2026-11-01"), timedelta(days=30)))
    assert [(r["lead_id"], r["scoring_id"], r["label"]) for r in result.attributed.to_pylist()] == [
        ("R", "s-r2", 1)
    ]
    outcome_days = sorted(u[3:] for u in listed if u.startswith("dt="))
    assert outcome_days and min(outcome_days) >= "2026-09-01"  # nothing before --since minus the label window
    june = measure(lake, Window(day("2026-06-01"), day("2026-07-01"), timedelta(days=30)))
    assert [(r["lead_id"], r["scoring_id"], r["label"]) for r in june.attributed.to_pylist()] == [
        ("R", "s-r1", 0)
    ]


def test_an_outcomes_table_without_a_file_is_told_apart_from_a_quiet_window(tmp_path):
    assert not has_outcome_files(Lake((tmp_path / "nowhere").as_uri()))
    (tmp_path / "empty" / "dt=2026-10-01").mkdir(parents=True)  # a folder, but no outcome file in it
    assert not has_outcome_files(Lake((tmp_path / "empty").as_uri()))
    lake = write_lake(tmp_path / "lake", [], [("L", "open", day("2026-01-05"))])
    assert has_outcome_files(lake.child("_outcomes"))


def test_outcomes_naming_a_scoring_their_lead_never_had_or_an_ineligible_one_are_counted(tmp_path):
    """A CRM that stores the request id, or another lead's scoring_id, instead of the answer's scoring_id: those
    labels fell back to the latest scoring without a trace in the report. Matched on (lead, scoring): the leads of one
    request share its scoring_id, so an id that exists for another lead is not this lead's. A named scoring that
    exists but is after the outcome, or older than the label window, was counted as found."""
    lake = write_lake(
        tmp_path / "lake",
        [
            ("s-a", "A", day("2026-10-02")),
            ("s-a2", "A", day("2026-10-04")),
            ("s-b", "B", day("2026-10-03")),
            ("s-c", "C", day("2026-10-03")),
            ("s-d", "D", day("2026-10-03")),
            (
                "s-f-old",
                "F",
                day("2026-09-05"),
            ),  # read (its day is in the span), but 50 days before F's outcome
            ("s-f", "F", day("2026-10-20")),
            ("s-g", "G", day("2026-10-05")),
            ("s-g-late", "G", day("2026-10-26")),  # after G's outcome
        ],
        [
            ("A", "converted", day("2026-10-10"), "s-a"),  # names its own, older scoring: found, and it wins
            ("B", "disqualified", day("2026-10-10"), "s-c"),  # names C's scoring
            ("C", "converted", day("2026-10-10"), "request-7f3a"),  # names something never issued
            ("D", "disqualified", day("2026-10-10")),  # names nothing
            ("E", "open", day("2026-10-10"), "s-d"),  # not a label
            ("F", "converted", day("2026-10-25"), "s-f-old"),
            ("G", "converted", day("2026-10-25"), "s-g-late"),
            ("H", "converted", day("2026-10-25"), "s-h"),  # never scored at all: not found, and unattributed
            ("I", "converted", day("2026-10-25"), ""),  # an empty id names nothing
        ],
    )
    result = measure(lake, Window(day("2026-10-01"), day("2026-11-01"), timedelta(days=30)))
    assert result.counts["labels_naming_a_scoring"] == 6
    assert result.counts["named_scoring_not_found"] == 3  # B, C, H
    assert result.counts["named_scoring_not_eligible"] == 2  # F, G
    assert result.counts["unattributed_labels"] == 2  # H, I
    picked_ids = {r["lead_id"]: r["scoring_id"] for r in result.attributed.to_pylist()}
    assert picked_ids == {"A": "s-a", "B": "s-b", "C": "s-c", "D": "s-d", "F": "s-f", "G": "s-g"}
    from quality.report import markdown

    report = markdown(result)
    assert "| named scoring not found | 3 |" in report and "| named scoring not eligible | 2 |" in report


def test_named_scorings_unused_without_any_scoring_read():
    labels, _ = labels_of(outcomes([("o1", "L", "converted", 3, "s-x"), ("o2", "M", "converted", 3, None)]))
    assert named_scorings_unused(labels, None, WINDOW) == (1, 1, 0)
    assert named_scorings_unused(labels.slice(1), None, WINDOW) == (0, 0, 0)


def test_the_training_set_never_takes_a_shadow_row_in_place_of_the_live_scoring(tmp_path):
    """Shadow rows (the legacy endpoint's answers) carry the live scoring's id, no features, and a later scored_at:
    they won both the named rule and the latest rule, so the booster trained on empty rows and the card compared
    the candidate with the legacy endpoint's scores."""
    lake = write_lake(
        tmp_path / "lake",
        [("s-a", "A", day("2026-10-02")), ("s-b", "B", day("2026-10-03")), ("s-c", "C", day("2026-10-03"))],
        [
            ("A", "converted", day("2026-10-10"), "s-a"),
            ("B", "disqualified", day("2026-10-10")),
            ("C", "converted", day("2026-10-10")),
        ],
    )
    for scoring_id, lead, when in (("s-a", "A", day("2026-10-02")), ("s-b", "B", day("2026-10-03"))):
        shadow = dict(model="lead-scoring-shadow", version="sagemaker:eu/legacy", score=0.9, feature=None)
        write_scoring(tmp_path / "lake", scoring_id, lead, when + timedelta(seconds=1), **shadow)
    data = training_set(lake, Window(day("2026-10-01"), day("2026-11-01"), timedelta(days=30)))
    assert data.lead_ids == ["A", "B", "C"]
    assert (data.x == 1.0).all()  # the live rows' features, none of the shadow rows' nulls
    assert data.served_scores.tolist() == [0.5, 0.5, 0.5]
    assert data.served_versions == ["v1"]
    assert data.y.tolist() == [1, 0, 1]


def test_a_lake_without_recorded_features_is_refused_for_training(tmp_path):
    lake = write_lake(
        tmp_path / "lake", [("s-a", "A", day("2026-10-02"))], [("A", "converted", day("2026-10-10"))]
    )
    (only,) = (tmp_path / "lake").rglob("s-a-lead-scoring.parquet")
    table = pq.read_table(only)
    for column in FEATURES:
        table = table.set_column(
            table.schema.get_field_index(column), column, pa.array([None] * table.num_rows, pa.float32())
        )
    pq.write_table(table, only)
    with pytest.raises(ValueError, match=r"carry no features \(--sink_include_features false\)"):
        training_set(lake, Window(day("2026-10-01"), day("2026-11-01"), timedelta(days=30)))
