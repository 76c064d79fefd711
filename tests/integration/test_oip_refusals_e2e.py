"""Open Inference Protocol edges against `python -m transformer` (in-process mode, both REST paths, a data lake):
what used to be a 500 is refused first — 400 naming the field and the rule.

* binary V2 whose BYTES input is not UTF-8: KServe's decoder answered 500, echoing the client's bytes.
"""

from __future__ import annotations

import re
import secrets

import httpx
import orjson
import pytest

from contract.features import N_FEATURES
from hack.stack import MODEL_NAME, start_transformer
from predictor.synthetic import sample_features
from tests.support.leads import filled

KEY = "oip-" + secrets.token_hex(12)
V2 = f"/v2/models/{MODEL_NAME}/infer"
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback")
X = filled(sample_features(3, seed=52))


@pytest.fixture(scope="module", params=["fast_path", "kserve_rest"])
def server(request, small_artifact, tmp_path_factory):
    """Both REST paths: the fast JSON path (default) and KServe's own routes (--fast_path false)."""
    lake = tmp_path_factory.mktemp("oip-lake")
    transformer = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp("oip-logs"),
        api_keys=f"oip:{KEY}",
        extra_args=[
            "--sink_uri",
            lake.as_uri(),
            "--sink_spool_dir",
            str(tmp_path_factory.mktemp("oip-spool")),
            "--sink_flush_seconds",
            "0.2",
            "--fast_path",
            str(request.param == "fast_path").lower(),
        ],
    )
    transformer.wait_ready()
    transformer.lake = lake
    yield transformer
    transformer.stop()


# REST


def post(server, request_id: str | None = None, **kwargs) -> httpx.Response:
    headers = {
        "x-api-key": KEY,
        **({"x-request-id": request_id} if request_id else {}),
        **kwargs.pop("headers", {}),
    }
    return httpx.post(server.url + V2, headers=headers, timeout=20, **kwargs)


def v2_body(ids: list[str], outputs: list[dict] | None = None) -> dict:
    n = len(ids)
    body: dict = {
        "inputs": [
            {"name": "leads", "datatype": "FP64", "shape": [n, N_FEATURES], "data": X[:n].ravel().tolist()},
            {"name": "lead_id", "datatype": "BYTES", "shape": [n], "data": ids},
        ]
    }
    if outputs is not None:
        body["outputs"] = outputs
    return body


def length_prefixed(ids: list[bytes]) -> bytes:
    return b"".join(len(i).to_bytes(4, "little") + i for i in ids)


def binary(server, header: dict, tail: bytes = b"", request_id: str | None = None) -> httpx.Response:
    head = orjson.dumps(header)
    return post(
        server,
        request_id,
        content=head + tail,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        },
    )


def binary_leads(server, ids: list[bytes]) -> httpx.Response:
    """The issue's body: an FP32 [N, 50] tensor and a BYTES lead_id input, both as binary data."""
    x, tail = X[: len(ids)].astype("<f4").tobytes(), length_prefixed(ids)
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [len(ids), N_FEATURES],
                "parameters": {"binary_data_size": len(x)},
            },
            {
                "name": "lead_id",
                "datatype": "BYTES",
                "shape": [len(ids)],
                "parameters": {"binary_data_size": len(tail)},
            },
        ]
    }
    return binary(server, header, x + tail)


def refused(response: httpx.Response, *words: str, status: int = 400) -> dict:
    """A 4xx `{"error"}` that names the problem and no Python exception class."""
    assert response.status_code == status, response.text
    assert not CLASS_NAME.search(response.text), response.text
    body = response.json()
    for word in words:
        assert word in body["error"], (word, body["error"])
    return body


# The tests


def test_binary_bytes_that_are_not_utf8_are_a_400_naming_the_input_and_the_rule(server):
    """KServe's decoder answered 500 `Failed to encode "b'\\xff\\xfe'" using UTF-8…`, echoing the client's bytes."""
    response = binary_leads(server, [b"\xff\xfe", b"b"])
    body = refused(response, "input 'lead_id'", "BYTES element 0 is not valid UTF-8")
    assert body["problems"][0] | {"message": ""} == {
        "row": 0,
        "field": "lead_id",
        "rule": "encoding",
        "value": None,
        "message": "",
    }
    assert "xff" not in response.text and "Failed to encode" not in response.text
    answer = binary_leads(server, ["ü-1".encode(), b"b"])
    assert answer.status_code == 200, answer.text
    assert next(o for o in answer.json()["outputs"] if o["name"] == "lead_id")["data"] == ["ü-1", "b"]
