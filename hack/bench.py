"""`make bench` (issues 8 and 17): ours against stock KServe and a plain FastAPI service, on this machine, in one run.

    python -m hack.bench --model-dir predictor/model [--rounds 5] [--seconds 8] [--quick] [--profile]

Targets, real processes on loopback, driven by wrk (-t2 -c16):
  a  stock KServe transformer (preprocess passes through) → predictor, REST v2 hop
  b  the same, gRPC v2 hop                                                    ("the stock gRPC pair")
  c  plain FastAPI: pydantic LeadFeatures, API key, in-process inplace_predict, TierMap, 1 uvicorn worker
  d  ours, split mode, gRPC hop        } every feature on: API key, validation, tiers, data lake (file:// + spool),
  e  ours, split mode, REST hop        } metrics, drift, one JSON log line per request to a file
  f  ours, in-process booster          }  (+ V1 named-field bodies, + a batch with reason codes)
  g  f with `--sink_encoder process`: lake files encoded in a child process (single and batch; its RSS and CPU
     include the child)
  h  d with `--sink_encoder process` (not in the default set: `--targets bdh`)
  i  g with its lake on S3 (a moto server in its own process, hack/bench_peers/moto_s3.py): uploads from the server
  j  i with `--sink_uploader process`: uploads from a child process
  k  g with its lake on Azure Blob (azurite in its own process, hack/azurite.py): uploads from the server
  l  k with `--sink_uploader process` (k and l are not in the default set: `--targets gkl`)
  o  f with no data lake and no request log line: what those two cost, by difference (not in the default set:
     `--targets cfo`)
  m  f on uvloop (`--event-loop uvloop`)                   } not in the default set: `--targets fm`, `--targets bdn`
  n  d on uvloop                                          } (the default loop is asyncio's: docs/performance.md)

A shared 2-core machine changes its weather from minute to minute, so the run is built for per-round comparison:
* Each round starts every target (spawn → the model's ready route answering 200 is the cold start; targets start one
  after another, so no start competes with another), checks every body's answer against the booster's own scores,
  then runs each workload on each target in turn — single a b c d e f g, batch a b c d e f g, … — so a target and its
  baseline are measured a minute apart at most. The order is rotated every round (round 2 starts with b, …) so no
  target always runs first or last. RSS is read once the round's load is over. All targets are stopped at the end of
  the round; the next round starts them afresh (≥ 5 cold starts per target by default).
* Every ratio is taken within a round, against the baseline measured in that same round; the report gives the median
  of those per-round ratios and their min–max, and flags a verdict whose spread reaches across its target. A
  throughput target also gets its ceiling (every core at the CPU per lead measured); a miss whose ceiling stays
  below the bound in every round is labelled out of reach.
* CPU ms per lead is utime+stime of each process (with its children) over the timed window, per process; RSS is
  VmRSS of each process with its children.
* Bodies rotate: 32 different bodies per workload, drawn from the synthetic population (hack/bench_peers/workload.py).
* Each of our runs also counts its predictor calls (the transformer's coalescing histogram on /metrics), and each
  round times xgboost alone once every server is stopped, so the report can say how much of the in-process CPU per
  lead is the library's own cost at the leads per call measured (hack/bench_peers/xgboost_share.py).
wrk shares the 2 cores with the servers, so every number includes the load generator's share.
Writes bench-results/bench-<UTC>.json (every round's raw data) and prints markdown tables. Exit 1 on any error,
wrong answer or dead server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import secrets
import shutil

# subprocess runs hack.bench_sink, the RSS probe and py-spy only (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import httpx
import orjson

from hack.azurite import Azurite, azurite_container
from hack.bench_peers.launch import start_fastapi_service, start_stock_transformer
from hack.bench_peers.measure import (
    BenchError,
    cpu_seconds,
    rss_mb,
    run_probe,
    run_wrk,
    wait_ready,
    with_children,
    write_script,
)
from hack.bench_peers.moto_s3 import S3_ENV, s3_server
from hack.bench_peers.stages import stage_shares
from hack.bench_peers.stats import Verdict, per_round_differences, per_round_ratios, spread, verdict
from hack.bench_peers.stock_env import stock_python
from hack.bench_peers.workload import (
    TOLERANCE,
    Bodies,
    Workload,
    max_difference,
    peer_scores,
    v1_scores,
    v2_scores,
)
from hack.bench_peers.xgboost_share import coalesced_totals, leads_per_call, share_rows, xgboost_call_us
from hack.stack import MODEL_NAME, ROOT, Server, start_predictor, start_transformer

V2_PATH = f"/v2/models/{MODEL_NAME}/infer"
V1_PATH = f"/v1/models/{MODEL_NAME}:predict"
READY_PATH = f"/v2/models/{MODEL_NAME}/ready"
BATCH = 100
XGBOOST_VERSION = metadata.version("xgboost-cpu")
KINDS = ("single", "batch", "single-v1", "batch-v1", "batch+reasons")


@dataclass
class Load:
    """One workload a target is driven with: where it goes, the rotating bodies, how its scores are read."""

    kind: str
    path: str
    bodies: Bodies
    scores_of: Callable[[dict], object]

    @property
    def leads(self) -> int:
        return self.bodies.leads


LAKE_BUCKET = "bench-lake"  # the S3 bucket of targets i and j, the Blob container of k and l


@dataclass
class Target:
    key: str
    label: str
    start: Callable[
        [Path], list[Server]
    ]  # servers in start order (each already ready); the last is the front
    loads: dict[str, Load]
    ready_path: str = READY_PATH
    ours: bool = False
    live: list[Server] = field(default_factory=list)


def role(server: Server) -> str:
    """A stable short name per process: predictor | transformer | stock | fastapi."""
    return {"stock": "stock", "fastapi": "fastapi"}.get(server.name.split("-")[0], server.name)


# ---------------------------------------------------------------------------------------------------------------------
# Targets


def ready(server: Server, path: str) -> Server:
    try:
        server.ready_seconds = wait_ready(server.process, server.url + path, server.started)
        # CPU spent to get there: unlike the wall clock, barely inflated by whatever else the machine runs.
        server.start_cpu_s = cpu_seconds(with_children([server.process.pid]))
    except BenchError as exc:
        raise BenchError(f"{server.name}: {exc}\n{server.log_tail()}") from None
    return server


def solo(spawn: Callable[[Path], Server], path: str = READY_PATH) -> Callable[[Path], list[Server]]:
    """A one-process target: spawn it and wait for its ready route (stopping it again if it never gets there)."""

    def start(log_dir: Path) -> list[Server]:
        server = spawn(log_dir)
        try:
            return [ready(server, path)]
        except BaseException:
            server.stop()
            raise

    return start


def build_targets(
    model_dir: Path,
    work: Workload,
    api_key: str,
    run_dir: Path,
    stock_python: Path | None = None,
    s3_endpoint: str | None = None,
    azurite: Azurite | None = None,
) -> list[Target]:
    def v2(output: str, *kinds: str) -> dict[str, Load]:
        read = lambda answer: v2_scores(answer, output)  # noqa: E731
        return {kind: Load(kind, V2_PATH, work.tensor(kind), read) for kind in kinds}

    def with_predictor(front: Callable[[Path, Server], Server]) -> Callable[[Path], list[Server]]:
        def start(log_dir: Path) -> list[Server]:
            servers = [start_predictor(model_dir, log_dir)]
            try:
                ready(servers[0], READY_PATH)
                servers.append(ready(front(log_dir, servers[0]), READY_PATH))
            except BaseException:
                for server in servers:
                    server.stop()
                raise
            return servers

        return start

    counter = iter(range(1_000_000))

    def ours(
        log_dir: Path, predictor: str | None, protocol: str, *more: str, store: str | None = "folder"
    ) -> Server:
        lake = run_dir / f"lake-{next(counter)}"
        where = {
            None: lambda: [],  # no data lake at all
            "folder": lambda: ["--sink_uri", lake.as_uri()],
            "s3": lambda: [
                "--sink_uri",
                f"s3://{LAKE_BUCKET}/{lake.name}",
                "--sink_s3_endpoint_url",
                str(s3_endpoint),
            ],
            # The emulator's published development key, not a secret (hack/azurite.py).
            "blob": lambda: [
                "--sink_uri",
                azurite.url(LAKE_BUCKET, lake.name),
                "--sink_azure_connection_string",
                azurite.connection_string,
            ],
        }[store]()
        return start_transformer(
            model_dir,
            log_dir,
            api_keys=f"bench:{api_key}",
            predictor=predictor,
            protocol=protocol,
            env=S3_ENV if store == "s3" else None,
            extra_args=[
                *where,
                "--sink_spool_dir",
                str(lake.with_name(lake.name + "-spool")),
                "--drain_delay_seconds",
                "0",
                "--drain_seconds",
                "10",
                "--log_level",
                "INFO",
                *more,  # last: a flag given again here wins (argparse keeps the last value)
            ],
        )

    in_process = {
        **v2("score", "single", "batch"),
        "single-v1": Load("single-v1", V1_PATH, work.v1("single"), v1_scores),
        "batch-v1": Load("batch-v1", V1_PATH, work.v1("batch"), v1_scores),
        "batch+reasons": Load(
            "batch+reasons",
            V2_PATH,
            work.tensor("batch", {"reasons": 3}),
            lambda answer: v2_scores(answer, "score"),
        ),
    }

    def in_process_with(key: str, what: str, *flags: str) -> Target:
        """f with more flags, single and batch V2 loads."""
        return Target(
            key,
            f"ours, in-process booster, {what}",
            solo(lambda d: ours(d, None, "grpc-v2", *flags)),
            v2("score", "single", "batch"),
            ours=True,
        )

    def split_grpc_with(key: str, what: str, *flags: str) -> Target:
        """d with more flags."""
        return Target(
            key,
            f"ours, split mode, gRPC hop, {what}",
            with_predictor(lambda d, p: ours(d, p.grpc_target, "grpc-v2", *flags)),
            v2("score", "single", "batch"),
            ours=True,
        )

    targets = [
        Target(
            "a",
            "stock KServe transformer → predictor, REST hop",
            with_predictor(
                lambda d, p: start_stock_transformer(d, p.url.removeprefix("http://"), "v2", stock_python)
            ),
            v2("output-0", "single", "batch"),
        ),
        Target(
            "b",
            "stock KServe transformer → predictor, gRPC hop",
            with_predictor(lambda d, p: start_stock_transformer(d, p.grpc_target, "grpc-v2", stock_python)),
            v2("output-0", "single", "batch"),
        ),
        Target(
            "c",
            "plain FastAPI + pydantic + inplace_predict",
            solo(lambda d: start_fastapi_service(model_dir, d, api_key), "/healthz"),
            {
                "single": Load("single", "/score", work.named("single"), peer_scores),
                "batch": Load("batch", "/score/batch", work.named("batch"), peer_scores),
            },
            ready_path="/healthz",
        ),
        Target(
            "d",
            "ours, split mode, gRPC hop",
            with_predictor(lambda d, p: ours(d, p.grpc_target, "grpc-v2")),
            v2("score", "single", "batch"),
            ours=True,
        ),
        Target(
            "e",
            "ours, split mode, REST hop",
            with_predictor(lambda d, p: ours(d, p.url.removeprefix("http://"), "v2")),
            v2("score", "single", "batch"),
            ours=True,
        ),
        Target(
            "f", "ours, in-process booster", solo(lambda d: ours(d, None, "grpc-v2")), in_process, ours=True
        ),
        in_process_with("g", "lake files encoded in a child process", "--sink_encoder", "process"),
        Target(
            "o",
            "ours, in-process booster, no data lake and no request log line (--log_level WARNING)",
            solo(lambda d: ours(d, None, "grpc-v2", "--log_level", "WARNING", store=None)),
            v2("score", "single", "batch"),
            ours=True,
        ),
        in_process_with("p", "no data-lake journal (--sink_journal false)", "--sink_journal", "false"),
        in_process_with("m", "on uvloop (--event-loop uvloop)", "--event-loop", "uvloop"),
        split_grpc_with("n", "on uvloop (--event-loop uvloop)", "--event-loop", "uvloop"),
        split_grpc_with("h", "lake files encoded in a child process", "--sink_encoder", "process"),
    ]

    def remote_lake(keys: str, store: str, label: str) -> list[Target]:
        """The in-process transformer with its lake on a remote store, uploads from the server, then from a child;
        both encode in a child."""
        server_key, child_key = keys
        uploader = {server_key: "thread", child_key: "process"}
        return [
            Target(
                key,
                description,
                solo(
                    lambda d, key=key: ours(
                        d,
                        None,
                        "grpc-v2",
                        "--sink_encoder",
                        "process",
                        "--sink_uploader",
                        uploader[key],
                        store=store,
                    )
                ),
                v2("score", "single", "batch"),
                ours=True,
            )
            for key, description in (
                (
                    server_key,
                    f"ours, in-process booster, lake on {label}, encoded in a child, uploaded from the server",
                ),
                (child_key, f"{server_key}, uploaded from a child process (--sink_uploader process)"),
            )
        ]

    if s3_endpoint is not None:
        targets += remote_lake("ij", "s3", "S3 (moto)")
    if azurite is not None:
        targets += remote_lake("kl", "blob", "Azure Blob (azurite)")
    return targets


# ---------------------------------------------------------------------------------------------------------------------
# One round


def check_answers(target: Target, api_key: str) -> None:
    """Every body of every workload, once: the answer must carry the booster's own scores."""
    front = target.live[-1]
    with httpx.Client(
        timeout=30, headers={"content-type": "application/json", "x-api-key": api_key}
    ) as client:
        for load in target.loads.values():
            for n, (body, expected) in enumerate(zip(load.bodies.bodies, load.bodies.expected, strict=True)):
                response = client.post(front.url + load.path, content=body)
                if response.status_code != 200:
                    raise BenchError(
                        f"({target.key}) {load.kind} body {n}: HTTP {response.status_code}: "
                        f"{response.text[:500]}"
                    )
                answer = response.json()
                difference = max_difference(load.scores_of(answer), expected)
                if not difference <= TOLERANCE:
                    raise BenchError(
                        f"({target.key}) {load.kind} body {n}: scores differ from the booster's by "
                        f"{difference:.3g}"
                    )
                if load.kind == "batch+reasons" and len(answer.get("outputs", [])) <= 4:
                    raise BenchError(f"({target.key}) reasons were asked for but the answer has none")


