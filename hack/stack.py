"""Start the local stack as real processes: the stand-in predictor and the transformer, on loopback.

Used by `make serve`, the end-to-end tests and `make bench`, so all three run the stack the same way.
"""

from __future__ import annotations

import os
import signal
import socket

# subprocess only ever starts this project's own server modules (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "lead-scoring"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    log_path: Path
    started: float = field(default_factory=time.perf_counter)
    ready_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout: float = 60.0, path: str = "/v2/health/ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    self.ready_seconds = time.perf_counter() - self.started
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _spawn(
    name: str, args: list[str], log_dir: Path, env: dict[str, str] | None, http_port: int, grpc_port: int
) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{http_port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=full_env,  # nosec B603
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(name, process, http_port, grpc_port, log_path)


def start_predictor(
    model_dir: Path,
    log_dir: Path,
    http_port: int | None = None,
    grpc_port: int | None = None,
    env: dict[str, str] | None = None,
    model_name: str = MODEL_NAME,
) -> Server:
    http_port, grpc_port = http_port or free_port(), grpc_port or free_port()
    return _spawn(
        "predictor",
        [
            "-m",
            "predictor.server",
            "--model_name",
            model_name,
            "--model_dir",
            str(model_dir),
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            "--enable_latency_logging",
            "false",
        ],
        log_dir,
        env,
        http_port,
        grpc_port,
    )


def start_transformer(
    model_dir: Path,
    log_dir: Path,
    *,
    api_keys: str | None = None,
    predictor: str | None = None,
    protocol: str = "grpc-v2",
    http_port: int | None = None,
    grpc_port: int | None = None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    http_port, grpc_port = http_port or free_port(), grpc_port or free_port()
    args = [
        "-m",
        "transformer",
        "--model_name",
        MODEL_NAME,
        "--model_card_uri",
        str(model_dir),
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
    ]
    if predictor:
        args += ["--predictor_host", predictor, "--predictor_protocol", protocol]
    args += extra_args or []
    full_env = dict(env or {})
    if api_keys is not None:
        full_env["API_KEYS"] = api_keys
    return _spawn("transformer", args, log_dir, full_env, http_port, grpc_port)
