"""The outcome intake against the real outcomes sink: what it answers, what it counts, and what it remembers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from transformer.auth import KeyStore
from transformer.errors import InvalidRequest
from transformer.outcome_intake import OUTCOMES_RECEIVED, OutcomeIntake, OutcomesUnavailable
from transformer.sink import SinkConfig
from transformer.sink.outcomes import OUTCOME_METRICS, outcome_sink

KEY = "k-" + "x" * 30
DAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def outcome(i: int, day: int = 0) -> dict:
    return {
        "lead_id": f"L-{i}",
        "outcome": "open",
        "occurred_at": (DAY + timedelta(days=day, minutes=i)).isoformat(),
    }


def received(result: str) -> float:
    return OUTCOMES_RECEIVED.labels("open", result)._value.get()


def dropped() -> float:
    return sum(
        OUTCOME_METRICS.DROPPED_RECORDS.labels(reason=r)._value.get() for r in OUTCOME_METRICS.DROP_REASONS
    )


@pytest.fixture
def sink(tmp_path):
    """Not started: what is submitted stays queued, so `queue_max_records` is reached on purpose."""
    recorder = outcome_sink(
        SinkConfig(uri=(tmp_path / "lake").as_uri(), spool_dir=tmp_path / "spool", queue_max_records=5)
    )
    yield recorder
    recorder.close(grace_seconds=0)


def test_a_repeat_within_a_call_is_counted_as_the_answer_says(sink):
    intake = OutcomeIntake(KeyStore(env_keys=f"crm:{KEY}"), sink)
    before = received("recorded"), received("duplicate")
    answer = intake.accept(KEY, {"outcomes": [outcome(1), outcome(1), outcome(2)]}, "call-1")
    assert (answer["recorded"], answer["duplicates"]) == (2, 1)
    assert (received("recorded") - before[0], received("duplicate") - before[1]) == (2, 1)


def test_a_full_recorder_is_a_503_not_a_drop_and_what_went_in_is_counted(sink):
    intake = OutcomeIntake(KeyStore(env_keys=f"crm:{KEY}"), sink)
    before, lost = received("recorded"), dropped()
    # Two days of occurred_at: two batches. The first (5) fills the queue; the second is refused.
    with pytest.raises(OutcomesUnavailable):
        intake.accept(KEY, {"outcomes": [outcome(i) for i in range(5)] + [outcome(9, day=1)]}, "call-1")
    assert received("recorded") - before == 5, "the 5 the recorder took are counted"
    assert dropped() == lost, "the caller heard 503 and retries: nothing was lost"
    # The retry: the first 5 are remembered (duplicates); the rest is refused again while the queue is full.
    with pytest.raises(OutcomesUnavailable):
        intake.accept(KEY, {"outcomes": [outcome(i) for i in range(5)] + [outcome(9, day=1)]}, "call-2")
    assert received("recorded") - before == 5


def test_after_a_drop_a_resend_is_written_not_answered_as_a_duplicate(tmp_path):
    """docs/operations.md (LeadScoringOutcomesDropped): the callers resend. The replica used to answer every
    resend `recorded: 0, duplicates: N` until it restarted, so the dropped outcomes were never written."""
    # The day's spool folder cannot be made (a file is in its way): flushing the queue drops what it held
    # (disk_error), as a failing disk would. (A full spool refuses outcomes before it takes them: below.)
    spool = tmp_path / "spool"
    sink = outcome_sink(SinkConfig(uri=(tmp_path / "lake").as_uri(), spool_dir=spool))
    (spool / f"dt={DAY:%Y-%m-%d}").write_bytes(b"")
    intake = OutcomeIntake(KeyStore(env_keys=f"crm:{KEY}"), sink)
    sink.add_drop_listener(intake.forget)
    call = {"outcomes": [outcome(i) for i in range(3)]}
    try:
        assert intake.accept(KEY, call, "call-1")["recorded"] == 3
        assert intake.accept(KEY, call, "call-2")["duplicates"] == 3, "before a drop a retry is a duplicate"
        lost = dropped()
        sink.flush()
        assert dropped() - lost == 3
        assert intake.accept(KEY, call, "call-3")["recorded"] == 3
    finally:
        sink.close(grace_seconds=0)


def test_a_call_the_spool_has_no_room_for_is_refused_503_not_recorded_and_dropped(tmp_path):
    """The recorder answered "recorded" while its spool could not hold the outcomes, then dropped them at the flush
    (spool_full). A spool too small for any file takes a first call (nothing says yet what a file weighs), refuses
    it at the flush, and from then on refuses calls: 503, which the caller retries, and nothing counted as lost."""
    sink = outcome_sink(
        SinkConfig(uri=(tmp_path / "lake").as_uri(), spool_dir=tmp_path / "spool", spool_max_bytes=1000)
    )
    intake = OutcomeIntake(KeyStore(env_keys=f"crm:{KEY}"), sink)
    sink.add_drop_listener(intake.forget)
    try:
        assert intake.accept(KEY, {"outcomes": [outcome(i) for i in range(3)]}, "call-1")["recorded"] == 3
        with pytest.raises(OutcomesUnavailable):  # 3 more would need room the spool may not have
            intake.accept(KEY, {"outcomes": [outcome(i) for i in range(3, 6)]}, "call-2")
        sink.flush()  # the first call's file does not fit: dropped, counted (its caller is told nothing)
        lost = dropped()
        with pytest.raises(OutcomesUnavailable):
            intake.accept(KEY, {"outcomes": [outcome(9)]}, "call-3")
        assert dropped() == lost
    finally:
        sink.close(grace_seconds=0)


def test_every_call_gets_one_log_line_with_its_request_id_and_never_the_key(sink, caplog):
    intake = OutcomeIntake(KeyStore(env_keys=f"crm:{KEY}"), sink)
    with caplog.at_level(logging.INFO, logger="transformer.requests"):
        intake.accept(KEY, {"outcomes": [outcome(1)]}, "call-ok")
        with pytest.raises(InvalidRequest):
            intake.accept(KEY, {"outcomes": [outcome(1)], "scoring_id": "S-1"}, "call-bad")
        with pytest.raises(Exception, match="(?i)key"):
            intake.accept("wrong", {"outcomes": [outcome(1)]}, "call-keyless")
    lines = {r.request_id: r for r in caplog.records if r.name == "transformer.requests"}
    assert set(lines) == {"call-ok", "call-bad", "call-keyless"}
    assert (lines["call-ok"].outcome, lines["call-ok"].status, lines["call-ok"].recorded) == ("ok", 200, 1)
    assert (lines["call-bad"].outcome, lines["call-bad"].status) == ("invalid", 400)
    assert "scoring_id" in lines["call-bad"].error and lines["call-bad"].key_name == "crm"
    assert (lines["call-keyless"].status, lines["call-keyless"].key_name) == (401, None)
    assert all(KEY not in str(vars(r)) for r in caplog.records)


def test_every_outcomes_series_exists_before_the_first_call():
    """increase() takes a series' first sample as its start: a refusal counted on a series born with it was never
    seen by the dashboard or an alert (the first `unavailable` of a replica, for one)."""
    from prometheus_client import REGISTRY, generate_latest

    text = generate_latest(REGISTRY).decode()
    for reason in ("unauthorized", "invalid", "rate_limited", "unavailable", "cancelled"):
        assert f'lead_scoring_outcomes_rejected_total{{reason="{reason}"}}' in text
    for outcome_kind in ("converted", "disqualified", "open"):
        for result in ("recorded", "duplicate"):
            assert (
                f'lead_scoring_outcomes_received_total{{outcome="{outcome_kind}",result="{result}"}}' in text
            )


def test_a_body_refused_for_its_shape_says_what_is_wrong_and_how_much(sink):
    """`outcomes` present but not a list was reported as missing (`required`); 25 unknown members were reported as a
    problem_count of 20, the number listed."""
    intake = OutcomeIntake(KeyStore(env_keys=f"crm:{KEY}"), sink)
    with pytest.raises(InvalidRequest) as not_a_list:
        intake.accept(KEY, {"outcomes": "x"}, "call-1")
    assert [(p["field"], p["rule"]) for p in not_a_list.value.problems] == [("outcomes", "type")]
    with pytest.raises(InvalidRequest) as missing:
        intake.accept(KEY, {"outcome": []}, "call-2")
    assert [(p["field"], p["rule"]) for p in missing.value.problems] == [("outcomes", "required")]
    with pytest.raises(InvalidRequest) as crowded:
        intake.accept(KEY, {"outcomes": [outcome(0)], **{f"extra{i}": i for i in range(25)}}, "call-3")
    body = crowded.value.body()
    assert len(body["problems"]) == 20 and body["problem_count"] == 25
