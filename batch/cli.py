"""`python -m batch`: arguments (each with an environment variable, for the Job manifest), the run, the summary.

Exit codes (docs/batch.md "Exit codes"): 0 done (or already done); 1 a failure a retry may cure (a store or the
network down, throttled, a 5xx) or an unexpected one; 2 an error the operator must fix (input, output, model,
arguments, another run in the output); 130 Ctrl-C; 143 SIGTERM. Every failure is one line on stderr, never a
traceback (BATCH_DEBUG=1 shows it), and, off a terminal, one `shard_failed` JSON line on stdout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from batch.errors import BatchError, Terminated
from batch.metrics import pushgateway_url_problem
from batch.redaction import one_line, redact_text, redact_uri


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        # Exit 2 like the options' own usage errors: the operator must fix the Job's environment.
        sys.stderr.write(f"batch: environment variable {name} must be a whole number, got {value[:40]!r}\n")
        raise SystemExit(2) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line, like every other failure of the job (argparse prints the whole usage first).
        self.exit(2, f"batch: {one_line(redact_text(message))} (python -m batch --help)\n")


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    parser = _Parser(
        prog="python -m batch",
        description="Score a CRM export (CSV or Parquet; local path, s3://, Azure Blob URL) with the lead-scoring "
        "model: Parquet scores, rejects and a manifest under --output. See docs/batch.md.",
    )
    parser.add_argument(
        "--input",
        default=env.get("BATCH_INPUT"),
        required=not env.get("BATCH_INPUT"),
        help="a .parquet/.csv/.csv.gz file or a folder/prefix of them [BATCH_INPUT]",
    )
    parser.add_argument(
        "--output",
        default=env.get("BATCH_OUTPUT"),
        required=not env.get("BATCH_OUTPUT"),
        help="folder/prefix for scores/, rejects/, _shards/, _manifest.json [BATCH_OUTPUT]",
    )
    parser.add_argument(
        "--model",
        default=env.get("BATCH_MODEL_URI"),
        required=not env.get("BATCH_MODEL_URI"),
        help="the model artifact folder: booster + model-card.yaml, as the predictor's "
        "storageUri [BATCH_MODEL_URI]",
    )
    parser.add_argument(
        "--shard-index",
        type=int,
        default=_int_env(env, "JOB_COMPLETION_INDEX", 0),
        help="this shard, 0-based [JOB_COMPLETION_INDEX, set by an Indexed Job]",
    )
    parser.add_argument(
        "--shard-count",
        type=int,
        default=_int_env(env, "BATCH_SHARD_COUNT", 1),
        help="shards in the run: the Job's completions [BATCH_SHARD_COUNT]",
    )
    parser.add_argument(
        "--reasons",
        type=int,
        default=_int_env(env, "BATCH_REASONS", 0),
        metavar="K",
        help="add the top-K reason codes per lead (0 = none) [BATCH_REASONS]",
    )
    parser.add_argument(
        "--window-rows",
        type=int,
        default=_int_env(env, "BATCH_WINDOW_ROWS", 16_384),
        help="rows read, validated and scored at a time: bounds memory [BATCH_WINDOW_ROWS]",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(env.get("BATCH_WORK_DIR") or env.get("TMPDIR") or tempfile.gettempdir()),
        help="local scratch for the shard's files before they are committed [BATCH_WORK_DIR]",
    )
    parser.add_argument(
        "--pushgateway-url",
        default=env.get("BATCH_PUSHGATEWAY_URL") or None,
        help="push shard metrics to this Prometheus Pushgateway [BATCH_PUSHGATEWAY_URL]",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "none"),
        default="auto",
        help="auto: a progress bar when stderr is a terminal, JSON log lines otherwise",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if args.shard_count < 1:
        parser.error(f"--shard-count must be at least 1, got {args.shard_count}")
    if not 0 <= args.shard_index < args.shard_count:
        parser.error(f"--shard-index must be in 0..{args.shard_count - 1}, got {args.shard_index}")
    if not 0 <= args.reasons <= 50:
        parser.error(f"--reasons must be 0..50, got {args.reasons}")
    if args.window_rows < 1:
        parser.error(f"--window-rows must be positive, got {args.window_rows}")
    if args.pushgateway_url and (problem := pushgateway_url_problem(args.pushgateway_url)):
        parser.error(f"--pushgateway-url {redact_uri(args.pushgateway_url)!r} is not a URL: {problem}")
    return args


def _summary(result, settings, stream) -> None:
    m = result.marker
    output = redact_uri(settings.output).rstrip("/")
    state = "already done, skipped" if result.skipped else f"done in {m['seconds']:.1f} s"
    rate = m["rows_read"] / m["seconds"] * 60 if m["seconds"] and not result.skipped else 0
    stream.write(
        f"shard {m['shard'] + 1}/{m['shard_count']}: {state}\n"
        f"  rows read {m['rows_read']:,}  scored {m['rows_scored']:,}  rejected {m['rows_rejected']:,}"
        f" ({m['problems']:,} problems)" + (f"  {rate:,.0f} rows/min" if rate else "") + "\n"
        f"  tiers {'  '.join(f'{t} {n:,}' for t, n in m['tiers'].items())}\n"
        f"  model {m['model_version']}  scores {output}/{m['scores']}\n"
    )
    if result.manifest:
        stream.write(f"  all {m['shard_count']} shard(s) done: manifest {output}/_manifest.json\n")


def _on_sigterm(*_) -> None:
    # Once: the unwinding (scratch files removed) must not be cut short by a second signal.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    from batch.progress import log_line
    from batch.run import Settings, run_shard

    args = parse_args(argv)
    # SIGTERM (pod deletion, Job deadline) unwinds like Ctrl-C: the shard's scratch files are removed, and the
    # failure is reported by how far the commit got.
    signal.signal(signal.SIGTERM, _on_sigterm)
    interactive = args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty())

    def failed(code: int, message: str) -> int:
        text = one_line(redact_text(message))
        sys.stderr.write(f"batch: {text}\n")
        if not interactive:
            log_line(
                "shard_failed",
                shard=args.shard_index,
                shard_count=args.shard_count,
                exit_code=code,
                error=text,
            )
        return code

    settings = Settings(
        input=args.input,
        output=args.output,
        model=args.model,
        shard_index=args.shard_index,
        shard_count=args.shard_count,
        reasons=args.reasons,
        window_rows=args.window_rows,
        work_dir=args.work_dir,
        pushgateway_url=args.pushgateway_url,
        s3_endpoint_url=args.s3_endpoint_url,
        progress=interactive,
    )
    try:
        try:
            settings.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BatchError(f"cannot use the work folder {settings.work_dir}: {error}") from None
        result = run_shard(settings)
        if interactive:
            _summary(result, settings, sys.stdout)
        else:
            log_line("shard_skipped" if result.skipped else "shard_done", **result.marker)
            if result.manifest:
                log_line("run_done", **{k: v for k, v in result.manifest.items() if k != "shards"})
    except BatchError as error:
        return failed(error.exit_code, error.message)
    except Terminated as stop:
        return failed(stop.exit_code, stop.message)
    except KeyboardInterrupt:
        return failed(130, "interrupted; re-run to resume: committed shards are skipped")
    except Exception as error:  # noqa: BLE001 - the last line of defence: one clear line instead of a traceback
        if os.environ.get("BATCH_DEBUG"):
            raise
        return failed(
            1,
            f"unexpected {type(error).__name__}: {one_line(str(error))[:300]} "
            "(re-run to resume: committed shards are skipped; BATCH_DEBUG=1 shows the traceback)",
        )
    return 0
