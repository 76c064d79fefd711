"""Legacy endpoints as predictors: an AWS SageMaker endpoint or an Azure ML managed online endpoint.

Both satisfy `transformer.scoring.Predictor`, so the new API can run in front of the old model while clients move
(and the same objects serve as the shadow backend in `transformer.extras.shadow`). Failures become the hop's errors:
unreachable / refused / broken → PredictorUnavailable (503), too slow → PredictorTimeout (504).

Wire formats, as the legacy services really speak them:
- SageMaker built-in XGBoost: request `text/csv`, one lead a line, no header, a missing value is an empty field
  (the container reads an empty field as NaN). The answer is `text/csv` probabilities, comma-separated on one line
  (real-time) or one a line (batch); with selectable inference output it may be JSON `{"predictions": [{...}]}` or
  JSON lines. The built-in container does not accept JSON requests; `application/json` (`{"instances": [[...]]}`)
  is for endpoints that run a custom inference script.
- Azure ML managed online endpoint, MLflow model: `{"input_data": {"columns", "index", "data"}}` with
  `Authorization: Bearer <key or token>`; the answer is a JSON list of scores (custom scoring scripts often answer
  `{"predictions": [...]}`, sometimes JSON-encoded twice; all are read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import threading
from pathlib import Path

import httpx
import numpy as np
import orjson

from contract.features import FEATURE_NAMES
from transformer.cli import _positive_finite_float, _positive_int
from transformer.errors import PredictorTimeout, PredictorUnavailable

log = logging.getLogger(__name__)

SCORE_KEYS = ("score", "probability", "predicted_score")  # per-prediction keys the legacy containers use
SAGEMAKER_CONTENT_TYPES = ("text/csv", "application/json")
_SEPARATORS = re.compile(r"[,\s]+")
# A score takes ~20 bytes in the wordiest answer format ({"probability": 0.123456789},); 1 KiB a lead leaves room for
# the extra fields custom scripts add, and a larger answer is a broken endpoint whose body is not worth holding.
ANSWER_BYTES_PER_LEAD = 1024
ANSWER_BYTES_BASE = 64 * 1024
ERROR_DETAIL_BYTES = 4096  # what is read of a refusal's body: its message, never a whole error page


# ---- encoding -------------------------------------------------------------------------------------------------


def _rows(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, dtype=np.float32)  # orjson serializes C-contiguous arrays only


# orjson writes each float32 in its shortest form that reads back as the same float32, so the legacy model sees the
# very inputs the transformer validated, and NaN (a missing value) as null; it writes ±inf as null too, but validation
# has refused those. It is ~15x faster than formatting value by value in Python (~1 ms per 1000 leads).
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def encode_csv(matrix: np.ndarray) -> bytes:
    """One lead a line, features in model order, NaN as an empty field (SageMaker XGBoost's missing value)."""
    nested = orjson.dumps(_rows(matrix), option=_NUMPY)  # [[v,v,null],[v,...]]
    return nested[2:-2].replace(b"],[", b"\n").replace(b"null", b"") + b"\n"


def encode_sagemaker_json(matrix: np.ndarray) -> bytes:
    return orjson.dumps({"instances": _rows(matrix)}, option=_NUMPY)


def encode_azureml(matrix: np.ndarray) -> bytes:
    """MLflow `input_data` split orientation: named columns, so a column-order mistake cannot pass silently."""
    rows = _rows(matrix)
    return orjson.dumps(
        {"input_data": {"columns": list(FEATURE_NAMES), "index": list(range(len(rows))), "data": rows}},
        option=_NUMPY,
    )


# ---- decoding -------------------------------------------------------------------------------------------------


def _score_of(item: object) -> float:
    if isinstance(item, dict):
        for key in SCORE_KEYS:
            if key in item:
                return float(item[key])
        raise ValueError(f"prediction object without any of {SCORE_KEYS}: {sorted(item)[:5]}")
    if isinstance(item, list) and len(item) == 1:
        return float(item[0])
    if isinstance(item, bool) or not isinstance(item, int | float | str):
        raise ValueError(f"unexpected prediction {str(item)[:50]!r}")
    return float(item)


def _scores_from_json(document: object) -> list[float]:
    if isinstance(document, str):  # a scoring script that returned json.dumps(...) gets encoded twice
        document = json.loads(document)
    if isinstance(document, dict):
        if "predictions" not in document:
            raise ValueError(f"JSON answer without 'predictions': keys {sorted(document)[:5]}")
        document = document["predictions"]
    if not isinstance(document, list):
        raise ValueError(f"JSON answer is a {type(document).__name__}, expected a list of scores")
    return [_score_of(item) for item in document]


def decode_scores(body: bytes, content_type: str | None, n: int, where: str) -> np.ndarray:
    """Read N probabilities from whichever answer format the endpoint used; anything else is a broken backend."""
    text = body.decode("utf-8", errors="replace").strip()
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        if kind in {"application/jsonlines", "application/x-jsonlines", "application/jsonl"}:
            scores = [s for line in text.splitlines() if line.strip() for s in _line_scores(line)]
        elif kind == "application/json" or text[:1] in {"[", "{", '"'}:
            scores = _scores_from_json(json.loads(text))
        else:  # text/csv: comma- or newline-separated
            scores = [float(token) for token in _SEPARATORS.split(text) if token]
        result = np.asarray(scores, dtype=np.float32)
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise PredictorUnavailable(
            f"legacy endpoint {where} answered something that is not scores "
            f"({kind or 'no content type'}): {exc}; first bytes {text[:80]!r}"
        ) from None
    if result.shape != (n,):
        raise PredictorUnavailable(
            f"legacy endpoint {where} returned {result.size} scores for {n} leads "
            "(is it a single-output binary classifier?)"
        )
    if not np.all(np.isfinite(result)):
        raise PredictorUnavailable(f"legacy endpoint {where} returned non-finite scores")
    if result.size and not (result.min() >= 0 and result.max() <= 1):
        # Tiers are cut on probabilities: a margin of 5.19 would be answered as tier A with a "score" of 5.19.
        raise PredictorUnavailable(
            f"legacy endpoint {where} returned scores outside [0, 1] (from {result.min():g} to "
            f"{result.max():g}): is it answering margins rather than probabilities (objective "
            "binary:logitraw, or output_margin in a custom script)? It must answer binary:logistic probabilities"
        )
    return result


def answer_limit(n: int) -> int:
    """Largest answer accepted for N leads, in bytes."""
    return ANSWER_BYTES_BASE + ANSWER_BYTES_PER_LEAD * n


def answer_too_large(where: str, n: int) -> PredictorUnavailable:
    return PredictorUnavailable(
        f"legacy endpoint {where} answered more than {answer_limit(n)} bytes for {n} leads "
        f"({ANSWER_BYTES_PER_LEAD} bytes a lead + {ANSWER_BYTES_BASE}): not read further, "
        "is it answering something other than one score per lead?"
    )


def timeout_error(where: str, timeout: float) -> PredictorTimeout:
    return PredictorTimeout(f"{where} did not answer within {timeout:g} s (--legacy_timeout_seconds)")


def _line_scores(line: str) -> list[float]:
    item = json.loads(line)
    if (isinstance(item, dict) and "predictions" in item) or (isinstance(item, list) and len(item) != 1):
        return _scores_from_json(item)
    return [_score_of(item)]


# ---- SageMaker ------------------------------------------------------------------------------------------------


class SageMakerPredictor:
    """`sagemaker-runtime InvokeEndpoint` with the default AWS credential chain (IRSA on EKS, env, profile)."""

    mode = "sagemaker"

    def __init__(
        self,
        endpoint_name: str,
        region: str,
        content_type: str = "text/csv",
        timeout_seconds: float = 2.0,
        endpoint_url: str | None = None,
        max_concurrency: int = 16,
    ):
        import boto3  # imported here: parsing flags should not pay for boto3
        from botocore.config import Config

        if not endpoint_name:
            raise ValueError("SageMaker endpoint name is empty (--sagemaker_endpoint_name)")
        if not region:
            raise ValueError("SageMaker region is unknown: set --sagemaker_region or AWS_REGION")
        if content_type not in SAGEMAKER_CONTENT_TYPES:
            raise ValueError(f"SageMaker content type {content_type!r}: use one of {SAGEMAKER_CONTENT_TYPES}")
        self.endpoint_name, self.region, self.content_type = endpoint_name, region, content_type
        self.timeout = float(timeout_seconds)
        self.target = f"sagemaker:{region}/{endpoint_name}"
        # One attempt only: a retried inference doubles the time the client waits, past the budget it was given.
        config = Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            max_pool_connections=max_concurrency,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        session = boto3.session.Session(region_name=region)
        self._runtime = session.client("sagemaker-runtime", endpoint_url=endpoint_url, config=config)
        self._control = session.client("sagemaker", endpoint_url=endpoint_url, config=config)
        self._threads = _DaemonThreads(max_concurrency, "sagemaker")
        self._may_describe = True
        self._last_call_ok = True

    def _invoke(self, matrix: np.ndarray, inference_id: str | None) -> tuple[bytes | None, str]:
        """Encode, call and read the answer (None when it exceeds answer_limit). Runs on a worker thread."""
        body = encode_csv(matrix) if self.content_type == "text/csv" else encode_sagemaker_json(matrix)
        extra = {"InferenceId": inference_id[:64]} if inference_id else {}
        response = self._runtime.invoke_endpoint(
            EndpointName=self.endpoint_name,
            ContentType=self.content_type,
            Accept=self.content_type,
            Body=body,
            **extra,
        )
        limit = answer_limit(matrix.shape[0])
        with response["Body"] as stream:  # read one byte past the limit, never the rest of a huge answer
            answer = stream.read(limit + 1)
        return (answer if len(answer) <= limit else None), response.get("ContentType", "")

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        inference_id = (headers or {}).get("x-request-id")
        try:
            # The whole call, waiting for a thread included: botocore's read_timeout is per recv, so an endpoint
            # that trickles a byte at a time would otherwise hold the caller (and a shadow slot) forever.
            async with asyncio.timeout(self.timeout):
                answer, content_type = await self._threads.run(self._invoke, matrix, inference_id)
        except TimeoutError:
            self._last_call_ok = False
            raise timeout_error(self._where, self.timeout) from None
        except Exception as exc:  # botocore's exceptions are mapped; anything else is a bug and propagates
            error = sagemaker_error(exc, self.endpoint_name, self.region, self.timeout)
            if error is None:
                raise
            self._last_call_ok = False
            raise error from None
        self._last_call_ok = True
        if answer is None:
            raise answer_too_large(self.target, matrix.shape[0])
        # Off the event loop: parsing 1000 scores costs milliseconds the other requests would wait for.
        return await asyncio.to_thread(decode_scores, answer, content_type, matrix.shape[0], self.target)

    @property
    def _where(self) -> str:
        return f"SageMaker endpoint {self.endpoint_name!r} ({self.region})"

    def _endpoint_in_service(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._may_describe:
            try:
                status = self._control.describe_endpoint(EndpointName=self.endpoint_name)["EndpointStatus"]
                return status in {"InService", "Updating"}  # Updating still serves the old variant
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in {"AccessDeniedException", "AccessDenied"}:
                    return False
                # The role may only allow InvokeEndpoint. Readiness then follows the last call: starting as
                # not-ready would keep traffic away forever, and a first call is what proves the endpoint.
                self._may_describe = False
                log.warning(
                    "no sagemaker:DescribeEndpoint permission on %s; readiness follows the last call",
                    self.endpoint_name,
                )
            except BotoCoreError:
                return False
        return self._last_call_ok

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):  # a probe must not hang on a trickling control plane
                return await self._threads.run(self._endpoint_in_service)
        except TimeoutError:
            return False

    async def close(self) -> None:
        # A thread still stuck in a call is a daemon: it is abandoned, and does not hold the process at exit.
        self._runtime.close()
        self._control.close()


class _DaemonThreads:
    """Blocking calls on daemon threads, at most `limit` at once.

    Not a ThreadPoolExecutor: its workers are joined at interpreter exit, so one boto3 call stuck reading an endpoint
    that trickles its answer kept the pod from exiting after SIGTERM. A call whose caller gave up (its deadline) keeps
    its slot until botocore returns, so threads and pooled connections stay bounded by `limit`.
    """

    def __init__(self, limit: int, name: str):
        self._limit, self._name = limit, name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    async def run(self, function, *args):
        loop = asyncio.get_running_loop()
        # An asyncio.Semaphore serves one loop: the serving loop, which starts after __init__.
        if self._loop is not loop:
            self._loop, self._slots = loop, asyncio.Semaphore(self._limit)
        slots = self._slots
        await slots.acquire()  # the caller's deadline may cancel this wait; then nothing is held
        result = loop.create_future()
        try:
            threading.Thread(
                target=_call, args=(loop, slots, result, function, args), name=self._name, daemon=True
            ).start()
        except BaseException:
            slots.release()
            raise
        return await result


def _call(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore, result: asyncio.Future, function, args):
    """A daemon thread's work: run, then hand the outcome and the slot back to the loop."""
    try:
        outcome = (function(*args), None)
    except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine, which maps it
        outcome = (None, exc)
    try:
        loop.call_soon_threadsafe(_settle, slots, result, *outcome)
    except RuntimeError:  # the loop has closed: nobody waits for the answer or the slot any more
        pass


def _settle(slots: asyncio.Semaphore, result: asyncio.Future, value, error: Exception | None) -> None:
    slots.release()
    if result.cancelled():  # the caller's deadline passed while the call ran
        return
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(value)


def sagemaker_error(
    exc: Exception, endpoint: str, region: str, timeout: float
) -> PredictorUnavailable | None:
    """Turn a botocore failure into an error that says what to check; None when it is not a botocore failure."""
    from botocore import exceptions as bx

    where = f"SageMaker endpoint {endpoint!r} ({region})"
    if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError):
        return timeout_error(where, timeout)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return PredictorUnavailable(
            f"{where}: no AWS credentials found; give the pod an IAM role (IRSA) that "
            "allows sagemaker:InvokeEndpoint"
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.HTTPClientError):
        return PredictorUnavailable(
            f"{where} is unreachable ({type(exc).__name__}): check network egress, the "
            "VPC endpoint for sagemaker.runtime, and --sagemaker_endpoint_url if set"
        )
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), str(error.get("Message", ""))[:200]
        if code in {
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
            "AccessDenied",
        }:
            hint = "the pod's AWS role is not allowed sagemaker:InvokeEndpoint on this endpoint"
        elif code in {"ValidationError", "ValidationException"} and "not found" in message.lower():
            hint = "no such endpoint in this account and region: check --sagemaker_endpoint_name / --sagemaker_region"
        elif code == "ModelError":
            status = exc.response.get("OriginalStatusCode", "?")
            hint = (
                f"the model container answered {status}; see CloudWatch log group "
                f"/aws/sagemaker/Endpoints/{endpoint}"
            )
        elif code in {
            "ThrottlingException",
            "ModelNotReadyException",
            "ServiceUnavailable",
            "InternalFailure",
            "InternalDependencyException",
        }:
            hint = "the endpoint is busy, scaling or not ready; retry later or raise its instance count"
        else:
            hint = "the endpoint rejected the request"
        return PredictorUnavailable(f"{where}: {code}: {message} ({hint})")
    if isinstance(exc, bx.BotoCoreError):
        return PredictorUnavailable(f"{where} failed: {type(exc).__name__}: {str(exc)[:200]}")
    return None


