"""What a lead became: the outcomes contract, shared by the REST route, the bulk backfill and the quality job.

An outcome says that lead `lead_id` converted, was disqualified, or is still open at `occurred_at`, optionally with
the deal value and the id of the scoring it refers to (`scoring_id`, returned by the scoring answer, or the client's
`request_id`). The same outcome reported twice is one outcome: its identity is (lead_id, outcome, occurred_at), and
`outcome_key` turns that into a stable id the lake and the quality job dedupe on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from contract import lead_ids

OUTCOMES = ("converted", "disqualified", "open")
TERMINAL = ("converted", "disqualified")  # labels: converted = 1, disqualified = 0; open = not yet known
FUTURE_SKEW = timedelta(minutes=10)  # clocks of CRMs and of this server may disagree a little
# No lead became anything before 1970: an earlier date is a CRM's placeholder (0001-01-01, 1900-01-01), not an outcome,
# and the bound keeps every instant, converted to UTC, inside Python's datetime range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_NAMESPACE = uuid.UUID(
    "5d1c1f1e-8a4b-4c36-9a55-6c6561642d6f"
)  # fixed: the same outcome gets the same id everywhere


def _lead_id_rule(value: str) -> str:
    """Scoring's lead-id rule (contract/lead_ids.py) beyond the lengths pydantic checks: printable characters only."""
    found = lead_ids.problem(value)
    if found is not None:
        raise PydanticCustomError(
            found[0], f"must be {lead_ids.RULE_TEXT} (no control characters or line breaks)"
        )
    return value


def _whole_number_as_text(value: Any) -> Any:
    """A whole-number lead id is its decimal string, as on the V1 scoring route (contract/lead_ids.py): a client that
    scores `"lead_id": 12345` reports its outcome the same way."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = lead_ids.from_integer(value)
        if text is None:
            raise PydanticCustomError(
                "length", f"must be {lead_ids.RULE_TEXT}: a whole number of too many digits"
            )
        return text
    return value


def _printable_ascii_rule(value: str) -> str:
    """Ids the server made (scoring_id) or took from x-request-id hold printable ASCII only (the header's rule):
    anything else cannot name a recorded scoring, and would carry control characters into the lake."""
    if not (value.isascii() and value.isprintable()):
        raise PydanticCustomError("printable_ascii", "must be printable ASCII characters (space to '~')")
    return value


# What `_printable_ascii_rule` checks, for the OpenAPI document (an after-validator does not show in the schema).
_PRINTABLE_ASCII_SCHEMA = {"type": "string", "minLength": 1, "pattern": "^[ -~]+$"}


def _iso_instant_only(value: Any) -> Any:
    """pydantic also reads a number (or a numeric string) as Unix seconds: an integer `occurred_at` was stored as
    its UTC instant. The contract is ISO 8601 with a time zone (a Parquet timestamp from the backfill is a datetime
    already), so a number is refused, by JSON and by CSV alike."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise PydanticCustomError(
            "datetime_type",
            "must be an ISO 8601 date-time with a time zone (e.g. 2026-11-30T16:02:00Z), not a number",
        )
    return value


def _number_only(value: Any, info: ValidationInfo) -> Any:
    """pydantic reads `true` as 1 and "12000" as 12000.0: a JSON deal value is a number. Text is read only where
    every cell is text (the CSV backfill validates with context {"text": True})."""
    text_allowed = bool(info.context and info.context.get("text"))
    if isinstance(value, bool) or (isinstance(value, str) and not text_allowed):
        raise PydanticCustomError("float_type", "must be a number")
    return value


