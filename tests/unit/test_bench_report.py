"""`make bench`'s verdicts from per-round records: the ceiling each throughput target carries, and the report."""

from __future__ import annotations

import orjson
import pytest

from hack.bench import ceiling, context_ratios, jsonable, markdown, verdicts

_META = {
    "rounds": 2,
    "seconds": 8,
    "warmup": 1,
    "threads": 2,
    "connections": 16,
    "nproc": 2,
    "loadavg_at_start": (0.5, 0.5, 0.5),
}


def _run(leads_s: float, cpu_ms_per_lead_all: float) -> dict:
    return {"leads_s": leads_s, "req_s": leads_s / 100, "cpu_ms_per_lead_all": cpu_ms_per_lead_all}


def _rounds(ours: list[tuple[float, float]], pair: list[tuple[float, float]]) -> list[dict]:
    return [
        {
            "round": n,
            "targets": {"d": {"runs": {"batch": _run(*mine)}}, "b": {"runs": {"batch": _run(*base)}}},
        }
        for n, (mine, base) in enumerate(zip(ours, pair, strict=True), start=1)
    ]


def test_the_ceiling_is_every_core_at_the_measured_cpu_per_lead_over_the_same_rounds_baseline():
    # Round 1: 0.025 ms a lead on 2 cores is at most 80,000 leads/s, against the pair's 32,000 → 2.5×.
    records = _rounds([(60_000, 0.025), (50_000, 0.020)], [(32_000, 0.056), (25_000, 0.060)])
    assert ceiling(records, "d", "batch", cores=2) == pytest.approx([80_000, 100_000])
    assert ceiling(records, "d", "batch", cores=2, base="b") == pytest.approx([2.5, 4.0])
    assert ceiling(records, "d", "batch", cores=4, base="b") == pytest.approx([5.0, 8.0])


def test_split_batch_is_reported_out_of_reach_only_when_no_round_could_reach_four_times_the_pair():
    structural = _rounds([(60_000, 0.025), (58_000, 0.026)], [(32_000, 0.056), (30_000, 0.058)])
    check = next(v for v in verdicts(structural, None, cores=2) if v.name.startswith("split gRPC batch"))
    assert check.out_of_reach and "out of reach" in check.label

    reachable = _rounds([(60_000, 0.025), (58_000, 0.012)], [(32_000, 0.056), (30_000, 0.058)])
    check = next(v for v in verdicts(reachable, None, cores=2) if v.name.startswith("split gRPC batch"))
    assert not check.out_of_reach and check.label == "MISS"


def test_the_report_and_its_json_carry_the_ceiling():
    records = _rounds([(60_000, 0.025), (58_000, 0.026)], [(32_000, 0.056), (30_000, 0.058)])
    checks = verdicts(records, None, cores=2)
    meta = {"rounds": 2, "seconds": 8, "warmup": 1, "threads": 2, "connections": 16, "nproc": 2}
    table = markdown({}, checks, [], None, {}, {**meta, "loadavg_at_start": (0.5, 0.5, 0.5)})
    row = next(line for line in table.splitlines() if line.startswith("| split gRPC batch"))
    assert "2.53 [2.5–2.56]" in row and "MISS (out of reach at this CPU per lead)" in row
    saved = orjson.loads(
        orjson.dumps(
            checks, option=orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS, default=jsonable
        )
    )
    split = next(v for v in saved if v["name"].startswith("split gRPC batch"))
    assert split["out_of_reach"] is True
    assert split["ceiling"]["high"] == pytest.approx(2.0 / 0.026 * 1000 / 30_000)
    # A verdict with nothing measured (here the p99 ratio has no single-lead runs) still serialises.
    assert any(v["summary"] is None for v in saved)


def _in_process_rounds(
    every_feature: list[tuple[float, float]], without: list[tuple[float, float]]
) -> list[dict]:
    """Rounds of (f) and (o), single leads: (leads/s, the transformer's CPU ms per lead)."""

    def run(leads_s: float, cpu: float) -> dict:
        return {"leads_s": leads_s, "cpu_ms_per_lead_all": cpu, "cpu_ms_per_lead": {"transformer": cpu}}

    return [
        {"round": n, "targets": {"f": {"runs": {"single": run(*mine)}}, "o": {"runs": {"single": run(*off)}}}}
        for n, (mine, off) in enumerate(zip(every_feature, without, strict=True), start=1)
    ]


def test_the_report_sets_what_the_lake_and_log_line_cost_beside_the_single_lead_cpu_target():
    records = _in_process_rounds([(2_000, 0.50), (1_800, 0.60)], [(2_400, 0.40), (2_000, 0.48)])
    rows = {row["name"]: row for row in context_ratios(records)}
    # Per round, (f)'s CPU per lead over (o)'s of the same round: 1.25 both times, not a ratio of medians.
    cost = rows["CPU/lead: in-process, every feature on ÷ no lake and no request log line, single"]
    assert cost["per_round"] == pytest.approx({1: 1.25, 2: 1.25})
    alone = rows["(o) single: the transformer's CPU ms per lead with no lake and no request log line"]
    assert alone["per_round"] == pytest.approx({1: 0.40, 2: 0.48})
    table = markdown({}, verdicts(records, None, cores=2), context_ratios(records), None, {}, _META)
    assert (
        "| (o) single: the transformer's CPU ms per lead with no lake and no request log line | 0.400, 0.480 |"
        in table
    )
    # Without (o) in the run there is nothing to set beside the target, and no row pretends otherwise.
    only_f = [{"round": r["round"], "targets": {"f": r["targets"]["f"]}} for r in records]
    assert not [row for row in context_ratios(only_f) if "no request log line" in row["name"]]


def test_target_o_runs_the_in_process_transformer_with_no_lake_and_warning_level_logs(
    monkeypatch, small_artifact, tmp_path
):
    from hack import bench
    from hack.bench_peers.workload import Workload
    from transformer.cli import build_parser

    launched = []
    monkeypatch.setattr(bench, "start_transformer", lambda *a, **k: launched.append(k) or object())
    monkeypatch.setattr(bench, "ready", lambda server, path: server)
    work = Workload.build(small_artifact, batch_size=5, rotation=4)
    targets = {t.key: t for t in bench.build_targets(small_artifact, work, "k", tmp_path)}
    targets["o"].start(tmp_path / "logs")
    targets["f"].start(tmp_path / "logs")
    off, every = (build_parser({}).parse_args(["--model_card_uri", "x", *k["extra_args"]]) for k in launched)
    assert off.sink_uri is None and off.log_level == "WARNING" and launched[0]["predictor"] is None
    assert every.sink_uri and every.log_level == "INFO" and launched[1]["predictor"] is None
