"""Read the small local Helm chart under terraform/modules/kserve-stack/charts the way `helm template` would, for the
few template actions it uses: `.Values.<path>` and `.Release.Namespace`, optionally piped through `quote`, `toYaml`/`nindent`;
anything else stays as `<<action>>` markers. Helm itself is not installed here; a test that meets an action this
reader does not know sees the marker and fails rather than guessing.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

_ACTION = re.compile(r"[ \t]*\n?[ \t]*\{\{-\s*(.*?)\s*-?\}\}|\{\{\s*(.*?)\s*-?\}\}", re.S)


def _lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node[part]
    return node


def _render_action(action: str, values: dict, release: dict, trimmed: bool) -> str:
    parts = [p.strip() for p in action.split("|")]
    head, filters = parts[0], parts[1:]
    to_yaml = head.startswith("toYaml ")
    if to_yaml:
        head = head[len("toYaml ") :].strip()
    if head.startswith(".Values."):
        value = _lookup(values, head[len(".Values.") :])
    elif head.startswith(".Release."):
        value = _lookup(release, head[len(".Release.") :])
    else:
        return f"<<{action}>>"
    indent = None
    quote = False
    for f in filters:
        if f == "quote":
            quote = True
        elif (m := re.fullmatch(r"nindent (\d+)", f)) is not None:
            indent = int(m.group(1))
        else:
            return f"<<{action}>>"
    text = (
        yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")
        if to_yaml
        else str(value)
    )
    if quote:
        text = '"' + text.replace('"', '\\"') + '"'
    if indent is not None:
        text = "\n" + "\n".join(" " * indent + line for line in text.splitlines())
    elif trimmed:
        text = " " + text
    return text


def render(template: str, values: dict, release: dict) -> list[dict]:
    def replace(match: re.Match) -> str:
        trimmed = match.group(1) is not None
        return _render_action(match.group(1) if trimmed else match.group(2), values, release, trimmed)

    return [d for d in yaml.safe_load_all(_ACTION.sub(replace, template)) if d]


def chart_documents(chart_dir: Path, namespace: str, overrides: dict | None = None) -> list[dict]:
    values = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    values.update(overrides or {})
    docs = []
    for path in sorted((chart_dir / "templates").glob("*.yaml")):
        docs += render(path.read_text(), values, {"Namespace": namespace})
    return docs
