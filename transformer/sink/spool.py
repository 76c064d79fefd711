"""The local spool: every batch is a durable Parquet file here before it is uploaded.

A file appears under its final name only once complete (temp name, fsync, rename, fsync of the directory),
so after a crash the spool holds complete files plus stray temp files, which are discarded.
The relative path of a spool file is its object key in the lake: re-uploading it after a crash writes the same key.
Files that fail the integrity check before upload are moved to `<spool>/quarantine/<key>`, out of the upload queue.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
QUARANTINE_DIR = "quarantine"  # never a partition name: those are `model=...`


@dataclass(frozen=True)
class SpoolFile:
    key: str
    path: Path
    size: int
    # None: adopted from an earlier process with a footer that could not be read; the upload's full check counts it.
    records: int | None
    oldest_scored_at: float  # epoch seconds of the oldest record inside
    # CRC-32 of the bytes this process wrote; None for a file adopted from an earlier process (its bytes were never
    # seen here, so only a full decode can vouch for it).
    crc32: int | None = None


def describe(files: list[SpoolFile], unit: str) -> str:
    """'120 records in 3 files', with the files whose count is unknown (unreadable footer) named apart, so that a
    log line never states a count nobody read."""
    known = [f.records for f in files if f.records is not None]
    text = f"{sum(known)} {unit} in {len(files)} file{'' if len(files) == 1 else 's'}"
    if len(known) < len(files):
        text += f", {len(files) - len(known)} of them with an unreadable footer (count unknown)"
    return text


class SpoolFull(Exception):
    """The file would push the spool over its byte budget; it was not kept."""


@dataclass(frozen=True)
class EncodedFile:
    """A complete, fsynced Parquet file under a temp name at the spool's top, not yet in the upload queue."""

    temp: Path
    size: int
    crc32: int
    records: int


def encode_file(table: pa.Table, directory: Path, compression: str) -> EncodedFile:
    """Encode a table to a temp file in `directory` (fsynced). Needs no Spool: the encoder process calls it too
    (transformer/sink/encoder.py), and the spool's owner commits the result."""
    # Imported here, not at the top: a server whose files a child process encodes never loads pyarrow.
    from .arrow import pa, pq

    # Dictionary-encode only the text columns: on the 50 float feature columns it costs ~2/3 of the write time and
    # makes files larger, not smaller.
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    # Page checksums let readers (and the check of an adopted file) find a flipped bit, not only a broken footer.
    # Encoded in memory: the CRC of exactly these bytes vouches for the file at upload time without decoding it
    # again (the decode cost ~40 % of the encode's CPU; the CRC ~3 %).
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression=compression, use_dictionary=text, write_page_checksum=True)
    data = buffer.getvalue()
    temp = Path(directory) / f".{uuid.uuid4().hex}.parquet{TEMP_SUFFIX}"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return EncodedFile(temp, len(data), zlib.crc32(data), table.num_rows)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe_leftover(path: Path) -> tuple[int, float]:
    """Row count and oldest scored_at from the Parquet footer, so a leftover file does not have to be read."""
    from .arrow import pq  # only for files an earlier process left

    meta = pq.read_metadata(path)
    try:
        column = meta.schema.names.index("scored_at")
        minima = [meta.row_group(i).column(column).statistics.min for i in range(meta.num_row_groups)]
        oldest = min(m.timestamp() for m in minima)
    except Exception:  # noqa: BLE001 - a best-effort age; the file is uploaded either way
        oldest = path.stat().st_mtime
    return meta.num_rows, oldest


