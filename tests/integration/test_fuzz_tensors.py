"""Hypothesis against the real server process: the binary tensor extension, and shape / datatype / size extremes
on REST (binary and JSON) and gRPC (typed contents and raw_input_contents).

Shapes whose int64 product wraps around, zero, negative and huge dimensions, unknown datatypes, binary_data_size
negative / too large / not a number, byte counts that do not fill the shape, header lengths that are not numbers
or point past the body. Whatever arrives: a 2xx or a 4xx `{"error": ...}` (gRPC: OK or INVALID_ARGUMENT), never a
5xx / INTERNAL / UNKNOWN, never an exception class name in the answer, and an answer within seconds (no hang).
"""

from __future__ import annotations

import json
import re
import secrets
import struct

import grpc
import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from contract.features import FEATURES, N_FEATURES
from hack.stack import MODEL_NAME, start_transformer
from predictor.synthetic import sample_features

KEY = "tensors-" + secrets.token_hex(12)
INFER = f"/v2/models/{MODEL_NAME}/infer"
FUZZ = settings(
    max_examples=120, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
# "KeyError : 'inputs'", "ValueError", "AttributeError": what KServe's own handler used to put in the answer.
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback")
INT64 = (-(2**63), 2**63 - 1)
LOW = np.array([f.minimum for f in FEATURES])
WIRE_SIZE = {
    "BOOL": 1,
    "INT8": 1,
    "UINT8": 1,
    "INT16": 2,
    "UINT16": 2,
    "FP16": 2,
    "INT32": 4,
    "UINT32": 4,
    "FP32": 4,
    "INT64": 8,
    "UINT64": 8,
    "FP64": 8,
}

extreme_dims = st.sampled_from(
    [0, 1, 2, 50, -1, -2, 2**31, 2**32, 4294967296, 368934881474191033, 2**62, 2**63 - 1, -(2**63)]
)
dims = st.one_of(st.integers(0, 4), st.just(N_FEATURES), extreme_dims, st.integers(-10, 10**6))
shapes = st.one_of(st.lists(dims, max_size=4), st.tuples(st.integers(0, 3), st.just(N_FEATURES)).map(list))
datatypes = st.one_of(
    st.sampled_from(sorted(WIRE_SIZE) + ["BYTES"]), st.sampled_from(["FP8", "", "fp32", "STRING"])
)
names = st.sampled_from(["leads", "lead_id", "employee_count", "input-0", ""])


def _wrapping(d: int, dims: int = 2) -> tuple[list[int], int]:
    """A shape whose element count, taken modulo 2**64 as int64 arithmetic does, is a handful: (shape, that
    handful). Data of that many values fills the shape for a decoder that multiplies in int64."""
    q = -(-(2**64) // d)
    return ([q, d] if dims == 2 else [q, d, 1]), q * d - 2**64


# (shape, wrapped count): [368934881474191033, 50] holds 2**64 + 34 values, [2**32, 2**32, 1] holds 2**64.
wrapping = st.sampled_from(
    [_wrapping(50), _wrapping(3), _wrapping(7, 3), ([2**32, 2**32, 1], 0), ([2**63, 2], 0)]
)


@pytest.fixture(scope="module")
def server(small_artifact, tmp_path_factory):
    transformer = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp("tensor-fuzz-logs"),
        api_keys=f"fuzz:{KEY}",
        extra_args=["--max_leads", "50"],
    )
    transformer.wait_ready()
    yield transformer
    transformer.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10, headers={"x-api-key": KEY}) as http:
        yield http


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield GRPCInferenceServiceStub(channel)


def _fits(shape: list, datatype: str) -> int:
    """The byte count the shape needs (Python ints), capped: the fuzzer never allocates it."""
    count = 1
    for d in shape:
        count *= max(d, 0)
    return min(count * WIRE_SIZE.get(datatype, 4), 4096)


