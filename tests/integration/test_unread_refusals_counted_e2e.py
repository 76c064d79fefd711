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

from hack.stack import MODEL_NAME
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
    lines = {e.get("request_id"): e for e in json_log_lines(server.log_path) if e.get("msg") == "rejected"}
    for request_id in ("unread-grpc-1", "unread-grpc-2"):
        line = lines[request_id]
        assert (line["protocol"], line["outcome"], line["status"]) == ("grpc", "invalid", "NOT_FOUND")
        assert line["error"].startswith("Model with name xxx") and len(line["error"]) < 100
        assert KEY not in str(line)
