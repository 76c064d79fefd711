"""uvicorn's access line through the JSON formatter: no field carries the query string (a client may put its key
there), and the scoring routes' access line is dropped with or without a query."""

from __future__ import annotations

import json
import logging

import pytest

from transformer.logs import JsonFormatter, ScoringRoutesAccessFilter

ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'  # uvicorn's own (uvicorn/protocols/http/*_impl.py)


def access_record(target: str, status: int = 200) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        ACCESS_FORMAT,
        ("127.0.0.1:5000", "GET", target, "1.1", status),
        None,
    )


@pytest.mark.parametrize(
    "target",
    ["/v2/health/live?api_key=SECRET", "/metrics?x-api-key=SECRET&a=1", "/v2/models/lead-scoring?SECRET"],
)
def test_the_access_line_has_no_query_string_in_any_field(target):
    line = JsonFormatter().format(access_record(target))
    entry = json.loads(line)
    path = target.split("?")[0]
    assert "SECRET" not in line and "?" not in line
    assert entry["msg"] == f'127.0.0.1:5000 - "GET {path} HTTP/1.1" 200'
    assert entry["path"] == path and entry["method"] == "GET" and entry["status"] == 200


def test_a_target_without_a_query_is_logged_as_it_is():
    entry = json.loads(JsonFormatter().format(access_record("/v2/health/ready")))
    assert entry["msg"] == '127.0.0.1:5000 - "GET /v2/health/ready HTTP/1.1" 200'
    assert entry["path"] == "/v2/health/ready"


@pytest.mark.parametrize(
    ("method", "target", "status", "kept"),
    [
        ("POST", "/v1/models/lead-scoring%3Apredict", 200, False),
        ("POST", "/v1/models/lead-scoring:predict?x-api-key=SECRET", 401, False),
        ("POST", "/v2/models/lead-scoring/infer?api_key=SECRET", 400, False),
        ("POST", "/v2/models/lead-scoring/versions/v1/infer?model_version=v1", 200, False),
        ("POST", "/v2/health/live?api_key=SECRET", 405, True),
        ("GET", "/v2/models/lead-scoring?infer", 200, True),  # metadata, whatever its query says
        # The outcome intake logs every call it answers (its own line, with the request id) ...
        ("POST", "/v1/outcomes?predict", 200, False),
        ("POST", "/v1/outcomes", 401, False),
        # ... but not a call to a transformer without --outcomes_uri (404), nor one the body limit stops (413).
        ("POST", "/v1/outcomes", 404, True),
        ("POST", "/v1/outcomes", 413, True),
        ("GET", "/v1/outcomes", 405, True),
        # Nothing else logs these: a wrong method, another model (KServe's 404), the body limit's 413.
        ("GET", "/v1/models/lead-scoring:predict", 405, True),
        ("POST", "/v2/models/other/infer", 404, True),
        ("POST", "/v2/models/lead-scoring/infer", 413, True),
    ],
)
def test_the_scoring_routes_access_line_is_dropped_only_where_the_request_line_covers_it(
    method, target, status, kept
):
    record = access_record(target, status)
    record.args = (record.args[0], method, *record.args[2:])
    assert ScoringRoutesAccessFilter("lead-scoring").filter(record) is kept
