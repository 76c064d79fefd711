"""The model-quality commands as processes, at their edges: time arguments they cannot use are refused at parse time
(exit 2, one line naming the argument and the rule, no traceback); a missing lake, or one whose outcomes table holds
no outcome, is an error, not a success; outcomes kept elsewhere are read with --outcomes-uri; two report runs in the
same second each keep their report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quality.attribution import Window
from quality.lake import Lake
from quality.report import measure, write_outputs
from tests.unit.test_attribution import day, write_lake

ROOT = Path(__file__).resolve().parents[2]


def run_module(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )


def refused(result: subprocess.CompletedProcess, argument: str, rule: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert f"error: argument {argument}: " in line and rule in line, line


BAD_TIMES = [
    ("--days", "1e6", "at most 36,525"),
    ("--days", "1e10", "at most 36,525"),
    ("--days", "inf", "finite"),
    ("--days", "nan", "finite"),
    ("--days", "-5", "> 0"),
    ("--days", "0", "> 0"),
    ("--label-window-days", "1e6", "at most 36,525"),
    ("--label-window-days", "-1", "> 0"),
    ("--since", "0001-01-01T00:00:00Z", "from 1970-01-01T00:00:00Z"),
    ("--until", "9999-12-31T23:59:59Z", "to 2200-01-01T00:00:00Z"),
    ("--until", "9999-12-31T23:59:59-01:00", "to 2200-01-01T00:00:00Z"),
    ("--since", "last tuesday", "ISO 8601"),
]


@pytest.mark.parametrize(("argument", "value", "rule"), BAD_TIMES)
def test_quality_report_refuses_time_arguments_it_cannot_use(tmp_path, argument, value, rule):
    (tmp_path / "lake").mkdir()
    textfile = tmp_path / "quality.prom"
    result = run_module(
        "quality.report",
        "--lake",
        (tmp_path / "lake").as_uri(),
        "--textfile",
        str(textfile),
        f"{argument}={value}",
    )
    refused(result, argument, rule)
    assert not textfile.exists() and not (tmp_path / "lake" / "_quality").exists()


def test_quality_report_refuses_a_since_that_is_not_before_until(tmp_path):
    (tmp_path / "lake").mkdir()
    result = run_module(
        "quality.report",
        "--lake",
        (tmp_path / "lake").as_uri(),
        "--since",
        "2026-12-01T00:00:00Z",
        "--until",
        "2026-11-01T00:00:00Z",
    )
    refused(result, "--since", "must be before --until")


@pytest.mark.parametrize(("argument", "value", "rule"), [t for t in BAD_TIMES if t[0] != "--since"])
def test_training_from_the_lake_refuses_time_arguments_it_cannot_use(tmp_path, argument, value, rule):
    (tmp_path / "lake").mkdir()
    result = run_module(
        "predictor.train",
        "--from-lake",
        (tmp_path / "lake").as_uri(),
        "--out",
        str(tmp_path / "candidate"),
        f"{argument}={value}",
    )
    refused(result, argument, rule)
    assert not (tmp_path / "candidate").exists()


def test_a_lake_that_does_not_exist_is_an_error_and_no_success_is_recorded(tmp_path):
    missing = (tmp_path / "no-such-lake").as_uri()
    textfile = tmp_path / "quality.prom"
    report = run_module("quality.report", "--lake", missing, "--textfile", str(textfile))
    assert report.returncode == 2, report.stderr
    assert report.stderr.strip() == (
        f"error: lake {missing}: no such folder ({tmp_path / 'no-such-lake'}); give the transformer's --sink_uri"
    )
    assert "wrote" not in report.stdout and not textfile.exists() and not (tmp_path / "no-such-lake").exists()
    train = run_module("predictor.train", "--from-lake", missing, "--out", str(tmp_path / "candidate"))
    assert train.returncode == 2 and f"error: lake {missing}: no such folder" in train.stderr
    assert "Traceback" not in report.stderr + train.stderr


def test_a_missing_bucket_or_container_is_an_error_naming_it_not_a_traceback(moto_s3, azurite, tmp_path):
    """On object stores a mistyped lake ended in botocore's NoSuchBucket traceback (exit 1)."""
    textfile = tmp_path / "quality.prom"
    s3 = run_module(
        "quality.report", "--lake", "s3://no-such-bucket/scores", "--s3-endpoint-url", moto_s3.endpoint_url,
        "--textfile", str(textfile),
    )  # fmt: skip
    assert s3.returncode == 2 and "Traceback" not in s3.stderr, s3.stderr
    assert s3.stderr.strip() == (
        "error: lake s3://no-such-bucket/scores: bucket no-such-bucket does not exist; give the transformer's "
        "--sink_uri"
    )
    blob = run_module(
        "quality.report", "--lake", azurite.url("no-such-container", "scores"),
        "--azure-connection-string", azurite.connection_string, "--textfile", str(textfile),
    )  # fmt: skip
    assert blob.returncode == 2 and "Traceback" not in blob.stderr, blob.stderr
    assert "container no-such-container does not exist" in blob.stderr
    train = run_module(
        "predictor.train", "--from-lake", "s3://no-such-bucket/scores", "--s3-endpoint-url", moto_s3.endpoint_url,
        "--out", str(tmp_path / "candidate"),
    )  # fmt: skip
    assert train.returncode == 2 and "bucket no-such-bucket does not exist" in train.stderr, train.stderr
    (tmp_path / "lake").mkdir()
    train = run_module(
        "predictor.train", "--from-lake", (tmp_path / "lake").as_uri(), "--outcomes-uri", "s3://no-such-bucket/outcomes",
        "--s3-endpoint-url", moto_s3.endpoint_url, "--out", str(tmp_path / "candidate"),
    )  # fmt: skip
    assert train.returncode == 2 and "Traceback" not in train.stderr, train.stderr
    assert train.stderr.startswith(
        "error: reading the outcomes s3://no-such-bucket/outcomes failed: NoSuchBucket"
    )
    assert not textfile.exists() and not (tmp_path / "candidate").exists()


