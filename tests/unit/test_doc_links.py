"""Every relative link in the README and docs/ leads somewhere: the file exists, and a `#section` is a heading of it
(GitHub's anchors: lower case, punctuation dropped, spaces to hyphens)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def anchors(document: Path) -> set[str]:
    found = set()
    for line in FENCE.sub("", document.read_text()).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text)))
    return found


def broken_links() -> list[str]:
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(FENCE.sub("", document.read_text())):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto: — not ours to resolve offline
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            where = f"{document.relative_to(ROOT)} → {target}"
            if not linked.exists():
                broken.append(f"{where}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where}: no such section")
    return broken


def test_every_relative_link_resolves():
    assert broken_links() == []


def test_the_check_sees_a_missing_file_and_a_missing_section(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("# A `code` title: here\n\n[ok](#a-code-title-here) [gone](nope.md) [bad](#nope)\n")
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "DOCUMENTS", [page])
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert broken_links() == ["page.md → nope.md: no such file", "page.md → #nope: no such section"]
