"""A lean request path for the two hot REST routes, in front of KServe's FastAPI app.

KServe's REST path spends ~0.9 ms of CPU per request in FastAPI routing, pydantic request models and middleware
before a model sees the payload — more than our whole scoring path. For `POST /v1/models/<name>:predict` and
JSON `POST /v2/models/<name>/infer` this ASGI layer parses the body with orjson and calls the Scorer's one entry
point, as the KServe model does, so answers, errors, headers and KServe's latency histograms are the same. Everything else — binary tensor bodies, requested outputs, other models,
health, metadata, /metrics — goes to KServe untouched (the body is replayed when it was already read).
"""

from __future__ import annotations

import time

import orjson
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels

from transformer.codec import Tensor
from transformer.errors import PayloadTooLarge, ScoringError
from transformer.scoring import Scorer, ScoringRequest
from transformer.serving.json_guard import refuse_binary_on_v1, refuse_unparsed
from transformer.serving.replay import replay
from transformer.serving.versions import refusal, unpin
from transformer.v2_request import HEADER_LENGTH, parse_json

_JSON = [(b"content-type", b"application/json")]


def _v2_body(request: ScoringRequest, scorer: Scorer, outputs: list[Tensor], v2_id: object) -> dict:
    return {
        "model_name": scorer.model_name,
        "model_version": scorer.card.version,
        "id": v2_id if isinstance(v2_id, str) else request.request_id,
        "parameters": {"scoring_id": request.scoring_id},
        "outputs": [
            {
                "name": t.name,
                "shape": t.shape,
                "datatype": t.datatype,
                "parameters": None,
                "data": t.data.reshape(-1).tolist(),
            }
            for t in outputs
        ],
    }


class FastPath:
    def __init__(self, app, scorer: Scorer, max_body_bytes: int):
        self.app = app
        self.scorer = scorer
        self.max_body_bytes = max_body_bytes
        name = scorer.model_name
        self.v1_path = f"/v1/models/{name}:predict"
        self.v2_path = f"/v2/models/{name}/infer"
        self.labels = get_labels(name)
        # KServe's stage histograms, children looked up once (a `.labels()` call per request costs ~1 µs each).
        labels = self.labels
        self.stage_seconds = (
            PRE_HIST_TIME.labels(**labels),
            PREDICT_HIST_TIME.labels(**labels),
            POST_HIST_TIME.labels(**labels),
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        original = scope
        # scope["path"] is already percent-decoded by the server: a "%" left in it was encoded twice, and is not
        # this route to KServe's router or to the access-log filter either (decoding again scored it and logged it
        # twice).
        scope, asked = unpin(scope, self.scorer.model_name)
        path = scope["path"]
        if path != self.v1_path and path != self.v2_path:
            return await self.app(original, receive, send)
        headers = {}
        for key, value in scope["headers"]:
            headers[key.decode("latin-1")] = value.decode("latin-1")
        if asked is not None and asked != self.scorer.card.version:
            return await self._answer(send, refusal(self.scorer, asked, headers), None)
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return await self.app(
                scope, receive, send
            )  # the BodyLimit layer answers 413, key or not, any body
        if HEADER_LENGTH in headers:
            if path == self.v1_path:
                request = ScoringRequest.from_headers("rest", headers)
                error = refuse_binary_on_v1(self.scorer, request, headers.get("x-api-key"))
                return await self._answer(send, error, request.request_id)
            # Binary tensor extension: checked whole by serving/binary_guard.py, then KServe's decoder.
            return await self._to_kserve(scope, receive, send, headers)
        body, complete = await self._read(receive)
        if not complete:
            request = ScoringRequest.from_headers("rest", headers)
            error = self.scorer.fail(request, PayloadTooLarge.body_over(self.max_body_bytes))
            return await self._answer(send, error, request.request_id)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            request = ScoringRequest.from_headers("rest", headers)
            error = refuse_unparsed(self.scorer, request, headers.get("x-api-key"), exc)
            return await self._answer(send, error, request.request_id)
        parameters = payload.get("parameters") if isinstance(payload, dict) else None
        if (
            path == self.v2_path
            and isinstance(payload, dict)
            and (
                payload.get("outputs")
                or (isinstance(parameters, dict) and parameters.get("binary_data_output"))
            )
        ):
            # Requested / binary outputs: KServe encodes those.
            return await self._to_kserve(scope, replay(body), send, headers)
        await self._score(path == self.v1_path, payload, headers, send)

    async def _to_kserve(self, scope, receive, send, headers: dict) -> None:
        """Hand the request to KServe's own route; a caller without a valid key is refused before KServe parses."""
        try:
            self.scorer.keys.authenticate(headers.get("x-api-key"))
        except ScoringError as error:
            request = ScoringRequest.from_headers("rest", headers)
            self.scorer.fail(request, error)  # counted and logged like every refusal (the access line is not)
            return await self._answer(send, error, request.request_id)
        scope = {**scope, "path": self.v2_path, "raw_path": self.v2_path.encode()}
        return await self.app(scope, receive, send)

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
        request = ScoringRequest.from_headers("rest", headers)
        api_key = headers.get("x-api-key")
        try:
            if v1:
                body = await scorer.score_v1(request, api_key, payload)
            else:
                parameters = payload.get("parameters") if isinstance(payload, dict) else None
                outputs = await scorer.score_v2(
                    request,
                    api_key,
                    lambda: _v2_inputs(payload),
                    parameters.get("reasons") if isinstance(parameters, dict) else None,
                )
                body = _v2_body(request, scorer, outputs, payload.get("id"))
        except ScoringError as error:
            return await self._answer(send, error, request.request_id)
        # KServe's stage histograms, so dashboards built on them see this path too.
        pre, predict, post = self.stage_seconds
        pre.observe(request.decoded_at - request.started)
        predict.observe(request.predicted_at - request.decoded_at)
        post.observe(time.perf_counter() - request.predicted_at)
        await self._send(
            send,
            200,
            orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
            [(b"x-request-id", request.request_id.encode()), (b"x-scoring-id", request.scoring_id.encode())],
        )

    async def _answer(self, send, error: ScoringError, request_id: str | None) -> None:
        extra = [(b"x-request-id", request_id.encode())] if request_id else []
        extra += [(name.encode(), value.encode()) for name, value in error.headers().items()]
        await self._send(send, error.http_status, orjson.dumps(error.body()), extra)

    @staticmethod
    async def _send(send, status: int, body: bytes, extra: list) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _JSON + [(b"content-length", str(len(body)).encode())] + extra,
            }
        )
        await send({"type": "http.response.body", "body": body})


def _v2_inputs(payload: object) -> list[Tensor]:
    return parse_json(payload).inputs


def install(app, scorer: Scorer, max_body_bytes: int) -> None:
    """Put FastPath outside KServe's whole middleware stack (which KServe builds when the server starts)."""
    build = app.build_middleware_stack

    def build_with_fast_path():
        return FastPath(build(), scorer, max_body_bytes)

    app.build_middleware_stack = build_with_fast_path
