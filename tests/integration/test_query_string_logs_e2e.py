"""An API key sent in a query string (`?api_key=…`) never reaches the log, against a real transformer process (both
REST paths). uvicorn's access line used to cut the query from its `path` field but keep the whole request target in
`msg`, and the filter that drops the scoring routes' access line (their request line already carries the status)
missed a target with a query, so those requests were logged twice.
"""

from __future__ import annotations

import secrets
from collections import Counter

import httpx
import pytest

from hack.stack import MODEL_NAME, start_transformer
from predictor.synthetic import as_records, sample_features
from tests.support.leads import filled
from tests.support.logs import json_log_lines

KEY = "query-" + secrets.token_hex(12)
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
LEADS = filled(sample_features(2, seed=61))
V1_BODY = {"instances": as_records(LEADS, ["q-0", "q-1"])}
V2_BODY = {
    "inputs": [{"name": "leads", "datatype": "FP32", "shape": [2, 50], "data": LEADS.ravel().tolist()}]
}
# Routes that keep their access line, asked with the key in the query (the answer does not matter: the log does).
OTHER_ROUTES = [
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", f"/v2/models/{MODEL_NAME}"),
    ("GET", f"/v2/models/{MODEL_NAME}/ready"),
    ("GET", "/v2"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/no/such/route"),
]
OUTCOMES = "/v1/outcomes"  # its own request line (the intake's), like a scoring route; no access line


@pytest.fixture(scope="module", params=["fast_path", "kserve_rest"])
def logged(request, small_artifact, tmp_path_factory):
    """The transformer's whole log after the requests below, and what was sent; the server is stopped first so the
    log is complete."""
    folder = tmp_path_factory.mktemp("query-logs")
    server = start_transformer(
        small_artifact,
        folder,
        api_keys=f"query-client:{KEY}",
        extra_args=[
            "--fast_path",
            str(request.param == "fast_path").lower(),
            "--outcomes_uri",
            (folder / "outcomes").as_uri(),
            "--outcomes_spool_dir",
            str(folder / "outcomes-spool"),
        ],
    )
    server.wait_ready()
    scoring: dict[str, int] = {}  # request id -> status, for requests to the scoring routes
    try:
        with httpx.Client(base_url=server.url, timeout=20) as http:
            for name in ("api_key", "x-api-key", "key"):
                for method, path in [*OTHER_ROUTES, ("POST", OUTCOMES)]:
                    http.request(method, f"{path}?{name}={KEY}&other=1")
                for path, body in ((V1, V1_BODY), (V2, V2_BODY)):
                    for keyed in (False, True):  # key in the query only (401), and in the header too (200)
                        rid = f"q-{name}-{path.rsplit('/', 1)[-1]}-{keyed}"
                        headers = {"x-request-id": rid, **({"x-api-key": KEY} if keyed else {})}
                        answer = http.post(f"{path}?{name}={KEY}", json=body, headers=headers)
                        scoring[rid] = answer.status_code
            pinned = http.post(
                f"/v2/models/{MODEL_NAME}/infer?model_version=x&api_key={KEY}",
                json=V2_BODY,
                headers={"x-api-key": KEY, "x-request-id": "q-pinned"},
            )
            scoring["q-pinned"] = pinned.status_code
    finally:
        server.stop()
    return server, scoring


def test_the_key_in_a_query_string_appears_nowhere_in_the_log(logged):
    server, scoring = logged
    assert sorted(set(scoring.values())) == [200, 401, 404], (
        scoring
    )  # 404: a version this replica does not serve
    text = server.log_path.read_text(errors="replace")
    assert KEY not in text
    assert "api_key=" not in text and "x-api-key=" not in text and "other=1" not in text
    access = [e for e in json_log_lines(server.log_path) if e.get("logger") == "uvicorn.access"]
    logged_paths = Counter(e["path"] for e in access)
    for _, path in OTHER_ROUTES:  # the other routes keep their line, with the path and without the query
        assert logged_paths[path] >= 3, (path, logged_paths)
    assert logged_paths[OUTCOMES] == 0
    outcome_lines = [e for e in json_log_lines(server.log_path) if e.get("route") == "outcomes"]
    assert [e["status"] for e in outcome_lines] == [401, 401, 401], "the key in a query is no key"
    for entry in access:
        assert "?" not in entry["msg"] and "?" not in entry["path"], entry
        assert f'"{entry["method"]} {entry["path"]} HTTP/' in entry["msg"], entry


def test_a_scoring_request_with_a_query_has_its_own_line_and_no_access_line(logged):
    server, scoring = logged
    entries = json_log_lines(server.log_path)
    lines = Counter(e["request_id"] for e in entries if e.get("request_id") in scoring)
    assert lines == Counter(dict.fromkeys(scoring, 1))  # one "scored"/"rejected" line per request
    for entry in entries:
        if entry.get("request_id") in scoring:
            assert entry["status"] == scoring[entry["request_id"]]
    scoring_paths = {V1, V1.replace(":", "%3A"), V2}
    access = [e for e in entries if e.get("logger") == "uvicorn.access"]
    assert not [e for e in access if e["path"] in scoring_paths and e["method"] == "POST"], access
