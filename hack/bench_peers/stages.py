"""Group py-spy samples of our transformer into the stages of the scoring path (issue 17: "what is left between the
socket and inplace_predict").

Each sample (a collapsed stack, root first) is charged to the innermost frame that names a stage, so a log line
written from `Scorer.finish` counts as "log line", not as "finish", and the socket write of the response counts as
"socket I/O". Rules are (stage, substring of a frame), checked against every frame from the leaf upwards.
"""

from __future__ import annotations

from pathlib import Path

RULES: tuple[tuple[str, str], ...] = (
    ("socket I/O (send/recv syscalls)", "asyncio/selector_events.py"),
    # The in-process booster calls xgboost's C library through ctypes (transformer/native_xgboost.py): py-spy charges
    # the C call's time to that module's frames.
    ("xgboost (its C library: scores, TreeSHAP)", "transformer/native_xgboost.py"),
    ("xgboost (its C library: scores, TreeSHAP)", "xgboost/"),
    ("log line (JSON formatter + handler)", "logging/__init__.py"),
    ("log line (JSON formatter + handler)", "transformer/logs.py"),
    ("drift (PSI binning)", "transformer/extras/drift.py"),
    ("metrics (prometheus)", "prometheus_client/"),
    ("metrics (prometheus)", "transformer/metrics.py"),
    ("data lake: batcher/uploader threads", "transformer/sink/sink.py"),
    ("data lake: batcher/uploader threads", "pyarrow/"),
    ("data lake: enqueue on the request path", "_record (transformer/scoring.py"),
    ("validation", "contract/validation.py"),
    ("decode (body → matrix)", "transformer/codec.py"),
    ("decode (body → matrix)", "_v2_inputs (transformer/serving/fast_path.py"),
    ("response encoding", "_v2_body (transformer/serving/fast_path.py"),
    ("response encoding", "v1_body (transformer/scoring.py"),
    ("response encoding", "_send (transformer/serving/fast_path.py"),
    ("request id (uuid4)", "uuid.py"),
    ("predictor hop (gRPC client)", "grpc/"),
    ("predictor hop (gRPC client)", "transformer/predictors/hop.py"),
    ("predictor hop (REST client)", "httpx/"),
    ("predictor hop (REST client)", "httpcore/"),
    ("coalescing", "transformer/coalesce.py"),
    ("scoring path, own code (auth, tiers, bookkeeping)", "transformer/scoring.py"),
    ("scoring path, own code (auth, tiers, bookkeeping)", "transformer/auth.py"),
    ("scoring path, own code (auth, tiers, bookkeeping)", "contract/tiers.py"),
    ("fast route: body read + orjson parse", "transformer/serving/fast_path.py"),
    ("HTTP server (uvicorn/starlette/fastapi)", "uvicorn/"),
    ("HTTP server (uvicorn/starlette/fastapi)", "starlette/"),
    ("HTTP server (uvicorn/starlette/fastapi)", "fastapi/"),
    ("HTTP server (uvicorn/starlette/fastapi)", "kserve/"),
    ("event loop (asyncio)", "asyncio/"),
)


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for stage, marker in RULES:
            if marker in frame:
                return stage
    return "other"


def stage_shares(collapsed: Path) -> dict[str, float]:
    """Percent of samples per stage, largest first, from py-spy's raw (collapsed) output."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        stage = stage_of(stack)
        counts[stage] = counts.get(stage, 0) + int(count)
    return (
        {stage: round(100 * n / total, 1) for stage, n in sorted(counts.items(), key=lambda kv: -kv[1])}
        if total
        else {}
    )
