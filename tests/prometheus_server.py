"""A real Prometheus on loopback for tests: scrape one target every second, with the PrometheusRule's groups loaded."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import yaml

from hack.stack import free_port
from tests.deploy.promql_inventory import plain_rules_file

PROMETHEUS = "/usr/bin/prometheus"
NAMESPACE = "lead-scoring"


def promql(prometheus_url: str, expr: str) -> list[dict]:
    response = httpx.get(prometheus_url + "/api/v1/query", params={"query": expr}, timeout=10)
    # Before its TSDB is open Prometheus answers 503 with a plain-text body, not JSON.
    assert response.status_code == 200, f"{expr}\n→ {response.status_code} {response.text[:200]}"
    body = response.json()
    assert body["status"] == "success", f"{expr}\n→ {body}"
    assert body["data"]["resultType"] == "vector", expr
    return body["data"]["result"]


def scalar(prometheus_url: str, expr: str) -> float | None:
    result = promql(prometheus_url, expr)
    return float(result[0]["value"][1]) if result else None


def wait_until(condition, what: str, timeout: float = 40.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode} while waiting for {what}")
        try:
            if condition():
                return
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"gave up waiting for {what}")


# What manifests/monitoring/podmonitor.yaml gives every transformer target.
TARGET_LABELS = {"namespace": NAMESPACE, "inferenceservice": "lead-scoring", "component": "transformer"}


def start_prometheus(target: str, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    rules = plain_rules_file(work / "rules.yaml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        # The PodMonitor's scrape adds `namespace`, and its relabelings `inferenceservice` and `component`; so does
        # this one, so the rules' `by (namespace)`, the dashboard's {namespace="lead-scoring"} and the alerts'
        # absent(...{namespace=...}) and up{component="transformer"} are exercised as deployed.
        "scrape_configs": [
            {
                "job_name": "lead-scoring-transformer",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target], "labels": TARGET_LABELS}],
            }
        ],
    }
    config_file = work / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",  # noqa: S603 - fixed binary
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={work / 'data'}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        # /-/ready turns 200 once the TSDB is open; queries before that get 503 "Service Unavailable".
        wait_until(
            lambda: httpx.get(url + "/-/ready", timeout=2).status_code == 200, "prometheus ready", 60, process
        )
    except BaseException:
        stop(process)
        raise
    return process, url


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
