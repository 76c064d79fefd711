"""Command line of `python -m transformer`: every KServe ModelServer flag plus ours.

Every flag can also come from the environment (the flag's dest upper-cased: MODEL_CARD_URI, SINK_URI, HTTP_PORT …)
because Kubernetes users configure pods with env vars and Secrets more often than with args. An explicit flag wins.
"""

from __future__ import annotations

import argparse
import os


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _reasons_k(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 50:  # top-k of the 50 features' contributions: more does not exist
        raise argparse.ArgumentTypeError(f"must be 1 to 50 (the number of features), got {number}")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1-65535, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {number}")
    return number


def _positive_finite_float(value: str) -> float:
    number = float(value)
    if not 0 < number < float("inf"):  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return number


def _drift_window(value: str) -> int:
    from transformer.extras.drift import MIN_ROWS  # imported here: parsing flags should not pay for numpy

    number = int(value)
    if number < MIN_ROWS:
        raise argparse.ArgumentTypeError(
            f"must be >= {MIN_ROWS} (PSI is published once the window holds {MIN_ROWS} leads), got {number}"
        )
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value}")
    return number


def drift_rate_cap(args: argparse.Namespace) -> float | None:
    """--drift_max_leads_per_second as DriftMonitor takes it (None = every lead)."""
    value = args.drift_max_leads_per_second
    if value is None:
        return args.drift_window / args.drift_publish_seconds
    return None if value == 0 else value


