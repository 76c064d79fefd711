"""A CRM export's columns → lead ids + the float64 [N, 50] matrix the contract validates (NaN = missing).

The export must carry `lead_id` and the 50 contract features by name (docs/features.md); other columns are ignored.
Parquet columns must be numbers or booleans. CSV has no types: its cells are parsed here, `true`/`false` are
accepted for flags like the JSON API accepts them, and a cell that is no number becomes a `type` reject of its row
(a whole column of text is a wrong export, not bad rows, and stops the run).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch.errors import InputError
from contract import lead_ids as lead_id_rule
from contract.features import FEATURE_NAMES, FEATURES, N_FEATURES

LEAD_ID = "lead_id"
REQUIRED_COLUMNS = (LEAD_ID, *FEATURE_NAMES)
_BOOL_COLUMNS = frozenset(f.name for f in FEATURES if f.kind == "bool")
_TEXT_COLUMN_EVIDENCE = 10
# A CSV number: ASCII digits, an optional sign, decimal point and exponent (RE2: [0-9] only, never other scripts),
# or ±inf / infinity, which the contract then refuses as `finite` (as it does in Parquet). Not nan: missing is "".
_NUMERAL = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity))$"


def _numeric(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    )


def _text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def check_columns(schema: pa.Schema, where: str, *, text_cells: bool = False) -> None:
    """InputError naming every missing column and every feature column of a non-numeric type (text is fine in
    a CSV, whose cells are parsed one by one)."""
    names = set(schema.names)
    doubled = [c for c in REQUIRED_COLUMNS if len(schema.get_all_field_indices(c)) > 1]
    if doubled:
        raise InputError(
            f"{where}: column(s) {', '.join(doubled[:10])} appear more than once; each column of the export "
            "must have its own name"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(
            f"{where}: missing column(s) {shown}; an export needs lead_id and the 50 features "
            "named in docs/features.md"
        )
    wrong = []
    for name in FEATURE_NAMES:
        kind = schema.field(name).type
        if not (_numeric(kind) or (_text(kind) and text_cells)):
            wrong.append(f"{name} is {kind}")
    lead_kind = schema.field(LEAD_ID).type
    if not (_text(lead_kind) or pa.types.is_integer(lead_kind)):
        wrong.append(f"lead_id is {lead_kind}")
    if wrong:
        raise InputError(
            f"{where}: wrong column type(s): {'; '.join(wrong[:10])} — features must be numbers or "
            "booleans (categories as their codes), lead_id text or an integer"
        )


def csv_column_types() -> dict[str, pa.DataType]:
    # Everything as text: the cells are parsed below so a stray value rejects its row instead of its whole block.
    return dict.fromkeys(REQUIRED_COLUMNS, pa.string())


def _float_column(column: pa.Array, name: str, where: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The column as float64 (null → NaN) and the (row, text) of cells that are no number."""
    if _text(column.type):
        return _parse_text(column, name, where)
    if not pa.types.is_float64(column.type):
        column = pc.cast(column, pa.float64())
    return column.to_numpy(zero_copy_only=False), []


def _parse_text(column: pa.Array, name: str, where: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
    cleaned = pc.utf8_trim_whitespace(column)
    cleaned = pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.string()), cleaned)
    if name in _BOOL_COLUMNS:
        lowered = pc.utf8_lower(cleaned)
        cleaned = pc.if_else(
            pc.equal(lowered, "true"), "1", pc.if_else(pc.equal(lowered, "false"), "0", cleaned)
        )
    # A number is written with ASCII numerals only: Arrow's and Python's parsers both also take nan (which would
    # be missing without an empty cell), and Python takes 1_000 and other scripts' digits (١٢ = 12).
    numeral = pc.match_substring_regex(cleaned, _NUMERAL)
    if pc.all(numeral).as_py() is not False:  # every filled cell is a numeral (all nulls: None)
        return pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False), []
    # Rare path: some cell is no number. Find which, and parse the others.
    values = pc.cast(pc.if_else(numeral, cleaned, pa.scalar(None, pa.string())), pa.float64()).to_numpy(
        zero_copy_only=False
    )
    bad = [
        (row, text)
        for row, (text, ok) in enumerate(zip(cleaned.to_pylist(), numeral.to_pylist(), strict=True))
        if text is not None and not ok
    ]
    # Text in every filled cell (and enough of them to tell) is a text column, not a few stray cells.
    if len(bad) >= _TEXT_COLUMN_EVIDENCE and len(bad) == len(cleaned) - cleaned.null_count:
        examples = ", ".join(repr(t[:20]) for _, t in bad[:3])
        raise InputError(
            f"{where}: column {name} holds text ({examples}, …) where the contract needs numbers "
            "(categories as their codes, see docs/features.md; only an empty cell means missing)"
        )
    return values, bad


