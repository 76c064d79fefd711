"""Decoding the three request forms and the vectorised checks: every rule with its message."""

from __future__ import annotations

import numpy as np
import pytest

from contract.features import FEATURE_INDEX, FEATURE_NAMES, FEATURES
from contract.validation import LeadsRejected, validate_matrix
from predictor.synthetic import as_records, sample_features
from transformer.codec import Tensor, decode_v1, decode_v2, encode_v1, encode_v2
from transformer.errors import InvalidRequest

X = sample_features(50, seed=2)


def columns(x: np.ndarray, names=FEATURE_NAMES) -> list[Tensor]:
    return [Tensor(n, "FP64", [len(x)], x[:, FEATURE_INDEX[n]]) for n in names]


def rejected(fn, *args) -> InvalidRequest:
    with pytest.raises((InvalidRequest, LeadsRejected)) as info:
        fn(*args)
    return info.value


def test_three_forms_decode_to_the_same_matrix():
    ids = [f"L{i}" for i in range(len(X))]
    v1 = decode_v1({"instances": as_records(X, ids)}, 1000)
    cols = decode_v2(
        columns(X)
        + [Tensor("lead_id", "BYTES", [len(X)], np.array([i.encode() for i in ids], dtype=object))],
        1000,
    )
    tensor = decode_v2([Tensor("anything", "FP32", [len(X), 50], X.astype(np.float32))], 1000)
    for decoded, form in ((v1, "v1_instances"), (cols, "v2_columns"), (tensor, "v2_tensor")):
        assert decoded.form == form
        np.testing.assert_array_equal(decoded.matrix.astype(np.float32), X.astype(np.float32))
    assert v1.lead_ids == ids == cols.lead_ids
    assert tensor.lead_ids == [str(i) for i in range(len(X))]


def test_optional_columns_may_be_left_out_required_ones_may_not():
    optional = [f.name for f in FEATURES if not f.required]
    decoded = decode_v2(columns(X, [n for n in FEATURE_NAMES if n not in optional]), 1000)
    assert np.isnan(decoded.matrix[:, FEATURE_INDEX[optional[0]]]).all()
    error = rejected(decode_v2, columns(X, [n for n in FEATURE_NAMES if n != "touches_30d"]), 1000)
    assert error.problems[0]["field"] == "touches_30d" and error.problems[0]["rule"] == "required"


@pytest.mark.parametrize(
    "feature,value,rule,text",
    [
        ("employee_count", 0, "minimum", "employee_count must be >= 1, got 0"),
        ("tech_fit_score", 101, "maximum", "tech_fit_score must be <= 100, got 101"),
        ("touches_30d", 2.5, "integer", "touches_30d must be a whole number, got 2.5"),
        ("demo_requested", 2, "boolean", "demo_requested must be true/false (0 or 1), got 2"),
        ("industry", 15, "enumeration", "industry must be one of the codes 0..14"),
        ("web_visits_30d", None, "required", "web_visits_30d is required and may not be missing or null"),
        ("annual_revenue_musd", float("inf"), "finite", "annual_revenue_musd must be a finite number"),
    ],
)
def test_every_rule_names_row_field_rule_and_value(feature, value, rule, text):
    x = X.copy()
    x[7, FEATURE_INDEX[feature]] = np.nan if value is None else value
    error = rejected(validate_matrix, x)
    assert error.problems == [
        {
            "row": 7,
            "field": feature,
            "rule": rule,
            "value": error.problems[0]["value"],
            "message": error.problems[0]["message"],
        }
    ]
    assert f"row 7: {text}" in error.message
    assert isinstance(error, LeadsRejected)  # the serving side maps it to 400 (tested through the server)


def test_problems_are_capped_but_counted():
    x = X.copy()
    x[:, FEATURE_INDEX["employee_count"]] = 0
    error = rejected(validate_matrix, x, 5)
    assert len(error.problems) == 5 and error.total == len(X)
    assert f"and {len(X) - 5} more" in error.message


