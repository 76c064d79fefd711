"""The transformer as a real process: every request form over REST and gRPC, auth, validation and failure modes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap

import grpc
import httpx
import numpy as np
import orjson
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from prometheus_client.parser import text_string_to_metric_families

from contract.features import FEATURE_INDEX, FEATURE_NAMES
from hack.stack import start_predictor, start_transformer
from predictor.synthetic import as_records, sample_features
from tests.conftest import runtime_scores
from tests.support.leads import filled

N = 25
X = sample_features(N, seed=51)
IDS = [f"lead-{i:03d}" for i in range(N)]
ALWAYS_PRESENT = [n for i, n in enumerate(FEATURE_NAMES) if not np.isnan(X[:, i]).any()]


def v1_body(x=X, ids=IDS) -> dict:
    return {"instances": as_records(x, ids)}


def v2_columns_body(x=X) -> tuple[dict, np.ndarray]:
    inputs = [
        {"name": n, "datatype": "FP64", "shape": [len(x)], "data": x[:, FEATURE_INDEX[n]].tolist()}
        for n in ALWAYS_PRESENT
    ]
    inputs.append({"name": "lead_id", "datatype": "BYTES", "shape": [len(x)], "data": IDS[: len(x)]})
    expected = np.full_like(x, np.nan)
    for n in ALWAYS_PRESENT:
        expected[:, FEATURE_INDEX[n]] = x[:, FEATURE_INDEX[n]]
    return {"id": "columns-1", "inputs": inputs}, expected


def v2_tensor_body(x=X) -> tuple[dict, np.ndarray]:
    f = filled(x)
    return {
        "id": "tensor-1",
        "inputs": [{"name": "leads", "datatype": "FP32", "shape": list(f.shape), "data": f.ravel().tolist()}],
    }, f


def post(server, path: str, body, key: str | None, **headers) -> httpx.Response:
    if key is not None:
        headers["x-api-key"] = key
    return httpx.post(server.url + path, json=body, headers=headers, timeout=10)


def v2_output(response: dict, name: str) -> list:
    return next(o for o in response["outputs"] if o["name"] == name)["data"]


V1 = "/v1/models/lead-scoring:predict"
V2 = "/v2/models/lead-scoring/infer"


def test_three_forms_over_rest_give_the_boosters_own_scores(transformer_grpc, api_key, runtime_booster, card):
    v1 = post(transformer_grpc, V1, v1_body(), api_key)
    assert v1.status_code == 200, v1.text
    body = v1.json()
    assert body["model_version"] == card.version
    expected = runtime_scores(runtime_booster, X)
    assert [p["lead_id"] for p in body["predictions"]] == IDS
    np.testing.assert_array_equal(np.float32([p["score"] for p in body["predictions"]]), expected)
    tiers = card.tier_map.tiers(card.tier_map.buckets(expected)).tolist()
    assert [p["tier"] for p in body["predictions"]] == tiers
    assert [p["bucket"] for p in body["predictions"]] == card.tier_map.buckets(expected).tolist()

    for make, rid in ((v2_columns_body, "columns-1"), (v2_tensor_body, "tensor-1")):
        request, matrix = make()
        answer = post(transformer_grpc, V2, request, api_key)
        assert answer.status_code == 200, answer.text
        out = answer.json()
        assert out["id"] == rid and out["model_version"] == card.version
        np.testing.assert_array_equal(
            np.float32(v2_output(out, "score")), runtime_scores(runtime_booster, matrix)
        )
        assert {o["name"]: o["datatype"] for o in out["outputs"]} == {
            "score": "FP32",
            "bucket": "INT32",
            "tier": "BYTES",
            "lead_id": "BYTES",
        }


def _grpc_infer(server, inputs, key, parameters=None):
    async def call():
        client = InferenceGRPCClient(server.grpc_target, retries=0)
        try:
            return await client.infer(
                InferRequest("lead-scoring", inputs, parameters=parameters),
                headers=[("x-api-key", key)] if key else None,
            )
        finally:
            await client.close()

    return asyncio.run(call())


def _tensor_input(x: np.ndarray) -> list[InferInput]:
    tensor = InferInput("leads", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.astype(np.float32), binary_data=True)
    ids = InferInput("lead_id", [len(x)], "BYTES")
    ids.set_data_from_numpy(np.array([i.encode() for i in IDS[: len(x)]], dtype=object), binary_data=True)
    return [tensor, ids]


def _column_inputs(x: np.ndarray) -> list[InferInput]:
    inputs = []
    for name in FEATURE_NAMES:
        column = InferInput(name, [len(x)], "FP32")
        column.set_data_from_numpy(x[:, FEATURE_INDEX[name]].astype(np.float32), binary_data=False)
        inputs.append(column)
    return inputs


@pytest.mark.parametrize("form", ["tensor", "columns"])
def test_both_v2_forms_over_grpc_with_kserves_client(transformer_grpc, api_key, runtime_booster, form):
    inputs = _tensor_input(X) if form == "tensor" else _column_inputs(X)  # NaN travels in binary/typed FP32
    response = _grpc_infer(transformer_grpc, inputs, api_key)
    outputs = {o.name: o for o in response.outputs}
    np.testing.assert_array_equal(outputs["score"].as_numpy(), runtime_scores(runtime_booster, X))
    if form == "tensor":
        assert [v.decode() if isinstance(v, bytes) else v for v in outputs["lead_id"].as_numpy()] == IDS


def test_split_grpc_split_rest_and_in_process_agree(
    transformer_grpc, transformer_rest, transformer_inprocess, api_key
):
    answers = []
    for server in (transformer_grpc, transformer_rest, transformer_inprocess):
        response = post(server, V1, v1_body(), api_key)
        assert response.status_code == 200, response.text
        answers.append([(p["score"], p["tier"]) for p in response.json()["predictions"]])
    assert answers[0] == answers[1] == answers[2]


def test_the_rest_hop_adds_no_log_line_of_its_own(transformer_rest, api_key):
    """One JSON line per scoring request: httpx's INFO line for each predictor call used to come with it."""
    request_id = "rest-hop-lines-" + str(np.random.default_rng().integers(1 << 40))
    response = post(transformer_rest, V1, v1_body(), api_key, **{"x-request-id": request_id})
    assert response.status_code == 200, response.text
    lines = [
        json.loads(line)
        for line in transformer_rest.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert [e for e in lines if e.get("request_id") == request_id and e.get("msg") == "scored"]
    assert not [e for e in lines if e.get("logger") in ("httpx", "httpcore")]


def test_tritonclient_http_with_binary_tensors(transformer_grpc, api_key, runtime_booster):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{transformer_grpc.http_port}")
    tensor = httpclient.InferInput("leads", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X.astype(np.float32), binary_data=True)  # NaN included
    result = client.infer(
        "lead-scoring",
        [tensor],
        headers={"x-api-key": api_key},
        outputs=[
            httpclient.InferRequestedOutput("score", binary_data=True),
            httpclient.InferRequestedOutput("tier", binary_data=True),
        ],
    )
    np.testing.assert_array_equal(result.as_numpy("score"), runtime_scores(runtime_booster, X))
    assert set(t.decode() for t in result.as_numpy("tier")) <= set("ABCDE")
    meta = client.get_model_metadata("lead-scoring")
    assert len([i for i in meta["inputs"] if i["name"] in FEATURE_NAMES]) == 50


TRITON_GRPC = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    target, key, matrix = sys.argv[1], sys.argv[2], np.array(json.loads(sys.argv[3]), dtype=np.float32)
    client = grpcclient.InferenceServerClient(target)
    tensor = grpcclient.InferInput("leads", list(matrix.shape), "FP32")
    tensor.set_data_from_numpy(matrix)
    result = client.infer("lead-scoring", [tensor], headers={"x-api-key": key})
    try:
        client.infer("lead-scoring", [tensor], headers={"x-api-key": "wrong"})
        denied = None
    except InferenceServerException as exc:
        denied = exc.status()
    print(json.dumps({"score": result.as_numpy("score").tolist(),
                      "tier": [t.decode() for t in result.as_numpy("tier")], "denied": denied}))
""")


def test_tritonclient_grpc_decodes_our_responses(transformer_grpc, api_key, runtime_booster):
    # tritonclient's gRPC module and kserve clash on proto symbols in one process (NOTES): run it in a subprocess.
    matrix = filled(X)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            TRITON_GRPC,
            transformer_grpc.grpc_target,
            api_key,
            json.dumps(matrix.tolist()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    np.testing.assert_array_equal(np.float32(answer["score"]), runtime_scores(runtime_booster, matrix))
    assert answer["denied"] == "StatusCode.UNAUTHENTICATED"


@pytest.mark.parametrize("key,message", [(None, "missing API key"), ("wrong-key", "invalid API key")])
def test_rest_auth_refuses_without_echoing_the_key(transformer_grpc, key, message):
    for path, body in ((V1, v1_body()), (V2, v2_tensor_body()[0])):
        response = post(transformer_grpc, path, body, key)
        assert response.status_code == 401
        assert message in response.json()["error"]
        if key:
            assert key not in response.text
    log = transformer_grpc.log_path.read_text()
    assert "wrong-key" not in log


def test_grpc_auth(transformer_grpc, api_key):
    for key in (None, "wrong-key"):
        with pytest.raises(grpc.RpcError) as error:
            _grpc_infer(transformer_grpc, _tensor_input(X[:2]), key)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(_grpc_infer(transformer_grpc, _tensor_input(X[:2]), api_key).outputs[0].as_numpy()) == 2


def test_operational_routes_stay_open(transformer_grpc, card):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/lead-scoring/ready", "/metrics"):
        assert httpx.get(transformer_grpc.url + path).status_code == 200, path
    meta = httpx.get(transformer_grpc.url + "/v2/models/lead-scoring").json()
    assert meta["versions"] == [card.version]
    assert [i["name"] for i in meta["inputs"]][:50] == list(FEATURE_NAMES)
    assert {o["name"] for o in meta["outputs"]} == {
        "score",
        "bucket",
        "tier",
        "lead_id",  # + reason codes on request
        "reason_feature",
        "reason_contribution",
        "margin_bias",
    }


def test_validation_errors_name_row_field_rule_value_on_both_protocols(transformer_grpc, api_key):
    x = X.copy()
    x[3, FEATURE_INDEX["employee_count"]] = 0
    x[9, FEATURE_INDEX["industry"]] = 42
    response = post(transformer_grpc, V1, v1_body(x), api_key)
    assert response.status_code == 400
    body = response.json()
    assert body["problem_count"] == 2
    assert [(p["row"], p["field"], p["rule"], p["value"]) for p in body["problems"]] == [
        (3, "employee_count", "minimum", 0),
        (9, "industry", "enumeration", 42),
    ]
    with pytest.raises(grpc.RpcError) as error:
        _grpc_infer(transformer_grpc, _tensor_input(x), api_key)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "row 3: employee_count must be >= 1" in error.value.details()


@pytest.mark.parametrize(
    "body,status,text",
    [
        (b'{"instances": [', 400, "malformed"),
        (b'{"inputs": [{"name": "leads", "datatype": "FP32", "shape": [1, 49], "data": [1]}]}', 400, "shape"),
        (b'{"inputs": [{"name": "leads", "datatype": "FP32", "shape": [1, 50], "data": "x"}]}', 400, ""),
    ],
)
def test_malformed_bodies_are_400_not_422_or_500(transformer_grpc, api_key, body, status, text):
    response = httpx.post(
        transformer_grpc.url + V2,
        content=body,
        headers={"x-api-key": api_key, "content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert "error" in response.json() and text in response.text
    assert "Traceback" not in response.text


def test_unknown_model_is_404(transformer_grpc, api_key):
    response = post(transformer_grpc, "/v2/models/other/infer", v2_tensor_body()[0], api_key)
    assert response.status_code == 404


def test_request_id_is_echoed(transformer_grpc, api_key):
    response = post(transformer_grpc, V1, v1_body(), api_key, **{"x-request-id": "req-42"})
    assert response.headers["x-request-id"] == "req-42"


def predictor_ready_samples(server) -> dict[str, float]:
    """lead_scoring_predictor_ready by hop mode, as scraped (absent series are absent, not 0)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return {
        sample.labels["mode"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "lead_scoring_predictor_ready"
    }


@contextlib.contextmanager
def transformer_behind(artifact, logs_dir, api_key, **predictor_args):
    """A predictor and a transformer in front of it (1 s hop timeout); both stopped at the end."""
    predictor = start_predictor(artifact, logs_dir, **predictor_args)
    predictor.wait_ready()
    transformer = start_transformer(
        artifact,
        logs_dir,
        api_keys=f"tests:{api_key}",
        predictor=predictor.grpc_target,
        extra_args=["--predictor_request_timeout_seconds", "1"],
    )
    try:
        yield predictor, transformer
    finally:
        transformer.stop()
        predictor.stop()


def test_predictor_down_gives_503_and_not_ready(artifact, logs_dir, api_key):
    with transformer_behind(artifact, logs_dir, api_key) as (predictor, transformer):
        transformer.wait_ready()
        assert post(transformer, V1, v1_body(), api_key).status_code == 200
        assert httpx.get(transformer.url + "/v2/models/lead-scoring/ready").status_code == 200
        assert predictor_ready_samples(transformer) == {"grpc": 1.0}
        predictor.stop()
        response = post(transformer, V1, v1_body(), api_key)
        assert response.status_code == 503
        assert "unreachable" in response.json()["error"]
        assert httpx.get(transformer.url + "/v2/health/ready").status_code == 503
        assert httpx.get(transformer.url + "/v2/models/lead-scoring/ready").status_code != 200
        # Unready, this pod gets no traffic on a cluster: the gauge is what says the predictor is down
        # (alert LeadScoringPredictorDown), not the request counters.
        assert predictor_ready_samples(transformer) == {"grpc": 0.0}
        with pytest.raises(grpc.RpcError) as error:
            _grpc_infer(transformer, _tensor_input(X[:2]), api_key)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_reason_codes_sum_with_the_bias_to_the_margin(transformer_grpc, api_key, runtime_booster):
    body, matrix = v2_tensor_body(X[:5])
    body["parameters"] = {"reasons": 50}
    answer = post(transformer_grpc, V2, body, api_key)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    contributions = np.array(v2_output(out, "reason_contribution"), dtype=np.float64).reshape(5, 50)
    margin = contributions.sum(axis=1) + np.array(v2_output(out, "margin_bias"))
    expected = runtime_booster.predict(
        __import__("xgboost").DMatrix(matrix.astype(np.float32)), output_margin=True
    )
    np.testing.assert_allclose(margin, expected, atol=1e-4)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), v2_output(out, "score"), atol=1e-5)

    v1 = post(transformer_grpc, V1, {**v1_body(X[:3], IDS[:3]), "parameters": {"reasons": 3}}, api_key).json()
    reasons = v1["predictions"][0]["reasons"]
    assert len(reasons) == 3
    assert {"feature", "label", "value", "contribution", "direction"} <= set(reasons[0])
    assert (
        abs(reasons[0]["contribution"]) >= abs(reasons[1]["contribution"]) >= abs(reasons[2]["contribution"])
    )
    bad = post(transformer_grpc, V1, {**v1_body(X[:1], IDS[:1]), "parameters": {"reasons": 99}}, api_key)
    assert bad.status_code == 400 and "reasons" in bad.json()["error"]


