"""Issue 15 end to end: scores in, outcomes in (route and bulk file), realised quality out, alerts on it.

A real transformer process (in-process booster) scores a synthetic population whose conversions the documented
ground-truth logit decides; outcomes are posted through POST /v1/outcomes and bulk-loaded with
`python -m quality.backfill`; `python -m quality.report` runs as a process against the file lake, moto's S3 server
and azurite. Its AUC and per-tier conversion must match (a) exactly what the answers the clients got imply, and
(b) within sampling error, what the ground truth implies. Its gauges feed promtool with the real PrometheusRule.
"""

from __future__ import annotations

import os
import re
import shutil
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
from tests.deploy.promql_inventory import alert_rules, plain_rules_file
from tests.quality_population import Population, expected_auc, post_outcomes
from tests.sink_servers import wait_for

ROOT = Path(__file__).resolve().parents[2]
KEY_NAME = "crm-quality"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
Z = 4.0  # tolerance in standard errors: a correct pipeline fails this about once in 16,000 runs per check


# ---- helpers -------------------------------------------------------------------------------------------------


def run_module(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return result


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def start(artifact: Path, logs_dir: Path, api_key: str, tmp: Path, lake_uri: str, *extra: str, env=None):
    server = start_transformer(
        artifact,
        logs_dir,
        api_keys=f"{KEY_NAME}:{api_key}",
        env=env,
        extra_args=[
            "--sink_uri",
            lake_uri,
            "--sink_spool_dir",
            str(tmp / "spool"),
            "--outcomes_uri",
            lake_uri + "/_outcomes",
            "--outcomes_spool_dir",
            str(tmp / "outcomes-spool"),
            "--sink_flush_seconds",
            "0.2",
            "--drain_seconds",
            "10",
            *extra,
        ],
    )
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


def alert_value(alert: str, published: dict, version: str) -> float:
    """The $value each quality alert carries, from the job's gauges."""
    if alert == "LeadScoringTierALiftLow":
        return published[("lead_scoring_quality_tier_lift", version, "A")]
    if alert == "LeadScoringRealisedAUCLow":
        return (
            published[("lead_scoring_quality_reference_auc", version, None)]
            - published[("lead_scoring_quality_auc", version, None)]
        )
    return published[("lead_scoring_quality_calibration_error", version, None)]


def rendered(template: str, labels: dict, value: float) -> str:
    """The rule's annotation as Prometheus renders it (the two template forms the quality rules use)."""
    text = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m.group(1)], template)
    return re.sub(
        r'\{\{\s*\$value \| printf "%\.(\d)f"\s*\}\}', lambda m: f"{value:.{m.group(1)}f}", text
    ).strip()


