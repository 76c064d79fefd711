"""The off-cluster stand-in answers like kserve-xgbserver: V1 and V2 over REST, V2 over gRPC, booster's own scores."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from predictor.synthetic import sample_features
from tests.conftest import runtime_scores

X = sample_features(20, seed=41).astype(np.float32)


def test_v2_rest_reads_inputs0_whatever_its_name_and_answers_output0(predictor, runtime_booster):
    finite = np.nan_to_num(X, nan=1.0)  # JSON has no NaN; binary tensors do (tested over gRPC)
    body = {
        "inputs": [
            {"name": "whatever", "datatype": "FP32", "shape": [20, 50], "data": finite.ravel().tolist()}
        ]
    }
    answer = httpx.post(f"{predictor.url}/v2/models/lead-scoring/infer", json=body).json()
    (output,) = answer["outputs"]
    assert output["name"] == "output-0" and output["datatype"] == "FP32" and output["shape"] == [20]
    np.testing.assert_allclose(output["data"], runtime_scores(runtime_booster, finite), rtol=1e-6)


def test_v1_rest_instances_to_predictions(predictor, runtime_booster):
    finite = np.nan_to_num(X, nan=1.0)
    answer = httpx.post(
        f"{predictor.url}/v1/models/lead-scoring:predict", json={"instances": finite.tolist()}
    ).json()
    np.testing.assert_allclose(answer["predictions"], runtime_scores(runtime_booster, finite), rtol=1e-6)


def test_v2_grpc_with_missing_values(predictor, runtime_booster):
    async def call():
        client = InferenceGRPCClient(predictor.grpc_target, retries=0)
        tensor = InferInput("input-0", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X, binary_data=True)
        try:
            return await client.infer(InferRequest("lead-scoring", [tensor]))
        finally:
            await client.close()

    response = asyncio.run(call())
    assert np.isnan(X).any()
    np.testing.assert_array_equal(response.outputs[0].as_numpy(), runtime_scores(runtime_booster, X))


def test_readiness_and_no_validation(predictor):
    assert httpx.get(f"{predictor.url}/v2/models/lead-scoring/ready").json()["ready"] is True
    # It is no smarter than the runtime: an out-of-contract value still gets a score.
    bad = np.full((1, 50), -1e6, dtype=np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 50], "data": bad.ravel().tolist()}]}
    assert httpx.post(f"{predictor.url}/v2/models/lead-scoring/infer", json=body).status_code == 200


@pytest.mark.parametrize(
    "layout,message",
    [("missing", "does not exist"), ("two", "more than one booster file"), ("empty", "no booster file")],
)
def test_clear_start_up_error_for_a_bad_model_folder(tmp_path, artifact, layout, message):
    folder = tmp_path / "model"
    if layout != "missing":
        folder.mkdir()
    if layout == "two":
        (folder / "a.ubj").write_bytes((artifact / "model.ubj").read_bytes())
        (folder / "b.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "predictor.server", "--model_dir", str(folder), "--http_port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
