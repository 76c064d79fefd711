"""POST /v1/outcomes on a real transformer process: the contract's 400s, auth and limits, idempotency, and the
outcome recorder's no-loss guarantees (SIGTERM flush, a store outage) — the same as for scores."""

from __future__ import annotations

import io
import json
import secrets
import signal
import time
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow.parquet as pq
import yaml

from contract.outcomes import outcome_key
from hack.stack import start_transformer
from tests.sink_servers import wait_for
from tests.support.logs import json_log_lines
from tests.support.scrape import free_port, metric

KEY_NAME = "crm-outcomes"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def outcome(i: int, **extra) -> dict:
    when = datetime(2026, 11, 20, 9, 0, tzinfo=UTC) + timedelta(minutes=i)
    return {
        "lead_id": f"L-{i}",
        "outcome": "converted" if i % 3 == 0 else "disqualified",
        "occurred_at": when.isoformat(),
        **extra,
    }


def launch(
    small_artifact, logs_dir, api_key, tmp_path, outcomes_uri: str, *extra: str, env=None, flush="0.2"
):
    server = start_transformer(
        small_artifact,
        logs_dir,
        api_keys=f"{KEY_NAME}:{api_key}",
        env=env,
        extra_args=[
            "--outcomes_uri",
            outcomes_uri,
            "--outcomes_spool_dir",
            str(tmp_path / "outcomes-spool"),
            "--sink_flush_seconds",
            flush,
            "--drain_seconds",
            "5",
            "--max_outcomes",
            "50",
            *extra,
        ],
    )
    server.wait_ready()
    return server


def stored(root) -> dict[str, dict]:
    rows = {}
    for path in root.rglob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            rows[row["outcome_id"]] = row
    return rows


def post(server, body, key, **headers):
    return httpx.post(
        server.url + "/v1/outcomes", json=body, headers={"x-api-key": key, **headers}, timeout=20
    )


def refused_rules(answer) -> list[tuple]:
    """(row, field, rule) of each problem of a 400."""
    assert answer.status_code == 400, answer.text
    return [(p["row"], p["field"], p["rule"]) for p in answer.json()["problems"]]