def test_v1_rejects_unknown_names_and_non_numbers():
    records = as_records(X[:3])
    records[1]["favourite_colour"] = 3
    records[2]["employee_count"] = "many"
    error = rejected(decode_v1, {"instances": records}, 1000)
    assert error.problems[0]["rule"] == "unknown_feature" and "favourite_colour" in error.message
    records[1].pop("favourite_colour")
    error = rejected(decode_v1, {"instances": records}, 1000)
    assert error.problems[0] == {
        "row": 2,
        "field": "employee_count",
        "rule": "type",
        "value": "many",
        "message": "row 2: employee_count must be a number, true/false or null, got str",
    }
    assert rejected(decode_v1, {"instances": "nope"}, 1000).problems[0]["field"] == "instances"


def test_lead_count_limits():
    assert rejected(decode_v1, {"instances": []}, 10).problems[0]["rule"] == "lead_count"
    error = rejected(decode_v2, [Tensor("t", "FP32", [11, 50], np.zeros((11, 50), np.float32))], 10)
    assert "11 > 10" in error.message


def test_tensor_form_shape_and_datatype_errors():
    assert (
        "shape [N, 50]" in rejected(decode_v2, [Tensor("t", "FP32", [2, 49], np.zeros((2, 49)))], 10).message
    )
    assert (
        rejected(decode_v2, [Tensor("t", "INT64", [2, 50], np.zeros((2, 50)))], 10).problems[0]["rule"]
        == "datatype"
    )
    cols = columns(X)
    cols[0] = Tensor(cols[0].name, "BYTES", cols[0].shape, cols[0].data)
    assert rejected(decode_v2, cols, 1000).problems[0]["rule"] == "datatype"


def test_responses_in_both_protocols():
    scores = np.array([0.9, 0.1], np.float32)
    buckets = np.array([5, 1], np.int32)
    tiers = np.array(["A", "E"], dtype=object)
    v2 = {t.name: t for t in encode_v2(scores, buckets, tiers, ["a", "b"])}
    assert [v2[n].datatype for n in ("score", "bucket", "tier", "lead_id")] == [
        "FP32",
        "INT32",
        "BYTES",
        "BYTES",
    ]
    v1 = encode_v1(scores, buckets, tiers, ["a", "b"], "lead-scoring", "v9")
    assert v1["predictions"][0] == {"lead_id": "a", "score": pytest.approx(0.9), "bucket": 5, "tier": "A"}
    assert v1["model_version"] == "v9"


def test_reason_codes_are_capped_per_request(small_artifact):
    import asyncio

    from contract.model_card import load_card
    from transformer.auth import KeyStore
    from transformer.extras.reasons import ReasonExplainer
    from transformer.scoring import Extras, Scorer, ScoringLimits, ScoringRequest

    class Zeros:
        mode = "fake"

        async def predict(self, matrix, headers=None):
            return np.zeros(len(matrix), dtype=np.float32)

    scorer = Scorer(
        load_card(small_artifact),
        Zeros(),
        KeyStore(env_keys="t:k"),
        model_name="lead-scoring",
        limits=ScoringLimits(reasons_max_leads=10),
        extras=Extras(explainer=ReasonExplainer.from_model_dir(small_artifact)),
    )

    def score(n):
        return asyncio.run(
            scorer.score_v1(
                ScoringRequest("rest", f"r{n}"),
                "k",
                {"instances": as_records(X[:n]), "parameters": {"reasons": 3}},
            )
        )

    error = rejected(score, 11)
    assert error.problems[0]["rule"] == "lead_count" and "--reasons_max_leads" in error.message
    answer = score(10)
    assert len(answer["predictions"]) == 10 and all(len(p["reasons"]) == 3 for p in answer["predictions"])
    # 3.0 is the JSON integer 3 (the OpenAPI document's `integer`); it was refused as "not a whole number".
    whole_float = asyncio.run(
        scorer.score_v1(
            ScoringRequest("rest", "r-float"),
            "k",
            {"instances": as_records(X[:2]), "parameters": {"reasons": 3.0}},
        )
    )
    assert all(len(p["reasons"]) == 3 for p in whole_float["predictions"])


def test_reasons_max_beyond_the_number_of_features_is_refused_at_start():
    """--reasons_max 60 started, advertised 60 in /openapi.json, and `reasons: 55` ended in a 500."""
    from transformer.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--reasons_max", "60"])
    assert build_parser().parse_args(["--reasons_max", "50"]).reasons_max == 50
