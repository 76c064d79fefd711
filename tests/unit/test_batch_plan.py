"""The work plan: files and Parquet row groups in one deterministic order, shards that partition it exactly, and a
fingerprint that changes when the input does."""

from __future__ import annotations

import os

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from batch.errors import InputError
from batch.inputs import plan_input, read_unit
from batch.storage import Location, StorageOptions
from tests.batch_export import crm_export


@pytest.fixture
def folder(tmp_path):
    table, _ = crm_export(500, planted=False)
    (tmp_path / "2026" / "12").mkdir(parents=True)
    pq.write_table(table.slice(0, 300), tmp_path / "2026" / "12" / "a.parquet", row_group_size=100)
    pq.write_table(table.slice(300, 150), tmp_path / "b.parquet", row_group_size=100)
    pacsv.write_csv(table.slice(450, 50), tmp_path / "c.csv")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".b.parquet.crc").write_text("")
    (tmp_path / "README.txt").write_text("not input")
    return tmp_path


def test_units_are_row_groups_and_whole_csv_files_in_name_order(folder):
    plan = plan_input(Location(str(folder), StorageOptions()))
    assert [(u.key, u.row_group, u.first_row, u.rows) for u in plan.units] == [
        ("2026/12/a.parquet", 0, 0, 100),
        ("2026/12/a.parquet", 1, 100, 100),
        ("2026/12/a.parquet", 2, 200, 100),
        ("b.parquet", 0, 0, 100),
        ("b.parquet", 1, 100, 50),
        ("c.csv", -1, 0, -1),
    ]


@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_shards_partition_the_rows(folder, count):
    location = Location(str(folder), StorageOptions())
    plan = plan_input(location)
    seen = []
    for index in range(count):
        for unit in plan.shard(index, count):
            for batch in read_unit(location, unit, window_rows=64):
                seen.extend(batch.column("lead_id").to_pylist())
    assert sorted(seen) == [f"L{i:010d}" for i in range(500)]


def test_fingerprint_follows_the_input(folder):
    location = Location(str(folder), StorageOptions())
    before = plan_input(location).fingerprint
    assert plan_input(location).fingerprint == before
    table, _ = crm_export(10, planted=False)
    pq.write_table(table, folder / "d.parquet")
    assert plan_input(location).fingerprint != before


def test_fingerprint_follows_each_files_identity_not_only_its_sizes(folder):
    """Touching a file (a rewrite with the same bytes count) or rewriting a Parquet footer changes the plan."""
    location = Location(str(folder), StorageOptions())
    before = plan_input(location)
    stat = (folder / "c.csv").stat()
    os.utime(folder / "c.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000))
    touched = plan_input(location)
    assert [(u.key, u.rows, u.size) for u in touched.units] == [(u.key, u.rows, u.size) for u in before.units]
    assert touched.fingerprint != before.fingerprint
    parquet = folder / "b.parquet"
    table, stat = pq.read_table(parquet), parquet.stat()
    pq.write_table(table.replace_schema_metadata({"exported_by": "crm v2"}), parquet, row_group_size=100)
    os.utime(parquet, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the footer differs
    assert plan_input(location).fingerprint != touched.fingerprint


def test_a_single_file_is_an_input_too(folder):
    plan = plan_input(Location(str(folder / "b.parquet"), StorageOptions()))
    assert [(u.key, u.row_group) for u in plan.units] == [("", 0), ("", 1)]


def test_a_folder_without_exports_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(InputError, match="holds no .parquet or .csv files"):
        plan_input(Location(str(tmp_path), StorageOptions()))