def test_bad_outcomes_get_400_naming_row_field_and_rule_and_nothing_is_recorded(
    small_artifact, logs_dir, api_key, tmp_path
):
    lake = tmp_path / "outcomes"
    server = launch(small_artifact, logs_dir, api_key, tmp_path, lake.as_uri())
    try:
        bad = [
            outcome(0),
            {**outcome(1), "outcome": "won"},
            {**outcome(2), "occurred_at": "2026-11-20T09:00:00"},
            {**outcome(3), "deal_value": -1},
            {"outcome": "open", "occurred_at": outcome(4)["occurred_at"]},
        ]
        answer = post(server, {"outcomes": bad}, api_key)
        assert answer.status_code == 400
        body = answer.json()
        assert [(p["row"], p["field"], p["rule"]) for p in body["problems"]] == [
            (1, "outcome", "enumeration"),
            (2, "occurred_at", "timezone"),
            (3, "deal_value", "minimum"),
            (4, "lead_id", "required"),
        ]
        assert body["problem_count"] == 4 and "row 1" in body["error"]
        assert "Traceback" not in answer.text and api_key not in answer.text

        # Instants before 1970 (year 1 in a zone east of UTC used to overflow into a 500) and scoring's lead-id rule.
        edges = [
            {**outcome(0), "occurred_at": "0001-01-01T00:00:00+01:00"},
            {**outcome(1), "lead_id": "a\nb\x00"},
            {**outcome(2), "occurred_at": "1969-12-31T23:59:59Z"},
        ]
        answer = post(server, {"outcomes": edges}, api_key)
        assert refused_rules(answer) == [
            (0, "occurred_at", "minimum"),
            (1, "lead_id", "printable"),
            (2, "occurred_at", "minimum"),
        ]
        assert "occurred_at must be 1970-01-01T00:00:00Z or later" in answer.json()["error"]
        assert "printable characters" in answer.json()["error"]
        # JSON types as documented: pydantic's lax mode stored true as a deal value of 1 and a number as an instant.
        lax = [
            {**outcome(0), "outcome": "converted", "deal_value": True},
            {**outcome(1), "outcome": "converted", "deal_value": "12000"},
            {**outcome(2), "occurred_at": 1700000000},
        ]
        assert refused_rules(post(server, {"outcomes": lax}, api_key)) == [
            (0, "deal_value", "type"),
            (1, "deal_value", "type"),
            (2, "occurred_at", "datetime"),
        ]

        # The body holds only `outcomes`: a scoring_id put beside the list would be lost, so it is refused.
        beside = post(server, {"outcomes": [outcome(0)], "scoring_id": "S-1"}, api_key)
        assert refused_rules(beside) == [(None, "scoring_id", "unknown_field")]
        # The id lengths under the documented rule names; an item that is no object names the list.
        assert refused_rules(
            post(
                server,
                {"outcomes": [{**outcome(0), "scoring_id": ""}, {**outcome(1), "request_id": "r" * 129}, 7]},
                api_key,
            )
        ) == [(0, "scoring_id", "min_length"), (1, "request_id", "max_length"), (2, "outcomes", "object")]

        too_many = post(server, {"outcomes": [outcome(i) for i in range(51)]}, api_key)
        assert too_many.status_code == 400 and too_many.json()["problems"][0]["rule"] == "max_items"
        assert post(server, {"leads": []}, api_key).json()["problems"][0]["field"] == "outcomes"
        malformed = httpx.post(
            server.url + "/v1/outcomes", content=b"{not json", headers={"x-api-key": api_key}
        )
        assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
        keyless = httpx.post(server.url + "/v1/outcomes", content=b"{not json")
        assert keyless.status_code == 401, "the key is checked before the body is judged"
        assert post(server, {"outcomes": [outcome(0)]}, "wrong-key").status_code == 401
        missing = httpx.post(server.url + "/v1/outcomes", json={"outcomes": [outcome(0)]})
        assert missing.status_code == 401 and "x-api-key" in missing.json()["error"].lower()
        huge = httpx.post(
            server.url + "/v1/outcomes",
            content=b" " * (5 * 1024 * 1024),
            headers={"x-api-key": api_key, "content-type": "application/json"},
        )
        assert huge.status_code == 413
        # The scoring routes' x-request-id rule (1-128 printable ASCII), after the key check.
        bad_id = post(server, {"outcomes": [outcome(0)]}, api_key, **{"x-request-id": "tab\there"})
        assert bad_id.status_code == 400 and bad_id.json()["problems"][0]["field"] == "x-request-id"
        assert bad_id.json()["problems"][0]["rule"] == "printable_ascii"
        assert (
            post(server, {"outcomes": [outcome(0)]}, api_key, **{"x-request-id": "r" * 129}).status_code
            == 400
        )
        assert (
            post(server, {"outcomes": [outcome(0)]}, "wrong-key", **{"x-request-id": "tab\there"}).status_code
            == 401
        )
        time.sleep(1.0)
        assert stored(lake) == {}, "a refused call records nothing"
        assert "unexpected error" not in server.log_tail(400)
    finally:
        server.stop()


