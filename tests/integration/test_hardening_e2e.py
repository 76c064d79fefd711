"""Hardening, against real processes on loopback: per-key rate limits, key rotation without restart, body and lead
limits, and the predictor hop failing fast (frozen → 504 / DEADLINE_EXCEEDED, dead → 503 / UNAVAILABLE).

Bounds on elapsed time are behaviour bounds (a client is not held for minutes), generous on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import yaml
from kserve import InferenceGRPCClient, InferInput, InferRequest

from contract.features import FEATURES
from hack.stack import start_predictor, start_transformer
from predictor.synthetic import as_records, sample_features

V1 = "/v1/models/lead-scoring:predict"
X = np.where(np.isnan(sample_features(3, seed=5)), [f.minimum for f in FEATURES], sample_features(3, seed=5))
KEYS = {
    name: f"{name}-{secrets.token_hex(10)}"
    for name in ("limited-rest", "limited-grpc", "steady", "hashed", "old", "new")
}
MAX_LEADS, MAX_BODY = 10, 60_000


class MountedSecret:
    """A keys file laid out like a Kubernetes Secret/CSI volume: `api-keys.yaml -> ..data/api-keys.yaml`,
    `..data -> ..<timestamp>`; an update writes a new directory and swaps `..data` with one atomic rename."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "api-keys.yaml"
        self._version = 0

    def write(self, entries: list[dict]) -> None:
        self._version += 1
        target = self.root / f"..v{self._version}"
        target.mkdir()
        (target / "api-keys.yaml").write_text(yaml.safe_dump({"keys": entries}))
        staging = self.root / "..data_tmp"
        staging.symlink_to(target.name)
        os.replace(staging, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to("..data/api-keys.yaml")


def _entries(*names: str) -> list[dict]:
    specs = {
        "limited-rest": {"key": KEYS["limited-rest"], "rate_per_second": 0.1, "burst": 2},
        "limited-grpc": {"key": KEYS["limited-grpc"], "rate_per_second": 0.1, "burst": 2},
        "hashed": {"sha256": hashlib.sha256(KEYS["hashed"].encode()).hexdigest()},
    }
    return [{"name": n, **specs.get(n, {"key": KEYS[n]})} for n in names]


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> MountedSecret:
    mounted = MountedSecret(tmp_path_factory.mktemp("secret"))
    mounted.write(_entries("limited-rest", "limited-grpc", "steady", "hashed", "old"))
    return mounted


@pytest.fixture(scope="module")
def inprocess(small_artifact, secret, tmp_path_factory):
    server = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp("logs"),
        extra_args=[
            "--api_keys_file",
            str(secret.path),
            "--api_keys_reload_seconds",
            "0.5",
            "--max_leads",
            str(MAX_LEADS),
            "--max_body_bytes",
            str(MAX_BODY),
        ],
    )
    server.wait_ready()
    yield server
    server.stop()


def rest(server, key: str | None, n: int = 1, **kwargs) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    return httpx.post(
        server.url + V1,
        json={"instances": as_records(np.resize(X, (n, X.shape[1])))},
        headers=headers,
        timeout=20,
        **kwargs,
    )


def grpc_call(server, key: str | None):
    """The InferResponse, or the grpc.RpcError the call ended with."""

    async def call():
        client = InferenceGRPCClient(server.grpc_target, retries=0, timeout=20)
        tensor = InferInput("leads", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X.astype(np.float32), binary_data=True)
        try:
            return await client.infer(
                InferRequest("lead-scoring", [tensor]), headers=[("x-api-key", key)] if key else None
            )
        finally:
            await client.close()

    try:
        return asyncio.run(call())
    except grpc.RpcError as error:
        return error


def grpc_code(result) -> grpc.StatusCode:
    return result.code() if isinstance(result, grpc.RpcError) else grpc.StatusCode.OK


