"""Is a spool file fit for the lake? Checked before every upload.

A file that is not a complete Parquet file of the lake schema breaks every query over its partition (Athena,
Synapse and pyarrow fail on the whole scan, not just the one file), so it must never be uploaded. Files this
sink wrote were fsynced and renamed into place, so a bad one means the disk or someone else damaged it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from .schema_facts import METADATA_SCHEMA_VERSION


class CorruptSpoolFile(ValueError):
    """The spool file is not a readable Parquet file of the lake schema."""


def check_spool_file(path: Path, crc32: int | None = None) -> int | None:
    """A file this process wrote (its CRC-32 is known) is fit when its bytes are unchanged: pyarrow encoded them
    from a valid table. Any other file is decoded in full (`check_parquet_file`)."""
    if crc32 is None:
        return check_parquet_file(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorruptSpoolFile(f"unreadable: {error}") from None
    if zlib.crc32(data) != crc32:
        raise CorruptSpoolFile(
            f"the bytes changed since they were written (CRC-32 differs; {len(data)} bytes)"
        )
    return None


def check_parquet_file(path: Path) -> int:
    """The file's row count once its footer, key-value metadata and every page decode (page checksums are verified
    where the writer stored them). CorruptSpoolFile when it is damaged or cannot be read at all (EIO, EACCES …)."""
    # Imported here: only files an earlier process left get here (this server's own are vouched for by their CRC).
    from .arrow import pq

    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
    except Exception as error:  # noqa: BLE001 - ArrowInvalid for a bad footer, OSError for an unreadable file
        raise CorruptSpoolFile(f"unreadable Parquet footer: {error}") from None
    with parquet:
        metadata = parquet.metadata
        if not metadata.metadata or METADATA_SCHEMA_VERSION not in metadata.metadata:
            raise CorruptSpoolFile("no lead_scoring.schema_version in the file metadata: not a lake file")
        if metadata.num_rows < 1:
            raise CorruptSpoolFile("the file holds no rows")
        try:
            table = parquet.read()
        except Exception as error:  # noqa: BLE001 - a damaged page: ArrowInvalid, OSError (checksum) …
            raise CorruptSpoolFile(f"damaged data pages: {error}") from None
    if table.num_rows != metadata.num_rows:
        raise CorruptSpoolFile(f"footer promises {metadata.num_rows} rows, pages hold {table.num_rows}")
    return table.num_rows