def test_repeats_are_recorded_once_and_the_key_name_not_the_key_is_stored(
    small_artifact, logs_dir, api_key, tmp_path
):
    lake = tmp_path / "outcomes"
    server = launch(small_artifact, logs_dir, api_key, tmp_path, lake.as_uri())
    try:
        batch = [outcome(i, deal_value=500.0) if i % 3 == 0 else outcome(i) for i in range(30)]
        first = post(server, {"outcomes": batch}, api_key, **{"x-request-id": "crm-sync-1"})
        assert first.status_code == 200 and first.json()["recorded"] == 30
        assert first.headers["x-request-id"] == "crm-sync-1"
        # The same outcomes again, one written with another zone for the same instant: all duplicates.
        shifted = {
            **batch[1],
            "occurred_at": datetime.fromisoformat(batch[1]["occurred_at"])
            .astimezone(datetime.now().astimezone().tzinfo)
            .isoformat(),
        }
        again = post(server, {"outcomes": batch[:1] + [shifted] + batch[2:]}, api_key)
        assert again.json() == {**again.json(), "recorded": 0, "duplicates": 30}
        assert again.json()["outcome_ids"] == first.json()["outcome_ids"]
        # A repeat within one call is a duplicate too: written once, not twice.
        counted = [
            metric(server.url, "lead_scoring_outcomes_received_total", outcome="converted", result=r)
            for r in ("recorded", "duplicate")
        ]
        twice = post(server, {"outcomes": [outcome(99), outcome(99)]}, api_key)
        assert twice.json() == {**twice.json(), "recorded": 1, "duplicates": 1}
        assert [
            metric(server.url, "lead_scoring_outcomes_received_total", outcome="converted", result=r) - c
            for r, c in zip(("recorded", "duplicate"), counted, strict=True)
        ] == [1, 1], "the counters say what the answer says"
        wait_for(lambda: len(stored(lake)) == 31, timeout=30)
    finally:
        assert server.stop() == 0
    rows = stored(lake)
    assert sum(pq.read_metadata(path).num_rows for path in lake.rglob("*.parquet")) == 31
    assert set(rows) == {
        outcome_key(o["lead_id"], o["outcome"], datetime.fromisoformat(o["occurred_at"]))
        for o in [*batch, outcome(99)]
    }
    assert {r["api_key_name"] for r in rows.values()} == {KEY_NAME} and {
        r["source"] for r in rows.values()
    } == {"api"}
    assert all(p.relative_to(lake).as_posix().startswith("dt=2026-11-20/") for p in lake.rglob("*.parquet"))
    for path in lake.rglob("*.parquet"):
        assert api_key.encode() not in path.read_bytes()
    # One log line per call, under the caller's request id; never the key.
    log = server.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    calls = [line for line in lines if line.get("route") == "outcomes"]
    assert len(calls) == 3 and {line["msg"] for line in calls} == {"outcomes recorded"}
    assert [line["recorded"] for line in calls if line["request_id"] == "crm-sync-1"] == [30]
    assert api_key not in log


def test_the_outcomes_route_is_charged_to_the_keys_rate_limit(small_artifact, logs_dir, tmp_path):
    """docs/security.md: the outcomes route takes the API key and the same rate limit as scoring. A key past its
    burst gets 429, and nothing of the refused calls is recorded."""
    key = "limited-" + secrets.token_hex(8)
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        yaml.safe_dump({"keys": [{"name": "crm", "key": key, "rate_per_second": 0.01, "burst": 3}]})
    )
    lake = tmp_path / "outcomes"
    server = start_transformer(
        small_artifact,
        logs_dir,
        extra_args=[
            "--api_keys_file", str(keys),
            "--outcomes_uri", lake.as_uri(),
            "--outcomes_spool_dir", str(tmp_path / "outcomes-spool"),
            "--sink_flush_seconds", "0.2",
        ],
    )  # fmt: skip
    try:
        server.wait_ready()
        answers = [
            post(server, {"outcomes": [outcome(i)]}, key, **{"x-request-id": f"limited-{i}"})
            for i in range(5)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429], [a.text for a in answers]
        assert "rate" in answers[-1].json()["error"] and key not in answers[-1].text
        wait_for(lambda: len(stored(lake)) == 3, timeout=30)
    finally:
        assert server.stop() == 0
    assert {row["lead_id"] for row in stored(lake).values()} == {"L-0", "L-1", "L-2"}
    lines = {e["request_id"]: e for e in json_log_lines(server.log_path) if e.get("route") == "outcomes"}
    # The 429's line names the key that ran out (it said null: the name was taken after the charge).
    assert (lines["limited-4"]["status"], lines["limited-4"]["key_name"]) == (429, "crm")


def test_a_client_gone_before_its_body_arrived_is_a_cancelled_line_not_a_500(
    small_artifact, logs_dir, api_key, tmp_path
):
    """The body was read outside the intake: the disconnect reached the app's last-resort handler, two ERROR lines
    with a traceback, and the call had no outcomes line."""
    import socket

    server = launch(small_artifact, logs_dir, api_key, tmp_path, (tmp_path / "outcomes").as_uri())
    try:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"x-api-key: {api_key}\r\nx-request-id: gone-early\r\nContent-Length: 1000\r\n\r\n".encode()
                + b'{"outcomes": ['
            )
            time.sleep(0.3)

        def line():
            return next(
                (e for e in json_log_lines(server.log_path) if e.get("request_id") == "gone-early"), None
            )

        wait_for(lambda: line() is not None, timeout=10)
        entry = line()
        assert (entry["route"], entry["outcome"], entry["status"]) == ("outcomes", "cancelled", 499)
        assert api_key not in json.dumps(entry)
    finally:
        server.stop()
    entries = json_log_lines(server.log_path)
    assert not any(e["level"] == "ERROR" for e in entries), [e for e in entries if e["level"] == "ERROR"]


