"""Request payloads → a float32 [N, 50] matrix in feature order + lead ids; scores → response payloads.

Three request forms (README.md, "The API"):
  * V1 `instances`: a list of JSON objects of named features plus `lead_id` (optional features absent/null → NaN);
  * V2 columns: one input per feature name, shape [N], plus an optional BYTES input `lead_id`;
  * V2 tensor: one FP32/FP64 input of shape [N, 50] in feature order (+ optional `lead_id`).
The codec speaks in plain `Tensor`s; the KServe adapter converts them from/to KServe's InferInput/InferOutput.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import chain

import numpy as np

from contract import lead_ids as lead_id_rule
from contract.features import FEATURE_INDEX, FEATURE_NAMES, FEATURES, N_FEATURES
from contract.validation import problem_dict
from transformer.errors import InvalidRequest

LEAD_ID = "lead_id"
_ALLOWED_V1_KEYS = frozenset(FEATURE_NAMES) | {LEAD_ID}
_NUMERIC_DATATYPES = frozenset(
    {"BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"}
)
DATATYPES = _NUMERIC_DATATYPES | {"BYTES"}
# The Open Inference Protocol's shapes are int64: a larger dimension is malformed whatever the body holds.
_MAX_DIM = 2**63 - 1
_MISSING_REQUIRED = [f.name for f in FEATURES if f.required]
# JSON cell types a feature may hold. numpy would also turn "1.5" into 1.5 and [1] into an extra axis: check first.
_CELL_TYPES = frozenset({int, float, bool, type(None)})
_JSON_SAFE_INT = 2**53


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray


@dataclass
class DecodedLeads:
    matrix: np.ndarray  # float32 [N, 50], NaN = missing
    lead_ids: list[str]
    form: str  # v1_instances | v2_columns | v2_tensor

    @property
    def count(self) -> int:
        return self.matrix.shape[0]


def _check_count(n: int, max_leads: int) -> None:
    if n < 1:
        raise InvalidRequest(
            f"the request holds no leads: send between 1 and {max_leads} leads",
            [problem_dict(None, "leads", "lead_count", 0, "no leads")],
        )
    if n > max_leads:
        raise InvalidRequest(
            f"too many leads in one request: {n} > {max_leads} (split the batch)",
            [problem_dict(None, "leads", "lead_count", n, f"at most {max_leads} leads per request")],
        )


def _default_ids(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def _id_problem(row: int, value: object) -> dict | None:
    """The problem with one lead id as the client sent it (str, bytes, or — V1 only — an int), or None."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return problem_dict(row, LEAD_ID, "encoding", None, f"row {row}: lead_id is not valid UTF-8")
    if not isinstance(value, str):
        return problem_dict(
            row,
            LEAD_ID,
            "type",
            _json_type(value),
            f"row {row}: lead_id must be {lead_id_rule.RULE_TEXT}, got {_json_type(value)}",
        )
    found = lead_id_rule.problem(value)
    if found is None:
        return None
    rule, message = found
    return problem_dict(row, LEAD_ID, rule, lead_id_rule.shown(value), f"row {row}: {message}")


