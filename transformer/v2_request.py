"""A V2 (Open Inference Protocol) REST request body → `V2Request`: JSON, or JSON + the binary tensor extension.

Client bytes are parsed here, once, and every malformed part becomes an `InvalidRequest` naming what is wrong
(never a KeyError / ValueError reaching the client as a 500): the header length, the JSON header, each input's
name / datatype / shape / `binary_data_size`, and whether the bytes fill the shapes exactly. Element counts are
Python ints (`codec.check_shape`), so a shape whose int64 product wraps around is refused, not reshaped.

Binary tensor extension (OIP REST, "binary data"): `Inference-Header-Content-Length: L`; the first L bytes are the
JSON header; each input with `parameters.binary_data_size: S` takes the next S bytes, in input order; fixed-size
datatypes are little-endian, BYTES elements are a 4-byte little-endian length then the bytes, which must be UTF-8
text (KServe's decoder makes JSON strings of them).

The outputs a request names (`outputs`) are checked here too (`check_requested_outputs`), before anything is scored.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import orjson

from contract.validation import problem_dict
from transformer.codec import DATATYPES, Tensor, check_shape
from transformer.errors import InvalidRequest

HEADER_LENGTH = "inference-header-content-length"
# The wire layout of each fixed-size datatype (little-endian); BOOL is one byte, 0 or 1.
_WIRE = {
    "BOOL": np.dtype("u1"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_NUMBER_TYPES = frozenset({int, float, bool, type(None)})


@dataclass
class V2Request:
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict = field(default_factory=dict)
    outputs: list[dict] | None = None  # requested outputs: [{"name": ..., "parameters": {...}}]
    binary: bool = False  # arrived with the binary tensor extension


def _bad(
    message: str, field_name: str = "body", rule: str = "format", value: object = None
) -> InvalidRequest:
    return InvalidRequest(message, [problem_dict(None, field_name[:64], rule, value, message)])


def _check_values(parameters: dict | None, label: str) -> None:
    """Each value of a `parameters` object a bool, number or string (the Open Inference Protocol's `$parameter`, what
    KServe's request models require) or null, which this API reads as absent (`without_null_parameters`). A nested
    value scored on the fast path, and on KServe's routes was a 400 from FastAPI, before any key check and counted
    nowhere."""
    for key, value in (parameters or {}).items():
        if value is not None and not isinstance(value, bool | int | float | str):
            kind = {dict: "an object", list: "an array"}.get(type(value), type(value).__name__)
            name = f"parameters.{str(key)[:64]}"
            raise _bad(
                f"{label}{name} must be a bool, number or string (Open Inference Protocol), got {kind}",
                name,
                "type",
            )


def without_null_parameters(payload: dict) -> dict | None:
    """The V2 body without its null parameter values (request, input and output level), for KServe's request models,
    which refuse a null where this API's document allows one (`"reasons": null`: none); None when it has none."""

    def cleaned(item: object) -> object:
        if not isinstance(item, dict) or not isinstance(item.get("parameters"), dict):
            return item
        parameters = item["parameters"]
        if all(value is not None for value in parameters.values()):
            return item
        return {**item, "parameters": {k: v for k, v in parameters.items() if v is not None}}

    result = cleaned(payload)
    for part in ("inputs", "outputs"):
        items = payload.get(part)
        if isinstance(items, list):
            new = [cleaned(item) for item in items]
            if any(a is not b for a, b in zip(new, items, strict=True)):
                result = {**result, part: new}
    return None if result is payload else result


def parse_json(payload: object) -> V2Request:
    """A JSON body already parsed (orjson) → V2Request."""
    return _request(payload, None)


def parse_binary(body: bytes, header_length: str | None) -> V2Request:
    """A body sent with the binary tensor extension → V2Request."""
    text = (header_length or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise _bad(
            f"Inference-Header-Content-Length must be a whole number of bytes, got {text[:20]!r}",
            "Inference-Header-Content-Length",
            "format",
            text[:20],
        )
    length = int(text)
    if not 0 < length <= len(body):
        raise _bad(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes",
            "Inference-Header-Content-Length",
            "range",
            length,
        )
    try:
        header = orjson.loads(body[:length])
    except orjson.JSONDecodeError as exc:
        raise _bad(
            f"the JSON header (first {length} bytes, Inference-Header-Content-Length) is not valid JSON: {exc}",
            "header",
            "json",
        ) from None
    return _request(header, memoryview(body)[length:])


def _request(payload: object, binary: memoryview | None) -> V2Request:
    if not isinstance(payload, dict):
        raise _bad('a V2 request is a JSON object {"inputs": [ ... ]}', "body", "type")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad(
            "'inputs' must be a non-empty list of inputs, each with name, datatype, shape and data",
            "inputs",
            "required" if inputs is None else "type",
        )
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("'id' must be a string", "id", "type")
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise _bad("'parameters' must be an object", "parameters", "type")
    _check_values(parameters, "")
    offset = 0
    tensors = []
    for index, item in enumerate(inputs):
        tensor, used = _input(index, item, binary, offset)
        tensors.append(tensor)
        offset += used
    if binary is not None and offset != len(binary):
        raise _bad(
            f"{len(binary) - offset} bytes follow the last input's binary data: binary_data_size of the "
            f"inputs adds up to {offset}, the body carries {len(binary)} bytes after the JSON header",
            "binary_data_size",
            "size",
            offset,
        )
    return V2Request(
        tensors, request_id, parameters or {}, _outputs(payload.get("outputs")), binary is not None
    )


def tensor_from_json(item: object, index: int = 0) -> Tensor:
    """One input KServe decoded (its JSON, or the binary data it decoded) → a Tensor (null → NaN, true/false → 1/0),
    or InvalidRequest naming what is wrong. The values were judged against their datatype before KServe saw the body
    (parse_json by the fast path or serving/json_guard.py, parse_binary by serving/binary_guard.py), and binary FP16
    arrives here as numbers: no second datatype check."""
    return _input(index, item, None, 0, judged=True)[0]


def check_datatype(name: str, datatype: str) -> None:
    """A gRPC input's datatype: one of the V2 datatypes, or InvalidRequest naming the input and the allowed ones."""
    if datatype not in DATATYPES:
        raise _bad(
            f"input '{name[:64]}': 'datatype' must be one of {', '.join(sorted(DATATYPES))}, "
            f"got {datatype[:16]!r}",
            name,
            "datatype",
            datatype[:16],
        )


def tensor_from_grpc(
    name: str, datatype: str, shape: list[int], contents: list | None, raw: bytes | None
) -> Tensor:
    """One gRPC input → a Tensor: `raw` (raw_input_contents) in the binary layout, else the typed `contents`."""
    label = f"input '{name[:64]}'"
    check_datatype(name, datatype)
    count = check_shape(name, shape)
    if raw is not None:
        return Tensor(
            name, datatype, list(shape), _binary_data(label, name, datatype, memoryview(raw), count)
        )
    values = list(contents or ())
    if len(values) != count:
        raise _bad(
            f"{label}: shape {_shown_shape(shape)} needs {count} values, contents has {len(values)}",
            name,
            "shape",
            len(values),
        )
    if datatype == "BYTES":
        return Tensor(name, datatype, list(shape), np.asarray(values, dtype=object))
    return Tensor(name, datatype, list(shape), np.asarray(values, dtype=np.float64))


def check_requested_outputs(
    requested: list[tuple[str, dict | None]], produced: list[str], with_reasons: list[str], reasons: bool
) -> None:
    """The outputs a V2 request names (`outputs`: name, parameters), checked before anything is scored: each name one
    this request produces (`produced`; `with_reasons` too when it asks for reason codes), each parameter one this
    server honours (`binary_data`: true/false). InvalidRequest names `outputs[i]` and what is allowed."""
    allowed = produced + with_reasons if reasons else produced
    for index, (name, parameters) in enumerate(requested):
        where = f"outputs[{index}]"
        if name not in allowed:
            why = (
                f"is produced only with reason codes (parameters.reasons); without them the outputs are "
                f"{', '.join(produced)}"
                if name in with_reasons
                else f"is not an output of this model; the outputs are {', '.join(allowed)}"
                + ("" if reasons else f" (and {', '.join(with_reasons)} with parameters.reasons)")
            )
            raise _bad(f"{where}.name {name[:64]!r} {why}", f"{where}.name", "enumeration", name[:64])
        for key, value in (parameters or {}).items():
            if key != "binary_data":
                raise _bad(
                    f"{where}.parameters: {str(key)[:64]!r} is not an output parameter served here; the only "
                    "one is binary_data (true/false)",
                    f"{where}.parameters",
                    "enumeration",
                    str(key)[:64],
                )
            if not isinstance(value, bool):
                raise _bad(
                    f"{where}.parameters.binary_data must be true or false",
                    f"{where}.parameters.binary_data",
                    "type",
                )


def _outputs(outputs: object) -> list[dict] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict)
        and isinstance(o.get("name"), str)
        and isinstance(o.get("parameters") if o.get("parameters") is not None else {}, dict)
        for o in outputs
    ):
        raise _bad(
            "'outputs' must be a list of objects with a string 'name' (and optional 'parameters' object)",
            "outputs",
            "type",
        )
    for index, output in enumerate(outputs):
        _check_values(output.get("parameters"), f"outputs[{index}]: ")
    return outputs


