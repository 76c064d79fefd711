"""Issue 5 against the real stack: a real Prometheus scrapes a real transformer (gRPC hop to the stand-in predictor,
file data lake), known traffic goes through, and every dashboard/alert query, the /metrics content, the JSON logs
and the one-worker rule are checked on what the processes actually emitted.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import grpc
import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from prometheus_client.parser import text_string_to_metric_families

from contract.features import FEATURE_INDEX, FEATURE_NAMES
from hack.stack import ROOT, Server, start_transformer
from predictor.synthetic import as_records, sample_features
from tests.conftest import runtime_scores
from tests.deploy.promql_inventory import all_queries
from tests.prometheus_server import PROMETHEUS, promql, scalar, start_prometheus, stop, wait_until
from tests.support.logs import json_log_lines

KEY_NAME = "crm-observability"
V1 = "/v1/models/lead-scoring:predict"
V2 = "/v2/models/lead-scoring/infer"
# Metric names a query reads: ours, the recording rules', KServe's stage histograms. Label values ("lead-scoring")
# have a dash and never match.
# `up`: Prometheus's own series of every target, which LeadScoringTransformerDown reads.
METRIC_NAME = re.compile(r"\b(lead_scoring[a-zA-Z0-9_:]*|request_[a-z]+_seconds[a-z_]*|up)\b")
THRESHOLD = re.compile(r"(>=|<=|==|!=|>|<)\s*(?=[0-9.])")

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus not installed (make tools)")


@dataclass
class Sent:
    """What the test sent, and what it must therefore find in metrics and logs."""

    requests: Counter = field(default_factory=Counter)  # (protocol, form, outcome) -> count
    tiers: Counter = field(default_factory=Counter)  # tier -> leads scored
    scores: list = field(default_factory=list)
    lead_ids: list = field(default_factory=list)
    responses: dict = field(default_factory=dict)  # name -> httpx.Response
    wrong_key: str = "wrong-" + secrets.token_hex(10)


@dataclass
class Observed:
    transformer: Server
    prometheus_url: str
    sent: Sent
    metrics_text: str
    api_key: str


# --- traffic -------------------------------------------------------------------------------------------------------


def lead_ids(prefix: str, n: int) -> list[str]:
    return [f"obs-{prefix}-{i:03d}" for i in range(n)]


def without_nan(x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Columns JSON can carry (no NaN), and the matrix the transformer will score (NaN where a column was left out)."""
    present = [n for n in FEATURE_NAMES if not np.isnan(x[:, FEATURE_INDEX[n]]).any()]
    matrix = np.full_like(x, np.nan)
    for n in present:
        matrix[:, FEATURE_INDEX[n]] = x[:, FEATURE_INDEX[n]]
    return present, matrix


def expect_ok(
    sent: Sent, protocol: str, form: str, matrix: np.ndarray, ids: list[str], booster, card
) -> None:
    scores = runtime_scores(booster, matrix)
    sent.requests[(protocol, form, "ok")] += 1
    sent.tiers.update(card.tier_map.tiers(card.tier_map.buckets(scores)).tolist())
    sent.scores.extend(scores.tolist())
    sent.lead_ids.extend(ids)


def grpc_infer(server: Server, inputs: list[InferInput], key: str):
    async def call():
        client = InferenceGRPCClient(server.grpc_target, retries=0)
        try:
            return await client.infer(InferRequest("lead-scoring", inputs), headers=[("x-api-key", key)])
        finally:
            await client.close()

    return asyncio.run(call())