@st.composite
def binary_inputs(draw):
    """(header entry, bytes) of one input: sizes sometimes right, mostly wrong in every way there is."""
    datatype, shape = draw(datatypes), draw(shapes)
    wrapped = None
    if draw(st.integers(0, 4)) == 0:
        shape, wrapped = draw(wrapping)
    entry: dict = {"name": draw(names), "datatype": datatype, "shape": shape}
    for key in draw(st.sets(st.sampled_from(["name", "datatype", "shape"]), max_size=1)):
        del entry[key]  # a field missing
    exact = _fits(shape, datatype)
    if datatype == "BYTES":
        data = b"".join(
            struct.pack("<I", len(s)) + s for s in draw(st.lists(st.binary(max_size=6), max_size=4))
        )
        data += draw(
            st.sampled_from([b"", b"\x01", b"\xff\xff\xff\x7f"])
        )  # truncated / lying length prefixes
    else:
        data = draw(
            st.sampled_from([bytes(exact), bytes(max(exact - 1, 0)), bytes(exact + 3)])
            | st.binary(max_size=64)
        )
        if wrapped is not None:
            data = bytes(wrapped * WIRE_SIZE.get(datatype, 4))
    size = draw(
        st.one_of(
            st.just(len(data)),
            st.sampled_from([-8, -1, 0, 2**31, 2**63, 2**64 - 1]),
            st.sampled_from([1.5, "8", None, True, [8]]),
        )
    )
    if draw(st.booleans()) or size is None:
        entry["parameters"] = {"binary_data_size": size}
    return entry, data


@st.composite
def binary_bodies(draw):
    """(Inference-Header-Content-Length value, body)."""
    shaped = draw(st.lists(binary_inputs(), max_size=3))
    header = draw(
        st.one_of(
            st.just({"inputs": [entry for entry, _ in shaped]}),
            st.just({"no_inputs": 1}),
            st.just({"inputs": "x"}),
            st.just({"inputs": []}),
            st.just([1, 2]),
            st.just(
                {
                    "inputs": [entry for entry, _ in shaped],
                    "outputs": [{"name": "score"}],
                    "parameters": {"binary_data_output": True},
                }
            ),
            st.just({"inputs": [entry for entry, _ in shaped], "id": 5, "parameters": "x"}),
        )
    )
    head = orjson.dumps(header)
    body = head + b"".join(data for _, data in shaped) + draw(st.sampled_from([b"", b"\x00" * 7]))
    length = draw(
        st.one_of(
            st.just(str(len(head))),
            st.sampled_from(
                [
                    "abc",
                    "",
                    "-1",
                    "0",
                    "1e3",
                    "+12",
                    str(len(body) + 1),
                    str(2**64),
                    "9" * 40,
                    str(len(head) - 1),
                ]
            ),
        )
    )
    return length, body


def _assert_sane_rest(response: httpx.Response, shown: str) -> None:
    assert response.status_code < 500, shown
    assert not CLASS_NAME.search(response.text), shown
    if response.status_code >= 400:
        assert isinstance(response.json().get("error"), str), shown


@FUZZ
@given(request=binary_bodies())
def test_binary_extension_never_5xx(client, request):
    length, body = request
    response = client.post(
        INFER,
        content=body,
        headers={"content-type": "application/octet-stream", "inference-header-content-length": length},
    )
    _assert_sane_rest(response, f"{length!r} {body[:300]!r} → {response.status_code} {response.text[:300]}")


json_values = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
)


