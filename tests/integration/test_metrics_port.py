"""`--metrics_port` on a real transformer process: Prometheus metrics on their own port, none on the API port.

On Knative only the API port is reachable through the public ingress, so this is what keeps /metrics (whose
labels name API keys) in the cluster. Unset, /metrics stays on the API port for `make serve` and local scrapes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hack.stack import ROOT, free_port, start_transformer
from predictor.synthetic import as_records, sample_features
from tests.prometheus_server import PROMETHEUS, scalar, start_prometheus, stop, wait_until

V1 = "/v1/models/lead-scoring:predict"
KEY_NAME = "metrics-port"


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def score(server, api_key: str, n: int, seed: int) -> None:
    leads = as_records(sample_features(n, seed=seed), [f"mp-{seed}-{i}" for i in range(n)])
    answer = httpx.post(
        server.url + V1, json={"instances": leads}, headers={"x-api-key": api_key}, timeout=10
    )
    assert answer.status_code == 200, answer.text


def listening_on_all_interfaces(port: int) -> bool:
    """Whether a LISTEN socket on 0.0.0.0:port exists (/proc/net/tcp: local address hex, state 0A = LISTEN)."""
    wanted = f"00000000:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":
            return True
    return False


@pytest.fixture(scope="module")
def separate(small_artifact, api_key, tmp_path_factory):
    """A transformer with --metrics_port, and the port it was given."""
    metrics_port = free_port()
    server = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp("metrics-port"),
        api_keys=f"{KEY_NAME}:{api_key}",
        extra_args=["--metrics_port", str(metrics_port)],
    )
    try:
        server.wait_ready()
        yield server, metrics_port
    finally:
        server.stop()


def test_metrics_port_serves_the_process_registry_with_the_traffic(separate, api_key):
    server, metrics_port = separate
    score(server, api_key, 3, seed=901)
    answer = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert answer.status_code == 200
    found = samples(answer.text)
    ok = ("lead_scoring_requests_total", (("form", "v1_instances"), ("outcome", "ok"), ("protocol", "rest")))
    assert found[ok] == 1
    assert sum(v for (name, _), v in found.items() if name == "lead_scoring_leads_scored_total") == 3
    # KServe's own stage histograms live in the same default registry: one scrape sees both.
    assert {"request_preprocess_seconds", "lead_scoring_request_duration_seconds"} <= family_names(
        answer.text
    )


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus not installed (make tools)")
def test_a_real_prometheus_scrapes_the_metrics_port(separate, api_key, tmp_path):
    server, metrics_port = separate
    prometheus, url = start_prometheus(f"127.0.0.1:{metrics_port}", tmp_path)
    leads = 'sum(lead_scoring_leads_scored_total{namespace="lead-scoring"})'
    try:
        wait_until(
            lambda: scalar(url, 'up{job="lead-scoring-transformer"}') == 1, "first scrape", process=prometheus
        )
        before = scalar(url, leads)
        score(server, api_key, 4, seed=903)
        wait_until(lambda: scalar(url, leads) == before + 4, "the 4 new leads scraped", process=prometheus)
    finally:
        stop(prometheus)


@pytest.mark.parametrize("path", ["/metrics", "/metrics/"])
def test_api_port_answers_404_json_for_metrics(separate, path):
    server, _ = separate
    answer = httpx.get(server.url + path, timeout=10)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert set(answer.json()) == {"error"}
    assert "metrics are not served on this port" in answer.json()["error"]
    assert "lead_scoring_" not in answer.text


def test_metrics_port_listens_on_every_interface(separate):
    # Prometheus scrapes the pod IP; a loopback-only listener would look healthy here and be unreachable there.
    _, metrics_port = separate
    assert listening_on_all_interfaces(metrics_port)


def test_unset_metrics_stay_on_the_api_port(small_artifact, api_key, tmp_path):
    assert "METRICS_PORT" not in os.environ, "the test needs the default (unset) metrics port"
    server = start_transformer(small_artifact, tmp_path / "logs", api_keys=f"{KEY_NAME}:{api_key}")
    try:
        server.wait_ready()
        score(server, api_key, 2, seed=902)
        answer = httpx.get(server.url + "/metrics", timeout=10)
    finally:
        server.stop()
    assert answer.status_code == 200
    ok = ("lead_scoring_requests_total", (("form", "v1_instances"), ("outcome", "ok"), ("protocol", "rest")))
    assert samples(answer.text)[ok] == 1


def run_transformer(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """A transformer that must refuse to start: every other setting is valid, so the refusal is the port's."""
    env = {**os.environ, "API_KEYS": f"{KEY_NAME}:test-key-not-used"}
    return subprocess.run(
        [sys.executable, "-m", "transformer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--http_port", "--grpc_port"])
def test_metrics_port_equal_to_a_server_port_is_refused(small_artifact, flag):
    port = free_port()
    ports = {"--http_port": str(free_port()), "--grpc_port": str(free_port()), flag: str(port)}
    result = run_transformer(
        "--model_card_uri",
        str(small_artifact),
        *[x for kv in ports.items() for x in kv],
        "--metrics_port",
        str(port),
    )
    assert result.returncode != 0
    assert f"--metrics_port {port} is also {flag}" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_port_in_use_is_refused_with_the_reason(small_artifact):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_transformer(
            "--model_card_uri",
            str(small_artifact),
            "--http_port",
            str(free_port()),
            "--grpc_port",
            str(free_port()),
            "--metrics_port",
            str(port),
        )
    assert result.returncode != 0
    assert f"--metrics_port {port}: cannot listen" in result.stderr
    assert "Traceback" not in result.stderr
