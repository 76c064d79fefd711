"""The operator-facing monitoring: PrometheusRule, its promtool unit tests, the Grafana dashboard, the PodMonitor
and the runbooks in docs/operations.md. Everything runs through the real promtool (and kubectl kustomize)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql_inventory import (
    MONITORING_DIR,
    REPO_ROOT,
    alert_rules,
    all_queries,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    plain_rules_file,
    recording_rules,
)
from tests.deploy.rendering import parse_transformer_args, transformer_container
from tests.support.scrape import free_port

PROMTOOL_TESTS_DIR = Path(__file__).parent / "promtool"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/acme/lead-scoring/blob/main/docs/operations.md#"

# The metrics the contract promises on the transformer's /metrics.
CONTRACT_COUNTERS_AND_GAUGES = {
    "lead_scoring_requests_total",
    "lead_scoring_leads_scored_total",
    "lead_scoring_validation_failures_total",
    "lead_scoring_model_info",
    "lead_scoring_model_expected_tier_share",
    "lead_scoring_predictor_ready",
    "lead_scoring_sink_queue_depth",
    "lead_scoring_sink_records_written_total",
    "lead_scoring_sink_bytes_written_total",
    "lead_scoring_sink_upload_failures_total",
    "lead_scoring_sink_spool_bytes",
    "lead_scoring_sink_oldest_unstored_age_seconds",
    "lead_scoring_sink_dropped_records_total",
    "lead_scoring_sink_quarantined_files_total",
    "lead_scoring_feature_psi",
    "lead_scoring_score_psi",
}
# Pushed by the quality job (quality/gauges.py) once a run, not exported by the transformer; documented in
# docs/model-quality.md.
QUALITY_JOB_GAUGES = {
    "lead_scoring_quality_auc",
    "lead_scoring_quality_reference_auc",
    "lead_scoring_quality_calibration_error",
    "lead_scoring_quality_labelled_leads",
    "lead_scoring_quality_tier_lift",
    "lead_scoring_quality_tier_labelled_leads",
    "lead_scoring_quality_last_success_timestamp_seconds",
}
# The outcomes route's own sink (--outcomes_uri, transformer/sink/outcomes.py): exported only when the route is on.
OUTCOMES_SINK_SERIES = {
    "lead_scoring_outcomes_sink_oldest_unstored_age_seconds",
    "lead_scoring_outcomes_sink_dropped_records_total",
    "lead_scoring_outcomes_sink_quarantined_files_total",
}
# The API keys file's reloads (transformer/auth.py): alerted on, not on the dashboard.
KEYS_SERIES = {"lead_scoring_api_keys_file_rejected_total"}
# Prometheus's own series for every scrape target.
PROMETHEUS_SERIES = {"up"}
CONTRACT_HISTOGRAMS = {
    "lead_scoring_score",
    "lead_scoring_predictor_hop_seconds",
    "lead_scoring_request_duration_seconds",
    "request_preprocess_seconds",
    "request_predict_seconds",
    "request_postprocess_seconds",
}
CONTRACT_METRICS = CONTRACT_COUNTERS_AND_GAUGES | CONTRACT_HISTOGRAMS
SCRAPABLE_SERIES = (
    CONTRACT_COUNTERS_AND_GAUGES
    | QUALITY_JOB_GAUGES
    | OUTCOMES_SINK_SERIES
    | KEYS_SERIES
    | PROMETHEUS_SERIES
    | {
        f"{histogram}{suffix}"
        for histogram in CONTRACT_HISTOGRAMS
        for suffix in ("_bucket", "_count", "_sum")
    }
)
# Series names in PromQL: a metric name not followed by "(" (that would be a function) and not a label name.
METRIC_NAME = re.compile(r"(?<![\w:])((?:lead_scoring|request)[a-zA-Z0-9_:]*)(?![\w:(])(?!\s*[=!~])")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `bash hack/install-tools.sh` (or `make tools`)")
    return path


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for headings: lower-case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", markdown, flags=re.MULTILINE):
        text = re.sub(r"[`*_]", "", heading).strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def promtool_test_cases() -> list[dict]:
    cases = []
    for path in sorted(PROMTOOL_TESTS_DIR.glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


# --- the PrometheusRule -------------------------------------------------------------------------------------------


def test_prometheus_rule_is_a_namespaced_labelled_custom_resource():
    manifest = yaml.safe_load((MONITORING_DIR / "prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["namespace"] == "lead-scoring"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "lead-scoring"


def test_rule_groups_pass_promtool_check_rules(promtool, tmp_path):
    rules = plain_rules_file(tmp_path / "rules.yaml")
    result = run(promtool, "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules()) + len(recording_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool, tmp_path):
    # The unit tests name `rules.yaml` next to themselves: assemble both in one folder.
    plain_rules_file(tmp_path / "rules.yaml")
    test_files = []
    for source in sorted(PROMTOOL_TESTS_DIR.glob("*.yaml")):
        shutil.copy(source, tmp_path / source.name)
        test_files.append(source.name)
    assert test_files, f"no promtool unit tests in {PROMTOOL_TESTS_DIR}"
    result = run(promtool, "test", "rules", *test_files, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_proven_to_fire_and_to_stay_silent():
    cases = promtool_test_cases()
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    alert_names = {rule["alert"] for rule in alert_rules()}
    assert alert_names - fired == set(), "alerts never shown to fire"
    assert alert_names - silent == set(), "alerts never shown to stay silent"
    assert (fired | silent) - alert_names == set(), "unit tests for alerts that do not exist"


EXPECTED_ALERTS = {
    "LeadScoringErrorRatioHigh",
    "LeadScoringLatencyP95High",
    "LeadScoringPredictorUnavailable",
    "LeadScoringPredictorDown",
    "LeadScoringTransformerDown",
    "LeadScoringDataLakeBacklog",
    "LeadScoringOutcomesBacklog",
    "LeadScoringOutcomesDropped",
    "LeadScoringRecordsDropped",
    "LeadScoringSinkFileQuarantined",
    "LeadScoringOutcomesFileQuarantined",
    "LeadScoringApiKeysFileRejected",
    "LeadScoringTierMixDrift",
    "LeadScoringFeatureDrift",
    "LeadScoringScoreDrift",
    "LeadScoringNoTraffic",
    "LeadScoringTierALiftLow",
    "LeadScoringRealisedAUCLow",
    "LeadScoringCalibrationErrorHigh",
    "LeadScoringQualityJobStale",
}


def test_the_agreed_alerts_exist():
    assert {rule["alert"] for rule in alert_rules()} == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_text_and_a_runbook_section(rule):
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()
    runbook = rule["annotations"]["runbook_url"]
    assert runbook == RUNBOOK_BASE + rule["alert"].lower()
    assert rule["alert"].lower() in github_anchors(OPERATIONS_DOC.read_text()), (
        f"docs/operations.md has no section for {rule['alert']}"
    )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_waits_before_firing(rule):
    # A `for` of at least a minute: one bad scrape or evaluation never pages anyone.
    assert re.fullmatch(r"\d+[mh]", rule.get("for", "")), f"{rule['alert']} fires on a single evaluation"


def test_recorded_series_follow_the_level_metric_operation_convention():
    for rule in recording_rules():
        assert re.fullmatch(r"lead_scoring:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


# --- every PromQL expression -------------------------------------------------------------------------------------


def test_every_dashboard_and_rule_expression_parses(promtool, tmp_path):
    queries = all_queries()
    synthetic = {
        "groups": [
            {
                "name": "syntax-only",
                "rules": [
                    {"record": f"query:{index}", "expr": expr} for index, expr in enumerate(queries.values())
                ],
            }
        ]
    }
    rules = tmp_path / "queries.yaml"
    rules.write_text(yaml.safe_dump(synthetic, sort_keys=False))
    result = run(promtool, "check", "rules", str(rules))
    assert result.returncode == 0, (
        result.stdout
        + result.stderr
        + "\n"
        + "\n".join(f"{index}: {name}" for index, name in enumerate(queries))
    )


def test_promtool_check_rules_rejects_broken_promql(promtool, tmp_path):
    # Guards the test above: promtool must really parse the expressions, not just the YAML around them.
    rules = tmp_path / "broken.yaml"
    broken = 'sum by (outcome) (rate(lead_scoring_requests_total{namespace="lead-scoring"}[1m])'
    rules.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "query:0", "expr": broken}]}]})
    )
    assert run(promtool, "check", "rules", str(rules)).returncode != 0


def test_grafana_variables_are_all_substituted():
    for name, expr in all_queries().items():
        assert "$" not in expr and "[[" not in expr, f"{name}: {expr}"


def test_queries_read_only_contract_metrics_and_recorded_series():
    recorded = {rule["record"] for rule in recording_rules()}
    for name, expr in all_queries().items():
        for metric in METRIC_NAME.findall(expr):
            assert metric in SCRAPABLE_SERIES | recorded, f"{name} reads unknown series {metric}"


def test_dashboard_shows_every_contract_metric():
    text = "\n".join(dashboard_queries().values())
    shown = {metric for metric in METRIC_NAME.findall(text)}
    shown_base = {re.sub(r"_(bucket|count|sum)$", "", metric) for metric in shown}
    assert CONTRACT_METRICS - shown - shown_base == set()


# --- the Grafana dashboard ---------------------------------------------------------------------------------------


def test_dashboard_config_map_is_picked_up_by_the_grafana_sidecar():
    config_map = yaml.safe_load((MONITORING_DIR / "grafana-dashboard.yaml").read_text())
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard()["uid"] == "lead-scoring"


def test_every_dashboard_query_uses_the_datasource_variable():
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'namespace="$namespace"' in target["expr"], (
                f"{panel['title']} ignores the namespace picker"
            )


def test_dashboard_panel_ids_are_unique():
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))


# --- PodMonitor and the folder as a whole -------------------------------------------------------------------------


def test_pod_monitor_selects_the_transformer_pods_metrics_endpoint():
    monitor = yaml.safe_load((MONITORING_DIR / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "lead-scoring",
        "component": "transformer",
    }
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["lead-scoring"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"


def discovered_container(pod_ip: str, container: str, port: int | None) -> dict:
    """One target as Kubernetes pod discovery reports it (one per declared container port)."""
    labels = {
        "__meta_kubernetes_namespace": "lead-scoring",
        "__meta_kubernetes_pod_ip": pod_ip,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice": "lead-scoring",
        "__meta_kubernetes_pod_label_component": "transformer",
    }
    if port is not None:
        labels["__meta_kubernetes_pod_container_port_number"] = str(port)
    return {"targets": [f"{pod_ip}:{port}" if port else pod_ip], "labels": labels}


def transformer_metrics_port() -> int:
    """--metrics_port as the transformer's own parser reads it from manifests/inferenceservice.yaml."""
    isvc = yaml.safe_load((REPO_ROOT / "manifests" / "inferenceservice.yaml").read_text())
    args = parse_transformer_args(transformer_container(isvc))
    assert args.metrics_port is not None, "the transformer serves /metrics on the public API port"
    return args.metrics_port


