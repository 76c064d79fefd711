"""Errors a client can act on. Each carries the HTTP status, the gRPC status name and the metrics outcome label.

Domain code raises these; only the KServe adapter turns them into HTTP responses or gRPC statuses.
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
