"""What the transformer adds to KServe's FastAPI app before ModelServer starts it.

* domain errors → their HTTP status with `{"error": ...}` (+ `Retry-After` on 429), never a stack trace;
* one error shape for every answer: unknown routes (404), wrong methods (405) and bugs (500, no exception class
  name: KServe's own handler would answer `{"error": "KeyError : 'inputs'"}`) are `{"error": ...}` too;
* malformed JSON → 400 instead of FastAPI's 422;
* this API's own OpenAPI document at /openapi.json (transformer/serving/openapi.py), Swagger UI and ReDoc at
  /docs and /redoc with --enable_docs_url;
* a body-size limit → 413 before the body is parsed;
* KServe's JSON routes for this model judge a body as the fast path does (key first, strict JSON, strict V2 shapes:
  transformer/serving/json_guard.py), so `--fast_path false` gives the same answers;
* model metadata that carries the model version; an infer pinned to the served version (URL or `?model_version=`)
  is the plain infer, another version a 404 (serving/versions.py), never KServe's 501; a versioned URL of another
  model is the 404 of an unknown model, and that 404 echoes at most 64 characters of the name;
* `GET` on a predict route is a 405 (KServe's `GET /v1/models/{name}` would take `lead-scoring:predict` for a name);
* readiness (`Readiness`) that is true only when every protocol can score: the predictor up, the model in
  KServe's registry, and not draining (transformer/serving/drain.py);
* the data-lake recorder started with the app and flushed when it stops;
* `POST /v1/outcomes` (transformer/serving/outcomes_route.py) and its recorder, likewise.
"""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import asynccontextmanager

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import Response
from kserve.errors import ModelNotFound
from kserve.model_server import app
from starlette.exceptions import HTTPException

from contract.features import FEATURES
from transformer import metrics, request_ids
from transformer.codec import input_metadata, output_metadata
from transformer.errors import NotServed, PayloadTooLarge, ScoringError
from transformer.extras.reasons import output_metadata as reason_metadata
from transformer.scoring import Scorer, ScoringRequest
from transformer.serving import openapi
from transformer.serving.binary_guard import BinaryExtensionGuard
from transformer.serving.drain import Drain
from transformer.serving.event_loop import running_loop_name
from transformer.serving.json_guard import JsonBodyGuard
from transformer.serving.outcomes_route import ROUTE as OUTCOMES_ROUTE
from transformer.serving.outcomes_route import call_request_id, install_outcomes
from transformer.serving.repository import ClosedRoutes
from transformer.serving.routes import inference_model
from transformer.serving.versions import VersionedInfer

log = logging.getLogger("transformer")


def json_response(content: object, status_code: int = 200, headers: dict | None = None) -> Response:
    """JSON via orjson (FastAPI deprecates its ORJSONResponse class)."""
    return Response(
        orjson.dumps(content), status_code=status_code, headers=headers, media_type="application/json"
    )


def error_response(error: ScoringError, request_id: str | None = None) -> Response:
    headers = error.headers()
    if request_id:
        headers["x-request-id"] = request_id
    return json_response(error.body(), status_code=error.http_status, headers=headers)


async def _scoring_error(request: Request, error: ScoringError) -> Response:
    return error_response(error, getattr(error, "request_id", None))


async def _malformed_body(request: Request, error: RequestValidationError) -> Response:
    problems = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body")[:100] or "body",
            "rule": e.get("type", "invalid"),
            "message": str(e.get("msg", ""))[:200],
        }
        for e in error.errors()[:20]
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return json_response(
        {"error": f"malformed request body: {summary}", "problems": problems}, status_code=400
    )


async def _http_error(request: Request, error: HTTPException) -> Response:
    """Starlette's routing errors (no such route, wrong method) in the one error shape."""
    method, path = request.method, request.url.path[:200]
    if error.status_code == 404:
        message = f"no route {method} {path} on this server (see /openapi.json)"
    elif error.status_code == 405:
        message = f"method {method} is not allowed on {path}"
    else:
        message = str(error.detail)[:200]
    return json_response({"error": message}, status_code=error.status_code, headers=error.headers)