def test_pod_monitor_relabelings_scrape_each_transformer_pod_once_on_its_metrics_port(tmp_path):
    """Runs the PodMonitor's relabelings in a real Prometheus over the targets Kubernetes discovery would give
    a Serverless pod (queue-proxy next to kserve-container) and a RawDeployment pod without declared ports.
    The metrics port is undeclared, so discovery never reports it: the relabelings must point a kept target at it."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: run `bash hack/install-tools.sh` (or `make tools`)")
    monitor = yaml.safe_load((MONITORING_DIR / "podmonitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]

    def snake_case(key: str) -> str:
        return re.sub(r"([A-Z])", lambda match: "_" + match.group(1).lower(), key)

    relabel_configs = [
        {snake_case(key): value for key, value in step.items()} for step in endpoint["relabelings"]
    ]
    # Kubernetes discovery is not compiled into Debian's Prometheus: file discovery carries the same labels.
    discovered = [
        discovered_container("10.0.0.1", "kserve-container", 8080),
        discovered_container("10.0.0.1", "queue-proxy", 8012),
        discovered_container("10.0.0.1", "queue-proxy", 9091),
        discovered_container("10.0.0.2", "kserve-container", 8081),
        discovered_container("10.0.0.3", "kserve-container", None),
        discovered_container("10.0.0.3", "storage-initializer", None),
    ]
    (tmp_path / "pods.json").write_text(json.dumps(discovered))
    config = {
        "global": {"scrape_interval": "1h"},
        "scrape_configs": [
            {
                "job_name": "lead-scoring/lead-scoring-transformer",
                "metrics_path": endpoint["path"],
                "file_sd_configs": [{"files": [str(tmp_path / "pods.json")]}],
                "relabel_configs": relabel_configs,
            }
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config_file}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets = wait_for_targets(f"http://127.0.0.1:{port}/api/v1/targets", expected_total=len(discovered))
    finally:
        server.terminate()
        server.wait(timeout=30)
    scraped = sorted(
        (target["scrapeUrl"], target["labels"]["component"]) for target in targets["activeTargets"]
    )
    metrics_port = transformer_metrics_port()
    assert scraped == [
        (f"http://10.0.0.1:{metrics_port}/metrics", "transformer"),
        (f"http://10.0.0.3:{metrics_port}/metrics", "transformer"),
    ]


def wait_for_targets(url: str, expected_total: int) -> dict:
    """Polls until Prometheus has read the discovery file (it does so asynchronously after start)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                targets = json.load(response)["data"]
            if len(targets["activeTargets"]) + len(targets["droppedTargets"]) == expected_total:
                return targets
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prometheus at {url} did not discover {expected_total} targets")
        time.sleep(0.1)