def run_load(
    target: Target,
    load: Load,
    log_dir: Path,
    api_key: str,
    seconds: float,
    warmup: float,
    threads: int,
    connections: int,
) -> dict:
    front = target.live[-1]
    script = write_script(log_dir / "wrk", load.kind, load.bodies.bodies, api_key)
    url = front.url + load.path
    warm = run_wrk(url, script, warmup, threads, connections)
    if warm.error_count:
        raise BenchError(f"({target.key}) {load.kind} warm-up: errors {warm.errors}\n{front.log_tail()}")
    groups = {role(s): with_children([s.process.pid]) for s in target.live}
    calls_before = predictor_calls(front) if target.ours else None
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    result = run_wrk(url, script, seconds, threads, connections)
    cpu = {name: cpu_seconds(pids) - before[name] for name, pids in groups.items()}
    per_call = leads_per_call(calls_before, predictor_calls(front)) if calls_before is not None else None
    if result.error_count:
        raise BenchError(f"({target.key}) {load.kind}: errors {result.errors}\n{front.log_tail()}")
    leads = result.requests * load.leads
    return {
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "req_s": result.req_per_s,
        "leads_s": result.req_per_s * load.leads,
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "errors": result.error_count,
        "cpu_ms_per_lead": {name: 1000 * used / leads for name, used in cpu.items()},
        "cpu_ms_per_lead_all": 1000 * sum(cpu.values()) / leads,
        "leads_per_predictor_call": per_call,
    }


