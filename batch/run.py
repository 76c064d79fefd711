"""One shard of a batch run, start to commit: plan → check the output → score window by window → commit → manifest."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from batch.columns import feature_matrix, lead_id_problems, lead_ids
from batch.errors import BatchError, OutputConflict
from batch.inputs import Plan, plan_input, read_unit
from batch.metrics import push_shard_metrics
from batch.output import (
    ShardOutput,
    check_uncommitted,
    marker_key,
    read_markers,
    run_stamp,
    write_manifest_if_complete,
)
from batch.progress import Progress
from batch.scorer import Scorer
from batch.storage import Location, StorageOptions
from contract.artifact_fetch import fetch_artifact
from contract.tiers import TIER_OF_BUCKET


@dataclass
class Settings:
    input: str
    output: str
    model: str
    shard_index: int = 0
    shard_count: int = 1
    reasons: int = 0
    window_rows: int = 16_384
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    pushgateway_url: str | None = None
    s3_endpoint_url: str | None = None
    azure_connection_string: str | None = None
    progress: bool | None = None  # None: a bar when stderr is a terminal


@dataclass
class ShardResult:
    marker: dict
    skipped: bool
    manifest: dict | None


def peak_rss_mib() -> float | None:
    """This process's peak RSS since exec (VmHWM; getrusage's ru_maxrss would include the parent's before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def load_model(uri: str, reasons: int) -> Scorer:
    try:
        return Scorer(fetch_artifact(uri), reasons_k=reasons)
    except (OSError, ValueError, RuntimeError, ValidationError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BatchError(f"cannot load the model from {uri}: {text}") from None


def _stamp(settings: Settings, plan: Plan, model_version: str) -> dict[str, str]:
    return run_stamp(
        plan=plan.fingerprint,
        model_version=model_version,
        shard=settings.shard_index,
        shard_count=settings.shard_count,
        reasons=settings.reasons,
    )


def _check_earlier_shards(output: Location, plan: Plan, settings: Settings, model_version: str) -> None:
    """Refuse to mix runs in one output: other shards must share this run's shard count, plan, model and
    --reasons, and data files without a marker must be this run's."""
    markers = read_markers(output)
    for marker in markers:
        if marker["shard_count"] != settings.shard_count:
            raise OutputConflict(
                f"{output.uri} holds shards of a run with {marker['shard_count']} shards, this "
                f"run has {settings.shard_count}: use a new output folder"
            )
        if marker["plan"] != plan.fingerprint:
            raise OutputConflict(
                f"{output.uri} holds shards scored from a different input (plan "
                f"{marker['plan']}, now {plan.fingerprint}): use a new output folder"
            )
        if marker["model_version"] != model_version:
            raise OutputConflict(
                f"{output.uri} holds shards scored by model {marker['model_version']}, this run "
                f"loads {model_version}: use a new output folder"
            )
        if marker.get("reasons", settings.reasons) != settings.reasons:
            raise OutputConflict(
                f"{output.uri} holds shards scored with --reasons {marker['reasons']}, this run has "
                f"--reasons {settings.reasons}: use a new output folder"
            )
    check_uncommitted(output, markers, _stamp(settings, plan, model_version))


def run_shard(settings: Settings) -> ShardResult:
    options = StorageOptions.from_env(settings.s3_endpoint_url, settings.azure_connection_string)
    source, output = Location(settings.input, options), Location(settings.output, options)
    if type(source.fs) is type(output.fs) and (output.root + "/").startswith(source.root.rstrip("/") + "/"):
        # The next run would read this run's Parquet as input.
        raise BatchError(
            f"the output {settings.output} lies inside the input {settings.input}: choose another folder"
        )
    scorer = load_model(settings.model, settings.reasons)
    plan = plan_input(source)
    try:
        _check_earlier_shards(output, plan, settings, scorer.model_version)
        done = output.exists(marker_key(settings.shard_index, settings.shard_count))
    except OSError as error:
        raise BatchError(f"cannot read the output {output.uri}: {error}") from None
    if done:
        marker = next(m for m in read_markers(output) if m["shard"] == settings.shard_index)
        result = ShardResult(marker, skipped=True, manifest=None)
    else:
        result = ShardResult(
            _score_shard(settings, source, output, plan, scorer), skipped=False, manifest=None
        )
    result.manifest = write_manifest_if_complete(
        output,
        settings.shard_count,
        settings.work_dir,
        {
            "input": settings.input,
            "output": settings.output,
            "model": settings.model,
            "written_at": datetime.now(UTC).isoformat(),
        },
    )
    return result


def _score_shard(settings: Settings, source: Location, output: Location, plan: Plan, scorer: Scorer) -> dict:
    units = plan.shard(settings.shard_index, settings.shard_count)
    known = [u.rows for u in units]
    progress = Progress(
        f"shard {settings.shard_index + 1}/{settings.shard_count}",
        sum(known) if all(r >= 0 for r in known) else None,
        enabled=settings.progress,
    )
    started, cpu_started = time.monotonic(), time.process_time()
    scored_at = datetime.now(UTC)
    tiers: Counter[int] = Counter()
    rows_read = rows_rejected = problems = 0
    try:
        out = ShardOutput(
            output,
            settings.shard_index,
            settings.shard_count,
            settings.work_dir,
            model_version=scorer.model_version,
            with_reasons=bool(settings.reasons),
            stamp=_stamp(settings, plan, scorer.model_version),
        )
    except OSError as error:
        raise BatchError(f"cannot use the work folder {settings.work_dir}: {error}") from None
    try:
        for unit in units:
            where = source.describe(unit.key)
            name = unit.key or settings.input.rsplit("/", 1)[-1]
            first = unit.first_row
            for batch in read_unit(source, unit, settings.window_rows):
                ids = lead_ids(batch)
                bad_ids = lead_id_problems(ids)
                if bad_ids:
                    # An id the rule refuses is not copied into rejects' lead_id (10 KB, line breaks): its
                    # reject's value shows it, cut and escaped.
                    keep = np.ones(len(ids), dtype=bool)
                    keep[[r for r, *_ in bad_ids]] = False
                    ids = pc.if_else(pa.array(keep), ids, pa.scalar(None, pa.string()))
                matrix, unparsable = feature_matrix(batch, where)
                scored = scorer.score(matrix, first, unparsable, bad_ids)
                out.write(ids, scored, scored_at, name, first)
                tiers.update(dict(enumerate(np.bincount(scored.buckets, minlength=6).tolist())))
                rows_read += batch.num_rows
                rows_rejected += batch.num_rows - len(scored.scores)
                problems += len(scored.problems)
                first += batch.num_rows
                progress.advance(batch.num_rows)
        seconds = time.monotonic() - started
        marker = {
            "shard": settings.shard_index,
            "shard_count": settings.shard_count,
            "plan": plan.fingerprint,
            "model_version": scorer.model_version,
            "reasons": settings.reasons,
            "units": len(units),
            "rows_read": rows_read,
            "rows_scored": rows_read - rows_rejected,
            "rows_rejected": rows_rejected,
            "problems": problems,
            "tiers": {TIER_OF_BUCKET[b - 1]: int(tiers.get(b, 0)) for b in range(5, 0, -1)},
            "scored_at": scored_at.isoformat(),
            "seconds": round(seconds, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
            "peak_rss_mib": peak_rss_mib(),
        }
        out.commit(marker)
    except (
        OSError
    ) as error:  # the shard's local files (work folder full, removed); the output's are Location.put's
        raise BatchError(f"cannot write the shard's files in {settings.work_dir}: {error}") from None
    finally:
        progress.close()
        out.discard()
    if settings.pushgateway_url:
        push_shard_metrics(
            settings.pushgateway_url,
            shard=settings.shard_index,
            shard_count=settings.shard_count,
            model_version=scorer.model_version,
            rows_scored=marker["rows_scored"],
            rows_rejected=rows_rejected,
            tiers=marker["tiers"],
            seconds=seconds,
        )
    return marker
