"""Open Inference Protocol edges against `python -m transformer` (in-process mode, both REST paths, a data lake):
what used to be a 500, scored-then-refused, or ignored on gRPC is refused first — 400 / INVALID_ARGUMENT / NOT_FOUND
naming the field and the rule — and a refused request is nowhere counted, logged or stored as scored.

* binary V2 whose BYTES input is not UTF-8: KServe's decoder answered 500, echoing the client's bytes;
* requested outputs the model does not produce: 400 only after the leads were scored, logged and stored;
* gRPC model versions (ModelInfer / ModelReady / ModelMetadata) and requested outputs: ignored;
* gRPC unknown datatypes: "invalid content type", naming neither the input nor the datatypes there are.
"""

from __future__ import annotations

import re
import secrets
import time

import grpc
import httpx
import orjson
import pyarrow.dataset as ds
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.parser import text_string_to_metric_families

from contract.features import N_FEATURES
from hack.stack import MODEL_NAME
from predictor.synthetic import sample_features
from tests.support.leads import filled
from tests.support.rest_paths import REST_PATHS, start_on_rest_path

KEY = "oip-" + secrets.token_hex(12)
V2 = f"/v2/models/{MODEL_NAME}/infer"
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback")
X = filled(sample_features(3, seed=52))


@pytest.fixture(scope="module", params=REST_PATHS)
def server(request, small_artifact, tmp_path_factory):
    transformer = start_on_rest_path(request.param, small_artifact, tmp_path_factory, "oip", KEY)
    yield transformer
    transformer.stop()


# REST


def post(server, request_id: str | None = None, **kwargs) -> httpx.Response:
    headers = {
        "x-api-key": KEY,
        **({"x-request-id": request_id} if request_id else {}),
        **kwargs.pop("headers", {}),
    }
    return httpx.post(server.url + V2, headers=headers, timeout=20, **kwargs)


def v2_body(ids: list[str], outputs: list[dict] | None = None) -> dict:
    n = len(ids)
    body: dict = {
        "inputs": [
            {"name": "leads", "datatype": "FP64", "shape": [n, N_FEATURES], "data": X[:n].ravel().tolist()},
            {"name": "lead_id", "datatype": "BYTES", "shape": [n], "data": ids},
        ]
    }
    if outputs is not None:
        body["outputs"] = outputs
    return body


def length_prefixed(ids: list[bytes]) -> bytes:
    return b"".join(len(i).to_bytes(4, "little") + i for i in ids)


def binary(server, header: dict, tail: bytes = b"", request_id: str | None = None) -> httpx.Response:
    head = orjson.dumps(header)
    return post(
        server,
        request_id,
        content=head + tail,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        },
    )


def binary_leads(server, ids: list[bytes]) -> httpx.Response:
    """The issue's body: an FP32 [N, 50] tensor and a BYTES lead_id input, both as binary data."""
    x, tail = X[: len(ids)].astype("<f4").tobytes(), length_prefixed(ids)
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [len(ids), N_FEATURES],
                "parameters": {"binary_data_size": len(x)},
            },
            {
                "name": "lead_id",
                "datatype": "BYTES",
                "shape": [len(ids)],
                "parameters": {"binary_data_size": len(tail)},
            },
        ]
    }
    return binary(server, header, x + tail)


def refused(response: httpx.Response, *words: str, status: int = 400) -> dict:
    """A 4xx `{"error"}` that names the problem and no Python exception class."""
    assert response.status_code == status, response.text
    assert not CLASS_NAME.search(response.text), response.text
    body = response.json()
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


# gRPC, as raw protobuf: model versions, requested outputs and datatypes exactly as a client sends them


def grpc_call(server, method: str, request, key: str | None = KEY, request_id: str | None = None):
    """The answer, or the RpcError."""
    metadata = [("x-api-key", key)] if key else []
    metadata += [("x-request-id", request_id)] if request_id else []
    with grpc.insecure_channel(server.grpc_target) as channel:
        try:
            return getattr(GRPCInferenceServiceStub(channel), method)(request, metadata=metadata, timeout=20)
        except grpc.RpcError as error:
            return error


def grpc_leads(ids: list[str], version: str = "", outputs: tuple = (), datatype: str = "FP32"):
    request = pb.ModelInferRequest(model_name=MODEL_NAME, model_version=version)
    leads = request.inputs.add(name="leads", datatype=datatype, shape=[len(ids), N_FEATURES])
    leads.contents.fp32_contents.extend(X[: len(ids)].ravel().tolist())
    lead_id = request.inputs.add(name="lead_id", datatype="BYTES", shape=[len(ids)])
    lead_id.contents.bytes_contents.extend(i.encode() for i in ids)
    for name in outputs:
        request.outputs.add(name=name)
    return request