def predictor_calls(front: Server) -> tuple[float, float]:
    """Our transformer's predictor calls and the leads in them so far (its coalescing histogram on /metrics)."""
    answer = httpx.get(front.url + "/metrics", timeout=10)
    if answer.status_code != 200:
        raise BenchError(f"{front.name}: /metrics answered {answer.status_code}")
    return coalesced_totals(answer.text)


def run_round(round_no: int, targets: list[Target], run_dir: Path, api_key: str, args) -> dict:
    shift = (round_no - 1) % len(targets)
    order = targets[shift:] + targets[:shift]
    record: dict = {
        "round": round_no,
        "order": "".join(t.key for t in order),
        "loadavg_start": os.getloadavg(),
        "targets": {},
    }
    log_dir = run_dir / "logs" / f"round-{round_no}"
    try:
        for target in order:
            target.live.extend(target.start(log_dir / target.key))
            record["targets"][target.key] = {
                "cold_start_s": {role(s): round(s.ready_seconds, 3) for s in target.live},
                "start_cpu_s": {role(s): round(s.start_cpu_s, 3) for s in target.live},
                "pids": {role(s): s.process.pid for s in target.live},
                "runs": {},
            }
        for target in order:
            check_answers(target, api_key)
            record["targets"][target.key]["rss_ready_mb"] = {
                role(s): round(rss_mb(s.process.pid), 1) for s in target.live
            }
        for kind in KINDS:
            for target in order:
                if kind not in target.loads:
                    continue
                run = run_load(
                    target,
                    target.loads[kind],
                    log_dir / target.key,
                    api_key,
                    args.seconds,
                    args.warmup,
                    args.threads,
                    args.connections,
                )
                record["targets"][target.key]["runs"][kind] = run
                print(
                    f"round {round_no} ({target.key}) {kind:13s} {run['req_s']:8,.0f} req/s "
                    f"{run['leads_s']:9,.0f} leads/s  p50 {run['p50_ms']:6.1f} ms  p99 {run['p99_ms']:6.1f} ms  "
                    f"CPU ms/lead " + " ".join(f"{k} {v:.3f}" for k, v in run["cpu_ms_per_lead"].items()),
                    flush=True,
                )
        for target in order:
            for server in target.live:
                if server.process.poll() is not None:
                    raise BenchError(
                        f"({target.key}) {server.name} died during the round:\n{server.log_tail()}"
                    )
            record["targets"][target.key]["rss_mb"] = {
                role(s): round(rss_mb(s.process.pid), 1) for s in target.live
            }
    finally:
        for target in order:
            stop_all(target)
    record["loadavg_end"] = os.getloadavg()
    if any(t.ours for t in targets):
        # With every server of the round stopped: the library alone, on the machine of this round.
        record["xgboost_call_us"] = xgboost_call_us(args.model_dir.resolve(), ROOT)
    return record