class Outcome(BaseModel):
    """One reported outcome. Unknown fields are refused, so a typo (`occured_at`) is an error, not a silent null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: Annotated[
        str,
        BeforeValidator(_whole_number_as_text),
        AfterValidator(_lead_id_rule),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "minLength": 1, "maxLength": lead_ids.MAX_LEAD_ID_LENGTH},
                    {"type": "integer"},
                ]
            }
        ),
    ] = Field(
        min_length=1,
        max_length=lead_ids.MAX_LEAD_ID_LENGTH,
        description="the lead's id, as sent when it was scored",
    )
    outcome: Literal["converted", "disqualified", "open"] = Field(description="what the lead became")
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_iso_instant_only)] = Field(
        description="when it happened (ISO 8601 with a time zone)"
    )
    # The bounds inside the float type, so a NaN is judged `finite` before `minimum`.
    deal_value: (
        Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False), BeforeValidator(_number_only)] | None
    ) = Field(None, description="deal value, converted only")
    # The lengths inside the str type: on the Optional they are a collection's (rules too_short / too_long).
    scoring_id: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=64),
            AfterValidator(_printable_ascii_rule),
            WithJsonSchema(_PRINTABLE_ASCII_SCHEMA | {"maxLength": 64}),
        ]
        | None
    ) = Field(None, description="x-scoring-id of the scoring it refers to")
    request_id: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=128),
            AfterValidator(_printable_ascii_rule),
            WithJsonSchema(_PRINTABLE_ASCII_SCHEMA | {"maxLength": 128}),
        ]
        | None
    ) = Field(None, description="the client's x-request-id of that scoring")


def outcome_key(lead_id: str, outcome: str, occurred_at: datetime) -> str:
    """Stable id of (lead_id, outcome, occurred_at): a uuid5 of the three, the instant normalised to UTC µs."""
    instant = occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(uuid.uuid5(_NAMESPACE, f"{lead_id}\x1f{outcome}\x1f{instant}"))


# pydantic error types → the rule names clients see (the same vocabulary as the lead validation)
_RULES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "literal_error": "enumeration",
    "string_too_short": "min_length",
    "string_too_long": "max_length",
    "greater_than_equal": "minimum",
    "less_than_equal": "maximum",
    "finite_number": "finite",
    "timezone_aware": "timezone",
    "datetime_parsing": "datetime",
    "datetime_from_date_parsing": "datetime",
    "datetime_type": "datetime",
    "string_type": "type",
    "float_parsing": "type",
    "float_type": "type",
    "model_type": "object",
    "dict_type": "object",
}


# Messages in the contract's words where pydantic's read oddly ("extra Extra inputs are not permitted").
_SAID = {
    "unknown_field": "is not a field of an outcome (lead_id, outcome, occurred_at, deal_value, scoring_id, "
    "request_id)",
    "object": "must be a JSON object (one outcome)",
}


def _short(value: Any) -> Any:
    if isinstance(value, str):
        return value[:64]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value)[:64]


def check_outcomes(
    items: list[Any], now: datetime | None = None, max_reported: int = 20, *, text: bool = False
) -> tuple[list[Outcome], list[dict], int]:
    """Validate every item. Returns (valid outcomes, the first problems as {row, field, rule, value, message}, the
    number of problems). `row` is the item's position in `items`."""
    now = now or datetime.now(UTC)
    valid: list[Outcome] = []
    problems: list[dict] = []
    total = 0
    for row, item in enumerate(items):
        try:
            outcome = Outcome.model_validate(item, context={"text": text})
        except ValidationError as error:
            for detail in error.errors():
                total += 1
                if len(problems) < max_reported:
                    # Not an object at all: the item itself, `outcomes`, is at fault (no field of it is).
                    field = ".".join(str(p) for p in detail.get("loc", ())) or "outcomes"
                    rule = _RULES.get(detail.get("type", ""), detail.get("type", "invalid"))
                    said = _SAID.get(rule) or detail.get("msg", "is invalid")
                    problems.append(
                        {
                            "row": row,
                            "field": field[:64],
                            "rule": rule,
                            "value": None if rule == "required" else _short(detail.get("input")),
                            "message": f"row {row}: {field[:64]} {said}",
                        }
                    )
            continue
        if outcome.occurred_at < EARLIEST:
            total += 1
            if len(problems) < max_reported:
                problems.append(
                    {
                        "row": row,
                        "field": "occurred_at",
                        "rule": "minimum",
                        "value": outcome.occurred_at.isoformat(),
                        "message": f"row {row}: occurred_at must be {EARLIEST:%Y-%m-%dT%H:%M:%SZ} or later",
                    }
                )
            continue
        if outcome.occurred_at > now + FUTURE_SKEW:
            total += 1
            if len(problems) < max_reported:
                problems.append(
                    {
                        "row": row,
                        "field": "occurred_at",
                        "rule": "not_in_future",
                        "value": outcome.occurred_at.isoformat(),
                        "message": f"row {row}: occurred_at lies in the future",
                    }
                )
            continue
        if outcome.deal_value is not None and outcome.outcome != "converted":
            total += 1
            if len(problems) < max_reported:
                problems.append(
                    {
                        "row": row,
                        "field": "deal_value",
                        "rule": "converted_only",
                        "value": outcome.deal_value,
                        "message": f"row {row}: deal_value is only meaningful for outcome 'converted'",
                    }
                )
            continue
        valid.append(outcome)
    return valid, problems, total