# ---- Azure ML -------------------------------------------------------------------------------------------------


class AzureMLPredictor:
    """POST to an Azure ML managed online endpoint's scoring URI with its key (or an Entra token) as Bearer."""

    mode = "azureml"

    def __init__(
        self, scoring_uri: str, key_or_token: str, timeout_seconds: float = 2.0, deployment: str | None = None
    ):
        if not scoring_uri.startswith(("https://", "http://")):
            raise ValueError(f"Azure ML scoring URI must be an http(s) URL, got {scoring_uri[:60]!r}")
        if not key_or_token:
            raise ValueError("Azure ML endpoint key is empty (env AZUREML_KEY or --azureml_key_file)")
        self.scoring_uri, self.timeout, self.target = (
            scoring_uri,
            float(timeout_seconds),
            f"azureml:{scoring_uri}",
        )
        self._headers = {
            "Authorization": f"Bearer {key_or_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if deployment:  # pins one deployment behind the endpoint, bypassing its traffic split
            self._headers["azureml-model-deployment"] = deployment
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # the default repr would not show the key, but say so explicitly
        return f"AzureMLPredictor({self.scoring_uri!r}, key=<hidden>)"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created inside the serving event loop
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=self._headers)
        return self._client

    async def predict(self, matrix: np.ndarray, headers: dict | None = None) -> np.ndarray:
        extra = (
            {"x-ms-client-request-id": headers["x-request-id"][:64]}
            if headers and "x-request-id" in headers
            else {}
        )
        where = f"Azure ML endpoint {self.scoring_uri}"
        n = matrix.shape[0]
        # Off the event loop: encoding 1000 leads as JSON costs milliseconds the other requests would wait for.
        body = await asyncio.to_thread(encode_azureml, matrix)
        try:
            # The whole call: httpx's timeout is per read, and an endpoint that trickles a byte at a time would
            # otherwise hold the caller (and a shadow slot) forever.
            async with asyncio.timeout(self.timeout):
                status, content_type, answer, whole = await self._post(body, extra, n)
        except (TimeoutError, httpx.TimeoutException):
            raise timeout_error(where, self.timeout) from None
        except httpx.DecodingError as exc:
            raise PredictorUnavailable(f"{where} answered a body that cannot be decoded: {exc}") from None
        except httpx.TransportError as exc:
            raise PredictorUnavailable(
                f"{where} is unreachable ({type(exc).__name__}): check the URI, DNS and network egress"
            ) from None
        if status != 200:
            raise azureml_error(status, answer.decode("utf-8", "replace"), where, self.timeout)
        if not whole:
            raise answer_too_large(where, n)
        return await asyncio.to_thread(decode_scores, answer, content_type, n, where)

    async def _post(self, body: bytes, headers: dict, n: int) -> tuple[int, str | None, bytes, bool]:
        """Status, content type, body, and whether the body is whole: an answer is read up to answer_limit(n), the
        body of a refusal up to ERROR_DETAIL_BYTES (its message)."""
        async with self.client.stream("POST", self.scoring_uri, content=body, headers=headers) as response:
            limit = answer_limit(n) if response.status_code == 200 else ERROR_DETAIL_BYTES
            answer, whole = await _read_at_most(response, limit)
            return response.status_code, response.headers.get("content-type"), answer, whole

    async def ready(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout), self.client.stream("GET", self.scoring_uri) as response:
                # Any answer but refusal or a server fault means the endpoint is up and the key is accepted;
                # its body is not needed (leaving unread closes the connection).
                return response.status_code < 500 and response.status_code not in {401, 403, 404}
        except (TimeoutError, httpx.HTTPError):
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that is all of it: a huge body is never held in memory."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), False
    return bytes(data), True


