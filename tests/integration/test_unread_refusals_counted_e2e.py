"""Scoring requests answered before the scoring path reads them are in `lead_scoring_requests_total` too, as
`form="unknown", outcome="invalid"`: a body over --max_body_bytes (413, announced or streamed) and a model this
server does not serve (404, REST and gRPC). They were counted nowhere, so clients calling a renamed model showed on
the dashboard as traffic that had stopped. What is not a scoring request stays out: a 404 on another model's
metadata or readiness, a 413 on the outcomes route. Against a real transformer on both REST paths."""

from __future__ import annotations

import secrets

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.parser import text_string_to_metric_families

from contract.features import FEATURE_NAMES
from hack.stack import MODEL_NAME
from predictor.synthetic import sample_features
from tests.support.leads import filled
from tests.support.logs import json_log_lines
from tests.support.rest_paths import REST_PATHS, start_on_rest_path

KEY = "unread-" + secrets.token_hex(12)
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
LIMIT = 4 * 1024 * 1024  # --max_body_bytes' default


@pytest.fixture(scope="module", params=REST_PATHS)
def server(request, small_artifact, tmp_path_factory):
    transformer = start_on_rest_path(request.param, small_artifact, tmp_path_factory, "unread", KEY)
    yield transformer
    transformer.stop()


def invalid_unknown(server, protocol: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lead_scoring_requests_total" and sample.labels == {
                "protocol": protocol,
                "form": "unknown",
                "outcome": "invalid",
            }:
                return sample.value
    raise AssertionError("lead_scoring_requests_total{form=unknown,outcome=invalid} is not exported")


