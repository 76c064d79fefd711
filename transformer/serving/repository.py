"""No model repository: this server serves exactly one model, loaded from its card at start.

KServe mounts its model-repository extension on REST (`/v2/repository/models/<name>/load|unload`) and gRPC
(`RepositoryModelLoad` / `RepositoryModelUnload`) with no authentication; an unload takes the model away from gRPC
while the fast REST path keeps scoring. Here the REST routes answer 404 (`ClosedRoutes`) and the RPCs UNIMPLEMENTED.
"""

from __future__ import annotations

import orjson
from grpc_interceptor import exceptions as grpc_errors

_MESSAGE = "the model repository extension is not served: this server serves one model, loaded from its card at start"


class NoModelRepository:
    """Stands in for KServe's ModelRepositoryExtension on the gRPC servicer."""

    async def load(self, model_name: str) -> None:
        raise grpc_errors.Unimplemented(_MESSAGE)

    async def unload(self, model_name: str) -> None:
        raise grpc_errors.Unimplemented(_MESSAGE)


class ClosedRoutes:
    """Pure ASGI: routes KServe mounts that this server does not serve answer 404 `{"error": ...}` before routing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/v2/repository/") or path.endswith(":explain"):
                return await answer_not_found(
                    send,
                    _MESSAGE
                    if path.startswith("/v2/repository/")
                    else "explanations are not served here; ask for reason codes with "
                    "parameters.reasons on the predict/infer routes",
                )
        return await self.app(scope, receive, send)


async def answer_not_found(send, message: str) -> None:
    """A complete ASGI 404 `{"error": message}`, written before any routing."""
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
