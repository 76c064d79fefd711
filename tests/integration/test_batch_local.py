"""`python -m batch` end to end on local files: a generated CRM export with planted bad rows, Parquet and CSV,
one shard and several, a SIGKILLed shard re-run, and bad input that must end cleanly."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from contract.model_card import load_card
from tests.batch_export import (
    BAD_ROWS,
    PLANTED,
    crm_export,
    run_batch,
    start_batch,
    valid_rows,
    write_csv,
)

N = 2_000


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("export")
    table, x = crm_export(N)
    path = folder / "crm.parquet"
    pq.write_table(table, path, row_group_size=500)
    return path, x


def expected_scores(model: Path, x: np.ndarray) -> np.ndarray:
    """What kserve-xgbserver answers for these leads: the runtime's own DMatrix prediction."""
    booster = xgb.Booster(params={"nthread": 1}, model_file=bytearray((model / "model.ubj").read_bytes()))
    return booster.predict(xgb.DMatrix(x.astype(np.float32)))


def read_scores(output: Path) -> pa.Table:
    return pq.read_table(output / "scores").sort_by("lead_id")


def test_export_is_scored_and_every_planted_problem_is_rejected(export, small_artifact, tmp_path):
    source, x = export
    out = tmp_path / "out"
    result = run_batch("--input", str(source), "--output", str(out), "--model", str(small_artifact))
    assert result.returncode == 0, result.stderr
    card = load_card(small_artifact)

    scores = read_scores(out)
    ok = valid_rows(N)
    assert scores.column("lead_id").to_pylist() == [f"L{i:010d}" for i in np.flatnonzero(ok)]
    expected = expected_scores(small_artifact, x[ok])
    np.testing.assert_allclose(scores.column("score").to_numpy(), expected, atol=1e-6)
    buckets = card.tier_map.buckets(expected)
    assert scores.column("bucket").to_numpy().tolist() == buckets.tolist()
    assert scores.column("tier").to_pylist() == card.tier_map.tiers(buckets).tolist()
    assert set(scores.column("model_version").to_pylist()) == {card.version}

    rejects = pq.read_table(out / "rejects").to_pylist()
    assert sorted((r["row"], r["field"], r["rule"]) for r in rejects) == sorted(
        (r, f, rule) for r, f, rule, _ in PLANTED
    )
    by_cell = {(r["row"], r["field"]): r for r in rejects}
    assert by_cell[(3, "employee_count")]["message"] == "row 3: employee_count must be >= 1, got 0"
    assert by_cell[(10, "industry")]["lead_id"] == "L0000000010"
    assert by_cell[(40, "pages_per_visit")]["value"] == '"inf"'
    assert all(r["source"] == "crm.parquet" for r in rejects)

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows_read"] == N
    assert manifest["rows_rejected"] == len(BAD_ROWS)
    assert manifest["rows_scored"] == N - len(BAD_ROWS) == sum(manifest["tiers"].values())
    assert manifest["problems"] == len(PLANTED)
    assert manifest["model_version"] == card.version
    tiers = dict(zip(*np.unique(scores.column("tier").to_pylist(), return_counts=True), strict=True))
    assert manifest["tiers"] == {t: int(tiers.get(t, 0)) for t in "ABCDE"}
    shard_line = json.loads(result.stdout.splitlines()[0])
    assert shard_line["event"] == "shard_done" and shard_line["rows_rejected"] == len(BAD_ROWS)