class Spool:
    def __init__(self, directory: Path, max_bytes: int, compression: str = "zstd") -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.compression = compression
        self._files: OrderedDict[str, SpoolFile] = OrderedDict()  # oldest first
        self._bytes = 0
        self._lock = threading.Lock()
        # Serialises creating a partition folder (and the first file in it) with removing empty folders.
        self._tree_lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def bytes(self) -> int:
        return self._bytes

    def recover(self) -> list[SpoolFile]:
        """Adopt complete files left by an earlier process (oldest first); discard half-written temp files."""
        quarantine = self.directory / QUARANTINE_DIR
        for temp in self.directory.rglob(f"*{TEMP_SUFFIX}"):
            log.warning("sink spool: discarding incomplete file %s", temp)
            temp.unlink(missing_ok=True)
        found = sorted(
            (p for p in self.directory.rglob("*.parquet") if quarantine not in p.parents),
            key=lambda p: p.stat().st_mtime,
        )
        adopted = []
        with self._lock:
            for path in found:
                key = path.relative_to(self.directory).as_posix()
                if key in self._files:
                    continue
                try:
                    records, oldest = _describe_leftover(path)
                except Exception:  # noqa: BLE001 - the upload's integrity check decides; keep, do not lose
                    log.warning(
                        "sink spool: unreadable footer in %s; it is checked again before upload", path
                    )
                    records, oldest = None, path.stat().st_mtime
                entry = SpoolFile(key, path, path.stat().st_size, records, oldest)
                self._files[key] = entry
                self._bytes += entry.size
                adopted.append(entry)
        return adopted

    def write(self, key: str, table: pa.Table, oldest_scored_at: float) -> SpoolFile:
        return self.commit(key, encode_file(table, self.directory, self.compression), oldest_scored_at)

    def commit(self, key: str, encoded: EncodedFile, oldest_scored_at: float) -> SpoolFile:
        """Give an encoded temp file its final name (its object key) and queue it for upload; SpoolFull, and the
        temp file deleted, when it does not fit the byte budget."""
        final = self.directory / key
        try:
            with self._lock:
                if self._bytes + encoded.size > self.max_bytes:
                    raise SpoolFull(
                        f"spool holds {self._bytes} bytes, budget {self.max_bytes}, file {encoded.size}"
                    )
                self._bytes += encoded.size  # reserved before the rename, so a concurrent writer sees them
            try:
                with self._tree_lock:  # the partition folder must not be pruned between mkdir and rename
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(encoded.temp, final)
            except BaseException:
                with self._lock:
                    self._bytes -= encoded.size
                raise
            try:
                _fsync_dir(final.parent)
            except OSError as exc:
                # The file is in place under its name: queued and uploaded like any other. Raising here had the
                # records counted as dropped (disk_error) while the file stayed, outside the queue and the budget.
                log.warning(
                    "spool: could not sync the folder of %s (%s): the file is queued, but a crash of the node "
                    "before its upload may lose it",
                    final,
                    exc.strerror or exc,
                )
        finally:
            encoded.temp.unlink(missing_ok=True)
        entry = SpoolFile(key, final, encoded.size, encoded.records, oldest_scored_at, encoded.crc32)
        with self._lock:
            self._files[key] = entry
        return entry

    def pending(self) -> list[SpoolFile]:
        with self._lock:
            return list(self._files.values())

    def oldest_scored_at(self) -> float | None:
        with self._lock:
            return min((f.oldest_scored_at for f in self._files.values()), default=None)

    def forget(self, entry: SpoolFile) -> None:
        """Take the file out of the upload queue and the byte budget (whatever happens to it on disk)."""
        with self._lock:
            if self._files.pop(entry.key, None) is not None:
                self._bytes -= entry.size

    def remove(self, entry: SpoolFile) -> None:
        """Delete a stored file. It leaves the queue even when the delete fails (the OSError is raised): the object
        is in the lake, and a later start that finds the file again uploads the same key, which the backends treat
        as already stored."""
        try:
            entry.path.unlink(missing_ok=True)
        finally:
            self.forget(entry)
        self._prune_empty_folders(entry.path.parent)

    def quarantine(self, entry: SpoolFile) -> Path | None:
        """Move a file that must not be uploaded to `<spool>/quarantine/<key>`; None when even that failed (then
        it stays where it is, out of the queue: a later start checks it again)."""
        target = self.directory / QUARANTINE_DIR / entry.key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(entry.path, target)
        except OSError:
            log.exception("sink spool: cannot move %s to the quarantine", entry.path)
            return None
        finally:
            self.forget(entry)
        self._prune_empty_folders(entry.path.parent)
        return target

    def _prune_empty_folders(self, parent: Path) -> None:
        with self._tree_lock:
            while parent != self.directory:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