def stop_all(target: Target) -> None:
    for server in reversed(
        target.live
    ):  # front first: ours flushes its data lake while the predictor is still up
        server.stop(timeout=20)
    target.live.clear()


# ---------------------------------------------------------------------------------------------------------------------
# Summary: per-round series → medians, spreads, per-round ratios, verdicts


def series(
    records: list[dict], key: str, kind: str, pick: Callable[[dict], float | None]
) -> dict[int, float | None]:
    """One value per round for target `key`, workload `kind` (rounds where it was not run are left out)."""
    out = {}
    for record in records:
        run = record["targets"].get(key, {}).get("runs", {}).get(kind)
        if run is not None:
            out[record["round"]] = pick(run)
    return out


def per_target(records: list[dict], key: str, name: str, what: str) -> dict[int, float]:
    """A per-round, per-process value that is not a run: cold_start_s, rss_mb, rss_ready_mb."""
    return {
        r["round"]: r["targets"][key][what][name]
        for r in records
        if key in r["targets"] and name in r["targets"][key].get(what, {})
    }


def summarise(records: list[dict], targets: list[Target]) -> dict:
    summary: dict = {}
    for target in targets:
        rows = {}
        for kind in target.loads:
            row: dict = {"leads": target.loads[kind].leads}
            for metric in ("req_s", "leads_s", "p50_ms", "p99_ms", "cpu_ms_per_lead_all"):
                row[metric] = spread(
                    list(series(records, target.key, kind, lambda run, m=metric: run[m]).values())
                )
            row["p99_over_p50"] = spread(
                list(series(records, target.key, kind, lambda run: run["p99_ms"] / run["p50_ms"]).values())
            )
            names = {
                n
                for r in records
                for n in r["targets"]
                .get(target.key, {})
                .get("runs", {})
                .get(kind, {})
                .get("cpu_ms_per_lead", {})
            }
            row["cpu_ms_per_lead"] = {
                n: spread(
                    list(
                        series(records, target.key, kind, lambda run, n=n: run["cpu_ms_per_lead"][n]).values()
                    )
                )
                for n in sorted(names)
            }
            rows[kind] = row
        names = sorted({n for r in records for n in r["targets"].get(target.key, {}).get("cold_start_s", {})})
        summary[target.key] = {
            "label": target.label,
            "ours": target.ours,
            "rows": rows,
            **{
                what: {n: spread(list(per_target(records, target.key, n, what).values())) for n in names}
                for what in ("cold_start_s", "start_cpu_s", "rss_mb", "rss_ready_mb")
            },
        }
    return summary


def ratio(
    records: list[dict],
    mine: str,
    base: str,
    kind: str,
    base_kind: str | None = None,
    metric: str = "leads_s",
) -> dict[int, float]:
    pick = lambda run: run[metric]  # noqa: E731
    return per_round_ratios(series(records, mine, kind, pick), series(records, base, base_kind or kind, pick))


def ceiling(records: list[dict], mine: str, kind: str, cores: int, base: str | None = None) -> list[float]:
    """Per round: the leads/s `mine` would reach with all `cores` to itself at the CPU per lead it was measured at
    (every process of the target counted, so a split pair's predictor too), or that over the leads/s `base` was
    measured at in the same round. wrk's own CPU is not charged to either side, so the real reach is lower."""
    best = series(
        records,
        mine,
        kind,
        lambda run: cores * 1000 / run["cpu_ms_per_lead_all"] if run["cpu_ms_per_lead_all"] else None,
    )
    if base is None:
        return [v for v in best.values() if v is not None]
    return list(per_round_ratios(best, series(records, base, kind, lambda run: run["leads_s"])).values())


