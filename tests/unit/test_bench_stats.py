"""The statistics behind `make bench`'s verdicts: per-round ratios, their spread, and the overlap flag."""

from __future__ import annotations

import pytest

from hack.bench_peers.stats import per_round_differences, per_round_ratios, spread, verdict


def test_ratios_are_taken_within_each_round_not_across_medians():
    # Round 2 was a slow minute for both sides; ours stayed 2× the baseline in every round.
    mine = {1: 2000.0, 2: 800.0, 3: 2200.0}
    base = {1: 1000.0, 2: 400.0, 3: 1100.0}
    assert per_round_ratios(mine, base) == {1: 2.0, 2: 2.0, 3: 2.0}
    assert spread(list(per_round_ratios(mine, base).values())).median == 2.0
    # A ratio of medians would say 2000/1000 here too, but with a shifted baseline it would not:
    skewed_base = {1: 1000.0, 2: 1400.0, 3: 400.0}
    assert sorted(per_round_ratios(mine, skewed_base).values()) == pytest.approx([800 / 1400, 2.0, 5.5])


def test_rounds_missing_on_either_side_or_with_a_zero_baseline_are_left_out():
    assert per_round_ratios({1: 3.0, 2: 4.0, 4: 1.0}, {1: 1.5, 3: 2.0, 4: 0.0}) == {1: 2.0}
    assert per_round_ratios({1: None}, {1: 1.0}) == {}
    assert per_round_differences({1: 180.0, 2: 170.0}, {2: 141.0, 3: 140.0}) == {2: 29.0}


def test_spread_is_median_and_min_max_of_what_was_measured():
    s = spread([1.2, None, 0.8, 1.0, 3.0])
    assert (s.median, s.low, s.high, s.n) == (1.1, 0.8, 3.0, 4)
    assert s.relative == pytest.approx((3.0 - 0.8) / 1.1)
    assert spread([None]) is None
    assert spread([]) is None


def test_at_least_target_passes_on_the_median_and_flags_a_spread_across_the_bound():
    robust = verdict("x FastAPI", [1.9, 2.0, 2.1], 1.8, at_least=True)
    assert robust.passed and not robust.overlaps and robust.label == "PASS"
    shaky = verdict("x FastAPI", [1.5, 1.9, 2.0], 1.8, at_least=True)
    assert shaky.passed and shaky.overlaps and shaky.label == "PASS (spread overlaps target)"
    missed = verdict("x FastAPI", [1.2, 1.3, 1.9], 1.8, at_least=True)
    assert not missed.passed and missed.overlaps and missed.label == "MISS (spread overlaps target)"
    assert verdict("x FastAPI", [1.0, 1.1], 1.8, at_least=True).label == "MISS"


def test_at_most_target_passes_when_the_median_is_at_or_below_the_bound():
    assert verdict("cold start", [1.0, 1.1, 1.15], 1.2, at_least=False).label == "PASS"
    assert (
        verdict("cold start", [1.1, 1.3, 1.4], 1.2, at_least=False).label == "MISS (spread overlaps target)"
    )
    assert verdict("cold start", [1.3, 1.4, 1.5], 1.2, at_least=False).label == "MISS"
    # A value sitting exactly on the bound counts as reaching it, both ways.
    assert verdict("rss", [20.0, 25.0], 25.0, at_least=False).overlaps


def test_nothing_measured_is_never_a_pass():
    empty = verdict("split x pair", [None, None], 2.0, at_least=True)
    assert not empty.passed and not empty.overlaps and empty.label == "NOT MEASURED"


def test_a_miss_whose_ceiling_stays_below_the_bound_in_every_round_is_out_of_reach():
    structural = verdict("split batch x pair", [1.7, 1.8, 2.0], 4.0, at_least=True, ceiling=[2.3, 2.5, 2.9])
    assert structural.out_of_reach
    assert structural.label == "MISS (out of reach at this CPU per lead)"
    assert (structural.ceiling.median, structural.ceiling.high) == (2.5, 2.9)
    # One round whose ceiling reaches the bound: a quieter run might still pass, so it is only a miss.
    weather = verdict("batch leads/s", [60_000, 70_000], 100_000, at_least=True, ceiling=[90_000, 120_000])
    assert not weather.out_of_reach and weather.label == "MISS"
    # A pass is never out of reach, and a target without a ceiling never is either.
    assert not verdict("x", [5.0], 4.0, at_least=True, ceiling=[3.0]).out_of_reach
    assert not verdict("x", [1.0], 4.0, at_least=True).out_of_reach
    assert verdict("x", [1.0], 4.0, at_least=True).ceiling is None
