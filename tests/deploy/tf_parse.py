"""Terraform files as python-hcl2 reads them, with the quoting python-hcl2 8 keeps stripped off."""

from __future__ import annotations

import io
from pathlib import Path

import hcl2


def _unquote(value):
    """python-hcl2 8 keeps the quotes of literals and labels; drop them so tests compare plain text."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        # "__is_block__"/"__comments__" are python-hcl2 bookkeeping, not Terraform content.
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


def parse_text(text: str) -> dict:
    return _unquote(hcl2.load(io.StringIO(text)))


def parse_dir(directory: Path) -> dict:
    """Merge every top-level block list of the .tf files of one module directory."""
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        for key, blocks in parse_text(path.read_text()).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def blocks(parsed: dict, kind: str) -> dict[str, dict]:
    """{label: body} for single-label blocks (variable, output, module)."""
    return {name: body for block in parsed.get(kind, []) for name, body in block.items()}


def typed_blocks(parsed: dict, kind: str, type_name: str) -> dict[str, dict]:
    """{name: body} for two-label blocks (resource/data) of one type."""
    found = {}
    for block in parsed.get(kind, []):
        for t, named in block.items():
            if t == type_name:
                found.update(named)
    return found
