"""`POST /v1/outcomes` on KServe's FastAPI app: the HTTP face of transformer/outcome_intake.py.

Errors are ScoringErrors, so the app's handler answers them with the scoring routes' status codes and JSON shapes;
the body limit (413) is the app's middleware, as for scoring.
"""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from transformer import request_ids
from transformer.errors import ScoringError
from transformer.ids import new_scoring_id

ROUTE = "/v1/outcomes"


def call_request_id(sent: str | None) -> tuple[str, dict | None]:
    """The call's id, and the problem with the client's x-request-id: the scoring routes' rule for the header
    (transformer/request_ids.py); a bad id is refused after the key, and the call gets a server-made id."""
    refused = request_ids.problem(sent) if sent else None
    return (sent if sent and refused is None else new_scoring_id()), refused


def install_outcomes(app, intake, json_response) -> None:
    async def post_outcomes(request: Request):
        request_id, refused = call_request_id(request.headers.get("x-request-id"))
        if intake is None:
            return json_response(
                {
                    "error": "outcomes are not recorded on this deployment (start the transformer with "
                    "--outcomes_uri)"
                },
                status_code=404,
                headers={"x-request-id": request_id},
            )
        try:
            api_key = request.headers.get("x-api-key")
            unparsed = None  # judged after the key, as every body is
            try:
                body = await request.body()
            except ClientDisconnect:
                intake.cancelled(request_id)
                return Response(status_code=499)  # nobody reads it: the connection is gone
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                payload, unparsed = None, f"malformed JSON body: {exc}"
            answer = intake.accept(api_key, payload, request_id, refused, unparsed=unparsed)
        except ScoringError as error:
            error.request_id = request_id
            raise
        return json_response(answer, headers={"x-request-id": request_id})

    app.add_api_route(ROUTE, post_outcomes, methods=["POST"], include_in_schema=False)