def send_known_traffic(server: Server, api_key: str, booster, card) -> Sent:
    sent = Sent()
    post = lambda path, body, key, **h: httpx.post(  # noqa: E731
        server.url + path,
        json=body,
        headers={**h, **({"x-api-key": key} if key else {})},
        timeout=10,
    )

    # ok, REST, V1 instances (NaN = absent feature), with the caller's request id
    x, ids = sample_features(7, seed=501), lead_ids("v1", 7)
    sent.responses["v1"] = post(
        V1, {"instances": as_records(x, ids)}, api_key, **{"x-request-id": "obs-req-v1"}
    )
    expect_ok(sent, "rest", "v1_instances", x, ids, booster, card)

    # ok, REST, V2 columns, no request id (the transformer makes one)
    x, ids = sample_features(5, seed=502), lead_ids("col", 5)
    present, matrix = without_nan(x)
    inputs = [
        {"name": n, "datatype": "FP64", "shape": [5], "data": x[:, FEATURE_INDEX[n]].tolist()}
        for n in present
    ]
    inputs.append({"name": "lead_id", "datatype": "BYTES", "shape": [5], "data": ids})
    sent.responses["v2_columns"] = post(V2, {"inputs": inputs}, api_key)
    expect_ok(sent, "rest", "v2_columns", matrix, ids, booster, card)

    # ok, REST, V2 tensor
    x, ids = np.nan_to_num(sample_features(4, seed=503), nan=0.0), lead_ids("ten", 4)
    x[:, FEATURE_INDEX["employee_count"]] = 10  # 0 is below that feature's minimum; the rest accept 0
    body = {
        "inputs": [
            {"name": "leads", "datatype": "FP32", "shape": [4, 50], "data": x.ravel().tolist()},
            {"name": "lead_id", "datatype": "BYTES", "shape": [4], "data": ids},
        ]
    }
    sent.responses["v2_tensor"] = post(V2, body, api_key)
    expect_ok(sent, "rest", "v2_tensor", x, ids, booster, card)

    # ok, gRPC, V2 tensor (binary FP32 carries NaN)
    x, ids = sample_features(3, seed=504).astype(np.float32), lead_ids("grpc", 3)
    tensor = InferInput("leads", [3, 50], "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    id_input = InferInput("lead_id", [3], "BYTES")
    id_input.set_data_from_numpy(np.array([i.encode() for i in ids], dtype=object), binary_data=True)
    grpc_infer(server, [tensor, id_input], api_key)
    expect_ok(sent, "grpc", "v2_tensor", x, ids, booster, card)

    # invalid, REST, V1: two known problems
    x, ids = sample_features(4, seed=505), lead_ids("bad", 4)
    x[1, FEATURE_INDEX["employee_count"]] = 0
    x[2, FEATURE_INDEX["industry"]] = 42
    sent.responses["invalid"] = post(V1, {"instances": as_records(x, ids)}, api_key)
    sent.requests[("rest", "v1_instances", "invalid")] += 1

    # unauthorized: a wrong key (REST, gRPC) and no key (REST); refused before decoding, so the form is unknown
    sent.responses["wrong_key"] = post(V2, body, sent.wrong_key, **{"x-request-id": "obs-req-denied"})
    sent.responses["no_key"] = post(V1, {"instances": as_records(x, ids)}, None)
    sent.requests[("rest", "unknown", "unauthorized")] += 2
    with pytest.raises(grpc.RpcError) as denied:
        grpc_infer(server, [tensor, id_input], sent.wrong_key)
    assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
    sent.requests[("grpc", "unknown", "unauthorized")] += 1

    statuses = {name: response.status_code for name, response in sent.responses.items()}
    assert statuses == {
        "v1": 200,
        "v2_columns": 200,
        "v2_tensor": 200,
        "invalid": 400,
        "wrong_key": 401,
        "no_key": 401,
    }, {n: r.text[:200] for n, r in sent.responses.items()}
    return sent


def wired(metrics_text: str, name: str) -> bool:
    """The collector is registered in the transformer (it may still have no sample)."""
    return f"# HELP {name} " in metrics_text


def fill_drift_window(server: Server, api_key: str, sent: Sent, booster, card, timeout: float = 25.0) -> None:
    """Makes the drift monitor publish per-feature PSI, as it does in production once it has seen enough traffic.

    It publishes only when its window holds min_rows (500) rows and publish_every_seconds (10) have passed since
    the last publish, checked when a request is scored: send 600 leads, then one lead a second until the gauges show.
    """
    if not wired(httpx.get(server.url + "/metrics", timeout=10).text, "lead_scoring_feature_psi"):
        return
    deadline = time.monotonic() + timeout
    x, ids, seed = sample_features(600, seed=600), lead_ids("drift", 600), 601
    while True:
        response = httpx.post(
            server.url + V1,
            json={"instances": as_records(x, ids)},
            headers={"x-api-key": api_key},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        expect_ok(sent, "rest", "v1_instances", x, ids, booster, card)
        text = httpx.get(server.url + "/metrics", timeout=10).text
        if any(s.name == "lead_scoring_feature_psi" for s in samples(text)) or time.monotonic() > deadline:
            return  # if it never publishes, the drift queries' checks below fail and say so
        time.sleep(1.0)
        x, ids, seed = sample_features(1, seed=seed), lead_ids(f"drift{seed}", 1), seed + 1


@pytest.fixture(scope="module")
def observed(artifact, predictor, api_key, runtime_booster, card, tmp_path_factory):
    work = tmp_path_factory.mktemp("observability")
    lake, spool = work / "lake", work / "spool"
    transformer = start_transformer(
        artifact,
        work / "logs",
        api_keys=f"{KEY_NAME}:{api_key}",
        predictor=predictor.grpc_target,
        extra_args=[
            "--sink_uri",
            lake.as_uri(),
            "--sink_spool_dir",
            str(spool),
            "--sink_flush_seconds",
            "0.5",
            # The outcomes route's sink series, so its alerts' queries are evaluated here too.
            "--outcomes_uri",
            lake.as_uri(),
            "--outcomes_spool_dir",
            str(work / "outcomes-spool"),
        ],
    )
    prometheus = None
    try:
        # Prometheus starts while the transformer does (its first scrapes just fail): ~3 s saved on 2 cores.
        prometheus, url = start_prometheus(f"127.0.0.1:{transformer.http_port}", work)
        transformer.wait_ready()
        # One scrape of the primed zeros before any traffic, so rate()/increase() see the counters move.
        wait_until(
            lambda: scalar(url, 'up{job="lead-scoring-transformer"}') == 1, "first scrape", process=prometheus
        )
        sent = send_known_traffic(transformer, api_key, runtime_booster, card)
        fill_drift_window(transformer, api_key, sent, runtime_booster, card)
        total_requests = sum(sent.requests.values())
        ok_leads = sum(sent.tiers.values())

        def everything_scraped() -> bool:
            return (
                scalar(url, "sum(lead_scoring_requests_total)") == total_requests
                and scalar(url, "sum(lead_scoring_leads_scored_total)") == ok_leads
                and scalar(url, "sum(lead_scoring_sink_records_written_total)") == ok_leads
                # recording rules evaluated (every 1 s) on samples that include the traffic
                and (scalar(url, 'sum(lead_scoring:requests:rate5m{outcome="ok"})') or 0) > 0
                and scalar(url, "count(lead_scoring:leads_scored:share_deviation_rate1h)") == 5
            )

        wait_until(everything_scraped, "traffic scraped and recording rules evaluated", process=prometheus)
        metrics_text = httpx.get(transformer.url + "/metrics", timeout=10).text
        yield Observed(transformer, url, sent, metrics_text, api_key)
    finally:
        if prometheus is not None:
            stop(prometheus)
        transformer.stop()


# --- 1. every dashboard and alert query on the live Prometheus -----------------------------------------------------

# DEFAULT_VARIABLES: namespace="lead-scoring", which this Prometheus's scrape adds. Queries of the quality job's
# gauges are not the transformer's to export: tests/integration/test_quality_e2e.py runs them (the alert rules, with
# promtool) on the job's real output, healthy and degraded.
QUERIES = {name: expr for name, expr in all_queries().items() if "lead_scoring_quality_" not in expr}


def metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_evaluates_and_reads_existing_series(observed, name):
    expr = QUERIES[name]
    names = metric_names(expr)
    assert names, f"{name}: no metric name recognised in {expr!r}"

    result = promql(observed.prometheus_url, expr)  # no error
    exported = set(
        httpx.get(observed.prometheus_url + "/api/v1/label/__name__/values", timeout=10).json()["data"]
    )
    # A renamed metric (in the code or in the query) fails here even where the query would quietly return nothing.
    assert names <= exported, f"{name}: reads {sorted(names - exported)}, which Prometheus never received"

    if name.startswith("record:"):
        assert result, f"{name}: recording rule expression returns no series"
        assert name.removeprefix("record:") in exported, f"{name}: rule not loaded or never evaluated"
    elif name.startswith("alert:"):
        if "absent(" in expr:
            # LeadScoringNoTraffic: with ok traffic scraped under namespace="lead-scoring" it must be silent —
            # a label or metric mismatch would make absent() or `unless on (namespace)` fire it.
            assert result == [], f"{name} fires on a healthy stack with traffic: {result}"
        else:
            # Healthy → the condition is false and nothing comes back. With every threshold turned into
            # `> bool t` each comparison keeps its series, so the `and`/`on` matching of the parts is proven.
            whole = THRESHOLD.sub(lambda m: f"{m.group(1)} bool ", expr)
            assert promql(observed.prometheus_url, whole), f"{name}: the parts do not match up: {whole}"
    else:
        assert result, f"{name}: dashboard query returns no series on a stack with traffic"


# --- 2. /metrics content -------------------------------------------------------------------------------------------


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels) -> float:
    found = [
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def test_metrics_show_the_traffic_that_was_sent(observed, card):
    text, sent = observed.metrics_text, observed.sent
    requests = {
        (s.labels["protocol"], s.labels["form"], s.labels["outcome"]): s.value
        for s in samples(text)
        if s.name == "lead_scoring_requests_total"
    }
    assert {k: v for k, v in requests.items() if v} == dict(sent.requests)
    assert ("grpc", "v1_instances", "rate_limited") in requests  # primed at zero for rate() and absent()

    leads = {s.labels["tier"]: s.value for s in samples(text) if s.name == "lead_scoring_leads_scored_total"}
    assert set(leads) == {"A", "B", "C", "D", "E"}
    assert {t: v for t, v in leads.items() if v} == dict(sent.tiers)
    assert sum(leads.values()) == len(sent.lead_ids)

    failures = {
        (s.labels["field"], s.labels["rule"]): s.value
        for s in samples(text)
        if s.name == "lead_scoring_validation_failures_total"
    }
    assert failures == {("employee_count", "minimum"): 1, ("industry", "enumeration"): 1}

    ok_requests = sum(v for (_, _, outcome), v in sent.requests.items() if outcome == "ok")
    assert value(text, "lead_scoring_predictor_hop_seconds_count", mode="grpc") == ok_requests
    assert value(text, "lead_scoring_predictor_hop_seconds_bucket", mode="grpc", le="+Inf") == ok_requests
    # Only requests answered with scores are timed: the refusals above (400, 401) would pull the SLO's p95 down.
    for protocol in ("rest", "grpc"):
        assert value(text, "lead_scoring_request_duration_seconds_count", protocol=protocol) == sum(
            v for (p, _, outcome), v in sent.requests.items() if p == protocol and outcome == "ok"
        )
    assert value(text, "lead_scoring_score_count") == len(sent.scores)
    assert value(text, "lead_scoring_score_sum") == pytest.approx(sum(sent.scores), rel=1e-6)
    assert value(text, "lead_scoring_score_bucket", le="0.5") == sum(s <= 0.5 for s in sent.scores)

    assert value(text, "lead_scoring_model_info", model="lead-scoring", version=card.version) == 1
    shares = {
        s.labels["tier"]: s.value for s in samples(text) if s.name == "lead_scoring_model_expected_tier_share"
    }
    assert shares == pytest.approx(card.expected_tier_shares)
    assert value(text, "lead_scoring_sink_records_written_total") == len(sent.lead_ids)


def test_no_label_value_carries_a_lead_id_a_key_or_a_key_name(observed):
    secrets_and_ids = [
        observed.api_key,
        observed.sent.wrong_key,
        KEY_NAME,
        "obs-req",
        *observed.sent.lead_ids,
    ]
    assert len(secrets_and_ids) > 20
    for sample in samples(observed.metrics_text):
        for label, label_value in sample.labels.items():
            leaked = [s for s in secrets_and_ids if s in label_value]
            assert not leaked, f"{sample.name}{{{label}={label_value!r}}} carries {leaked}"


# --- 3. JSON logs --------------------------------------------------------------------------------------------------


def log_lines(server: Server) -> list[dict]:
    return json_log_lines(server.log_path)


REQUEST_FIELDS = {
    "ts",
    "level",
    "msg",
    "request_id",
    "lead_count",
    "first_lead_id",
    "latency_ms",
    "outcome",
    "tiers",
    "model_version",
}


def test_every_log_line_is_json_with_the_request_fields_and_no_key(observed, card):
    entries = log_lines(observed.transformer)
    sent = observed.sent
    scored = [e for e in entries if e.get("outcome") == "ok"]
    assert len(scored) == sum(v for (_, _, o), v in sent.requests.items() if o == "ok")
    for entry in scored:
        assert REQUEST_FIELDS <= entry.keys(), entry
        assert entry["model_version"] == card.version and entry["latency_ms"] > 0
        assert entry["first_lead_id"].startswith("obs-")
        assert sum(entry["tiers"].values()) == entry["lead_count"]
    assert sum(e["lead_count"] for e in scored) == len(sent.lead_ids)
    tiers_logged = Counter()
    for entry in scored:
        tiers_logged.update(entry["tiers"])
    assert tiers_logged == sent.tiers

    # request ids: the caller's is used and echoed; otherwise one is made, echoed and logged
    by_id = {e["request_id"]: e for e in entries if e.get("request_id")}
    assert sent.responses["v1"].headers["x-request-id"] == "obs-req-v1"
    assert by_id["obs-req-v1"]["lead_count"] == 7 and by_id["obs-req-v1"]["first_lead_id"] == "obs-v1-000"
    generated = sent.responses["v2_columns"].headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert by_id[generated]["first_lead_id"] == "obs-col-000" and by_id[generated]["outcome"] == "ok"
    assert sent.responses["wrong_key"].status_code == 401
    assert sent.responses["wrong_key"].headers["x-request-id"] == "obs-req-denied"
    assert by_id["obs-req-denied"]["outcome"] == "unauthorized"
    expected_outcomes = Counter()
    for (_, _, outcome), count in sent.requests.items():
        expected_outcomes[outcome] += count
    assert Counter(e["outcome"] for e in entries if e.get("outcome")) == expected_outcomes

    # One line per scoring request: the transformer's own, with the HTTP status; uvicorn's access log (same JSON
    # formatter) covers every other route.
    assert by_id["obs-req-v1"]["status"] == 200 and by_id["obs-req-denied"]["status"] == 401
    access = [e for e in entries if e.get("logger") == "uvicorn.access"]
    assert not any(unquote(e.get("path", "")) in (V1, V2) for e in access), access[:3]
    assert any(e.get("path") == "/metrics" and e.get("status") == 200 for e in access), access[:3]

    text = observed.transformer.log_path.read_text()
    assert observed.api_key not in text
    assert sent.wrong_key not in text


def test_log_level_warning_from_the_environment_drops_info_lines(artifact, api_key, tmp_path):
    # In-process booster and no data lake: lean, and the missing sink is a WARNING line that must still appear.
    server = start_transformer(
        artifact, tmp_path / "logs", api_keys=f"{KEY_NAME}:{api_key}", env={"LOG_LEVEL": "WARNING"}
    )
    try:
        server.wait_ready()
        x = sample_features(3, seed=506)
        ok = httpx.post(
            server.url + V1,
            json={"instances": as_records(x, lead_ids("quiet", 3))},
            headers={"x-api-key": api_key},
            timeout=10,
        )
        assert ok.status_code == 200, ok.text
        denied = httpx.post(
            server.url + V1,
            json={"instances": as_records(x, lead_ids("quiet", 3))},
            headers={"x-api-key": "wrong-" + api_key},
            timeout=10,
        )
        assert denied.status_code == 401
    finally:
        server.stop()
    entries = log_lines(server)
    assert [e["level"] for e in entries if e["level"] in {"DEBUG", "INFO"}] == []
    assert any(e["level"] == "WARNING" and "sink_uri" in e["msg"] for e in entries), entries
    assert api_key not in server.log_path.read_text()


# --- 4. one worker per pod -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "env"])
def test_more_than_one_worker_is_refused_with_the_reason(artifact, how):
    argv, env = [sys.executable, "-m", "transformer", "--model_card_uri", str(artifact)], dict(os.environ)
    if how == "flag":
        argv += ["--workers", "2"]
    else:
        env["WORKERS"] = "2"
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--workers > 1 is not supported" in result.stderr
    assert "kserve issue #2979" in result.stderr and "replicas" in result.stderr


def test_an_access_log_format_is_refused_with_the_reason_not_a_traceback(artifact):
    """KServe passes --access_log_format to asgi-logger, which is not installed: the server used to die at start
    with ModuleNotFoundError and a traceback."""
    argv = [
        sys.executable,
        "-m",
        "transformer",
        "--model_card_uri",
        str(artifact),
        "--access_log_format",
        "%(h)s",
    ]
    env = {**os.environ, "API_KEYS": "t:" + "k" * 24}
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--access_log_format is not supported" in result.stderr and "asgi-logger" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_operations_reference_names_every_metric_the_transformer_exports(observed):
    """docs/operations.md says it lists every metric the transformer exports; a family added in code and not there
    (lead_scoring_coalesced_batch_rows, KServe's request_explain_seconds were) is one an operator cannot look up."""
    reference = (ROOT / "docs" / "operations.md").read_text().split("## Metrics reference", 1)[1]
    listed = set(re.findall(r"^\|\s*`([a-z_]+)`", reference, flags=re.MULTILINE))
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(observed.metrics_text)
        # prometheus-client's own families and the `_created` timestamps it adds to counters and histograms
        if not family.name.startswith(("python_", "process_")) and not family.name.endswith("_created")
    }
    assert {"lead_scoring_requests_total", "request_predict_seconds"} <= exported
    assert exported - listed == set()
