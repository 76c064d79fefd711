"""The client's correlation id (`x-request-id`): what is accepted, and what a request that sends none gets.

The id goes further than this process: it is echoed in the `x-request-id` response header, written to the request
log line and the data lake, and forwarded to the predictor as gRPC metadata or an HTTP header. gRPC metadata values
may hold only printable ASCII (0x20-0x7E), and httpx encodes header values as ASCII, so an id outside that set
cannot be forwarded: the predictor call failed with a 500, for the sender and for every request coalesced into the
same call. Hence the rule: 1 to `MAX_LENGTH` printable ASCII characters. An empty header counts as none sent.

An id that breaks the rule is refused with a 400 naming the header and the rule, never replaced in silence: clients
join on it (their logs, the lake's `request_id`, outcomes), and a substitute would break that join without a word.
The refusal itself carries a server-made id, like a request that sent none.
"""

from __future__ import annotations

import uuid

from transformer.errors import InvalidRequest

HEADER = "x-request-id"
MAX_LENGTH = 128
RULE_TEXT = f"1 to {MAX_LENGTH} printable ASCII characters (space to '~'; no control characters)"


def new_request_id() -> str:
    """The id of a request that sent none (or one that was refused): 32 hex characters."""
    return uuid.uuid4().hex


def valid(value: str) -> bool:
    """True when `value` may be used, echoed and forwarded as it is."""
    # All three are single C-level passes; for an ASCII string isprintable() is exactly 0x20-0x7E.
    return 0 < len(value) <= MAX_LENGTH and value.isascii() and value.isprintable()


def shown(value: str) -> str:
    """A refused id as it may appear in an answer: short, with anything outside printable ASCII escaped."""
    cut = value[:40].encode("unicode_escape").decode("ascii")
    return cut + ("…" if len(value) > 40 else "")


def problem(value: str) -> dict | None:
    """The problem (`{row, field, rule, value, message}`, as for leads) when `value` breaks the rule, else None."""
    if valid(value):
        return None
    if not value or len(value) > MAX_LENGTH:
        rule, got = "length", f"got {len(value)} characters"
    else:
        position, char = next((i, c) for i, c in enumerate(value, 1) if not (c.isascii() and c.isprintable()))
        rule, got = "printable_ascii", f"got U+{ord(char):04X} at character {position}"
    return {
        "row": None,
        "field": HEADER,
        "rule": rule,
        "value": shown(value),
        "message": f"{HEADER} must be {RULE_TEXT}, {got}",
    }


def refusal(refused: dict) -> InvalidRequest:
    """The 400 / INVALID_ARGUMENT for an id `problem` refused; raised once the caller's key has been checked."""
    return InvalidRequest(
        f"header {refused['message']}: send an id that follows the rule, or none and the server makes one",
        [refused],
    )
