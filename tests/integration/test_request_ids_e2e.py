"""The x-request-id rule against real processes: split mode (the stand-in predictor behind a gRPC or a REST hop, and
KServe's own REST path with --fast_path false). An id outside 1-128 printable ASCII characters used to be forwarded
to the predictor, where gRPC metadata or httpx could not carry it: a 500 for the sender and for every request
coalesced into the same predictor call, and gRPC core's plain-text `Illegal header value` lines in the log. Now such
an id is a 400 / INVALID_ARGUMENT naming the header and the rule (after the key check), and it never touches
anyone else's request.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets

import grpc
import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from prometheus_client.parser import text_string_to_metric_families

from hack.stack import MODEL_NAME, start_predictor, start_transformer
from predictor.synthetic import as_records, sample_features
from tests.support.leads import filled
from tests.support.logs import json_log_lines

V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
KEYS = {name: f"{name}-{secrets.token_hex(10)}" for name in ("bad-client", "good-client")}
GENERATED = re.compile(r"[0-9a-f]{32}")
# As a client sends them: bytes on the wire (a UTF-8 "café", a latin-1 one, a TAB, too long). Other control characters
# (DEL, NUL, …) never reach the transformer: uvicorn refuses the request line itself ("Invalid HTTP request").
BAD_IDS = [b"caf\xc3\xa9", b"caf\xe9", b"a\tb", b"x" * 129]
LEADS = filled(sample_features(9, seed=88))
ROUNDS, GOOD_PER_ROUND = 20, 8


@pytest.fixture(scope="module")
def predictor(small_artifact, tmp_path_factory):
    server = start_predictor(small_artifact, tmp_path_factory.mktemp("rid-predictor"))
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["grpc_hop", "rest_hop", "grpc_hop_kserve_rest"])
def transformer(request, small_artifact, predictor, tmp_path_factory):
    grpc_hop = request.param.startswith("grpc")
    server = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp(f"rid-{request.param}"),
        api_keys=",".join(f"{name}:{key}" for name, key in KEYS.items()),
        predictor=predictor.grpc_target if grpc_hop else f"127.0.0.1:{predictor.http_port}",
        protocol="grpc-v2" if grpc_hop else "v2",
        extra_args=["--fast_path", str(request.param != "grpc_hop_kserve_rest").lower()],
    )
    server.wait_ready()
    yield server
    server.stop()


def v1_body(row: int) -> dict:
    return {"instances": as_records(LEADS[row : row + 1], [f"lead-{row}"])}


def refused_for_its_id(response: httpx.Response, rule: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"].startswith("header x-request-id must be 1 to 128 printable ASCII characters")
    assert [(p["field"], p["rule"]) for p in body["problems"]] == [("x-request-id", rule)]
    # The refusal carries a server-made id, like a request that sent none: never the bad one echoed back.
    assert GENERATED.fullmatch(response.headers["x-request-id"])


def coalesced_calls(server) -> float:
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(metrics):
        if family.name == "lead_scoring_coalesced_batch_rows":
            return next(s.value for s in family.samples if s.name.endswith("_count"))
    raise AssertionError("no coalescing histogram on /metrics")


def test_one_bad_id_fails_only_its_own_request_never_the_ones_coalesced_with_it(transformer):
    calls_before = coalesced_calls(transformer)

    async def rounds():
        async with httpx.AsyncClient(base_url=transformer.url, timeout=20) as http:
            answers = []
            for n in range(ROUNDS):
                bad_id = BAD_IDS[n % len(BAD_IDS)]
                bad = http.post(
                    V1,
                    json=v1_body(0),
                    headers=[(b"x-api-key", KEYS["bad-client"].encode()), (b"x-request-id", bad_id)],
                )
                good = [
                    http.post(
                        V1,
                        json=v1_body(1 + i),
                        headers={"x-api-key": KEYS["good-client"], "x-request-id": f"good-{n}-{i}"},
                    )
                    for i in range(GOOD_PER_ROUND)
                ]
                answers.append((bad_id, await asyncio.gather(bad, *good)))
            return answers

    for n, (bad_id, (bad, *good)) in enumerate(asyncio.run(rounds())):
        refused_for_its_id(bad, "length" if len(bad_id) > 128 else "printable_ascii")
        for i, answer in enumerate(good):
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-request-id"] == f"good-{n}-{i}"
            assert answer.json()["predictions"][0]["lead_id"] == f"lead-{1 + i}"
    # The good requests did share predictor calls: fewer calls than requests (the refused ones make none).
    assert coalesced_calls(transformer) - calls_before < ROUNDS * GOOD_PER_ROUND


def test_every_request_form_and_grpc_refuse_a_bad_id_after_the_key_check(transformer):
    key = {"x-api-key": KEYS["good-client"]}
    tensor = LEADS[:1].astype(np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": [1, 50],
                    "parameters": {"binary_data_size": 200},
                }
            ]
        }
    ).encode()
    bodies = {
        "v1": {"json": v1_body(0)},
        "v2_json": {
            "json": {
                "inputs": [
                    {"name": "leads", "datatype": "FP32", "shape": [1, 50], "data": tensor.ravel().tolist()}
                ]
            }
        },
        "v2_binary": {
            "content": header + tensor.tobytes(),
            "headers": {
                "inference-header-content-length": str(len(header)),
                "content-type": "application/octet-stream",
            },
        },
    }
    with httpx.Client(base_url=transformer.url, timeout=20) as http:
        for form, body in bodies.items():
            path = V1 if form == "v1" else V2
            extra = body.get("headers", {})
            send = {k: v for k, v in body.items() if k != "headers"}
            refused_for_its_id(
                http.post(path, headers={**key, **extra, "x-request-id": "tab\there"}, **send),
                "printable_ascii",
            )
            ok = http.post(path, headers={**key, **extra, "x-request-id": f"fine-{form}"}, **send)
            assert ok.status_code == 200 and ok.headers["x-request-id"] == f"fine-{form}", (form, ok.text)
            # Who the caller is comes first: no key, or a wrong one, is a 401 whatever the id.
            denied = http.post(path, headers={**extra, "x-request-id": "tab\there"}, **send)
            assert denied.status_code == 401, (form, denied.text)

    async def grpc_infer(request_id: str):
        client = InferenceGRPCClient(transformer.grpc_target, retries=0, timeout=20)
        tensor_input = InferInput("leads", [1, 50], "FP32")
        tensor_input.set_data_from_numpy(tensor, binary_data=True)
        try:
            return await client.infer(
                InferRequest(MODEL_NAME, [tensor_input]),
                headers=[("x-api-key", KEYS["good-client"]), ("x-request-id", request_id)],
            )
        except grpc.RpcError as error:
            return error
        finally:
            await client.close()

    # gRPC metadata cannot carry a TAB or non-ASCII (the client refuses to send it); an over-long id it can.
    refused = asyncio.run(grpc_infer("g" * 129))
    assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details().startswith("header x-request-id must be 1 to 128 printable ASCII characters")
    assert "got 129 characters" in refused.details()
    served = asyncio.run(grpc_infer("g" * 128))
    assert not isinstance(served, grpc.RpcError), served


def test_the_log_stays_json_and_names_the_refusal(transformer):
    sent = httpx.post(
        transformer.url + V1,
        json=v1_body(0),
        headers=[(b"x-api-key", KEYS["bad-client"].encode()), (b"x-request-id", b"caf\xc3\xa9")],
        timeout=20,
    )
    refused_for_its_id(sent, "printable_ascii")
    entries = json_log_lines(
        transformer.log_path
    )  # no plain-text "Illegal header value" lines from gRPC core
    refused = [e for e in entries if e.get("outcome") == "invalid"]
    assert sent.headers["x-request-id"] in {e["request_id"] for e in refused}
    assert all(GENERATED.fullmatch(e["request_id"]) for e in refused)
    assert all(e["status"] in (400, "INVALID_ARGUMENT") and "x-request-id" in e["error"] for e in refused)
    assert not [e for e in entries if e.get("outcome") == "error" or e["level"] == "ERROR"]
    text = transformer.log_path.read_text(errors="replace")
    for key in KEYS.values():
        assert key not in text


def test_grpc_answers_carry_the_calls_request_id_in_trailing_metadata(transformer):
    """README: the id "is returned in the response header". REST did; gRPC returned no metadata at all, so a caller
    that sent no id could not learn the one its request line and lake rows carry."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    tensor = pb.ModelInferRequest.InferInputTensor(name="leads", datatype="FP32", shape=[1, 50])
    tensor.contents.fp32_contents.extend(np.nan_to_num(LEADS[:1], nan=0.0).ravel().tolist())
    infer = pb.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor])
    good = ("x-api-key", KEYS["good-client"])

    def call(*metadata: tuple[str, str]) -> tuple[grpc.StatusCode, dict]:
        with grpc.insecure_channel(transformer.grpc_target) as channel:
            try:
                _, answered = GRPCInferenceServiceStub(channel).ModelInfer.with_call(
                    infer, metadata=metadata, timeout=20
                )
            except grpc.RpcError as error:
                answered = error
        return answered.code(), dict(answered.trailing_metadata() or ())

    code, trailing = call(good)
    assert code == grpc.StatusCode.OK and GENERATED.fullmatch(trailing["x-request-id"]), trailing
    made = trailing["x-request-id"]
    assert call(good, ("x-request-id", "mine-7"))[1]["x-request-id"] == "mine-7"
    # Errors carry it too.
    code, trailing = call(("x-api-key", "wrong"), ("x-request-id", "denied-7"))
    assert code == grpc.StatusCode.UNAUTHENTICATED and trailing["x-request-id"] == "denied-7"
    # An id that breaks the rule is refused, and not echoed back.
    code, trailing = call(good, ("x-request-id", "g" * 129))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "x-request-id" not in trailing
    # The server-made id is the one the request line carries.
    assert any(
        e.get("request_id") == made and e.get("outcome") == "ok" for e in json_log_lines(transformer.log_path)
    )
