"""A write-ahead journal of submitted batches, so an answered request survives its process being killed.

Between a request's answer and its records reaching the spool (up to --sink_flush_seconds), the records live only in
the sink's memory. Each accepted batch is therefore also appended to `<spool>/journal/<n>.wal` with one `write()`
before the answer goes out. The write lands in the kernel's page cache, which outlives the process: a SIGKILL, an OOM
kill or a crash of the transformer loses nothing. (A node crash can: there is no fsync per request.) A segment is
deleted once every batch in it has been spooled or counted as dropped; the next start replays what is left.

Frame: `<u32 length><u32 crc32>` then the payload the table encoded. Reading stops at the first frame that is short
or fails its checksum (the tail a killed write() left); every frame before it is good.
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
SUFFIX = ".wal"
_HEADER = struct.Struct("<II")
SEGMENT_BYTES = 8 << 20  # a new segment after this many bytes, so a long-lived one is not kept whole
MAX_BYTES = 64 << 20


def max_bytes_for(spool_max_bytes: int) -> int:
    """The journal's bound beside a spool of this bound: a sixteenth of it, at most 64 MiB. It holds what is in memory
    (one flush window, normally a few MB); past the bound, batches are kept in memory only, so the spool's volume
    (its emptyDir sizeLimit) needs room for the spool's bound plus this."""
    return min(MAX_BYTES, spool_max_bytes // 16)


def read_frames(path: Path) -> tuple[list[bytes], bool]:
    """The good frames of a segment, and whether it ended cleanly (False: a torn or damaged tail was cut)."""
    data = path.read_bytes()
    frames, at = [], 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return frames, False
        frames.append(payload)
        at += _HEADER.size + length
    return frames, at == len(data)


class Journal:
    """Appends from one thread at a time (the sink's submit lock); sealing and deleting from the batcher's.

    Each appended frame belongs to the segment it went into; `resolved(n)` says the oldest n appended frames are now
    on the spool or dropped (the sink resolves batches in the order they were submitted), and a segment no longer
    written to is deleted once all its frames are resolved.
    """

    def __init__(self, spool_dir: Path, max_bytes: int = MAX_BYTES) -> None:
        self.directory = Path(spool_dir) / JOURNAL_DIR
        self.max_bytes = max_bytes
        self._bytes: collections.Counter[int] = collections.Counter()  # bytes of each live segment
        self._total = 0  # their sum (checked on every append)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._leftovers = sorted(self.directory.glob(f"*{SUFFIX}"), key=_number)
        self._next = (_number(self._leftovers[-1]) + 1) if self._leftovers else 0
        self._fd: int | None = None
        self._segment: int | None = None
        self._size = 0
        self._frames: collections.deque[int] = (
            collections.deque()
        )  # segment of each unresolved frame, in order
        self._unresolved: collections.Counter[int] = collections.Counter()

    def leftovers(self) -> list[Path]:
        """Segments an earlier process left: to replay before anything new is submitted."""
        return list(self._leftovers)

    def replayed(self, path: Path) -> None:
        """The segment's batches are spooled: delete it. A segment that cannot be deleted is logged and left (the
        next start spools it again, at least once); it never stops this start."""
        self._leftovers.remove(path)
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            log.error(
                "sink journal: cannot delete the replayed segment %s (%s): the next start spools it again",
                path,
                error,
            )

    def append(self, payload: bytes) -> bool:
        """One frame, one write(). False when it could not be written or the journal is at its bound (the batch then
        lives in memory only). Never raises: a journal that fails must not fail the request it protects. Either
        way the batch takes its place in the resolution order, so later batches still resolve their own frames."""
        header = _HEADER.pack(len(payload), zlib.crc32(payload))
        size = len(header) + len(payload)
        if self._total + size > self.max_bytes:
            self._frames.append(None)
            return False
        try:
            if self._fd is None or self._size >= SEGMENT_BYTES:
                self._open_next()
            written = os.writev(self._fd, (header, payload))  # one system call, no copy of the payload
        except OSError:
            written = -1
        if written != size:
            # A short write leaves a torn frame: nothing may follow it in this segment, so the next starts anew.
            self._seal()
            self._frames.append(None)
            return False
        self._size += written
        self._bytes[self._segment] += written
        self._total += written
        self._frames.append(self._segment)
        self._unresolved[self._segment] += 1
        return True

    def resolved(self, count: int) -> list[Path]:
        """The oldest `count` frames are on the spool or dropped. Returns the segments that are now deletable."""
        for _ in range(min(count, len(self._frames))):
            segment = self._frames.popleft()
            if segment is not None:  # None: a batch whose entry could not be written
                self._unresolved[segment] -= 1
        return self._collect()

    def rotate(self) -> list[Path]:
        """Start a new segment with the next append (called when the sink has taken in everything submitted so
        far); returns the segments that are now deletable."""
        self._seal()
        return self._collect()

    def unresolved(self) -> int:
        return sum(1 for segment in self._frames if segment is not None)

    @property
    def bytes(self) -> int:
        """Bytes of the segments this process wrote and has not deleted yet."""
        return self._total

    def close(self) -> None:
        self._seal()

    def _open_next(self) -> None:
        self._seal()
        self._segment, self._next = self._next, self._next + 1
        self._fd = os.open(
            self.directory / f"{self._segment:012d}{SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self._size = 0
        self._unresolved[self._segment] += 0

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def _collect(self) -> list[Path]:
        done = [s for s, n in self._unresolved.items() if n <= 0 and (s != self._segment or self._fd is None)]
        paths = []
        for segment in done:
            del self._unresolved[segment]
            self._total -= self._bytes.pop(segment, 0)
            paths.append(self.directory / f"{segment:012d}{SUFFIX}")
        return paths

    def iter_payloads(self, path: Path) -> Iterator[bytes]:
        frames, clean = read_frames(path)
        if not clean:
            log.warning(
                "sink journal %s: a torn or damaged tail after %d good entries was cut", path, len(frames)
            )
        yield from frames


def _number(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return -1
