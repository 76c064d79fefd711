"""`python -m quality.backfill` as a process: every bad row named, nothing written; a good file stored once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

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
