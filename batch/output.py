"""A shard's output: scores and rejects as Parquet, committed atomically, then a marker that says "done".

Layout below the output URI (shard i of n, names zero-padded so they sort):
  scores/part-0000i-of-0000n.parquet    lead_id, score, bucket, tier, model_version, scored_at[, reasons]
  rejects/part-0000i-of-0000n.parquet   source, row, lead_id, field, rule, value, message
  _shards/part-0000i-of-0000n.json      the shard's counts: written last, so its presence means both files are whole
  _manifest.json                        all shards' counts, written once every marker is there

The files grow in a local work folder and are `put` only when the shard is complete: a killed pod leaves nothing
in the output. A re-run skips shards whose marker exists; if a pod died between its puts, the re-run's `put`s
find the earlier objects already there and keep them (they never replace), so no row is written twice. That is
only right if those objects hold what this attempt would write: both files carry the run's stamp (plan, model
version and booster sha256, shard, shard count, reasons) in their Parquet footer, `check_uncommitted` refuses a
data file that no marker names unless its stamp is this run's, and after every `put` the object in the output is
read back and refused unless it is this run's (another run may have put it first, between our checks and our put).
The manifest is written only when every marker is of this run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch.errors import OutputConflict
from batch.failures import is_transient, storage_errors
from batch.scorer import Scored
from batch.storage import Location
from contract.features import FEATURE_NAMES
from contract.tiers import TIER_OF_BUCKET

MANIFEST_KEY = "_manifest.json"
OUTPUT_ROW_GROUP_ROWS = 131_072
MARKERS = "_shards"
DATA_FOLDERS = ("scores", "rejects")
_PART = re.compile(r"part-(\d{5})-of-(\d{5})\.parquet")
_STAMP_PREFIX = "batch."
# What a marker must hold for the run to read it (a stray or hand-edited JSON file in _shards/ is refused).
_MARKER_FIELDS = {
    "shard": int,
    "shard_count": int,
    "plan": str,
    "model_version": str,
    "units": int,
    "rows_read": int,
    "rows_scored": int,
    "rows_rejected": int,
    "problems": int,
    "tiers": dict,
    "seconds": (int, float),
    "scores": str,
    "rejects": str,
}
_REASON = pa.struct([("feature", pa.dictionary(pa.int8(), pa.string())), ("contribution", pa.float32())])
_FEATURE_DICTIONARY = pa.array(FEATURE_NAMES)
_TIER_DICTIONARY = pa.array(TIER_OF_BUCKET)
_LABEL = pa.dictionary(pa.int8(), pa.string())  # index = bucket - 1, the card's TierMap convention


def scores_schema(with_reasons: bool) -> pa.Schema:
    # tier and model_version are dictionary-encoded (as Parquet stores them anyway): no string per row is built.
    fields = [
        ("lead_id", pa.string()),
        ("score", pa.float32()),
        ("bucket", pa.int8()),
        ("tier", _LABEL),
        ("model_version", _LABEL),
        ("scored_at", pa.timestamp("ms", tz="UTC")),
    ]
    if with_reasons:
        fields.append(("reasons", pa.list_(_REASON)))
    return pa.schema(fields)


REJECTS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("row", pa.int64()),
        ("lead_id", pa.string()),
        ("field", pa.string()),
        ("rule", pa.string()),
        ("value", pa.string()),
        ("message", pa.string()),
    ]
)


def part_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}"


def marker_key(index: int, count: int) -> str:
    return f"{MARKERS}/{part_name(index, count)}.json"


# What makes two shards parts of one run: markers, data files' stamps and the manifest all carry these.
RUN_FIELDS = ("shard_count", "plan", "model_version", "model_sha256", "reasons")


def run_stamp(run: dict, shard: int) -> dict[str, str]:
    """What identifies the run (RUN_FIELDS) and shard a data file belongs to: written into its Parquet footer."""
    return {f"{_STAMP_PREFIX}{k}": str(v) for k, v in {**run, "shard": shard}.items()}


def _short(sha: object) -> str:
    return f"{sha[:12]}…" if isinstance(sha, str) else "unknown"


def run_difference(found: dict, run: dict) -> str | None:
    """How the run that wrote `found` (a marker or manifest) differs from `run`, worded to follow "shards …" or
    "a shard …"; None when it is the same run."""
    if found.get("shard_count") != run["shard_count"]:
        return f"of a run with {found.get('shard_count')} shards, this run has {run['shard_count']}"
    if found.get("plan") != run["plan"]:
        return f"scored from a different input (plan {found.get('plan')}, now {run['plan']})"
    if (found.get("model_version"), found.get("model_sha256")) != (run["model_version"], run["model_sha256"]):
        return (
            f"scored by model {found.get('model_version')} (booster sha256 {_short(found.get('model_sha256'))}), "
            f"this run loads {run['model_version']} (booster sha256 {_short(run['model_sha256'])})"
        )
    if found.get("reasons") != run["reasons"]:
        return f"scored with --reasons {found.get('reasons')}, this run has --reasons {run['reasons']}"
    return None


def check_markers(output: Location, markers: list[dict], run: dict, when: str = "") -> None:
    """OutputConflict when a marker in the output is of another run (shard count, input, model, --reasons)."""
    for marker in markers:
        difference = run_difference(marker, run)
        if difference:
            raise OutputConflict(f"{output.shown} holds shards {difference}{when}: use a new output folder")


def _repeat(text: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([text]))


def _reasons(index: np.ndarray, contribution: np.ndarray) -> pa.Array:
    n, k = index.shape
    features = pa.DictionaryArray.from_arrays(pa.array(index.ravel().astype(np.int8)), _FEATURE_DICTIONARY)
    items = pa.StructArray.from_arrays(
        [features, pa.array(contribution.ravel().astype(np.float32))], fields=list(_REASON)
    )
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), items)


class ShardOutput:
    def __init__(
        self,
        output: Location,
        index: int,
        count: int,
        work_dir: Path,
        *,
        model_version: str,
        with_reasons: bool,
        stamp: dict[str, str],
    ):
        self.output = output
        self.name = part_name(index, count)
        self.model_version = model_version
        self.stamp = stamp
        self.stored: list[str] = []  # keys put (and checked) so far: how far a commit got
        self.schema = scores_schema(with_reasons).with_metadata(stamp)
        self.folder = Path(tempfile.mkdtemp(prefix=f"batch-{self.name}-", dir=work_dir))
        self.scores_path = self.folder / "scores.parquet"
        self.rejects_path = self.folder / "rejects.parquet"
        # Dictionary pages only where values repeat: trying them on unique lead ids costs time for nothing.
        self._scores = pq.ParquetWriter(
            self.scores_path,
            self.schema,
            use_dictionary=["tier", "model_version", "reasons.list.element.feature"],
        )
        self._rejects = pq.ParquetWriter(self.rejects_path, REJECTS_SCHEMA.with_metadata(stamp))
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    @property
    def scores_key(self) -> str:
        return f"scores/{self.name}.parquet"

    @property
    def rejects_key(self) -> str:
        return f"rejects/{self.name}.parquet"

    def write(
        self, lead_ids: pa.Array, scored: Scored, scored_at: datetime, source: str, first_row: int
    ) -> None:
        n = len(scored.scores)
        if n:
            ids = lead_ids if scored.valid.all() else lead_ids.filter(pa.array(scored.valid))
            columns = [
                ids,
                pa.array(scored.scores, pa.float32()),
                pa.array(scored.buckets.astype(np.int8)),
                pa.DictionaryArray.from_arrays(
                    pa.array((scored.buckets - 1).astype(np.int8)), _TIER_DICTIONARY
                ),
                _repeat(self.model_version, n),
                pa.array(
                    np.full(n, np.datetime64(scored_at.replace(tzinfo=None), "ms")),
                    pa.timestamp("ms", tz="UTC"),
                ),
            ]
            if "reasons" in self.schema.names:
                columns.append(_reasons(scored.reasons[0], scored.reasons[1]))
            self._pending.append(pa.RecordBatch.from_arrays(columns, schema=self.schema))
            self._pending_rows += n
            if self._pending_rows >= OUTPUT_ROW_GROUP_ROWS:
                self._flush()
        if scored.problems:
            rows = [p["row"] for p in scored.problems]
            self._rejects.write_batch(
                pa.RecordBatch.from_arrays(
                    [
                        pa.array([source] * len(rows)),
                        pa.array(rows, pa.int64()),
                        lead_ids.take(pa.array(np.asarray(rows, dtype=np.int64) - first_row)),
                        pa.array([p["field"] for p in scored.problems]),
                        pa.array([p["rule"] for p in scored.problems]),
                        pa.array(
                            [None if p["value"] is None else json.dumps(p["value"]) for p in scored.problems],
                            pa.string(),
                        ),
                        pa.array([p["message"] for p in scored.problems]),
                    ],
                    schema=REJECTS_SCHEMA,
                )
            )

    def _flush(self) -> None:
        # Windows are small (cache-friendly validation); row groups of the output are not.
        if self._pending:
            self._scores.write_table(pa.Table.from_batches(self._pending), row_group_size=1 << 30)
        self._pending, self._pending_rows = [], 0

    def commit(self, marker: dict) -> None:
        """Data first, marker last: a marker only ever points at whole files. Each object is read back after its
        put: if it was there already, it must be this shard's (an earlier attempt's), not another run's."""
        self._flush()
        self._scores.close()
        self._rejects.close()
        for key, path in ((self.scores_key, self.scores_path), (self.rejects_key, self.rejects_path)):
            self.output.put(key, path)
            self._check_stamp(key)
            self.stored.append(key)
        marker.update(scores=self.scores_key, rejects=self.rejects_key)
        marker_path = self.folder / "marker.json"
        marker_path.write_text(json.dumps(marker, indent=1))
        key = f"{MARKERS}/{self.name}.json"
        self.output.put(key, marker_path)
        with storage_errors(f"cannot read back {self.output.describe(key)}"):
            stored = _marker(self.output, key)
        if run_difference(stored, marker) or stored["shard"] != marker["shard"]:
            raise _not_ours(self.output, key)
        self.stored.append(key)

    @property
    def committed(self) -> bool:
        """The marker is stored: the shard is done, whatever happens next."""
        return f"{MARKERS}/{self.name}.json" in self.stored

    def _check_stamp(self, key: str) -> None:
        with storage_errors(f"cannot read back {self.output.describe(key)}"):
            found = _stamp_of(self.output, key)
        if found != self.stamp:
            raise _not_ours(self.output, key)

    def discard(self) -> None:
        for writer in (self._scores, self._rejects):
            try:
                writer.close()
            except (OSError, pa.ArrowException):
                pass  # the files are deleted next; closing only frees the handle
        shutil.rmtree(self.folder, ignore_errors=True)


