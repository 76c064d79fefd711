"""Every request to a scoring route leaves exactly one log line, against a real transformer: the Scorer's request line
where it answered, uvicorn's access line where something else did. The filter that drops the scoring routes'
access line used to drop it for requests the Scorer never saw (a wrong method, another model, a body over the
limit, a binary request without a key), and those left no line at all."""

from __future__ import annotations

import secrets

import httpx

from hack.stack import MODEL_NAME, start_transformer
from tests.support.logs import json_log_lines

KEY = "every-" + secrets.token_hex(12)
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"


def test_requests_the_scorer_never_saw_keep_their_access_line(small_artifact, tmp_path):
    server = start_transformer(
        small_artifact, tmp_path, api_keys=f"every:{KEY}", extra_args=["--max_body_bytes", "100000"]
    )
    server.wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=20) as http:
            answers = {
                "wrong method": http.get(V1),
                "another model": http.post("/v2/models/other/infer", json={"inputs": []}),
                "over the limit": http.post(
                    V2, content=b"[" + b"0," * 60_000 + b"0]", headers={"x-api-key": KEY}
                ),
                "binary, no key": http.post(
                    V2,
                    content=b'{"inputs":[]}',
                    headers={"inference-header-content-length": "13", "x-request-id": "every-binary"},
                ),
            }
    finally:
        server.stop()
    assert {name: a.status_code for name, a in answers.items()} == {
        "wrong method": 405,
        "another model": 404,
        "over the limit": 413,
        "binary, no key": 401,
    }
    entries = json_log_lines(server.log_path)
    access = [(e["method"], e["path"], e["status"]) for e in entries if e.get("logger") == "uvicorn.access"]
    assert ("GET", V1, 405) in access or ("GET", V1.replace(":", "%3A"), 405) in access  # as httpx sends it
    assert ("POST", "/v2/models/other/infer", 404) in access
    assert ("POST", V2, 413) in access
    # The binary refusal is the Scorer's (counted and logged as rejected), so its access line stays dropped.
    rejected = [e for e in entries if e.get("request_id") == "every-binary"]
    assert [(e["outcome"], e["status"]) for e in rejected] == [("unauthorized", 401)]
    assert ("POST", V2, 401) not in access
