"""Issue 18, row by row, against `python -m transformer` (in-process mode, a valid key on every request): each
request that used to answer 500 (two of them with a Python exception name) is a 400 naming what is wrong; lead ids
follow their rule on all three request forms and in the data lake; unknown routes and methods answer `{"error"}`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time

import grpc
import httpx
import numpy as np
import orjson
import pyarrow.dataset as ds
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from contract.features import FEATURES, N_FEATURES
from hack.stack import MODEL_NAME, ROOT
from predictor.synthetic import as_records, sample_features
from tests.support.rest_paths import REST_PATHS, start_on_rest_path

KEY = "rows-" + secrets.token_hex(12)
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
JSON = {"content-type": "application/json"}
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")
X = np.where(
    np.isnan(sample_features(3, seed=51)), [f.minimum for f in FEATURES], sample_features(3, seed=51)
)


@pytest.fixture(scope="module", params=REST_PATHS)
def server(request, small_artifact, tmp_path_factory):
    transformer = start_on_rest_path(request.param, small_artifact, tmp_path_factory, "rows", KEY)
    yield transformer
    transformer.stop()


def post(server, path: str, **kwargs) -> httpx.Response:
    headers = {"x-api-key": KEY, **kwargs.pop("headers", {})}
    return httpx.post(server.url + path, headers=headers, timeout=20, **kwargs)


def binary(server, header: bytes, tail: bytes = b"", length: str | None = None) -> httpx.Response:
    return post(
        server,
        V2,
        content=header + tail,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(header)) if length is None else length,
        },
    )


def refused(response: httpx.Response, *words: str) -> dict:
    """A 400 `{"error"}` that names the problem and no Python exception class."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert not CLASS_NAME.search(response.text), response.text
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


# The table of the issue: one test per row.


def test_row1_json_shape_whose_int64_product_wraps_around(server):
    body = {
        "inputs": [
            {"name": "leads", "datatype": "FP32", "shape": [368934881474191033, 50], "data": [0.5] * 34}
        ]
    }
    refused(post(server, V2, json=body), "368934881474191033", "needs 18446744073709551650 values", "has 34")


def test_row2_json_shape_of_two_to_the_64_values_and_no_data(server):
    body = {
        "inputs": [{"name": "leads", "datatype": "FP32", "shape": [4294967296, 4294967296, 1], "data": []}]
    }
    refused(post(server, V2, json=body), "needs 18446744073709551616 values", "has 0")


def test_row3_binary_header_without_inputs(server):
    header = b'{"no_inputs": 1}'
    assert len(header) == 16
    refused(binary(server, header, length="16"), "'inputs'")


def test_row4_binary_input_without_shape(server):
    refused(binary(server, orjson.dumps({"inputs": [{"name": "input-0"}]})), "input 'input-0'")
    refused(
        binary(server, orjson.dumps({"inputs": [{"name": "input-0", "datatype": "FP32"}]})),
        "'shape' is missing",
    )


def test_row5_header_length_that_is_not_a_number(server):
    refused(binary(server, b'{"inputs": []}', length="abc"), "Inference-Header-Content-Length", "'abc'")


def test_row6_inputs_that_is_not_a_list(server):
    refused(binary(server, b'{"inputs":"x"}'), "'inputs' must be a non-empty list")


def test_row7_negative_binary_data_size(server):
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": "FP32",
                    "shape": [1, 50],
                    "parameters": {"binary_data_size": -8},
                }
            ]
        }
    )
    refused(binary(server, header, bytes(200)), "binary_data_size", "-8")


def test_binary_byte_counts_that_do_not_fill_the_shape(server):
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": [1, N_FEATURES],
                    "parameters": {"binary_data_size": 196},
                }
            ]
        }
    )
    refused(binary(server, header, bytes(196)), "196 bytes", "50 FP32 values take 200")
    exact = header.replace(b"196", b"200")
    refused(binary(server, exact, bytes(300)), "100 bytes follow the last input")
    refused(binary(server, exact, bytes(150)), "binary_data_size is 200 but only 150 bytes are left")


# Lead ids, on the three request forms, and what reaches the lake.


def v1_body(ids: list) -> dict:
    records = as_records(X[: len(ids)])
    for record, lead_id in zip(records, ids, strict=True):
        record["lead_id"] = lead_id
    return {"instances": records}


