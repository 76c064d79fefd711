"""The architecture, enforced: the contract and the domain import no serving framework; training imports no serving
code; nothing in the repository points at files beside the clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("kserve", "fastapi", "starlette", "grpc", "grpc_interceptor", "uvicorn")
DOMAIN = [
    "contract.features",
    "contract.validation",
    "contract.model_card",
    "contract.tiers",
    "transformer.scoring",
    "transformer.codec",
    "transformer.auth",
    "transformer.coalesce",
    "transformer.errors",
    "transformer.metrics",
    "transformer.logs",
    "transformer.request_ids",
    "transformer.sink",
    "contract.outcomes",
    "contract.measures",
    "transformer.outcome_intake",
    "quality.report",
    "quality.backfill",
    "quality.training_set",
]


def loaded_after_import(modules: list[str]) -> set[str]:
    """Top-level packages in sys.modules after importing `modules` in a fresh interpreter (transitive imports count)."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout))


def test_contract_and_domain_import_no_serving_framework():
    assert loaded_after_import(DOMAIN) & set(FRAMEWORKS) == set()


def test_batch_scoring_imports_no_serving_framework():
    """Batch scoring reuses the contract, the booster and the lake writers, never the online server."""
    assert loaded_after_import(["batch.cli", "batch.run"]) & set(FRAMEWORKS) == set()


def test_training_and_the_stand_in_data_import_no_transformer_code():
    loaded = loaded_after_import(["predictor.train", "predictor.synthetic"])
    assert "transformer" not in loaded and loaded & set(FRAMEWORKS) == set()


@pytest.mark.parametrize(
    "package", ["contract", "transformer", "predictor", "batch", "quality", "hack", "tests"]
)
def test_no_source_points_beside_the_clone(package):
    """The workspace's reference folder beside the clone is not part of the project: a clone has nothing beside it."""
    # Built at run time so that this file does not itself match.
    needles = (".." + "/shared", "shared" + "/reference", "LEAD_SCORING_" + "REFERENCE_DIR")
    this = Path(__file__).resolve()
    for path in (ROOT / package).rglob("*"):
        if path.suffix in {".py", ".sh", ".yaml", ".yml", ""} and path.is_file() and path.resolve() != this:
            text = path.read_text(errors="replace")
            assert not any(n in text for n in needles), (
                f"{path.relative_to(ROOT)} reads outside the repository"
            )
    for name in ("Makefile", ".ci/run", "pyproject.toml"):
        assert not any(n in (ROOT / name).read_text() for n in needles), name
