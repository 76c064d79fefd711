"""A server's log as the JSON objects it must be: one per line, each with ts, level and msg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def json_log_lines(path: Path) -> list[dict]:
    """Every line of the log at `path`, parsed; a test fails on the first line that is not a JSON object."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    assert lines, f"{path} is empty"
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line[:300]!r}")
        assert isinstance(entry, dict), line
        assert {"ts", "level", "msg"} <= entry.keys(), line
        parsed.append(entry)
    return parsed