def test_two_runs_at_once_each_keep_their_report_and_print_only_what_they_wrote(tmp_path):
    # An outcome in the default window (the last 30 days): a window without one is an error (test below).
    lake = write_lake(tmp_path / "lake", [], [("L", "open", datetime.now(UTC) - timedelta(days=3))]).uri
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "quality.report", "--lake", lake],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    printed = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        printed += re.search(r"wrote (.+)$", out.strip().splitlines()[0]).group(1).split(", ")
    quality = tmp_path / "lake" / "_quality"
    assert len(printed) == 4 and len(set(printed)) == 4
    assert all((quality / key).is_file() for key in printed)
    assert sorted(p.name for p in (quality / "reports").iterdir()) == sorted(
        {Path(key).parent.name for key in printed}
    )


def test_outputs_of_runs_that_started_in_the_same_instant_go_to_distinct_folders(tmp_path):
    """The deterministic form of the race: the same run stamp twice (the writers never replace and stay silent)."""
    (tmp_path / "lake").mkdir()
    now = datetime.now(UTC)
    lake = Lake((tmp_path / "lake").as_uri())
    result = measure(lake, Window(since=now - timedelta(days=30), until=now, label_window=timedelta(days=90)))
    first, second = (
        write_outputs(result, lake.child("_quality")),
        write_outputs(result, lake.child("_quality")),
    )
    assert first["report.md"] != second["report.md"]
    for written in (first, second):
        for key in written.values():
            assert (tmp_path / "lake" / "_quality" / key).is_file()
    assert len(list((tmp_path / "lake" / "_quality" / "reports").iterdir())) == 2


def _scored_lake(root: Path) -> Lake:
    """Scorings of L1 and L2 in October 2026, and no outcomes table: the lake of a transformer whose outcomes went
    to another location (the configuration reference's old example, s3://bucket/outcomes)."""
    return write_lake(root, [("s1", "L1", day("2026-10-02")), ("s2", "L2", day("2026-10-03"))], [])


OCTOBER = ("--since", "2026-10-01T00:00:00Z", "--until", "2026-11-01T00:00:00Z")


