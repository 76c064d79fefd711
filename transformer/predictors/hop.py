"""The hop to the stock KServe XGBoost predictor, over gRPC v2 (default) or REST v2, with KServe's own clients.

The request is exactly what kserve-xgbserver accepts — one FP32 [N, 50] tensor — and the answer is read from
`output-0`. Failures become errors an operator can act on: unreachable → 503, too slow → 504. Only UNAVAILABLE /
connection failures are retried, a bounded number of times: a timed-out or failed inference is not repeated.
"""

from __future__ import annotations

import logging

import grpc
import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from transformer.errors import PredictorTimeout, PredictorUnavailable
from transformer.request_ids import valid

log = logging.getLogger(__name__)
FORWARDED_HEADERS = ("x-request-id", "x-b3-traceid", "traceparent")


def forwarded(headers: dict | None) -> dict[str, str]:
    """The trace headers the predictor gets. A value gRPC metadata or httpx could not send (non-ASCII, control
    characters, over-long) is left out rather than sent: it would fail the call, and with it every request coalesced
    into it. The scoring path already refuses such an x-request-id (transformer/request_ids.py); this keeps the hop
    safe whoever calls it."""
    if not headers:
        return {}
    return {k: v for k in FORWARDED_HEADERS if isinstance(v := headers.get(k), str) and valid(v)}


# gRPC's reconnect backoff grows to 120 s by default: after a long predictor outage the channel stayed down for
# seconds after the predictor was back (7.7 s measured after a 60 s outage), while readiness (probed every 5 s)
# already said ready. Capped at 1 s (+20% jitter), the first request after the predictor's return finds a live
# channel within about a second. A connection attempt may take up to 2 s (the min_reconnect_backoff, which gRPC
# uses as the connect timeout; its default is 20 s) — no longer than the request timeout we run with.
RECONNECT_CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.min_reconnect_backoff_ms", 2000),
]


def _request(model_name: str, matrix: np.ndarray) -> InferRequest:
    tensor = InferInput(name="input-0", shape=list(matrix.shape), datatype="FP32")
    tensor.set_data_from_numpy(np.ascontiguousarray(matrix, dtype=np.float32), binary_data=True)
    return InferRequest(model_name=model_name, infer_inputs=[tensor])


def _scores(response, n: int, where: str) -> np.ndarray:
    output = next((o for o in response.outputs if o.name == "output-0"), None)
    if output is None:
        raise PredictorUnavailable(
            f"predictor at {where} answered without output-0: is it the xgboost runtime?"
        )
    scores = np.asarray(output.as_numpy(), dtype=np.float32).reshape(-1)
    if scores.shape[0] != n:
        raise PredictorUnavailable(f"predictor at {where} returned {scores.shape[0]} scores for {n} leads")
    # A probability or nothing: NaN sorted past every cut-off (tier A), a margin or a regression output would be
    # tiered as if it were one (a predictor serving a booster with another objective, e.g. a crossed rollout).
    if not np.all((scores >= 0.0) & (scores <= 1.0)):
        raise PredictorUnavailable(
            f"predictor at {where} returned scores outside [0, 1] (NaN, inf or a margin): does it serve a "
            "binary:logistic booster?"
        )
    return scores


class GrpcHop:
    mode = "grpc"

    def __init__(
        self, host: str, model_name: str, timeout_seconds: float, retries: int, use_ssl: bool = False
    ):
        self.host, self.model_name, self.timeout, self.retries = host, model_name, timeout_seconds, retries
        self.use_ssl = use_ssl
        self._client: InferenceGRPCClient | None = None

    @property
    def client(self) -> InferenceGRPCClient:
        # Created on first use: a grpc.aio channel belongs to the event loop that is running when it is made.
        if self._client is None:
            # KServe's client retries UNAVAILABLE itself through the gRPC service config, bounded by `retries`.
            self._client = InferenceGRPCClient(
                url=self.host,
                use_ssl=self.use_ssl,
                timeout=self.timeout,
                retries=self.retries + 1
                if self.retries > 0
                else 0,  # gRPC wants maxAttempts >= 2, or no policy
                channel_args=[
                    ("grpc.max_send_message_length", 64 << 20),
                    ("grpc.max_receive_message_length", 64 << 20),
                    *RECONNECT_CHANNEL_ARGS,
                ],
            )
        return self._client

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        metadata = list(forwarded(headers).items())
        try:
            response = await self.client.infer(_request(self.model_name, matrix), headers=metadata or None)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PredictorTimeout(
                    f"predictor at {self.host} did not answer within {self.timeout:g} s "
                    "(--predictor_request_timeout_seconds)"
                ) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise PredictorUnavailable(
                    f"predictor at {self.host} is unreachable over gRPC "
                    "(is it running, and is --predictor_host right?)"
                ) from None
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            raise PredictorUnavailable(
                f"predictor at {self.host} failed: {code.name if code else 'error'}: {str(detail)[:200]}"
            ) from None
        return _scores(response, matrix.shape[0], self.host)

    async def ready(self) -> bool:
        try:
            return bool(await self.client.is_model_ready(self.model_name, timeout=self.timeout))
        except grpc.RpcError:
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class RestHop:
    mode = "rest"

    def __init__(
        self, host: str, model_name: str, timeout_seconds: float, retries: int, use_ssl: bool = False
    ):
        self.base_url = f"{'https' if use_ssl else 'http'}://{host}"
        self.model_name, self.timeout, self.retries = model_name, timeout_seconds, retries
        self._client: InferenceRESTClient | None = None

    @property
    def client(self) -> InferenceRESTClient:
        if self._client is None:  # made inside the serving event loop, like the gRPC channel
            # RESTConfig retries cover connect errors only, which is the only case safe to repeat.
            self._client = InferenceRESTClient(
                RESTConfig(protocol="v2", retries=self.retries, timeout=self.timeout)
            )
        return self._client

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        try:
            response = await self.client.infer(
                self.base_url,
                _request(self.model_name, matrix),
                model_name=self.model_name,
                headers=forwarded(headers),
            )
        except httpx.TimeoutException:
            raise PredictorTimeout(
                f"predictor at {self.base_url} did not answer within {self.timeout:g} s "
                "(--predictor_request_timeout_seconds)"
            ) from None
        except httpx.TransportError as exc:
            raise PredictorUnavailable(
                f"predictor at {self.base_url} is unreachable over REST "
                f"({type(exc).__name__}); is it running, and is --predictor_host right?"
            ) from None
        except httpx.HTTPStatusError as exc:
            raise PredictorUnavailable(
                f"predictor at {self.base_url} answered HTTP {exc.response.status_code}: "
                f"{exc.response.text[:200]}"
            ) from None
        return _scores(response, matrix.shape[0], self.base_url)

    async def ready(self) -> bool:
        try:
            return bool(
                await self.client.is_model_ready(self.base_url, self.model_name, timeout=self.timeout)
            )
        except httpx.HTTPError:
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