def _json_type(value: object) -> str:
    """The JSON name of a value's type: what a client sees in its own payload, not a Python class name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | np.number):
        return "a number"
    if isinstance(value, list | tuple | np.ndarray):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value of another type"


def _v1_lead_ids(instances: list[dict], problems: list[dict]) -> list[str]:
    """V1: a string, or a whole number written as its decimal string; absent/null → the row number."""
    ids = []
    for row, inst in enumerate(instances):
        value = inst.get(LEAD_ID)
        if value is None:
            ids.append(str(row))
            continue
        if type(value) is int:
            text = lead_id_rule.from_integer(value)
            if text is None:
                problems.append(
                    problem_dict(
                        row,
                        LEAD_ID,
                        "length",
                        None,
                        f"row {row}: lead_id must be {lead_id_rule.RULE_TEXT}, got a number of more digits",
                    )
                )
                continue
            value = text
        found = _id_problem(row, value)
        if found is not None:
            problems.append(found)
        ids.append(value)
    return ids


def _v2_lead_ids(tensor: Tensor, n: int, max_reported: int) -> list[str]:
    """V2: one BYTES input of shape [N], N strings; never a nested or ragged list, never numbers."""
    if tensor.datatype != "BYTES":
        raise InvalidRequest(
            f"input {LEAD_ID} must be BYTES, got {tensor.datatype[:16]}",
            [problem_dict(None, LEAD_ID, "datatype", tensor.datatype[:16], "expected BYTES")],
        )
    if len(tensor.shape) != 1 or tensor.shape[0] != n:
        raise InvalidRequest(
            f"input {LEAD_ID} must have shape [{n}] (one string per lead), got {tensor.shape}",
            [problem_dict(None, LEAD_ID, "shape", tensor.shape, f"expected [{n}]")],
        )
    data = tensor.data
    values = data.tolist() if isinstance(data, np.ndarray) else data
    if not isinstance(values, list) or len(values) != n:
        raise InvalidRequest(
            f"input {LEAD_ID} must be a flat list of {n} strings",
            [problem_dict(None, LEAD_ID, "shape", None, f"expected {n} strings")],
        )
    problems = [p for p in (_id_problem(row, v) for row, v in enumerate(values)) if p is not None]
    if problems:
        _raise(problems, max_reported, "invalid lead id(s)")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _cell_problem(row: int, name: str, value: object) -> dict:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _JSON_SAFE_INT:
        # Too large for a float64 (or for the JSON encoder): show its size, not its 400 digits.
        return problem_dict(
            row,
            name,
            "range",
            f"{str(value)[:20]}…",
            f"row {row}: {name} is out of range ({len(str(abs(value)))} digits)",
        )
    shown = value if isinstance(value, int | float | bool) or value is None else str(value)[:40]
    return problem_dict(
        row,
        name,
        "type",
        shown,
        f"row {row}: {name} must be a number, true/false or null, got {type(value).__name__}",
    )


def _bad_cell(value: object) -> bool:
    if type(value) not in _CELL_TYPES:
        return True
    return type(value) is int and abs(value) > _JSON_SAFE_INT and not _fits_float(value)


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _as_float_matrix(data: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    """`data` as float64 of `shape`, or InvalidRequest: tensors arrive with any content and any length."""
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InvalidRequest(
            f"{what}: data must be numbers",
            [problem_dict(None, what[:64], "type", None, "data must be numbers")],
        ) from None
    expected = math.prod(shape)  # Python ints: an int64 product would wrap around
    if array.size != expected:
        raise InvalidRequest(
            f"{what}: {array.size} values do not fill shape {list(shape)} ({expected} values)",
            [problem_dict(None, what[:64], "shape", list(shape), f"expected {expected} values")],
        )
    return array.reshape(shape)


def feature_problem_counts(problems: list[dict]) -> Counter:
    """(feature, rule) counts of every problem that names a feature, reported or not; a name that is no feature
    counts as "unknown" (a client's names must not become metric labels)."""
    return Counter(
        (p["field"] if p["field"] in FEATURE_INDEX else "unknown", p["rule"])
        for p in problems
        if p["field"] in FEATURE_INDEX or p["rule"] == "unknown_feature"
    )


def _raise(problems: list[dict], max_reported: int, what: str) -> None:
    reported = problems[:max_reported]
    more = f" (and {len(problems) - len(reported)} more)" if len(problems) > len(reported) else ""
    error = InvalidRequest(
        f"{len(problems)} {what}: " + "; ".join(p["message"] for p in reported) + more,
        reported,
        len(problems),
    )
    error.feature_counts = feature_problem_counts(problems)
    raise error


def decode_v1(payload: object, max_leads: int, max_reported: int = 20) -> DecodedLeads:
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise InvalidRequest(
            'V1 body must be a JSON object {"instances": [ {<feature>: value, ...}, ... ]}',
            [problem_dict(None, "instances", "shape", None, "missing or not a list")],
        )
    instances = payload["instances"]
    _check_count(len(instances), max_leads)
    problems: list[dict] = []
    rows = []
    for r, inst in enumerate(instances):
        if not isinstance(inst, dict):
            problems.append(
                problem_dict(
                    r,
                    "instances",
                    "type",
                    None,
                    f"row {r}: each instance must be an object of named features",
                )
            )
            continue
        unknown = inst.keys() - _ALLOWED_V1_KEYS
        for name in sorted(unknown):
            problems.append(
                problem_dict(
                    r,
                    name[:64],
                    "unknown_feature",
                    None,
                    f"row {r}: unknown feature '{name[:64]}' (see docs/features.md)",
                )
            )
        rows.append([inst.get(name) for name in FEATURE_NAMES])
    lead_ids = _v1_lead_ids(instances, problems) if not problems else []  # every instance is an object here
    if problems:
        _raise(problems, max_reported, "malformed lead(s)")
    matrix = None
    if set(map(type, chain.from_iterable(rows))) <= _CELL_TYPES:  # one C-level pass; the common case
        try:
            matrix = np.array(rows, dtype=np.float64)  # None → NaN, true/false → 1/0
        except OverflowError:  # an integer beyond float64
            matrix = None
    if matrix is None:
        for r, row in enumerate(rows):
            for name, value in zip(FEATURE_NAMES, row, strict=True):
                if _bad_cell(value):
                    problems.append(_cell_problem(r, name, value))
        _raise(problems or [_cell_problem(0, "instances", "?")], max_reported, "malformed value(s)")
    return DecodedLeads(matrix, lead_ids, "v1_instances")


def decode_v2(inputs: list[Tensor], max_leads: int, max_reported: int = 20) -> DecodedLeads:
    if not inputs:
        raise InvalidRequest(
            "V2 request has no inputs", [problem_dict(None, "inputs", "shape", 0, "no inputs")]
        )
    for t in inputs:
        check_shape(t.name, t.shape)
    id_tensors = [t for t in inputs if t.name == LEAD_ID]
    if len(id_tensors) > 1:
        raise InvalidRequest(
            f"input '{LEAD_ID}' appears {len(id_tensors)} times",
            [problem_dict(None, LEAD_ID, "duplicate", None, f"input '{LEAD_ID}' appears twice")],
        )
    id_tensor = id_tensors[0] if id_tensors else None
    features = [t for t in inputs if t.name != LEAD_ID]
    if not features:
        raise InvalidRequest(
            "V2 request has no feature inputs: send one [N, 50] tensor or one input per feature",
            [problem_dict(None, "inputs", "required", None, "no feature inputs")],
        )
    if len(features) == 1 and features[0].name not in FEATURE_INDEX:
        decoded = _decode_tensor(features[0], max_leads)
    else:
        decoded = _decode_columns(features, max_leads, max_reported)
    if id_tensor is not None:
        decoded.lead_ids = _v2_lead_ids(id_tensor, decoded.count, max_reported)
    return decoded


def check_shape(name: str, shape: object) -> int:
    """The number of values `shape` holds, or InvalidRequest: whole numbers from 0 to 2**63-1, the product taken
    in Python ints (no wrap-around)."""
    if not isinstance(shape, list | tuple) or not all(type(d) is int for d in shape):
        raise InvalidRequest(
            f"input '{name[:64]}': shape must be a list of whole numbers",
            [problem_dict(None, name[:64], "shape", None, "a list of whole numbers")],
        )
    bad = next((d for d in shape if not 0 <= d <= _MAX_DIM), None)
    if bad is not None:
        shown = bad if abs(bad) <= _MAX_DIM else f"{str(bad)[:20]}…"
        raise InvalidRequest(
            f"input '{name[:64]}': shape dimension {shown} is out of range (0 to 2**63-1)",
            [problem_dict(None, name[:64], "shape", shown, "dimensions from 0 to 2**63-1")],
        )
    return math.prod(shape)


def _decode_tensor(tensor: Tensor, max_leads: int) -> DecodedLeads:
    if tensor.datatype not in {"FP32", "FP64"}:
        raise InvalidRequest(
            f"input '{tensor.name}' must be FP32 or FP64 of shape [N, {N_FEATURES}], got {tensor.datatype}",
            [problem_dict(None, tensor.name, "datatype", tensor.datatype, "expected FP32 or FP64")],
        )
    if len(tensor.shape) != 2 or tensor.shape[1] != N_FEATURES:
        raise InvalidRequest(
            f"input '{tensor.name}' must have shape [N, {N_FEATURES}] (features in model order, "
            f"see docs/features.md), got {tensor.shape}",
            [problem_dict(None, tensor.name, "shape", tensor.shape, f"expected [N, {N_FEATURES}]")],
        )
    _check_count(tensor.shape[0], max_leads)
    matrix = _as_float_matrix(tensor.data, (tensor.shape[0], N_FEATURES), f"input '{tensor.name[:64]}'")
    return DecodedLeads(matrix, _default_ids(tensor.shape[0]), "v2_tensor")


def _decode_columns(columns: list[Tensor], max_leads: int, max_reported: int) -> DecodedLeads:
    problems: list[dict] = []
    n: int | None = None
    seen: set[str] = set()
    for t in columns:
        if t.name not in FEATURE_INDEX:
            problems.append(
                problem_dict(
                    None,
                    t.name[:64],
                    "unknown_feature",
                    None,
                    f"unknown input '{t.name[:64]}': inputs are named after the 50 features "
                    f"(see docs/features.md), or one [N, {N_FEATURES}] tensor",
                )
            )
            continue
        if t.name in seen:
            problems.append(problem_dict(None, t.name, "duplicate", None, f"input '{t.name}' appears twice"))
        seen.add(t.name)
        if t.datatype not in _NUMERIC_DATATYPES:
            problems.append(
                problem_dict(
                    None,
                    t.name,
                    "datatype",
                    t.datatype,
                    f"input '{t.name}' must be numeric or BOOL, got {t.datatype}",
                )
            )
        if len(t.shape) not in (1, 2) or (len(t.shape) == 2 and t.shape[1] != 1):
            problems.append(
                problem_dict(
                    None, t.name, "shape", t.shape, f"input '{t.name}' must have shape [N], got {t.shape}"
                )
            )
            continue
        if n is None:
            n = t.shape[0]
        elif t.shape[0] != n:
            problems.append(
                problem_dict(
                    None,
                    t.name,
                    "shape",
                    t.shape,
                    f"input '{t.name}' has {t.shape[0]} values, other inputs have {n}",
                )
            )
    for name in _MISSING_REQUIRED:
        if name not in seen:
            problems.append(problem_dict(None, name, "required", None, f"required input '{name}' is missing"))
    if problems:
        _raise(problems, max_reported, "problem(s) with the inputs")
    _check_count(n or 0, max_leads)
    matrix = np.full((n, N_FEATURES), np.nan, dtype=np.float64)
    for t in columns:
        matrix[:, FEATURE_INDEX[t.name]] = _as_float_matrix(t.data, (n,), f"input '{t.name}'")
    return DecodedLeads(matrix, _default_ids(n), "v2_columns")


def encode_v2(
    scores: np.ndarray,
    buckets: np.ndarray,
    tiers: np.ndarray,
    lead_ids: list[str],
    reasons: list[Tensor] | None = None,
) -> list[Tensor]:
    n = len(scores)
    outputs = [
        Tensor("score", "FP32", [n], scores.astype(np.float32, copy=False)),
        Tensor("bucket", "INT32", [n], buckets.astype(np.int32, copy=False)),
        Tensor("tier", "BYTES", [n], np.asarray(tiers, dtype=object)),
        Tensor(LEAD_ID, "BYTES", [n], np.asarray(lead_ids, dtype=object)),
    ]
    return outputs + (reasons or [])


def encode_v1(
    scores: np.ndarray,
    buckets: np.ndarray,
    tiers: np.ndarray,
    lead_ids: list[str],
    model_name: str,
    model_version: str,
    reasons: list[list[dict]] | None = None,
) -> dict:
    score_list = scores.astype(np.float64).tolist()
    bucket_list = buckets.tolist()
    predictions = [
        {"lead_id": lid, "score": s, "bucket": b, "tier": t}
        for lid, s, b, t in zip(lead_ids, score_list, bucket_list, tiers.tolist(), strict=True)
    ]
    if reasons is not None:
        for prediction, lead_reasons in zip(predictions, reasons, strict=True):
            prediction["reasons"] = lead_reasons
    return {"predictions": predictions, "model_name": model_name, "model_version": model_version}


def input_metadata() -> list[dict]:
    """The V2 model-metadata inputs: the column form (the tensor form is one FP32 [N, 50] input in this order)."""
    return [{"name": f.name, "datatype": "FP32", "shape": [-1]} for f in FEATURES] + [
        {"name": LEAD_ID, "datatype": "BYTES", "shape": [-1]}
    ]


def output_metadata() -> list[dict]:
    return [
        {"name": "score", "datatype": "FP32", "shape": [-1]},
        {"name": "bucket", "datatype": "INT32", "shape": [-1]},
        {"name": "tier", "datatype": "BYTES", "shape": [-1]},
        {"name": LEAD_ID, "datatype": "BYTES", "shape": [-1]},
    ]
