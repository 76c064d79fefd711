"""The quick accept in front of validation (issue 17) says "valid" exactly when the full check finds no problem."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from contract.features import FEATURES
from contract.validation import all_valid, find_problems, validate_matrix
from hack.bench_peers.workload import lead_matrix
from predictor.synthetic import sample_features

_LOW = np.array([f.minimum for f in FEATURES])
_HIGH = np.array([f.maximum for f in FEATURES])

# Cells near every edge a rule has: the bounds, just past them, fractions, missing, ±inf.
_EDGES = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 0.5, 1.0, -0.5, 1e300])


@st.composite
def lead_matrices(draw):
    rows = draw(st.integers(1, 4))
    matrix = sample_features(rows, seed=draw(st.integers(0, 10_000)))
    cells = draw(
        st.lists(
            st.tuples(
                st.integers(0, rows - 1),
                st.integers(0, len(FEATURES) - 1),
                st.sampled_from(["low", "high", "below", "above", "frac", "edge"]),
                _EDGES,
            ),
            max_size=4,
        )
    )
    for r, c, where, edge in cells:
        matrix[r, c] = {
            "low": _LOW[c],
            "high": _HIGH[c],
            "below": _LOW[c] - 1,
            "above": _HIGH[c] + 1,
            "frac": _LOW[c] + 0.5,
            "edge": edge,
        }[where]
    return matrix


@settings(max_examples=400, deadline=None)
@given(lead_matrices())
def test_quick_accept_agrees_with_the_full_check(matrix):
    assert all_valid(matrix) == (find_problems(matrix)[1] == 0)


@given(arrays(np.float64, (2, len(FEATURES)), elements=st.floats(allow_nan=True, allow_infinity=True)))
@settings(deadline=None)
def test_quick_accept_agrees_on_arbitrary_floats(matrix):
    assert all_valid(matrix) == (find_problems(matrix)[1] == 0)


def test_realistic_leads_take_the_quick_path_and_pass():
    matrix = lead_matrix(200).astype(np.float64)
    assert all_valid(matrix)
    validate_matrix(matrix)  # no exception
    missing_optional = sample_features(200, seed=5)
    assert np.isnan(missing_optional).any() and all_valid(missing_optional)
