"""Shared fixtures: a trained artifact, and the stack as real processes on free loopback ports."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from contract.model_card import load_card
from hack.stack import start_predictor, start_transformer
from predictor.synthetic import sample_population
from predictor.train import train

ROOT = Path(__file__).resolve().parents[1]

# Tools hack/install-tools.sh put in the repository (kubectl, where the machine has none with Kustomize v5) come
# first on PATH, for the tests and the processes they start.
if (ROOT / ".tools" / "bin").is_dir():
    os.environ["PATH"] = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

# Real storage servers for the data-lake tests: the `azurite` and `moto_s3` fixtures.
pytest_plugins = ["tests.support.storage_fixtures"]


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Path:
    """The default-size artifact, trained once per test session exactly as `python -m predictor.train` does."""
    out = tmp_path_factory.mktemp("artifact")
    x, y = sample_population(300_000, seed=7)
    train(
        x, y, out, seed=7, name="lead-scoring", version=None, threads=2, rounds=600, source="synthetic:test"
    )
    return out


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory) -> Path:
    """A small booster for tests about the service around the model, not the model (trained in ~1 s)."""
    out = tmp_path_factory.mktemp("small-artifact")
    x, y = sample_population(20_000, seed=3)
    train(
        x, y, out, seed=3, name="lead-scoring", version=None, threads=2, rounds=40, source="synthetic:small"
    )
    return out


@pytest.fixture(scope="session")
def card(artifact):
    return load_card(artifact)


@pytest.fixture(scope="session")
def runtime_booster(artifact) -> xgb.Booster:
    """The booster loaded exactly the way kserve-xgbserver loads it."""
    data = (artifact / "model.ubj").read_bytes()
    return xgb.Booster(params={"nthread": 1}, model_file=bytearray(data))


def runtime_scores(booster: xgb.Booster, matrix: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(np.asarray(matrix, dtype=np.float32)))


@pytest.fixture(scope="session")
def api_key() -> str:
    return "test-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def predictor(artifact, logs_dir):
    server = start_predictor(artifact, logs_dir)
    server.wait_ready()
    yield server
    server.stop()


def _transformer(artifact, logs_dir, api_key, tmp_path_factory, **kwargs):
    spool = tmp_path_factory.mktemp("spool")
    lake = tmp_path_factory.mktemp("lake")
    extra = ["--sink_uri", lake.as_uri(), "--sink_spool_dir", str(spool), "--sink_flush_seconds", "0.5"]
    server = start_transformer(artifact, logs_dir, api_keys=f"tests:{api_key}", extra_args=extra, **kwargs)
    server.wait_ready()
    server.lake = lake
    return server


@pytest.fixture(scope="session")
def transformer_grpc(artifact, logs_dir, api_key, predictor, tmp_path_factory):
    server = _transformer(
        artifact, logs_dir, api_key, tmp_path_factory, predictor=predictor.grpc_target, protocol="grpc-v2"
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformer_rest(artifact, logs_dir, api_key, predictor, tmp_path_factory):
    server = _transformer(
        artifact,
        logs_dir,
        api_key,
        tmp_path_factory,
        predictor=f"127.0.0.1:{predictor.http_port}",
        protocol="v2",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformer_inprocess(artifact, logs_dir, api_key, tmp_path_factory):
    server = _transformer(artifact, logs_dir, api_key, tmp_path_factory)
    yield server
    server.stop()


def _refuse_reads_beside_the_repository(event: str, args: tuple) -> None:
    """The project stands alone: a test that opens a file in a folder next to the clone fails at once."""
    if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if path.startswith(_OUTSIDE) and not path.startswith(_INSIDE) and not path.startswith(_TEMP):
        raise PermissionError(
            f"tests must not read outside the repository: {path} (the project stands alone)"
        )


_INSIDE = str(ROOT) + os.sep
_OUTSIDE = str(ROOT.parent) + os.sep
_TEMP = tempfile.gettempdir() + os.sep  # a clone that lives in /tmp shares its parent with pytest's tmp_path
sys.addaudithook(_refuse_reads_beside_the_repository)