def verdicts(records: list[dict], booster_allowance_mb: float | None, cores: int) -> list[Verdict]:
    """The targets of issue 17, each from per-round values (or every start, for cold start); throughput targets
    with their ceiling (hack/bench_peers/stats.py)."""
    keys = {k for r in records for k in r["targets"]}
    out = []
    if "f" in keys:
        out.append(
            verdict(
                "in-process single: CPU ms/lead (transformer) ≤ 0.35",
                list(
                    series(records, "f", "single", lambda run: run["cpu_ms_per_lead"]["transformer"]).values()
                ),
                0.35,
                at_least=False,
            )
        )
        out.append(
            verdict(
                "in-process batch of 100: leads/s ≥ 100,000",
                list(series(records, "f", "batch", lambda run: run["leads_s"]).values()),
                100_000,
                True,
                ceiling(records, "f", "batch", cores),
            )
        )
        out.append(
            verdict(
                "cold start in-process (s, every start) ≤ 1.2",
                list(per_target(records, "f", "transformer", "cold_start_s").values()),
                1.2,
                False,
            )
        )
    if {"f", "c"} <= keys:
        out.append(
            verdict(
                "in-process single: × FastAPI design (req/s) ≥ 1.8",
                list(ratio(records, "f", "c", "single").values()),
                1.8,
                True,
                ceiling(records, "f", "single", cores, "c"),
            )
        )
    if {"d", "b"} <= keys:
        out.append(
            verdict(
                "split gRPC single: × stock gRPC pair ≥ 2",
                list(ratio(records, "d", "b", "single").values()),
                2.0,
                True,
                ceiling(records, "d", "single", cores, "b"),
            )
        )
        out.append(
            verdict(
                "split gRPC batch: × stock gRPC pair ≥ 4",
                list(ratio(records, "d", "b", "batch").values()),
                4.0,
                True,
                ceiling(records, "d", "batch", cores, "b"),
            )
        )
        out.append(
            verdict(
                "RSS split transformer − stock transformer (MB) ≤ 25",
                list(
                    per_round_differences(
                        per_target(records, "d", "transformer", "rss_mb"),
                        per_target(records, "b", "stock", "rss_mb"),
                    ).values()
                ),
                25.0,
                False,
            )
        )
        if "f" in keys and booster_allowance_mb is not None:
            bound = 25.0 + booster_allowance_mb
            out.append(
                verdict(
                    f"RSS in-process − stock transformer (MB) ≤ 25 + booster {booster_allowance_mb:.0f}",
                    list(
                        per_round_differences(
                            per_target(records, "f", "transformer", "rss_mb"),
                            per_target(records, "b", "stock", "rss_mb"),
                        ).values()
                    ),
                    bound,
                    False,
                )
            )
    if "d" in keys:
        out.append(
            verdict(
                "split gRPC single: p99 ≤ 3 × p50",
                list(series(records, "d", "single", lambda run: run["p99_ms"] / run["p50_ms"]).values()),
                3.0,
                False,
            )
        )
        starts = list(per_target(records, "d", "transformer", "cold_start_s").values()) + list(
            per_target(records, "e", "transformer", "cold_start_s").values()
        )
        out.append(verdict("cold start split (s, every start of d and e) ≤ 1.2", starts, 1.2, False))
    return out


# Ratios shown for context (no target of their own), per round against the same round's baseline:
# (name, mine, base, kind, base kind, metric). For "cpu_ms_per_lead_all" the ratio is base / mine (how many times
# less CPU per lead ours needs, all processes of the target counted): CPU time is far less sensitive than
# throughput to what else the shared machine is running.
CONTEXT_RATIOS = (
    ("in-process batch × FastAPI design (leads/s)", "f", "c", "batch", None, "leads_s"),
    ("in-process V1 named single × FastAPI design", "f", "c", "single-v1", "single", "leads_s"),
    ("in-process V1 named batch × FastAPI design", "f", "c", "batch-v1", "batch", "leads_s"),
    ("split gRPC single × stock REST pair", "d", "a", "single", None, "leads_s"),
    ("split REST single × stock REST pair", "e", "a", "single", None, "leads_s"),
    ("split REST batch × stock REST pair", "e", "a", "batch", None, "leads_s"),
    ("in-process single × split gRPC single", "f", "d", "single", None, "leads_s"),
    ("CPU/lead: FastAPI design ÷ in-process, single", "f", "c", "single", None, "cpu_ms_per_lead_all"),
    ("CPU/lead: FastAPI design ÷ in-process, batch", "f", "c", "batch", None, "cpu_ms_per_lead_all"),
    ("CPU/lead: stock gRPC pair ÷ split gRPC, single", "d", "b", "single", None, "cpu_ms_per_lead_all"),
    ("CPU/lead: stock gRPC pair ÷ split gRPC, batch", "d", "b", "batch", None, "cpu_ms_per_lead_all"),
    (
        "CPU/lead: in-process, every feature on ÷ no lake and no request log line, single",
        "o",
        "f",
        "single",
        None,
        "cpu_ms_per_lead_all",
    ),
    (
        "CPU/lead: in-process, every feature on ÷ no lake and no request log line, batch",
        "o",
        "f",
        "batch",
        None,
        "cpu_ms_per_lead_all",
    ),
    (
        "CPU/lead: in-process with the lake's journal ÷ without, single",
        "p",
        "f",
        "single",
        None,
        "cpu_ms_per_lead_all",
    ),
    (
        "CPU/lead: in-process with the lake's journal ÷ without, batch",
        "p",
        "f",
        "batch",
        None,
        "cpu_ms_per_lead_all",
    ),
    ("lake encoder in a child process × in a thread: in-process batch", "g", "f", "batch", None, "leads_s"),
    ("lake encoder in a child process × in a thread: in-process single", "g", "f", "single", None, "leads_s"),
    ("lake encoder in a child process × in a thread: split gRPC batch", "h", "d", "batch", None, "leads_s"),
    ("S3 lake, uploads from a child × from the server: in-process batch", "j", "i", "batch", None, "leads_s"),
    (
        "S3 lake, uploads from a child × from the server: in-process single",
        "j",
        "i",
        "single",
        None,
        "leads_s",
    ),
    (
        "Blob lake, uploads from a child × from the server: in-process batch",
        "l",
        "k",
        "batch",
        None,
        "leads_s",
    ),
    (
        "Blob lake, uploads from a child × from the server: in-process single",
        "l",
        "k",
        "single",
        None,
        "leads_s",
    ),
    (
        "split gRPC batch, lake encoder in a child process × stock gRPC pair",
        "h",
        "b",
        "batch",
        None,
        "leads_s",
    ),
)


