"""The defaults the documentation states are the parser's: docs/configuration.md is what `make docs` generates
now, and every "`--flag` … default X" in the README and docs/ names the value `python -m transformer` really uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transformer.cli import build_parser, markdown_config_table

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "s": 1}
_VALUE = r"`?(?P<value>[\w.]+)`?(?: (?P<unit>[KMG]iB|s)\b)?"
# "`--max_leads` (default 1000)", "`--reasons_max`, default 50", "`--sink_flush_records` records (default 5000)"
_PROSE = [
    re.compile(r"`--(?P<flag>[a-z_]+)`[^`\n]{0,12}?\(?default " + _VALUE),
    # "(`--sink_spool_max_bytes`, 1 GiB by default)"
    re.compile(r"`--(?P<flag>[a-z_]+)`, " + _VALUE + " by default"),
    # "`--sink_include_features true` (the default)"
    re.compile(r"`--(?P<flag>[a-z_]+) (?P<value>\w+)` \(the default\)(?P<unit>)"),
]


def _defaults() -> dict:
    return vars(build_parser(environ={}).parse_args([]))


def _value(text: str, unit: str | None):
    text = text.strip().strip("`")
    if text in {"—", ""}:
        return None
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return number * _UNITS.get(unit or "", 1)


def _same(documented, actual) -> bool:
    if isinstance(documented, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", documented) and actual is None:
        return True  # "`AWS_REGION`": no flag default, the environment variable is read instead
    if isinstance(documented, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return documented == float(actual)
    return documented == actual


def documented_defaults() -> list[tuple[str, str, object]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for pattern in _PROSE:
            for match in pattern.finditer(text):
                found.append((path.name, match["flag"], _value(match["value"], match["unit"])))
        for flag_cell, default_cell in _table_cells(text):
            flags = re.findall(r"`--([a-z_]+)", flag_cell)
            values = default_cell.split(", ")
            if len(flags) == len(values):
                for flag, value in zip(flags, values, strict=True):
                    unit = value.split()[-1] if value.split() and value.split()[-1] in _UNITS else None
                    found.append((path.name, flag, _value(value.split()[0] if unit else value, unit)))
    return found


def _table_cells(text: str):
    """(flag cell, default cell) of every row of every Markdown table whose header has a flag and a default column:
    `| flag | env var | default | meaning |` (README) or `| flag (env) | default | meaning |` (docs/migration.md)."""
    columns = None
    for line in text.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if columns is None:
            names = [c.split()[0] if c else "" for c in cells]
            columns = (
                (names.index("flag"), names.index("default")) if {"flag", "default"} <= set(names) else ()
            )
        elif columns and not set(line) <= set("|-: ") and len(cells) > max(columns):
            yield cells[columns[0]], cells[columns[1]]


def test_the_generated_configuration_reference_is_current():
    """docs/configuration.md is `make docs` output: regenerate it when a flag or default changes."""
    assert (ROOT / "docs" / "configuration.md").read_text() == markdown_config_table()


def test_every_default_stated_in_the_docs_is_the_parsers():
    defaults = _defaults()
    found = [(doc, flag, value) for doc, flag, value in documented_defaults() if flag in defaults]
    # The statements this test is known to read; a change to the patterns that finds none would pass silently.
    assert {
        ("reasons-and-drift.md", "reasons_max"),
        ("security.md", "max_body_bytes"),
        ("README.md", "max_leads"),
        ("data-lake.md", "sink_spool_max_bytes"),
    } <= {(doc, flag) for doc, flag, _ in found}
    wrong = [
        f"{doc}: --{flag} documented as {value!r}, parser default {defaults[flag]!r}"
        for doc, flag, value in found
        if not _same(value, defaults[flag])
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "text,flag,value",
    [
        ("(a whole number from 1 to `--reasons_max`, default 10)", "reasons_max", 10.0),
        ("at most `--sink_spool_max_bytes` (default 1 GiB) of spool", "sink_spool_max_bytes", float(1 << 30)),
        (
            "| flag | env var | default | meaning |\n|---|---|---|---|\n"
            "| `--max_leads`, `--max_body_bytes` | `MAX_LEADS`, `MAX_BODY_BYTES` | `1000`, 4 MiB | limits |",
            "max_body_bytes",
            float(4 << 20),
        ),
        (
            "| flag (env) | default | meaning |\n|---|---|---|\n| `--legacy_mode` (`LEGACY_MODE`) | `off` | … |",
            "legacy_mode",
            "off",
        ),
    ],
)
def test_the_reader_understands_each_way_a_default_is_written(tmp_path, monkeypatch, text, flag, value):
    doc = tmp_path / "doc.md"
    doc.write_text(text + "\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["DOCS"]), "DOCS", [doc])
    assert (doc.name, flag, value) in documented_defaults()
