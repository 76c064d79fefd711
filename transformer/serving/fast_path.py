"""A lean request path for the two hot REST routes, in front of KServe's FastAPI app.

KServe's REST path spends ~0.9 ms of CPU per request in FastAPI routing, pydantic request models and middleware
before a model sees the payload — more than our whole scoring path. For `POST /v1/models/<name>:predict` and
JSON `POST /v2/models/<name>/infer` this ASGI layer parses the body with orjson and calls the same Scorer steps as
the KServe model (auth → decode → validate → predict → tier → respond → record), with the same answers, errors,
headers and KServe latency histograms. Everything else — binary tensor bodies, requested outputs, other models,
health, metadata, /metrics — goes to KServe untouched (the body is replayed when it was already read).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import unquote

import numpy as np
import orjson
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels

from transformer.codec import Tensor
from transformer.errors import InvalidRequest, PayloadTooLarge, ScoringError
from transformer.scoring import Scorer, ScoringRequest, request_id_from

log = logging.getLogger("transformer")

_NUMPY_TYPES = {"BOOL": np.float64, "INT8": np.float64, "INT16": np.float64, "INT32": np.float64,
                "INT64": np.float64, "UINT8": np.float64, "UINT16": np.float64, "UINT32": np.float64,
                "UINT64": np.float64, "FP16": np.float64, "FP32": np.float64, "FP64": np.float64}
_JSON = [(b"content-type", b"application/json")]


class NotServed(ScoringError):
    http_status = 404
    grpc_status = "NOT_FOUND"
    outcome = "invalid"


def _tensor(item: object) -> Tensor:
    if not isinstance(item, dict):
        raise InvalidRequest("each V2 input must be an object with name, datatype, shape and data")
    name, datatype, shape, data = item.get("name"), item.get("datatype"), item.get("shape"), item.get("data")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InvalidRequest("each V2 input needs a string 'name' and 'datatype'")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidRequest(f"input '{name[:64]}': 'shape' must be a list of non-negative whole numbers")
    try:
        if datatype == "BYTES":
            array = np.asarray(data, dtype=object).reshape(-1)
        elif datatype in _NUMPY_TYPES:
            array = np.asarray(data, dtype=np.float64).reshape(-1)   # null → NaN, true/false → 1/0
        else:
            raise InvalidRequest(f"input '{name[:64]}': unknown datatype {datatype[:16]!r}")
    except (TypeError, ValueError):
        raise InvalidRequest(f"input '{name[:64]}': data does not match datatype {datatype[:16]}") from None
    expected = int(np.prod(shape)) if shape else 1
    if array.size != expected:
        raise InvalidRequest(f"input '{name[:64]}': shape {shape} needs {expected} values, data has {array.size}")
    return Tensor(name, datatype, shape, array.reshape(shape) if datatype != "BYTES" else array)


def _v2_body(request: ScoringRequest, scorer: Scorer, v2_id: object) -> dict:
    outputs = scorer.v2_outputs(request)
    return {"model_name": scorer.model_name, "model_version": scorer.card.version,
            "id": v2_id if isinstance(v2_id, str) else request.request_id, "parameters": None,
            "outputs": [{"name": t.name, "shape": t.shape, "datatype": t.datatype, "parameters": None,
                         "data": t.data.reshape(-1).tolist()} for t in outputs]}


class FastPath:
    def __init__(self, app, scorer: Scorer, max_body_bytes: int):
        self.app = app
        self.scorer = scorer
        self.max_body_bytes = max_body_bytes
        name = scorer.model_name
        self.v1_path = f"/v1/models/{name}:predict"
        self.v2_path = f"/v2/models/{name}/infer"
        self.versions_prefix = f"/v2/models/{name}/versions/"
        self.labels = get_labels(name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if "%" in path:
            path = unquote(path)
        if path.startswith(self.versions_prefix) and path.endswith("/infer"):
            version = path[len(self.versions_prefix):-len("/infer")]
            if version != self.scorer.card.version:
                return await self._answer(send, NotServed(f"model version {version[:64]!r} is not served here; "
                                                          f"this replica serves {self.scorer.card.version}"), None)
            path = self.v2_path
        elif path != self.v1_path and path != self.v2_path:
            return await self.app(scope, receive, send)
        headers = {}
        for key, value in scope["headers"]:
            headers[key.decode("latin-1")] = value.decode("latin-1")
        if "inference-header-content-length" in headers:
            # Binary tensor extension: KServe's decoder. Refuse a bad key before KServe parses anything.
            try:
                self.scorer.keys.authenticate(headers.get("x-api-key"))
            except ScoringError as error:
                return await self._answer(send, error, None)
            scope = {**scope, "path": self.v2_path, "raw_path": self.v2_path.encode()}
            return await self.app(scope, receive, send)
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return await self.app(scope, receive, send)   # the BodyLimit layer answers 413
        body, complete = await self._read(receive)
        if not complete:
            return await self._answer(send, PayloadTooLarge(
                f"request body is larger than the limit of {self.max_body_bytes} bytes (--max_body_bytes); "
                "split the batch"), None)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return await self._answer(send, InvalidRequest(f"malformed JSON body: {exc}"), None)
        parameters = payload.get("parameters") if isinstance(payload, dict) else None
        if path == self.v2_path and isinstance(payload, dict) and (
                payload.get("outputs") or (isinstance(parameters, dict) and parameters.get("binary_data_output"))):
            # Requested / binary outputs: KServe encodes those. The key is checked first, like everywhere else.
            try:
                self.scorer.keys.authenticate(headers.get("x-api-key"))
            except ScoringError as error:
                return await self._answer(send, error, None)
            scope = {**scope, "path": self.v2_path, "raw_path": self.v2_path.encode()}
            return await self.app(scope, _replay(body), send)
        await self._score(path == self.v1_path, payload, headers, send)

    async def _read(self, receive) -> tuple[bytes, bool]:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True

    async def _score(self, v1: bool, payload: object, headers: dict, send) -> None:
        scorer = self.scorer
        request = ScoringRequest("rest", request_id_from(headers))
        request.headers = {"x-request-id": request.request_id}
        try:
            started = time.perf_counter()
            scorer.admit(request, headers.get("x-api-key"))
            parameters = payload.get("parameters") if isinstance(payload, dict) else None
            scorer.reasons_requested(request, parameters.get("reasons") if isinstance(parameters, dict) else None)
            if v1:
                scorer.decode_v1(request, payload)
            else:
                inputs = payload.get("inputs") if isinstance(payload, dict) else None
                if not isinstance(inputs, list):
                    raise InvalidRequest('V2 body must be a JSON object {"inputs": [ ... ]}')
                scorer.decode_v2(request, [_tensor(item) for item in inputs])
            decoded = time.perf_counter()
            PRE_HIST_TIME.labels(**self.labels).observe(decoded - started)
            await scorer.predict(request)
            predicted = time.perf_counter()
            PREDICT_HIST_TIME.labels(**self.labels).observe(predicted - decoded)
            body = scorer.v1_body(request) if v1 else _v2_body(request, scorer, payload.get("id"))
            POST_HIST_TIME.labels(**self.labels).observe(time.perf_counter() - predicted)
        except ScoringError as error:
            scorer.finish(request, error.outcome, error)
            return await self._answer(send, error, request.request_id)
        except Exception as exc:  # noqa: BLE001 - a bug must still answer with JSON and no stack trace
            log.exception("unexpected error on the fast path", extra={"request_id": request.request_id})
            scorer.finish(request, "error", ScoringError(type(exc).__name__))
            return await self._answer(send, ScoringError("internal error; see the server log for request "
                                                         f"{request.request_id}"), request.request_id)
        await self._send(send, 200, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                         [(b"x-request-id", request.request_id.encode())])

    async def _answer(self, send, error: ScoringError, request_id: str | None) -> None:
        extra = [(b"x-request-id", request_id.encode())] if request_id else []
        extra += [(name.encode(), value.encode()) for name, value in error.headers().items()]
        await self._send(send, error.http_status, orjson.dumps(error.body()), extra)

    @staticmethod
    async def _send(send, status: int, body: bytes, extra: list) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": _JSON + [(b"content-length", str(len(body)).encode())] + extra})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def install(app, scorer: Scorer, max_body_bytes: int) -> None:
    """Put FastPath outside KServe's whole middleware stack (which KServe builds when the server starts)."""
    build = app.build_middleware_stack

    def build_with_fast_path():
        return FastPath(build(), scorer, max_body_bytes)

    app.build_middleware_stack = build_with_fast_path
