"""API-key faults (issue 19) against a real transformer process on loopback, with real concurrent requests:
two keys of one name cannot reset each other's rate limit, and a rotation that writes no keys does not lock every
client out."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hack.stack import start_transformer
from predictor.synthetic import as_records, sample_features
from tests.sink_servers import wait_for

V1 = "/v1/models/lead-scoring:predict"
BODY = {"instances": as_records(sample_features(1, seed=11))}
K1, K2 = (f"crm-{secrets.token_hex(8)}" for _ in range(2))


def write_keys(path: Path, document: dict) -> None:
    """Atomically, as a Secret volume update does."""
    staging = path.with_suffix(".staging")
    staging.write_text(yaml.safe_dump(document))
    os.replace(staging, path)


def rejected_reloads(server) -> float:
    """Reloads are checked when a request comes in: send one, then read the counter."""
    httpx.post(server.url + V1, json=BODY, headers={"x-api-key": K1}, timeout=10)
    for family in text_string_to_metric_families(httpx.get(server.url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "lead_scoring_api_keys_file_rejected_total":
                return sample.value
    return 0.0


def burst(server, keys: list[str]) -> tuple[list[int], float]:
    """One request per key, all at once; the statuses and the seconds the burst took."""

    async def run():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*(client.post(V1, json=BODY, headers={"x-api-key": k}) for k in keys))

    started = time.monotonic()
    answers = asyncio.run(run())
    return [a.status_code for a in answers], time.monotonic() - started


@pytest.fixture
def keys_file(tmp_path) -> Path:
    path = tmp_path / "api-keys.yaml"
    write_keys(path, {"keys": [{"name": "crm", "key": K1, "rate_per_second": 1, "burst": 1}]})
    return path


@pytest.fixture
def transformer(small_artifact, keys_file, tmp_path):
    server = start_transformer(
        small_artifact,
        tmp_path / "logs",
        extra_args=["--api_keys_file", str(keys_file), "--api_keys_reload_seconds", "0.2"],
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_alternating_two_keys_of_one_name_cannot_reset_its_rate_limit(transformer, keys_file):
    # A rotation that also changes the limit: same name, different rate. Refused (one name, one bucket).
    write_keys(
        keys_file,
        {
            "keys": [
                {"name": "crm", "key": K1, "rate_per_second": 1, "burst": 1},
                {"name": "crm", "key": K2, "rate_per_second": 2, "burst": 1},
            ]
        },
    )
    wait_for(lambda: rejected_reloads(transformer) >= 1, timeout=20, interval=0.3)
    time.sleep(1.1)  # the bucket refills (1 token)
    log = transformer.log_path.read_text(errors="replace")
    assert "keys file invalid" in log and "different rate_per_second/burst" in log
    assert K1 not in log and K2 not in log

    statuses, seconds = burst(transformer, [K1, K2] * 50)
    allowed = statuses.count(200)
    # Burst 1 plus 1 token a second, whatever the order of keys (before the fix: 100 of 100).
    assert 1 <= allowed <= 2 + int(seconds), (allowed, seconds)
    assert set(statuses) <= {200, 429, 401}


def test_keys_of_one_name_with_one_limit_share_one_bucket(transformer, keys_file):
    write_keys(
        keys_file,
        {
            "keys": [
                {"name": "crm", "key": K1, "rate_per_second": 1, "burst": 1},
                {"name": "crm", "key": K2, "rate_per_second": 1, "burst": 1},
            ]
        },
    )
    wait_for(
        lambda: (
            httpx.post(transformer.url + V1, json=BODY, headers={"x-api-key": K2}, timeout=10).status_code
            != 401
        ),
        timeout=20,
        interval=0.3,
    )
    time.sleep(1.1)  # the bucket refills (1 token)
    statuses, seconds = burst(transformer, [K1, K2] * 20)
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= 2 + int(seconds), (statuses.count(200), seconds)


def test_an_empty_key_list_on_reload_keeps_the_previous_keys(transformer, keys_file):
    assert burst(transformer, [K1])[0] == [200]
    write_keys(keys_file, {"keys": []})  # a rotation script that wrote nothing
    wait_for(lambda: rejected_reloads(transformer) >= 1, timeout=20, interval=0.3)
    time.sleep(1.1)
    assert burst(transformer, [K1])[0] == [200]  # before the fix: 401 for everyone
    assert "revoke_all" in transformer.log_path.read_text(errors="replace")

    write_keys(keys_file, {"keys": [], "revoke_all": True})  # revoking every key, on purpose
    wait_for(lambda: burst(transformer, [K1])[0] == [401], timeout=20, interval=0.3)


def test_a_transformer_refuses_to_start_with_conflicting_limits(small_artifact, tmp_path):
    path = tmp_path / "api-keys.yaml"
    write_keys(
        path,
        {
            "keys": [
                {"name": "crm", "key": K1, "rate_per_second": 1},
                {"name": "crm", "key": K2, "rate_per_second": 5},
            ]
        },
    )
    server = start_transformer(small_artifact, tmp_path / "logs", extra_args=["--api_keys_file", str(path)])
    assert server.process.wait(60) != 0
    log = server.log_path.read_text(errors="replace")
    assert "keys named 'crm' have different rate_per_second/burst" in log and K1 not in log


def test_every_kind_of_bad_request_is_charged_to_the_key(small_artifact, tmp_path):
    """Refusals judged in front of the Scorer (a malformed binary-extension body, a version this replica does not
    serve, gRPC raw contents that do not match the inputs) were never charged: a key could send them without limit,
    each body parsed in full. Now each costs a token like the Scorer's own refusals, and the bucket runs dry."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    keys = {kind: f"{kind}-{secrets.token_hex(8)}" for kind in ("binary", "pinned", "grpc")}
    path = tmp_path / "keys.yaml"
    limits = {"rate_per_second": 0.01, "burst": 3}  # three requests, then none for 100 s
    write_keys(path, {"keys": [{"name": kind, "key": key, **limits} for kind, key in keys.items()]})
    server = start_transformer(small_artifact, tmp_path / "logs", extra_args=["--api_keys_file", str(path)])
    raw_mismatch = pb.ModelInferRequest(model_name="lead-scoring")
    raw_mismatch.inputs.add(name="leads", datatype="FP32", shape=[1, 50])
    raw_mismatch.inputs.add(name="lead_id", datatype="BYTES", shape=[1])
    raw_mismatch.raw_input_contents.append(b"\0" * 200)

    def binary() -> int:
        headers = {"x-api-key": keys["binary"], "inference-header-content-length": "5"}
        url = server.url + "/v2/models/lead-scoring/infer"
        return httpx.post(url, content=b"abcdefgh", headers=headers, timeout=10).status_code

    def pinned() -> int:
        url = server.url + "/v2/models/lead-scoring/versions/not-served/infer"
        return httpx.post(
            url, json={"inputs": []}, headers={"x-api-key": keys["pinned"]}, timeout=10
        ).status_code

    def grpc_mismatch() -> str:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = GRPCInferenceServiceStub(channel)
            try:
                stub.ModelInfer(raw_mismatch, metadata=[("x-api-key", keys["grpc"])], timeout=10)
            except grpc.RpcError as error:
                return error.code().name
        return "OK"

    try:
        server.wait_ready()
        for kind, call, refused, limited in (
            ("binary", binary, 400, 429),
            ("pinned", pinned, 404, 429),
            ("grpc", grpc_mismatch, "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"),
        ):
            answers = [call() for _ in range(6)]
            assert answers == [refused] * 3 + [limited] * 3, (kind, answers)
    finally:
        server.stop()
