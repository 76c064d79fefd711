"""`python -m transformer --legacy_mode live|shadow` as real processes in front of a legacy endpoint on loopback
(tests/legacy_servers.py): what clients and operators see when the legacy endpoint misbehaves.

The endpoint's misbehaviour is a state the test sets (a trickling answer, scores out of range), never a duration it
measures; the time bounds below are guards an order of magnitude past the deadlines, not performance claims.
"""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest
import xgboost as xgb

from hack.stack import start_transformer
from predictor.synthetic import as_records, sample_features
from tests.legacy_servers import LegacyBoosterServer
from tests.sink_servers import wait_for
from tests.support.scrape import metric

ENDPOINT = "lead-scoring-legacy"
AZURE_KEY = "azure-key-5e1b77"
V1 = "/v1/models/lead-scoring:predict"
LEADS = as_records(sample_features(3, seed=5))
AWS_ENV = {  # any credentials: the stand-in only checks that requests are signed; nothing reaches a real account
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
TIMEOUT = 1.0  # --legacy_timeout_seconds


@pytest.fixture(scope="module")
def legacy(small_artifact):
    booster = xgb.Booster(
        params={"nthread": 1}, model_file=bytearray((small_artifact / "model.ubj").read_bytes())
    )
    server = LegacyBoosterServer(booster, ENDPOINT, azure_key=AZURE_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def endpoint(legacy):
    """The module's legacy endpoint, back to answering normally after each test."""
    yield legacy
    legacy.trickle_every = None
    legacy.answer_body = None


def start(small_artifact, logs_dir, api_key, *flags: str, env: dict | None = None):
    server = start_transformer(
        small_artifact,
        logs_dir,
        api_keys=f"tests:{api_key}",
        extra_args=[
            "--legacy_timeout_seconds",
            str(TIMEOUT),
            "--drain_delay_seconds",
            "0",
            "--drain_seconds",
            "1",
            *flags,
        ],
        env={**AWS_ENV, **(env or {})},
    )
    server.wait_ready()
    return server


def sagemaker_flags(url: str) -> list[str]:
    return [
        "--legacy_backend",
        "sagemaker",
        "--sagemaker_endpoint_name",
        ENDPOINT,
        "--sagemaker_region",
        "us-east-1",
        "--sagemaker_endpoint_url",
        url,
    ]


@pytest.fixture(scope="module")
def live(small_artifact, logs_dir, api_key, legacy):
    server = start(small_artifact, logs_dir, api_key, "--legacy_mode", "live", *sagemaker_flags(legacy.url))
    yield server
    server.stop()


def score(server, api_key: str, body: dict | None = None, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(
        server.url + V1, json=body or {"instances": LEADS}, headers={"x-api-key": api_key}, timeout=timeout
    )


def test_live_mode_answers_from_the_legacy_endpoint_without_reason_codes(live, endpoint, api_key):
    assert score(live, api_key).status_code == 200
    received = endpoint.received
    # The card's booster would explain a score the legacy model did not give: refused before anything is scored.
    refused = score(live, api_key, {"instances": LEADS, "parameters": {"reasons": 3}})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "reason codes are not available on this deployment"
    assert endpoint.received == received
    # Nor does the model's metadata offer the reason outputs there.
    outputs = {
        o["name"] for o in httpx.get(live.url + "/v2/models/lead-scoring", timeout=10).json()["outputs"]
    }
    assert outputs == {"score", "bucket", "tier", "lead_id"}


def test_live_mode_refuses_legacy_scores_outside_0_1(live, endpoint, api_key):
    endpoint.answer_body = lambda scores: ",".join(str(s + 5) for s in scores.tolist()).encode()
    answer = score(live, api_key)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert (
        f"sagemaker:us-east-1/{ENDPOINT}" in error
        and "outside [0, 1]" in error
        and "binary:logitraw" in error
    )


def test_live_mode_answers_504_at_the_deadline_when_the_endpoint_trickles(live, endpoint, api_key):
    endpoint.trickle_every = 0.2
    started = time.monotonic()
    answer = score(live, api_key)
    assert answer.status_code == 504, answer.text
    assert f"did not answer within {TIMEOUT:g} s (--legacy_timeout_seconds)" in answer.json()["error"]
    assert time.monotonic() - started < 10 * TIMEOUT


def test_sigterm_exits_promptly_while_a_sagemaker_call_is_stuck_reading(
    small_artifact, logs_dir, api_key, endpoint
):
    """A boto3 call blocked on an answer that trickles forever must not keep the pod alive until its SIGKILL."""
    server = start(small_artifact, logs_dir, api_key, "--legacy_mode", "live", *sagemaker_flags(endpoint.url))
    try:
        endpoint.trickle_every = 0.2
        assert score(server, api_key).status_code == 504
        assert endpoint.trickling >= 1  # the call's thread is still reading the answer
        server.process.send_signal(signal.SIGTERM)
        # Drain delay 0 + drain 1 s + closing: an order of magnitude more is a hang, not slowness.
        assert server.process.wait(timeout=15) is not None
    except subprocess.TimeoutExpired:
        pytest.fail(f"the transformer did not exit within 15 s of SIGTERM:\n{server.log_tail()}")
    finally:
        server.stop(signal.SIGKILL)


def test_shadow_calls_stuck_on_a_trickling_endpoint_end_at_the_deadline(
    small_artifact, logs_dir, api_key, endpoint
):
    """Shadow slots held by a trickling endpoint free up at the deadline: later requests are shadowed again instead
    of being dropped as in_flight_full forever."""
    server = start(
        small_artifact,
        logs_dir,
        api_key,
        "--legacy_mode",
        "shadow",
        "--legacy_backend",
        "azureml",
        "--azureml_scoring_uri",
        f"{endpoint.url}/score",
        "--shadow_fraction",
        "1",
        "--shadow_max_in_flight",
        "2",
        env={"AZUREML_KEY": AZURE_KEY},
    )
    endpoint.trickle_every = 0.2

    def failures(reason: str) -> float:
        return metric(server.url, "lead_scoring_shadow_failures_total", reason=reason)

    try:
        for round_ in (1, 2):
            for _ in range(2):  # fills both slots
                assert score(server, api_key).status_code == 200  # the live answer never waits for the shadow
            wait_for(lambda r=round_: failures("timeout") == 2 * r, timeout=20 * TIMEOUT)
            wait_for(lambda: metric(server.url, "lead_scoring_shadow_in_flight") == 0, timeout=10)
        assert failures("in_flight_full") == 0
    finally:
        server.stop()
    assert AZURE_KEY not in server.log_path.read_text()