def context_ratios(records: list[dict]) -> list[dict]:
    keys = {k for r in records for k in r["targets"]}
    out = []
    for name, mine, base, kind, base_kind, metric in CONTEXT_RATIOS:
        if {mine, base} <= keys:
            if metric == "cpu_ms_per_lead_all":
                values = ratio(records, base, mine, base_kind or kind, kind, metric)
            else:
                values = ratio(records, mine, base, kind, base_kind, metric)
            out.append({"name": name, "per_round": values, "spread": spread(list(values.values()))})
    # xgboost's own part of the in-process CPU per lead; what is left with the lake and the log line off
    return out + share_rows(records) + without_lake_and_log_rows(records)


def without_lake_and_log_rows(records: list[dict]) -> list[dict]:
    """(o)'s own CPU ms per lead, per round: what the in-process transformer costs with the data lake and the request
    log line off, to set beside the 0.35 ms target (docs/performance.md, fourteenth pass)."""
    rows = []
    for kind in ("single", "batch"):
        values = series(records, "o", kind, lambda run: run["cpu_ms_per_lead"].get("transformer"))
        values = {n: v for n, v in values.items() if v is not None}
        if values:
            rows.append(
                {
                    "name": f"(o) {kind}: the transformer's CPU ms per lead with no lake and no request log line",
                    "per_round": values,
                    "spread": spread(list(values.values())),
                    "format": ".3f",
                }
            )
    return rows


def fmt_spread(s, spec: str = ",.0f") -> str:
    if s is None:
        return "–"
    if s.n == 1:
        return format(s.median, spec)
    return f"{format(s.median, spec)} [{format(s.low, spec)}–{format(s.high, spec)}]"


