"""`python -m quality.report --lake <uri> --out <uri>`: join outcomes with scorings, measure, publish.

Engine: pyarrow. It is already what writes the lake (no new dependency in the image), its dataset scanner reads
only the columns asked for and pushes the lead filter into the scan, and its hash join and compute kernels are
multi-threaded C++; the per-lead "named, else latest eligible scoring" step is a numpy lexsort over integer codes. DuckDB or
Polars would do the same job in similar time, but would add a 30–50 MB dependency for one job.

Outputs, each run (run stamp = UTC start time):
  <out>/metrics/dt=YYYY-MM-DD/<stamp>-<uuid>.parquet        one row per (model version, tier | "all")
  <out>/calibration/dt=YYYY-MM-DD/<stamp>-<uuid>.parquet    one row per (model version, score decile)
  <out>/reports/<stamp>-<random>/report.md and calibration.png   (each run its own folder, even in the same second)
  gauges: --textfile PATH and/or --pushgateway URL (quality/gauges.py)

Outcomes are read from <lake>/_outcomes, or --outcomes-uri. If that location holds no outcome file at all, the job
says so on stderr and exits 2 without writing or pushing anything: a "success" there would keep every quality alert,
LeadScoringQualityJobStale included, silent (docs/model-quality.md § Measures).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quality import attribution, cli_args, gauges, plot
from quality.attribution import Window
from quality.lake import QUALITY_PREFIX, Lake
from quality.measures import TIERS, calibration_error, calibration_table, summarise
from transformer.sink.layout import unique_file_name


@dataclass
class QualityResult:
    window: Window
    run_at: datetime
    rows: list[dict] = field(default_factory=list)  # per (version, tier|"all")
    calibration: list[dict] = field(default_factory=list)  # per (version, decile)
    counts: dict = field(default_factory=dict)
    attributed: pa.Table | None = None
    seconds: float = 0.0
    scoring_rows_read: int = 0


def measure(
    lake: Lake,
    window: Window,
    reference_auc: dict[str, float] | None = None,
    *,
    outcomes: Lake | None = None,
) -> QualityResult:
    """`outcomes`: the outcomes table, when not <lake>/_outcomes (--outcomes-uri)."""
    started = time.perf_counter()
    result = QualityResult(window=window, run_at=datetime.now(UTC))
    read = attribution.read_outcomes(lake, window, outcomes=outcomes)
    labels, counts = attribution.labels_of(read, since=window.since)
    keys = attribution.score_keys(lake, window.scorings_from, window.until)
    # Coverage needs every scored lead of the read window; the join only the labelled ones (filter in the scan).
    everyone = lake.read(keys, columns=["lead_id", "model_version"])
    result.scoring_rows_read = everyone.num_rows
    scored_leads = {}
    if everyone.num_rows:
        for version in pc.unique(everyone["model_version"]).to_pylist():
            mine = everyone.filter(pc.equal(everyone["model_version"], version))
            scored_leads[version] = len(pc.unique(mine["lead_id"]))
    del everyone
    scorings = attribution.read_scorings(lake, keys, labels["lead_id"]) if labels.num_rows else None
    attributed = (
        attribution.attribute(scorings, labels, window.label_window) if scorings is not None else None
    )
    counts.update(
        outcomes=counts["converted"]
        + counts["disqualified"]
        + counts["open"],  # of the window, not the history
        scoring_files=len(keys),
        scoring_rows=result.scoring_rows_read,
        attributed_rows=attributed.num_rows if attributed is not None else 0,
    )
    if attributed is not None and attributed.num_rows:
        # Labelled leads that no version scored within the label window before the outcome.
        counts["unattributed_labels"] = int(labels.num_rows - len(pc.unique(attributed["lead_id"])))
        versions = sorted(pc.unique(attributed["model_version"]).to_pylist())
        for version in versions:
            mine = attributed.filter(pc.equal(attributed["model_version"], version))
            y = mine["label"].to_numpy().astype(np.float64)
            p = mine["score"].to_numpy().astype(np.float64)
            tiers = mine["tier"].to_numpy(zero_copy_only=False)
            model_name = mine["model_name"][0].as_py()
            overall = summarise(y, p, base_rate=float(y.mean()))
            table = calibration_table(y, p)
            overall.update(
                calibration_error=calibration_error(table),
                scored_leads=scored_leads.get(version, 0),
                label_coverage=len(y) / scored_leads[version] if scored_leads.get(version) else float("nan"),
                reference_auc=(reference_auc or {}).get(version, float("nan")),
            )
            result.rows.append({"model_name": model_name, "model_version": version, "tier": "all", **overall})
            for tier in TIERS:
                members = tiers == tier
                result.rows.append(
                    {
                        "model_name": model_name,
                        "model_version": version,
                        "tier": tier,
                        **summarise(y[members], p[members], base_rate=overall["conversion_rate"]),
                    }
                )
            result.calibration += [{"model_name": model_name, "model_version": version, **r} for r in table]
    else:
        counts["unattributed_labels"] = labels.num_rows
    (
        counts["labels_naming_a_scoring"],
        counts["named_scoring_not_found"],
        counts["named_scoring_not_eligible"],
    ) = attribution.named_scorings_unused(labels, scorings, window.label_window)
    result.counts = counts
    result.attributed = attributed
    result.seconds = time.perf_counter() - started
    return result


# ---- outputs -------------------------------------------------------------------------------------------------


def _table(rows: list[dict], result: QualityResult) -> pa.Table:
    stamp = {
        "run_at": result.run_at,
        "since": result.window.since,
        "until": result.window.until,
        "label_window_days": result.window.label_window / timedelta(days=1),
    }
    return pa.Table.from_pylist([{**stamp, **r} for r in rows]) if rows else pa.table({})


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _span(delta: timedelta) -> str:
    """A duration as the report prints it: 90 days, 1.5 days, 12 hours, 30 minutes (never "0 days")."""
    units = (("day", timedelta(days=1)), ("hour", timedelta(hours=1)), ("minute", timedelta(minutes=1)))
    unit, size = next(((u, s) for u, s in units if delta >= s), ("second", timedelta(seconds=1)))
    amount = f"{delta / size:,.3f}".rstrip("0").rstrip(".")
    return f"{amount} {unit}{'' if amount == '1' else 's'}"


def markdown(result: QualityResult) -> str:
    w = result.window
    lines = [
        f"# Realised model quality — run {result.run_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Leads whose first terminal outcome occurred {w.since:%Y-%m-%d %H:%M} … {w.until:%Y-%m-%d %H:%M} UTC, "
        "each judged, per model version, on the scoring the outcome names by `scoring_id`, else on the latest "
        f"scoring of the lead, made at most {_span(w.label_window)} before the outcome "
        "(docs/model-quality.md § Attribution).",
        "",
        "| counts | |",
        "|---|---|",
    ]
    lines += [f"| {k.replace('_', ' ')} | {_fmt(v)} |" for k, v in result.counts.items()]
    lines += [
        "",
        "## Per model version",
        "",
        "| version | labelled leads | scored leads | coverage | base rate | AUC | card AUC | log-loss | Brier | calibration error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in result.rows if r["tier"] == "all"):
        lines.append(
            f"| `{r['model_version']}` | {_fmt(r['labelled_leads'])} | {_fmt(r['scored_leads'])} | "
            f"{_fmt(r['label_coverage'])} | {_fmt(r['conversion_rate'])} | {_fmt(r['auc'])} | "
            f"{_fmt(r['reference_auc'])} | {_fmt(r['log_loss'])} | {_fmt(r['brier'], 4)} | "
            f"{_fmt(r['calibration_error'], 4)} |"
        )
    lines += [
        "",
        "## Per tier (side by side when several versions scored)",
        "",
        "| version | tier | labelled leads | conversions | conversion rate | lift | mean score | AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in result.rows if r["tier"] != "all"):
        lines.append(
            f"| `{r['model_version']}` | {r['tier']} | {_fmt(r['labelled_leads'])} | {_fmt(r['conversions'])} | "
            f"{_fmt(r['conversion_rate'])} | {_fmt(r['lift'], 2)} | {_fmt(r['mean_score'])} | {_fmt(r['auc'])} |"
        )
    lines += [
        "",
        "## Calibration by score decile",
        "",
        "| version | decile | leads | score range | predicted | observed |",
        "|---|---|---|---|---|---|",
    ]
    for r in result.calibration:
        lines.append(
            f"| `{r['model_version']}` | {r['decile']} | {_fmt(r['leads'])} | {r['score_min']:.3f}–{r['score_max']:.3f} | "
            f"{r['predicted']:.3f} | {r['observed']:.3f} |"
        )
    lines += [
        "",
        "![calibration (left: observed vs predicted by decile, diagonal = perfect) and lift by tier A…E "
        "(right, dotted line = base rate)](calibration.png)",
        "",
    ]
    return "\n".join(lines)


def picture(result: QualityResult) -> bytes:
    calibration: dict[str, list[dict]] = {}
    for r in result.calibration:
        calibration.setdefault(r["model_version"], []).append(r)
    lifts: dict[str, dict[str, float]] = {}
    for r in result.rows:
        if r["tier"] != "all":
            lifts.setdefault(r["model_version"], {})[r["tier"]] = r["lift"]
    return plot.render(calibration, lifts)


def write_outputs(result: QualityResult, out: Lake) -> dict[str, str]:
    day = f"{result.run_at:%Y-%m-%d}"
    # The writers never replace an object and say nothing when it exists, so two runs in the same second must not
    # share a folder (the second report would be dropped while printing "wrote"): milliseconds + a random suffix.
    stamp = f"{result.run_at:%Y%m%dT%H%M%S}.{result.run_at.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:12]}"
    written = {}
    with tempfile.TemporaryDirectory(prefix="quality-") as folder:
        staging = Path(folder)
        for name, rows in (("metrics", result.rows), ("calibration", result.calibration)):
            if rows:
                local = staging / f"{name}.parquet"
                pq.write_table(_table(rows, result), local, compression="zstd")
                key = f"{name}/dt={day}/{unique_file_name(result.run_at)}"
                out.put(key, local)
                written[name] = key
        (staging / "report.md").write_text(markdown(result))
        (staging / "calibration.png").write_bytes(picture(result))
        for name in ("report.md", "calibration.png"):
            key = f"reports/{stamp}/{name}"
            out.put(key, staging / name)
            written[name] = key
    return written


def reference_aucs(card_uris: list[str]) -> dict[str, float]:
    from contract.artifact_fetch import fetch_artifact
    from contract.model_card import load_card

    cards = [load_card(fetch_artifact(uri)) for uri in card_uris]
    return {card.version: card.metrics.auc for card in cards}


def add_lake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake", required=True, help="the transformer's --sink_uri (scorings; outcomes under _outcomes/)"
    )
    cli_args.add_outcomes_uri(parser)
    parser.add_argument("--s3-endpoint-url", default=None, help="S3-compatible endpoint (MinIO, moto …)")
    parser.add_argument(
        "--azure-connection-string",
        default=None,
        help="Azure Storage connection string (default: env AZURE_STORAGE_CONNECTION_STRING, "
        "else DefaultAzureCredential)",
    )


def window_from(args) -> Window:
    """The outcome window of parsed arguments; ValueError naming the arguments if --since is not before --until."""
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=args.days)
    if since >= until:
        raise ValueError(
            f"argument --since: must be before --until ({until:%Y-%m-%dT%H:%M:%SZ}), got {since:%Y-%m-%dT%H:%M:%SZ}"
        )
    return Window(since=since, until=until, label_window=timedelta(days=args.label_window_days))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quality.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_lake_arguments(parser)
    parser.add_argument("--out", default=None, help=f"where results go (default: <lake>/{QUALITY_PREFIX})")
    parser.add_argument(
        "--days",
        type=cli_args.days,
        default=30,
        help=f"measure outcomes of the last N days (default 30; > 0, at most {cli_args.MAX_DAYS:,})",
    )
    parser.add_argument(
        "--since",
        type=cli_args.instant,
        default=None,
        help="or from this ISO time (1970 … 2200; no zone = UTC) …",
    )
    parser.add_argument(
        "--until", type=cli_args.instant, default=None, help="… until this ISO time (default: now)"
    )
    parser.add_argument(
        "--label-window-days",
        type=cli_args.days,
        default=90,
        help="a scoring counts for an outcome at most this long before it (default 90; > 0, at most "
        f"{cli_args.MAX_DAYS:,})",
    )
    parser.add_argument(
        "--model-card",
        action="append",
        default=[],
        help="artifact URI of a served version (repeatable): its card's held-out AUC is published "
        "next to the realised one",
    )
    parser.add_argument("--textfile", default=None, help="write the gauges to this .prom file")
    parser.add_argument("--pushgateway", default=None, help="push the gauges to this Pushgateway URL")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE") or None,
        help="the Kubernetes namespace the pushed gauges carry (a Pushgateway grouping key; default env "
        "POD_NAMESPACE, which the CronJob sets to its own namespace)",
    )
    return parser


NO_OUTCOMES = (
    "error: no outcomes in {uri}: it holds no outcome file (dt=YYYY-MM-DD/*.parquet), so nothing was measured, "
    "written or pushed; give the transformer's --outcomes_uri with --outcomes-uri (default <lake>/_outcomes)"
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        window = window_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        lake = Lake(
            args.lake,
            s3_endpoint_url=args.s3_endpoint_url,
            azure_connection_string=args.azure_connection_string,
        )
        out = (
            Lake(
                args.out,
                s3_endpoint_url=args.s3_endpoint_url,
                azure_connection_string=args.azure_connection_string,
            )
            if args.out
            else lake.child(QUALITY_PREFIX)
        )
        outcomes_uri = cli_args.outcomes_uri(args)
        outcomes = Lake(
            outcomes_uri,
            s3_endpoint_url=args.s3_endpoint_url,
            azure_connection_string=args.azure_connection_string,
        )
        lake.require_exists()
        try:
            found = attribution.has_outcome_files(outcomes)
        except Exception as exc:  # noqa: BLE001 - as below, but name the outcomes table
            print(
                f"error: reading the outcomes {outcomes_uri} failed: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 1
        if not found:
            # Not a success: "0 labelled leads" and a fresh success stamp would keep every quality alert silent
            # (LeadScoringQualityJobStale included) while no outcome ever reaches the job.
            print(NO_OUTCOMES.format(uri=outcomes_uri), file=sys.stderr)
            return 2
        result = measure(lake, window, reference_aucs(args.model_card), outcomes=outcomes)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a store failing mid-read (SDK errors): say so, exit non-zero, no trace
        print(f"error: reading the lake {args.lake} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not result.counts.get("outcomes"):
        # Not a measurement: a push without quality gauges replaces the Pushgateway's group, so the quality alerts
        # would fall silent behind a fresh success stamp while the CRM's feed is broken. Nothing is written or
        # pushed; the stamp ages and LeadScoringQualityJobStale fires.
        print(
            f"error: no outcome occurred from {window.since:%Y-%m-%dT%H:%M:%SZ} to {window.until:%Y-%m-%dT%H:%M:%SZ} "
            f"in {outcomes_uri}: nothing was measured, written or pushed (is the CRM still sending outcomes?)",
            file=sys.stderr,
        )
        return 2
    try:
        written = write_outputs(result, out)
        gauges.publish(
            result.rows,
            time.time(),
            textfile=args.textfile,
            pushgateway=args.pushgateway,
            namespace=args.namespace,
        )
    except Exception as exc:  # noqa: BLE001 - a store or gateway failure: say which, exit non-zero, the CronJob retries
        print(f"error: measured, but could not publish the results: {exc!r}", file=sys.stderr)
        return 1
    missing = result.counts.get("named_scoring_not_found", 0)
    ineligible = result.counts.get("named_scoring_not_eligible", 0)
    if missing or ineligible:
        print(
            f"warning: of {result.counts['labels_naming_a_scoring']:,} labels whose outcome names a scoring_id, "
            f"{missing:,} name one that none of their lead's scorings carries and {ineligible:,} one made after "
            f"the outcome or more than {_span(window.label_window)} before it; each was judged on the lead's latest "
            "eligible scoring instead, or left unattributed if it has none (does the CRM send the scoring_id of "
            "the scoring response?)",
            file=sys.stderr,
        )
    rate = result.scoring_rows_read / result.seconds if result.seconds else float("nan")
    print(
        f"quality: {result.counts.get('labelled_leads', 0):,} labelled leads, {result.scoring_rows_read:,} scoring rows "
        f"read in {result.seconds:.1f} s ({rate:,.0f} rows/s); wrote {', '.join(written.values())}"
    )
    for r in (r for r in result.rows if r["tier"] == "all"):
        print(
            f"  {r['model_version']}: AUC {_fmt(r['auc'])} (card {_fmt(r['reference_auc'])}), base rate "
            f"{_fmt(r['conversion_rate'])}, calibration error {_fmt(r['calibration_error'], 4)}, "
            f"{r['labelled_leads']:,} labelled"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