def _input(
    index: int, item: object, binary: memoryview | None, offset: int, judged: bool = False
) -> tuple[Tensor, int]:
    if not isinstance(item, dict):
        raise _bad(
            f"inputs[{index}] must be an object with name, datatype, shape and data",
            f"inputs[{index}]",
            "type",
        )
    name = item.get("name")
    if not isinstance(name, str):
        raise _bad(f"inputs[{index}] needs a string 'name'", f"inputs[{index}].name", "required")
    label = f"input '{name[:64]}'"
    datatype = item.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        shown = datatype[:16] if isinstance(datatype, str) else None
        raise _bad(
            f"{label}: 'datatype' must be one of {', '.join(sorted(DATATYPES))}, got {shown!r}",
            name,
            "datatype",
            shown,
        )
    if "shape" not in item:
        raise _bad(f"{label}: 'shape' is missing", name, "shape")
    shape = item["shape"]
    count = check_shape(name, shape)
    parameters = item.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise _bad(f"{label}: 'parameters' must be an object", name, "type")
    _check_values(parameters, f"{label}: ")
    size = (parameters or {}).get("binary_data_size")
    if "data" in item and item["data"] is not None:
        if size is not None:
            raise _bad(f"{label}: has both 'data' and binary_data_size", name, "binary_data_size")
        values = _json_data(label, name, datatype, item["data"], shape, count, judged)
        return Tensor(name, datatype, list(shape), values), 0
    if size is None:
        raise _bad(
            f"{label}: 'data' is missing" + ("" if binary is None else " (and no binary_data_size)"),
            name,
            "required",
        )
    if binary is None:
        raise _bad(
            f"{label}: binary_data_size needs the binary tensor extension "
            "(Content-Type: application/octet-stream and Inference-Header-Content-Length)",
            name,
            "binary_data_size",
        )
    if type(size) is not int or size < 0:
        raise _bad(
            f"{label}: binary_data_size must be a whole number of bytes >= 0, got "
            f"{size if isinstance(size, int | float) and abs(size) < 2**63 else '?'}",
            name,
            "binary_data_size",
        )
    if offset + size > len(binary):
        raise _bad(
            f"{label}: binary_data_size is {size} but only {len(binary) - offset} bytes are left in the body",
            name,
            "binary_data_size",
            size,
        )
    chunk = binary[offset : offset + size]
    return _utf8_checked(
        Tensor(name, datatype, list(shape), _binary_data(label, name, datatype, chunk, count))
    ), size


