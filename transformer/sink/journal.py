"""A write-ahead journal of submitted batches, so an answered request survives its process being killed.

Between a request's answer and its records reaching the spool (up to --sink_flush_seconds), the records live only in
the sink's memory. Each accepted batch is therefore also written to `<spool>/journal/<n>.wal` before the answer goes
out, with one `pwritev` into disk space the segment reserved beforehand (posix_fallocate, 128 KiB at a time). The
write lands in the kernel's page cache, which outlives the process: a SIGKILL, an OOM kill or a crash of the
transformer loses nothing. (A node crash can: there is no fsync per request.) A segment is deleted once every batch
in it has been spooled or counted as dropped; the next start replays what is left.

Why a reserved region: a full disk is a refused reservation, one ordinary error, and the write into it does not grow
the file, so it does not update the file's size per request as an O_APPEND write does. Why not a memory map of it:
measured, a mapped copy saves ~0.4 µs on a 400-byte entry but costs 3-4x on a 25 KB one (a page fault per 4 KiB).
A sealed segment is truncated to what it holds, so the journal takes little more of the volume than it stores.

Frame: `<u32 length><u32 crc32>` then the payload the table encoded. Reading stops at a zero header (the reserved,
unused end a killed process leaves) or at the first frame that is short or fails its checksum (a write the kill cut
short); every frame before it is good.
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
_PAGE = os.sysconf("SC_PAGE_SIZE")  # reservations are whole pages
WINDOW_BYTES = 128 << 10  # reserved on disk this much at a time
# A new segment once a reservation would start past this, so a long-lived one is not kept whole.
SEGMENT_BYTES = 8 << 20
MAX_BYTES = 64 << 20


def max_bytes_for(spool_max_bytes: int) -> int:
    """The journal's bound beside a spool of this bound: a sixteenth of it, at most 64 MiB. It holds what is in memory
    (one flush window, normally a few MB); past the bound, batches are kept in memory only, so the spool's volume
    (its emptyDir sizeLimit) needs room for the spool's bound plus this. The bound counts the disk space the
    segments reserve, not only the bytes written into them."""
    return min(MAX_BYTES, spool_max_bytes // 16)


def read_frames(path: Path) -> tuple[list[bytes], bool]:
    """The good frames of a segment, and whether it ended cleanly (False: a torn or damaged tail was cut)."""
    data = path.read_bytes()
    frames, at = [], 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        if length == 0:  # the unused end, or a frame whose header a kill never wrote
            break
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return frames, False
        frames.append(payload)
        at += _HEADER.size + length
    return frames, data.count(0, at) == len(data) - at


class Journal:
    """Appends from one thread at a time (the sink's submit lock); sealing and deleting from the batcher's.

    Each appended frame belongs to the segment it went into; `resolved(n)` says the oldest n appended frames are now
    on the spool or dropped (the sink resolves batches in the order they were submitted), and a segment no longer
    written to is deleted once all its frames are resolved.
    """

    def __init__(self, spool_dir: Path, max_bytes: int = MAX_BYTES) -> None:
        self.directory = Path(spool_dir) / JOURNAL_DIR
        self.max_bytes = max_bytes
        # A quarter of the bound at most, so a segment waiting to be spooled leaves room for the next window.
        self._window_bytes = min(WINDOW_BYTES, max_bytes // 4) // _PAGE * _PAGE
        self._bytes: collections.Counter[int] = collections.Counter()  # disk reserved by each live segment
        self._total = 0  # their sum (checked before each reservation)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._leftovers = sorted(self.directory.glob(f"*{SUFFIX}"), key=_number)
        self._next = (_number(self._leftovers[-1]) + 1) if self._leftovers else 0
        self._fd: int | None = None
        self._segment: int | None = None
        self._position = 0  # file offset of the next frame in the open segment
        self._frames: collections.deque[int | None] = collections.deque()  # each unresolved frame's segment
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
        """One frame, one pwritev. False when it could not be stored (no segment could be opened, the disk refused
        the reservation, the journal is at its bound, or the payload is empty): the batch then lives in memory only.
        Never raises: a journal that fails must not fail the request it protects. Either way the batch takes its
        place in the resolution order, so later batches still resolve their own frames."""
        size = _HEADER.size + len(payload)
        if not payload:  # its zero header would read as the segment's end and hide every later frame
            self._frames.append(None)
            return False
        try:
            if self._fd is None or self._position + size > self._bytes[self._segment]:
                if not self._reserve(size):
                    self._frames.append(None)
                    return False
            header = _HEADER.pack(len(payload), zlib.crc32(payload))
            written = os.pwritev(self._fd, (header, payload), self._position)
        except OSError:
            # Opening, reserving or writing failed: the segment stays open, so a disk that refuses every
            # reservation costs one failed call per request, not a new file.
            self._frames.append(None)
            return False
        if written != size:
            # A short write leaves a torn frame: nothing may follow it in this segment, so the next starts anew.
            self._seal()
            self._frames.append(None)
            return False
        self._position += size
        self._frames.append(self._segment)
        self._unresolved[self._segment] += 1
        return True

    def resolved(self, count: int) -> list[Path]:
        """The oldest `count` frames are on the spool or dropped. Returns the segments that are now deletable."""
        for _ in range(min(count, len(self._frames))):
            segment = self._frames.popleft()
            if segment is not None:  # None: a batch whose entry could not be stored
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
        """Disk space the segments this process wrote and has not deleted yet reserve."""
        return self._total

    def close(self) -> None:
        self._seal()

    def _reserve(self, size: int) -> bool:
        """Room for the next frame (`size` bytes), opening a new segment when the open one is past SEGMENT_BYTES;
        False when the bound leaves no room. Raises OSError when the disk refuses."""
        if self._fd is None or self._position >= SEGMENT_BYTES:
            self._seal()
            self._open_next()
        reserved = self._bytes[self._segment]
        grow = max(self._window_bytes, -(-(self._position + size - reserved) // _PAGE) * _PAGE)
        if self._total + grow > self.max_bytes:
            return False
        try:
            os.posix_fallocate(self._fd, reserved, grow)
        except OSError:
            # ext4 keeps what a refused fallocate did allocate: give it back, the bound does not count it.
            os.ftruncate(self._fd, reserved)
            raise
        self._bytes[self._segment] += grow
        self._total += grow
        return True

    def _open_next(self) -> None:
        segment, self._next = self._next, self._next + 1  # a number a failed open used is not tried again
        self._fd = os.open(
            self.directory / f"{segment:012d}{SUFFIX}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600
        )
        self._segment = segment
        self._position = 0
        self._unresolved[segment] += 0
        self._bytes[segment] += 0

    def _seal(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._bytes[self._segment] > self._position:
                # The reserved, unused end goes back to the volume (the spool's files share it) and to the bound.
                os.ftruncate(fd, self._position)
                self._total -= self._bytes[self._segment] - self._position
                self._bytes[self._segment] = self._position
        except OSError:
            pass  # kept reserved and counted until the segment is deleted
        finally:
            os.close(fd)

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