def v2_body(ids: list, shape: list | None = None) -> dict:
    n = len(ids)
    return {
        "inputs": [
            {"name": "leads", "datatype": "FP64", "shape": [n, N_FEATURES], "data": X[:n].ravel().tolist()},
            {"name": "lead_id", "datatype": "BYTES", "shape": shape or [n], "data": ids},
        ]
    }


def grpc_ids(server, ids: list[bytes]):
    async def call():
        client = InferenceGRPCClient(server.grpc_target, retries=0, timeout=20)
        leads = InferInput("leads", [len(ids), N_FEATURES], "FP32")
        leads.set_data_from_numpy(X[: len(ids)].astype(np.float32), binary_data=True)
        lead_id = InferInput("lead_id", [len(ids)], "BYTES")
        lead_id.set_data_from_numpy(np.array(ids, dtype=object), binary_data=True)
        try:
            return await client.infer(
                InferRequest(MODEL_NAME, [leads, lead_id]), headers=[("x-api-key", KEY)]
            )
        finally:
            await client.close()

    try:
        return asyncio.run(call())
    except grpc.RpcError as error:
        return error


@pytest.mark.parametrize(
    "ids,rule",
    [
        ([{"a": [1, 2]}, "b"], "type"),  # the V1 example
        (["a", "x" * 10_000], "length"),  # echoed in full and stored before
        (["a", "line\nbreak"], "printable"),
        (["a", 1.5], "type"),
        (["a", True], "type"),
    ],
)
def test_v1_lead_id_rule(server, ids, rule):
    body = refused(post(server, V1, json=v1_body(ids)), "lead_id")
    assert body["problems"][0]["rule"] == rule and "x" * 200 not in body["error"]


def test_v2_json_ragged_nested_non_string_long_and_control_character_ids(server):
    refused(post(server, V2, json=v2_body([["a"], ["b", "c"]], [2])), "lead_id")  # the example
    refused(post(server, V2, json=v2_body([["a"], ["b"]], [2])), "lead_id")
    refused(post(server, V2, json=v2_body([7, 8])), "lead_id")
    refused(post(server, V2, json=v2_body(["a", "x" * 129])), "129 characters")
    refused(post(server, V2, json=v2_body(["a", "bell\x07"])), "printable")


def test_grpc_ids_are_checked_too(server):
    for bad, words in (
        ([b"a", b"x" * 200], "200 characters"),
        ([b"a", b"\xff\xfe"], "UTF-8"),
        ([b"a", b"esc\x1b"], "printable"),
    ):
        error = grpc_ids(server, bad)
        assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert words in error.details() and not CLASS_NAME.search(error.details())


def test_only_valid_normalised_ids_reach_the_answer_and_the_lake(server):
    marker = secrets.token_hex(4)
    answer = post(server, V1, json=v1_body([f"v1-{marker}", 4242, None]))
    assert answer.status_code == 200, answer.text
    assert [p["lead_id"] for p in answer.json()["predictions"]] == [f"v1-{marker}", "4242", "2"]
    answer = post(server, V2, json=v2_body([f"v2-{marker}", f"ü-{marker}"]))
    assert answer.status_code == 200, answer.text
    grpc_answer = grpc_ids(server, [f"g-{marker}".encode()])
    assert not isinstance(grpc_answer, grpc.RpcError), grpc_answer
    post(server, V1, json=v1_body([f"bad-{marker}", "x" * 10_000]))  # refused: nothing of it is stored
    expected = {f"v1-{marker}", "4242", "2", f"v2-{marker}", f"ü-{marker}", f"g-{marker}"}
    deadline = time.monotonic() + 20
    stored: set = set()
    while time.monotonic() < deadline and not expected <= stored:
        time.sleep(0.3)
        files = [p for p in server.lake.rglob("*.parquet") if not p.name.startswith(".")]
        if files:
            stored = set(
                ds.dataset(files, format="parquet")
                .to_table(columns=["lead_id"])
                .column("lead_id")
                .to_pylist()
            )
    assert expected <= stored
    assert not any(marker in i and i.startswith("bad-") for i in stored)
    assert all(0 < len(i) <= 128 and i.isprintable() for i in stored)


# One error shape for every answer.


def test_unknown_routes_and_wrong_methods_answer_the_error_shape(server):
    unknown = httpx.get(server.url + "/no/such/route", timeout=10)
    assert unknown.status_code == 404 and "/no/such/route" in unknown.json()["error"]
    assert "detail" not in unknown.json()
    wrong = httpx.get(server.url + V2, timeout=10)
    assert wrong.status_code == 405 and "GET" in wrong.json()["error"] and "allow" in wrong.headers


