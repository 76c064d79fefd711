"""Schemathesis from the project's own OpenAPI document, as the running server serves it at /openapi.json.

The document describes the real lead schema (50 features with types, bounds and enumerations, both V2 forms, the
answers, `{"error"}` per status, the X-API-Key scheme), so the fuzzer explores leads, not generic tensors. With a
valid key: never a 5xx, and no answer that breaks the document (status, content type, body schema). The same
document validates real requests (the README's examples) and real answers of every form.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis import checks

from hack.stack import MODEL_NAME, start_transformer
from predictor.synthetic import as_records, sample_features
from transformer.serving import openapi

ROOT = Path(__file__).resolve().parents[2]
KEY = "doc-" + secrets.token_hex(12)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(small_artifact, tmp_path_factory):
    transformer = start_transformer(
        small_artifact,
        tmp_path_factory.mktemp("doc-logs"),
        api_keys=f"doc:{KEY}",
        extra_args=["--max_leads", "20"],
    )
    transformer.wait_ready()
    yield transformer
    transformer.stop()


@pytest.fixture(scope="module")
def document(server) -> dict:
    return httpx.get(server.url + "/openapi.json", timeout=10).json()


# Built as the server builds it (--max_leads 20, the default --reasons_max); the test below proves they are equal.
BUILT = openapi.build(MODEL_NAME, "fuzz", max_leads=20, reasons_max=50)
schema = schemathesis.openapi.from_dict(BUILT)


def test_the_fuzzed_document_is_the_one_the_server_serves(document):
    assert {**document, "info": {**document["info"], "version": "fuzz"}} == BUILT


@schema.parametrize()
@settings(
    max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_fuzzing_the_document_finds_no_5xx_and_no_answer_outside_it(case, server):
    case.call_and_validate(base_url=server.url, headers={"x-api-key": KEY}, checks=CHECKS, timeout=20)


def _validator(document: dict, name: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    )


def _answer(document: dict, path: str, status: int) -> Draft202012Validator:
    schema = document["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"][
        "schema"
    ]
    return Draft202012Validator({**schema, "components": document["components"]})


def test_the_documented_examples_are_valid_requests(document):
    _validator(document, "V1Request").validate(
        json.loads((ROOT / "docs/examples/v1-instances.json").read_text())
    )
    _validator(document, "V2Columns").validate(
        json.loads((ROOT / "docs/examples/v2-columns.json").read_text())
    )
    _validator(document, "V2Tensor").validate(json.loads((ROOT / "docs/examples/v2-tensor.json").read_text()))


def test_real_answers_of_every_form_validate_against_the_document(server, document):
    v1_path, v2_path = f"/v1/models/{MODEL_NAME}:predict", f"/v2/models/{MODEL_NAME}/infer"
    headers = {"x-api-key": KEY}
    x = sample_features(3, seed=31)
    v1 = {"instances": as_records(x, ["a-1", "b-2", "c-3"]), "parameters": {"reasons": 3}}
    _validator(document, "V1Request").validate(v1)
    answer = httpx.post(server.url + v1_path, json=v1, headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    _answer(document, v1_path, 200).validate(answer.json())
    assert len(answer.json()["predictions"][0]["reasons"]) == 3

    filled = np.nan_to_num(x, nan=0.0)
    tensor = {
        "inputs": [
            {"name": "leads", "datatype": "FP32", "shape": [3, 50], "data": filled.ravel().tolist()},
            {"name": "lead_id", "datatype": "BYTES", "shape": [3], "data": ["a", "b", "c"]},
        ]
    }
    _validator(document, "V2Tensor").validate(tensor)
    answer = httpx.post(server.url + v2_path, json=tensor, headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    _answer(document, v2_path, 200).validate(answer.json())

    bad = {"instances": [{**as_records(x[:1])[0], "employee_count": 0}]}
    answer = httpx.post(server.url + v1_path, json=bad, headers=headers, timeout=20)
    assert answer.status_code == 400
    _answer(document, v1_path, 400).validate(answer.json())
    assert answer.json()["problems"][0]["field"] == "employee_count"

    answer = httpx.post(server.url + v2_path, json=tensor, timeout=20)
    assert answer.status_code == 401
    _answer(document, v2_path, 401).validate(answer.json())

    # An x-request-id outside the documented parameter's pattern: a documented 400 naming the header.
    answer = httpx.post(
        server.url + v2_path, json=tensor, headers={**headers, "x-request-id": "a\tb"}, timeout=20
    )
    assert answer.status_code == 400
    _answer(document, v2_path, 400).validate(answer.json())
    assert answer.json()["problems"][0]["field"] == "x-request-id"


def test_the_document_describes_the_lead_schema_and_the_key(document):
    instance = document["components"]["schemas"]["LeadInstance"]
    assert instance["properties"]["employee_count"]["maximum"] == 3_000_000
    assert (
        instance["properties"]["industry"]["enum"][-1]
        == len(instance["properties"]["industry"]["x-choices"]) - 1
    )
    assert "employee_count" in instance["required"] and "annual_revenue_musd" not in instance["required"]
    assert instance["properties"]["lead_id"]["anyOf"][0]["maxLength"] == 128
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    assert not any(
        path.startswith("/v2/repository") or path.endswith(":explain") for path in document["paths"]
    )
    assert document["components"]["schemas"]["V1Request"]["properties"]["instances"]["maxItems"] == 20
