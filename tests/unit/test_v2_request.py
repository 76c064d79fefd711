"""The V2 request parser on its own: whatever bytes arrive, a V2Request or an InvalidRequest that names the
problem — never another exception (it would be a 500), never an int64 product."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transformer.errors import InvalidRequest
from transformer.v2_request import check_requested_outputs, parse_binary, parse_json, tensor_from_grpc

PROPERTY = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def binary(header: dict, tail: bytes = b"") -> tuple[bytes, str]:
    head = orjson.dumps(header)
    return head + tail, str(len(head))


def message(call, *args) -> str:
    with pytest.raises(InvalidRequest) as info:
        call(*args)
    return info.value.message


def test_a_binary_request_with_every_datatype_layout():
    x = np.arange(6, dtype="<f4").reshape(2, 3)
    ids = b"".join(struct.pack("<I", len(s)) + s for s in (b"a", b"bc"))
    body, length = binary(
        {
            "id": "r1",
            "parameters": {"binary_data_output": True},
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": x.nbytes},
                },
                {"name": "flag", "datatype": "BOOL", "shape": [2], "data": [True, False]},
                {
                    "name": "lead_id",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(ids)},
                },
            ],
        },
        x.tobytes() + ids,
    )
    request = parse_binary(body, length)
    assert request.id == "r1" and request.binary and request.parameters == {"binary_data_output": True}
    np.testing.assert_array_equal(request.inputs[0].data, x.ravel())
    assert request.inputs[1].data.tolist() == [1.0, 0.0]
    assert request.inputs[2].data.tolist() == [b"a", b"bc"]


@pytest.mark.parametrize(
    "header,tail,words",
    [
        (
            {
                "inputs": [
                    {"name": "b", "datatype": "BOOL", "shape": [1], "parameters": {"binary_data_size": 1}}
                ]
            },
            b"\x02",
            "BOOL bytes must be 0 or 1",
        ),
        (
            {
                "inputs": [
                    {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 7}}
                ]
            },
            struct.pack("<I", 1) + b"a" + b"\x05\x00",
            "cut short",
        ),
        (
            {
                "inputs": [
                    {"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}
                ]
            },
            struct.pack("<I", 99) + b"ab",
            "claims 99 bytes",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [1],
                        "data": [1],
                        "parameters": {"binary_data_size": 4},
                    }
                ]
            },
            bytes(4),
            "both 'data' and binary_data_size",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": "4"}}
                ]
            },
            bytes(4),
            "binary_data_size must be a whole number",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP64",
                        "shape": [2**62, 4],
                        "parameters": {"binary_data_size": 0},
                    }
                ]
            },
            b"",
            "18446744073709551616 FP64 values take",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": "score"},
            b"",
            "'outputs'",
        ),
    ],
)
def test_malformed_binary_bodies_name_the_problem(header, tail, words):
    assert words in message(parse_binary, *binary(header, tail))


def test_header_length_rules():
    body, _ = binary({"inputs": []})
    assert "whole number of bytes" in message(parse_binary, body, "1e3")
    assert "whole number of bytes" in message(parse_binary, body, "9" * 40)
    assert f"body has {len(body)} bytes" in message(parse_binary, body, str(len(body) + 1))
    assert "not valid JSON" in message(parse_binary, body, "3")


def test_json_inputs_need_data_and_cannot_use_binary_sizes():
    assert "'data' is missing" in message(
        parse_json, {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}
    )
    assert "needs the binary tensor extension" in message(
        parse_json,
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]},
    )
    assert "numbers, true/false or null" in message(
        parse_json, {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["1.5"]}]}
    )  # no silent string → number


def test_grpc_raw_contents_are_counted_in_python_ints():
    assert "needs 18446744073709551650 values" in message(
        tensor_from_grpc, "x", "FP32", [368934881474191033, 50], [0.0] * 34, None
    )
    assert "out of range" in message(tensor_from_grpc, "x", "FP32", [-1, 50], None, bytes(200))
    assert "50 FP32 values take 200" in message(tensor_from_grpc, "x", "FP32", [1, 50], None, bytes(199))


def _bytes_body(elements: list[bytes]) -> tuple[bytes, str]:
    data = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    shape = [len(elements)]
    return binary(
        {
            "inputs": [
                {
                    "name": "lead_id",
                    "datatype": "BYTES",
                    "shape": shape,
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        },
        data,
    )


def test_binary_bytes_elements_must_be_utf8_and_are_never_echoed():
    with pytest.raises(InvalidRequest) as info:
        parse_binary(*_bytes_body([b"ok", b"\xff\xfe", b"b", b"\xc3"]))
    refused = info.value
    assert "input 'lead_id': BYTES element 1 is not valid UTF-8 (2 elements are not)" in refused.message
    assert refused.problems[0] | {"message": None} == {
        "row": 1,
        "field": "lead_id",
        "rule": "encoding",
        "value": None,
        "message": None,
    }
    assert refused.total == 2 and "xff" not in repr(refused.body())
    assert parse_binary(*_bytes_body(["ü-1".encode(), b""])).inputs[0].data.tolist() == ["ü-1".encode(), b""]
    json_data = {"inputs": [{"name": "lead_id", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
    assert parse_binary(*binary(json_data)).inputs[0].data.tolist() == ["a"]  # JSON data beside binary: text


@PROPERTY
@given(elements=st.lists(st.binary(max_size=4) | st.text(max_size=3).map(str.encode), max_size=4))
def test_what_the_binary_guard_accepts_kserves_decoder_decodes(elements):
    """parse_binary runs before KServe's `InferRequest.from_bytes` (serving/binary_guard.py): whatever it accepts,
    the decoder must turn into JSON data too, or the client gets KServe's 500."""
    from kserve import InferRequest

    body, length = _bytes_body(elements)
    try:
        parse_binary(body, length)
    except InvalidRequest:
        return
    InferRequest.from_bytes(body, int(length), "m")


