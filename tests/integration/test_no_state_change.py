"""No request without a key changes server state, over REST or gRPC, and readiness tells the truth.

Every route KServe registers on the transformer's app (its own registration code run on a fresh app, so a route a
new KServe version adds is enumerated too), every route the transformer adds (its OpenAPI document) and the docs
routes are called without a key with every method; every RPC of `inference.GRPCInferenceService` (from the proto
descriptor) likewise. Nothing answers 5xx, every error is `{"error": ...}`, nothing but a read answers 2xx, and
afterwards the model still scores on REST (fast path and KServe's binary path) and gRPC, and readiness is 200.
"""

from __future__ import annotations

import asyncio
import secrets
from types import SimpleNamespace

import grpc
import httpx
import numpy as np
import orjson
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest, Model
from kserve.model_repository import ModelRepository
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from contract.features import N_FEATURES
from hack.stack import MODEL_NAME, start_transformer
from predictor.synthetic import sample_features
from transformer.serving.app import Readiness

KEY = "state-" + secrets.token_hex(12)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
READ_ONLY_RPCS = {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata"}
X = np.nan_to_num(sample_features(2, seed=21), nan=1.0).astype(np.float32)


@pytest.fixture(scope="module")
def server(small_artifact, tmp_path_factory):
    transformer = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp("state-logs"),
        api_keys=f"state:{KEY}",
        extra_args=["--enable_docs_url", "true"],
    )
    transformer.wait_ready()
    yield transformer
    transformer.stop()


def kserve_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route KServe's REST server registers, by running its registration."""
    import fastapi
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    registry = ModelRepository()
    app = fastapi.FastAPI()
    RESTServer._register_endpoints(
        SimpleNamespace(
            dataplane=DataPlane(model_registry=registry),
            model_repository_extension=ModelRepositoryExtension(registry),
        ),
        app,
    )
    found = set()
    for route in app.routes:
        for inner in getattr(getattr(route, "original_router", None), "routes", [route]):
            for method in getattr(inner, "methods", None) or ():
                found.add((method, inner.path))
    return found


def every_route(server) -> list[str]:
    ours = httpx.get(server.url + "/openapi.json", timeout=10).json()["paths"]
    version = httpx.get(f"{server.url}/v2/models/{MODEL_NAME}", timeout=10).json()["versions"][0]
    templates = (
        {path for _, path in kserve_routes()} | set(ours) | {"/openapi.json", "/docs", "/redoc", "/metrics"}
    )
    assert {"/v2/repository/models/{model_name}/unload", "/v1/models/{model_name}:explain"} <= templates
    paths = set()
    for template in templates:
        for model_version in (version, "not-served"):
            paths.add(template.replace("{model_name}", MODEL_NAME).replace("{model_version}", model_version))
    return sorted(paths)


def grpc_score(server) -> np.ndarray:
    async def call():
        client = InferenceGRPCClient(server.grpc_target, retries=0, timeout=20)
        tensor = InferInput("leads", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X, binary_data=True)
        try:
            return await client.infer(InferRequest(MODEL_NAME, [tensor]), headers=[("x-api-key", KEY)])
        finally:
            await client.close()

    return {o.name: o.as_numpy() for o in asyncio.run(call()).outputs}["score"]


def binary_rest_score(server) -> list[float]:
    """The binary tensor extension, answered in JSON: the route KServe's model registry serves."""
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": [2, N_FEATURES],
                    "parameters": {"binary_data_size": X.nbytes},
                }
            ]
        }
    )
    answer = httpx.post(
        f"{server.url}/v2/models/{MODEL_NAME}/infer",
        content=header + X.tobytes(),
        timeout=20,
        headers={
            "x-api-key": KEY,
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(header)),
        },
    )
    assert answer.status_code == 200, answer.text
    return {o["name"]: o["data"] for o in answer.json()["outputs"]}["score"]


def assert_still_scoring(server, expected: np.ndarray) -> None:
    assert httpx.get(server.url + "/v2/health/ready", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/v2/models/{MODEL_NAME}/ready", timeout=10).json()["ready"] is True
    np.testing.assert_allclose(grpc_score(server), expected, rtol=1e-6)
    np.testing.assert_allclose(binary_rest_score(server), expected, rtol=1e-6)


def test_no_route_changes_state_without_a_key(server):
    before = grpc_score(server)
    answers = []
    for path in every_route(server):
        for method in METHODS:
            answer = httpx.request(
                method,
                server.url + path,
                content=b"{}",
                timeout=20,
                headers={"content-type": "application/json"},
            )
            answers.append((method, path, answer))
    for method, path, answer in answers:
        shown = f"{method} {path} → {answer.status_code} {answer.text[:200]}"
        assert answer.status_code < 500, shown
        if answer.status_code >= 300:
            assert isinstance(answer.json().get("error"), str) and "detail" not in answer.json(), shown
        else:
            assert method == "GET", shown  # only reads succeed without a key
    unloads = [a for m, p, a in answers if p.endswith("/unload") and m == "POST"]
    assert unloads and all(a.status_code == 404 for a in unloads)
    assert_still_scoring(server, before)


def test_no_rpc_changes_state_without_a_key(server):
    before = grpc_score(server)
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    codes = {}
    with grpc.insecure_channel(server.grpc_target) as channel:
        for method in service.methods:
            request_type = getattr(pb, method.input_type.name)
            fields = {f.name for f in request_type.DESCRIPTOR.fields}
            request = request_type(**{name: MODEL_NAME for name in ("name", "model_name") if name in fields})
            call = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=getattr(pb, method.output_type.name).FromString,
            )
            try:
                call(request, timeout=10)
                codes[method.name] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                codes[method.name] = error.code()
    assert set(codes) >= READ_ONLY_RPCS | {"ModelInfer", "RepositoryModelLoad", "RepositoryModelUnload"}
    for name, code in codes.items():
        if name in READ_ONLY_RPCS:
            assert code == grpc.StatusCode.OK, (name, code)
        else:
            assert code in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED}, (name, code)
    assert codes["RepositoryModelUnload"] == codes["RepositoryModelLoad"] == grpc.StatusCode.UNIMPLEMENTED
    assert_still_scoring(server, before)


def test_swagger_ui_and_redoc_over_the_projects_document_with_enable_docs_url(server):
    for path in ("/docs", "/redoc"):
        page = httpx.get(server.url + path, timeout=10)
        assert page.status_code == 200 and "/openapi.json" in page.text, path
    assert httpx.get(server.url + "/openapi.json", timeout=10).json()["components"]["securitySchemes"][
        "ApiKey"
    ]


class _Up:
    mode = "inprocess"

    async def ready(self) -> bool:
        return True


def test_readiness_is_false_when_kserve_cannot_serve_the_model():
    """The fast JSON path scores without KServe's registry; gRPC and the binary route need it: without the model
    in the registry (what an unload did), readiness must say so instead of staying ready."""
    scorer = SimpleNamespace(model_name=MODEL_NAME, predictor=_Up())
    registry = ModelRepository()
    readiness = Readiness(scorer, SimpleNamespace(draining=False), registry)
    model = Model(MODEL_NAME)
    model.ready = True
    registry.update(model)
    assert asyncio.run(readiness.problem()) is None
    registry.unload(MODEL_NAME)
    assert "gRPC" in asyncio.run(readiness.problem())
    assert "not loaded" in asyncio.run(Readiness(scorer, SimpleNamespace(draining=False)).problem())
