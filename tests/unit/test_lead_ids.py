"""Lead ids on the three request forms: a string of 1..128 printable characters (V1 may send a whole number,
written as its decimal string); ragged, nested, non-string, over-long and control-character ids are a 400 naming
row, field and rule — never a Python repr in the answer or the lake."""

from __future__ import annotations

import numpy as np
import pytest

from contract.lead_ids import MAX_LEAD_ID_LENGTH
from predictor.synthetic import as_records, sample_features
from transformer.codec import LEAD_ID, Tensor, decode_v1, decode_v2
from transformer.errors import InvalidRequest
from transformer.v2_request import parse_json

X = np.nan_to_num(sample_features(2, seed=9), nan=1.0)


def v1(*ids) -> list[str]:
    records = as_records(X[: len(ids)])
    for record, lead_id in zip(records, ids, strict=True):
        record[LEAD_ID] = lead_id
    return decode_v1({"instances": records}, 10).lead_ids


def v2_json(data, shape=None) -> list[str]:
    n = len(data) if isinstance(data, list) else 1
    body = {
        "inputs": [
            {"name": "leads", "datatype": "FP32", "shape": [2, 50], "data": X.ravel().tolist()},
            {"name": LEAD_ID, "datatype": "BYTES", "shape": shape or [n], "data": data},
        ]
    }
    return decode_v2(parse_json(body).inputs, 10).lead_ids


def v2_tensor(ids: np.ndarray, shape=None, datatype="BYTES") -> list[str]:
    return decode_v2(
        [Tensor("leads", "FP32", [2, 50], X), Tensor(LEAD_ID, datatype, shape or list(ids.shape), ids)], 10
    ).lead_ids


def refused(call, *args) -> dict:
    with pytest.raises(InvalidRequest) as info:
        call(*args)
    assert "'" + "str" + "'" not in info.value.message and "object has no attribute" not in info.value.message
    return info.value.problems[0]


def test_good_ids_pass_on_every_form_and_v1_integers_become_strings():
    assert v1("acme-001", 42) == ["acme-001", "42"]
    assert v1(None, "x") == ["0", "x"]
    assert v2_json(["a b", "ü-7"]) == ["a b", "ü-7"]
    assert v2_tensor(np.array([b"g-1", "ü-2".encode()], dtype=object)) == ["g-1", "ü-2"]
    assert v1("x" * MAX_LEAD_ID_LENGTH, "y")[0] == "x" * MAX_LEAD_ID_LENGTH


@pytest.mark.parametrize(
    "bad,rule",
    [
        ({"a": [1, 2]}, "type"),
        ([1], "type"),
        (1.5, "type"),
        (True, "type"),
        ("x" * (MAX_LEAD_ID_LENGTH + 1), "length"),
        ("", "length"),
        ("a\nb", "printable"),
        ("tab\there", "printable"),
        ("\x1b[31mred", "printable"),
        (10**400, "length"),
    ],
)
def test_v1_refuses_anything_but_a_short_printable_string_or_a_whole_number(bad, rule):
    problem = refused(v1, "ok", bad)
    assert (problem["row"], problem["field"], problem["rule"]) == (1, LEAD_ID, rule)
    assert "{'a'" not in problem["message"]


def test_a_10000_character_id_is_refused_and_not_echoed():
    with pytest.raises(InvalidRequest) as info:
        v1("x" * 10_000, "y")
    assert "10000 characters" in info.value.message and len(info.value.message) < 300


def test_v2_json_ragged_nested_and_non_string_ids_are_refused():
    assert refused(v2_json, [["a"], ["b", "c"]])["field"] == LEAD_ID  # ragged (the example)
    assert refused(v2_json, [["a"], ["b"]], [2])["field"] == LEAD_ID  # nested, even if it fits
    assert refused(v2_json, [1, 2])["field"] == LEAD_ID  # numbers
    assert refused(v2_json, ["a", "b\x00"])["rule"] == "printable"
    assert refused(v2_json, ["a", "x" * 200])["rule"] == "length"


def test_v2_tensor_ids_need_bytes_of_shape_n_valid_utf8_and_printable():
    assert refused(v2_tensor, np.array(["a", "b"], dtype=object), [2], "FP32")["rule"] == "datatype"
    assert refused(v2_tensor, np.array([b"a", b"b"], dtype=object).reshape(2, 1), [2, 1])["rule"] == "shape"
    assert refused(v2_tensor, np.array([b"a"], dtype=object), [1])["rule"] == "shape"  # 1 id for 2 leads
    assert refused(v2_tensor, np.array([b"a", b"\xff\xfe"], dtype=object))["rule"] == "encoding"
    assert refused(v2_tensor, np.array([b"a", b"line\r\n"], dtype=object))["rule"] == "printable"
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [b"a"], [b"b", b"c"]
    assert refused(v2_tensor, ragged)["rule"] == "type"
