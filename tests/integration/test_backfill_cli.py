"""`python -m quality.backfill` as a process: every bad row named, nothing written; a good file stored once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = "lead_id,outcome,occurred_at,deal_value,scoring_id\n"


def backfill(path: Path, lake: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "quality.backfill", str(path), "--lake", lake.as_uri()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_file_with_bad_rows_is_refused_whole_with_every_bad_row_named(tmp_path):
    lake = tmp_path / "lake"
    export = tmp_path / "crm.csv"
    export.write_text(
        HEADER
        + "L-1,converted,2026-11-20T09:00:00Z,100,\n"
        + "L-2,won,2026-11-20T09:00:00Z,,\n"
        + "L-3,disqualified,2026-11-20 09:00,,\n"
        + ",open,2026-11-20T09:00:00Z,,\n"
        + "L-5,disqualified,2026-11-20T09:00:00Z,10,\n"
    )
    result = backfill(export, lake)
    assert result.returncode == 2
    assert "4 problem(s) in 4 row(s); nothing was written" in result.stderr
    for expected in (
        "row 1: field outcome: rule enumeration",
        "row 2: field occurred_at: rule timezone",
        "row 3: field lead_id: rule required",
        "row 4: field deal_value: rule converted_only",
    ):
        assert expected in result.stderr
    assert not list(lake.rglob("*.parquet"))


def test_a_good_file_is_stored_and_loading_it_again_adds_only_duplicates_the_job_removes(tmp_path):
    lake = tmp_path / "lake"
    export = tmp_path / "crm.csv"
    export.write_text(
        HEADER
        + "".join(f"L-{i},converted,2026-11-2{i % 3}T09:00:00+02:00,{i},\n" for i in range(300))
        + "L-0,converted,2026-11-20T07:00:00Z,0,\n"
    )  # the same instant as row 0: a repeat
    first = backfill(export, lake)
    assert first.returncode == 0, first.stderr
    assert "301 rows, 300 outcomes recorded, 1 repeats skipped" in first.stdout
    tables = [pq.read_table(p) for p in sorted((lake / "_outcomes").rglob("*.parquet"))]
    assert sorted(p.parent.name for p in (lake / "_outcomes").rglob("*.parquet")) == [
        "dt=2026-11-20",
        "dt=2026-11-21",
        "dt=2026-11-22",
    ]
    assert sum(t.num_rows for t in tables) == 300
    assert {r["source"] for t in tables for r in t.to_pylist()} == {"backfill"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "quality.backfill", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_named_twice_is_refused_naming_it(tmp_path, suffix):
    lake = tmp_path / "lake"
    export = tmp_path / f"crm{suffix}"
    if suffix == ".csv":
        export.write_text("lead_id,outcome,occurred_at,lead_id\nL-1,open,2026-11-20T09:00:00Z,L-2\n")
    else:
        columns = [["L-1"], ["open"], ["2026-11-20T09:00:00Z"], ["L-2"]]
        names = ["lead_id", "outcome", "occurred_at", "lead_id"]
        pq.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], names=names), export)
    line = one_line_error(backfill(export, lake))
    assert (
        line
        == f"error: {export}: duplicate column(s): lead_id (each column may appear once; which one would be meant?)"
    )
    assert not list(lake.rglob("*.parquet"))


def test_only_an_empty_csv_cell_is_missing_null_words_are_text(tmp_path):
    lake = tmp_path / "lake"
    export = tmp_path / "crm.csv"
    words = ["NA", "N/A", "NULL", "null", "nan", "#N/A", "None"]
    export.write_text(
        "lead_id,outcome,occurred_at,deal_value\n"
        + "".join(f"{w},disqualified,2026-11-20T09:00:00Z,\n" for w in words)
        + '"",open,2026-11-20T09:00:00Z,\n'
    )
    refused = backfill(export, lake)
    assert refused.returncode == 2
    assert (
        "1 problem(s) in 1 row(s)" in refused.stderr
        and f"row {len(words)}: field lead_id: rule required" in refused.stderr
    )
    export.write_text(export.read_text().replace('"",open', "L-9,open"))
    stored = backfill(export, lake)
    assert stored.returncode == 0, stored.stderr
    table = pa.concat_tables(pq.read_table(p) for p in (lake / "_outcomes").rglob("*.parquet"))
    assert sorted(table["lead_id"].to_pylist()) == sorted([*words, "L-9"])
    assert table["deal_value"].null_count == table.num_rows


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_a_deal_value_that_is_not_a_finite_number_is_refused(tmp_path, value):
    lake = tmp_path / "lake"
    export = tmp_path / "crm.csv"
    export.write_text(f"lead_id,outcome,occurred_at,deal_value\nL-1,converted,2026-11-20T09:00:00Z,{value}\n")
    result = backfill(export, lake)
    assert result.returncode == 2
    assert "row 0: field deal_value: rule finite" in result.stderr
    assert not list(lake.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file: expected a header row naming the columns (lead_id, outcome, occurred_at, "),
        (
            b"lead_id,outcome,occurred_at\nL-1,open,2026-11-20T09:00:00Z\nL-\xff,open,2026-11-20T09:00:00Z\n",
            "row 1: field lead_id: rule encoding: not UTF-8 text",
        ),
        (
            b"lead_id,outcome,occurred_at\nL-1,open,2026-11-20T09:00:00Z\nL-2,open,2026-11-20T09:00:00Z,x\n",
            "row 1: has 4 cell(s), the header names 3",
        ),
        (
            b"\xfflead_id,outcome,occurred_at\nL-1,open,2026-11-20T09:00:00Z\n",
            "header row: rule encoding: not UTF-8 text",
        ),
    ],
    ids=["empty", "not-utf8", "ragged", "header-not-utf8"],
)
def test_an_unreadable_csv_is_refused_naming_the_file_and_the_row(tmp_path, content, message):
    lake = tmp_path / "lake"
    export = tmp_path / "crm.csv"
    export.write_bytes(content)
    line = one_line_error(backfill(export, lake))
    assert line.startswith(f"error: {export}: {message}"), line
    assert not list(lake.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("value", "rule"), [("-1", ">= 0"), ("nan", "finite"), ("inf", "finite"), ("1e9", "at most")]
)
def test_grace_seconds_must_be_a_usable_duration(tmp_path, value, rule):
    export = tmp_path / "crm.csv"
    export.write_text("lead_id,outcome,occurred_at\nL-1,open,2026-11-20T09:00:00Z\n")
    result = run(str(export), "--lake", (tmp_path / "lake").as_uri(), f"--grace-seconds={value}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after argparse's usage line
    assert line.startswith("python -m quality.backfill: error: argument --grace-seconds: ") and rule in line
    assert not (tmp_path / "lake").exists()
