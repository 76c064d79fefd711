"""Where the transformer's resident memory and import time go, step by step (issue 17).

    python -m hack.bench_imports [--runs 3] [--python .venv/bin/python]

Imports the split-mode transformer's start-up path one piece at a time in a fresh interpreter, in the order the
transformer itself imports them, and reads VmRSS and the wall clock after each step. The first step that imports a
package pays for it (a shared dependency is charged to whoever comes first), so the order is the real one: what
`import kserve` drags in is charged to kserve's steps, what only we import to ours. Each run is a new process; the
table shows the median over runs (RSS barely moves between runs, time does on a shared machine).

Then the same for the KServe-only environment of the stock peers (`hack/bench_peers/stock_env.py`), if it exists:
what a stock transformer carries, for comparison.
"""

from __future__ import annotations

import argparse
import statistics

# subprocess runs the probe with our own interpreter(s) (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
from pathlib import Path

import orjson

from hack.bench_peers.stock_env import STOCK_VENV
from hack.stack import ROOT

# (label, statement). Third-party packages are split out of the module that first imports them, in that order.
SPLIT_MODE_STEPS = [
    ("numpy", "import numpy"),
    ("yaml + pydantic (model card, features)", "import yaml, pydantic"),
    ("prometheus_client + orjson", "import prometheus_client, orjson"),
    (
        "contract (features, card, validation, tiers) + transformer domain modules (drift, auth, coalesce, reasons, cli)",
        "import contract.features, contract.model_card, contract.validation, transformer.extras.drift, "
        "transformer.coalesce, transformer.auth, transformer.extras.reasons, transformer.cli, transformer.logs",
    ),
    ("fastapi + starlette + uvicorn", "import fastapi, starlette, uvicorn"),
    ("grpc + protobuf", "import grpc, google.protobuf"),
    (
        "kserve incl. the kubernetes client, as the transformer imports it (lean_kserve): optional extras hidden, "
        "pandas deferred",
        "from transformer.serving import lean_kserve; lean_kserve.import_kserve()",
    ),
    (
        "pyarrow + pyarrow.parquet, without pandas (data lake: transformer.sink.arrow)",
        "import transformer.sink.arrow",
    ),
    ("transformer.sink (rest of the data lake)", "import transformer.sink"),
    (
        "transformer.serving (KServe adapter, fast path) + predictors.hop + scoring",
        "import transformer.serving.app, transformer.serving.fast_path, transformer.serving.kserve_model, "
        "transformer.predictors.hop, transformer.scoring, transformer.serving.drain",
    ),
    (
        "uvicorn's protocol modules (imported when it starts serving)",
        "import uvicorn.protocols.http.httptools_impl, uvicorn.protocols.websockets.websockets_sansio_impl",
    ),
    (
        "--- never on our path: pandas (kserve imports it; ours defers it, docs/performance.md)",
        "import pandas",
    ),
    ("--- not in split mode: xgboost (in-process mode, reason codes)", "import xgboost"),
    (
        "--- only for a remote model card: kserve_storage (download; a local folder skips it)",
        "import kserve_storage",
    ),
    ("--- not at start-up: boto3 (s3:// sink / card)", "import boto3"),
    ("--- not at start-up: azure.storage.blob (Azure sink)", "import azure.storage.blob, azure.identity"),
]

STOCK_STEPS = [
    ("numpy", "import numpy"),
    ("pandas", "import pandas"),
    ("fastapi + starlette + uvicorn", "import fastapi, starlette, uvicorn"),
    ("grpc + protobuf", "import grpc, google.protobuf"),
    ("kubernetes client", "import kubernetes"),
    ("kserve (the rest of it)", "import kserve, kserve.model_server"),
]

_PROBE = """
import sys, time, json
from pathlib import Path
def rss():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
out = [("python", rss(), 0.0, [])]
for label, statement in json.loads(sys.argv[1]):
    before = set(sys.modules)
    started = time.perf_counter()
    try:
        exec(statement, {})  # the statements are the fixed import lines above
        err = None
    except ImportError as exc:
        err = str(exc)
    new = sorted({m.split('.')[0] for m in set(sys.modules) - before})
    out.append((label if err is None else label + ' (not installed)', rss(), time.perf_counter() - started, new))
print(json.dumps(out))
"""


def probe(python: Path, steps: list[tuple[str, str]], runs: int) -> list[dict]:
    results = []
    for _ in range(runs):
        done = subprocess.run(
            [str(python), "-c", _PROBE, orjson.dumps(steps).decode()],
            cwd=ROOT,  # nosec B603
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        results.append(orjson.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for i, (label, _, _, new) in enumerate(results[0]):
        rss = statistics.median(r[i][1] for r in results)
        previous = statistics.median(r[i - 1][1] for r in results) if i else 0.0
        rows.append(
            {
                "step": label,
                "rss_mb": round(rss, 1),
                "delta_mb": round(rss - previous, 1),
                "seconds": round(statistics.median(r[i][2] for r in results), 3),
                "new_packages": new,
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| step | RSS after (MB) | Δ RSS (MB) | import s | new top-level packages |",
        "|---|--:|--:|--:|---|",
    ]
    for row in rows:
        packages = ", ".join(row["new_packages"][:12]) + (" …" if len(row["new_packages"]) > 12 else "")
        lines.append(
            f"| {row['step']} | {row['rss_mb']:.0f} | {row['delta_mb']:+.1f} | {row['seconds']:.3f} | "
            f"{packages} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.bench_imports", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", type=Path, default=Path(sys.executable))
    args = parser.parse_args(argv)
    print(
        f"Split-mode transformer start-up path ({args.python}), median of {args.runs} fresh interpreters:\n"
    )
    print(table(probe(args.python, SPLIT_MODE_STEPS, args.runs)))
    stock = STOCK_VENV / "bin" / "python"
    if stock.exists():
        print(f"\nStock KServe transformer ({stock}):\n")
        print(table(probe(stock, STOCK_STEPS, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
