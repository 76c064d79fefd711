"""The README's folder table is the map a newcomer reads first: every tracked top-level folder has a row, and the
rows of `hack/` and `kustomize/` name every script and component there is."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def folder_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w.-]+)/` \| (.+) \|$", text, re.M)}


def tracked(path: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", path], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()


def unnamed(row: str, names: set[str]) -> list[str]:
    return sorted(name for name in names if f"`{name}`" not in row and f"`{name}/`" not in row)


def test_every_top_level_folder_has_a_row():
    folders = {p.split("/")[0] for p in tracked(".") if "/" in p and not p.startswith(".")}
    assert sorted(folders - set(folder_rows())) == []


def test_the_hack_row_names_every_script():
    entries = {p.split("/")[1] for p in tracked("hack") if not p.endswith("__init__.py")}
    assert unnamed(folder_rows()["hack"], entries) == []


def test_the_kustomize_row_names_every_component():
    components = {p.split("/")[2] for p in tracked("kustomize/components")}
    assert unnamed(folder_rows()["kustomize"], components) == []


def test_unnamed_sees_a_missing_entry():
    assert unnamed("`serve.py`, `bench_peers/`", {"serve.py", "bench_peers", "batch"}) == ["batch"]