def num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown(
    summary: dict,
    checks: list[Verdict],
    context: list[dict],
    booster: dict | None,
    sink: dict,
    meta: dict,
    xgboost_calls: list[dict] | None = None,
) -> str:
    lines = [
        "Each cell: median [min–max] over the rounds.",
        "",
        "| target — workload | leads/req | req/s | leads/s | p50 ms | p99 ms | CPU ms/lead per process | "
        "cold start s | CPU s to ready | RSS MB after load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, entry in summary.items():
        cold = " / ".join(f"{n} {fmt_spread(v, '.2f')}" for n, v in entry["cold_start_s"].items())
        rss = " / ".join(f"{n} {fmt_spread(v, '.0f')}" for n, v in entry["rss_mb"].items())
        start_cpu = " / ".join(f"{n} {fmt_spread(v, '.2f')}" for n, v in entry["start_cpu_s"].items())
        for kind, row in entry["rows"].items():
            cpu = " / ".join(f"{n} {fmt_spread(v, '.3f')}" for n, v in row["cpu_ms_per_lead"].items())
            lines.append(
                f"| ({key}) {entry['label']} — {kind} | {row['leads']} | {fmt_spread(row['req_s'])} | "
                f"{fmt_spread(row['leads_s'])} | {fmt_spread(row['p50_ms'], '.1f')} | "
                f"{fmt_spread(row['p99_ms'], '.1f')} | {cpu} | {cold} | {start_cpu} | {rss} |"
            )
    lines += [
        "",
        "Targets of issue 17 (per-round values; ratios against the baseline of the same round):",
        "",
        "| target | per round | median | min–max | ceiling: every core at the CPU/lead measured | result |",
        "|---|---|---|---|---|---|",
    ]
    for check in checks:
        s, top = check.summary, check.ceiling
        result = check.label if check.passed and not check.overlaps else f"**{check.label}**"
        lines.append(
            f"| {check.name} | {', '.join(num(v) for v in check.values)} | "
            f"{'–' if s is None else num(s.median)} | {'–' if s is None else f'{num(s.low)}–{num(s.high)}'} | "
            f"{'–' if top is None else f'{num(top.median)} [{num(top.low)}–{num(top.high)}]'} | {result} |"
        )
    if context:
        lines += ["", "| for context | per round | median | min–max |", "|---|---|---|---|"]
        for item in context:
            s = item["spread"]
            spec = item.get("format", ".2f")
            lines.append(
                f"| {item['name']} | {', '.join(format(v, spec) for v in item['per_round'].values())} | "
                f"{'–' if s is None else format(s.median, spec)} | "
                f"{'–' if s is None else f'{format(s.low, spec)}–{format(s.high, spec)}'} |"
            )
    rows = summary.get("f", {}).get("rows", {})
    if rows.get("batch+reasons", {}).get("cpu_ms_per_lead_all") and rows.get("batch", {}).get(
        "cpu_ms_per_lead_all"
    ):
        extra = (
            rows["batch+reasons"]["cpu_ms_per_lead_all"].median - rows["batch"]["cpu_ms_per_lead_all"].median
        )
        lines += [
            "",
            f"Reason codes (top 3, in-process, batch of {BATCH}): +{extra:.3f} CPU ms per lead, "
            f"{rows['batch+reasons']['leads_s'].median:,.0f} leads/s vs {rows['batch']['leads_s'].median:,.0f}"
            " without.",
        ]
    if booster:
        lines.append(
            f"Booster allowance for the in-process RSS target: xgboost's C library as the transformer loads it "
            f"+{booster['import_mb']:.0f} MB, the loaded booster +{booster['load_mb']:.0f} MB (clean interpreter "
            f"with numpy loaded; a plain `import xgboost` is +{booster['plain_import_mb']:.0f} MB, with scipy, "
            "pandas and pyarrow)."
        )
    if xgboost_calls:
        one = spread([c["one_lead_us"] for c in xgboost_calls])
        extra = spread([c["per_extra_lead_us"] for c in xgboost_calls])
        lines.append(
            f"xgboost {XGBOOST_VERSION} alone, as the in-process transformer calls it (fresh interpreter, every "
            f"server stopped; per round): one call for one lead {fmt_spread(one, '.0f')} CPU µs, each further "
            f"lead in a call +{fmt_spread(extra, '.2f')} µs. The fixed part is mostly `std::regex` compiled on "
            "every call (docs/performance.md, twelfth pass); request coalescing spreads it over the leads of a call. The "
            "rows above that use it are a lower bound: in the server, each call runs with colder caches."
        )
    if sink:
        lines.append(
            "Data-lake sink alone (`python -m hack.bench_sink`): "
            + ", ".join(f"{k} leads/request {v:,.0f} records/s" for k, v in sink.items())
            + "."
        )
    lines += [
        "",
        f"{meta['rounds']} interleaved round(s), {meta['seconds']:g} s per run after {meta['warmup']:g} s "
        f"of warm-up, wrk -t{meta['threads']} -c{meta['connections']}, 32 rotating bodies per workload; wrk "
        f"shares the {meta['nproc']} cores with the servers; load average "
        f"{meta['loadavg_at_start'][0]:.2f} at the start.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Extras: booster RSS, the sink micro-benchmark and (optionally) py-spy on our transformer

_BOOSTER_PROBE = """
import sys
from pathlib import Path
import numpy as np
def rss():
    return next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS')) / 1024
native = sys.argv[2] == "native"  # as the transformer loads it: xgboost's C library alone (transformer/native_xgboost.py)
if native:
    from transformer.native_xgboost import NativeBooster, library  # the module alone: the library is loaded below
base = rss()
if native:
    library()
else:
    import xgboost
imported = rss()
if native:
    NativeBooster(Path(sys.argv[1]).read_bytes())
else:
    xgboost.Booster(params={"nthread": 1}, model_file=bytearray(Path(sys.argv[1]).read_bytes()))
print(imported - base, rss() - imported)
"""


def booster_rss(model_dir: Path) -> dict:
    """What in-process mode carries that split mode need not: xgboost's library and the loaded booster (MB).

    The allowance is xgboost as the transformer loads it, its C library without the Python package (`import xgboost`
    would also load scipy, pandas and pyarrow, which are no part of the booster): the strict reading of "the
    booster's own size"."""
    from contract.model_card import find_booster

    sizes = {}
    for mode in ("plain", "native"):
        sizes[mode] = run_probe("booster RSS", _BOOSTER_PROBE, str(find_booster(model_dir)), mode, cwd=ROOT)
    (plain, _), (native, loaded) = sizes["plain"], sizes["native"]
    return {"import_mb": native, "plain_import_mb": plain, "load_mb": loaded, "allowance_mb": native + loaded}


def run_sink_bench() -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "hack.bench_sink"],
        cwd=ROOT,
        capture_output=True,
        text=True,  # nosec B603
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"hack.bench_sink failed:\n{done.stdout}\n{done.stderr}")
    return {
        m.group(1): float(m.group(2).replace(",", ""))
        for m in re.finditer(r"leads/request=\s*(\d+)\s+records/s=([\d,]+)", done.stdout)
    }


def profile(target: Target, run_dir: Path, api_key: str, args) -> dict:
    """py-spy on the front process while wrk runs: not timed, kept out of the numbers above (py-spy takes CPU too)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy==0.4.1")
    log_dir = run_dir / "logs" / f"profile-{target.key}"
    target.live.extend(target.start(log_dir))
    out = {}
    try:
        front = target.live[-1]
        for load in target.loads.values():
            if load.kind == "batch+reasons":
                continue
            script = write_script(log_dir / "wrk", load.kind, load.bodies.bodies, api_key)
            raw = args.out_dir / f"profile-{target.key}-{load.kind}.txt"
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(front.process.pid),
                    "--duration",  # nosec B603
                    str(int(args.seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            run_wrk(front.url + load.path, script, args.seconds, args.threads, args.connections)
            spy.wait(timeout=60)
            out[load.kind] = {"file": str(raw), "top": top_frames(raw), "stages": stage_shares(raw)}
    finally:
        stop_all(target)
    return out


def top_frames(collapsed: Path, limit: int = 15) -> list[tuple[str, float]]:
    """Share of samples per innermost frame (self time), from py-spy's raw (collapsed) stacks."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
    ranked = sorted(own.items(), key=lambda item: -item[1])
    return [(frame, round(100 * n / total, 1)) for frame, n in ranked[:limit]] if total else []


