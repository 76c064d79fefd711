"""Reason codes over real gRPC and the model metadata that describes them, against a running transformer.

tritonclient is what gRPC clients of a V2 server use, and it sends `parameters={"reasons": 3.0}` as a double_param,
a field KServe's InferParameter (bool, int64, string) does not have. tritonclient's gRPC module and kserve clash on
proto symbols in one process, so it runs in a subprocess, as in test_transformer_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from hack.stack import start_transformer

CLIENT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    target, key, reasons = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = grpcclient.InferenceServerClient(target)
    if reasons == "metadata":
        print(json.dumps(client.get_model_metadata("lead-scoring", as_json=True)["outputs"]))
        sys.exit()
    tensor = grpcclient.InferInput("leads", [2, 50], "FP32")
    tensor.set_data_from_numpy(np.ones((2, 50), np.float32))
    try:
        result = client.infer("lead-scoring", [tensor], headers={"x-api-key": key}, parameters={"reasons": reasons})
    except InferenceServerException as exc:
        print(json.dumps({"status": exc.status(), "message": exc.message()}))
    else:
        features = result.as_numpy("reason_feature")
        print(json.dumps({"status": "OK", "reason_shape": None if features is None else list(features.shape)}))
""")


@pytest.fixture(scope="module")
def transformer(small_artifact, logs_dir, api_key):
    server = start_transformer(small_artifact, logs_dir, api_keys=f"tests:{api_key}")
    server.wait_ready()
    yield server
    server.stop()


def triton(server, api_key: str, reasons) -> object:
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, server.grpc_target, api_key, json.dumps(reasons)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_reasons_as_int64_param_are_answered(transformer, api_key):
    assert triton(transformer, api_key, 3) == {"status": "OK", "reason_shape": [2, 3]}


def test_reasons_as_a_double_param_are_refused_not_ignored(transformer, api_key):
    """KServe's proto cannot read a double_param: the request asked for reasons, so it must not get none silently."""
    answer = triton(transformer, api_key, 3.0)
    assert answer["status"] == "StatusCode.INVALID_ARGUMENT", answer
    assert "parameter 'reasons'" in answer["message"] and "send int64_param" in answer["message"]


def test_metadata_gives_reason_outputs_the_shape_answers_have(transformer, api_key):
    rest = httpx.get(transformer.url + "/v2/models/lead-scoring", timeout=10).json()["outputs"]
    grpc = triton(transformer, api_key, "metadata")
    for outputs in (rest, grpc):
        shapes = {
            o["name"]: [int(d) for d in o["shape"]] for o in outputs
        }  # gRPC's JSON gives int64 as strings
        assert shapes["reason_feature"] == shapes["reason_contribution"] == [-1, -1]
        assert shapes["margin_bias"] == [-1]
