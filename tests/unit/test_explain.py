"""Reason codes: xgboost TreeSHAP contributions of a small booster trained here, top-k, V1 dicts and V2 tensors."""

import math

import numpy as np
import pytest
import xgboost as xgb

from contract.features import FEATURE_INDEX, FEATURES, N_FEATURES
from contract.model_card import load_booster
from predictor.synthetic import sample_features, sample_population
from predictor.train import train
from transformer.extras.reasons import ReasonExplainer, output_metadata


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    x, y = sample_population(20_000, seed=3)
    folder = tmp_path_factory.mktemp("model")
    card = train(
        x, y, folder, seed=3, name="lead-scoring", version="test", threads=2, rounds=60, source="test"
    )
    return folder, card


@pytest.fixture(scope="module")
def explainer(artifact):
    folder, card = artifact
    return ReasonExplainer.from_model_dir(folder)


@pytest.fixture(scope="module")
def reference(artifact):
    """The same artifact through xgboost's Python package, as kserve-xgbserver loads it."""
    folder, card = artifact
    return load_booster(folder)


@pytest.fixture(scope="module")
def leads():
    return sample_features(300, seed=11).astype(np.float32)


def test_contributions_and_bias_sum_to_the_margin(explainer, reference, leads):
    contributions = explainer.contributions(leads)
    assert contributions.shape == (300, N_FEATURES + 1)
    margins = reference.predict(xgb.DMatrix(leads, missing=np.nan), output_margin=True)
    np.testing.assert_allclose(contributions.sum(axis=1), margins, atol=1e-4, rtol=0)
    # ... and the score is the sigmoid of that margin, so clients can rebuild it.
    scores = reference.inplace_predict(leads, missing=np.nan)
    np.testing.assert_allclose(1 / (1 + np.exp(-contributions.sum(axis=1))), scores, atol=1e-5)


def test_top_k_are_the_largest_contributions_in_order_with_their_signs(explainer, leads):
    k = 4
    contributions = explainer.contributions(leads)[:, :N_FEATURES]
    reasons = explainer.per_lead(leads, k)
    assert len(reasons) == len(leads)
    for row, lead_reasons in enumerate(reasons):
        assert len(lead_reasons) == k
        chosen = [FEATURE_INDEX[r["feature"]] for r in lead_reasons]
        assert len(set(chosen)) == k
        magnitudes = [abs(r["contribution"]) for r in lead_reasons]
        assert magnitudes == sorted(magnitudes, reverse=True)
        others = np.delete(np.abs(contributions[row]), chosen)
        assert min(magnitudes) >= others.max()
        for reason, column in zip(lead_reasons, chosen, strict=True):
            assert reason["contribution"] == pytest.approx(float(contributions[row, column]), abs=1e-7)
            expected = (
                "raises" if reason["contribution"] > 0 else "lowers" if reason["contribution"] < 0 else "none"
            )
            assert reason["direction"] == expected
    directions = {r["direction"] for lead_reasons in reasons for r in lead_reasons}
    assert {"raises", "lowers"} <= directions


def test_labels_come_from_the_feature_model_and_values_from_the_lead(explainer, leads):
    reasons = explainer.per_lead(leads[:50], N_FEATURES)
    saw_missing = False
    for row, lead_reasons in enumerate(reasons):
        assert sorted(r["feature"] for r in lead_reasons) == sorted(f.name for f in FEATURES)
        for reason in lead_reasons:
            spec = FEATURES[FEATURE_INDEX[reason["feature"]]]
            assert reason["label"] == spec.description
            sent = float(leads[row, FEATURE_INDEX[reason["feature"]]])
            if math.isnan(sent):
                assert reason["value"] is None
                saw_missing = True
            else:
                assert reason["value"] == pytest.approx(sent, rel=1e-6)
                expected_type = {"bool": bool, "int": int, "category": int, "float": float}[spec.kind]
                assert type(reason["value"]) is expected_type
    assert saw_missing  # synthetic leads miss optional fields, so the None path is exercised


@pytest.mark.parametrize("k", [0, -1, N_FEATURES + 1, 2.5, True, "3"])
def test_k_outside_1_to_50_is_refused(explainer, leads, k):
    with pytest.raises(ValueError, match="k must be"):
        explainer.per_lead(leads[:2], k)
    with pytest.raises(ValueError, match="k must be"):
        explainer.tensors(leads[:2], k)


def test_k_of_1_and_50_are_allowed(explainer, leads):
    assert [len(r) for r in explainer.per_lead(leads[:3], 1)] == [1, 1, 1]
    assert [len(r) for r in explainer.per_lead(leads[:3], N_FEATURES)] == [N_FEATURES] * 3


def test_v2_tensors_have_the_documented_names_shapes_and_types(explainer, leads):
    k = 3
    tensors = {t.name: t for t in explainer.tensors(leads, k)}
    assert list(tensors) == ["reason_feature", "reason_contribution", "margin_bias"]
    feature, contribution, bias = (
        tensors["reason_feature"],
        tensors["reason_contribution"],
        tensors["margin_bias"],
    )
    assert (feature.datatype, feature.shape, feature.data.shape) == ("BYTES", [300, k], (300, k))
    assert all(isinstance(name, str) for name in feature.data.ravel())
    assert (contribution.datatype, contribution.shape, contribution.data.dtype) == (
        "FP32",
        [300, k],
        np.float32,
    )
    assert contribution.data.shape == (300, k)
    assert (bias.datatype, bias.shape, bias.data.dtype, bias.data.shape) == (
        "FP32",
        [300],
        np.float32,
        (300,),
    )
    # Same reasons as the V1 form.
    v1 = explainer.per_lead(leads, k)
    assert feature.data.tolist() == [[r["feature"] for r in lead] for lead in v1]
    np.testing.assert_allclose(
        contribution.data, [[r["contribution"] for r in lead] for lead in v1], atol=1e-7
    )


def test_all_50_contributions_plus_bias_from_the_tensors_give_the_margin(explainer, reference, leads):
    tensors = {t.name: t for t in explainer.tensors(leads, N_FEATURES)}
    margins = reference.predict(xgb.DMatrix(leads, missing=np.nan), output_margin=True)
    rebuilt = tensors["reason_contribution"].data.sum(axis=1) + tensors["margin_bias"].data
    np.testing.assert_allclose(rebuilt, margins, atol=1e-4, rtol=0)


def test_a_matrix_of_the_wrong_width_is_refused(explainer):
    with pytest.raises(ValueError, match=r"\[N, 50\]"):
        explainer.contributions(np.zeros((2, 49), dtype=np.float32))


def test_model_metadata_gives_the_reason_outputs_a_variable_k():
    """An answer carries [N, k] with the request's own k: a fixed second dimension would promise a shape no answer
    has (a client sizing buffers from metadata would break)."""
    shapes = {o["name"]: o["shape"] for o in output_metadata()}
    assert shapes == {"reason_feature": [-1, -1], "reason_contribution": [-1, -1], "margin_bias": [-1]}