def test_requested_outputs_are_checked_by_name_and_parameter():
    produced, reasons = ["score", "tier"], ["margin_bias"]
    check_requested_outputs([("tier", None), ("score", {"binary_data": True})], produced, reasons, False)
    check_requested_outputs([("margin_bias", {})], produced, reasons, True)
    cases = [
        (
            [("nope", None)],
            False,
            "outputs[0].name 'nope' is not an output of this model; the outputs are "
            "score, tier (and margin_bias with parameters.reasons)",
        ),
        (
            [("tier", None), ("margin_bias", None)],
            False,
            "outputs[1].name 'margin_bias' is produced only with reason codes",
        ),
        ([("x", None)], True, "the outputs are score, tier, margin_bias"),
        (
            [("score", {"binary_data": "yes"})],
            False,
            "outputs[0].parameters.binary_data must be true or false",
        ),
        (
            [("score", {"classification": 3})],
            False,
            "'classification' is not an output parameter served here",
        ),
    ]
    for requested, with_reasons, words in cases:
        assert words in message(check_requested_outputs, requested, produced, reasons, with_reasons)


@PROPERTY
@given(body=st.binary(max_size=200), length=st.text(max_size=6))
def test_any_bytes_and_header_length_parse_or_are_refused(body, length):
    try:
        parse_binary(body, length)
    except InvalidRequest as refused:
        orjson.dumps(refused.body())


json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["name", "datatype", "shape", "data", "parameters", "binary_data_size", "inputs"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=16,
)


@PROPERTY
@given(header=json_values, tail=st.binary(max_size=40))
def test_any_json_header_parses_or_is_refused(header, tail):
    try:
        head = orjson.dumps(header)
    except TypeError:  # integers past 64 bits: no client can send that JSON
        return
    try:
        parse_binary(head + tail, str(len(head)))
    except InvalidRequest as refused:
        orjson.dumps(refused.body())


def test_parameter_values_are_scalars_or_null_at_every_level():
    """The Open Inference Protocol's `$parameter`: bool, number or string (null reads as absent here)."""
    from transformer.v2_request import without_null_parameters

    tensor = {"name": "input-0", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}
    for body, where in (
        ({"inputs": [tensor], "parameters": {"reasons": [3]}}, "parameters.reasons must be"),
        ({"inputs": [{**tensor, "parameters": {"x": {"y": 1}}}]}, "input 'input-0': parameters.x must be"),
        (
            {"inputs": [tensor], "outputs": [{"name": "score", "parameters": {"b": []}}]},
            "outputs[0]: parameters.b",
        ),
    ):
        with pytest.raises(InvalidRequest, match="must be a bool, number or string") as refused:
            parse_json(body)
        assert where in refused.value.message
    scalars = {"inputs": [tensor], "parameters": {"reasons": 3, "b": True, "s": "x", "f": 1.5}}
    assert parse_json(scalars).parameters == scalars["parameters"]
    assert without_null_parameters(scalars) is None  # nothing to take out: the same body goes on
    nulls = {
        "inputs": [{**tensor, "parameters": {"x": None, "keep": 1}}],
        "parameters": {"reasons": None},
        "outputs": [{"name": "score", "parameters": {"binary_data": None}}],
    }
    assert parse_json(nulls).parameters == {"reasons": None}
    assert without_null_parameters(nulls) == {
        "inputs": [{**tensor, "parameters": {"keep": 1}}],
        "parameters": {},
        "outputs": [{"name": "score", "parameters": {}}],
    }
