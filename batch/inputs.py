"""The input as work units, and a unit as a stream of Arrow record batches of bounded size.

A unit is one Parquet row group or one whole CSV file (CSV has no index to split on). Every pod of the Job lists the
input and computes the same ordered unit list from file names and Parquet footers; unit i belongs to shard
i mod shard_count. The plan's fingerprint is stamped on every shard so a re-run over a changed input is caught: it
covers each file's identity (ETag, or local mtime and size) and each Parquet footer's bytes, so a re-export with the
same name, sizes and row counts but other rows in other row groups is a different plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.columns import REQUIRED_COLUMNS, check_columns, csv_column_types, feature_matrix
from batch.errors import BatchError, InputError
from batch.failures import is_transient, storage_failure
from batch.storage import Location

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
# A CSV row must fit in one block; a file without line breaks (or one absurd field) fails with a clear message.
CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Unit:
    key: str  # file key below the input location ('' when the input is one file)
    kind: str  # parquet | csv
    row_group: int  # -1 for CSV
    first_row: int  # row number of the unit's first row within its file
    rows: int  # -1 when unknown (CSV)
    size: int  # bytes: the row group's uncompressed size (Parquet's total_byte_size), or the CSV file's size
    identity: str = ""  # the file's: ETag or mtime+size, and for Parquet a hash of its footer (file_identity)

    @property
    def name(self) -> str:
        return self.key if self.kind == "csv" else f"{self.key}#rg{self.row_group}"


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for u in self.units:
            digest.update(f"{u.key}|{u.row_group}|{u.rows}|{u.size}|{u.identity}\n".encode())
        return digest.hexdigest()[:16]

    def shard(self, index: int, count: int) -> list[Unit]:
        return [u for i, u in enumerate(self.units) if i % count == index]


def _skipped(key: str) -> bool:
    """A file inside the input that is not an export: any part of its path below the input starts with `_` or `.`
    (Spark's `_SUCCESS`, `_temporary/0/part-….parquet` attempt files, `.hidden/`, `.crc` files): the convention of
    Spark, Hadoop and pyarrow datasets."""
    return any(part.startswith(("_", ".")) for part in key.split("/"))


def _kind_of(key: str) -> str | None:
    lower = key.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def _arrow_message(error: Exception) -> str:
    """Arrow's first line, without the cell content it quotes (which may be megabytes, or personal data)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if text.startswith("CSV parse error:"):
        text = ":".join(text.split(":", 2)[:2])  # "CSV parse error: Expected 51 columns, got 1"
    return text[:200]


def _read_failure(what: str, error: Exception) -> BatchError:
    """A storage failure a retry may cure (exit 1), else the input's fault (exit 2), named with `what`."""
    if is_transient(error):
        return storage_failure(what, error)
    return InputError(f"{what}: {_arrow_message(error)}")


def plan_input(location: Location) -> Plan:
    """Every unit of the input, in a deterministic order; the columns of every file (and the first block of every
    CSV file) are checked here, before any shard writes anything."""
    try:
        info = location.info("")
    except (OSError, pa.ArrowException) as error:
        raise _read_failure(f"cannot read the input {location.shown}", error) from None
    if info.type == pa.fs.FileType.File:
        kind = _kind_of(location.root)
        if kind is None:
            raise InputError(f"input {location.shown} is neither .parquet nor .csv / .csv.gz")
        files = [("", info.size or 0, kind)]
    elif info.type == pa.fs.FileType.Directory or location.uri.startswith(("s3://", "http")):
        try:
            listed = location.list_files()
        except (OSError, pa.ArrowException) as error:
            raise _read_failure(f"cannot list the input {location.shown}", error) from None
        files = [(key, size, _kind_of(key)) for key, size in listed if _kind_of(key) and not _skipped(key)]
    else:
        raise InputError(f"input {location.shown} does not exist")
    if not files:
        raise InputError(f"input {location.shown} holds no .parquet or .csv files")
    units: list[Unit] = []
    for key, size, kind in files:
        units.extend(_parquet_units(location, key) if kind == "parquet" else _csv_units(location, key, size))
    if not units:
        raise InputError(f"input {location.shown} holds no leads (every file is empty)")
    return Plan(tuple(units))


def file_identity(location: Location, key: str, handle: pa.NativeFile, metadata=None) -> str:
    """The file's identity (ETag, or local mtime and size) and, for Parquet, a hash of its footer as pyarrow
    re-serialises it: row counts, sizes, every column chunk's offsets and min/max statistics, key-value metadata.
    Two exports with the same rows in other row groups differ there even when an ETag or mtime cannot tell."""
    identity = location.identity(key, handle)
    if metadata is not None:
        footer = pa.BufferOutputStream()
        metadata.write_metadata_file(footer)
        identity += f"|footer:{hashlib.sha256(footer.getvalue()).hexdigest()[:16]}"
    return identity


def _parquet_units(location: Location, key: str) -> list[Unit]:
    where = location.describe(key)
    try:
        with location.open_input_file(key) as handle:
            metadata = pq.ParquetFile(handle).metadata
            schema = metadata.schema.to_arrow_schema()
            identity = file_identity(location, key, handle, metadata)
    except (OSError, pa.ArrowException) as error:
        raise _read_failure(f"cannot read {where} as Parquet", error) from None
    check_columns(schema, where)
    units, first = [], 0
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        if group.num_rows:
            units.append(Unit(key, "parquet", rg, first, group.num_rows, group.total_byte_size, identity))
        first += group.num_rows
    return units


def _text(location: Location, key: str, raw: pa.NativeFile) -> pa.NativeFile:
    # Compression named from the lower-cased name: pyarrow's compression="detect" matches ".gz" case-sensitively and
    # would hand a CRM's EXPORT.CSV.GZ to the CSV parser still compressed.
    return pa.CompressedInputStream(raw, "gzip") if location.path(key).lower().endswith(".gz") else raw


def _csv_reader(stream: pa.NativeFile, column_types: dict | None, include: list[str] | None):
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        # RFC 4180: a quoted cell may hold line breaks (a CRM's notes or address column). Without this, Arrow cuts
        # blocks at any line break, and such a file failed as soon as it was larger than one block.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            include_columns=include,
            # Only an empty cell is missing (docs/batch.md): Arrow's default null words (NA, N/A, NULL, nan, …)
            # stay text, so a feature cell `n/a` is a `type` reject and a lead_id `NA` is an id.
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def _csv_error(where: str, error: Exception) -> BatchError:
    if is_transient(error):
        return storage_failure(f"cannot read {where}", error)
    text = _arrow_message(error)
    if "straddling" in text or "block size" in text:
        text = f"a row is larger than {CSV_BLOCK_BYTES >> 20} MiB (a runaway quoted field?)"
    return InputError(f"cannot read {where} as CSV: {text}")


def _csv_units(location: Location, key: str, size: int) -> list[Unit]:
    where = location.describe(key)
    try:
        with location.open_input_stream(key) as stream:
            identity = file_identity(location, key, stream)
            reader = _csv_reader(_text(location, key, stream), csv_column_types(), None)
            schema = reader.schema
            try:
                first = reader.read_next_batch()  # one block: a header alone is an empty file
            except StopIteration:
                first = None
            reader.close()
    except (OSError, pa.ArrowException) as error:
        if "Empty CSV file" in str(error):
            return []
        raise _csv_error(where, error) from None
    check_columns(schema, where, text_cells=True)
    if first is None or not first.num_rows:
        return []
    # The first block is the first window its shard will read: a column of text there (a wrong export, not bad
    # rows) stops every shard now, before any of them commits, not only the one shard that reads the file.
    feature_matrix(first.select(list(REQUIRED_COLUMNS)), where)
    return [Unit(key, "csv", -1, 0, -1, size, identity)]


def _changed(where: str) -> InputError:
    return InputError(
        f"{where} changed since the run was planned (another ETag, modification time or footer): the export was "
        "rewritten while the run read it; re-run into a new output folder once it is complete"
    )


def read_unit(location: Location, unit: Unit, window_rows: int) -> Iterator[pa.RecordBatch]:
    """The unit's rows as record batches of at most `window_rows` rows (CSV: one block each), required columns only;
    InputError if the file is no longer the one planned."""
    where = location.describe(unit.key)
    try:
        if unit.kind == "parquet":
            with location.open_input_file(unit.key) as handle:
                # Window by window, not a row group at once: memory stays bounded whatever the row group size, and
                # the small buffers are reused (measured: less CPU than decoding 250k-row groups whole).
                parquet = pq.ParquetFile(handle, pre_buffer=False)
                if file_identity(location, unit.key, handle, parquet.metadata) != unit.identity:
                    raise _changed(where)
                yield from parquet.iter_batches(
                    batch_size=window_rows,
                    row_groups=[unit.row_group],
                    columns=list(REQUIRED_COLUMNS),
                    use_threads=False,
                )
        else:
            with location.open_input_stream(unit.key) as stream:
                if file_identity(location, unit.key, stream) != unit.identity:
                    raise _changed(where)
                text = _text(location, unit.key, stream)
                with _csv_reader(text, csv_column_types(), list(REQUIRED_COLUMNS)) as reader:
                    yield from reader
    except (OSError, pa.ArrowException) as error:
        if unit.kind == "csv":
            raise _csv_error(where, error) from None
        raise _read_failure(f"cannot read {where} ({unit.name})", error) from None