def _marker(output: Location, key: str) -> dict:
    try:
        marker = json.loads(output.read_bytes(key))
    except ValueError:  # not JSON, not UTF-8
        marker = None
    wrong = not isinstance(marker, dict) or any(
        not isinstance(marker.get(field), kind) or isinstance(marker.get(field), bool)
        for field, kind in _MARKER_FIELDS.items()
    )
    if wrong:
        raise OutputConflict(
            f"{output.describe(key)} is not a shard marker of python -m batch (the output folder holds something "
            "else): use a new output folder"
        )
    return marker


def _not_ours(output: Location, key: str) -> OutputConflict:
    return OutputConflict(
        f"{output.describe(key)} already exists and is not this shard's (another run's, written while this one "
        "ran): nothing more of this shard is written; use a new output folder"
    )


def _stamp_of(output: Location, key: str) -> dict[str, str]:
    """The batch stamp in a data file's Parquet footer; {} for a file that is not Parquet or has none."""
    try:
        with output.open_input_file(key) as handle:
            metadata = pq.read_metadata(handle).metadata or {}
        found = {k.decode(): v.decode() for k, v in metadata.items()}
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return {}  # not Parquet, or not our footer
    except OSError as error:
        if is_transient(error):
            raise
        return {}  # a footer that does not decode: not ours either
    return {k: v for k, v in found.items() if k.startswith(_STAMP_PREFIX)}


