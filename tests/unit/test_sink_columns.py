"""The lake's repeated per-request columns are what pyarrow's own kernels would build (`take`, `cast`), byte for
byte, for any values and lead counts — including non-ASCII text, empty strings and requests of zero leads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer.sink.columns import TIMESTAMP_UTC, repeated, timestamps_utc

requests = st.lists(
    st.tuples(
        st.text(max_size=12),
        st.integers(0, 7),
        st.floats(width=32, allow_nan=False),
        st.integers(-(2**50), 2**50),
    ),
    max_size=20,
)


def kernel_repeat(values: list, counts: list[int], dtype: pa.DataType) -> pa.Array:
    return pa.array(values, type=dtype).take(pa.array(np.repeat(np.arange(len(values)), counts)))


@settings(max_examples=200, deadline=None)
@given(requests)
def test_repeated_columns_equal_arrow_take(rows):
    texts, counts, floats, micros = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    counts_array = np.array(counts, dtype=np.int64)
    for values, dtype in ((texts, pa.string()), (floats, pa.float32()), (micros, pa.int64())):
        built = repeated(values, counts_array, dtype)
        built.validate(full=True)
        assert built.type == dtype
        assert built.equals(kernel_repeat(values, counts, dtype))
    stamps = timestamps_utc(micros, counts_array)
    assert stamps.type == TIMESTAMP_UTC
    assert stamps.equals(pc.cast(kernel_repeat(micros, counts, pa.int64()), TIMESTAMP_UTC))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=10))
def test_without_counts_each_value_is_stored_once(texts):
    assert repeated(texts, None, pa.string()).equals(pa.array(texts, type=pa.string()))
    micros = list(range(len(texts)))
    assert (
        timestamps_utc(micros).to_pylist() == pc.cast(pa.array(micros, pa.int64()), TIMESTAMP_UTC).to_pylist()
    )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 12).flatmap(
        lambda width: st.lists(
            st.tuples(st.text(alphabet="abcXYZ-0é", min_size=width, max_size=width), st.integers(0, 7)),
            max_size=20,
        )
    )
)
def test_repeated_strings_of_one_length_equal_arrow_take(rows):
    # Per-request values usually share a byte length (one model name, fixed-length ids), empty strings included;
    # "é" is two bytes, so lists of one character length also mix byte lengths.
    texts, counts = ([t for t, _ in rows], [c for _, c in rows]) if rows else ([], [])
    built = repeated(texts, np.array(counts, dtype=np.int64), pa.string())
    built.validate(full=True)
    assert built.equals(kernel_repeat(texts, counts, pa.string()))
