"""A request that pins a model version: `/v2/models/<name>/versions/<v>/infer` or `?model_version=<v>`.

This replica serves one version (the card's). KServe answers any pinned infer with 501 "Model versioning not
supported yet", even for the version it serves; here the served version is the plain infer route, another one is
a 404 naming both (after the key check, like every answer about a request's content). Used by the fast path and,
for `--fast_path false`, by `VersionedInfer` in front of KServe's routes.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import orjson

from transformer.errors import NotServed, ScoringError
from transformer.metrics import count_unread
from transformer.scoring import Scorer, ScoringRequest
from transformer.serving.asgi_io import read_body
from transformer.serving.routes import inference_model


def unpin(scope: dict, model_name: str) -> tuple[dict, str | None]:
    """`scope` for the unversioned infer route, and the version it pinned (None: none). Other routes: unchanged."""
    prefix, infer = f"/v2/models/{model_name}/versions/", f"/v2/models/{model_name}/infer"
    path, asked = scope["path"], None
    if path.startswith(prefix) and path.endswith("/infer"):
        asked, path = path[len(prefix) : -len("/infer")], infer
    query = scope.get("query_string", b"")
    if path == infer and b"model_version" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        pinned = [value for name, value in pairs if name == "model_version" and value]
        asked = pinned[-1] if pinned else asked
        query = urlencode([(n, v) for n, v in pairs if n != "model_version"]).encode()
    if path == scope["path"] and query == scope.get("query_string", b""):
        return scope, None
    return {**scope, "path": path, "raw_path": path.encode(), "query_string": query}, asked


def refusal(scorer: Scorer, asked: str, headers: dict[str, str], protocol: str = "rest") -> ScoringError:
    """The answer to a request pinned to a version this replica does not serve: 401 without a valid key, else 404.
    Counted and logged as a "rejected" request line, as the Scorer's own refusals are: uvicorn's access line for the
    scoring routes is dropped (transformer/logs.py), so without it the request would leave no line at all."""
    request = ScoringRequest.from_headers(protocol, headers)
    try:
        request.key = scorer.keys.authenticate(headers.get("x-api-key"))
    except ScoringError as refused:
        return scorer.fail(request, refused)
    return scorer.refuse_keyed(request, NotServed.version(asked, scorer.card.version))


class VersionedInfer:
    """Pure ASGI, in front of KServe's routes: a pinned infer reaches KServe as the plain infer route, or is 404.
    An infer or predict naming another model is the 404 of an unknown model here too, counted (serving/routes.py)
    and answered without parsing the body (FastAPI's parse made `{}` a 400, uncounted); the body is still read, so
    one over the limit is the 413 it is on every route."""

    def __init__(self, app, scorer: Scorer):
        self.app = app
        self.scorer = scorer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        named = inference_model("POST", scope["path"])
        if named is not None and named != self.scorer.model_name:
            await read_body(
                receive
            )  # over --max_body_bytes, BodyLimit answers 413 (and counts it), as everywhere
            count_unread("rest")
            return await _answer(send, NotServed.model(named))
        scope, asked = unpin(scope, self.scorer.model_name)
        if asked is None or asked == self.scorer.card.version:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        await _answer(send, refusal(self.scorer, asked, headers))


async def _answer(send, error: ScoringError) -> None:
    body = orjson.dumps(error.body())
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers().items()]
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
