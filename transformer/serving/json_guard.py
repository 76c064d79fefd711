"""KServe's JSON routes for this model judge a body as the fast path does (serving/fast_path.py): the same answers.

KServe's V2 infer route parses JSON with Python's json module (the `NaN` / `Infinity` literals pass) into pydantic
models that coerce a shape of `["1", 50]`, `[true, 50]` or `[1.0, 50]` to `[1, 50]`, reads a body sent without
`Content-Type: application/json` as binary tensor data, and refuses what its parsers refuse before preprocess()
checks the key. This pure-ASGI layer sits inside KServe's app, in front of its routes, and takes
`POST /v1/models/<name>:predict` and JSON (not binary-extension: serving/binary_guard.py) `POST
/v2/models/<name>/infer` first — with `--fast_path false` every such request, with the fast path the V2 requests it
hands to KServe (requested or binary outputs):

* the body is read (over `--max_body_bytes`: 413, as on the fast path), then the key: without a valid one, 401 and
  nothing is parsed;
* a body that is not JSON (orjson, as the fast path: no `NaN`, no `Infinity`) → 400 `malformed JSON body` (after
  the rate limit and the x-request-id rule, as a body the entry points refuse);
* a V2 body `transformer.v2_request.parse_json` refuses → the Scorer's refusal through its V2 entry point, as the
  fast path gets it (rate limit, x-request-id, then `reasons`, then the body: same status, body and count);
* else the body is replayed to KServe unchanged, declared `application/json`.

Every refusal is counted and logged like the Scorer's own.
"""

from __future__ import annotations

import orjson

from transformer.errors import InvalidRequest, ScoringError
from transformer.scoring import Scorer, ScoringRequest
from transformer.serving.asgi_io import answer_refusal, labelled_binary_answers, read_body
from transformer.serving.replay import replay
from transformer.v2_request import HEADER_LENGTH, parse_json, without_null_parameters

_JSON = (b"content-type", b"application/json")


def refuse_unparsed(
    scorer: Scorer, request: ScoringRequest, api_key: str | None, exc: Exception
) -> ScoringError:
    """The answer to a body that is not JSON, after what the entry points judge first (`Scorer.admit`: the key, so a
    caller without a valid one hears 401 and nothing about the parser; the rate limit; the x-request-id), else 400
    naming the parser's complaint; counted like every refusal. Shared with the fast path."""
    try:
        scorer.admit(request, api_key)
    except ScoringError as error:
        return scorer.fail(request, error)
    return scorer.fail(request, InvalidRequest(f"malformed JSON body: {exc}"))


def refuse_binary_on_v1(scorer: Scorer, request: ScoringRequest, api_key: str | None) -> ScoringError:
    """A V1 predict sent with the binary tensor extension's header, which is V2's: KServe's V1 route answered 400
    "Unrecognized request format" before any key check, uncounted, and the fast path scored it as a V2 tensor. Here:
    what the entry points judge first, then 400 naming the header; counted like every refusal. Shared with the fast
    path."""
    try:
        scorer.admit(request, api_key)
    except ScoringError as error:
        return scorer.fail(request, error)
    return scorer.fail(
        request,
        InvalidRequest(
            f"{HEADER_LENGTH}: the binary tensor extension is part of the V2 protocol; send binary tensors to "
            f"/v2/models/{scorer.model_name}/infer, or a JSON body here"
        ),
    )


async def refuse_v2(
    scorer: Scorer, request: ScoringRequest, api_key: str | None, payload: object, error: InvalidRequest
) -> ScoringError:
    """What the fast path answers for a V2 body whose inputs the parser refused with `error`: the V2 entry point with
    those inputs, so key, rate limit and `reasons` are judged first, in its order, and the refusal is counted."""

    def inputs():
        raise error

    parameters = payload.get("parameters") if isinstance(payload, dict) else None
    try:
        await scorer.score_v2(
            request, api_key, inputs, parameters.get("reasons") if isinstance(parameters, dict) else None
        )
    except ScoringError as refusal:
        return refusal
    return error  # not reached: the inputs always raise


class JsonBodyGuard:
    def __init__(self, app, scorer: Scorer):
        self.app = app
        self.scorer = scorer
        self.v1_path = f"/v1/models/{scorer.model_name}:predict"
        self.v2_path = f"/v2/models/{scorer.model_name}/infer"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]  # a pinned infer arrives unpinned (serving/versions.py runs first)
        if path != self.v1_path and path != self.v2_path:
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if HEADER_LENGTH in headers:
            if path == self.v1_path:
                request = ScoringRequest.from_headers("rest", headers)
                error = refuse_binary_on_v1(self.scorer, request, headers.get("x-api-key"))
                return await answer_refusal(send, error, request.request_id)
            return await self.app(scope, receive, send)  # the binary extension: serving/binary_guard.py
        scorer = self.scorer
        request = ScoringRequest.from_headers("rest", headers)
        api_key = headers.get("x-api-key")
        body = await read_body(
            receive
        )  # first, as the fast path does: a body over the limit is a 413, key or not
        try:
            scorer.keys.authenticate(api_key)
        except ScoringError as error:
            return await answer_refusal(send, scorer.fail(request, error), request.request_id)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return await answer_refusal(
                send, refuse_unparsed(scorer, request, api_key, exc), request.request_id
            )
        if path == self.v2_path:
            try:
                parse_json(payload)
            except InvalidRequest as error:
                refusal = await refuse_v2(scorer, request, api_key, payload, error)
                return await answer_refusal(send, refusal, request.request_id)
            cleaned = without_null_parameters(payload)
            if cleaned is not None:
                body = orjson.dumps(cleaned)
        # JSON whatever the client declared, as on the fast path: KServe would take a V2 body for binary tensor data,
        # and hand a V1 body to the model as bytes. Nor is it a CloudEvent (ce-* headers), which the fast path does
        # not read either: KServe's V1 route decoded one, and answered a bad one 400, uncounted and unlogged.
        kept = [(n, v) for n, v in scope["headers"] if n != b"content-type" and not n.startswith(b"ce-")]
        scope = {**scope, "headers": [*kept, _JSON]}
        return await self.app(
            scope, replay(body), labelled_binary_answers(send) if path == self.v2_path else send
        )