def test_monitoring_folder_builds_with_kustomize():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = run(kubectl, "kustomize", str(MONITORING_DIR))
    assert result.returncode == 0, result.stderr
    documents = [document for document in yaml.safe_load_all(result.stdout) if document]
    assert sorted(document["kind"] for document in documents) == ["ConfigMap", "PodMonitor", "PrometheusRule"]
    assert {document["metadata"]["namespace"] for document in documents} == {"lead-scoring"}


# --- docs/operations.md ------------------------------------------------------------------------------------------


def test_operations_doc_lists_every_contract_metric():
    reference = OPERATIONS_DOC.read_text().split("## Metrics reference", 1)[1]
    listed = set(re.findall(r"^\|\s*`([a-z_]+)`", reference, flags=re.MULTILINE))
    assert CONTRACT_METRICS - listed == set()


def test_every_series_a_rule_or_panel_reads_is_one_the_code_exports():
    """The inventory above is a list typed by hand: check it against what the transformer's modules really
    register, so a rule cannot page on a name no process exports (the quality job's gauges are checked in its
    own tests; `up` is Prometheus's)."""
    import importlib

    from prometheus_client import REGISTRY
    from prometheus_client.exposition import generate_latest

    for module in (
        "transformer.metrics",
        "transformer.auth",
        "transformer.sink.sink_metrics",
        "transformer.sink.outcomes",
        "transformer.extras.drift",
        "kserve.metrics",
    ):
        importlib.import_module(module)
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(REGISTRY).decode().splitlines()
        if line and not line.startswith("#")
    }
    declared = {
        line.split(" ")[2]
        for line in generate_latest(REGISTRY).decode().splitlines()
        if line.startswith("# TYPE ")
    } | set(
        REGISTRY._names_to_collectors
    )  # a collector with no sample yet (the score PSI before it is measured)
    recorded = {rule["record"] for rule in recording_rules()}
    read = {metric for expr in all_queries().values() for metric in METRIC_NAME.findall(expr)}
    unknown = read - recorded - QUALITY_JOB_GAUGES - PROMETHEUS_SERIES - exported - declared
    # A labelled family with no child yet exports no sample: its TYPE line names the family, so accept
    # <family>_total / _bucket / _count / _sum of a declared family.
    unknown = {m for m in unknown if re.sub(r"_(total|bucket|count|sum)$", "", m) not in declared}
    assert unknown == set(), f"rules or panels read series no module exports: {sorted(unknown)}"