def _json_numbers(data: list, count: int) -> np.ndarray | None:
    """The common case — evenly nested lists of JSON numbers, as many as the shape says — in C-level passes
    (~70 µs less per 100-lead tensor than the checked path); None for anything else, which the checked path then
    names. array("d") takes int, float and bool (true → 1.0) and refuses null, text and lists with TypeError."""
    flat = data
    try:
        while flat and type(flat[0]) is list:
            flat = list(chain.from_iterable(flat))
        if len(flat) != count:
            return None
        return np.frombuffer(array("d", flat), dtype=np.float64)
    except (TypeError, OverflowError):
        return None


def _fits(label: str, name: str, datatype: str, values: np.ndarray) -> np.ndarray:
    """JSON numbers hold what their declared datatype can: the binary extension and gRPC cannot send a BOOL 7, an
    INT64 54.5 or a UINT8 -50, so JSON may not either (they were scored as the numbers they are); FP16 is binary only.
    null (NaN, a missing value) passes; FP32/FP64 need no check: every feature's bound is far inside them."""
    present = values[~np.isnan(values)]
    if datatype == "BOOL":
        if not np.isin(present, (0.0, 1.0)).all():
            raise _bad(f"{label}: BOOL data must be true, false, 0 or 1", name, "boolean")
    elif datatype.startswith(("INT", "UINT")):
        limits = np.iinfo(_WIRE[datatype])
        if not ((present == np.floor(present)) & (present >= limits.min) & (present <= limits.max)).all():
            raise _bad(
                f"{label}: {datatype} data must be whole numbers from {limits.min} to {limits.max}",
                name,
                "integer",
            )
    elif datatype == "FP16":
        # KServe's own JSON route refuses it too (a half float has no JSON form); the fast path must answer alike.
        raise _bad(
            f"{label}: FP16 data cannot be sent as JSON; send FP32, or FP16 as binary data", name, "datatype"
        )
    return values