def promtool_alerts(
    textfile: Path, tmp: Path, expected: dict[str, bool], version: str
) -> subprocess.CompletedProcess:
    """The job's gauges, as a Pushgateway exposes them for 30 minutes, against the real PrometheusRule."""
    series = []
    for family in text_string_to_metric_families(textfile.read_text()):
        for sample in family.samples:
            labels = {**sample.labels, "namespace": "lead-scoring", "job": "lead-scoring-quality"}
            text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append({"series": f"{sample.name}{{{text}}}", "values": f"{sample.value!r}x30"})
    rules = {rule["alert"]: rule for rule in alert_rules()}
    published = gauges(textfile)
    cases = []
    for alert, fires in expected.items():
        case = {"eval_time": "20m", "alertname": alert, "exp_alerts": []}
        if fires:
            labels = {
                "severity": "warning",
                "namespace": "lead-scoring",
                "model_name": "lead-scoring",
                "model_version": version,
            }
            value = alert_value(alert, published, version)
            case["exp_alerts"] = [
                {
                    "exp_labels": labels,
                    "exp_annotations": {
                        name: rendered(template, labels, value)
                        for name, template in rules[alert]["annotations"].items()
                    },
                }
            ]
        cases.append(case)
    plain_rules_file(tmp / "rules.yaml")
    (tmp / "job_output_test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yaml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
            },
            sort_keys=False,
        )
    )
    return subprocess.run(
        ["promtool", "test", "rules", "job_output_test.yaml"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ALERTS = ("LeadScoringTierALiftLow", "LeadScoringRealisedAUCLow", "LeadScoringCalibrationErrorHigh")


# ---- 1. the file lake: the whole loop, checked against the ground truth ----------------------------------------


class Loop:
    """What the module's one scoring + outcomes + job run left behind, for the tests below to check."""


@pytest.fixture(scope="module")
def loop(artifact, logs_dir, api_key, tmp_path_factory) -> Loop:
    tmp = tmp_path_factory.mktemp("quality-loop")
    lake = tmp / "lake"
    lake.mkdir()
    population = Population.draw(20_000, seed=2026)
    server = start(artifact, logs_dir, api_key, tmp, lake.as_uri())
    try:
        population.scores, population.tiers, population.scoring_ids = population.score(server.url, api_key)
        time.sleep(0.01)
        occurred = now_iso()  # every outcome happens after the scoring it judges
        outcomes = population.outcomes(occurred)
        # An earlier 'open' status for some leads is not a label; half the outcomes arrive by the route, a repeat of
        # one call is a duplicate, the other half arrives as a CRM export (with 500 rows already posted).
        opens = [
            {"lead_id": population.ids[i], "outcome": "open", "occurred_at": occurred}
            for i in range(0, 2000, 4)
        ]
        answers = post_outcomes(server.url, api_key, opens + outcomes[:10_000])
        again = post_outcomes(server.url, api_key, outcomes[9_000:10_000])
        assert sum(a["recorded"] for a in answers) == 10_500 and again[0]["duplicates"] == 1000
        # Planted leakage: 300 labelled leads are scored again AFTER their outcome, with features that make them
        # look like sure conversions. The join and the retraining must ignore these scorings.
        time.sleep(0.01)
        planted = slice(0, 300)
        hot = population.x.copy()
        hot[planted, FEATURE_INDEX["demo_requested"]] = 1.0
        hot[planted, FEATURE_INDEX["pricing_page_views_30d"]] = 30
        late_scores, _, _ = population.score(server.url, api_key, rows=planted, x=hot)
        assert np.mean(late_scores) > np.mean(population.scores[planted]) + 0.05
        wait_for(lambda: _rows(lake, "model=") == 20_300, timeout=60)
    finally:
        assert server.stop() == 0  # SIGTERM: both recorders flush
    export = tmp / "crm-export.csv"
    pcsv.write_csv(pa.Table.from_pylist(outcomes[9_500:]), export)
    loaded = run_module("quality.backfill", str(export), "--lake", lake.as_uri())
    assert loaded.returncode == 0, loaded.stderr
    assert "10,500 outcomes recorded" in loaded.stdout  # 500 rows repeat posted ones: the job dedupes them

    result = Loop()
    result.lake, result.tmp, result.population, result.planted, result.hot = (
        lake,
        tmp,
        population,
        planted,
        hot,
    )
    result.textfile = tmp / "quality.prom"
    result.report = run_module(
        "quality.report",
        "--lake",
        lake.as_uri(),
        "--model-card",
        str(artifact),
        "--textfile",
        str(result.textfile),
        "--until",
        (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    )
    assert result.report.returncode == 0, result.report.stderr
    return result


def test_realised_quality_matches_the_ground_truth_and_leaves_the_alerts_silent(
    loop, artifact, api_key, tmp_path
):
    card = load_card(artifact)
    population, lake = loop.population, loop.lake
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
        assert rows[(card.version, tier)]["conversion_rate"] == pytest.approx(
            float(y[members].mean()), abs=1e-12
        )

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
    print(
        f"measured AUC {overall['auc']:.4f}, ground truth implies {expected:.4f} ± {se:.4f}; tier A "
        f"{rows[(card.version, 'A')]['conversion_rate']:.4f} (truth {population.p_true[tiers == 'A'].mean():.4f}), "
        f"lift {lift_a:.2f}, calibration error {overall['calibration_error']:.4f}"
    )

    # Gauges carry the same numbers; the real alert rules stay silent on a healthy model.
    published = gauges(loop.textfile)
    assert published[("lead_scoring_quality_auc", card.version, None)] == pytest.approx(overall["auc"])
    assert published[("lead_scoring_quality_tier_lift", card.version, "A")] == pytest.approx(lift_a)
    result = promtool_alerts(loop.textfile, tmp_path, dict.fromkeys(ALERTS, False), card.version)
    assert result.returncode == 0, result.stdout + result.stderr

    # The Markdown and the PNG are there, and the PNG is a real image of the advertised size.
    (report_dir,) = (lake / "_quality" / "reports").iterdir()
    text = (report_dir / "report.md").read_text()
    assert f"| `{card.version}` | A | {rows[(card.version, 'A')]['labelled_leads']:,} |" in text
    png = (report_dir / "calibration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 720

    # The API key never reaches the lake, in any table.
    for path in lake.rglob("*"):
        if path.is_file():
            assert api_key.encode() not in path.read_bytes(), path


# ---- 2. retraining from the lake -----------------------------------------------------------------------------


def test_retraining_from_the_lake_matches_direct_training_and_never_sees_post_outcome_scorings(
    loop, tmp_path
):
    from datetime import timedelta as days

    from predictor.train import train
    from quality.attribution import Window
    from quality.lake import Lake
    from quality.training_set import training_set

    population = loop.population
    until = datetime.now(UTC) + timedelta(minutes=1)
    data = training_set(Lake(loop.lake.as_uri()), Window(until - days(days=30), until, days(days=90)))
    index = {lead: i for i, lead in enumerate(population.ids)}
    rows = np.array([index[lead] for lead in data.lead_ids])  # the lake's rows, in the lake's (lead) order
    assert sorted(data.lead_ids) == sorted(population.ids)
    assert np.array_equal(data.y, population.y[rows])
    # The features are those recorded with the FIRST scoring: the planted post-outcome features never appear.
    sent = population.x[rows].astype(np.float32).astype(np.float64)
    assert np.array_equal(np.isnan(data.x), np.isnan(sent))
    assert np.array_equal(np.nan_to_num(data.x), np.nan_to_num(sent))
    planted_ids = set(population.ids[loop.planted])
    hot_rows = [i for i, lead in enumerate(data.lead_ids) if lead in planted_ids]
    assert len(hot_rows) == 300
    late = loop.hot[rows[hot_rows]].astype(np.float32).astype(np.float64)
    assert not np.array_equal(np.nan_to_num(data.x[hot_rows]), np.nan_to_num(late))

    out = tmp_path / "from-lake"
    trained = run_module(
        "predictor.train",
        "--from-lake",
        loop.lake.as_uri(),
        "--out",
        str(out),
        "--rounds",
        "300",
        "--until",
        until.isoformat(),
    )
    assert trained.returncode == 0, trained.stderr
    card = load_card(out)
    direct = train(
        population.x[rows],
        population.y[rows],
        tmp_path / "direct",
        seed=7,
        name="lead-scoring",
        version=None,
        threads=2,
        rounds=300,
        source="direct",
    )
    assert abs(card.metrics.auc - direct.metrics.auc) < 0.01, (card.metrics.auc, direct.metrics.auc)
    assert card.training["labelled_leads"] == 20_000 and card.training["label_window_days"] == 90
    assert card.training["holdout_rows"] == card.metrics.rows_test
    # The serving model's recorded scores on the same held-out rows: the comparison the card promises.
    assert 0.7 < card.training["holdout_serving_auc"] < 0.9
    print(
        f"AUC from the lake {card.metrics.auc:.4f}, direct {direct.metrics.auc:.4f}, serving model on the same "
        f"hold-out {card.training['holdout_serving_auc']:.4f}"
    )


# ---- 3. degraded models make the alerts fire -----------------------------------------------------------------


def test_retraining_reads_outcomes_recorded_elsewhere_with_outcomes_uri(loop, tmp_path):
    """A transformer whose --outcomes_uri is not <lake>/_outcomes: predictor.train had no way to read them and said
    only "got 0 leads". It names where it looked, and --outcomes-uri trains on every labelled lead."""
    lake = tmp_path / "lake"
    shutil.copytree(loop.lake, lake, ignore=shutil.ignore_patterns("_outcomes", "_quality"))
    outcomes = tmp_path / "crm-outcomes"
    shutil.copytree(loop.lake / "_outcomes", outcomes)
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    common = ["--from-lake", lake.as_uri(), "--rounds", "20", "--until", until]

    missing = run_module("predictor.train", *common, "--out", str(tmp_path / "none"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert missing.stderr.strip() == (
        f"error: no outcomes in {lake.as_uri()}/_outcomes: it holds no outcome file (dt=YYYY-MM-DD/*.parquet), so "
        "there is nothing to label; give the transformer's --outcomes_uri with --outcomes-uri (default "
        "<lake>/_outcomes)"
    )
    assert not (tmp_path / "none").exists()

    out = tmp_path / "candidate"
    trained = run_module("predictor.train", *common, "--outcomes-uri", outcomes.as_uri(), "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    assert load_card(out).training["labelled_leads"] == len(loop.population.ids)


def test_a_booster_trained_on_shuffled_labels_fires_the_lift_alert(logs_dir, api_key, tmp_path):
    from predictor.synthetic import sample_population
    from predictor.train import train

    x, y = sample_population(60_000, seed=99)
    degraded_dir = tmp_path / "degraded"
    degraded = train(
        x,
        np.random.default_rng(5).permutation(y),
        degraded_dir,
        seed=5,
        name="lead-scoring",
        version="degraded",
        threads=2,
        rounds=60,
        source="shuffled labels",
    )
    lake = tmp_path / "lake"
    lake.mkdir()
    population = Population.draw(8_000, seed=4242)
    server = start(degraded_dir, logs_dir, api_key, tmp_path, lake.as_uri())
    try:
        population.scores, population.tiers, _ = population.score(server.url, api_key)
        time.sleep(0.01)
        post_outcomes(server.url, api_key, population.outcomes(now_iso()))
    finally:
        assert server.stop() == 0
    textfile = tmp_path / "quality.prom"
    report = run_module(
        "quality.report",
        "--lake",
        lake.as_uri(),
        "--model-card",
        str(degraded_dir),
        "--textfile",
        str(textfile),
        "--until",
        (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    )
    assert report.returncode == 0, report.stderr
    published = gauges(textfile)
    assert published[("lead_scoring_quality_tier_labelled_leads", "degraded", "A")] >= 200
    assert published[("lead_scoring_quality_tier_lift", "degraded", "A")] < 1.6
    assert abs(published[("lead_scoring_quality_auc", "degraded", None)] - 0.5) < 0.05
    # Its own card already says it is no better than chance, so only the lift floor can catch it.
    assert degraded.metrics.auc < 0.56
    result = promtool_alerts(
        textfile,
        tmp_path,
        {
            "LeadScoringTierALiftLow": True,
            "LeadScoringRealisedAUCLow": False,
            "LeadScoringCalibrationErrorHigh": False,
        },
        "degraded",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_when_outcomes_stop_following_the_scores_every_quality_alert_fires(loop, artifact, tmp_path):
    """The world changed under a good model: same scorings, but who converts is no longer what it predicted."""
    card = load_card(artifact)
    lake = tmp_path / "lake"
    shutil.copytree(loop.lake, lake, ignore=shutil.ignore_patterns("_outcomes", "_quality"))
    population = loop.population
    shuffled = np.random.default_rng(8).permutation(population.y)
    occurred = now_iso()
    export = tmp_path / "crm-export.parquet"
    pq.write_table(
        pa.table(
            {
                "lead_id": population.ids,
                "outcome": np.where(shuffled == 1, "converted", "disqualified"),
                "occurred_at": pa.array(
                    [datetime.fromisoformat(occurred)] * len(shuffled), pa.timestamp("us", tz="UTC")
                ),
            }
        ),
        export,
    )
    loaded = run_module("quality.backfill", str(export), "--lake", lake.as_uri())
    assert loaded.returncode == 0, loaded.stderr
    textfile = tmp_path / "quality.prom"
    report = run_module(
        "quality.report",
        "--lake",
        lake.as_uri(),
        "--model-card",
        str(artifact),
        "--textfile",
        str(textfile),
        "--until",
        (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    )
    assert report.returncode == 0, report.stderr
    result = promtool_alerts(textfile, tmp_path, dict.fromkeys(ALERTS, True), card.version)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- 3b. a canary: two versions side by side on the leads each scored ------------------------------------------


def test_during_a_canary_each_version_is_measured_on_the_leads_it_scored(
    artifact, small_artifact, logs_dir, api_key, tmp_path
):
    lake = tmp_path / "lake"
    lake.mkdir()
    population = Population.draw(4_000, seed=515)
    stable = start(artifact, logs_dir, api_key, tmp_path / "stable", lake.as_uri())
    canary = start(small_artifact, logs_dir, api_key, tmp_path / "canary", lake.as_uri())
    try:
        scores, tiers, _ = population.score(stable.url, api_key)
        canary_part = slice(0, 1_500)
        canary_scores, canary_tiers, _ = population.score(canary.url, api_key, rows=canary_part)
        time.sleep(0.01)
        post_outcomes(stable.url, api_key, population.outcomes(now_iso()))
    finally:
        assert stable.stop() == 0 and canary.stop() == 0
    report = run_module(
        "quality.report",
        "--lake",
        lake.as_uri(),
        "--model-card",
        str(artifact),
        "--model-card",
        str(small_artifact),
        "--until",
        (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    )
    assert report.returncode == 0, report.stderr
    rows = {(r["model_version"], r["tier"]): r for r in read_metrics(lake / "_quality")}
    stable_version, canary_version = load_card(artifact).version, load_card(small_artifact).version
    y = population.y
    assert rows[(stable_version, "all")]["labelled_leads"] == 4_000
    assert rows[(canary_version, "all")]["labelled_leads"] == 1_500
    assert rows[(stable_version, "all")]["auc"] == pytest.approx(auc(y, scores.astype(np.float64)), abs=1e-12)
    assert rows[(canary_version, "all")]["auc"] == pytest.approx(
        auc(y[canary_part], canary_scores.astype(np.float64)), abs=1e-12
    )
    assert rows[(canary_version, "all")]["reference_auc"] == load_card(small_artifact).metrics.auc
    (report_dir,) = (lake / "_quality" / "reports").iterdir()
    text = (report_dir / "report.md").read_text()
    assert f"| `{stable_version}` | A |" in text and f"| `{canary_version}` | A |" in text


# ---- 4. the job against object stores ------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["s3", "azure"])
def test_the_loop_runs_against_s3_and_azure_blob(store, request, artifact, logs_dir, api_key, tmp_path):
    from quality.lake import Lake

    if store == "s3":
        server = request.getfixturevalue("moto_s3")
        server.client().create_bucket(Bucket="lake")
        uri, env = "s3://lake/scores", dict(AWS_ENV)
        flags = ["--sink_s3_endpoint_url", server.endpoint_url]
        job_flags = ["--s3-endpoint-url", server.endpoint_url]
    else:
        server = request.getfixturevalue("azurite")
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(server.connection_string).create_container("lake")
        uri, env = server.url("lake", "scores"), {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
        flags, job_flags = [], []
    population = Population.draw(3_000, seed=77)
    transformer = start(artifact, logs_dir, api_key, tmp_path, uri, *flags, env=env)
    try:
        population.scores, population.tiers, _ = population.score(transformer.url, api_key)
        time.sleep(0.01)
        outcomes = population.outcomes(now_iso())
        post_outcomes(transformer.url, api_key, outcomes[:1500])
    finally:
        assert transformer.stop() == 0
    export = tmp_path / "crm-export.csv"
    pcsv.write_csv(pa.Table.from_pylist(outcomes[1500:]), export)
    loaded = run_module("quality.backfill", str(export), "--lake", uri, *job_flags, env=env)
    assert loaded.returncode == 0, loaded.stderr
    report = run_module(
        "quality.report",
        "--lake",
        uri,
        *job_flags,
        "--until",
        (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        env=env,
    )
    assert report.returncode == 0, report.stderr

    for name, value in env.items():  # read the results back from the store, as a consumer would
        os.environ[name] = value
    try:
        results = Lake(uri + "/_quality", s3_endpoint_url=server.endpoint_url if store == "s3" else None)
        (key,) = [k for k in results.list("metrics")]
        rows = {(r["model_version"], r["tier"]): r for r in results.read([key]).to_pylist()}
    finally:
        for name in env:
            os.environ.pop(name, None)
    version = load_card(artifact).version
    y, p = population.y, population.scores.astype(np.float64)
    assert rows[(version, "all")]["labelled_leads"] == 3_000
    assert rows[(version, "all")]["auc"] == pytest.approx(auc(y, p), abs=1e-12)
    for tier in "ABCDE":
        members = population.tiers == tier
        assert rows[(version, tier)]["conversion_rate"] == pytest.approx(float(y[members].mean()), abs=1e-12)


def _rows(root: Path, prefix: str) -> int:
    return sum(
        pq.read_metadata(p).num_rows
        for p in root.rglob("*.parquet")
        if p.relative_to(root).as_posix().startswith(prefix)
    )