def read_markers(output: Location) -> list[dict]:
    """Every shard marker in the output; OutputConflict for a .json file in _shards/ that is not one."""
    return [_marker(output, key) for key, _ in output.list_files(MARKERS) if key.endswith(".json")]


def check_uncommitted(output: Location, markers: list[dict], stamp: dict[str, str]) -> None:
    """Refuse scores/ and rejects/ files that no marker names unless this run wrote them (a killed attempt of
    one of its shards, or a shard committing right now): `put` would keep them, and readers of scores/ read them."""
    committed = {m["scores"] for m in markers} | {m["rejects"] for m in markers}
    run = {k: v for k, v in stamp.items() if k != f"{_STAMP_PREFIX}shard"}
    for folder in DATA_FOLDERS:
        for key, _ in output.list_files(folder):
            if key in committed:
                continue
            name = key[len(folder) + 1 :]
            part = _PART.fullmatch(name)
            found: dict[str, str] = {}
            if part and int(part[2]) == int(stamp[f"{_STAMP_PREFIX}shard_count"]):
                found = _stamp_of(output, key)
            ours = (
                part is not None
                and found.get(f"{_STAMP_PREFIX}shard") == str(int(part[1]))
                and all(found.get(k) == v for k, v in run.items())
            )
            if not ours:
                raise OutputConflict(
                    f"{output.describe(key)} has no shard marker and was not written by this run (another run's "
                    "data, or a killed run over another input, model, shard count or --reasons): use a new output "
                    "folder"
                )