def test_a_call_over_the_body_limit_is_counted_and_logged_like_every_refusal(
    small_artifact, logs_dir, api_key, tmp_path
):
    """BodyLimit answered it 413 before the route: no outcomes line, no rejected count, no x-request-id."""
    server = launch(
        small_artifact,
        logs_dir,
        api_key,
        tmp_path,
        (tmp_path / "outcomes").as_uri(),
        "--max_body_bytes",
        "4096",
    )
    try:
        rejected = lambda: metric(server.url, "lead_scoring_outcomes_rejected_total", reason="invalid")  # noqa: E731
        before = rejected()
        body = {"outcomes": [outcome(i) for i in range(50)]}
        assert len(json.dumps(body)) > 4096
        answer = post(server, body, api_key, **{"x-request-id": "big-outcomes"})
        assert answer.status_code == 413 and answer.headers["x-request-id"] == "big-outcomes"
        assert "--max_body_bytes" in answer.json()["error"]
        assert rejected() - before == 1
        entry = next(e for e in json_log_lines(server.log_path) if e.get("request_id") == "big-outcomes")
        assert (entry["msg"], entry["route"], entry["outcome"], entry["status"]) == (
            "outcomes rejected",
            "outcomes",
            "invalid",
            413,
        )
        assert api_key not in json.dumps(entry)
    finally:
        server.stop()


def test_sigterm_flushes_accepted_outcomes(small_artifact, logs_dir, api_key, tmp_path):
    lake = tmp_path / "outcomes"
    # Files would be cut only after an hour: what reaches the lake is what SIGTERM flushed.
    server = launch(small_artifact, logs_dir, api_key, tmp_path, lake.as_uri(), flush="3600")
    accepted = []
    for start in range(0, 200, 50):
        answer = post(server, {"outcomes": [outcome(i) for i in range(start, start + 50)]}, api_key)
        assert answer.status_code == 200
        accepted += answer.json()["outcome_ids"]
    assert stored(lake) == {}
    assert server.stop(signal.SIGTERM) == 0
    assert set(stored(lake)) == set(accepted)


def test_accepted_outcomes_survive_a_sigkill_before_any_flush(small_artifact, logs_dir, api_key, tmp_path):
    lake = tmp_path / "outcomes"
    server = launch(small_artifact, logs_dir, api_key, tmp_path, lake.as_uri(), flush="3600")
    accepted = []
    for start in range(0, 100, 50):
        accepted += post(
            server, {"outcomes": [outcome(i) for i in range(start, start + 50)]}, api_key
        ).json()["outcome_ids"]
    server.stop(signal.SIGKILL)
    assert stored(lake) == {}
    again = launch(small_artifact, logs_dir, api_key, tmp_path, lake.as_uri(), flush="3600")
    assert again.stop(signal.SIGTERM) == 0
    assert set(stored(lake)) == set(accepted)
    assert sum(pq.read_metadata(path).num_rows for path in lake.rglob("*.parquet")) == 100, (
        "each outcome once"
    )


