"""Errors a client can act on. Each names its kind for HTTP and gRPC and its metrics outcome label.

Domain code raises these; the adapters in transformer/serving/ turn them into HTTP responses or gRPC statuses.
Every message any adapter sends for the same refusal is built here, once.
"""

from __future__ import annotations

import math


class ScoringError(Exception):
    http_status = 500
    grpc_status = "INTERNAL"
    outcome = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"error": self.message}

    def headers(self) -> dict[str, str]:
        return {}

    def status_for(self, protocol: str) -> int | str:
        """The status this error is answered with on `protocol` (rest | grpc): for the request log line."""
        return self.grpc_status if protocol == "grpc" else self.http_status


class Cancelled(ScoringError):
    """Never answered: the call was cancelled (the client went away, a deadline passed, the server stopped) before
    an answer. Its statuses are what the request line logs: 499, the "client closed request" of nginx and Envoy
    access logs, and gRPC's own CANCELLED."""

    http_status = 499
    grpc_status = "CANCELLED"
    outcome = "cancelled"


class InternalError(ScoringError):
    """A bug: the client gets this message, the log gets the traceback."""

    def __init__(self, request_id: str):
        super().__init__(f"internal error; see the server log for request {request_id}")


class InvalidRequest(ScoringError):
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    outcome = "invalid"

    def __init__(self, message: str, problems: list[dict] | None = None, total: int | None = None):
        super().__init__(message)
        self.problems = problems or []
        self.total = total if total is not None else len(self.problems)

    def body(self) -> dict:
        body: dict = {"error": self.message}
        if self.problems:
            body["problems"] = self.problems
            body["problem_count"] = self.total
        return body


class PayloadTooLarge(InvalidRequest):
    http_status = 413
    grpc_status = "RESOURCE_EXHAUSTED"

    @classmethod
    def body_over(cls, limit: int, size: int | None = None) -> PayloadTooLarge:
        shown = f"request body of {size} bytes" if size is not None else "request body"
        return cls(f"{shown} is larger than the limit of {limit} bytes (--max_body_bytes); split the batch")


class NotServed(InvalidRequest):
    http_status = 404
    grpc_status = "NOT_FOUND"

    @classmethod
    def model(cls, name: str) -> NotServed:
        """KServe's words for a model this server does not serve, echoing at most 64 characters of the name."""
        shown = name if len(name) <= 64 else name[:64] + "…"
        return cls(f"Model with name {shown} does not exist.")

    @classmethod
    def version(cls, asked: str, served: str) -> NotServed:
        return cls(f"model version {asked[:64]!r} is not served here; this replica serves {served}")


class Unauthorized(ScoringError):
    http_status = 401
    grpc_status = "UNAUTHENTICATED"
    outcome = "unauthorized"


class RateLimited(ScoringError):
    http_status = 429
    grpc_status = "RESOURCE_EXHAUSTED"
    outcome = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: float):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(max(1, math.ceil(self.retry_after_seconds)))}


class PredictorUnavailable(ScoringError):
    http_status = 503
    grpc_status = "UNAVAILABLE"
    outcome = "predictor_unavailable"


class PredictorTimeout(PredictorUnavailable):
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"
