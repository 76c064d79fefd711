"""`python -m batch` on the inputs an auditor found mishandled, end to end with real files (and moto S3 where the
path differs): gzipped CSV, Spark's in-progress folders, operator mistakes that must exit 2, CSV cells that only look
like missing or like numbers, lead ids the API refuses, and an output holding data no marker names."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch_export import crm_export, run_batch, write_csv

N = 200


def _run(source, out, model, *extra, env=None):
    return run_batch("--input", str(source), "--output", str(out), "--model", str(model), *extra, env=env)


def _ok(result) -> None:
    assert result.returncode == 0, result.stderr


def _stopped(result, *needles: str) -> str:
    """Exit 2, one `batch: …` line naming what to fix, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batch: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _scores(out: Path) -> pa.Table:
    return pq.read_table(out / "scores").sort_by("lead_id")


def _rejects(out: Path) -> list[dict]:
    return sorted(pq.read_table(out / "rejects").to_pylist(), key=lambda r: (r["row"], r["field"]))


def _csv_rows(table: pa.Table) -> tuple[list[str], list[list[str]]]:
    sink = io.BytesIO()
    pa.csv.write_csv(table, sink)
    lines = list(csv.reader(io.StringIO(sink.getvalue().decode())))
    return lines[0], lines[1:]


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return crm_export(N, seed=31, planted=False)[0]


# 1. gzipped CSV


def test_csv_gz_is_scored_like_the_plain_csv_as_a_file_and_in_a_folder(table, small_artifact, tmp_path):
    plain = tmp_path / "crm.csv"
    write_csv(table, plain)
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "crm.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    _ok(_run(plain, tmp_path / "plain", small_artifact))
    _ok(_run(folder / "crm.csv.gz", tmp_path / "file", small_artifact))
    _ok(_run(folder, tmp_path / "folder", small_artifact))
    expected = _scores(tmp_path / "plain")
    assert expected.num_rows == N
    for out in ("file", "folder"):
        got = _scores(tmp_path / out)
        assert got.column("lead_id").equals(expected.column("lead_id"))
        assert got.column("score").equals(expected.column("score"))


def test_csv_gz_on_s3_and_spark_attempt_folders_are_skipped(moto_s3, table, small_artifact):
    s3 = moto_s3.client()
    for bucket in ("crm", "lake"):
        s3.create_bucket(Bucket=bucket)
    sink = io.BytesIO()
    pa.csv.write_csv(table, sink)
    s3.put_object(Bucket="crm", Key="nightly/crm.csv.gz", Body=gzip.compress(sink.getvalue()))
    # What a Spark job leaves while (or after failing) writing: attempt files below _temporary/, and a hidden folder.
    other = io.BytesIO()
    pq.write_table(crm_export(50, seed=32, planted=False, first_id=N)[0], other)
    s3.put_object(Bucket="crm", Key="nightly/_temporary/0/part-00000.parquet", Body=other.getvalue())
    s3.put_object(Bucket="crm", Key="nightly/.hidden/part.parquet", Body=other.getvalue())
    result = run_batch(
        "--input",
        "s3://crm/nightly/",
        "--output",
        "s3://lake/run/",
        "--model",
        str(small_artifact),
        env={"AWS_ENDPOINT_URL": moto_s3.endpoint_url},
    )
    _ok(result)
    body = s3.get_object(Bucket="lake", Key="run/scores/part-00000-of-00001.parquet")["Body"].read()
    ids = pq.read_table(io.BytesIO(body)).column("lead_id").to_pylist()
    assert sorted(ids) == [f"L{i:010d}" for i in range(N)]


def test_files_below_underscore_and_dot_folders_are_not_input(table, small_artifact, tmp_path):
    folder = tmp_path / "exports"
    for sub in ("2026/12", "_temporary/0", ".hidden", "2026/_tmp"):
        (folder / sub).mkdir(parents=True)
    pq.write_table(table, folder / "2026" / "12" / "part-00000.parquet")
    stray = crm_export(30, seed=33, planted=False, first_id=N)[0]
    for sub in ("_temporary/0", ".hidden", "2026/_tmp"):
        pq.write_table(stray, folder / sub / "part-00000.parquet")
    out = tmp_path / "out"
    _ok(_run(folder, out, small_artifact))
    assert _scores(out).column("lead_id").to_pylist() == [f"L{i:010d}" for i in range(N)]


# 3. operator mistakes exit 2


def test_a_duplicated_column_stops_the_run_csv_and_parquet(table, small_artifact, tmp_path):
    doubled = table.append_column("lead_id", table.column("lead_id")).append_column(
        "industry", table.column("industry")
    )
    pq.write_table(doubled, tmp_path / "crm.parquet")
    write_csv(doubled, tmp_path / "crm.csv")
    for name in ("crm.parquet", "crm.csv"):
        result = _run(tmp_path / name, tmp_path / f"out-{name}", small_artifact)
        _stopped(result, name, "column(s) lead_id, industry appear more than once")
        assert not (tmp_path / f"out-{name}").exists()


