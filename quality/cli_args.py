"""Arguments shared by the model-quality commands (quality.report, quality.backfill, predictor.train --from-lake).

Each one refuses what the command could not use at parse time, with argparse's one-line message and exit code 2,
instead of an OverflowError deep in the date arithmetic (`--days 1e6`), or a silently empty window (`--days -5`).
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime

MAX_DAYS = (
    36_525  # 100 years: more than the lake can hold (outcomes start in 1970), far from datetime's limits
)
EARLIEST = datetime(
    1970, 1, 1, tzinfo=UTC
)  # no outcome occurred earlier (contract/outcomes.py, rule minimum)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_GRACE_SECONDS = 86_400.0


def _number(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return number


def days(text: str) -> float:
    """A number of days: finite, > 0, at most MAX_DAYS."""
    number = _number(text)
    if not 0 < number <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be > 0 and at most {MAX_DAYS:,} (100 years), got {text!r}")
    return number


def grace_seconds(text: str) -> float:
    """A grace period in seconds: finite, >= 0, at most a day."""
    number = _number(text)
    if not 0 <= number <= MAX_GRACE_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be >= 0 and at most {MAX_GRACE_SECONDS:,.0f} (a day), got {text!r}"
        )
    return number


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant (no zone = UTC), aware."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def instant(text: str) -> datetime:
    """An ISO 8601 instant (no zone = UTC) from EARLIEST to LATEST, in UTC."""
    try:
        moment = parse_time(text).astimezone(UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date-time such as 2026-11-30T00:00:00Z, got {text!r}"
        ) from None
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past datetime's last instant in UTC
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise argparse.ArgumentTypeError(
            f"must be from {EARLIEST:%Y-%m-%dT%H:%M:%SZ} to {LATEST:%Y-%m-%dT%H:%M:%SZ}, got {text!r}"
        )
    return moment


def add_outcomes_uri(parser: argparse.ArgumentParser) -> None:
    """`--outcomes-uri`, the same in every command that takes it (quality.backfill writes there, quality.report
    reads there); `outcomes_uri(args)` resolves it."""
    parser.add_argument(
        "--outcomes-uri",
        default=None,
        help="the outcomes table (the transformer's --outcomes_uri), if not <lake>/_outcomes",
    )


def outcomes_uri(args: argparse.Namespace) -> str:
    """The outcomes table of parsed arguments: --outcomes-uri, else <--lake>/_outcomes."""
    # Imported here: predictor.train imports this module and must not load the lake's (transformer) writers.
    from quality.lake import OUTCOMES_PREFIX, child_uri

    return args.outcomes_uri or child_uri(args.lake, OUTCOMES_PREFIX)