def add_lead_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lead scoring")
    group.add_argument(
        "--model_card_uri",
        default=None,
        help="Storage URI of the model artifact folder (the predictor's storageUri): local path, "
        "s3://, gs://, https://<account>.blob.core.windows.net/... Required.",
    )
    group.add_argument(
        "--api_keys_file",
        default=None,
        help="YAML keys file (a mounted Secret); re-read when it changes. Env API_KEYS adds name:key pairs.",
    )
    group.add_argument(
        "--api_keys_reload_seconds",
        type=_positive_float,
        default=2.0,
        help="How often the keys file is checked for changes.",
    )
    group.add_argument(
        "--max_leads", type=_positive_int, default=1000, help="Most leads accepted in one request."
    )
    group.add_argument(
        "--max_body_bytes",
        type=_positive_int,
        default=4 * 1024 * 1024,
        help="Largest REST body accepted (413 above).",
    )
    group.add_argument(
        "--max_errors_reported",
        type=_positive_int,
        default=20,
        help="Validation problems listed in one 400 answer (the total is always counted).",
    )
    group.add_argument(
        "--sink_uri",
        default=None,
        help="Data lake: file:///path | s3://bucket/prefix | https://<acct>.blob.core.windows.net/<container>/<prefix>. "
        "Unset: scoring results are not recorded (a warning is logged).",
    )
    group.add_argument(
        "--sink_spool_dir",
        default="/var/spool/lead-scoring",
        help="Local spool for batches not yet uploaded (an emptyDir in the pod; one per replica).",
    )
    group.add_argument(
        "--sink_flush_records",
        type=_positive_int,
        default=5000,
        help="Cut a Parquet file after this many records ...",
    )
    group.add_argument(
        "--sink_flush_seconds",
        type=_positive_float,
        default=5.0,
        help="... or when its oldest record is this old.",
    )
    group.add_argument(
        "--sink_spool_max_bytes",
        type=_positive_int,
        default=1 << 30,
        help="Spool bound; beyond it records are dropped visibly (counter + log), scoring goes on.",
    )
    group.add_argument(
        "--sink_include_features",
        type=_bool,
        default=True,
        help="Store the 50 features with each scoring result.",
    )
    group.add_argument(
        "--sink_encoder",
        choices=("thread", "process"),
        default="thread",
        help="Where lake files are encoded: in a thread of the server, or in one child process, which keeps the "
        "encoding's GIL hand-offs off the event loop (+~40 MB of RSS; docs/performance.md, seventh and eighth "
        "passes).",
    )
    group.add_argument(
        "--sink_uploader",
        choices=("thread", "process"),
        default="thread",
        help="Where lake files are uploaded: from a thread of the server, or from one child process, which keeps "
        "the storage SDK's GIL hand-offs off the event loop and boto3 / the Azure SDK out of the server "
        "(docs/performance.md, ninth pass).",
    )
    group.add_argument(
        "--sink_journal",
        type=_bool,
        default=True,
        help="Append each answered request's records to <spool>/journal before the answer (one write, no fsync), "
        "so a SIGKILL or OOM kill before the next flush loses none of them; the next start spools them "
        "(docs/data-lake.md). Applies to the outcomes spool too.",
    )
    group.add_argument("--sink_s3_endpoint_url", default=None, help="S3-compatible endpoint (MinIO, moto …).")
    group.add_argument(
        "--sink_azure_connection_string",
        default=None,
        help="Azure Storage connection string; unset → DefaultAzureCredential (workload identity).",
    )
    group.add_argument(
        "--outcomes_uri",
        default=None,
        help="Outcomes table of the data lake (POST /v1/outcomes records there; same URI forms as "
        "--sink_uri): <sink_uri>/_outcomes, where quality.report reads them (elsewhere, give the job "
        "--outcomes-uri). Unset: the outcomes route answers 404.",
    )
    group.add_argument(
        "--outcomes_spool_dir",
        default="/var/spool/lead-scoring-outcomes",
        help="Local spool of the outcomes table (its own folder, not inside --sink_spool_dir).",
    )
    group.add_argument(
        "--outcomes_spool_max_bytes",
        type=_positive_int,
        default=128 * 1024 * 1024,
        help="Bound of the outcomes spool (an outcome is ~100 bytes: 128 MiB holds about a million).",
    )
    group.add_argument(
        "--max_outcomes",
        type=_positive_int,
        default=1000,
        help="Most outcomes accepted in one POST /v1/outcomes call.",
    )
    group.add_argument(
        "--drain_seconds",
        type=_positive_float,
        default=20.0,
        help="On SIGTERM, after --drain_delay_seconds: time for the gRPC and HTTP servers, together, to finish "
        "in-flight requests; then the same again to flush the data lake. A pod needs the queue-proxy's drain + "
        "delay + twice this before its SIGKILL.",
    )
    group.add_argument(
        "--drain_delay_seconds",
        type=float,
        default=5.0,
        help="On SIGTERM: keep serving this long with readiness false, so routing moves away first.",
    )
    group.add_argument(
        "--drift_window",
        type=_drift_window,
        default=5000,
        help="Leads in the sliding window compared with the card's training distribution (PSI): the most recent "
        "ones, or a uniform sample of them above --drift_max_leads_per_second. At least 500, the leads the window "
        "must hold before PSI is published.",
    )
    group.add_argument(
        "--drift_publish_seconds",
        type=_positive_finite_float,
        default=10.0,
        help="How often the PSI gauges are recomputed.",
    )
    group.add_argument(
        "--drift_max_leads_per_second",
        type=_non_negative_float,
        default=None,
        help="Above this many scored leads a second, drift keeps each lead with the same probability, so it bins "
        "about this many a second: the window then spans about window / this seconds of traffic, at a cost that "
        "does not grow with traffic. Default: drift_window / drift_publish_seconds (500), a window that turns over "
        "once per publish interval. 0 = every lead.",
    )
    group.add_argument(
        "--coalesce",
        type=_bool,
        default=True,
        help="Score the leads of requests that arrive together in one predictor call (no added wait).",
    )
    group.add_argument(
        "--fast_path",
        type=_bool,
        default=True,
        help="Serve the JSON V1/V2 scoring routes on a lean ASGI path in front of KServe's FastAPI app "
        "(same answers; ~2x less CPU per request). false = KServe's own REST path only.",
    )
    group.add_argument(
        "--metrics_port",
        type=_port,
        default=None,
        help="Serve Prometheus /metrics on this port (all interfaces) instead of the API port, where "
        "GET /metrics then answers 404. Unset: /metrics stays on --http_port (local use). "
        "In Kubernetes set it and do not declare it as a containerPort: only the public port "
        "goes through the ingress (docs/kubernetes.md, Metrics).",
    )
    group.add_argument(
        "--log_level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Level of the JSON log lines (one per request at INFO).",
    )
    group.add_argument(
        "--reasons_max",
        type=_reasons_k,
        default=50,
        help="Largest top-k of reason codes a client may ask (50 = the full attribution).",
    )
    group.add_argument(
        "--reasons_max_leads",
        type=_positive_int,
        default=200,
        help="Most leads in one request that asks for reason codes (TreeSHAP costs ~0.5 ms a lead).",
    )


def apply_environment(parser: argparse.ArgumentParser, environ: dict[str, str] | None = None) -> None:
    """Turn env vars into defaults, so that an explicit flag still wins."""
    environ = os.environ if environ is None else environ
    for action in parser._actions:  # argparse offers no public iterator over actions
        if not action.option_strings or action.dest in {"help"}:
            continue
        raw = environ.get(action.dest.upper())
        if raw is None:
            continue
        try:
            if action.nargs == 0:  # store_true style flags
                action.default = _bool(raw)
            elif action.type is not None:
                action.default = action.type(raw)
            else:
                action.default = raw
        except (argparse.ArgumentTypeError, ValueError) as exc:
            # As for the flag itself: one usage line naming the variable, exit 2, not a traceback.
            parser.error(f"environment variable {action.dest.upper()}={raw!r}: {exc}")


