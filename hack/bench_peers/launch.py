"""Start the reference peers as real processes on loopback, like `hack.stack` starts ours (same Server handle)."""

from __future__ import annotations

import os

# subprocess only starts the peers' own modules (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
from pathlib import Path

from hack.stack import MODEL_NAME, ROOT, Server, _spawn, free_port


def _spawn_with(
    python: Path, name: str, args: list[str], log_dir: Path, http_port: int, grpc_port: int
) -> Server:
    """hack.stack's spawn, with another interpreter (the KServe-only environment of stock_env)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{http_port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(python), *args],
            cwd=ROOT,  # nosec B603
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(name, process, http_port, grpc_port, log_path)


def start_stock_transformer(
    log_dir: Path, predictor: str, protocol: str, python: Path | None = None
) -> Server:
    http_port, grpc_port = free_port(), free_port()
    # Latency logging off, as on the predictor: four log lines per request would be a cost of the setup, not of KServe.
    args = [
        "-m",
        "hack.bench_peers.stock_transformer",
        "--model_name",
        MODEL_NAME,
        "--predictor_host",
        predictor,
        "--predictor_protocol",
        protocol,
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        "--enable_latency_logging",
        "false",
    ]
    name = f"stock-transformer-{protocol}"
    if python is None or Path(python) == Path(sys.executable):
        return _spawn(name, args, log_dir, None, http_port, grpc_port)
    return _spawn_with(python, name, args, log_dir, http_port, grpc_port)


def start_fastapi_service(model_dir: Path, log_dir: Path, api_key: str) -> Server:
    port = free_port()
    return _spawn(
        "fastapi-peer",
        ["-m", "hack.bench_peers.fastapi_service", "--model-dir", str(model_dir), "--port", str(port)],
        log_dir,
        {"PEER_API_KEY": api_key},
        port,
        0,
    )
