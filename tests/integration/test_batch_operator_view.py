"""What an operator sees: shard metrics in a real Pushgateway (and a run that survives the Pushgateway being down),
a progress bar with rows/s and ETA on a terminal, and a readable summary."""

from __future__ import annotations

import io
import urllib.request

import pyarrow.parquet as pq
import pytest

from batch.progress import Progress
from tests.batch_export import BAD_ROWS, crm_export, run_batch
from tests.sink_servers import free_port
from tests.support.pushgateway import running_pushgateway

N = 1_200


@pytest.fixture
def pushgateway():
    with running_pushgateway() as url:
        yield url


@pytest.fixture
def export(tmp_path):
    table, _ = crm_export(N)
    path = tmp_path / "crm.parquet"
    pq.write_table(table, path, row_group_size=300)
    return path


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in the Pushgateway")


def test_each_shard_pushes_its_counts(pushgateway, export, small_artifact, tmp_path):
    for index in (0, 1):
        result = run_batch(
            "--input",
            str(export),
            "--output",
            str(tmp_path / "out"),
            "--model",
            str(small_artifact),
            "--shard-count",
            "2",
            "--shard-index",
            str(index),
            "--pushgateway-url",
            pushgateway,
            env={"POD_NAMESPACE": "lead-scoring"},
        )
        assert result.returncode == 0, result.stderr
    text = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5).read().decode()  # noqa: S310 - loopback
    # The namespace from the Job's downward API, as the alerts and dashboards select on.
    job = {"job": "lead-scoring-batch", "namespace": "lead-scoring"}
    scored = sum(
        _metric(text, "lead_scoring_batch_rows_total", outcome="scored", shard=s, **job) for s in "01"
    )
    rejected = sum(
        _metric(text, "lead_scoring_batch_rows_total", outcome="rejected", shard=s, **job) for s in "01"
    )
    assert (scored, rejected) == (N - len(BAD_ROWS), len(BAD_ROWS))
    tiers = sum(
        _metric(text, "lead_scoring_batch_tier_rows_total", tier=t, shard=s, **job)
        for t in "ABCDE"
        for s in "01"
    )
    assert tiers == scored
    assert _metric(text, "lead_scoring_batch_shard_duration_seconds", shard="1", **job) > 0


def test_a_missing_pushgateway_does_not_fail_the_run(export, small_artifact, tmp_path):
    result = run_batch(
        "--input",
        str(export),
        "--output",
        str(tmp_path / "out"),
        "--model",
        str(small_artifact),
        "--pushgateway-url",
        f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 0, result.stderr
    assert "could not push metrics" in result.stderr
    assert (tmp_path / "out" / "_manifest.json").exists()


def test_terminal_run_shows_a_summary(export, small_artifact, tmp_path):
    result = run_batch(
        "--input",
        str(export),
        "--output",
        str(tmp_path / "out"),
        "--model",
        str(small_artifact),
        "--progress",
        "bar",
    )
    assert result.returncode == 0, result.stderr
    assert "rows/s" in result.stderr and "ETA" in result.stderr and "100.0%" in result.stderr
    assert f"rows read {N:,}  scored {N - len(BAD_ROWS):,}  rejected {len(BAD_ROWS):,}" in result.stdout
    assert "manifest" in result.stdout


def test_progress_bar_shows_rate_and_eta():
    stream = io.StringIO()
    progress = Progress("shard 1/4", total=1_000, stream=stream, enabled=True)
    progress._drawn = -1.0
    progress.advance(250)
    text = stream.getvalue()
    assert (
        "shard 1/4" in text
        and "25.0%" in text
        and "250/1,000 rows" in text
        and "rows/s" in text
        and "ETA" in text
    )
    quiet = io.StringIO()
    Progress("shard 1/1", total=None, stream=quiet, enabled=False).advance(10)
    assert quiet.getvalue() == ""
