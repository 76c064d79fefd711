"""What a lead id may be: the client's own key for a lead, echoed in the answer and stored in the data lake.

A lead id ends up in clients' CRMs and in the lake's `lead_id` column, so it is held to a small, documented rule:
a string of 1 to `MAX_LEAD_ID_LENGTH` printable characters (no control characters, no line breaks). V1 clients may
send a whole number, which is written as its decimal string; anything else (objects, lists, floats, booleans) is
refused rather than turned into a Python repr.
"""

from __future__ import annotations

MAX_LEAD_ID_LENGTH = 128
RULE_TEXT = f"a string of 1 to {MAX_LEAD_ID_LENGTH} printable characters"
# A whole number longer than this many digits cannot be a valid id: refuse it without building its decimal string
# (CPython refuses str() of integers past 4,300 digits anyway).
_MAX_ID_INT = 10**MAX_LEAD_ID_LENGTH


def shown(value: str) -> str:
    """A refused id as it may appear in an error message: short, and with control characters escaped."""
    cut = value[:40]
    return (cut if cut.isprintable() else cut.encode("unicode_escape").decode("ascii")) + (
        "…" if len(value) > 40 else ""
    )


def problem(value: str) -> tuple[str, str] | None:
    """(rule, message) when the string `value` breaks the lead-id rule, else None."""
    if not value:
        return "length", f"lead_id must be {RULE_TEXT}, got an empty string"
    if len(value) > MAX_LEAD_ID_LENGTH:
        return "length", f"lead_id must be {RULE_TEXT}, got {len(value)} characters"
    if not value.isprintable():
        return "printable", f"lead_id must be {RULE_TEXT}, got control or non-printable characters"
    return None


def from_integer(value: int) -> str | None:
    """The id a whole number stands for, or None when it has too many digits to be one."""
    if abs(value) >= _MAX_ID_INT:
        return None
    return str(value)