def test_a_float16_feature_is_scored_like_its_float64_values(table, small_artifact, tmp_path):
    index = table.schema.get_field_index("annual_revenue_musd")
    half = table.column(index).cast(pa.float16())
    pq.write_table(table.set_column(index, "annual_revenue_musd", half), tmp_path / "half.parquet")
    pq.write_table(
        table.set_column(index, "annual_revenue_musd", half.cast(pa.float64())), tmp_path / "wide.parquet"
    )
    _ok(_run(tmp_path / "half.parquet", tmp_path / "half", small_artifact))
    _ok(_run(tmp_path / "wide.parquet", tmp_path / "wide", small_artifact))
    assert _scores(tmp_path / "half").column("score").equals(_scores(tmp_path / "wide").column("score"))


@pytest.mark.parametrize(
    "name", ["BATCH_REASONS", "BATCH_WINDOW_ROWS", "BATCH_SHARD_COUNT", "JOB_COMPLETION_INDEX"]
)
def test_a_non_number_in_an_integer_variable_exits_2(table, small_artifact, tmp_path, name):
    pq.write_table(table, tmp_path / "crm.parquet")
    result = _run(tmp_path / "crm.parquet", tmp_path / "out", small_artifact, env={name: "x"})
    _stopped(result, f"environment variable {name} must be a whole number, got 'x'")


@pytest.mark.parametrize("junk", [b"{}", b"not json", b'{"shard": "0"}', b"[1, 2]"])
def test_junk_in_the_markers_folder_stops_the_run(table, small_artifact, tmp_path, junk):
    pq.write_table(table, tmp_path / "crm.parquet")
    out = tmp_path / "out"
    (out / "_shards").mkdir(parents=True)
    (out / "_shards" / "notes.json").write_bytes(junk)
    result = _run(tmp_path / "crm.parquet", out, small_artifact)
    _stopped(result, f"{out}/_shards/notes.json is not a shard marker")
    assert not (out / "scores").exists()


# 4. and 5. CSV cells


def test_only_an_empty_cell_is_missing_and_numbers_are_ascii(table, small_artifact, tmp_path):
    header, rows = _csv_rows(table)
    optional, required = header.index("annual_revenue_musd"), header.index("employee_count")
    words = ["nan", "NaN", "NA", "N/A", "NULL", "null", "#N/A", "n/a"]
    for row, word in enumerate(words):
        rows[row][optional] = word  # an optional feature: a type reject, not silently missing
    for row, word in enumerate(["NA", "null", "N/A", "nan"], start=20):
        rows[row][0] = word  # lead ids: kept as ids
    rows[30][required] = "١٢"  # Arabic-Indic 12
    rows[31][required] = "1_000"
    rows[32][required] = "many"  # a bad required cell: one reject, not also `required`
    rows[33][optional] = ""  # empty: missing, and this feature may be missing
    rows[34][required] = ""  # empty in a required feature: `required`
    source = tmp_path / "crm.csv"
    _write_rows(source, header, rows)
    out = tmp_path / "out"
    _ok(_run(source, out, small_artifact))

    rejects = [(r["row"], r["field"], r["rule"], r["value"]) for r in _rejects(out)]
    expected = [(row, "annual_revenue_musd", "type", json.dumps(word)) for row, word in enumerate(words)]
    expected += [
        (30, "employee_count", "type", json.dumps("١٢")),
        (31, "employee_count", "type", '"1_000"'),
        (32, "employee_count", "type", '"many"'),
        (34, "employee_count", "required", None),
    ]
    assert rejects == expected
    by_row = {r["row"]: r for r in _rejects(out)}
    assert by_row[32]["message"] == "row 32: employee_count must be a number, true/false or empty, got 'many'"
    ids = set(_scores(out).column("lead_id").to_pylist())
    assert {"NA", "null", "N/A", "nan"} <= ids and f"L{33:010d}" in ids
    assert len(ids) == N - len(words) - 4


# 6. lead ids


def test_ids_the_api_refuses_are_rejected_and_duplicates_are_scored_row_by_row(
    table, small_artifact, tmp_path
):
    header, rows = _csv_rows(table)
    bad = {1: "a\x01b", 2: "a\tb", 3: "two\nlines", 4: "x" * 10_000, 5: ""}
    for row, value in bad.items():
        rows[row][0] = value
    rows[6][0] = " "  # printable: contract/lead_ids.py (and so the API) takes it
    rows[7][0] = rows[8][0]  # the same id in two rows
    rows[9][0] = "é-ünïcode"
    source = tmp_path / "crm.csv"
    _write_rows(source, header, rows)
    out = tmp_path / "out"
    _ok(_run(source, out, small_artifact))
    rejects = _rejects(out)
    assert [(r["row"], r["field"], r["rule"]) for r in rejects] == [
        (1, "lead_id", "printable"),
        (2, "lead_id", "printable"),
        (3, "lead_id", "printable"),
        (4, "lead_id", "length"),
        (5, "lead_id", "required"),
    ]
    assert rejects[0]["message"] == (
        "row 1: lead_id must be a string of 1 to 128 printable characters, got control or non-printable characters"
    )
    assert rejects[0]["value"] == json.dumps("a\\x01b") and rejects[3]["value"] == json.dumps("x" * 40 + "…")
    assert all(r["lead_id"] is None for r in rejects)  # never the refused id itself
    ids = _scores(out).column("lead_id").to_pylist()
    assert len(ids) == N - len(bad)
    assert ids.count(rows[8][0]) == 2 and " " in ids and "é-ünïcode" in ids


