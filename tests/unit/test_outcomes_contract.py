"""The outcomes contract: every rule named per row and field, one identity per (lead_id, outcome, occurred_at)."""

from datetime import UTC, datetime, timedelta, timezone

from contract.outcomes import check_outcomes, outcome_key

GOOD = {"lead_id": "L-1", "outcome": "converted", "occurred_at": "2026-11-30T16:02:00Z", "deal_value": 1200}


def rules(items) -> list[tuple]:
    _, problems, _ = check_outcomes(items, now=datetime(2026, 12, 4, tzinfo=UTC), max_reported=len(items))
    return [(p["row"], p["field"], p["rule"]) for p in problems]


def test_good_outcomes_pass_and_an_empty_optional_is_absent():
    valid, problems, total = check_outcomes([GOOD, {**GOOD, "outcome": "open", "deal_value": None}])
    assert total == 0 and problems == [] and len(valid) == 2


def test_each_bad_value_is_named_by_row_field_and_rule():
    items = [
        GOOD,
        {**GOOD, "outcome": "won"},
        {**GOOD, "occurred_at": "2026-11-30T16:02:00"},  # no zone
        {**GOOD, "occurred_at": "yesterday"},
        {**GOOD, "deal_value": -5},
        {**GOOD, "lead_id": ""},
        {"outcome": "converted", "occurred_at": GOOD["occurred_at"]},
        {**GOOD, "occured_at": "2026-11-30T16:02:00Z"},  # a typo is an unknown field
        {**GOOD, "outcome": "disqualified"},  # deal value only with converted
        {**GOOD, "occurred_at": "2027-01-01T00:00:00Z"},  # in the future
        "not an object",
        {**GOOD, "occurred_at": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC: no OverflowError
        {**GOOD, "occurred_at": "1969-12-31T23:59:59.999999Z"},  # before 1970
        {**GOOD, "lead_id": "a\nb\x00"},  # scoring's lead-id rule: printable characters only
        {**GOOD, "lead_id": "x" * 129},
        {**GOOD, "scoring_id": "a\nb"},  # server-made and header ids: printable ASCII, as x-request-id
        {**GOOD, "request_id": "caf\u00e9"},
        {**GOOD, "deal_value": True},  # pydantic read true as 1.0
        {**GOOD, "deal_value": "12000"},  # and a string as its number: JSON numbers only
        {**GOOD, "occurred_at": 1700000000},  # and a number as Unix seconds, stored as 2023-11-14 UTC
        {**GOOD, "occurred_at": "1700000000.5"},
        {**GOOD, "scoring_id": ""},  # the ids' lengths: the documented rule names, not pydantic's too_short
        {**GOOD, "request_id": "r" * 129},
    ]
    assert rules(items) == [
        (1, "outcome", "enumeration"),
        (2, "occurred_at", "timezone"),
        (3, "occurred_at", "datetime"),
        (4, "deal_value", "minimum"),
        (5, "lead_id", "min_length"),
        (6, "lead_id", "required"),
        (7, "occured_at", "unknown_field"),
        (8, "deal_value", "converted_only"),
        (9, "occurred_at", "not_in_future"),
        (10, "outcomes", "object"),  # the item itself, not its `outcome` field
        (11, "occurred_at", "minimum"),
        (12, "occurred_at", "minimum"),
        (13, "lead_id", "printable"),
        (14, "lead_id", "max_length"),
        (15, "scoring_id", "printable_ascii"),
        (16, "request_id", "printable_ascii"),
        (17, "deal_value", "type"),
        (18, "deal_value", "type"),
        (19, "occurred_at", "datetime"),
        (20, "occurred_at", "datetime"),
        (21, "scoring_id", "min_length"),
        (22, "request_id", "max_length"),
    ]


def test_the_csv_backfill_reads_a_deal_value_from_text_and_nothing_reads_true_as_a_number():
    (valid,), _, _ = check_outcomes([{**GOOD, "deal_value": "12000.5"}], text=True)
    assert valid.deal_value == 12000.5
    _, problems, _ = check_outcomes([{**GOOD, "deal_value": "true"}, {**GOOD, "deal_value": True}], text=True)
    assert [(p["row"], p["field"], p["rule"]) for p in problems] == [
        (0, "deal_value", "type"),
        (1, "deal_value", "type"),
    ]


def test_the_earliest_instant_is_1970_in_utc_whatever_the_zone_it_is_written_in():
    valid, _, total = check_outcomes(
        [
            {**GOOD, "occurred_at": "1970-01-01T00:00:00Z"},
            {**GOOD, "occurred_at": "1970-01-01T01:00:00+01:00"},
        ]
    )
    assert total == 0 and len(valid) == 2
    _, problems, _ = check_outcomes([{**GOOD, "occurred_at": "1970-01-01T00:59:59+01:00"}])
    assert problems[0]["message"] == "row 0: occurred_at must be 1970-01-01T00:00:00Z or later"


def test_a_lead_id_breaking_the_scoring_rule_is_named_and_the_rule_said():
    _, problems, _ = check_outcomes([{**GOOD, "lead_id": "tab\there"}])
    assert problems[0]["field"] == "lead_id" and problems[0]["rule"] == "printable"
    assert "printable characters" in problems[0]["message"]
    valid, _, _ = check_outcomes(
        [{**GOOD, "lead_id": "ü-Lead 7"}]
    )  # printable non-ASCII is fine, as for scoring
    assert valid[0].lead_id == "ü-Lead 7"


def test_identity_ignores_the_zone_an_instant_is_written_in_and_nothing_else():
    instant = datetime(2026, 11, 30, 16, 2, tzinfo=UTC)
    same = instant.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert outcome_key("L-1", "converted", instant) == outcome_key("L-1", "converted", same)
    assert outcome_key("L-1", "converted", instant) != outcome_key("L-1", "disqualified", instant)
    assert outcome_key("L-1", "converted", instant) != outcome_key("L-2", "converted", instant)
    assert outcome_key("L-1", "converted", instant) != outcome_key(
        "L-1", "converted", instant + timedelta(microseconds=1)
    )


def test_a_whole_number_lead_id_is_its_decimal_string_as_on_the_v1_scoring_route():
    """A client that scores `"lead_id": 12345` (V1 takes it, as "12345") reported the outcome the same way and got a
    400 type error."""
    from contract.outcomes import check_outcomes

    when = "2026-11-20T09:00:00Z"
    valid, problems, _ = check_outcomes(
        [
            {"lead_id": 12345, "outcome": "converted", "occurred_at": when},
            {"lead_id": "12345", "outcome": "converted", "occurred_at": when},
            {"lead_id": True, "outcome": "open", "occurred_at": when},
            {"lead_id": 10**200, "outcome": "open", "occurred_at": when},
        ]
    )
    assert [o.lead_id for o in valid] == ["12345", "12345"]  # the same lead, and so the same outcome_id
    assert [(p["row"], p["field"], p["rule"]) for p in problems] == [
        (2, "lead_id", "type"),
        (3, "lead_id", "length"),
    ]
