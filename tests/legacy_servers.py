"""Stand-ins for the legacy endpoints on 127.0.0.1, speaking their wire formats with a real booster behind them.

- `LegacyBoosterServer`: one plain http.server app that answers
    SageMaker's  POST /endpoints/<name>/invocations  (text/csv like the built-in XGBoost container, or JSON
                 `{"instances"}` like a custom script), errors the way sagemaker-runtime sends them, and the control
                 plane's DescribeEndpoint (POST / with X-Amz-Target), so boto3 can be pointed at it by endpoint_url;
    Azure ML's   POST /score  (MLflow `input_data`, Bearer key checked) and GET /score.
  A `gate` (threading.Event) lets a test hold every request inside the server for as long as it likes: that is how
  "slow" is made without timing anything. `trickle_every` makes it answer 200 and then send one byte of the body
  every so many seconds until stopped (each read sees data, so only a total deadline ends the call), and
  `answer_body` replaces the scores' wire form with whatever a test needs (scores out of range, a huge body).
- `MotoSageMaker`: moto's server for sagemaker-runtime (canned answers) and sagemaker (DescribeEndpoint).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import xgboost as xgb

from tests.sink_servers import free_port

SAGEMAKER_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
HOLD_LIMIT_SECONDS = (
    30.0  # a held request is answered at the latest after this, so a forgotten gate cannot hang CI
)


def parse_container_csv(text: str) -> np.ndarray:
    """What the SageMaker XGBoost container does with a CSV body: split lines and commas, empty field → NaN."""
    rows = [[float(v) if v != "" else np.nan for v in line.split(",")] for line in text.strip().split("\n")]
    return np.asarray(rows, dtype=np.float64)


def _matrix(rows: list[list]) -> np.ndarray:
    return np.asarray([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


class LegacyBoosterServer:
    def __init__(
        self, booster: xgb.Booster, endpoint_name: str = "lead-scoring-legacy", azure_key: str = "k"
    ):
        self.booster, self.endpoint_name, self.azure_key = booster, endpoint_name, azure_key
        self.gate = threading.Event()
        self.gate.set()  # open: answer at once
        self.received = 0  # requests that reached a scoring route
        self.held = 0  # requests waiting at the gate right now
        self.last_headers: dict[str, str] = {}
        self.fail_status: int | None = None  # answer every scoring request with this status
        self.trickle_every: float | None = None  # seconds between the bytes of a never-ending answer
        self.answer_body: Callable[[np.ndarray], bytes] | None = None  # the booster's scores → the body sent
        self.trickling = 0  # answers being trickled right now
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._predict_lock = threading.Lock()
        self.port = free_port()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LegacyBoosterServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet test output
                pass

            def do_GET(self):
                if self.path != "/score":
                    return self._send(404, b"")
                if not server._authorized(self):
                    return self._send(401, b"")
                self._send(200, b"Healthy", "text/plain")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/" and "DescribeEndpoint" in self.headers.get("X-Amz-Target", ""):
                    return server._describe(self, json.loads(body))
                match = SAGEMAKER_PATH.match(self.path)
                if match:
                    return server._sagemaker(self, match["name"], body)
                if self.path == "/score":
                    return server._azure(self, body)
                self._send(404, b"")

            def _send(
                self, status: int, payload: bytes, content_type: str = "application/json", headers=None
            ):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.gate.set()  # release anything held
        self._stopping.set()  # end every trickle
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def _score(self, matrix: np.ndarray) -> np.ndarray:
        with self._predict_lock:  # one booster, many handler threads
            return self.booster.predict(xgb.DMatrix(matrix))

    def _arrive(self, handler, sagemaker: bool = False) -> bool:
        """Count the request, wait at the gate; False when the test asked for a failure status."""
        with self._lock:
            self.received += 1
            self.held += 1
            self.last_headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            self.gate.wait(HOLD_LIMIT_SECONDS)
        finally:
            with self._lock:
                self.held -= 1
        if self.trickle_every is not None:
            self._trickle(handler)
            return False
        if self.fail_status is not None:
            if sagemaker:  # sagemaker-runtime wraps a container failure as ModelError (HTTP 424)
                payload = {
                    "OriginalStatusCode": self.fail_status,
                    "OriginalMessage": "injected failure",
                    "message": f"Received server error ({self.fail_status}) from primary",
                }
                handler._send(424, json.dumps(payload).encode(), headers={"x-amzn-ErrorType": "ModelError"})
            else:
                handler._send(self.fail_status, json.dumps({"message": "injected failure"}).encode())
            return False
        return True

    def _trickle(self, handler) -> None:
        """A 200 whose body never ends: one byte every `trickle_every` seconds until stop() or the client leaves."""
        every = self.trickle_every  # as it was when the request came: a test may reset it meanwhile
        handler.send_response(200)
        handler.send_header("Content-Type", "text/csv")
        handler.send_header("Content-Length", "1000000")
        handler.end_headers()
        with self._lock:
            self.trickling += 1
        try:
            while not self._stopping.wait(every):
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except OSError:  # the client gave up and closed the connection
            pass
        finally:
            with self._lock:
                self.trickling -= 1
        handler.close_connection = True

    def _answer(self, handler, scores: np.ndarray, wire: Callable[[np.ndarray], tuple[bytes, str]]) -> None:
        body, content_type = wire(scores)
        if self.answer_body is not None:
            body = self.answer_body(scores)
        try:
            handler._send(200, body, content_type)
        except (
            BrokenPipeError,
            ConnectionResetError,
        ):  # a client that refuses a huge answer hangs up mid-body
            handler.close_connection = True

    def _describe(self, handler, request: dict) -> None:
        name = request.get("EndpointName")
        if name != self.endpoint_name:
            payload = {"__type": "ValidationException", "message": f"Could not find endpoint {name}."}
            return handler._send(400, json.dumps(payload).encode(), "application/x-amz-json-1.1")
        payload = {
            "EndpointName": name,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
            "EndpointConfigName": name,
            "EndpointStatus": "InService",
            "CreationTime": 0,
            "LastModifiedTime": 0,
        }
        handler._send(200, json.dumps(payload).encode(), "application/x-amz-json-1.1")

    def _sagemaker(self, handler, name: str, body: bytes) -> None:
        if not handler.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return handler._send(
                403,
                json.dumps({"message": "Missing Authentication Token"}).encode(),
                headers={"x-amzn-ErrorType": "AccessDeniedException"},
            )
        if name != self.endpoint_name:
            message = f"Endpoint {name} of account 123456789012 not found."
            return handler._send(
                400,
                json.dumps({"message": message}).encode(),
                headers={"x-amzn-ErrorType": "ValidationError"},
            )
        if not self._arrive(handler, sagemaker=True):
            return
        content_type = handler.headers.get("Content-Type", "")
        if content_type == "text/csv":
            scores = self._score(parse_container_csv(body.decode()))
            # The real-time container's answer: the probabilities on one comma-separated line.
            return self._answer(
                handler, scores, lambda s: (",".join(map(str, s.tolist())).encode(), "text/csv")
            )
        if content_type == "application/json":
            scores = self._score(_matrix(json.loads(body)["instances"]))
            return self._answer(
                handler,
                scores,
                lambda s: (
                    json.dumps({"predictions": [{"score": v} for v in s.tolist()]}).encode(),
                    "application/json",
                ),
            )
        handler._send(415, b"unsupported content type", "text/plain")

    def _authorized(self, handler) -> bool:
        return handler.headers.get("Authorization") == f"Bearer {self.azure_key}"

    def _azure(self, handler, body: bytes) -> None:
        if not self._authorized(handler):
            return handler._send(401, json.dumps({"message": "key auth failed"}).encode())
        if not self._arrive(handler):
            return
        data = json.loads(body)["input_data"]
        if len(data["columns"]) != 50 or len(data["index"]) != len(data["data"]):
            return handler._send(400, json.dumps({"message": "bad input_data"}).encode())
        scores = self._score(_matrix(data["data"]))
        self._answer(handler, scores, lambda s: (json.dumps(s.tolist()).encode(), "application/json"))


class MotoSageMaker:
    """moto's multi-service server: sagemaker-runtime answers from a queue of canned results."""

    def __init__(self, region: str = "us-east-1"):
        from moto.server import ThreadedMotoServer

        self.region = region
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoSageMaker:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def queue_results(self, bodies: list[tuple[str, str]]) -> None:
        """Answers for the next invocations, as (body, content type), through moto's documented static API."""
        results = [
            {
                "Body": body,
                "ContentType": content_type,
                "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": "",
            }
            for body, content_type in bodies
        ]
        request = urllib.request.Request(
            f"{self.url}/moto-api/static/sagemaker/endpoint-results",
            method="POST",
            data=json.dumps({"region": self.region, "results": results}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            assert response.status in (200, 201)

    def create_endpoint(self, name: str) -> None:
        import boto3

        client = boto3.client("sagemaker", region_name=self.region, endpoint_url=self.url)
        client.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
            PrimaryContainer={"Image": "xgboost:1.7-1", "ModelDataUrl": "s3://models/model.tar.gz"},
        )
        client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        client.create_endpoint(EndpointName=name, EndpointConfigName=name)