def lead_ids(batch: pa.RecordBatch) -> pa.Array:
    column = batch.column(LEAD_ID)
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


def _utf8(ids: pa.Array, row: int, where: str, first_row: int) -> str | None:
    """The id at `row` as Python text. Parquet stores strings as bytes and pyarrow does not check their encoding
    when reading: an export written as Latin-1 (or cut mid-character) is a wrong export, named here, not a crash."""
    try:
        return ids[row].as_py()
    except UnicodeDecodeError as error:
        raise InputError(
            f"{where}: row {first_row + row}: lead_id is not valid UTF-8 (byte {error.object[error.start]:#04x} "
            f"at offset {error.start}); Parquet strings must be UTF-8: re-export the file with UTF-8 text"
        ) from None


def lead_id_problems(
    ids: pa.Array, where: str = "", first_row: int = 0
) -> list[tuple[int, str, str | None, str]]:
    """(row in the window, rule, value shown, message) of every id the API would refuse: missing or empty
    (`required`: it could not be written back), or breaking contract/lead_ids.py's rule (`length`, `printable`).
    An id that is not UTF-8 at all stops the run (InputError naming `where` and the row, counted from `first_row`)."""
    # Vectorised pre-filter: printable ASCII of 1..128 characters is valid; the rest (rare) is judged one by one
    # by the contract's own function, so non-ASCII ids get exactly Python's isprintable, as in the API.
    length = pc.utf8_length(ids)
    suspect = pc.or_(
        pc.or_(pc.equal(length, 0), pc.greater(length, lead_id_rule.MAX_LEAD_ID_LENGTH)),
        pc.invert(pc.and_(pc.string_is_ascii(ids), pc.ascii_is_printable(ids))),
    )
    suspect = pc.fill_null(suspect, True)
    if not suspect.true_count:
        return []
    found = []
    for row in np.flatnonzero(suspect.to_numpy(zero_copy_only=False)):
        value = _utf8(ids, int(row), where, first_row)
        if not value:
            found.append(
                (int(row), "required", None, "lead_id is required (the CRM's key to write the tier back)")
            )
            continue
        problem = lead_id_rule.problem(value)
        if problem is not None:
            found.append((int(row), problem[0], lead_id_rule.shown(value), problem[1]))
    return found


def _all_numbers(batch: pa.RecordBatch) -> bool:
    return all(
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        for t in (batch.schema.field(name).type for name in FEATURE_NAMES)
    )


def _typed_matrix(batch: pa.RecordBatch) -> np.ndarray:
    """The common case, a typed export: one C++ conversion of all 50 columns (nulls → NaN), column-major."""
    # to_tensor takes mixed ints and floats (not booleans) and widens to float64, as the JSON API's parser does.
    # float16 is widened first: to_tensor does not take it.
    columns = [
        pc.cast(c, pa.uint8())
        if pa.types.is_boolean(c.type)
        else pc.cast(c, pa.float32())
        if pa.types.is_float16(c.type)
        else c
        for c in (batch.column(name) for name in FEATURE_NAMES)
    ]
    tensor = pa.RecordBatch.from_arrays(columns, names=list(FEATURE_NAMES)).to_tensor(
        null_to_nan=True, row_major=False
    )
    matrix = tensor.to_numpy()
    return matrix if matrix.dtype == np.float64 else matrix.astype(np.float64)


def feature_matrix(batch: pa.RecordBatch, where: str) -> tuple[np.ndarray, dict[int, list[tuple[str, str]]]]:
    """float64 [N, 50] in feature order and, per row, the (field, text) cells that are no number (CSV only)."""
    if _all_numbers(batch):
        return _typed_matrix(batch), {}
    matrix = np.empty((batch.num_rows, N_FEATURES), dtype=np.float64, order="F")
    unparsable: dict[int, list[tuple[str, str]]] = {}
    for j, name in enumerate(FEATURE_NAMES):
        values, bad = _float_column(batch.column(name), name, where)
        matrix[:, j] = values
        for row, text in bad:
            unparsable.setdefault(row, []).append((name, text))
    return matrix, unparsable
