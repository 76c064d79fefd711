"""The long-lived proxy gives exactly `inplace_predict`'s scores, for every shape and layout the scorer can hand it."""

import asyncio

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from contract.model_card import load_booster
from transformer.predictors.dense_predict import DensePredictor
from transformer.predictors.inprocess import InProcessBooster


@pytest.fixture(scope="module")
def booster(small_artifact):
    return load_booster(small_artifact)


@pytest.fixture(scope="module")
def predict(booster):
    dense = DensePredictor(booster)
    yield dense
    dense.close()


def leads(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((n, 50)) * 50).astype(np.float32)
    matrix[rng.random((n, 50)) < 0.2] = np.nan
    return matrix


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 100, 1000])
def test_scores_are_bit_for_bit_those_of_inplace_predict(booster, predict, n):
    matrix = leads(n, seed=n)
    expected = booster.inplace_predict(matrix, missing=np.nan)
    got = predict(matrix)
    assert got.dtype == np.float32 and got.shape == (n,)
    assert np.array_equal(got, expected)


def test_each_answer_is_a_copy_not_xgboosts_reused_buffer(predict):
    first = predict(leads(10, seed=1))
    kept = first.copy()
    predict(leads(10, seed=2))
    assert np.array_equal(first, kept)


def test_views_fortran_order_and_float64_are_read_as_the_values_they_show(booster, predict):
    matrix = leads(40, seed=3)
    for view in (matrix[::2], np.asfortranarray(matrix), matrix.astype(np.float64), matrix[:, :][5:9]):
        expected = booster.inplace_predict(np.ascontiguousarray(view, dtype=np.float32), missing=np.nan)
        assert np.array_equal(predict(view), expected)


def test_no_rows_gives_no_scores(predict):
    assert predict(np.empty((0, 50), dtype=np.float32)).shape == (0,)


def test_a_matrix_of_the_wrong_width_raises_xgboosts_own_error(predict):
    with pytest.raises(xgb.core.XGBoostError, match="Number of columns"):
        predict(np.zeros((2, 49), dtype=np.float32))


def test_after_close_it_still_predicts_through_a_per_call_proxy(booster):
    dense = DensePredictor(booster)
    dense.close()
    dense.close()  # idempotent
    matrix = leads(5, seed=4)
    assert np.array_equal(dense(matrix), booster.inplace_predict(matrix, missing=np.nan))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.just(50)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_any_float32_matrix_scores_as_inplace_predict_does(booster, predict, matrix):
    assert np.array_equal(predict(matrix), booster.inplace_predict(matrix, missing=np.nan), equal_nan=True)


def test_the_in_process_predictor_uses_it_and_closes_it(small_artifact, booster):
    predictor = InProcessBooster(small_artifact)
    matrix = leads(7, seed=5)
    scores = asyncio.run(predictor.predict(matrix))
    assert np.array_equal(scores, booster.inplace_predict(matrix, missing=np.nan))
    asyncio.run(predictor.close())
    assert not predictor._predict._proxy  # freed