@st.composite
def json_inputs(draw):
    shape = draw(shapes)
    n = draw(st.one_of(st.just(min(_fits(shape, "FP64") // 8, 300)), st.integers(0, 60)))
    if draw(st.integers(0, 3)) == 0:
        shape, n = draw(wrapping)
    return {
        "name": draw(names),
        "datatype": draw(datatypes),
        "shape": shape,
        "data": draw(
            st.one_of(
                st.just([0.5] * n),
                st.lists(json_values, max_size=8),
                st.just([[0.5] * 2] * (n // 2)),
                json_values,
            )
        ),
    }


@FUZZ
@given(inputs=st.lists(json_inputs(), min_size=1, max_size=3))
def test_json_shape_and_datatype_extremes_never_5xx(client, inputs):
    # Python's encoder, not httpx's: a drawn ±inf goes out as the non-JSON token `Infinity`, which the server must
    # refuse as hostile bytes (httpx's own encoder would refuse to send it).
    body = json.dumps({"inputs": inputs})
    response = client.post(INFER, content=body, headers={"content-type": "application/json"})
    _assert_sane_rest(response, f"{str(inputs)[:300]} → {response.status_code} {response.text[:300]}")


@st.composite
def grpc_requests(draw):
    count = draw(st.integers(1, 3))
    raw = draw(st.booleans())
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    for _ in range(count):
        datatype = draw(datatypes)
        shape = [min(max(d, INT64[0]), INT64[1]) for d in draw(shapes)]
        exact = _fits(shape, datatype)
        if draw(st.integers(0, 4)) == 0:
            shape, wrapped = draw(wrapping.filter(lambda pair: max(pair[0]) <= INT64[1]))
            exact = wrapped * WIRE_SIZE.get(datatype, 4)
        tensor = request.inputs.add(name=draw(names), datatype=datatype, shape=shape)
        if raw:
            request.raw_input_contents.append(
                draw(
                    st.sampled_from([bytes(exact), bytes(max(exact - 1, 0)), bytes(exact + 5)])
                    | st.binary(max_size=64)
                )
            )
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=5), max_size=4)))
        else:
            tensor.contents.fp64_contents.extend(
                draw(st.lists(st.floats(), max_size=60)) or [0.5] * (exact // 8)
            )
            tensor.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=60)))
    if raw and draw(st.booleans()):
        request.raw_input_contents.append(b"extra")  # more raw contents than inputs
    return request


@FUZZ
@given(request=grpc_requests())
def test_grpc_shapes_datatypes_and_raw_contents_never_internal(stub, request):
    try:
        stub.ModelInfer(request, metadata=[("x-api-key", KEY)], timeout=10)
    except grpc.RpcError as error:
        shown = f"{str(request)[:300]} → {error.code()} {error.details()[:300]}"
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, shown
        assert not CLASS_NAME.search(error.details() or ""), shown


def test_well_formed_requests_of_the_same_kinds_score_alike(client, stub):
    """The refusals above are refusals of bad input: the same kinds of request, well formed, score — the binary
    extension on REST and raw_input_contents on gRPC give the same scores."""
    x = np.where(np.isnan(sample_features(2, seed=41)), LOW, sample_features(2, seed=41)).astype(np.float32)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    )
    response = client.post(
        INFER,
        content=head + x.tobytes(),
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        },
    )
    assert response.status_code == 200, response.text
    rest_scores = {o["name"]: o["data"] for o in response.json()["outputs"]}["score"]
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    request.inputs.add(name="leads", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    answer = stub.ModelInfer(request, metadata=[("x-api-key", KEY)], timeout=10)
    grpc_scores = np.frombuffer(
        answer.raw_output_contents[[o.name for o in answer.outputs].index("score")], "<f4"
    )
    np.testing.assert_allclose(grpc_scores, rest_scores, rtol=1e-6)


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN"])
def test_number_tokens_json_does_not_have_are_a_400_not_a_5xx(client, token):
    """What Python's json module (and some clients) write for ±inf and NaN is not JSON: a bad body, said so."""
    data = ",".join([token] + ["0.5"] * 49)
    body = '{"inputs":[{"name":"leads","datatype":"FP32","shape":[1,50],"data":[' + data + "]}]}"
    response = client.post(INFER, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "json" in response.json()["error"].lower()
