"""One JSON object per log line, for the transformer's own lines, KServe's and uvicorn's access log alike.

Log level comes from --log_level / LOG_LEVEL. No line carries an API key: the auth module logs key names only,
request logs are built from explicit fields, not from headers, and uvicorn's access line — the one line that holds a
request target — is written without the target's query string, in every field: a client may send its key as
`?api_key=…`, and a query is client data we have no use for in logs.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from urllib.parse import unquote

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def path_only(target: object) -> str:
    """A request target (`/v2/health/live?api_key=…`) without its query string."""
    return str(target).split("?", 1)[0]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, target, version, status = record.args
            path = path_only(target)
            if path != target:  # the request line in `msg` holds the whole target: cut its query there too
                entry["msg"] = entry["msg"].replace(str(target), path)
            entry.update(client=client, method=method, path=path, http_version=version, status=status)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.levelno >= logging.ERROR:
            # The type and message only: stack traces go to debug level, not to log pipelines by default.
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                entry["trace"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ScoringRoutesAccessFilter(logging.Filter):
    """Drop uvicorn's access line for the requests the transformer's own request line ("scored" / "rejected",
    "outcomes recorded" / "outcomes rejected") already covers — a POST to this model's scoring routes or to
    /v1/outcomes — with its request id, outcome, status and latency: one
    JSON line per request halves the logging cost on the hot path. Kept, because nothing else logs them: other
    methods (405), other models' routes (KServe's 404) and 413 (the body limit answers before the Scorer reads).
    Every other route keeps its JSON access line."""

    def __init__(self, model_name: str | None = None) -> None:
        super().__init__()
        self.model_name = model_name

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):
            return True
        _, method, target, _, status = args
        if method != "POST" or status == 413:
            return True
        path = unquote(path_only(target))  # `…/infer?x-api-key=…` and `…%3Apredict` are scoring routes too
        if path == "/v1/outcomes":
            return status == 404  # the intake logs every call it answers; 404: the route is off, no intake
        if not ("/models/" in path and (path.endswith("/infer") or path.endswith(":predict"))):
            return True
        if self.model_name is None:
            return False
        ours = path.startswith(f"/v1/models/{self.model_name}:") or path.startswith(
            f"/v2/models/{self.model_name}/"
        )
        return not ours


class GrpcInferLineFilter(logging.Filter):
    """Drops KServe's "grpc method: …/ModelInfer" line (its LoggingInterceptor, on every call): the Scorer's request
    line already logs each inference call with more in it, so every call had two. Other methods keep it: nothing
    else logs them."""

    LINE = "grpc method: /inference.GRPCInferenceService/ModelInfer"

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != self.LINE


def configure(level: str = "INFO", model_name: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # KServe and uvicorn install their own handlers; route everything through the JSON one.
    for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access", "transformer"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    # httpx logs every request it sends at INFO: in REST-hop mode that is a second line per predictor call, which
    # the request line already covers (its predictor timing, status and errors).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # The JSON lines carry no thread, process or call-site fields: do not collect them for every record (the
    # logging HOWTO's "Optimization" table; ~2 µs of a ~12 µs request line).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # noqa: SLF001 - the documented switch for "where calls were made from"
    logging.getLogger("uvicorn.access").addFilter(ScoringRoutesAccessFilter(model_name))
    logging.getLogger("kserve").addFilter(GrpcInferLineFilter())
    # Library deprecation warnings would otherwise go to stderr as plain text and break "one JSON object per
    # line" for log pipelines; as records of `py.warnings` they are JSON at level WARNING (and shown once each).
    logging.captureWarnings(True)
