"""Shared fixtures: a trained artifact, and the stack as real processes on free loopback ports."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from hack.stack import start_predictor, start_transformer
from predictor.synthetic import sample_population
from predictor.train import train
from transformer.model_card import load_card

ROOT = Path(__file__).resolve().parents[1]

# Real storage servers for the data-lake tests: the `azurite` and `moto_s3` fixtures.
pytest_plugins = ["tests.support.storage_fixtures"]


def reference_dir() -> Path:
    """../shared/reference, or LEAD_SCORING_REFERENCE_DIR: read in place, never copied into the project."""
    return Path(os.environ.get("LEAD_SCORING_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Path:
    """The default-size artifact, trained once per test session exactly as `python -m predictor.train` does."""
    out = tmp_path_factory.mktemp("artifact")
    x, y = sample_population(300_000, seed=7)
    train(x, y, out, seed=7, name="lead-scoring", version=None, threads=2, rounds=600, source="synthetic:test")
    return out


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory) -> Path:
    """A small booster for tests about the service around the model, not the model (trained in ~1 s)."""
    out = tmp_path_factory.mktemp("small-artifact")
    x, y = sample_population(20_000, seed=3)
    train(x, y, out, seed=3, name="lead-scoring", version=None, threads=2, rounds=40, source="synthetic:small")
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
    server = _transformer(artifact, logs_dir, api_key, tmp_path_factory, predictor=predictor.grpc_target,
                          protocol="grpc-v2")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformer_rest(artifact, logs_dir, api_key, predictor, tmp_path_factory):
    server = _transformer(artifact, logs_dir, api_key, tmp_path_factory,
                          predictor=f"127.0.0.1:{predictor.http_port}", protocol="v2")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformer_inprocess(artifact, logs_dir, api_key, tmp_path_factory):
    server = _transformer(artifact, logs_dir, api_key, tmp_path_factory)
    yield server
    server.stop()