# ---------------------------------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {}
    for package in ("kserve", "xgboost-cpu", "xgboost", "fastapi", "uvicorn", "grpcio"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # nosec B603 B607
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "packages": versions,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else None,
        "loadavg_at_start": os.getloadavg(),
    }


def jsonable(value):
    """Spread / Verdict dataclasses → plain dicts for the JSON file."""
    if isinstance(value, Verdict):
        return {
            "name": value.name,
            "values": value.values,
            "bound": value.bound,
            "at_least": value.at_least,
            "summary": value.summary,
            "ceiling": value.ceiling,
            "passed": value.passed,
            "overlaps": value.overlaps,
            "out_of_reach": value.out_of_reach,
            "label": value.label,
        }
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(type(value).__name__)


def print_profiles(profiles: dict) -> None:
    for key, kind_profiles in profiles.items():
        for kind, prof in kind_profiles.items():
            print(f"\npy-spy ({key}, {kind}) — self time per frame; raw stacks in {prof['file']}")
            for frame, share in prof["top"]:
                print(f"  {share:5.1f} %  {frame[:150]}")
            print(
                f"py-spy ({key}, {kind}) — samples per stage of the scoring path (hack/bench_peers/stages.py)"
            )
            for stage, share in prof["stages"].items():
                print(f"  {share:5.1f} %  {stage}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "predictor" / "model")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each timed run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--targets", default="abcdefgij", help="subset to run (verdicts need their baselines)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short look: 2 rounds of 3 s, no sink micro-benchmark"
    )
    parser.add_argument("--no-sink", action="store_true", help="skip the data-lake sink micro-benchmark")
    parser.add_argument(
        "--stock-env",
        choices=("isolated", "shared"),
        default="isolated",
        help="run the stock KServe peers from a KServe-only venv (default; see "
        "hack/bench_peers/stock_env.py) or from the project's venv",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, py-spy our transformer under load; needs py-spy in the venv",
    )
    parser.add_argument("--profile-targets", default="df", help="which of ours --profile covers (default df)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.no_sink = 2, 3.0, True
    model_dir = args.model_dir.resolve()
    api_key = "bench-" + secrets.token_urlsafe(18)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {
        "started": stamp,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "threads": args.threads,
        "connections": args.connections,
        "batch": BATCH,
        "targets": args.targets,
        **machine(),
        "note": "wrk runs on the same cores as the servers; default scheduling (no taskset)",
    }
    run_dir = Path(tempfile.mkdtemp(prefix="lead-scoring-bench-"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"bench: {meta['nproc']} cores ({meta['cpu']}), load {meta['loadavg_at_start']}, temp dir {run_dir}",
        flush=True,
    )
    work = Workload.build(model_dir, BATCH)
    records: list[dict] = []
    profiles: dict = {}
    sink: dict = {}
    targets: list[Target] = []
    stack = contextlib.ExitStack()
    try:
        stock = stock_python() if args.stock_env == "isolated" and set(args.targets) & set("ab") else None
        meta["stock_python"] = str(stock or sys.executable)
        # Targets i and j put their lake on S3: a moto server in its own process, for the whole run.
        s3_endpoint = stack.enter_context(s3_server(LAKE_BUCKET)) if set(args.targets) & set("ij") else None
        # Targets k and l put theirs on Azure Blob: azurite, likewise.
        azurite = (
            stack.enter_context(azurite_container(run_dir / "azurite", LAKE_BUCKET))
            if set(args.targets) & set("kl")
            else None
        )
        targets = [
            t
            for t in build_targets(model_dir, work, api_key, run_dir, stock, s3_endpoint, azurite)
            if t.key in args.targets
        ]
        booster = booster_rss(model_dir)
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            records.append(run_round(round_no, targets, run_dir, api_key, args))
            print(f"round {round_no} done in {time.monotonic() - started:.0f} s", flush=True)
        if not args.no_sink:
            sink = run_sink_bench()
        if args.profile:
            for target in targets:
                if target.key in args.profile_targets:
                    profiles[target.key] = profile(target, run_dir, api_key, args)
    except BenchError as exc:
        print(f"\nBENCH FAILED: {exc}\nlogs kept in {run_dir / 'logs'}", file=sys.stderr)
        return 1
    finally:
        for target in targets:
            stop_all(target)
        stack.close()
    summary = summarise(records, targets)
    checks = verdicts(records, booster["allowance_mb"], meta["nproc"])
    context = context_ratios(records)
    table = markdown(
        summary,
        checks,
        context,
        booster,
        sink,
        meta,
        [r["xgboost_call_us"] for r in records if "xgboost_call_us" in r],
    )
    out = args.out_dir / f"bench-{stamp}.json"
    out.write_bytes(
        orjson.dumps(
            {
                "meta": meta,
                "summary": summary,
                "verdicts": checks,
                "context": context,
                "booster_rss": booster,
                "sink_records_per_s": sink,
                "profiles": profiles,
                "records": records,
            },
            option=orjson.OPT_INDENT_2
            | orjson.OPT_SERIALIZE_NUMPY
            | orjson.OPT_NON_STR_KEYS
            | orjson.OPT_PASSTHROUGH_DATACLASS,
            default=jsonable,
        )
    )
    print("\n" + table + f"\n\nJSON: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    print_profiles(profiles)
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