def test_fast_path_answers_exactly_like_kserves_own_rest_path(
    artifact, logs_dir, api_key, transformer_inprocess
):
    """Both REST paths call the one entry point: same status, same body, same headers, good or bad."""
    plain = start_transformer(
        artifact, logs_dir, api_keys=f"tests:{api_key}", extra_args=["--fast_path", "false"]
    )
    try:
        plain.wait_ready()
        bad = X.copy()
        bad[2, FEATURE_INDEX["touches_30d"]] = -1
        cases = [
            (V1, v1_body(), api_key),
            (V2, v2_columns_body()[0], api_key),
            (V2, v2_tensor_body()[0], api_key),
            (V1, {**v1_body(X[:2]), "parameters": {"reasons": 2}}, api_key),
            (V1, v1_body(bad), api_key),
            (V2, v2_tensor_body(bad)[0], api_key),
            (V2, v2_tensor_body()[0], "wrong"),
            (V1, v1_body(), None),
            (V1, {"instances": []}, api_key),
            (V1, {"instances": [{"no_such_feature": 1}]}, api_key),
            (V1, {**v1_body(X[:1]), "parameters": {"reasons": 999}}, api_key),
            (
                V2,
                {"id": "x", "inputs": [{"name": "leads", "datatype": "FP32", "shape": [1, 50], "data": [1]}]},
                api_key,
            ),
            (
                V2,
                {"inputs": [{"name": "leads", "datatype": "INT8", "shape": [1, 50], "data": [1] * 50}]},
                api_key,
            ),
            (
                V2,
                {"inputs": [{"name": "employee_count", "datatype": "FP32", "shape": [1], "data": [5]}]},
                api_key,
            ),
        ]
        # Bodies as bytes: JSON's non-standard literals, shapes pydantic would coerce, no or another Content-Type,
        # bodies that are not JSON, with and without a key (the key is judged first), and a V2 body with requested
        # outputs (the fast path hands those to KServe's route).
        tensor = v2_tensor_body(X[:1])[0]
        marked = v2_tensor_body(X[:1])[0]
        marked["inputs"][0]["data"][0] = 12345.5
        json_type = {"content-type": "application/json"}
        raw_cases = [
            (V1, b'{"instances": [{"employee_count": NaN}]}', api_key, json_type),
            (V2, orjson.dumps(marked).replace(b"12345.5", b"NaN"), api_key, json_type),
            (V2, orjson.dumps(marked).replace(b"12345.5", b"-Infinity"), api_key, json_type),
            (V2, orjson.dumps(tensor).replace(b'"shape":[1,', b'"shape":["1",'), api_key, json_type),
            (V2, orjson.dumps(tensor).replace(b'"shape":[1,', b'"shape":[true,'), api_key, json_type),
            (V2, orjson.dumps(tensor).replace(b'"shape":[1,', b'"shape":[1.0,'), api_key, json_type),
            (
                V2,
                orjson.dumps({**tensor, "outputs": [{"name": "score"}]}).replace(
                    b'"shape":[1,', b'"shape":[1.0,'
                ),
                api_key,
                json_type,
            ),
            (V2, orjson.dumps(tensor), api_key, {}),  # no Content-Type: JSON all the same
            (V2, orjson.dumps(tensor), api_key, {"content-type": "text/plain"}),
            (V2, orjson.dumps(tensor), None, {}),
            (V2, orjson.dumps(tensor), "wrong", {}),
            (V2, b'{"inputs": "x"}', None, json_type),  # what KServe's pydantic model refuses: key first
            (V2, b"{not json", None, {}),
            (V2, b"{not json", api_key, {}),
            (V1, b"{not json", None, {}),
            (V1, b"{not json", api_key, json_type),
        ]
        for path, content, key, headers in raw_cases:
            headers = {**headers, **({"x-api-key": key} if key is not None else {})}
            cases.append((path, content, headers))

        def call(server, path, body, key_or_headers) -> httpx.Response:
            if isinstance(body, bytes):
                headers = {**key_or_headers, "x-request-id": "same"}
                return httpx.post(server.url + path, content=body, headers=headers, timeout=10)
            return post(server, path, body, key_or_headers, **{"x-request-id": "same"})

        statuses = []
        for path, body, key in cases:
            fast = call(transformer_inprocess, path, body, key)
            slow = call(plain, path, body, key)
            statuses.append(fast.status_code)
            answers = fast.json(), slow.json()
            if fast.status_code == 200:
                # Each scoring owns its id (in the body and the x-scoring-id header); everything else is identical.
                for answer, response in zip(answers, (fast, slow), strict=True):
                    owned = answer.pop("scoring_id", None) or (answer.get("parameters") or {}).pop(
                        "scoring_id"
                    )
                    assert owned == response.headers["x-scoring-id"]
            assert (fast.status_code, answers[0]) == (slow.status_code, answers[1]), (path, body)
            for header in ("content-type", "x-request-id", "retry-after"):
                assert fast.headers.get(header) == slow.headers.get(header), (
                    header,
                    path,
                    fast.headers,
                    slow.headers,
                )
            assert fast.headers["x-request-id"] == "same"
        # Refused the same way, not accepted the same way: the literals and coerced shapes are 400s, every call
        # without a valid key a 401, and a body without Content-Type is JSON.
        assert statuses[-len(raw_cases) :] == [400] * 7 + [200, 200, 401, 401, 401, 401, 400, 401, 400]
    finally:
        plain.stop()


