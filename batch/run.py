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
import yaml
from pydantic import ValidationError

from batch.columns import feature_matrix, lead_id_problems, lead_ids
from batch.errors import BatchError, StorageUnavailable, Terminated
from batch.failures import model_fetch_is_transient, storage_errors, storage_failure
from batch.inputs import Plan, plan_input, read_unit
from batch.metrics import push_shard_metrics
from batch.output import (
    ShardOutput,
    check_markers,
    check_uncommitted,
    marker_key,
    read_markers,
    run_stamp,
    write_manifest_if_complete,
)
from batch.progress import Progress
from batch.redaction import one_line, redact_text, redact_uri, strip_query
from batch.scorer import Scorer
from batch.storage import Location, StorageOptions
from contract.artifact_fetch import ArtifactFetchError, fetch_artifact
from contract.model_card import CARD_FILE
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


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is, on one line (its str() spans four, with a caret under the text)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or one_line(str(error))
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _card_problem(error: ValidationError) -> str:
    """The card's first problems as `field: message` (pydantic's str() is a multi-line report)."""
    shown = [f"{'.'.join(map(str, e['loc'])) or 'the card'}: {e['msg']}" for e in error.errors()[:3]]
    more = f" (and {error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return f"{CARD_FILE}: " + "; ".join(shown) + more


def load_model(uri: str, reasons: int) -> Scorer:
    """The model folder at `uri`, fetched like the predictor's storageUri. A download that a retry may cure (the
    store down, a 5xx, a timeout) is a StorageUnavailable (exit 1); a missing or broken model a BatchError (2)."""
    shown = redact_uri(uri)
    try:
        return Scorer(fetch_artifact(uri), reasons_k=reasons)
    except BatchError as error:  # the model's own problem, found by the scorer (its objective)
        raise type(error)(f"cannot load the model from {shown}: {error.message}") from None
    except ArtifactFetchError as error:
        text = one_line(redact_text(str(error).removeprefix(f"cannot fetch {uri}: ")))
        kind = StorageUnavailable if model_fetch_is_transient(text) else BatchError
        raise kind(f"cannot load the model from {shown}: {text}") from None
    except yaml.YAMLError as error:
        raise BatchError(
            f"cannot load the model from {shown}: {CARD_FILE} is not valid YAML: {_yaml_problem(error)}"
        ) from None
    except ValidationError as error:
        raise BatchError(f"cannot load the model from {shown}: {_card_problem(error)}") from None
    except (OSError, ValueError, RuntimeError) as error:
        text = one_line(redact_text(str(error))) or type(error).__name__
        raise BatchError(f"cannot load the model from {shown}: {text[:300]}") from None


def run_identity(settings: Settings, plan: Plan, scorer: Scorer) -> dict:
    """What every shard of one run shares (output.RUN_FIELDS): compared before scoring, before committing, and
    before the manifest."""
    return {
        "shard_count": settings.shard_count,
        "plan": plan.fingerprint,
        "model_version": scorer.model_version,
        "model_sha256": scorer.model_sha256,
        "reasons": settings.reasons,
    }


def _check_earlier_shards(output: Location, run: dict, settings: Settings, when: str = "") -> None:
    """Refuse to mix runs in one output: other shards must share this run's shard count, plan, model and
    --reasons, and data files without a marker must be this run's."""
    with storage_errors(f"cannot read the output {output.shown}"):
        markers = read_markers(output)
        check_markers(output, markers, run, when)
        check_uncommitted(output, markers, run_stamp(run, settings.shard_index))


def run_shard(settings: Settings) -> ShardResult:
    options = StorageOptions.from_env(settings.s3_endpoint_url, settings.azure_connection_string)
    source, output = Location(settings.input, options), Location(settings.output, options)
    if type(source.fs) is type(output.fs) and (output.root + "/").startswith(source.root.rstrip("/") + "/"):
        # The next run would read this run's Parquet as input.
        raise BatchError(
            f"the output {output.shown} lies inside the input {source.shown}: choose another folder"
        )
    scorer = load_model(settings.model, settings.reasons)
    plan = plan_input(source)
    run = run_identity(settings, plan, scorer)
    _check_earlier_shards(output, run, settings)
    with storage_errors(f"cannot read the output {output.shown}"):
        done = output.exists(marker_key(settings.shard_index, settings.shard_count))
        marker = (
            next((m for m in read_markers(output) if m["shard"] == settings.shard_index), None)
            if done
            else None
        )
    if marker is not None:
        result = ShardResult(marker, skipped=True, manifest=None)
    else:
        result = ShardResult(
            _score_shard(settings, source, output, plan, scorer, run), skipped=False, manifest=None
        )
    try:
        _finish(settings, output, source, run, scorer, result)
    except Terminated as stop:
        stop.committed = True  # the shard's marker is stored: only the manifest or the metrics were left
        raise
    return result


def _finish(
    settings: Settings, output: Location, source: Location, run: dict, scorer: Scorer, result: ShardResult
) -> None:
    """After the shard's commit: the manifest if every shard is done, then the shard's metrics."""
    result.manifest = write_manifest_if_complete(
        output,
        run,
        settings.work_dir,
        {
            "input": source.shown,
            "output": output.shown,
            "model": redact_uri(settings.model),
            "written_at": datetime.now(UTC).isoformat(),
        },
    )
    if settings.pushgateway_url and not result.skipped:
        # After the manifest: a slow or broken Pushgateway never keeps a finished run from being declared done.
        push_shard_metrics(
            settings.pushgateway_url,
            shard=settings.shard_index,
            shard_count=settings.shard_count,
            model_version=scorer.model_version,
            rows_scored=result.marker["rows_scored"],
            rows_rejected=result.marker["rows_rejected"],
            tiers=result.marker["tiers"],
            seconds=result.marker["seconds"],
        )


def _score_shard(
    settings: Settings, source: Location, output: Location, plan: Plan, scorer: Scorer, run: dict
) -> dict:
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
            stamp=run_stamp(run, settings.shard_index),
        )
    except OSError as error:
        raise storage_failure(f"cannot use the work folder {settings.work_dir}", error) from None
    try:
        for unit in units:
            where = source.describe(unit.key)
            # A single file's URL may carry a SAS or presigned query: its name never does.
            name = unit.key or strip_query(settings.input).rstrip("/").rsplit("/", 1)[-1]
            first = unit.first_row
            for batch in read_unit(source, unit, settings.window_rows):
                ids = lead_ids(batch)
                bad_ids = lead_id_problems(ids, where, first)
                if bad_ids:
                    # An id the rule refuses is not copied into rejects' lead_id (10 KB, line breaks): its
                    # reject's value shows it, cut and escaped.
                    keep = np.ones(len(ids), dtype=bool)
                    keep[[r for r, *_ in bad_ids]] = False
                    ids = pc.if_else(pa.array(keep), ids, pa.scalar(None, pa.string()))
                matrix, unparsable = feature_matrix(batch, where)
                scored = scorer.score(matrix, first, unparsable, bad_ids, where=where)
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
            **run,
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
        # Again, just before the commit: another run may have committed shards here while this one scored
        # (the checks at start saw an output without them).
        _check_earlier_shards(
            output, run, settings, " (committed while this shard was scoring; nothing of it is written)"
        )
        out.commit(marker)
    except (
        OSError
    ) as error:  # the shard's local files (work folder full, removed); the output's are Location.put's
        raise storage_failure(f"cannot write the shard's files in {settings.work_dir}", error) from None
    except Terminated as stop:
        stop.stored, stop.committed = list(out.stored), out.committed
        raise
    finally:
        progress.close()
        out.discard()
    return marker
