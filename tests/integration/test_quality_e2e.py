"""Issue 15 end to end: scores in, outcomes in (route and bulk file), realised quality out, alerts on it.

A real transformer process (in-process booster) scores a synthetic population whose conversions the documented
ground-truth logit decides; outcomes are posted through POST /v1/outcomes and bulk-loaded with
`python -m quality.backfill`; `python -m quality.report` runs as a process against the file lake, moto's S3 server
and azurite. Its AUC and per-tier conversion must match (a) exactly what the answers the clients got imply, and
(b) within sampling error, what the ground truth implies. Its gauges feed promtool with the real PrometheusRule.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from contract.features import FEATURE_INDEX
from contract.measures import auc
from contract.model_card import load_card
from hack.stack import start_transformer
from tests.deploy.promql_inventory import plain_rules_file
from tests.quality_population import Population, expected_auc, post_outcomes
from tests.sink_servers import wait_for

ROOT = Path(__file__).resolve().parents[2]
KEY_NAME = "crm-quality"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
Z = 4.0   # tolerance in standard errors: a correct pipeline fails this about once in 16,000 runs per check


# ---- helpers -------------------------------------------------------------------------------------------------


def run_module(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, **(env or {})}, check=False)
    return result


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def start(artifact: Path, logs_dir: Path, api_key: str, tmp: Path, lake_uri: str, *extra: str, env=None):
    server = start_transformer(artifact, logs_dir, api_keys=f"{KEY_NAME}:{api_key}", env=env, extra_args=[
        "--sink_uri", lake_uri, "--sink_spool_dir", str(tmp / "spool"), "--outcomes_uri", lake_uri + "/_outcomes",
        "--outcomes_spool_dir", str(tmp / "outcomes-spool"), "--sink_flush_seconds", "0.2", "--drain_seconds", "10",
        *extra])
    server.wait_ready()
    return server


def read_metrics(root: Path) -> list[dict]:
    (path,) = sorted((root / "metrics").rglob("*.parquet"))
    return pq.read_table(path).to_pylist()


def gauges(textfile: Path) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(textfile.read_text()):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("model_version"), sample.labels.get("tier"))] = sample.value
    return found


def promtool_alerts(textfile: Path, tmp: Path, expected: dict[str, bool], version: str) -> subprocess.CompletedProcess:
    """The job's gauges, as a Pushgateway exposes them for 30 minutes, against the real PrometheusRule."""
    series = []
    for family in text_string_to_metric_families(textfile.read_text()):
        for sample in family.samples:
            labels = {**sample.labels, "namespace": "lead-scoring", "job": "lead-scoring-quality"}
            text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append({"series": f"{sample.name}{{{text}}}", "values": f"{sample.value!r}x30"})
    cases = []
    for alert, fires in expected.items():
        case = {"eval_time": "20m", "alertname": alert, "exp_alerts": []}
        if fires:
            case["exp_alerts"] = [{"exp_labels": {"severity": "warning", "namespace": "lead-scoring",
                                                  "model_name": "lead-scoring", "model_version": version}}]
        cases.append(case)
    plain_rules_file(tmp / "rules.yaml")
    (tmp / "job_output_test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}]}, sort_keys=False))
    return subprocess.run(["promtool", "test", "rules", "job_output_test.yaml"], cwd=tmp, capture_output=True,
                          text=True, timeout=120, check=False)


ALERTS = ("LeadScoringTierALiftLow", "LeadScoringRealisedAUCLow", "LeadScoringCalibrationErrorHigh")


# ---- 1. the file lake: the whole loop, checked against the ground truth ----------------------------------------


def test_realised_quality_matches_the_ground_truth_and_leaves_the_alerts_silent(artifact, logs_dir, api_key, tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    card = load_card(artifact)
    population = Population.draw(20_000, seed=2026)
    server = start(artifact, logs_dir, api_key, tmp_path, lake.as_uri())
    try:
        population.scores, population.tiers, population.scoring_ids = population.score(server.url, api_key)
        time.sleep(0.01)
        occurred = now_iso()   # every outcome happens after the scoring it judges
        outcomes = population.outcomes(occurred)
        # An earlier 'open' status for some leads is not a label; half the outcomes arrive by the route, a repeat of
        # one call is a duplicate, the other half arrives as a CRM export (with 500 rows already posted).
        opens = [{"lead_id": population.ids[i], "outcome": "open", "occurred_at": occurred} for i in range(0, 2000, 4)]
        answers = post_outcomes(server.url, api_key, opens + outcomes[:10_000])
        again = post_outcomes(server.url, api_key, outcomes[9_000:10_000])
        assert sum(a["recorded"] for a in answers) == 10_500 and again[0]["duplicates"] == 1000
        # Planted leakage: 300 labelled leads are scored again AFTER their outcome, with features that make them
        # look like sure conversions. The join must ignore these scorings.
        time.sleep(0.01)
        planted = slice(0, 300)
        hot = population.x.copy()
        hot[planted, FEATURE_INDEX["demo_requested"]] = 1.0
        hot[planted, FEATURE_INDEX["pricing_page_views_30d"]] = 30
        late_scores, _, _ = population.score(server.url, api_key, rows=planted, x=hot)
        assert np.mean(late_scores) > np.mean(population.scores[planted]) + 0.05
        wait_for(lambda: len(list(lake.rglob("*.parquet"))) >= 2 and _rows(lake, "model=") == 20_300, timeout=60)
    finally:
        assert server.stop() == 0          # SIGTERM: both recorders flush
    export = tmp_path / "crm-export.csv"
    pcsv.write_csv(pa.Table.from_pylist(outcomes[9_500:]), export)
    loaded = run_module("quality.backfill", str(export), "--lake", lake.as_uri())
    assert loaded.returncode == 0, loaded.stderr
    assert "10,000 outcomes recorded" in loaded.stdout

    textfile = tmp_path / "quality.prom"
    report = run_module("quality.report", "--lake", lake.as_uri(), "--model-card", str(artifact), "--textfile",
                        str(textfile), "--until", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    assert report.returncode == 0, report.stderr
    rows = {(r["model_version"], r["tier"]): r for r in read_metrics(lake / "_quality")}
    overall = rows[(card.version, "all")]
    y, p, tiers = population.y, population.scores.astype(np.float64), population.tiers

    # (a) exactly what the clients were answered: the first scorings, never the planted later ones.
    assert overall["labelled_leads"] == 20_000 and overall["conversions"] == int(y.sum())
    assert overall["auc"] == pytest.approx(auc(y, p), abs=1e-12)
    assert overall["reference_auc"] == card.metrics.auc
    for tier in "ABCDE":
        members = tiers == tier
        assert rows[(card.version, tier)]["labelled_leads"] == int(members.sum())
        assert rows[(card.version, tier)]["conversion_rate"] == pytest.approx(float(y[members].mean()), abs=1e-12)

    # (b) what the ground truth implies, within sampling error computed here.
    expected, se = expected_auc(population.p_true, p)
    assert abs(overall["auc"] - expected) < Z * se, (overall["auc"], expected, se)
    for tier in "ABCDE":
        members = tiers == tier
        truth = population.p_true[members]
        rate_se = float(np.sqrt(np.sum(truth * (1 - truth)))) / members.sum()
        measured = rows[(card.version, tier)]["conversion_rate"]
        assert abs(measured - truth.mean()) < Z * rate_se, (tier, measured, truth.mean(), rate_se)
    lift_a = rows[(card.version, "A")]["lift"]
    assert lift_a > 3.0, "tier A of the trained model should convert at several times the base rate"
    assert overall["calibration_error"] < 0.02
    assert overall["label_coverage"] == pytest.approx(1.0)

    # Gauges carry the same numbers; the real alert rules stay silent on a healthy model.
    published = gauges(textfile)
    assert published[("lead_scoring_quality_auc", card.version, None)] == pytest.approx(overall["auc"])
    assert published[("lead_scoring_quality_tier_lift", card.version, "A")] == pytest.approx(lift_a)
    result = promtool_alerts(textfile, tmp_path, dict.fromkeys(ALERTS, False), card.version)
    assert result.returncode == 0, result.stdout + result.stderr

    # The Markdown and the PNG are there, and the PNG is a real image of the advertised size.
    (report_dir,) = (lake / "_quality" / "reports").iterdir()
    text = (report_dir / "report.md").read_text()
    assert card.version in text and "| A |" in text.replace(f"`{card.version}` ", "")
    png = (report_dir / "calibration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 720

    # The API key never reaches the lake, in any table.
    for path in lake.rglob("*"):
        if path.is_file():
            assert api_key.encode() not in path.read_bytes(), path


def _rows(root: Path, prefix: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in root.rglob("*.parquet")
               if p.relative_to(root).as_posix().startswith(prefix))