def test_a_store_outage_loses_no_accepted_outcome(moto_s3, small_artifact, logs_dir, api_key, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    server = launch(
        small_artifact,
        logs_dir,
        api_key,
        tmp_path,
        "s3://lake/scores/_outcomes",
        "--sink_s3_endpoint_url",
        moto_s3.endpoint_url,
        env=AWS_ENV,
    )

    def in_store() -> set[str]:
        client = moto_s3.client()
        keys = [
            o["Key"]
            for o in client.list_objects_v2(Bucket="lake", Prefix="scores/_outcomes/").get("Contents", [])
        ]
        return {
            row["outcome_id"]
            for key in keys
            for row in pq.read_table(
                io.BytesIO(client.get_object(Bucket="lake", Key=key)["Body"].read())
            ).to_pylist()
        }

    try:
        accepted = post(server, {"outcomes": [outcome(i) for i in range(10)]}, api_key).json()["outcome_ids"]
        wait_for(lambda: in_store() == set(accepted), timeout=30)
        moto_s3.stop()
        for start in range(10, 60, 25):
            answer = post(server, {"outcomes": [outcome(i) for i in range(start, start + 25)]}, api_key)
            assert answer.status_code == 200, "the outage must not reach the caller"
            accepted += answer.json()["outcome_ids"]
        time.sleep(1.5)  # uploads fail and are retried meanwhile
        moto_s3.start()
        wait_for(lambda: in_store() == set(accepted), timeout=60, interval=0.5)
    finally:
        server.stop()


def test_a_full_spool_refuses_calls_with_503_and_drops_nothing_it_answered_as_recorded(
    small_artifact, logs_dir, api_key, tmp_path
):
    """While the store is down the outcomes spool fills. The recorder went on answering `recorded: 50` and dropped
    those outcomes at the next flush (spool_full): the caller had no reason to resend. It now answers 503 with
    Retry-After once the spool may not hold a call, and every outcome it answered as recorded is on the spool.
    (After a drop of another kind, a resend is written: tests/unit/test_outcome_intake.py.)"""
    spool = tmp_path / "outcomes-spool"
    server = launch(
        small_artifact,
        logs_dir,
        api_key,
        tmp_path,
        "s3://lake/_outcomes",
        "--sink_s3_endpoint_url",
        f"http://127.0.0.1:{free_port()}",  # nothing listens: every upload fails, files stay on the spool
        "--outcomes_spool_max_bytes",
        "60000",
        env=AWS_ENV,
    )
    try:
        recorded: set[str] = set()
        refused = None
        for start in range(0, 5000, 50):
            answer = post(server, {"outcomes": [outcome(i) for i in range(start, start + 50)]}, api_key)
            if answer.status_code == 503:
                refused = answer
                break
            assert answer.status_code == 200 and answer.json()["recorded"] == 50, answer.text
            recorded.update(answer.json()["outcome_ids"])
            time.sleep(0.3)  # one spool file per call (flush every 0.2 s)
        assert refused is not None, "a 60 kB spool took 5,000 outcomes"
        assert refused.headers["retry-after"] and "retry" in refused.json()["error"]
        assert len(recorded) >= 100
        time.sleep(0.5)  # a last flush
        assert (
            metric(server.url, "lead_scoring_outcomes_sink_dropped_records_total", reason="spool_full") == 0
        )
        assert set(stored(spool)) == recorded  # every outcome answered as recorded waits on the spool
    finally:
        server.stop()


def test_without_an_outcomes_uri_the_route_says_so(small_artifact, logs_dir, api_key):
    server = start_transformer(small_artifact, logs_dir, api_keys=f"{KEY_NAME}:{api_key}")
    server.wait_ready()
    try:
        answer = post(server, {"outcomes": [outcome(0)]}, api_key)
        assert answer.status_code == 404 and "--outcomes_uri" in answer.json()["error"]
    finally:
        server.stop()


def test_the_openapi_document_describes_the_outcomes_route_as_it_answers(
    small_artifact, logs_dir, api_key, tmp_path
):
    """The route was left out of /openapi.json: no word of its key, its body, its answer or its rules."""
    from jsonschema import Draft202012Validator

    server = launch(small_artifact, logs_dir, api_key, tmp_path, (tmp_path / "outcomes").as_uri())
    try:
        document = httpx.get(server.url + "/openapi.json", timeout=10).json()
        operation = document["paths"]["/v1/outcomes"]["post"]
        assert operation["security"] == [{"ApiKey": []}]
        body = Draft202012Validator(operation["requestBody"]["content"]["application/json"]["schema"])
        answer_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        good = {"outcomes": [outcome(0), {**outcome(3), "deal_value": 12000, "scoring_id": "s-1"}]}
        body.validate(good)
        answer = post(server, good, api_key)
        assert answer.status_code == 200, answer.text
        Draft202012Validator(answer_schema).validate(answer.json())
        assert set(answer.json()) == set(answer_schema["required"])
        for bad in (
            {"outcomes": []},
            {"outcomes": [{**outcome(0), "occurred_at": 1700000000}]},
            {"outcomes": [{**outcome(0), "outcome": "won"}]},
            {"outcomes": [outcome(i) for i in range(51)]},  # --max_outcomes 50
            {"outcomes": [{**outcome(0), "scoring_id": "é-1"}]},  # printable ASCII: in the document too
            {"outcomes": [{**outcome(0), "request_id": "a\tb"}]},
        ):
            assert not body.is_valid(bad)
            assert post(server, bad, api_key).status_code == 400
    finally:
        server.stop()