def build_parser(environ: dict[str, str] | None = None) -> argparse.ArgumentParser:
    # Importing kserve.model_server parses sys.argv once; its parser is the one to extend so that every KServe flag works.
    from kserve import model_server

    parser = argparse.ArgumentParser(
        prog="python -m transformer",
        parents=[model_server.parser],
        conflict_handler="resolve",
        description="Lead-scoring KServe transformer.",
    )
    add_lead_scoring_arguments(parser)
    from transformer.predictors.legacy import add_legacy_arguments

    add_legacy_arguments(parser)
    # A hop timeout of KServe's default 600 s would hold a client for ten minutes behind a dead predictor.
    parser.set_defaults(
        model_name="lead-scoring",
        predictor_protocol="grpc-v2",
        predictor_request_timeout_seconds=2,
        predictor_request_retries=1,
        enable_latency_logging=False,
    )
    retries = next(action for action in parser._actions if action.dest == "predictor_request_retries")
    retries.help = (
        "Times a predictor call is repeated when the predictor could not be reached (gRPC UNAVAILABLE, REST "
        "connect errors); a call that timed out or failed is never repeated. Default 1."
    )
    # KServe's own flag, which its one-worker server never reads (transformer/serving/event_loop.py): the default
    # becomes what really runs, and the help says what each value does here. (Its action object is the one KServe's
    # module-level parser holds — re-adding the flag under conflict_handler="resolve" would strip its option strings
    # there — so the same values are set on it at every build.)
    event_loop = next(action for action in parser._actions if action.dest == "event_loop")
    event_loop.help = (
        "Event loop of the REST and gRPC servers: 'asyncio', asyncio's own (default; what a one-worker KServe server "
        "runs whatever KServe's flag says), 'uvloop', or 'auto' (uvloop if installed). uvloop measured no faster "
        "in-process and slower in split mode, whose gRPC hop it runs too (docs/performance.md, thirteenth pass)."
    )
    parser.set_defaults(event_loop="asyncio")
    # KServe's flag turns a readiness check of the predictor on; this transformer always makes it
    # (transformer/__main__.py), so the default says so and the flag is accepted for compatibility.
    health = next(action for action in parser._actions if action.dest == "enable_predictor_health_check")
    health.help = (
        "Always on here, with or without the flag (accepted for KServe compatibility): readiness includes the "
        "predictor in split mode, so Knative stops routing to a transformer whose predictor is unreachable."
    )
    parser.set_defaults(enable_predictor_health_check=True)
    # KServe hands this format to asgi-logger, a package it does not depend on and this project does not ship.
    access_log_format = next(action for action in parser._actions if action.dest == "access_log_format")
    access_log_format.help = (
        "Not supported here (the server refuses to start with it): KServe passes it to asgi-logger, which is not "
        "installed. Each scoring request gets one JSON log line instead (README, Observability)."
    )
    apply_environment(parser, environ)
    return parser


def markdown_config_table() -> str:
    """The configuration reference, generated from the parser itself so it cannot drift (`make docs`)."""
    parser = build_parser(environ={})
    ours = {
        a.dest for group in parser._action_groups if group.title != "options" for a in group._group_actions
    }
    lines = [
        "# Configuration of `python -m transformer`",
        "",
        "Generated from the argument parser by `make docs`. Every flag can also be set by the environment variable",
        "in the second column (an explicit flag wins). The last column says where the flag comes from.",
        "",
        "| flag | env var | default | meaning | from |",
        "|---|---|---|---|---|",
    ]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = max(action.option_strings, key=len)
        default = "" if action.default is None else f"`{action.default}`"
        meaning = " ".join((action.help or "").split()).replace("|", "\\|")
        origin = "lead scoring" if action.dest in ours else "KServe"
        lines.append(f"| `{flag}` | `{action.dest.upper()}` | {default} | {meaning} | {origin} |")
    lines += [
        "",
        "Also read from the environment only: `API_KEYS` (`name:key,name2:key2`), `AZURE_STORAGE_CONNECTION_STRING`,",
        "`AZUREML_KEY`, and the usual AWS / Azure credential variables (IRSA, workload identity).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_config_table())
