"""The binary tensor extension is parsed by us before KServe's decoder ever sees it.

KServe's `InferRequest.from_bytes` trusts the client: `Inference-Header-Content-Length: abc`, a header without
`inputs` or `shape`, `"inputs": "x"` or a negative `binary_data_size` end in KeyError / ValueError / AttributeError,
which KServe answers with 500 and the exception's class name. This pure-ASGI layer sits inside KServe's app, in
front of its routes, for `POST /v2/models/<name>/infer` (and `/versions/<v>/infer`) bodies that carry the header:
key first (nothing is parsed for a caller without one), then `transformer.v2_request.parse_binary` checks the
whole body; a malformed one is a 400 `{"error": ...}` naming what is wrong, counted like every refusal. A body it
accepts is replayed to KServe unchanged, whose decoder cannot fail on it any more.
"""

from __future__ import annotations

from transformer.errors import InvalidRequest, ScoringError
from transformer.scoring import Scorer, ScoringRequest
from transformer.serving.asgi_io import answer_refusal, labelled_binary_answers, read_body
from transformer.serving.replay import replay
from transformer.v2_request import HEADER_LENGTH, parse_binary


class BinaryExtensionGuard:
    def __init__(self, app, scorer: Scorer):
        self.app = app
        self.scorer = scorer
        self.v2_path = f"/v2/models/{scorer.model_name}/infer"
        self.versions_prefix = f"/v2/models/{scorer.model_name}/versions/"

    def _guarded(self, scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        path = scope["path"]
        if path != self.v2_path and not (path.startswith(self.versions_prefix) and path.endswith("/infer")):
            return False
        return any(name == HEADER_LENGTH.encode() for name, _ in scope["headers"])

    async def __call__(self, scope, receive, send):
        if not self._guarded(scope):
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        request = ScoringRequest.from_headers("rest", headers)
        try:
            request.key = self.scorer.keys.authenticate(headers.get("x-api-key"))
        except ScoringError as error:
            self.scorer.fail(request, error)  # counted and logged like every refusal (the access line is not)
            return await answer_refusal(send, error, request.request_id)
        body = await read_body(receive)
        try:
            parse_binary(body, headers.get(HEADER_LENGTH))
        except InvalidRequest as error:
            return await answer_refusal(send, self.scorer.refuse_keyed(request, error), request.request_id)
        return await self.app(scope, replay(body), labelled_binary_answers(send))
