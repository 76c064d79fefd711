"""Render the kustomize overlays the way `kubectl apply -k` does (the real kubectl, offline) and pick objects out."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ["dev-aws", "prod-aws", "dev-azure", "prod-azure"]
APP_NAMESPACE = "lead-scoring"
ISVC_NAME = "lead-scoring"


def kustomize(path: Path) -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(kustomize(REPO / "kustomize" / "overlays" / overlay))


def one(objects, kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def isvc_of(overlay: str) -> dict:
    return one(rendered(overlay), "InferenceService", ISVC_NAME)


def transformer_container(isvc: dict) -> dict:
    containers = isvc["spec"]["transformer"]["containers"]
    return next(c for c in containers if c["name"] == "kserve-container")


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def parse_transformer_args(container: dict):
    """The transformer's own parser (transformer/cli.py) applied to the container's args and env, defaults included."""
    import sys

    from transformer.cli import build_parser

    saved_argv = sys.argv
    sys.argv = ["transformer"]  # kserve.model_server parses sys.argv on import
    try:
        return build_parser(env_of(container)).parse_args(container.get("args", []))
    finally:
        sys.argv = saved_argv
