"""The booster called through xgboost's C library answers exactly as the xgboost Python package does — scores as
`inplace_predict`, contributions as `predict(pred_contribs=True)` — for every shape and layout the scorer can hand
it, and reports xgboost's own errors. The package is imported here only as the reference."""

import asyncio
import subprocess  # nosec B404: our own interpreter, fixed code
import sys
import textwrap
import threading

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from contract.model_card import find_booster, load_booster
from hack.stack import ROOT
from transformer.native_xgboost import NativeBooster, XGBoostError
from transformer.predictors.inprocess import InProcessBooster


@pytest.fixture(scope="module")
def booster(small_artifact):
    return load_booster(small_artifact)


@pytest.fixture(scope="module")
def native(small_artifact):
    loaded = NativeBooster.from_model_dir(small_artifact)
    yield loaded
    loaded.close()


def leads(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((n, 50)) * 50).astype(np.float32)
    matrix[rng.random((n, 50)) < 0.2] = np.nan
    return matrix


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 100, 1000])
def test_scores_are_bit_for_bit_those_of_inplace_predict(booster, native, n):
    matrix = leads(n, seed=n)
    expected = booster.inplace_predict(matrix, missing=np.nan)
    got = native.predict(matrix)
    assert got.dtype == np.float32 and got.shape == (n,)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("n", [1, 7, 100])
def test_contributions_are_bit_for_bit_those_of_pred_contribs(booster, native, n):
    matrix = leads(n, seed=100 + n)
    expected = booster.predict(xgb.DMatrix(matrix, missing=np.nan), pred_contribs=True)
    got = native.contributions(matrix)
    assert got.dtype == np.float32 and got.shape == (n, 51)
    assert np.array_equal(got, expected)


def test_the_model_is_the_one_in_the_folder(small_artifact, native):
    assert native.num_features == 50
    other = leads(3, seed=9)
    again = NativeBooster(find_booster(small_artifact).read_bytes())
    assert np.array_equal(again.predict(other), native.predict(other))


def test_each_answer_is_a_copy_not_xgboosts_reused_buffer(native):
    first = native.predict(leads(10, seed=1))
    kept = first.copy()
    native.predict(leads(10, seed=2))
    native.contributions(leads(10, seed=3))
    assert np.array_equal(first, kept)


def test_views_fortran_order_and_float64_are_read_as_the_values_they_show(booster, native):
    matrix = leads(40, seed=3)
    for view in (matrix[::2], np.asfortranarray(matrix), matrix.astype(np.float64), matrix[:, :][5:9]):
        expected = booster.inplace_predict(np.ascontiguousarray(view, dtype=np.float32), missing=np.nan)
        assert np.array_equal(native.predict(view), expected)
        assert np.array_equal(
            native.contributions(view),
            booster.predict(xgb.DMatrix(np.ascontiguousarray(view, dtype=np.float32)), pred_contribs=True),
        )


def test_no_rows_gives_no_scores(native):
    assert native.predict(np.empty((0, 50), dtype=np.float32)).shape == (0,)


def test_a_matrix_of_the_wrong_width_raises_xgboosts_own_error(native):
    with pytest.raises(XGBoostError, match="Number of columns"):
        native.predict(np.zeros((2, 49), dtype=np.float32))
    with pytest.raises(XGBoostError, match=r"expected a \[N, 50\] matrix, got shape \[2, 49\]"):
        native.contributions(np.zeros((2, 49), dtype=np.float32))
    assert native.predict(leads(1, seed=1)).shape == (1,)  # and it still scores afterwards


def test_bytes_that_are_not_a_model_raise_xgboosts_error():
    with pytest.raises(XGBoostError):
        NativeBooster(b"\x00not a model at all")


def test_after_close_it_still_predicts_through_a_per_call_proxy(small_artifact, booster):
    loaded = NativeBooster.from_model_dir(small_artifact)
    loaded.close()
    loaded.close()  # idempotent
    matrix = leads(5, seed=4)
    assert np.array_equal(loaded.predict(matrix), booster.inplace_predict(matrix, missing=np.nan))


def test_threads_scoring_at_once_each_get_their_own_answers(booster, native):
    # Reason codes run in worker threads while the event loop scores: xgboost's result buffers are per thread.
    matrices = [leads(20 + i, seed=200 + i) for i in range(8)]
    expected = [booster.inplace_predict(m, missing=np.nan) for m in matrices]
    failures: list[str] = []

    def work(i: int) -> None:
        for _ in range(50):
            if not np.array_equal(native.predict(matrices[i]), expected[i]):
                failures.append(f"thread {i}")
            native.contributions(matrices[i][:2])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(matrices))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.just(50)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_any_float32_matrix_scores_as_inplace_predict_does(booster, native, matrix):
    assert np.array_equal(
        native.predict(matrix), booster.inplace_predict(matrix, missing=np.nan), equal_nan=True
    )


def test_the_in_process_predictor_uses_it_and_closes_it(small_artifact, booster):
    predictor = InProcessBooster(small_artifact)
    matrix = leads(7, seed=5)
    scores = asyncio.run(predictor.predict(matrix))
    assert np.array_equal(scores, booster.inplace_predict(matrix, missing=np.nan))
    asyncio.run(predictor.close())
    assert not predictor.booster._proxy  # freed


def test_xgboosts_own_messages_go_to_the_log_not_to_stderr(small_artifact):
    # The server's log is JSON lines; a stray line on stderr from the C library would break it. A fresh interpreter:
    # importing xgboost's Python package (as this module does, for reference) would register the package's callback.
    code = textwrap.dedent(
        f"""
        import logging, sys
        import numpy as np
        from pathlib import Path
        logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(name)s|%(message)s")
        from transformer.native_xgboost import NativeBooster, library
        assert library().XGBSetGlobalConfig(b'{{"verbosity": 3}}') == 0  # debug: load and predict say something
        NativeBooster.from_model_dir(Path({str(small_artifact)!r})).predict(np.ones((2, 50), np.float32))
        print("xgboost" in sys.modules)
        """
    )
    done = subprocess.run(  # nosec B603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "False"  # the package was never imported
    assert any(line.startswith("transformer.xgboost|xgboost: ") for line in lines[:-1]), done.stdout


def test_the_objective_is_the_boosters_own(booster, native, small_artifact, tmp_path):
    """What the Python package's save_config() says, for the served booster and for a margin variant."""
    import json

    from tests.support.batch_models import booster_variant

    assert native.objective == json.loads(booster.save_config())["learner"]["objective"]["name"]
    assert native.objective == "binary:logistic"
    margins = booster_variant(small_artifact, tmp_path / "m", params={"objective": "binary:logitraw"})
    assert NativeBooster.from_model_dir(margins).objective == "binary:logitraw"
    with pytest.raises(ValueError, match="objective is binary:logitraw, not binary:logistic"):
        InProcessBooster(margins)
