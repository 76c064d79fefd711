"""`make serve`: the local stack — stand-in predictor + transformer (gRPC hop) on loopback, with a dev API key.

Keys: a fresh dev key (or DEV_API_KEY), plus the `name:key` pairs of API_KEYS and the keys file of --api-keys-file
(or API_KEYS_FILE), exactly as the transformer reads them; the names of the extra keys are printed, never the keys.
Ports: transformer REST 8080 / gRPC 8081, predictor REST 9080 / gRPC 9081 (override with TRANSFORMER_HTTP_PORT,
TRANSFORMER_GRPC_PORT, PREDICTOR_HTTP_PORT, PREDICTOR_GRPC_PORT). Data lake: var/lake (file://), spool var/spool;
outcomes (POST /v1/outcomes) in var/lake/_outcomes, spool var/spool-outcomes, where quality.report looks for them.
Ctrl-C stops both servers cleanly (the transformer flushes the data lake first).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from hack.stack import ROOT, start_predictor, start_transformer

EXAMPLES = """
  Dev API key: {key}{more_keys}

  V1, named features (one JSON object per lead):
    curl -s localhost:{port}/v1/models/lead-scoring:predict -H 'X-API-Key: {key}' \\
      -d @docs/examples/v1-instances.json

  V2, one input per feature ([N] each, plus lead_id):
    curl -s localhost:{port}/v2/models/lead-scoring/infer -H 'X-API-Key: {key}' \\
      -H 'Content-Type: application/json' -d @docs/examples/v2-columns.json

  V2, one FP32 [N,50] tensor in feature order (docs/features.md):
    curl -s localhost:{port}/v2/models/lead-scoring/infer -H 'X-API-Key: {key}' \\
      -H 'Content-Type: application/json' -d @docs/examples/v2-tensor.json

  tritonclient (gRPC on {grpc}):
    .venv/bin/python -m hack.triton_example --url localhost:{grpc} --api-key {key}

  Outcomes (python -m quality.report --lake {lake_uri} joins them with the scorings):
    curl -s localhost:{port}/v1/outcomes -H 'X-API-Key: {key}' -H 'Content-Type: application/json' \
      -d '{{"outcomes": [{{"lead_id": "acme-001", "outcome": "converted", "occurred_at": "<ISO 8601 time>"}}]}}'

  Metrics: curl -s localhost:{port}/metrics | grep lead_scoring_      Data lake: {lake}
"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.serve")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "predictor" / "model")
    parser.add_argument("--var", type=Path, default=ROOT / "var")
    parser.add_argument(
        "--api-keys-file",
        type=Path,
        default=os.environ.get("API_KEYS_FILE") or None,
        help="YAML keys file the transformer also accepts (env API_KEYS_FILE)",
    )
    args = parser.parse_args()
    key = os.environ.get("DEV_API_KEY") or "dev-" + secrets.token_urlsafe(18)
    api_keys, more_keys = _api_keys(key, os.environ.get("API_KEYS", ""), args.api_keys_file)
    lake = args.var / "lake"
    port = int(os.environ.get("TRANSFORMER_HTTP_PORT", "8080"))
    grpc = int(os.environ.get("TRANSFORMER_GRPC_PORT", "8081"))
    predictor = start_predictor(
        args.model_dir,
        args.var / "logs",
        int(os.environ.get("PREDICTOR_HTTP_PORT", "9080")),
        int(os.environ.get("PREDICTOR_GRPC_PORT", "9081")),
    )
    transformer = None
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        predictor.wait_ready()
        transformer = start_transformer(
            args.model_dir,
            args.var / "logs",
            api_keys=api_keys,
            predictor=predictor.grpc_target,
            http_port=port,
            grpc_port=grpc,
            extra_args=[
                "--sink_uri",
                lake.resolve().as_uri(),
                "--sink_spool_dir",
                str(args.var / "spool"),
                "--sink_flush_seconds",
                "2",
                "--outcomes_uri",
                (lake / "_outcomes").resolve().as_uri(),
                "--outcomes_spool_dir",
                str(args.var / "spool-outcomes"),
                "--drain_delay_seconds",
                "0",
                *(["--api_keys_file", str(args.api_keys_file.resolve())] if args.api_keys_file else []),
            ],
        )
        transformer.wait_ready()
        print(
            f"lead scoring is up: transformer http://localhost:{port} (gRPC {grpc}) → predictor "
            f"{predictor.grpc_target}\nlogs in {args.var / 'logs'}",
            flush=True,
        )
        print(
            EXAMPLES.format(
                key=key,
                more_keys=more_keys,
                port=port,
                grpc=grpc,
                lake=lake,
                lake_uri=lake.resolve().as_uri(),
            ),
            flush=True,
        )
        while not stopping:
            for server in (predictor, transformer):
                if server.process.poll() is not None:
                    print(
                        f"{server.name} exited ({server.process.returncode}):\n{server.log_tail()}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.3)
        print("stopping …", flush=True)
        return 0
    finally:
        if transformer is not None:
            transformer.stop()
        predictor.stop()


def _api_keys(dev_key: str, from_env: str, keys_file: Path | None) -> tuple[str, str]:
    """API_KEYS for the transformer (the dev key first, then the caller's pairs) and what to print about them."""
    pairs = [p.strip() for p in from_env.split(",") if p.strip()]
    names = [p.split(":", 1)[0] for p in pairs]
    notes = []
    if names:
        notes.append("API_KEYS: " + ", ".join(names))
    if keys_file:
        notes.append(f"keys file {keys_file}" + _names_in(keys_file))
    more = f"   (also accepted: {'; '.join(notes)})" if notes else ""
    return ",".join([f"dev:{dev_key}", *pairs]), more


def _names_in(keys_file: Path) -> str:
    """': name, …' for a keys file the transformer will accept; nothing if it will not (it says why when it starts)."""
    from transformer.auth import KeyFileError, parse_keys_file

    try:
        entries = parse_keys_file(keys_file.read_text(), str(keys_file))
    except (OSError, KeyFileError):
        return ""
    return ": " + ", ".join(dict.fromkeys(entry.name for entry in entries)) if entries else ""


if __name__ == "__main__":
    sys.exit(main())
