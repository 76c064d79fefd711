"""The quality job's gauges as a real Pushgateway serves them to Prometheus: they must carry the namespace the
alerts and the dashboard select on (namespace="lead-scoring"), not the Pushgateway's own."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from quality.gauges import publish
from tests.support.pushgateway import running_pushgateway

ROWS = [
    {"model_name": "lead-scoring", "model_version": "v1", "tier": "all", "auc": 0.8, "labelled_leads": 1000},
    {"model_name": "lead-scoring", "model_version": "v1", "tier": "A", "lift": 4.0, "labelled_leads": 300},
]


def served(url: str) -> dict[str, list[dict]]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()  # noqa: S310 - loopback
    samples: dict[str, list[dict]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


def test_pushed_gauges_carry_the_namespace_of_the_job():
    with running_pushgateway() as url:
        publish(ROWS, 1_800_000_000.0, textfile=None, pushgateway=url, namespace="lead-scoring")
        samples = served(url)
    (auc,) = samples["lead_scoring_quality_auc"]
    assert auc["namespace"] == "lead-scoring" and auc["model_version"] == "v1"
    (stamp,) = samples["lead_scoring_quality_last_success_timestamp_seconds"]
    assert stamp["namespace"] == "lead-scoring" and stamp["job"] == "lead-scoring-quality"


def test_the_cli_takes_the_namespace_from_the_pod(monkeypatch):
    """The CronJob sets POD_NAMESPACE from the downward API; the job's --namespace defaults to it."""
    from quality.report import build_parser

    monkeypatch.setenv("POD_NAMESPACE", "lead-scoring-dev")
    assert build_parser().parse_args(["--lake", "file:///x"]).namespace == "lead-scoring-dev"
    monkeypatch.delenv("POD_NAMESPACE")
    assert build_parser().parse_args(["--lake", "file:///x"]).namespace is None
