"""Fuzzing the running transformer with schemathesis, from the Open Inference Protocol REST spec.

The spec is read in place (../shared/reference/oip, or $LEAD_SCORING_REFERENCE_DIR), never copied. Its paths carry
`${MODEL_NAME}` / `${MODEL_VERSION}`; OIP lets a server omit the version, and this one serves one version under
the version-less paths, so the in-memory copy of the spec drops the version segment and MODEL_NAME is pinned to
`lead-scoring`. Whatever schemathesis sends: never a 5xx; without a key, the infer operation answers 401.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from hack.stack import start_transformer
from predictor.synthetic import sample_population
from predictor.train import train
from tests.conftest import reference_dir

KEY = "fuzz-" + secrets.token_hex(12)
INFER = "POST /v2/models/{MODEL_NAME}/infer"
FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def versionless_spec() -> dict:
    spec = yaml.safe_load((reference_dir() / "oip" / "open_inference_rest.yaml").read_text())
    paths = {}
    for path, item in spec["paths"].items():
        path = re.sub(r"\$\{(\w+)\}", r"{\1}", path).replace("/versions/{MODEL_VERSION}", "")
        item["parameters"] = [p for p in item.get("parameters", []) if p["name"] != "MODEL_VERSION"]
        paths[path] = item
    spec["paths"] = paths
    return spec


schema = schemathesis.openapi.from_dict(versionless_spec())
schema.config.update(parameters={"path.MODEL_NAME": "lead-scoring"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    artifact = tmp_path_factory.mktemp("fuzz-artifact")
    x, y = sample_population(5_000, seed=4)
    train(x, y, artifact, seed=4, name="lead-scoring", version=None, threads=1, rounds=20, source="synthetic:test")
    transformer = start_transformer(artifact, tmp_path_factory.mktemp("fuzz-logs"), api_keys=f"fuzz:{KEY}",
                                    extra_args=["--max_leads", "100"])
    transformer.wait_ready()
    yield transformer
    transformer.stop()


def _shown(case, response) -> str:
    return f"{case.as_curl_command()} → {response.status_code}: {response.text[:300]}"


@schema.parametrize()
@FUZZ
def test_no_5xx_with_a_valid_key(case, server):
    response = case.call(base_url=server.url, headers={"x-api-key": KEY}, timeout=15)
    assert response.status_code < 500, _shown(case, response)
    if response.status_code >= 400:
        assert response.json().get("error") or response.json().get("detail"), _shown(case, response)


@schema.parametrize()
@settings(FUZZ, max_examples=30)
def test_no_5xx_and_401_on_infer_without_a_key(case, server):
    response = case.call(base_url=server.url, timeout=15)
    assert response.status_code < 500, _shown(case, response)
    if f"{case.method} {case.path}" == INFER:
        # Never scored without a key. A non-JSON body goes to KServe, which may refuse it (400) before
        # preprocess() authenticates; every JSON body is checked for the key first (test below).
        assert response.status_code in (400, 401), _shown(case, response)
        assert response.status_code == 401 or "API key" not in response.text, _shown(case, response)


def test_an_unauthenticated_malformed_json_body_is_401_not_400(server):
    """The key is checked before the body is judged: a caller without a key learns nothing about the parser."""
    response = httpx.post(server.url + "/v2/models/lead-scoring/infer", json={"inputs": [{"name": "x"}]}, timeout=10)
    assert response.status_code == 401


def test_the_served_version_url_is_not_a_5xx(server):
    # KServe alone answers 501 "Model versioning not supported yet." for any /versions/<v> URL.
    version = httpx.get(server.url + "/v2/models/lead-scoring", timeout=10).json()["versions"][0]
    response = httpx.get(f"{server.url}/v2/models/lead-scoring/versions/{version}/ready", timeout=10)
    assert response.status_code == 200
    assert httpx.get(f"{server.url}/v2/models/lead-scoring/versions/{version}", timeout=10).json()["versions"] == [version]
    other = httpx.get(f"{server.url}/v2/models/lead-scoring/versions/not-this-one/ready", timeout=10)
    assert other.status_code == 404 and "not served" in other.json()["error"]


def test_the_spec_is_read_in_place_not_copied():
    root = Path(__file__).resolve().parents[2]
    assert not (root / "tests" / "open_inference_rest.yaml").exists()
    assert INFER.split(" ", 1)[1] in versionless_spec()["paths"]