def eventually(check, timeout: float = 15.0):
    """Poll until `check()` is truthy (the reload is periodic); return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


# 1. per-key rate limits and rotation


def test_rest_rate_limit_answers_429_with_retry_after_naming_the_key(inprocess):
    answers = [rest(inprocess, KEYS["limited-rest"]) for _ in range(5)]
    assert [a.status_code for a in answers[:2]] == [200, 200], answers[0].text  # the burst
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    for answer in limited:
        assert int(answer.headers["retry-after"]) >= 1
        assert "limited-rest" in answer.json()["error"]
        assert KEYS["limited-rest"] not in answer.text
    # The bucket is per key: another key is not slowed down by it.
    assert rest(inprocess, KEYS["steady"]).status_code == 200


def test_grpc_rate_limit_is_resource_exhausted(inprocess):
    codes = [grpc_code(grpc_call(inprocess, KEYS["limited-grpc"])) for _ in range(5)]
    assert codes[:2] == [grpc.StatusCode.OK] * 2
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    exhausted = grpc_call(inprocess, KEYS["limited-grpc"])  # one token per 10 s: still empty
    assert grpc_code(exhausted) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limited-grpc" in exhausted.details() and KEYS["limited-grpc"] not in exhausted.details()


def test_a_keys_file_of_sha256_digests_authenticates(inprocess):
    assert rest(inprocess, KEYS["hashed"]).status_code == 200
    assert grpc_code(grpc_call(inprocess, KEYS["hashed"])) == grpc.StatusCode.OK
    assert rest(inprocess, hashlib.sha256(KEYS["hashed"].encode()).hexdigest()).status_code == 401


def test_rotation_without_restart_on_rest_and_grpc(inprocess, secret):
    pid = inprocess.process.pid
    assert rest(inprocess, KEYS["old"]).status_code == 200
    assert rest(inprocess, KEYS["new"]).status_code == 401
    secret.write(_entries("limited-rest", "limited-grpc", "steady", "hashed", "new"))

    assert eventually(lambda: rest(inprocess, KEYS["new"]).status_code == 200), "new key never accepted"
    assert rest(inprocess, KEYS["old"]).status_code == 401
    assert grpc_code(grpc_call(inprocess, KEYS["new"])) == grpc.StatusCode.OK
    assert grpc_code(grpc_call(inprocess, KEYS["old"])) == grpc.StatusCode.UNAUTHENTICATED
    assert inprocess.process.pid == pid and inprocess.process.poll() is None


def test_no_key_ever_reaches_the_log(inprocess):
    rest(inprocess, "never-valid-" + secrets.token_hex(4))
    log = inprocess.log_path.read_text(errors="replace")
    assert "limited-rest" in log  # key names are logged …
    for key in KEYS.values():
        assert key not in log  # … keys never
    assert "never-valid-" not in log


# 2. size limits


def test_body_over_the_limit_is_413_with_content_length(inprocess):
    body = b'{"instances": [' + b" " * MAX_BODY + b"]}"
    answer = httpx.post(
        inprocess.url + V1,
        content=body,
        timeout=20,
        headers={"x-api-key": KEYS["steady"], "content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert "--max_body_bytes" in answer.json()["error"]


def test_chunked_body_over_the_limit_is_413(inprocess):
    def chunks():
        yield b'{"instances": ['
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000
        yield b"]}"

    answer = httpx.post(
        inprocess.url + V1,
        content=chunks(),
        timeout=20,
        headers={"x-api-key": KEYS["steady"], "content-type": "application/json"},
    )
    assert answer.request.headers.get("transfer-encoding") == "chunked"
    assert answer.status_code == 413
    assert "--max_body_bytes" in answer.json()["error"]


def test_more_leads_than_the_limit_is_400_naming_it(inprocess):
    assert rest(inprocess, KEYS["steady"], n=MAX_LEADS).status_code == 200
    answer = rest(inprocess, KEYS["steady"], n=MAX_LEADS + 1)
    assert answer.status_code == 400
    assert f"{MAX_LEADS + 1} > {MAX_LEADS}" in answer.json()["error"]


# 3. the predictor hop fails fast


@pytest.fixture(scope="module")
def hop_stack(small_artifact, tmp_path_factory):
    logs = tmp_path_factory.mktemp("hop-logs")
    predictor = start_predictor(small_artifact, logs)
    predictor.wait_ready()
    key = "hop-" + secrets.token_hex(8)
    flags = ["--predictor_request_timeout_seconds", "1"]
    transformers = {
        "grpc-v2": start_transformer(
            small_artifact,
            logs,
            api_keys=f"hop:{key}",
            predictor=predictor.grpc_target,
            protocol="grpc-v2",
            extra_args=flags,
        ),
        "v2": start_transformer(
            small_artifact,
            logs,
            api_keys=f"hop:{key}",
            predictor=f"127.0.0.1:{predictor.http_port}",
            protocol="v2",
            extra_args=flags,
        ),
    }
    for server in transformers.values():
        server.wait_ready()
    yield predictor, transformers, key
    if predictor.process.poll() is None:
        os.kill(predictor.process.pid, signal.SIGCONT)
    for server in (*transformers.values(), predictor):
        server.stop()


def _timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_frozen_then_dead_predictor_fails_fast_on_both_hops_and_both_protocols(hop_stack):
    predictor, transformers, key = hop_stack
    for server in transformers.values():
        assert rest(server, key).status_code == 200

    os.kill(predictor.process.pid, signal.SIGSTOP)
    try:
        for hop, server in transformers.items():
            answer, elapsed = _timed(lambda s=server: rest(s, key))
            assert answer.status_code == 504, (hop, answer.text)
            assert "--predictor_request_timeout_seconds" in answer.json()["error"]
            assert elapsed < 10, (hop, elapsed)
            result, elapsed = _timed(lambda s=server: grpc_call(s, key))
            assert grpc_code(result) == grpc.StatusCode.DEADLINE_EXCEEDED, (hop, result)
            assert "--predictor_request_timeout_seconds" in result.details()
            assert elapsed < 10, (hop, elapsed)
    finally:
        os.kill(predictor.process.pid, signal.SIGCONT)
    for hop, server in transformers.items():
        assert eventually(lambda s=server: rest(s, key).status_code == 200), (
            f"{hop}: no recovery after SIGCONT"
        )

    predictor.process.kill()
    predictor.process.wait()
    for hop, server in transformers.items():
        answer, elapsed = _timed(lambda s=server: rest(s, key))
        assert answer.status_code == 503, (hop, answer.text)
        assert "unreachable" in answer.json()["error"]
        assert elapsed < 10, (hop, elapsed)
        result, elapsed = _timed(lambda s=server: grpc_call(s, key))
        assert grpc_code(result) == grpc.StatusCode.UNAVAILABLE, (hop, result)
        assert "unreachable" in result.details()
        assert elapsed < 10, (hop, elapsed)
        assert server.process.poll() is None