def test_versioned_infer_url(transformer_inprocess, api_key, card):
    body, _ = v2_tensor_body(X[:2])
    served = post(
        transformer_inprocess, f"/v2/models/lead-scoring/versions/{card.version}/infer", body, api_key
    )
    assert served.status_code == 200 and served.json()["model_version"] == card.version
    other = post(transformer_inprocess, "/v2/models/lead-scoring/versions/v0/infer", body, api_key)
    assert other.status_code == 404 and "not served" in other.json()["error"]


@pytest.mark.parametrize("which", ["transformer_inprocess", "transformer_grpc"])
def test_concurrent_requests_each_get_their_own_scores(which, request, api_key, runtime_booster):
    server = request.getfixturevalue(which)
    matrices = [filled(sample_features(n, seed=700 + i)) for i, n in enumerate([1, 4, 1, 7, 2, 1, 3, 1] * 3)]

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, headers={"x-api-key": api_key}, timeout=20) as http:
            return await asyncio.gather(*(http.post(V2, json=v2_tensor_body(m)[0]) for m in matrices))

    answers = asyncio.run(burst())
    for matrix, answer in zip(matrices, answers, strict=True):
        assert answer.status_code == 200, answer.text
        np.testing.assert_array_equal(
            np.float32(v2_output(answer.json(), "score")), runtime_scores(runtime_booster, matrix)
        )
    metrics = httpx.get(server.url + "/metrics").text
    assert "lead_scoring_coalesced_batch_rows_count" in metrics


def test_a_predictor_without_this_model_keeps_the_transformer_unready(artifact, logs_dir, api_key):
    """kserve-xgbserver with no booster in its folder does not exit: it opens its ports serving no model, and its
    TCP probes pass. Only the transformer's ModelReady check stands between that pod and traffic."""
    with transformer_behind(artifact, logs_dir, api_key, model_name="another-model") as (_, transformer):
        transformer.wait_ready(path="/v2/health/live")
        assert httpx.get(transformer.url + "/v2/health/ready").status_code == 503
        assert predictor_ready_samples(transformer) == {"grpc": 0.0}
        assert httpx.get(transformer.url + "/v2/models/lead-scoring/ready").status_code != 200
        response = post(transformer, V1, v1_body(), api_key)
        assert response.status_code == 503, response.text
        assert "lead-scoring does not exist" in response.json()["error"]
        assert "Traceback" not in transformer.log_tail(200)
