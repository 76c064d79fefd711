"""`make bench` (issue 8): ours against stock KServe and a plain FastAPI service, on this machine, in one run.

    python -m hack.bench --model-dir predictor/model [--rounds 3] [--seconds 10] [--quick] [--profile]

Targets, started one after another as real processes on loopback and driven by wrk (-t2 -c16):
  a  stock KServe transformer (preprocess passes through) → predictor, REST v2 hop
  b  the same, gRPC v2 hop
  c  plain FastAPI: pydantic LeadFeatures, API key, in-process inplace_predict, TierMap, 1 uvicorn worker
  d  ours, split mode, gRPC hop        } full feature path: API key, validation, tiers, data lake (file:// + spool),
  e  ours, split mode, REST hop        } metrics, one JSON log line per request to a file
  f  ours, in-process booster          }  (+ a batch row with reason codes, "parameters": {"reasons": 3})
Each target answers a single lead ([1,50]) and a batch (100 leads) per request; its answers are checked against
the booster's own scores before anything is timed. Rounds alternate (a b c d e f, a b c …); medians are reported.
wrk runs on the same 2 cores as the servers, so every number here includes the load generator's share.
Writes bench-results/bench-<UTC timestamp>.json and prints a markdown table. Exit 1 on any error or wrong answer.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import statistics

# subprocess runs hack.bench_sink and py-spy only (bandit B404/B603 reviewed).
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

from hack.bench_peers.launch import start_fastapi_service, start_stock_transformer
from hack.bench_peers.measure import (
    BenchError,
    cpu_seconds,
    rss_mb,
    run_wrk,
    with_children,
    write_script,
)
from hack.bench_peers.workload import (
    TOLERANCE,
    Workload,
    lead_objects,
    max_difference,
    peer_scores,
    v2_scores,
    v2_tensor_body,
)
from hack.stack import ROOT, Server, start_predictor, start_transformer

V2_PATH = "/v2/models/lead-scoring/infer"
BATCH = 100
WARMUP_SECONDS = 2


@dataclass
class Request:
    """One kind of request a target is driven with: where it goes, what it sends, how its scores are read."""

    kind: str                      # single | batch | batch+reasons
    leads: int
    path: str
    body: bytes
    expected: object               # reference scores (numpy)
    scores_of: Callable[[dict], object]


@dataclass
class Target:
    key: str
    label: str
    start: Callable[[Path], list[Server]]      # servers in start order; the last one is the front door
    requests: list[Request]
    health_path: str = "/v2/health/ready"
    ours: bool = False
    live: list[Server] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------------
# Targets


def build_targets(model_dir: Path, work: Workload, api_key: str, run_dir: Path) -> list[Target]:
    v2 = {"single": v2_tensor_body(work.single), "batch": v2_tensor_body(work.batch)}
    leads = lead_objects(work.batch)
    peer_single, peer_batch = orjson.dumps(lead_objects(work.single)[0]), orjson.dumps({"leads": leads})

    def v2_requests(output: str) -> list[Request]:
        read = lambda answer: v2_scores(answer, output)  # noqa: E731
        return [Request("single", 1, V2_PATH, v2["single"], work.single_scores, read),
                Request("batch", BATCH, V2_PATH, v2["batch"], work.batch_scores, read)]

    def with_predictor(front: Callable[[Path, Server], Server]) -> Callable[[Path], list[Server]]:
        def start(log_dir: Path) -> list[Server]:
            predictor = start_predictor(model_dir, log_dir)
            servers = [predictor]
            try:
                predictor.wait_ready()
                servers.append(front(log_dir, predictor))
            except BaseException:
                for server in servers:
                    server.stop()
                raise
            return servers
        return start

    counter = iter(range(1_000_000))

    def ours(log_dir: Path, predictor: str | None, protocol: str) -> Server:
        lake = run_dir / f"lake-{next(counter)}"
        return start_transformer(
            model_dir, log_dir, api_keys=f"bench:{api_key}", predictor=predictor, protocol=protocol,
            extra_args=["--sink_uri", lake.as_uri(), "--sink_spool_dir", str(lake.with_name(lake.name + "-spool")),
                        "--drain_delay_seconds", "0", "--drain_seconds", "10", "--log_level", "INFO"])

    reasons = Request("batch+reasons", BATCH, V2_PATH, v2_tensor_body(work.batch, {"reasons": 3}),
                      work.batch_scores, lambda answer: v2_scores(answer, "score"))
    return [
        Target("a", "stock KServe transformer → predictor, REST hop",
               with_predictor(lambda d, p: start_stock_transformer(d, p.url.removeprefix("http://"), "v2")),
               v2_requests("output-0")),
        Target("b", "stock KServe transformer → predictor, gRPC hop",
               with_predictor(lambda d, p: start_stock_transformer(d, p.grpc_target, "grpc-v2")),
               v2_requests("output-0")),
        Target("c", "plain FastAPI + pydantic + inplace_predict",
               lambda d: [start_fastapi_service(model_dir, d, api_key)],
               [Request("single", 1, "/score", peer_single, work.single_scores, peer_scores),
                Request("batch", BATCH, "/score/batch", peer_batch, work.batch_scores, peer_scores)],
               health_path="/healthz"),
        Target("d", "ours, split mode, gRPC hop",
               with_predictor(lambda d, p: ours(d, p.grpc_target, "grpc-v2")), v2_requests("score"), ours=True),
        Target("e", "ours, split mode, REST hop",
               with_predictor(lambda d, p: ours(d, p.url.removeprefix("http://"), "v2")), v2_requests("score"),
               ours=True),
        Target("f", "ours, in-process booster",
               lambda d: [ours(d, None, "grpc-v2")], v2_requests("score") + [reasons], ours=True),
    ]


# ---------------------------------------------------------------------------------------------------------------------
# One target, one round


def check_answers(target: Target, front: Server, api_key: str) -> None:
    for request in target.requests:
        response = httpx.post(front.url + request.path, content=request.body, timeout=30,
                              headers={"content-type": "application/json", "x-api-key": api_key})
        if response.status_code != 200:
            raise BenchError(f"({target.key}) {request.kind}: HTTP {response.status_code}: {response.text[:500]}")
        answer = response.json()
        difference = max_difference(request.scores_of(answer), request.expected)
        if not difference <= TOLERANCE:
            raise BenchError(f"({target.key}) {request.kind}: scores differ from the booster's by {difference:.3g}")
        if request.kind == "batch+reasons" and len(answer.get("outputs", [])) <= 4:
            raise BenchError(f"({target.key}) reasons were asked for but the answer has none: {str(answer)[:300]}")


def run_target(target: Target, round_no: int, run_dir: Path, api_key: str, seconds: float, threads: int,
               connections: int) -> dict:
    log_dir = run_dir / "logs" / f"round-{round_no}-{target.key}"
    for server in target.start(log_dir):
        target.live.append(server)
    front = target.live[-1]
    try:
        front.wait_ready(path=target.health_path)
        record = {"target": target.key, "round": round_no, "runs": {},
                  "cold_start_s": {s.name: round(s.ready_seconds, 3) for s in target.live},
                  "pids": {s.name: s.process.pid for s in target.live}}
        check_answers(target, front, api_key)
        all_pids = with_children([s.process.pid for s in target.live])
        front_pids = with_children([front.process.pid])
        for request in target.requests:
            script = write_script(log_dir, request.kind, request.body, api_key)
            warm = run_wrk(front.url + request.path, script, WARMUP_SECONDS, threads, connections)
            if warm.error_count:
                raise BenchError(f"({target.key}) {request.kind} warm-up: errors {warm.errors}\n{front.log_tail()}")
            cpu_all, cpu_front = cpu_seconds(all_pids), cpu_seconds(front_pids)
            result = run_wrk(front.url + request.path, script, seconds, threads, connections)
            cpu_all, cpu_front = cpu_seconds(all_pids) - cpu_all, cpu_seconds(front_pids) - cpu_front
            if result.error_count:
                raise BenchError(f"({target.key}) {request.kind}: errors {result.errors}\n{front.log_tail()}")
            leads = result.requests * request.leads
            record["runs"][request.kind] = {
                "requests": result.requests, "seconds": round(result.seconds, 3),
                "req_s": result.req_per_s, "leads_s": result.req_per_s * request.leads,
                "p50_ms": result.p50_ms, "p90_ms": result.p90_ms, "p99_ms": result.p99_ms, "max_ms": result.max_ms,
                "errors": result.error_count,
                "cpu_ms_per_lead": 1000 * cpu_all / leads, "front_cpu_ms_per_lead": 1000 * cpu_front / leads}
        for server in target.live:
            if server.process.poll() is not None:
                raise BenchError(f"({target.key}) {server.name} died during the run:\n{server.log_tail()}")
        record["rss_mb"] = {s.name: round(rss_mb(s.process.pid), 1) for s in target.live}
        return record
    finally:
        stop_all(target)


def stop_all(target: Target) -> None:
    for server in reversed(target.live):   # front first: ours flushes its data lake while the predictor is still up
        server.stop(timeout=20)
    target.live.clear()


# ---------------------------------------------------------------------------------------------------------------------
# Summary


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(records: list[dict], targets: list[Target]) -> dict:
    summary: dict = {}
    rounds = sorted({r["round"] for r in records})
    by = {(r["target"], r["round"]): r for r in records}
    for target in targets:
        mine = [by[(target.key, n)] for n in rounds if (target.key, n) in by]
        rows = {}
        for request in target.requests:
            runs = [r["runs"][request.kind] for r in mine]
            row = {metric: median([run[metric] for run in runs]) for metric in runs[0]}
            row["leads"] = request.leads
            # Ratios are taken within a round, then the median: both sides saw the same machine weather.
            for peer in ("a", "c"):
                base_kind = "batch" if request.kind == "batch+reasons" else request.kind
                ratios = [by[(target.key, n)]["runs"][request.kind]["leads_s"]
                          / by[(peer, n)]["runs"][base_kind]["leads_s"]
                          for n in rounds if (target.key, n) in by and (peer, n) in by]
                row[f"x_{peer}"] = median(ratios)
            rows[request.kind] = row
        names = mine[0]["cold_start_s"].keys()
        summary[target.key] = {
            "label": target.label, "ours": target.ours, "rows": rows,
            "cold_start_s": {name: median([r["cold_start_s"][name] for r in mine]) for name in names},
            "rss_mb": {name: median([r["rss_mb"][name] for r in mine]) for name in names}}
    return summary


def ratio(records: list[dict], mine: str, peer: str, kind: str, metric: str = "leads_s") -> float | None:
    by = {(r["target"], r["round"]): r for r in records}
    rounds = sorted({r["round"] for r in records})
    return median([by[(mine, n)]["runs"][kind][metric] / by[(peer, n)]["runs"][kind][metric]
                   for n in rounds if (mine, n) in by and (peer, n) in by])


def check_targets(summary: dict, records: list[dict]) -> list[dict]:
    d_single = summary["d"]["rows"]["single"]
    f_batch = summary["f"]["rows"]["batch"]
    checks = [
        ("split gRPC single req/s ≥ 3× (a)", ratio(records, "d", "a", "single"), 3.0),
        ("split gRPC single req/s ≥ 1.3× (b)", ratio(records, "d", "b", "single"), 1.3),
        ("split gRPC single p99 ≤ 3× p50", d_single["p99_ms"] / d_single["p50_ms"], -3.0),
        ("split gRPC batch leads/s ≥ 2× (b)", ratio(records, "d", "b", "batch"), 2.0),
        ("in-process single req/s ≥ 1.1× (c)", ratio(records, "f", "c", "single"), 1.1),
        ("in-process batch ≥ 75,000 leads/s", f_batch["leads_s"], 75_000),
        ("in-process batch leads/s ≥ 3× (c)", ratio(records, "f", "c", "batch"), 3.0),
        ("cold start ≤ 1.5 s (ours, worst transformer)",
         max(summary[k]["cold_start_s"]["transformer"] for k in "def"), -1.5),
        ("RSS ≤ 200 MB per process (ours, worst)",
         max(mb for k in "def" for mb in summary[k]["rss_mb"].values()), -200.0),
    ]
    # A negative bound means "at most"; a positive one "at least".
    return [{"target": name, "value": value, "bound": abs(bound),
             "pass": value is not None and (value <= -bound if bound < 0 else value >= bound)}
            for name, value, bound in checks]


def markdown(summary: dict, checks: list[dict], sink: dict, meta: dict) -> str:
    def fmt(value, spec=",.0f"):
        return "–" if value is None else format(value, spec)

    lines = ["| target | leads/req | req/s | leads/s | p50 ms | p90 ms | p99 ms | errors | CPU ms/lead (all procs) | "
             "CPU ms/lead (front proc) | × (a) | × (c) | cold start s | RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, entry in summary.items():
        cold = " / ".join(f"{n.split('-')[0]} {v:.2f}" for n, v in entry["cold_start_s"].items())
        rss = " / ".join(f"{n.split('-')[0]} {v:.0f}" for n, v in entry["rss_mb"].items())
        for kind, row in entry["rows"].items():
            lines.append(f"| ({key}) {entry['label']} — {kind} | {row['leads']} | {fmt(row['req_s'])} | "
                         f"{fmt(row['leads_s'])} | {fmt(row['p50_ms'], '.1f')} | {fmt(row['p90_ms'], '.1f')} | "
                         f"{fmt(row['p99_ms'], '.1f')} | {row['errors']:.0f} | {fmt(row['cpu_ms_per_lead'], '.3f')} | "
                         f"{fmt(row['front_cpu_ms_per_lead'], '.3f')} | {fmt(row['x_a'], '.2f')} | "
                         f"{fmt(row['x_c'], '.2f')} | {cold} | {rss} |")
    f_rows = summary["f"]["rows"]
    extra = f_rows["batch+reasons"]["cpu_ms_per_lead"] - f_rows["batch"]["cpu_ms_per_lead"]
    lines += ["", f"Reason codes (top 3, in-process, batch of {BATCH}): +{extra:.3f} CPU ms per lead, "
                  f"{f_rows['batch+reasons']['leads_s']:,.0f} leads/s vs {f_rows['batch']['leads_s']:,.0f} without.",
              "Data-lake sink alone (`python -m hack.bench_sink`): "
              + ", ".join(f"{k} leads/request {v:,.0f} records/s" for k, v in sink.items()) + ".",
              "", "| target | measured | bound | result |", "|---|---|---|---|"]
    for check in checks:
        lines.append(f"| {check['target']} | {fmt(check['value'], ',.2f')} | {check['bound']:,g} | "
                     f"{'pass' if check['pass'] else '**MISS**'} |")
    lines += ["", f"Medians of {meta['rounds']} alternating round(s), {meta['seconds']:g} s per run, wrk "
                  f"-t{meta['threads']} -c{meta['connections']}; wrk shares the {meta['nproc']} cores with the servers. "
                  "Ratios are per-round ratios of leads/s (= req/s for the same batch size), then the median."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Extras: the sink micro-benchmark and (optionally) py-spy on our transformer


def run_sink_bench() -> dict:
    done = subprocess.run([sys.executable, "-m", "hack.bench_sink"], cwd=ROOT, capture_output=True, text=True,  # nosec B603
                          timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"hack.bench_sink failed:\n{done.stdout}\n{done.stderr}")
    return {m.group(1): float(m.group(2).replace(",", ""))
            for m in re.finditer(r"leads/request=\s*(\d+)\s+records/s=([\d,]+)", done.stdout)}


def profile(target: Target, run_dir: Path, api_key: str, seconds: float, threads: int, connections: int) -> dict:
    """py-spy on the front process while wrk runs: not timed, kept out of the numbers above (py-spy takes CPU too)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy==0.4.1")
    log_dir = run_dir / "logs" / f"profile-{target.key}"
    target.live.extend(target.start(log_dir))
    out = {}
    try:
        front = target.live[-1]
        front.wait_ready(path=target.health_path)
        for request in target.requests:
            if request.kind == "batch+reasons":
                continue
            script = write_script(log_dir, request.kind, request.body, api_key)
            raw = ROOT / "bench-results" / f"profile-{target.key}-{request.kind}.txt"
            spy = subprocess.Popen([py_spy, "record", "--pid", str(front.process.pid), "--duration",  # nosec B603
                                    str(int(seconds)), "--rate", "200", "--format", "raw", "--output", str(raw),
                                    "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            run_wrk(front.url + request.path, script, seconds, threads, connections)
            spy.wait(timeout=60)
            out[request.kind] = {"file": str(raw.relative_to(ROOT)), "top": top_frames(raw)}
    finally:
        stop_all(target)
    return out


def top_frames(collapsed: Path, limit: int = 15) -> list[tuple[str, float]]:
    """Share of samples per innermost frame (self time), from py-spy's raw (collapsed) stacks."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
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
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for package in ("kserve", "xgboost-cpu", "xgboost", "fastapi", "uvicorn", "grpcio"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # nosec B603 B607
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "packages": versions,
            "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else None,
            "loadavg_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "predictor" / "model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--targets", default="abcdef", help="subset to run (the checks need all six)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3 s")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, py-spy our transformer (d and f) under load; needs py-spy in the venv")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 3.0
    model_dir = args.model_dir.resolve()
    api_key = "bench-" + secrets.token_urlsafe(18)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {"started": stamp, "rounds": args.rounds, "seconds": args.seconds, "threads": args.threads,
            "connections": args.connections, "batch": BATCH, **machine(),
            "note": "wrk runs on the same cores as the servers; default scheduling (no taskset)"}
    run_dir = Path(tempfile.mkdtemp(prefix="lead-scoring-bench-"))
    print(f"bench: {meta['nproc']} cores ({meta['cpu']}), load {meta['loadavg_at_start']}, temp dir {run_dir}",
          flush=True)
    work = Workload.build(model_dir, BATCH)
    targets = [t for t in build_targets(model_dir, work, api_key, run_dir) if t.key in args.targets]
    records: list[dict] = []
    try:
        for round_no in range(1, args.rounds + 1):
            for target in targets:
                started = time.monotonic()
                record = run_target(target, round_no, run_dir, api_key, args.seconds, args.threads, args.connections)
                record["loadavg_after"] = os.getloadavg()
                records.append(record)
                runs = "  ".join(f"{kind} {run['req_s']:,.0f} req/s p99 {run['p99_ms']:.1f} ms"
                                 for kind, run in record["runs"].items())
                print(f"round {round_no} ({target.key}) {runs}  [{time.monotonic() - started:.0f} s]", flush=True)
        sink = run_sink_bench()
        profiles = {}
        if args.profile:
            for target in targets:
                if target.key in "df":
                    profiles[target.key] = profile(target, run_dir, api_key, args.seconds, args.threads,
                                                   args.connections)
    except BenchError as exc:
        print(f"\nBENCH FAILED: {exc}\nlogs kept in {run_dir / 'logs'}", file=sys.stderr)
        return 1
    finally:
        for target in targets:
            stop_all(target)
    summary = summarise(records, targets)
    complete = {t.key for t in targets} >= set("abcdef")
    checks = check_targets(summary, records) if complete else []
    table = markdown(summary, checks, sink, meta) if complete else "(subset run: no table of checks)"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"bench-{stamp}.json"
    out.write_bytes(orjson.dumps({"meta": meta, "summary": summary, "checks": checks, "sink_records_per_s": sink,
                                  "profiles": profiles, "records": records},
                                 option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    print("\n" + table + f"\n\nJSON: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    for key, kind_profiles in profiles.items():
        for kind, prof in kind_profiles.items():
            print(f"\npy-spy ({key}, {kind}) — self time per frame; raw stacks in {prof['file']}")
            for frame, share in prof["top"]:
                print(f"  {share:5.1f} %  {frame[:150]}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