def test_reject_rows_count_from_the_start_of_the_file_in_every_window(export, small_artifact, tmp_path):
    """The planted rows (3 to 70) fall in several 16-row windows: each reject still names its row in the file, not
    its row within the window, so an operator can find it in the export."""
    source, _ = export
    out = tmp_path / "out"
    result = run_batch(
        "--input", str(source), "--output", str(out), "--model", str(small_artifact), "--window-rows", "16"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert sorted((r["row"], r["field"], r["rule"]) for r in rejects) == sorted(
        (r, f, rule) for r, f, rule, _ in PLANTED
    )
    assert {r["lead_id"] for r in rejects if r["row"] == 10} == {"L0000000010"}


def test_csv_export_gives_the_same_answers_and_rejects_unparsable_cells(export, small_artifact, tmp_path):
    source, x = export
    table = pq.read_table(source)
    csv_path = tmp_path / "crm.csv"
    write_csv(table, csv_path)
    with csv_path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    header = lines[0]
    # Row 100 (line 101): a word where a count belongs, and "yes" for a flag; both reject the row as `type`.
    lines[101][header.index("touches_30d")] = "many"
    lines[101][header.index("demo_requested")] = "yes"
    with csv_path.open("w", newline="") as handle:
        csv.writer(handle).writerows(lines)

    out = tmp_path / "out"
    result = run_batch("--input", str(csv_path), "--output", str(out), "--model", str(small_artifact))
    assert result.returncode == 0, result.stderr
    rejects = pq.read_table(out / "rejects").to_pylist()
    type_rejects = sorted(
        (r["row"], r["field"], r["rule"], r["value"]) for r in rejects if r["rule"] == "type"
    )
    assert type_rejects == [(100, "demo_requested", "type", '"yes"'), (100, "touches_30d", "type", '"many"')]
    ok = valid_rows(N)
    ok[100] = False
    scores = read_scores(out)
    assert scores.num_rows == ok.sum()
    np.testing.assert_allclose(
        scores.column("score").to_numpy(), expected_scores(small_artifact, x[ok]), atol=1e-6
    )


def test_shards_cover_every_row_once_and_the_last_writes_the_manifest(export, small_artifact, tmp_path):
    source, _ = export
    out = tmp_path / "out"
    for index in range(3):
        assert not (out / "_manifest.json").exists()
        result = run_batch(
            "--input",
            str(source),
            "--output",
            str(out),
            "--model",
            str(small_artifact),
            env={"JOB_COMPLETION_INDEX": str(index), "BATCH_SHARD_COUNT": "3"},
        )
        assert result.returncode == 0, result.stderr
    ids = pq.read_table(out / "scores").column("lead_id").to_pylist()
    assert sorted(ids) == [f"L{i:010d}" for i in np.flatnonzero(valid_rows(N))]
    assert sorted(p.name for p in (out / "scores").iterdir()) == [
        f"part-0000{i}-of-00003.parquet" for i in range(3)
    ]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["shard_count"] == 3 and [s["shard"] for s in manifest["shards"]] == [0, 1, 2]
    assert manifest["rows_read"] == N and manifest["rows_rejected"] == len(BAD_ROWS)

    again = run_batch(
        "--input",
        str(source),
        "--output",
        str(out),
        "--model",
        str(small_artifact),
        "--shard-index",
        "1",
        "--shard-count",
        "3",
    )
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[0])["event"] == "shard_skipped"
    other = run_batch(
        "--input", str(source), "--output", str(out), "--model", str(small_artifact), "--shard-count", "2"
    )
    assert other.returncode == 2 and "run with 3 shards" in other.stderr