def test_a_lake_without_outcomes_is_an_error_naming_where_it_looked_and_no_success_is_recorded(tmp_path):
    """It printed "0 labelled leads", exited 0 and pushed a fresh success stamp: every quality alert, the staleness
    one included, stayed silent while no outcome reached the job."""
    lake = _scored_lake(tmp_path / "lake")
    textfile = tmp_path / "quality.prom"
    report = run_module("quality.report", "--lake", lake.uri, *OCTOBER, "--textfile", str(textfile))
    assert report.returncode == 2, report.stderr
    (line,) = report.stderr.strip().splitlines()
    assert line.startswith(f"error: no outcomes in {lake.uri}/_outcomes: it holds no outcome file"), line
    assert "--outcomes-uri" in line and "Traceback" not in report.stderr
    assert (
        "wrote" not in report.stdout
        and not textfile.exists()
        and not (tmp_path / "lake" / "_quality").exists()
    )
    # The same for an --outcomes-uri where nothing is.
    elsewhere = (tmp_path / "no-outcomes-here").as_uri()
    report = run_module("quality.report", "--lake", lake.uri, "--outcomes-uri", elsewhere, *OCTOBER)
    assert report.returncode == 2 and report.stderr.startswith(f"error: no outcomes in {elsewhere}: "), (
        report.stderr
    )


def test_outcomes_kept_elsewhere_are_read_with_outcomes_uri(tmp_path):
    """quality.backfill and quality.report take the same --outcomes-uri: what one writes there, the other reads."""
    lake = _scored_lake(tmp_path / "lake")
    outcomes = (tmp_path / "crm-outcomes").as_uri()
    export = tmp_path / "crm.csv"
    export.write_text(
        "lead_id,outcome,occurred_at\nL1,converted,2026-10-05T00:00:00Z\nL2,disqualified,2026-10-06T00:00:00Z\n"
    )
    loaded = run_module("quality.backfill", str(export), "--lake", lake.uri, "--outcomes-uri", outcomes)
    assert loaded.returncode == 0, loaded.stderr
    assert not (tmp_path / "lake" / "_outcomes").exists() and (tmp_path / "crm-outcomes").is_dir()
    textfile = tmp_path / "quality.prom"
    report = run_module(
        "quality.report",
        "--lake",
        lake.uri,
        "--outcomes-uri",
        outcomes,
        *OCTOBER,
        "--textfile",
        str(textfile),
    )
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("quality: 2 labelled leads"), report.stdout
    assert "lead_scoring_quality_labelled_leads" in textfile.read_text()


def test_a_window_without_outcomes_is_an_error_and_publishes_nothing(tmp_path):
    """The table has outcomes, none of the window (the CRM's feed stopped). It was exit 0 with a warning and a push
    of the success stamp alone, which replaced the Pushgateway's group: every quality alert went silent, the
    staleness alert too. Now nothing is written or pushed, so the stamp ages and LeadScoringQualityJobStale fires."""
    lake = write_lake(tmp_path / "lake", [], [("L", "converted", day("2026-01-05"))])
    textfile = tmp_path / "quality.prom"
    report = run_module("quality.report", "--lake", lake.uri, *OCTOBER, "--textfile", str(textfile))
    assert report.returncode == 2, report.stderr
    (line,) = report.stderr.strip().splitlines()
    assert line.startswith("error: no outcome occurred from 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z in ")
    assert "nothing was measured, written or pushed" in line
    assert not textfile.exists() and not (tmp_path / "lake" / "_quality").exists()


def test_quality_report_warns_when_outcomes_name_scorings_their_leads_never_had(tmp_path):
    lake = write_lake(
        tmp_path / "lake",
        [("s-a", "A", day("2026-10-02")), ("s-b", "B", day("2026-10-02"))],
        [("A", "converted", day("2026-10-10"), "s-a"), ("B", "converted", day("2026-10-10"), "req-123")],
    )
    result = run_module(
        "quality.report",
        "--lake",
        lake.uri,
        "--since",
        "2026-10-01T00:00:00Z",
        "--until",
        "2026-11-01T00:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "warning: of 2 labels whose outcome names a scoring_id, 1 name one that none of their lead's scorings "
        "carries and 0 one made after the outcome or more than 90 days before it" in result.stderr
    )
    (report,) = (tmp_path / "lake" / "_quality" / "reports").glob("*/report.md")
    assert "| labels naming a scoring | 2 |" in report.read_text()
