"""The README's API examples are what the server answers: its inline V1 request gets its V1 answer, and
docs/examples/v2-tensor.json gets its V2 answer, from the default model (the session's artifact is trained exactly
as `make serve` trains it), with every field the server returns shown (server-made ids are not compared by value)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
EXAMPLE_FILES = ("v1-instances", "v2-columns", "v2-tensor")


def api_examples() -> list[dict]:
    """The ```json blocks of the README's "## The API" section, in order."""
    section = README.split("\n## The API\n", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", section, re.S)]


def same_shape(documented, answered, where="answer") -> list[str]:
    """Differences between a documented answer and a real one: keys (a null one may be left out), values (scores
    to the 4 decimals shown), except server-made ids, which must only be present."""
    if isinstance(documented, dict) and isinstance(answered, dict):
        answered = {
            k: v for k, v in answered.items() if v is not None or k in documented
        }  # null may go unsaid
        found = (
            [f"{where}: missing {sorted(set(answered) - set(documented))}"]
            if set(answered) - set(documented)
            else []
        )
        found += (
            [f"{where}: not answered {sorted(set(documented) - set(answered))}"]
            if set(documented) - set(answered)
            else []
        )
        for key in set(documented) & set(answered):
            if key not in ("scoring_id",):
                found += same_shape(documented[key], answered[key], f"{where}.{key}")
        return found
    if isinstance(documented, list) and isinstance(answered, list) and len(documented) == len(answered):
        return [
            p
            for i, (d, a) in enumerate(zip(documented, answered, strict=True))
            for p in same_shape(d, a, f"{where}[{i}]")
        ]
    if isinstance(documented, float) and isinstance(answered, float):
        return (
            []
            if round(answered, 4) == documented
            else [f"{where}: documented {documented}, answered {answered}"]
        )
    return [] if documented == answered else [f"{where}: documented {documented!r}, answered {answered!r}"]


@pytest.fixture(scope="module")
def examples():
    blocks = api_examples()
    assert len(blocks) >= 3, "the API section lost its V1 request/answer and V2 answer examples"
    return {"v1_request": blocks[0], "v1_answer": blocks[1], "v2_answer": blocks[2]}


def _post(server, api_key, path, body):
    response = httpx.post(server.url + path, json=body, headers={"X-API-Key": api_key}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_v1_example_answers_as_documented(transformer_inprocess, api_key, examples):
    answer = _post(transformer_inprocess, api_key, "/v1/models/lead-scoring:predict", examples["v1_request"])
    assert same_shape(examples["v1_answer"], answer) == [], json.dumps(answer)


def test_the_v2_tensor_example_answers_as_documented(transformer_inprocess, api_key, examples):
    body = json.loads((ROOT / "docs/examples/v2-tensor.json").read_text())
    answer = _post(transformer_inprocess, api_key, "/v2/models/lead-scoring/infer", body)
    assert same_shape(examples["v2_answer"], answer) == [], json.dumps(answer)


def test_the_comparison_sees_a_changed_score_and_a_hidden_field():
    assert same_shape({"s": 0.1937}, {"s": 0.17821}) == ["answer.s: documented 0.1937, answered 0.17821"]
    assert same_shape({"s": 0.1782}, {"s": 0.17821, "scoring_id": "x"}) == ["answer: missing ['scoring_id']"]
    assert (
        same_shape({"s": 0.1782, "scoring_id": "0190-…"}, {"s": 0.17821, "scoring_id": "x", "p": None}) == []
    )


def test_the_three_example_files_are_the_same_two_leads_and_get_the_same_answer(
    transformer_inprocess, api_key
):
    """`make serve` prints a curl for each form with the same lead ids: a form that got other values (the columns
    form leaving out every feature either lead missed, the JSON tensor filling them with 0) gave the same lead
    another tier."""
    read = {name: json.loads((ROOT / f"docs/examples/{name}.json").read_text()) for name in EXAMPLE_FILES}
    v1 = _post(transformer_inprocess, api_key, "/v1/models/lead-scoring:predict", read["v1-instances"])
    answers = {"v1-instances": {p["lead_id"]: (p["score"], p["tier"]) for p in v1["predictions"]}}
    for name in ("v2-columns", "v2-tensor"):
        outputs = {
            o["name"]: o["data"]
            for o in _post(transformer_inprocess, api_key, "/v2/models/lead-scoring/infer", read[name])[
                "outputs"
            ]
        }
        answers[name] = {
            lead: (score, tier)
            for lead, score, tier in zip(outputs["lead_id"], outputs["score"], outputs["tier"], strict=True)
        }
    assert list(answers["v1-instances"]) == ["acme-001", "globex-042"]
    assert answers["v2-columns"] == answers["v1-instances"] == answers["v2-tensor"]
    assert all(
        len(lead) == 51 for lead in read["v1-instances"]["instances"]
    )  # every feature, nothing filled in