def test_a_killed_shard_rerun_leaves_no_duplicates_and_no_gaps(small_artifact, tmp_path):
    rows = 400_000
    table, _ = crm_export(rows, seed=9, planted=False)
    source = tmp_path / "big.parquet"
    pq.write_table(table, source, row_group_size=20_000)
    out, work = tmp_path / "out", tmp_path / "work"
    child = start_batch(
        "--input", str(source), "--output", str(out), "--model", str(small_artifact),
        "--shard-count", "2", "--shard-index", "0", "--window-rows", "500", "--work-dir", str(work),
        text=False,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    # Kill it once the shard's scores file has its first row group (131,072 of its 200,000 rows) in the work
    # folder: mid-run, nothing committed yet.
    while not any(p.stat().st_size > 4096 for p in work.glob("batch-*/scores.parquet")):
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert not (out / "scores").exists() or not list((out / "scores").iterdir())

    for index in (0, 1):
        result = run_batch(
            "--input",
            str(source),
            "--output",
            str(out),
            "--model",
            str(small_artifact),
            "--shard-count",
            "2",
            "--shard-index",
            str(index),
        )
        assert result.returncode == 0, result.stderr
    ids = pq.read_table(out / "scores").column("lead_id").to_pylist()
    assert len(ids) == rows and len(set(ids)) == rows
    assert json.loads((out / "_manifest.json").read_text())["rows_scored"] == rows


def _assert_clean_failure(result: subprocess.CompletedProcess, out: Path, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[0]
    assert line.startswith("batch: ")
    for needle in needles:
        assert needle in result.stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], "a failed run wrote output"


def test_unreadable_file(small_artifact, tmp_path):
    bad = tmp_path / "crm.parquet"
    bad.write_bytes(b"this is not parquet at all" * 100)
    out = tmp_path / "out"
    result = run_batch("--input", str(bad), "--output", str(out), "--model", str(small_artifact))
    _assert_clean_failure(result, out, "cannot read", "as Parquet")


def test_missing_input(small_artifact, tmp_path):
    out = tmp_path / "out"
    result = run_batch(
        "--input", str(tmp_path / "nowhere"), "--output", str(out), "--model", str(small_artifact)
    )
    _assert_clean_failure(result, out, "does not exist")


def test_wrong_columns(small_artifact, tmp_path):
    table, _ = crm_export(50, planted=False)
    source = tmp_path / "crm.parquet"
    pq.write_table(
        table.drop_columns(["industry", "lead_status"]).rename_columns(
            [
                "id" if c == "lead_id" else c
                for c in table.drop_columns(["industry", "lead_status"]).column_names
            ]
        ),
        source,
    )
    out = tmp_path / "out"
    result = run_batch("--input", str(source), "--output", str(out), "--model", str(small_artifact))
    _assert_clean_failure(result, out, "missing column(s) lead_id, industry, lead_status")


def test_wrong_types(small_artifact, tmp_path):
    table, _ = crm_export(50, planted=False)
    names = pa.array(["software"] * 50)
    source = tmp_path / "crm.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("industry"), "industry", names), source)
    out = tmp_path / "out"
    result = run_batch("--input", str(source), "--output", str(out), "--model", str(small_artifact))
    _assert_clean_failure(result, out, "wrong column type(s): industry is string")


def test_text_column_in_csv_stops_the_run(small_artifact, tmp_path):
    table, _ = crm_export(50, planted=False)
    source = tmp_path / "crm.csv"
    write_csv(
        table.set_column(table.schema.get_field_index("industry"), "industry", pa.array(["software"] * 50)),
        source,
    )
    out = tmp_path / "out"
    result = run_batch("--input", str(source), "--output", str(out), "--model", str(small_artifact))
    _assert_clean_failure(result, out, "column industry holds text ('software'")


@pytest.mark.parametrize("kind", ["empty folder", "empty csv", "header only", "parquet without rows"])
def test_empty_input(small_artifact, tmp_path, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    table, _ = crm_export(5, planted=False)
    if kind == "empty csv":
        (folder / "crm.csv").write_text("")
    elif kind == "header only":
        (folder / "crm.csv").write_text(",".join(table.column_names) + "\n")
    elif kind == "parquet without rows":
        pq.write_table(table.slice(0, 0), folder / "crm.parquet")
    out = tmp_path / "out"
    result = run_batch("--input", str(folder), "--output", str(out), "--model", str(small_artifact))
    needle = "holds no .parquet or .csv files" if kind == "empty folder" else "holds no leads"
    _assert_clean_failure(result, out, needle)


def test_huge_row_in_csv(small_artifact, tmp_path):
    table, _ = crm_export(5, planted=False)
    source = tmp_path / "crm.csv"
    write_csv(table, source)
    lines = source.read_text().splitlines(keepends=True)
    # A 9 MiB line (a blob pasted into a cell) between ordinary rows.
    source.write_text("".join(lines[:3]) + "x" * (9 << 20) + "\n" + "".join(lines[3:]))
    out = tmp_path / "out"
    result = run_batch("--input", str(source), "--output", str(out), "--model", str(small_artifact))
    _assert_clean_failure(result, out, "CSV parse error: Expected 51 columns, got 1")
    assert "xxxx" not in result.stderr and len(result.stderr) < 400  # the cell itself is not echoed


def test_bad_model_and_arguments(export, tmp_path):
    source, _ = export
    out = tmp_path / "out"
    result = run_batch("--input", str(source), "--output", str(out), "--model", str(tmp_path))
    _assert_clean_failure(result, out, "cannot load the model")
    result = run_batch(
        "--input",
        str(source),
        "--output",
        str(out),
        "--model",
        str(tmp_path),
        "--shard-index",
        "4",
        "--shard-count",
        "2",
    )
    assert result.returncode == 2 and "--shard-index must be in 0..1" in result.stderr
    assert "Traceback" not in result.stderr and math.isfinite(0)


def test_unusable_work_folder(export, small_artifact, tmp_path):
    source, _ = export
    blocker = tmp_path / "work"
    blocker.write_text("a file where the work folder should be")
    out = tmp_path / "out"
    result = run_batch(
        "--input",
        str(source),
        "--output",
        str(out),
        "--model",
        str(small_artifact),
        "--work-dir",
        str(blocker / "batch"),
    )
    _assert_clean_failure(result, out, "cannot use the work folder")


def test_output_inside_the_input_is_refused(small_artifact, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    table, _ = crm_export(20, planted=False)
    pq.write_table(table, folder / "crm.parquet")
    out = folder / "scored"
    result = run_batch("--input", str(folder), "--output", str(out), "--model", str(small_artifact))
    _assert_clean_failure(result, out, "lies inside the input")


def test_a_rerun_over_a_changed_input_is_refused(small_artifact, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    table, _ = crm_export(300, planted=False)
    pq.write_table(table.slice(0, 200), folder / "a.parquet")
    out = tmp_path / "out"
    first = run_batch(
        "--input",
        str(folder),
        "--output",
        str(out),
        "--model",
        str(small_artifact),
        "--shard-count",
        "2",
        "--shard-index",
        "0",
    )
    assert first.returncode == 0, first.stderr
    pq.write_table(table.slice(200, 100), folder / "b.parquet")  # the export changed between two pods' starts
    second = run_batch(
        "--input",
        str(folder),
        "--output",
        str(out),
        "--model",
        str(small_artifact),
        "--shard-count",
        "2",
        "--shard-index",
        "1",
    )
    assert second.returncode == 2 and "scored from a different input" in second.stderr
    assert not (out / "_shards" / "part-00001-of-00002.json").exists()