def grpc_refused(answer, code: grpc.StatusCode, *words: str) -> str:
    assert isinstance(answer, grpc.RpcError) and answer.code() == code, answer
    details = answer.details()
    assert not CLASS_NAME.search(details), details
    for word in words:
        assert word in details, (word, details)
    return details


# What the server recorded


def scored_ok(server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "lead_scoring_requests_total" and sample.labels["outcome"] == "ok"
    )


def logged(server, request_id: str) -> list[tuple]:
    """(message, status) of the request log lines of `request_id`."""
    lines = [orjson.loads(line) for line in server.log_path.read_text().splitlines() if request_id in line]
    return [(line["msg"], line["status"]) for line in lines if line.get("request_id") == request_id]


def stored_request_ids(server, until: str) -> set:
    """The request ids in the data lake once `until` (a request scored after the others) is there."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        files = [p for p in server.lake.rglob("*.parquet") if not p.name.startswith(".")]
        if files:
            table = ds.dataset(files, format="parquet").to_table(columns=["request_id"])
            stored = set(table.column("request_id").to_pylist())
            if until in stored:
                return stored
        time.sleep(0.3)
    raise AssertionError(f"{until} never reached the data lake")


# The tests


def test_binary_bytes_that_are_not_utf8_are_a_400_naming_the_input_and_the_rule(server):
    """KServe's decoder answered 500 `Failed to encode "b'\\xff\\xfe'" using UTF-8…`, echoing the client's bytes."""
    response = binary_leads(server, [b"\xff\xfe", b"b"])
    body = refused(response, "input 'lead_id'", "BYTES element 0 is not valid UTF-8")
    assert body["problems"][0] | {"message": ""} == {
        "row": 0,
        "field": "lead_id",
        "rule": "encoding",
        "value": None,
        "message": "",
    }
    assert "xff" not in response.text and "Failed to encode" not in response.text
    answer = binary_leads(server, ["ü-1".encode(), b"b"])
    assert answer.status_code == 200, answer.text
    assert next(o for o in answer.json()["outputs"] if o["name"] == "lead_id")["data"] == ["ü-1", "b"]


def test_requested_outputs_the_model_lacks_are_refused_before_anything_is_scored(server):
    """`"outputs": [{"name": "nope"}]` answered 400 `Unexpected inference output 'nope'` only after its leads were
    scored: logged "scored" with status 200, counted ok and stored in the lake. Now refused first, on every path."""
    ok_before, marker = scored_ok(server), secrets.token_hex(4)
    rid = {
        kind: f"{kind}-{marker}" for kind in ("json", "binary", "reasons", "param", "grpc", "version", "ok")
    }
    body = refused(
        post(server, rid["json"], json=v2_body(["a"], [{"name": "score"}, {"name": "nope"}])),
        "outputs[1].name 'nope' is not an output of this model",
        "the outputs are score, bucket, tier, lead_id",
    )
    assert body["problems"][0]["field"] == "outputs[1].name"
    refused(
        binary(server, v2_body(["a"], [{"name": "nope"}]), request_id=rid["binary"]),
        "outputs[0].name 'nope' is not an output of this model",
    )
    refused(
        post(server, rid["reasons"], json=v2_body(["a"], [{"name": "margin_bias"}])),
        "'margin_bias' is produced only with reason codes (parameters.reasons)",
    )
    refused(
        post(
            server,
            rid["param"],
            json=v2_body(["a"], [{"name": "score", "parameters": {"classification": 3}}]),
        ),
        "outputs[0].parameters: 'classification' is not an output parameter served here",
    )
    grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], outputs=("zz",)), request_id=rid["grpc"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "outputs[0].name 'zz' is not an output of this model",
    )
    grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], version="zzz"), request_id=rid["version"]),
        grpc.StatusCode.NOT_FOUND,
    )
    assert post(server, rid["ok"], json=v2_body(["a"])).status_code == 200
    assert not (set(rid.values()) - {rid["ok"]}) & stored_request_ids(server, until=rid["ok"])
    assert scored_ok(server) == ok_before + 1
    assert logged(server, rid["ok"]) == [("scored", 200)]
    for kind in ("json", "binary", "reasons", "param"):
        assert logged(server, rid[kind]) == [("rejected", 400)], kind
    assert logged(server, rid["grpc"]) == [("rejected", "INVALID_ARGUMENT")]
    assert ("scored", "OK") not in logged(server, rid["version"])


def test_a_binary_data_wish_that_is_not_a_boolean_is_refused(server):
    refused(
        post(server, json=v2_body(["a"], [{"name": "score", "parameters": {"binary_data": "yes"}}])),
        "outputs[0].parameters.binary_data must be true or false",
    )
    answer = post(server, json=v2_body(["a"], [{"name": "tier", "parameters": {"binary_data": False}}]))
    assert answer.status_code == 200 and [o["name"] for o in answer.json()["outputs"]] == ["tier"]


def test_grpc_honours_the_model_version_as_rest_does(server):
    """KServe's servicer dropped the version: ModelInfer with model_version "zzz" was scored, ModelReady and
    ModelMetadata with version "x" answered OK. REST answers 404."""
    served = httpx.get(f"{server.url}/v2/models/{MODEL_NAME}", timeout=10).json()["versions"][0]
    details = grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], version="zzz")),
        grpc.StatusCode.NOT_FOUND,
        "model version 'zzz' is not served here",
    )
    assert served in details
    grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], version="zzz"), key=None),
        grpc.StatusCode.UNAUTHENTICATED,
    )  # the key first, as on REST
    for version in ("", served):  # empty: the served version
        answer = grpc_call(server, "ModelInfer", grpc_leads(["a"], version=version))
        assert not isinstance(answer, grpc.RpcError), answer
        assert answer.model_version == served
        assert grpc_call(server, "ModelReady", pb.ModelReadyRequest(name=MODEL_NAME, version=version)).ready
        metadata = grpc_call(
            server, "ModelMetadata", pb.ModelMetadataRequest(name=MODEL_NAME, version=version)
        )
        assert list(metadata.versions) == [served]
    for method, request in (
        ("ModelReady", pb.ModelReadyRequest(name=MODEL_NAME, version="x")),
        ("ModelMetadata", pb.ModelMetadataRequest(name=MODEL_NAME, version="x")),
    ):
        grpc_refused(
            grpc_call(server, method, request, key=None), grpc.StatusCode.NOT_FOUND, "'x' is not served"
        )
    assert httpx.get(f"{server.url}/v2/models/{MODEL_NAME}/versions/x/ready", timeout=10).status_code == 404


def test_grpc_requested_outputs_are_honoured_as_on_rest(server):
    """gRPC returned all four outputs whatever was asked; REST returns the named ones, in the order asked."""
    for outputs in (("tier",), ("lead_id", "score")):
        answer = grpc_call(server, "ModelInfer", grpc_leads(["g1", "g2"], outputs=outputs))
        assert [o.name for o in answer.outputs] == list(outputs)
        assert len(answer.raw_output_contents) == len(outputs)
        rest = post(server, json=v2_body(["g1", "g2"], [{"name": n} for n in outputs]))
        assert [o["name"] for o in rest.json()["outputs"]] == list(outputs)
    lead_ids = grpc_call(server, "ModelInfer", grpc_leads(["g1", "g2"], outputs=("lead_id",)))
    assert lead_ids.raw_output_contents[0] == length_prefixed([b"g1", b"g2"])
    grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], outputs=("reason_feature",))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "outputs[0].name 'reason_feature' is produced only with reason codes",
    )


def test_grpc_unknown_datatype_names_the_input_and_the_datatypes(server):
    """KServe answered INVALID_ARGUMENT "invalid content type", naming neither."""
    grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], datatype="FP99")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'leads'",
        "'datatype' must be one of BOOL, BYTES, FP16, FP32, FP64",
        "got 'FP99'",
    )
    grpc_refused(
        grpc_call(server, "ModelInfer", grpc_leads(["a"], datatype="FP99"), key=None),
        grpc.StatusCode.UNAUTHENTICATED,
    )


def test_grpc_raw_contents_that_do_not_match_the_inputs_hear_the_key_check_first(server):
    """KServe's check that raw_input_contents match the inputs ran before the key check: a caller without a key
    heard what was wrong with its tensors, and the refusal was neither counted nor logged as ours."""
    mismatched = grpc_leads(["a"])
    mismatched.raw_input_contents.append(X[:1].astype("float32").tobytes())  # one raw content, two inputs
    grpc_refused(grpc_call(server, "ModelInfer", mismatched, key=None), grpc.StatusCode.UNAUTHENTICATED)
    both = grpc_leads(["a"])  # typed contents and raw contents for the same input
    both.raw_input_contents.extend([X[:1].astype("float32").tobytes(), b"\x01\x00\x00\x00a"])
    grpc_refused(grpc_call(server, "ModelInfer", both, key="not-a-key"), grpc.StatusCode.UNAUTHENTICATED)
    grpc_refused(
        grpc_call(server, "ModelInfer", mismatched, request_id="raw-mismatch"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "the number of inputs (2) does not match",
    )
    grpc_refused(
        grpc_call(server, "ModelInfer", both), grpc.StatusCode.INVALID_ARGUMENT, "contents field must not be"
    )
    assert logged(server, "raw-mismatch") == [("rejected", "INVALID_ARGUMENT")]


def raw_grpc_call(server, method: str, body: bytes, key: str | None = KEY, request_id: str | None = None):
    """A call whose bytes are sent as they are (no message class on the client)."""
    metadata = [("x-api-key", key)] if key else []
    metadata += [("x-request-id", request_id)] if request_id else []
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
        try:
            return call(body, metadata=metadata, timeout=20)
        except grpc.RpcError as error:
            return error


NOT_PROTOBUF = (b"\xff\xff\xff\xff\x0f\x01\x02", b'{"inputs": []}', b"\x0a\xff\xff\xff\xff\x0f")


def test_grpc_bytes_that_are_not_the_request_message_are_invalid_argument(server):
    """grpcio parses the message before any servicer code: its DecodeError was UNKNOWN "Unexpected <class
    'google.protobuf.message.DecodeError'>" with an ERROR traceback in the log, on every method, key or not."""
    log_before = server.log_path.read_text()
    for body in NOT_PROTOBUF:
        grpc_refused(raw_grpc_call(server, "ModelInfer", body, key=None), grpc.StatusCode.UNAUTHENTICATED)
        grpc_refused(
            raw_grpc_call(server, "ModelInfer", body, request_id="not-protobuf"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a valid inference.ModelInferRequest message",
        )
        for method, message in (
            ("ServerLive", "ServerLiveRequest"),
            ("ModelReady", "ModelReadyRequest"),
            ("ModelMetadata", "ModelMetadataRequest"),
        ):
            grpc_refused(
                raw_grpc_call(server, method, body, key=None),
                grpc.StatusCode.INVALID_ARGUMENT,
                f"not a valid inference.{message} message",
            )
    assert logged(server, "not-protobuf") == [("rejected", "INVALID_ARGUMENT")] * len(NOT_PROTOBUF)
    new_lines = server.log_path.read_text()[len(log_before) :]
    assert "Traceback" not in new_lines and "DecodeError" not in new_lines, new_lines[-2000:]
    # A well-formed call still works after them.
    assert isinstance(grpc_call(server, "ModelInfer", grpc_leads(["after"])), pb.ModelInferResponse)


def test_grpc_unknown_model_is_not_found_without_echoing_a_long_name_or_a_traceback(server):
    """KServe's interceptor echoed the whole name and logged an ERROR with a traceback for each call; REST did not."""
    name = "typo-" + "x" * 10_000
    log_before = server.log_path.read_text()
    for method, request in (
        ("ModelInfer", pb.ModelInferRequest(model_name=name)),
        ("ModelReady", pb.ModelReadyRequest(name=name)),
        ("ModelMetadata", pb.ModelMetadataRequest(name=name)),
    ):
        details = grpc_refused(
            grpc_call(server, method, request), grpc.StatusCode.NOT_FOUND, "Model with name typo-x"
        )
        assert len(details) < 120, details
        rest = httpx.get(f"{server.url}/v2/models/{name}", timeout=10)
        assert rest.status_code == 404 and rest.json()["error"] == details
    new_lines = server.log_path.read_text()[len(log_before) :]
    assert "Traceback" not in new_lines and '"level":"ERROR"' not in new_lines, new_lines[-2000:]


def test_grpc_model_metadata_lists_what_rest_lists(server):
    """gRPC ModelMetadata listed the 4 score outputs only; REST also lists the reason-code outputs a request may
    name (with parameters.reasons). Both now describe the same inputs and outputs."""
    answer = grpc_call(server, "ModelMetadata", pb.ModelMetadataRequest(name=MODEL_NAME))
    rest = httpx.get(f"{server.url}/v2/models/{MODEL_NAME}", timeout=10).json()

    def described(tensors):
        return [(t["name"], t["datatype"], list(t["shape"])) for t in tensors]

    grpc_outputs = [{"name": o.name, "datatype": o.datatype, "shape": list(o.shape)} for o in answer.outputs]
    grpc_inputs = [{"name": i.name, "datatype": i.datatype, "shape": list(i.shape)} for i in answer.inputs]
    assert described(grpc_outputs) == described(rest["outputs"])
    assert described(grpc_inputs) == described(rest["inputs"])


def test_a_binary_answer_says_it_is_binary(server):
    """KServe's infer route deleted the Content-Type of an answer in the binary tensor extension and set none."""
    body = v2_body(["bin-1", "bin-2"])
    body["parameters"] = {"binary_data_output": True}
    answer = post(server, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    header_length = int(answer.headers["inference-header-content-length"])
    header = orjson.loads(answer.content[:header_length])
    assert [o["name"] for o in header["outputs"]][:3] == ["score", "bucket", "tier"]
    plain = post(server, json=v2_body(["json-1"]))
    assert plain.headers["content-type"] == "application/json"