def azureml_error(status: int, text: str, where: str, timeout: float) -> PredictorUnavailable:
    detail = text[:200]
    if status in {401, 403}:
        return PredictorUnavailable(
            f"{where} refused the key (HTTP {status}): check AZUREML_KEY / "
            "--azureml_key_file, or regenerate the endpoint key"
        )
    if status == 404:
        return PredictorUnavailable(
            f"{where} answered 404: check --azureml_scoring_uri (it ends in /score) and --azureml_deployment"
        )
    if status == 408:
        return PredictorTimeout(
            f"{where} timed out on its side (HTTP 408); raise the deployment's "
            f"request_timeout_ms or lower --legacy_timeout_seconds ({timeout:g} s)"
        )
    if status == 429:
        return PredictorUnavailable(
            f"{where} is throttling (HTTP 429): raise max_concurrent_requests_per_instance "
            "or the instance count"
        )
    if status == 424:
        return PredictorUnavailable(f"{where}: the model failed (HTTP 424): {detail}")
    return PredictorUnavailable(f"{where} answered HTTP {status}: {detail}")


# ---- command line ---------------------------------------------------------------------------------------------


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {value}")
    return number


def add_legacy_arguments(parser) -> None:
    """Flags for the legacy endpoint; like every flag, each is also read from the env var of its dest upper-cased."""
    group = parser.add_argument_group("legacy endpoint (migration off SageMaker / Azure ML)")
    group.add_argument(
        "--legacy_mode",
        choices=["off", "live", "shadow"],
        default="off",
        help="live: the legacy endpoint answers clients; shadow: it is called on the side for a "
        "fraction of requests and compared; off: not used.",
    )
    group.add_argument(
        "--legacy_backend",
        choices=["sagemaker", "azureml"],
        default=None,
        help="Which legacy endpoint --legacy_mode live|shadow calls.",
    )
    group.add_argument(
        "--legacy_timeout_seconds",
        type=_positive_finite_float,
        default=2.0,
        help="Deadline of one call to the legacy endpoint, from sending to the last byte of the answer "
        "(no retries).",
    )
    group.add_argument(
        "--sagemaker_endpoint_name", default=None, help="SageMaker real-time endpoint to call."
    )
    group.add_argument("--sagemaker_region", default=None, help="Default: AWS_REGION / AWS_DEFAULT_REGION.")
    group.add_argument(
        "--sagemaker_content_type",
        choices=list(SAGEMAKER_CONTENT_TYPES),
        default="text/csv",
        help="text/csv for the built-in XGBoost container; application/json for a custom script.",
    )
    group.add_argument(
        "--sagemaker_endpoint_url", default=None, help="sagemaker-runtime endpoint (tests, VPC)."
    )
    group.add_argument(
        "--azureml_scoring_uri", default=None, help="https://<endpoint>.<region>.inference.ml.azure.com/score"
    )
    group.add_argument(
        "--azureml_key_file",
        default=None,
        help="File holding the endpoint key or token (a mounted Secret). Env AZUREML_KEY also works; "
        "the key is never a flag, so it never shows in the process list.",
    )
    group.add_argument(
        "--azureml_deployment", default=None, help="Pin one deployment (azureml-model-deployment)."
    )
    group.add_argument(
        "--shadow_fraction", type=_fraction, default=0.01, help="Share of requests shadowed, 0..1."
    )
    group.add_argument(
        "--shadow_max_in_flight",
        type=_positive_int,
        default=8,
        help="Shadow calls running at once; more are dropped and counted.",
    )


def build_legacy_predictor(args, environ: dict[str, str] | None = None):
    """The legacy endpoint named by the flags; ValueError with the missing flag when the flags are incomplete."""
    environ = os.environ if environ is None else environ
    if args.legacy_backend == "sagemaker":
        region = args.sagemaker_region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        return SageMakerPredictor(
            args.sagemaker_endpoint_name or "",
            region or "",
            args.sagemaker_content_type,
            args.legacy_timeout_seconds,
            args.sagemaker_endpoint_url,
        )
    if args.legacy_backend == "azureml":
        key = environ.get("AZUREML_KEY", "")
        if args.azureml_key_file:
            key = Path(args.azureml_key_file).read_text().strip()
        return AzureMLPredictor(
            args.azureml_scoring_uri or "", key, args.legacy_timeout_seconds, args.azureml_deployment
        )
    raise ValueError(f"--legacy_mode {args.legacy_mode} needs --legacy_backend sagemaker|azureml")