def test_a_pinned_model_version_is_honoured_not_a_501(server):
    """KServe's infer route also reads `?model_version=` (and has a /versions/<v>/infer URL), and answers 501 to any
    version: found by the KServe-routes fuzzer."""
    served = httpx.get(f"{server.url}/v2/models/{MODEL_NAME}", timeout=10).json()["versions"][0]
    body = {**v2_body(["a"]), "outputs": [{"name": "score"}]}  # requested outputs: KServe's own route answers
    other = post(server, V2 + "?model_version=0", json=body)
    assert other.status_code == 404 and "'0' is not served" in other.json()["error"]
    same = post(server, f"{V2}?model_version={served}", json=body)
    assert same.status_code == 200, same.text
    assert [o["name"] for o in same.json()["outputs"]] == ["score"]
    pinned = post(server, f"/v2/models/{MODEL_NAME}/versions/{served}/infer", json=v2_body(["a"]))
    assert pinned.status_code == 200, pinned.text
    other = post(server, f"/v2/models/{MODEL_NAME}/versions/v0/infer", json=v2_body(["a"]))
    assert other.status_code == 404 and "'v0' is not served" in other.json()["error"]
    assert (
        httpx.post(f"{server.url}{V2}?model_version=0", json=body, timeout=20).status_code == 401
    )  # key first


def test_another_model_is_a_404_naming_it_on_every_route_versioned_or_not(server):
    """KServe's versioned routes answered 501 `Model versioning not supported yet.` for a model not served here."""
    routes = [
        ("GET", "/v2/models/{m}"),
        ("GET", "/v2/models/{m}/ready"),
        ("POST", "/v2/models/{m}/infer"),
        ("POST", "/v1/models/{m}:predict"),
        ("GET", "/v2/models/{m}/versions/x"),
        ("GET", "/v2/models/{m}/versions/x/ready"),
        ("POST", "/v2/models/{m}/versions/x/infer"),
    ]
    long_name = "m" * 10_000
    for method, route in routes:
        body = {"json": v2_body(["a"])} if method == "POST" else {}
        answer = httpx.request(
            method, server.url + route.format(m="other"), headers={"x-api-key": KEY}, timeout=20, **body
        )
        assert (answer.status_code, answer.json()) == (
            404,
            {"error": "Model with name other does not exist."},
        ), (
            method,
            route,
            answer.text,
        )
        # The name is echoed, but not 10 KB of it.
        answer = httpx.request(
            method, server.url + route.format(m=long_name), headers={"x-api-key": KEY}, timeout=20, **body
        )
        assert answer.status_code == 404, (method, route, answer.text)
        assert answer.json()["error"] == f"Model with name {'m' * 64}… does not exist.", (method, route)


def test_get_on_the_predict_route_is_405_not_a_metadata_lookup(server):
    # KServe's `GET /v1/models/{model_name}` took `lead-scoring:predict` for a model name: 404.
    answer = httpx.get(server.url + V1, headers={"x-api-key": KEY}, timeout=10)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json() == {"error": f"method GET is not allowed on {V1}"}
    assert httpx.get(server.url + f"/v1/models/{MODEL_NAME}", timeout=10).status_code == 200
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):  # they said Allow: GET, the GET-only route's
        other = httpx.request(method, server.url + V1, headers={"x-api-key": KEY}, timeout=10)
        assert other.status_code == 405 and other.headers["allow"] == "POST", (method, other.headers)


def test_a_chunked_body_over_the_limit_is_413_on_every_route(server):
    """Without a Content-Length the limit is found while streaming; FastAPI's body parsing on KServe's V2 route
    turned that into 400 `There was an error parsing the body`."""
    served = httpx.get(f"{server.url}/v2/models/{MODEL_NAME}", timeout=10).json()["versions"][0]

    def chunks():
        yield b'{"inputs": ['
        for _ in range(4_500):  # 4.5 MB: over the default --max_body_bytes (4 MiB)
            yield b" " * 1000
        yield b"]}"

    for path in (
        "/v2/models/other/infer",
        V2,
        f"/v2/models/{MODEL_NAME}/versions/{served}/infer",
        V1,
    ):
        answer = post(server, path, content=chunks(), headers={"content-type": "application/json"})
        assert answer.request.headers.get("transfer-encoding") == "chunked"
        assert answer.status_code == 413, (path, answer.text)
        assert "larger than the limit of 4194304 bytes (--max_body_bytes)" in answer.json()["error"], path


