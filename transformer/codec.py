"""Request payloads → a float32 [N, 50] matrix in feature order + lead ids; scores → response payloads.

Three request forms (README.md, "The API"):
  * V1 `instances`: a list of JSON objects of named features plus `lead_id` (optional features absent/null → NaN);
  * V2 columns: one input per feature name, shape [N], plus an optional BYTES input `lead_id`;
  * V2 tensor: one FP32/FP64 input of shape [N, 50] in feature order (+ optional `lead_id`).
The codec speaks in plain `Tensor`s; the KServe adapter converts them from/to KServe's InferInput/InferOutput.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from contract.features import FEATURE_INDEX, FEATURE_NAMES, FEATURES, N_FEATURES
from contract.validation import problem_dict
from transformer.errors import InvalidRequest

LEAD_ID = "lead_id"
_ALLOWED_V1_KEYS = frozenset(FEATURE_NAMES) | {LEAD_ID}
_NUMERIC_DATATYPES = frozenset({"BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
                                "FP16", "FP32", "FP64"})
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
    matrix: np.ndarray            # float32 [N, 50], NaN = missing
    lead_ids: list[str]
    form: str                     # v1_instances | v2_columns | v2_tensor

    @property
    def count(self) -> int:
        return self.matrix.shape[0]


def _check_count(n: int, max_leads: int) -> None:
    if n < 1:
        raise InvalidRequest("the request holds no leads: send between 1 and "
                             f"{max_leads} leads", [problem_dict(None, "leads", "lead_count", 0, "no leads")])
    if n > max_leads:
        raise InvalidRequest(f"too many leads in one request: {n} > {max_leads} (split the batch)",
                             [problem_dict(None, "leads", "lead_count", n, f"at most {max_leads} leads per request")])


def _lead_ids(values: list | np.ndarray | None, n: int) -> list[str]:
    if values is None:
        return [str(i) for i in range(n)]
    ids = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    if len(ids) != n:
        raise InvalidRequest(f"{LEAD_ID} has {len(ids)} values for {n} leads",
                             [problem_dict(None, LEAD_ID, "shape", len(ids), f"expected {n} values")])
    return ids


def _cell_problem(row: int, name: str, value: object) -> dict:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _JSON_SAFE_INT:
        # Too large for a float64 (or for the JSON encoder): show its size, not its 400 digits.
        return problem_dict(row, name, "range", f"{str(value)[:20]}…", f"row {row}: {name} is out of range "
                                                                        f"({len(str(abs(value)))} digits)")
    shown = value if isinstance(value, int | float | bool) or value is None else str(value)[:40]
    return problem_dict(row, name, "type", shown, f"row {row}: {name} must be a number, true/false or null, "
                                                 f"got {type(value).__name__}")


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
        raise InvalidRequest(f"{what}: data must be numbers", [problem_dict(None, what[:64], "type", None,
                                                                            "data must be numbers")]) from None
    expected = int(np.prod(shape))
    if array.size != expected:
        raise InvalidRequest(f"{what}: {array.size} values do not fill shape {list(shape)} ({expected} values)",
                             [problem_dict(None, what[:64], "shape", list(shape), f"expected {expected} values")])
    return array.reshape(shape)


def _raise(problems: list[dict], max_reported: int, what: str) -> None:
    reported = problems[:max_reported]
    more = f" (and {len(problems) - len(reported)} more)" if len(problems) > len(reported) else ""
    raise InvalidRequest(f"{len(problems)} {what}: " + "; ".join(p["message"] for p in reported) + more,
                         reported, len(problems))


def decode_v1(payload: object, max_leads: int, max_reported: int = 20) -> DecodedLeads:
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise InvalidRequest('V1 body must be a JSON object {"instances": [ {<feature>: value, ...}, ... ]}',
                             [problem_dict(None, "instances", "shape", None, "missing or not a list")])
    instances = payload["instances"]
    _check_count(len(instances), max_leads)
    problems: list[dict] = []
    rows = []
    for r, inst in enumerate(instances):
        if not isinstance(inst, dict):
            problems.append(problem_dict(r, "instances", "type", None,
                                         f"row {r}: each instance must be an object of named features"))
            continue
        unknown = inst.keys() - _ALLOWED_V1_KEYS
        for name in sorted(unknown):
            problems.append(problem_dict(r, name[:64], "unknown_feature", None,
                                         f"row {r}: unknown feature '{name[:64]}' (see docs/features.md)"))
        rows.append([inst.get(name) for name in FEATURE_NAMES])
    if problems:
        _raise(problems, max_reported, "malformed lead(s)")
    matrix = None
    if set(map(type, chain.from_iterable(rows))) <= _CELL_TYPES:   # one C-level pass; the common case
        try:
            matrix = np.array(rows, dtype=np.float64)   # None → NaN, true/false → 1/0
        except OverflowError:   # an integer beyond float64
            matrix = None
    if matrix is None:
        for r, row in enumerate(rows):
            for name, value in zip(FEATURE_NAMES, row, strict=True):
                if _bad_cell(value):
                    problems.append(_cell_problem(r, name, value))
        _raise(problems or [_cell_problem(0, "instances", "?")], max_reported, "malformed value(s)")
    ids = [inst.get(LEAD_ID) for inst in instances]
    lead_ids = [str(v) if v is not None else str(i) for i, v in enumerate(ids)]
    return DecodedLeads(matrix, lead_ids, "v1_instances")


def decode_v2(inputs: list[Tensor], max_leads: int, max_reported: int = 20) -> DecodedLeads:
    if not inputs:
        raise InvalidRequest("V2 request has no inputs", [problem_dict(None, "inputs", "shape", 0, "no inputs")])
    id_tensor = next((t for t in inputs if t.name == LEAD_ID), None)
    features = [t for t in inputs if t.name != LEAD_ID]
    if len(features) == 1 and features[0].name not in FEATURE_INDEX:
        decoded = _decode_tensor(features[0], max_leads)
    else:
        decoded = _decode_columns(features, max_leads, max_reported)
    if id_tensor is not None:
        if id_tensor.datatype != "BYTES":
            raise InvalidRequest(f"input {LEAD_ID} must be BYTES, got {id_tensor.datatype}",
                                 [problem_dict(None, LEAD_ID, "datatype", id_tensor.datatype, "expected BYTES")])
        try:
            ids = list(np.asarray(id_tensor.data, dtype=object).reshape(-1))
        except ValueError:   # ragged nesting
            raise InvalidRequest(f"input {LEAD_ID} must be a flat list of strings",
                                 [problem_dict(None, LEAD_ID, "shape", None, "expected [N] strings")]) from None
        decoded.lead_ids = _lead_ids(ids, decoded.count)
    return decoded


def _decode_tensor(tensor: Tensor, max_leads: int) -> DecodedLeads:
    if tensor.datatype not in {"FP32", "FP64"}:
        raise InvalidRequest(f"input '{tensor.name}' must be FP32 or FP64 of shape [N, {N_FEATURES}], got {tensor.datatype}",
                             [problem_dict(None, tensor.name, "datatype", tensor.datatype, "expected FP32 or FP64")])
    if len(tensor.shape) != 2 or tensor.shape[1] != N_FEATURES:
        raise InvalidRequest(f"input '{tensor.name}' must have shape [N, {N_FEATURES}] (features in model order, "
                             f"see docs/features.md), got {tensor.shape}",
                             [problem_dict(None, tensor.name, "shape", tensor.shape, f"expected [N, {N_FEATURES}]")])
    _check_count(tensor.shape[0], max_leads)
    matrix = _as_float_matrix(tensor.data, (tensor.shape[0], N_FEATURES), f"input '{tensor.name[:64]}'")
    return DecodedLeads(matrix, _lead_ids(None, tensor.shape[0]), "v2_tensor")


def _decode_columns(columns: list[Tensor], max_leads: int, max_reported: int) -> DecodedLeads:
    problems: list[dict] = []
    n: int | None = None
    seen: set[str] = set()
    for t in columns:
        if t.name not in FEATURE_INDEX:
            problems.append(problem_dict(None, t.name[:64], "unknown_feature", None,
                                         f"unknown input '{t.name[:64]}': inputs are named after the 50 features "
                                         f"(see docs/features.md), or one [N, {N_FEATURES}] tensor"))
            continue
        if t.name in seen:
            problems.append(problem_dict(None, t.name, "duplicate", None, f"input '{t.name}' appears twice"))
        seen.add(t.name)
        if t.datatype not in _NUMERIC_DATATYPES:
            problems.append(problem_dict(None, t.name, "datatype", t.datatype,
                                         f"input '{t.name}' must be numeric or BOOL, got {t.datatype}"))
        if len(t.shape) not in (1, 2) or (len(t.shape) == 2 and t.shape[1] != 1):
            problems.append(problem_dict(None, t.name, "shape", t.shape, f"input '{t.name}' must have shape [N], got {t.shape}"))
            continue
        if n is None:
            n = t.shape[0]
        elif t.shape[0] != n:
            problems.append(problem_dict(None, t.name, "shape", t.shape,
                                         f"input '{t.name}' has {t.shape[0]} values, other inputs have {n}"))
    for name in _MISSING_REQUIRED:
        if name not in seen:
            problems.append(problem_dict(None, name, "required", None, f"required input '{name}' is missing"))
    if problems:
        _raise(problems, max_reported, "problem(s) with the inputs")
    _check_count(n or 0, max_leads)
    matrix = np.full((n, N_FEATURES), np.nan, dtype=np.float64)
    for t in columns:
        matrix[:, FEATURE_INDEX[t.name]] = _as_float_matrix(t.data, (n,), f"input '{t.name}'")
    return DecodedLeads(matrix, _lead_ids(None, n), "v2_columns")


def tensor_from_json(item: object) -> Tensor:
    """One V2 JSON input object → a Tensor (null → NaN, true/false → 1/0), or InvalidRequest naming what is wrong."""
    if not isinstance(item, dict):
        raise InvalidRequest("each V2 input must be an object with name, datatype, shape and data")
    name, datatype, shape, data = item.get("name"), item.get("datatype"), item.get("shape"), item.get("data")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InvalidRequest("each V2 input needs a string 'name' and 'datatype'")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidRequest(f"input '{name[:64]}': 'shape' must be a list of non-negative whole numbers")
    try:
        if datatype == "BYTES":
            array = np.asarray(data, dtype=object).reshape(-1)
        elif datatype in _NUMERIC_DATATYPES:
            array = np.asarray(data, dtype=np.float64).reshape(-1)
        else:
            raise InvalidRequest(f"input '{name[:64]}': unknown datatype {datatype[:16]!r}")
    except (TypeError, ValueError):
        raise InvalidRequest(f"input '{name[:64]}': data does not match datatype {datatype[:16]}") from None
    expected = int(np.prod(shape)) if shape else 1
    if array.size != expected:
        raise InvalidRequest(f"input '{name[:64]}': shape {shape} needs {expected} values, data has {array.size}")
    return Tensor(name, datatype, shape, array.reshape(shape) if datatype != "BYTES" else array)


def encode_v2(scores: np.ndarray, buckets: np.ndarray, tiers: np.ndarray, lead_ids: list[str],
              reasons: list[Tensor] | None = None) -> list[Tensor]:
    n = len(scores)
    outputs = [
        Tensor("score", "FP32", [n], scores.astype(np.float32, copy=False)),
        Tensor("bucket", "INT32", [n], buckets.astype(np.int32, copy=False)),
        Tensor("tier", "BYTES", [n], np.asarray(tiers, dtype=object)),
        Tensor(LEAD_ID, "BYTES", [n], np.asarray(lead_ids, dtype=object)),
    ]
    return outputs + (reasons or [])


def encode_v1(scores: np.ndarray, buckets: np.ndarray, tiers: np.ndarray, lead_ids: list[str],
              model_name: str, model_version: str, reasons: list[list[dict]] | None = None) -> dict:
    score_list = scores.astype(np.float64).tolist()
    bucket_list = buckets.tolist()
    predictions = [{"lead_id": lid, "score": s, "bucket": b, "tier": t}
                   for lid, s, b, t in zip(lead_ids, score_list, bucket_list, tiers.tolist(), strict=True)]
    if reasons is not None:
        for prediction, lead_reasons in zip(predictions, reasons, strict=True):
            prediction["reasons"] = lead_reasons
    return {"predictions": predictions, "model_name": model_name, "model_version": model_version}


def input_metadata() -> list[dict]:
    """The V2 model-metadata inputs: the column form (the tensor form is one FP32 [N, 50] input in this order)."""
    return [{"name": f.name, "datatype": "FP32", "shape": [-1]} for f in FEATURES] + [
        {"name": LEAD_ID, "datatype": "BYTES", "shape": [-1]}]


def output_metadata() -> list[dict]:
    return [{"name": "score", "datatype": "FP32", "shape": [-1]}, {"name": "bucket", "datatype": "INT32", "shape": [-1]},
            {"name": "tier", "datatype": "BYTES", "shape": [-1]}, {"name": LEAD_ID, "datatype": "BYTES", "shape": [-1]}]
