"""A CRM export's columns → the float64 matrix the contract validates: typed Parquet and untyped CSV agree, flags
read as the JSON API reads them, stray cells are named, wrong columns and types stop the run."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from batch.columns import check_columns, feature_matrix
from batch.errors import InputError
from contract.features import FEATURE_INDEX, FEATURE_NAMES
from hack.bench_batch import crm_table
from predictor.synthetic import sample_features


def _batch(n: int = 40) -> tuple[pa.RecordBatch, np.ndarray]:
    x = sample_features(n, seed=13)
    return crm_table(x).to_batches()[0], x


def _as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """What a CSV gives: every cell as text, flags as true/false, missing as null."""
    columns = []
    for column in batch.columns:
        if pa.types.is_boolean(column.type):
            text = pa.array([None if v is None else ("true" if v else "false") for v in column.to_pylist()])
        else:
            text = column.cast(pa.string())
        columns.append(text)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def test_typed_export_gives_the_population_exactly():
    batch, x = _batch()
    matrix, unparsable = feature_matrix(batch, "crm.parquet")
    np.testing.assert_array_equal(matrix, x)
    assert matrix.dtype == np.float64 and unparsable == {}


def test_csv_text_gives_the_same_matrix():
    batch, x = _batch()
    matrix, unparsable = feature_matrix(_as_text(batch), "crm.csv")
    np.testing.assert_array_equal(matrix, x)
    assert unparsable == {}


def test_csv_cells_flags_blanks_and_stray_text():
    batch, _ = _batch(4)
    text = _as_text(batch)
    flag = FEATURE_INDEX["demo_requested"] + 1
    count = FEATURE_INDEX["touches_30d"] + 1
    optional = FEATURE_INDEX["intent_score"] + 1
    columns = text.columns
    columns[flag] = pa.array(["TRUE", " false ", "1", "maybe"])
    columns[count] = pa.array(["3", "4.0", "lots", " 7 "])
    columns[optional] = pa.array(["", None, "  ", "12.5"])
    matrix, unparsable = feature_matrix(
        pa.RecordBatch.from_arrays(columns, names=text.schema.names), "crm.csv"
    )
    assert matrix[:3, flag - 1].tolist() == [1.0, 0.0, 1.0]
    assert matrix[[0, 1, 3], count - 1].tolist() == [3.0, 4.0, 7.0]
    assert np.isnan(matrix[:3, optional - 1]).all() and matrix[3, optional - 1] == 12.5
    assert unparsable == {3: [("demo_requested", "maybe")], 2: [("touches_30d", "lots")]}
    assert np.isnan(matrix[3, flag - 1]) and np.isnan(matrix[2, count - 1])


def test_a_column_of_words_is_a_wrong_export():
    batch, _ = _batch(13)
    text = _as_text(batch)
    columns = text.columns
    columns[FEATURE_INDEX["industry"] + 1] = pa.array(["software", "retail"] * 6 + [None])
    with pytest.raises(InputError, match="column industry holds text"):
        feature_matrix(pa.RecordBatch.from_arrays(columns, names=text.schema.names), "crm.csv")


def test_missing_columns_are_named_and_extra_ones_ignored():
    batch, _ = _batch(2)
    schema = batch.schema.remove(batch.schema.get_field_index("region")).append(
        pa.field("owner", pa.string())
    )
    with pytest.raises(InputError, match=r"missing column\(s\) region;"):
        check_columns(schema, "crm.parquet")
    check_columns(batch.schema.append(pa.field("owner", pa.string())), "crm.parquet")


def test_wrong_types_are_named():
    batch, _ = _batch(2)
    schema = batch.schema.set(batch.schema.get_field_index("region"), pa.field("region", pa.string()))
    schema = schema.set(
        schema.get_field_index("employee_count"), pa.field("employee_count", pa.timestamp("s"))
    )
    with pytest.raises(InputError, match=r"employee_count is timestamp\[s\]; region is string"):
        check_columns(schema, "crm.parquet")
    check_columns(
        schema.set(schema.get_field_index("employee_count"), pa.field("employee_count", pa.int32())),
        "crm.csv",
        text_cells=True,
    )


def test_integer_lead_ids_are_fine():
    batch, _ = _batch(2)
    schema = batch.schema.set(0, pa.field("lead_id", pa.int64()))
    check_columns(schema, "crm.parquet")
    assert FEATURE_NAMES[0] in schema.names


def test_one_stray_cell_in_a_sparse_column_rejects_its_row_only():
    batch, _ = _batch(30)
    text = _as_text(batch)
    columns = text.columns
    columns[FEATURE_INDEX["intent_score"] + 1] = pa.array([None] * 29 + ["n/a"])
    columns[FEATURE_INDEX["touches_30d"] + 1] = pa.array(["1_000"] + ["2"] * 29)
    _, unparsable = feature_matrix(pa.RecordBatch.from_arrays(columns, names=text.schema.names), "crm.csv")
    assert unparsable == {29: [("intent_score", "n/a")], 0: [("touches_30d", "1_000")]}
