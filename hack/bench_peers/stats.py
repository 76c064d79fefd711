"""The statistics `make bench` reports, kept apart from the processes it drives so they can be tested on their own.

On a shared 2-core machine the weather changes from minute to minute: a target measured at 17:01 and its baseline
measured at 17:04 saw different machines. So a comparison is made *within* a round — both sides measured minutes
apart, interleaved — and only then summarised across rounds: the median of the per-round ratios and their spread
(min–max). A ratio of medians would mix rounds and hide that spread. A verdict is PASS or MISS on the median; when the
spread reaches across the target's bound, the verdict is flagged as not robust (another run may well flip it).

A throughput target can also carry a ceiling: what the target would reach, round by round, if it had every core of
the machine to itself at the CPU per lead it was measured at. A miss whose ceiling stays below the bound in every
round is not the weather: no quieter run can pass it without cutting CPU per lead, and the verdict says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    @property
    def relative(self) -> float:
        """(max − min) / median: how far apart the rounds were, as a share of the typical value."""
        return (self.high - self.low) / self.median if self.median else float("inf")


def spread(values: list[float | None]) -> Spread | None:
    """Median and min–max of the values that were measured (None = not measured); None when there are none."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))


def per_round_ratios(mine: Mapping[int, float | None], base: Mapping[int, float | None]) -> dict[int, float]:
    """`mine[r] / base[r]` for every round r measured on both sides (and with a non-zero baseline)."""
    return {
        r: mine[r] / base[r]
        for r in sorted(mine.keys() & base.keys())
        if mine[r] is not None and base[r] not in (None, 0)
    }


def per_round_differences(
    mine: Mapping[int, float | None], base: Mapping[int, float | None]
) -> dict[int, float]:
    """`mine[r] − base[r]` for every round measured on both sides (e.g. RSS above the stock transformer's)."""
    return {
        r: mine[r] - base[r]
        for r in sorted(mine.keys() & base.keys())
        if mine[r] is not None and base[r] is not None
    }


@dataclass(frozen=True)
class Verdict:
    name: str
    values: list[float]  # one per round (or per start): the raw data behind the verdict
    bound: float
    at_least: bool  # True: value ≥ bound passes; False: value ≤ bound passes
    summary: Spread | None
    ceiling: Spread | None = None  # at-least targets: the best the measured CPU per lead allows (see above)

    @property
    def passed(self) -> bool:
        if self.summary is None:
            return False
        return self.summary.median >= self.bound if self.at_least else self.summary.median <= self.bound

    @property
    def overlaps(self) -> bool:
        """The spread reaches across the bound: some rounds passed and some missed (or sat on it)."""
        return self.summary is not None and self.summary.low <= self.bound <= self.summary.high

    @property
    def out_of_reach(self) -> bool:
        """Missed, and even every core at the measured CPU per lead stays below the bound in every round."""
        return (
            self.at_least and not self.passed and self.ceiling is not None and self.ceiling.high < self.bound
        )

    @property
    def label(self) -> str:
        if self.summary is None:
            return "NOT MEASURED"
        label = ("PASS" if self.passed else "MISS") + (" (spread overlaps target)" if self.overlaps else "")
        if self.out_of_reach:
            label += " (out of reach at this CPU per lead)"
        return label


def verdict(
    name: str,
    values: list[float | None],
    bound: float,
    at_least: bool,
    ceiling: list[float | None] | None = None,
) -> Verdict:
    present = [v for v in values if v is not None]
    return Verdict(name, present, bound, at_least, spread(present), spread(ceiling or []))