def streamed(size: int):
    yield b'{"instances": ['
    for _ in range(size // 65536 + 1):
        yield b" " * 65536
    yield b"]}"


def test_rest_scoring_requests_refused_unread_are_counted_and_others_are_not(server):
    before = invalid_unknown(server, "rest")
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        counted = {
            "announced over the limit": http.post(V2, content=b" " * (LIMIT + 1), headers=headers),
            "streamed over the limit": http.post(V1, content=streamed(LIMIT), headers=headers),
            "another model, V2": http.post("/v2/models/other/infer", json={"inputs": []}),
            "another model, V1": http.post("/v1/models/other:predict", json={"instances": []}),
            "another model, pinned": http.post("/v2/models/other/versions/3/infer", json={"inputs": []}),
        }
        assert {name: a.status_code for name, a in counted.items()} == {
            "announced over the limit": 413,
            "streamed over the limit": 413,
            "another model, V2": 404,
            "another model, V1": 404,
            "another model, pinned": 404,
        }
        assert counted["streamed over the limit"].request.headers.get("transfer-encoding") == "chunked"
        assert invalid_unknown(server, "rest") - before == len(counted)
        not_scoring = {
            "metadata of another model": http.get("/v2/models/other"),
            "readiness of another model": http.get("/v2/models/other/ready"),
            "outcomes over the limit": http.post("/v1/outcomes", content=b" " * (LIMIT + 1), headers=headers),
        }
        assert {name: a.status_code for name, a in not_scoring.items()} == {
            "metadata of another model": 404,
            "readiness of another model": 404,
            "outcomes over the limit": 413,
        }
    assert invalid_unknown(server, "rest") - before == len(counted)


def test_a_scoring_body_over_the_limit_gets_a_request_line_and_its_id_back(server):
    """Counted, but answered without x-request-id and logged by nobody (uvicorn's access line leaves scoring routes
    to the request line): a client could not find its 413 in the log."""
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        announced = http.post(
            V2, content=b" " * (LIMIT + 1), headers={**headers, "x-request-id": "big-announced"}
        )
        chunked = http.post(V1, content=streamed(LIMIT), headers={**headers, "x-request-id": "big-streamed"})
        unnamed = http.post(V2, content=b" " * (LIMIT + 1), headers=headers)
    assert [a.status_code for a in (announced, chunked, unnamed)] == [413, 413, 413]
    assert (announced.headers["x-request-id"], chunked.headers["x-request-id"]) == (
        "big-announced",
        "big-streamed",
    )
    made = unnamed.headers["x-request-id"]
    lines = {e.get("request_id"): e for e in json_log_lines(server.log_path) if e.get("msg") == "rejected"}
    for request_id in ("big-announced", "big-streamed", made):
        line = lines[request_id]
        assert (line["protocol"], line["form"], line["outcome"], line["status"]) == (
            "rest",
            "unknown",
            "invalid",
            413,
        )
        assert "--max_body_bytes" in line["error"] and KEY not in str(line)


def test_grpc_infer_of_another_model_is_counted_and_logged_key_or_not(server):
    before = invalid_unknown(server, "grpc")
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        for metadata in (
            (("x-request-id", "unread-grpc-1"),),
            (("x-request-id", "unread-grpc-2"), ("x-api-key", KEY)),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(pb.ModelInferRequest(model_name="x" * 300), metadata=metadata, timeout=20)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert refused.value.details() == f"Model with name {'x' * 64}… does not exist."
        with pytest.raises(grpc.RpcError) as not_scoring:
            stub.ModelReady(pb.ModelReadyRequest(name="other"), timeout=20)
        assert not_scoring.value.code() == grpc.StatusCode.NOT_FOUND
    assert invalid_unknown(server, "grpc") - before == 2
    entries = json_log_lines(server.log_path)
    # KServe's interceptor line for every ModelInfer was a second line per call; other methods keep theirs.
    assert not any(e.get("msg", "").endswith("/ModelInfer") for e in entries)
    assert any(e.get("msg") == "grpc method: /inference.GRPCInferenceService/ModelReady" for e in entries)
    lines = {e.get("request_id"): e for e in entries if e.get("msg") == "rejected"}
    for request_id in ("unread-grpc-1", "unread-grpc-2"):
        line = lines[request_id]
        assert (line["protocol"], line["outcome"], line["status"]) == ("grpc", "invalid", "NOT_FOUND")
        assert line["error"].startswith("Model with name xxx") and len(line["error"]) < 100
        assert KEY not in str(line)


def requests_total(server) -> dict[tuple[str, str, str], float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return {
        (s.labels["protocol"], s.labels["form"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "lead_scoring_requests_total"
    }


def delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_a_413_on_a_route_that_is_not_a_scoring_route_is_not_counted(server):
    """Counted 413s were matched on the path prefix alone: a PUT on the infer route, a POST to the metadata route or
    to an unknown path under /v2/models/ were counted as refused scoring requests (small, they are 405/404, uncounted)."""
    before = requests_total(server)
    big = b" " * (LIMIT + 1)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        statuses = [
            http.put(V2, content=big).status_code,
            http.post(f"/v2/models/{MODEL_NAME}", content=big).status_code,
            http.post("/v2/models/foo/bar", content=big).status_code,
        ]
    assert statuses == [413, 413, 413]
    assert delta(before, requests_total(server)) == {}


def test_another_models_infer_is_a_404_whatever_its_body(server):
    """FastAPI parsed the body of another model's infer first: `{}` was a 400, uncounted."""
    before = requests_total(server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = [
            http.post("/v2/models/other/infer", json={}),
            http.post("/v2/models/other/infer", content=b"not json"),
            http.post("/v1/models/other:predict", content=b"[1, 2"),
        ]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert answers[0].json() == {"error": "Model with name other does not exist."}
    assert delta(before, requests_total(server)) == {("rest", "unknown", "invalid"): 3}


def test_a_path_encoded_twice_is_not_this_models_route(server):
    """The fast path decoded the (already decoded) path again: `%253A` scored, with two log lines."""
    before = requests_total(server)
    answer = httpx.post(
        server.url + f"/v1/models/{MODEL_NAME}%253Apredict",
        json={"instances": [{"lead_id": "twice"}]},
        headers={"x-api-key": KEY},
        timeout=20,
    )
    assert answer.status_code in (404, 405)
    assert delta(before, requests_total(server)) == {}
    lines = json_log_lines(server.log_path)
    assert not any(e.get("first_lead_id") == "twice" for e in lines)


def test_a_v1_predict_with_the_binary_extension_header_is_refused_after_the_key_naming_the_header(server):
    """KServe's V1 route answered it 400 "Unrecognized request format" before any key check, uncounted; the fast path
    scored it as a V2 tensor."""
    before = requests_total(server)
    binary = {"inference-header-content-length": "2", "content-type": "application/octet-stream"}
    with httpx.Client(base_url=server.url, timeout=20) as http:
        keyless = http.post(V1, content=b"{}xxxx", headers={**binary, "x-request-id": "v1-binary-nokey"})
        keyed = http.post(
            V1, content=b"{}xxxx", headers={**binary, "x-api-key": KEY, "x-request-id": "v1-binary"}
        )
    assert keyless.status_code == 401
    assert keyed.status_code == 400
    assert "inference-header-content-length" in keyed.json()["error"] and "V2" in keyed.json()["error"]
    assert delta(before, requests_total(server)) == {
        ("rest", "unknown", "unauthorized"): 1,
        ("rest", "unknown", "invalid"): 1,
    }
    lines = [
        e for e in json_log_lines(server.log_path) if e.get("request_id") in ("v1-binary", "v1-binary-nokey")
    ]
    assert sorted((e["request_id"], e["status"]) for e in lines) == [
        ("v1-binary", 400),
        ("v1-binary-nokey", 401),
    ]


def test_a_binary_body_over_the_limit_is_413_key_or_not_on_both_paths(server):
    answer = httpx.post(
        server.url + V2,
        content=b" " * (LIMIT + 1),
        headers={"inference-header-content-length": "2", "content-type": "application/octet-stream"},
        timeout=30,
    )
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "variant",
    [
        {"parameters": {"x": [1]}},
        {"inputs": "nested input parameters"},
        {"outputs": [{"name": "score", "parameters": {"binary_data": {"a": 1}}}]},
    ],
    ids=["request", "input", "output"],
)
def test_a_parameter_value_that_is_not_a_scalar_is_the_same_counted_400_on_both_paths(server, variant):
    """The Open Inference Protocol's parameter values are bool, number or string. KServe's routes refused others
    with a FastAPI 400 before the key check, counted nowhere and logged nowhere; the fast path scored them."""
    tensor = {"name": "input-0", "datatype": "FP32", "shape": [1, 50], "data": [0.5] * 50}
    if variant.get("inputs"):
        variant = {"inputs": [{**tensor, "parameters": {"x": {"a": 1}}}]}
    body = {"inputs": [tensor], **variant}
    before = requests_total(server)
    with httpx.Client(base_url=server.url, timeout=20) as http:
        keyless = http.post(V2, json=body)
        keyed = http.post(V2, json=body, headers={"x-api-key": KEY})
    assert keyless.status_code == 401
    assert keyed.status_code == 400, keyed.text
    assert "must be a bool, number or string (Open Inference Protocol)" in keyed.json()["error"]
    counted = delta(before, requests_total(server))
    assert sum(v for (protocol, _, outcome), v in counted.items() if outcome == "unauthorized") == 1
    assert sum(v for (protocol, _, outcome), v in counted.items() if outcome == "invalid") == 1
    assert sum(counted.values()) == 2


def test_a_null_parameter_is_absent_on_both_paths(server):
    """The API's document allows `"reasons": null` (none); KServe's request models refuse a null parameter, so with
    --fast_path false it was a FastAPI 400, uncounted. The null is left out before KServe parses the body."""
    lead = filled(sample_features(1, seed=7)).ravel().tolist()
    tensor = {
        "name": "input-0",
        "datatype": "FP32",
        "shape": [1, 50],
        "data": lead,
        "parameters": {"x": None},
    }
    body = {"inputs": [tensor], "parameters": {"reasons": None}}
    answer = httpx.post(server.url + V2, json=body, headers={"x-api-key": KEY}, timeout=20)
    assert answer.status_code == 200, answer.text
    assert {o["name"] for o in answer.json()["outputs"]} >= {"score", "bucket", "tier"}
    assert not any(o["name"].startswith("reason") for o in answer.json()["outputs"])


def test_cloudevents_headers_are_not_read_on_either_path(server):
    """KServe's V1 route decoded a request with ce-* headers as a binary-mode CloudEvent and answered a bad one 400,
    before the key check, counted nowhere; the fast path ignores them. Both paths now score the JSON body."""
    lead = dict(zip(FEATURE_NAMES, filled(sample_features(1, seed=8)).ravel().tolist(), strict=True))
    headers = {
        "x-api-key": KEY,
        "ce-specversion": "9",
        "ce-id": "1",
        "ce-source": "crm",
        "ce-type": "lead",
    }
    answer = httpx.post(
        server.url + V1, json={"instances": [{**lead, "lead_id": "ce"}]}, headers=headers, timeout=20
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["lead_id"] == "ce"
    assert not any(name.startswith("ce-") for name in answer.headers)