_CHECKED_DATATYPES = frozenset(_WIRE) - {"FP32", "FP64"}


def _json_data(
    label: str, name: str, datatype: str, data: object, shape: list, count: int, judged: bool = False
) -> object:
    values = _json_values(label, name, datatype, data, shape, count)
    return values if judged or datatype not in _CHECKED_DATATYPES else _fits(label, name, datatype, values)


def _json_values(label: str, name: str, datatype: str, data: object, shape: list, count: int) -> object:
    if datatype != "BYTES" and isinstance(data, list):
        numbers = _json_numbers(data, count)
        if numbers is not None:
            return numbers
    flat: list = data if isinstance(data, list) else [data]
    kinds = set(map(type, flat))  # one C-level pass: per-element Python loops cost more than the decoding
    if datatype == "BYTES":
        if not kinds <= {str}:
            raise _bad(f"{label}: BYTES data must be a flat list of strings", name, "type")
    else:
        while flat and kinds == {list}:  # nested row-major lists: one level at a time
            flat = list(chain.from_iterable(flat))
            kinds = set(map(type, flat))
        if not kinds <= _NUMBER_TYPES:
            raise _bad(
                f"{label}: {datatype} data must be numbers, true/false or null, in a flat or evenly "
                "nested list",
                name,
                "type",
            )
    if len(flat) != count:
        raise _bad(
            f"{label}: shape {_shown_shape(shape)} needs {count} values, data has {len(flat)}",
            name,
            "shape",
            len(flat),
        )
    if datatype == "BYTES":
        return np.asarray(flat, dtype=object)
    try:
        return np.asarray(flat, dtype=np.float64)  # null → NaN, true/false → 1/0
    except OverflowError:
        raise _bad(f"{label}: a value is beyond the range of a 64-bit float", name, "range") from None


def _shown_shape(shape: list) -> str:
    return str(shape) if len(str(shape)) <= 80 else str(shape)[:80] + "…]"


def _binary_data(label: str, name: str, datatype: str, chunk: memoryview, count: int) -> np.ndarray:
    if datatype == "BYTES":
        return np.asarray(_bytes_elements(label, name, chunk, count), dtype=object)
    wire = _WIRE[datatype]
    needed = count * wire.itemsize  # Python ints
    if len(chunk) != needed:
        raise _bad(
            f"{label}: binary_data_size is {len(chunk)} bytes but {count} {datatype} values take {needed}",
            name,
            "binary_data_size",
            len(chunk),
        )
    values = np.frombuffer(chunk, dtype=wire)
    if datatype == "BOOL" and (values > 1).any():
        raise _bad(f"{label}: BOOL bytes must be 0 or 1", name, "boolean")
    return values.astype(np.float64)


def _utf8_checked(tensor: Tensor) -> Tensor:
    """A binary-extension input, whose BYTES elements must be text: KServe's decoder turns them into JSON strings,
    and a lead id is text. The first element that is not UTF-8 is named (by position, never by its bytes)."""
    if tensor.datatype != "BYTES":
        return tensor
    bad = []
    for row, element in enumerate(tensor.data):
        try:
            element.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(row)
    if bad:
        name = tensor.name[:64]
        message = (
            f"input '{name}': BYTES element {bad[0]} is not valid UTF-8"
            + (f" ({len(bad)} elements are not)" if len(bad) > 1 else "")
            + "; BYTES elements must be UTF-8 text"
        )
        raise InvalidRequest(message, [problem_dict(bad[0], name, "encoding", None, message)], len(bad))
    return tensor


def _bytes_elements(label: str, name: str, chunk: memoryview, count: int) -> list[bytes]:
    elements, at = [], 0
    while at < len(chunk):
        if len(chunk) - at < 4:
            raise _bad(
                f"{label}: BYTES element {len(elements)} is cut short in its 4-byte length", name, "format"
            )
        (size,) = struct.unpack_from("<I", chunk, at)
        at += 4
        if size > len(chunk) - at:
            raise _bad(
                f"{label}: BYTES element {len(elements)} claims {size} bytes, {len(chunk) - at} are left",
                name,
                "format",
            )
        elements.append(bytes(chunk[at : at + size]))
        at += size
        if len(elements) > count:
            break
    if len(elements) != count:
        raise _bad(
            f"{label}: shape holds {count} BYTES elements, the binary data holds "
            f"{'more' if len(elements) > count else len(elements)}",
            name,
            "shape",
        )
    return elements