def _check_agreement(output: Location, markers: list[dict], run: dict) -> None:
    """OutputConflict naming the first marker of another run: a manifest over them would add up two runs."""
    for marker in markers:
        difference = run_difference(marker, run)
        if difference:
            key = marker_key(marker["shard"], marker["shard_count"])
            raise OutputConflict(
                f"{output.describe(key)} is a shard {difference}: the markers disagree, so no manifest is "
                "written; use a new output folder"
            )


def write_manifest_if_complete(output: Location, run: dict, work_dir: Path, extra: dict) -> dict | None:
    """The manifest, once every shard's marker is there and all are of `run` (RUN_FIELDS); any shard may be last,
    and `put` keeps the first manifest, which must then be this run's too."""
    count = run["shard_count"]
    with storage_errors(f"cannot read the output {output.shown}"):
        markers = sorted(read_markers(output), key=lambda m: m["shard"])
    if len({m["shard"] for m in markers if m["shard_count"] == count}) < count:
        return None
    _check_agreement(output, markers, run)
    tiers: dict[str, int] = dict.fromkeys(reversed(TIER_OF_BUCKET), 0)
    for m in markers:
        for tier, n in m["tiers"].items():
            tiers[tier] += n
    manifest = {
        **extra,
        **run,
        "rows_read": sum(m["rows_read"] for m in markers),
        "rows_scored": sum(m["rows_scored"] for m in markers),
        "rows_rejected": sum(m["rows_rejected"] for m in markers),
        "problems": sum(m["problems"] for m in markers),
        "tiers": tiers,
        "shards": [
            {
                k: m[k]
                for k in (
                    "shard",
                    "units",
                    "rows_read",
                    "rows_scored",
                    "rows_rejected",
                    "scores",
                    "rejects",
                    "seconds",
                )
            }
            for m in markers
        ],
    }
    # A name of its own: local runs share a work folder (/tmp by default), and a fixed name let one run's manifest
    # overwrite or delete another's while it was being uploaded.
    handle, name = tempfile.mkstemp(prefix=f"manifest-{count}-", suffix=".json", dir=work_dir)
    path = Path(name)
    with os.fdopen(handle, "w") as file:
        file.write(json.dumps(manifest, indent=1))
    try:
        output.put(MANIFEST_KEY, path)
    finally:
        path.unlink(missing_ok=True)
    with storage_errors(f"cannot read back {output.describe(MANIFEST_KEY)}"):
        text = output.read_bytes(MANIFEST_KEY)
    try:
        stored = json.loads(text)
    except ValueError:  # not JSON, not UTF-8: not a manifest of this job
        stored = None
    if not isinstance(stored, dict) or run_difference(stored, run):
        raise OutputConflict(
            f"{output.describe(MANIFEST_KEY)} already exists and is another run's: use a new output folder"
        )
    return manifest