def model_not_found(name: str) -> Response:
    """KServe's answer for a model this server does not serve, in its words, with the name cut short."""
    return json_response({"error": NotServed.model(name).message}, status_code=404)


async def _unknown_model(request: Request, error: ModelNotFound) -> Response:
    """KServe's ModelNotFound, without echoing a 10 KB name back (and without KServe's ERROR log line and traceback
    for a client's typo). A POST there was an inference request: counted (uvicorn's access line logs it)."""
    name = request.path_params.get("model_name")
    if not isinstance(name, str):
        name = str(error).removeprefix("Model with name ").removesuffix(" does not exist.")
    if inference_model(request.method, request.url.path) is not None:
        metrics.count_unread("rest")
    return model_not_found(name)


def _unread_refusals(scorer: Scorer, outcomes):
    """What BodyLimit calls for a body it refused unread: a scoring request or an outcomes call gets the count and
    the log line every other refusal of theirs gets, and its answer the request id that line carries."""

    def refused(scope, error: ScoringError) -> str | None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if inference_model(scope["method"], scope["path"]) is not None:
            request = ScoringRequest.from_headers("rest", headers)
            scorer.fail(request, error)
            return request.request_id
        if outcomes is not None and scope["method"] == "POST" and scope["path"] == OUTCOMES_ROUTE:
            request_id, _ = call_request_id(headers.get("x-request-id"))
            outcomes.refused_unread(request_id, error)
            return request_id
        return None

    return refused


async def _bug(request: Request, error: Exception) -> Response:
    """The last resort: logged with its traceback, answered without it (and without the exception's class)."""
    request_id = request.headers.get("x-request-id", "")
    request_id = request_id if request_ids.valid(request_id) else None  # named only when it follows the rule
    log.error(
        "unexpected error", exc_info=error, extra={"path": request.url.path[:200], "request_id": request_id}
    )
    return json_response(
        {
            "error": "internal error; see the server log"
            + (f" for request {request_id}" if request_id else "")
        },
        status_code=500,
    )