# 10. data without a marker, options mixed in one output


def test_a_data_file_no_marker_names_is_refused_unless_this_run_wrote_it(small_artifact, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(crm_export(50, seed=34, planted=False)[0], a)
    pq.write_table(crm_export(10, seed=35, planted=False, first_id=1000)[0], b)
    out = tmp_path / "out"
    _ok(_run(a, out, small_artifact))
    # A pod killed between its puts: the data files are there, the marker (and manifest) not.
    for name in ("_shards", "_manifest.json"):
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    shutil.rmtree(out / "rejects")

    line = _stopped(
        _run(b, out, small_artifact), f"{out}/scores/part-00000-of-00001.parquet has no shard marker"
    )
    assert "use a new output folder" in line
    assert not (out / "_shards").exists() and not (out / "_manifest.json").exists()

    # The same run again: its own leftovers are what it would write; kept, completed, every lead once.
    _ok(_run(a, out, small_artifact))
    assert _scores(out).num_rows == 50
    assert json.loads((out / "_manifest.json").read_text())["rows_scored"] == 50

    # Another shard count's leftovers are another run's data too.
    stray = out / "scores" / "part-00001-of-00002.parquet"
    shutil.copy(out / "scores" / "part-00000-of-00001.parquet", stray)
    other = tmp_path / "other"
    shutil.copytree(out, other)
    shutil.rmtree(other / "_shards")
    (other / "_manifest.json").unlink()
    _stopped(_run(a, other, small_artifact), "part-00001-of-00002.parquet has no shard marker")


def test_reasons_and_no_reasons_do_not_mix_in_one_output(small_artifact, tmp_path):
    source = tmp_path / "crm.parquet"
    pq.write_table(crm_export(60, seed=36, planted=False)[0], source, row_group_size=30)
    out = tmp_path / "out"
    _ok(_run(source, out, small_artifact, "--shard-count", "2", "--shard-index", "0", "--reasons", "3"))
    for extra in ([], ["--reasons", "2"]):
        result = _run(source, out, small_artifact, "--shard-count", "2", "--shard-index", "1", *extra)
        reasons = extra[1] if extra else "0"
        _stopped(result, f"holds shards scored with --reasons 3, this run has --reasons {reasons}")
    assert not (out / "_shards" / "part-00001-of-00002.json").exists()
    _ok(_run(source, out, small_artifact, "--shard-count", "2", "--shard-index", "1", "--reasons", "3"))
    scores = _scores(out)
    assert scores.num_rows == 60 and "reasons" in scores.column_names


def test_a_csv_larger_than_a_block_with_line_breaks_in_quoted_cells_is_scored(small_artifact, tmp_path):
    """A notes column with a line break in its quoted cells: the CSV scored while it fit in one 8 MiB block, and
    stopped with "Expected 52 columns, got 1" once it did not."""
    table, _ = crm_export(50_000, seed=61, planted=False)
    notes = pa.array([f"call back\nnext week, lead {i}" for i in range(table.num_rows)])
    source = tmp_path / "crm.csv"
    write_csv(table.append_column("notes", notes), source)
    assert source.stat().st_size > 8 << 20
    out = tmp_path / "out"
    _ok(_run(source, out, small_artifact))
    assert _scores(out).num_rows == table.num_rows


def test_a_run_leaves_another_runs_manifest_in_the_shared_work_folder_alone(table, small_artifact, tmp_path):
    """Every run wrote its manifest to <work dir>/manifest-<shards>.json and deleted it after the upload: two local
    runs with the default /tmp and one shard each overwrote or deleted each other's (helper audit)."""
    source = tmp_path / "crm.parquet"
    pq.write_table(table, source)
    work = tmp_path / "work"
    work.mkdir()
    in_flight = work / "manifest-1.json"  # the name another run, still uploading, used
    in_flight.write_text('{"run": "the other one"}')
    out = tmp_path / "out"
    _ok(_run(source, out, small_artifact, "--work-dir", str(work)))
    assert in_flight.read_text() == '{"run": "the other one"}'
    assert json.loads((out / "_manifest.json").read_text())["shard_count"] == 1
    assert sorted(p.name for p in work.iterdir()) == ["manifest-1.json"]  # its own scratch files are gone


def test_local_paths_in_errors_keep_their_leading_slash(table, small_artifact, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "crm.parquet").write_bytes(b"not parquet" * 100)
    line = _stopped(_run(folder, tmp_path / "out", small_artifact))
    assert line.startswith(f"batch: cannot read {folder}/crm.parquet as Parquet") and str(folder).startswith(
        "/"
    )