def test_both_rest_paths_refuse_json_literals_and_coerced_shapes_and_judge_the_key_first(server):
    """KServe's V2 route parsed `NaN`/`Infinity` (Python's json), coerced shapes `["1", 50]`, `[true, 50]`, `[1.0, 50]`
    to `[1, 50]` (pydantic) and took a body without Content-Type for binary data (400 before the key check)."""
    body = v2_body(["a"])
    body["inputs"][0]["data"][0] = 12345.5
    text = orjson.dumps(body)
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        refused(
            post(server, V2, content=text.replace(b"12345.5", literal), headers=JSON), "malformed JSON body"
        )
    refused(
        post(server, V1, content=b'{"instances": [{"employee_count": NaN}]}', headers=JSON), "malformed JSON"
    )
    for shape in (b'["1",', b"[true,", b"[1.0,"):
        coerced = text.replace(b'"shape":[1,', b'"shape":' + shape)
        answer = refused(
            post(server, V2, content=coerced), "input 'leads': shape must be a list of whole numbers"
        )
        assert answer["problems"][0]["field"] == "leads" and answer["problems"][0]["rule"] == "shape"
    plain = orjson.dumps(v2_body(["a"]))
    assert post(server, V2, content=plain).status_code == 200  # no Content-Type: JSON all the same
    # Any declared type, V1 too: KServe handed a text/plain V1 body to the model as bytes (400 on that path only).
    v1 = (ROOT / "docs" / "examples" / "v1-instances.json").read_bytes()
    for declared in ("text/plain", "application/x-www-form-urlencoded", "application/octet-stream"):
        for path, content in ((V1, v1), (V2, plain)):
            answer = post(server, path, content=content, headers={"content-type": declared})
            assert answer.status_code == 200, (path, declared, answer.text)
    for headers in ({}, {"x-api-key": "wrong"}):
        for content in (plain, b"{not json", b'{"inputs": "x"}'):
            answer = httpx.post(server.url + V2, content=content, headers=headers, timeout=10)
            assert answer.status_code == 401, (headers, content, answer.text)


@pytest.mark.parametrize(
    ("datatype", "data", "rule"),
    [
        ("BOOL", [7, 7], "boolean"),
        ("UINT8", [-50, 3], "integer"),
        ("INT64", [54.5, 1], "integer"),
        ("FP16", [3, 4], "datatype"),  # KServe's route refused FP16 JSON, the fast path scored it
    ],
)
def test_json_data_must_fit_its_declared_datatype_as_binary_and_grpc_data_must(server, datatype, data, rule):
    """JSON data was read as float64 whatever its datatype: a BOOL 7 was scored as 7 web visits, while the same tensor
    as binary data or gRPC raw contents was a 400 ("BOOL bytes must be 0 or 1")."""
    body = json.loads((ROOT / "docs" / "examples" / "v2-columns.json").read_text())
    for tensor in body["inputs"]:
        if tensor["name"] == "web_visits_30d":
            tensor.update(datatype=datatype, data=data)
    answer = refused(post(server, V2, json=body), f"input 'web_visits_30d': {datatype} data ")
    assert answer["problems"][0]["field"] == "web_visits_30d" and answer["problems"][0]["rule"] == rule
    if datatype == "FP16":
        return
    for tensor in body["inputs"]:
        if tensor["name"] == "web_visits_30d":
            tensor.update(data=[1, 0] if datatype == "BOOL" else [3, 4])  # what the datatype holds
    fitting = post(server, V2, json=body)
    assert fitting.status_code == 200, fitting.text


def test_fp16_as_binary_data_is_scored_on_both_paths(server):
    """FP16 has no JSON form, but binary data may carry it: KServe's decoded values went back through the JSON
    datatype check and were refused as "FP16 data cannot be sent as JSON"."""
    body = json.loads((ROOT / "docs" / "examples" / "v2-columns.json").read_text())
    visits = None
    for tensor in body["inputs"]:
        if tensor["name"] == "web_visits_30d":
            visits = np.array(tensor.pop("data"), dtype=np.float16)
            tensor.update(datatype="FP16", parameters={"binary_data_size": visits.nbytes})
    header = orjson.dumps(body)
    answer = binary(server, header, visits.tobytes())
    assert answer.status_code == 200, answer.text
    json_answer = post(
        server, V2, content=(ROOT / "docs" / "examples" / "v2-columns.json").read_bytes(), headers=JSON
    )
    assert (
        answer.json()["outputs"][0]["data"] == json_answer.json()["outputs"][0]["data"]
    )  # whole visits: exact