class BodyLimit:
    """Pure ASGI: refuses a body larger than `max_bytes` (by Content-Length, or while streaming) with 413.

    A streamed (chunked) body is cut off by raising from `receive`; whoever was reading it may turn that into its own
    answer (FastAPI's body parsing on KServe's V2 route answers 400 "There was an error parsing the body"), so once
    the limit is crossed, what the app sends is dropped and the answer is this 413."""

    def __init__(self, app, max_bytes: int, refused=None):
        self.app = app
        self.max_bytes = max_bytes
        # (scope, error) -> the request id of the answer, or None: counts and logs the refusal of a route that
        # counts and logs its requests (scoring, outcomes), which never saw this one.
        self.refused = refused

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT"}:
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await self._refuse(send, int(value), scope)
        seen = 0
        too_big = False
        answered = False  # the app started its answer before the limit was crossed: too late for a 413

        async def limited_receive():
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    raise _TooLarge
            return message

        async def guarded_send(message):
            nonlocal answered
            if too_big and not answered:
                return
            answered = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_big or answered:
                raise
        if too_big and not answered:
            await self._refuse(send, seen, scope)

    async def _refuse(self, send, size: int, scope):
        error = PayloadTooLarge.body_over(self.max_bytes, size)
        request_id = self.refused(scope, error) if self.refused is not None else None
        body = orjson.dumps(error.body())
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *([(b"x-request-id", request_id.encode())] if request_id else []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _keep_our_handlers() -> None:
    """KServe registers its catch-all Exception handler (and its ModelNotFound one) when the server starts, after
    install(): put ours back just before Starlette builds the middleware stack (which reads the handlers)."""
    build = app.build_middleware_stack

    def build_with_our_handler():
        app.exception_handlers[Exception] = _bug
        app.exception_handlers[ModelNotFound] = _unknown_model
        return build()

    app.build_middleware_stack = build_with_our_handler


def _docs_routes() -> None:
    """Swagger UI and ReDoc over /openapi.json (KServe mounts /docs only when its own flag was on the command line
    when kserve was imported; environment variables would not reach it)."""
    title = "Lead scoring API"
    paths = {route.path for route in app.routes}
    if "/docs" not in paths:
        app.add_api_route(
            "/docs",
            lambda: get_swagger_ui_html(openapi_url="/openapi.json", title=title),
            methods=["GET"],
            include_in_schema=False,
        )
    if "/redoc" not in paths:
        app.add_api_route(
            "/redoc",
            lambda: get_redoc_html(openapi_url="/openapi.json", title=title),
            methods=["GET"],
            include_in_schema=False,
        )


class Readiness:
    """Ready only when every protocol can score: not draining, the model registered and ready in KServe's model
    registry (gRPC and KServe's REST routes score through it, the fast JSON path does not), and the predictor up.
    `registry` is KServe's ModelRepository, attached once the ModelServer exists."""

    def __init__(self, scorer: Scorer, drain: Drain, registry=None):
        self.scorer = scorer
        self.drain = drain
        self.registry = registry

    async def problem(self) -> str | None:
        if self.drain.draining:
            return "draining: this replica is shutting down"
        name = self.scorer.model_name
        if self.registry is None or not await self.registry.is_model_ready(name):
            return (
                f"model {name} is not loaded in KServe's model registry: gRPC and the binary V2 route "
                "cannot score"
            )
        predictor = self.scorer.predictor
        predictor_ready = await predictor.ready()
        metrics.child(metrics.PREDICTOR_READY, predictor.mode).set(1 if predictor_ready else 0)
        if not predictor_ready:
            return f"predictor ({predictor.mode} hop) is not ready or unreachable"
        return None


def install(
    scorer: Scorer,
    *,
    recorder=None,
    max_body_bytes: int,
    drain: Drain,
    drain_seconds: float,
    enable_docs: bool = False,
    outcomes=None,
) -> Readiness:
    app.add_exception_handler(ScoringError, _scoring_error)
    app.add_exception_handler(RequestValidationError, _malformed_body)
    app.add_exception_handler(HTTPException, _http_error)
    _keep_our_handlers()
    document = openapi.build(
        scorer.model_name,
        scorer.card.version,
        max_leads=scorer.limits.max_leads,
        reasons_max=scorer.limits.reasons_max,
        outcomes=outcomes is not None,
        max_outcomes=outcomes.max_outcomes if outcomes is not None else 1000,
    )
    app.openapi = lambda: document
    if enable_docs:
        _docs_routes()
    app.add_exception_handler(
        _TooLarge, lambda request, exc: error_response(PayloadTooLarge.body_over(max_body_bytes))
    )
    app.add_middleware(BinaryExtensionGuard, scorer=scorer)  # innermost: reads bodies BodyLimit has bounded
    app.add_middleware(JsonBodyGuard, scorer=scorer)  # likewise, for JSON bodies: the fast path's answers
    app.add_middleware(VersionedInfer, scorer=scorer)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, refused=_unread_refusals(scorer, outcomes))
    app.add_middleware(ClosedRoutes)
    model_name = scorer.model_name

    @app.get(f"/v2/models/{model_name}", include_in_schema=False)
    async def model_metadata():
        return {
            "name": model_name,
            "versions": [scorer.card.version],
            "platform": "xgboost",
            "inputs": input_metadata(),
            # Reason outputs only where a request may ask for them (not in live legacy mode: no explainer).
            "outputs": output_metadata() + (reason_metadata() if scorer.extras.explainer else []),
            "parameters": {
                "tensor_form": {
                    "datatype": "FP32",
                    "shape": [-1, len(FEATURES)],
                    "feature_order": [f.name for f in FEATURES],
                }
            },
        }

    readiness = Readiness(scorer, drain)

    async def predictor_ready() -> Response:
        # KServe's own check turns an unreachable predictor into a 500; readiness must say 503 so Knative and
        # load balancers stop routing here, with a message an operator can act on.
        problem = await readiness.problem()
        if problem is None:
            return json_response({"name": model_name, "ready": True})
        return json_response({"error": problem, "ready": False}, status_code=503)

    async def versioned(version: str, answer):
        if version != scorer.card.version:
            return error_response(NotServed.version(version, scorer.card.version))
        return await answer()

    async def versioned_metadata(model_name: str, version: str):
        if model_name != scorer.model_name:
            return model_not_found(model_name)
        return await versioned(version, model_metadata)

    async def versioned_ready(model_name: str, version: str):
        if model_name != scorer.model_name:
            return model_not_found(model_name)
        return await versioned(version, predictor_ready)

    async def versioned_infer(model_name: str, version: str):
        # This model's pinned infer never gets here: VersionedInfer (serving/versions.py) rewrites it or answers.
        metrics.count_unread("rest")
        return model_not_found(model_name)

    async def predict_is_post_only(model_name: str):
        raise HTTPException(405, headers={"allow": "POST"})

    # Registered before KServe's routes, which answer 501 for any /versions/<v> URL of any model, even the served
    # version of this one, and whose `GET /v1/models/{model_name}` takes `GET …/lead-scoring:predict` for metadata.
    app.add_api_route(
        "/v2/models/{model_name}/versions/{version}",
        versioned_metadata,
        methods=["GET"],
        include_in_schema=False,
    )
    app.add_api_route(
        "/v2/models/{model_name}/versions/{version}/ready",
        versioned_ready,
        methods=["GET"],
        include_in_schema=False,
    )
    app.add_api_route(
        "/v2/models/{model_name}/versions/{version}/infer",
        versioned_infer,
        methods=["POST"],
        include_in_schema=False,
    )
    app.add_api_route(
        "/v1/models/{model_name}:predict",
        predict_is_post_only,
        # Every other method: Starlette answers a method no route takes with the first matching route's Allow,
        # which was this one's (Allow: GET on PUT, DELETE, PATCH and OPTIONS).
        methods=["GET", "PUT", "DELETE", "PATCH", "OPTIONS"],
        include_in_schema=False,
    )
    app.add_api_route("/v2/health/ready", predictor_ready, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        f"/v2/models/{model_name}/ready", predictor_ready, methods=["GET"], include_in_schema=False
    )
    install_outcomes(app, outcomes, json_response)
    recorders = [r for r in (recorder, outcomes.recorder if outcomes is not None else None) if r is not None]

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application):
        for each in recorders:
            each.start()
        drain.install()
        log.info("event loop", extra={"event_loop": running_loop_name()})
        # Start-up objects (models, modules, the card) never die: keep them out of every future GC pass,
        # which shortens the pauses that show up in p99. No gc.collect() first: here it finds 0–33 unreachable
        # objects and costs ~80 ms of start-up (docs/performance.md).
        gc.freeze()
        async with inner(application) as state:
            yield state
        if scorer.extras.shadow is not None:
            await scorer.extras.shadow.close()
        if recorders:
            log.info("flushing the data lake", extra={"grace_seconds": drain_seconds})
            # Blocking on purpose: nothing else is left to serve, and the process must not exit before the flush.
            # The tables flush side by side, so the shutdown budget holds one grace period, not one per table.
            closing = [
                threading.Thread(
                    target=each.close, kwargs={"grace_seconds": drain_seconds}, name="sink-close"
                )
                for each in recorders
            ]
            for thread in closing:
                thread.start()
            for thread in closing:
                thread.join()
        await scorer.predictor.close()

    app.router.lifespan_context = lifespan
    return readiness
