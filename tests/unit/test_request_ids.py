"""The x-request-id rule (transformer/request_ids.py): 1 to 128 printable ASCII characters, what a refusal says,
and the two places that rely on it: the scoring request's id and the headers the predictor hop forwards."""

from __future__ import annotations

import re

import pytest

from transformer.predictors.hop import forwarded
from transformer.request_ids import MAX_LENGTH, problem, refusal, valid
from transformer.scoring import ScoringRequest

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "value",
    [
        "req-42",
        "0b6f6d1e-5c1b-4f7e-9a57-4a1f0f3b2f55",
        "a" * MAX_LENGTH,
        "crm sync #7 (retry 2)",  # spaces inside are printable ASCII
        "".join(map(chr, range(0x20, 0x7F))),  # every printable ASCII character, space to '~'
    ],
)
def test_printable_ascii_ids_up_to_128_characters_are_kept(value):
    assert valid(value) and problem(value) is None
    request = ScoringRequest.from_headers("rest", {"x-request-id": value})
    assert request.request_id == value and request.request_id_refused is None


@pytest.mark.parametrize(
    ("value", "rule", "got", "shown"),
    [
        ("caf\xe9", "printable_ascii", "got U+00E9 at character 4", "caf\\xe9"),
        # The same id sent as UTF-8 bytes, as the REST adapters see it (header bytes decoded as latin-1).
        ("caf\xc3\xa9", "printable_ascii", "got U+00C3 at character 4", "caf\\xc3\\xa9"),
        ("a\tb", "printable_ascii", "got U+0009 at character 2", "a\\tb"),
        ("line\nbreak", "printable_ascii", "got U+000A at character 5", "line\\nbreak"),
        ("nul\x00", "printable_ascii", "got U+0000 at character 4", "nul\\x00"),
        ("del\x7f", "printable_ascii", "got U+007F at character 4", "del\\x7f"),
        ("a" * (MAX_LENGTH + 1), "length", "got 129 characters", "a" * 40 + "…"),
        ("", "length", "got 0 characters", ""),
    ],
)
def test_anything_else_is_a_problem_naming_the_header_the_rule_and_what_was_wrong(value, rule, got, shown):
    found = problem(value)
    assert not valid(value)
    assert found == {
        "row": None,
        "field": "x-request-id",
        "rule": rule,
        "value": shown,
        "message": "x-request-id must be 1 to 128 printable ASCII characters (space to '~'; no control "
        f"characters), {got}",
    }
    error = refusal(found)
    assert error.http_status == 400 and error.grpc_status == "INVALID_ARGUMENT"
    assert error.message.startswith(f"header {found['message']}: ")
    assert error.body() == {"error": error.message, "problems": [found], "problem_count": 1}


@pytest.mark.parametrize("headers", [None, {}, {"x-request-id": ""}])
def test_a_request_without_an_id_gets_a_server_made_one(headers):
    request = ScoringRequest.from_headers("grpc", headers)
    assert GENERATED.fullmatch(request.request_id) and request.request_id_refused is None


def test_a_request_with_a_bad_id_carries_a_server_made_one_and_the_problem():
    request = ScoringRequest.from_headers("rest", {"x-request-id": "a\tb"})
    assert GENERATED.fullmatch(request.request_id)
    assert request.request_id_refused["rule"] == "printable_ascii"
    assert request.forwarded_headers == {"x-request-id": request.request_id}  # never the client's bad value


def test_the_hop_forwards_only_values_grpc_metadata_and_http_headers_can_carry():
    good = {"x-request-id": "req-1", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    assert forwarded(good) == good
    assert forwarded({**good, "x-request-id": "caf\xe9", "x-api-key": "secret"}) == {
        "traceparent": good["traceparent"]
    }
    assert forwarded({"x-b3-traceid": "a\tb", "x-request-id": "x" * 129}) == {}
    assert forwarded(None) == {} and forwarded({}) == {}
