"""A write-ahead journal of submitted batches, so an answered request survives its process being killed.

Between a request's answer and its records reaching the spool (up to --sink_flush_seconds), the records live only in
the sink's memory. Each accepted batch is therefore also copied into `<spool>/journal/<n>.wal` before the answer goes
out. The file is memory-mapped (MAP_SHARED): the copy lands in the kernel's page cache, which outlives the process,
so a SIGKILL, an OOM kill or a crash of the transformer loses nothing. (A node crash can: there is no fsync per
request.) A segment is deleted once every batch in it has been spooled or counted as dropped; the next start replays
what is left.

Why a mapping rather than one write() per entry: the copy costs no system call, and a write() also updated the
file's size and times per request, which in the server cost several times what it costs in a tight loop. The disk
blocks a window will use are reserved (posix_fallocate) before it is mapped, so a full disk fails that reservation,
which is an ordinary error (the batch stays in memory only), never a SIGBUS in a store into an unbacked page. Only a
window (128 KiB) is mapped and reserved at a time, and a sealed segment is truncated to what it holds: the journal
takes little more disk than it stores, so it does not crowd the spool's files on a small volume.

Frame: `<u32 length><u32 crc32>` then the payload the table encoded; the payload is stored first and its header last,
so a kill between the two leaves a zero header. Reading stops at a zero header (the segment's unused, zero-filled
end) or at the first frame that is short or fails its checksum (what a kill mid-copy left); every frame before it
is good.
"""

from __future__ import annotations

import collections
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
SUFFIX = ".wal"
_HEADER = struct.Struct("<II")
_PAGE = mmap.ALLOCATIONGRANULARITY  # a mapping starts on a multiple of this
WINDOW_BYTES = 128 << 10  # mapped, and reserved on disk, this much at a time
# A new segment once a window would start past this, so a long-lived one is not kept whole.
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
        self._map: mmap.mmap | None = None
        self._map_start = 0  # file offset of the mapped window
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
        """One frame, copied into the mapped segment. False when it could not be stored (no segment could be opened,
        the disk refused the reservation, the journal is at its bound, or the payload is empty): the batch then
        lives in memory only. Never raises: a journal that fails must not fail the request it protects. Either way
        the batch takes its place in the resolution order, so later batches still resolve their own frames."""
        size = _HEADER.size + len(payload)
        if not payload:  # its zero header would read as the segment's end and hide every later frame
            self._frames.append(None)
            return False
        try:
            mapped = self._map
            at = self._position - self._map_start
            if mapped is None or at + size > len(mapped):
                mapped = self._map_window(size)
                if mapped is None:
                    self._frames.append(None)
                    return False
                at = self._position - self._map_start
            mapped[at + _HEADER.size : at + size] = payload
            # The header last: until it is stored, a reader sees no frame here.
            _HEADER.pack_into(mapped, at, len(payload), zlib.crc32(payload))
        except OSError:
            # Opening, reserving or mapping failed: nothing was copied. The segment stays open, so a disk that
            # refuses every reservation costs one failed call per request, not a new file.
            self._frames.append(None)
            return False
        except ValueError:
            self._seal()  # whatever a failed copy left behind ends this segment; the next append opens another
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

    def _map_window(self, size: int) -> mmap.mmap | None:
        """Map the window the next frame (`size` bytes) goes into, opening a new segment when the open one is past
        SEGMENT_BYTES; None when the bound leaves no room. Raises OSError when the disk refuses."""
        self._unmap()
        if self._fd is None or self._position >= SEGMENT_BYTES:
            self._seal()
            self._open_next()
        start = self._position // _PAGE * _PAGE
        length = max(self._window_bytes, -(-(self._position - start + size) // _PAGE) * _PAGE)
        reserved = self._bytes[self._segment]
        grow = max(0, start + length - reserved)
        if self._total + grow > self.max_bytes:
            return None
        if grow:
            try:
                os.posix_fallocate(self._fd, reserved, grow)  # ENOSPC here, not a SIGBUS in a store later
            except OSError:
                # ext4 keeps what a refused fallocate did allocate: give it back, the bound does not count it.
                os.ftruncate(self._fd, reserved)
                raise
            self._bytes[self._segment] += grow
            self._total += grow
        self._map = mmap.mmap(self._fd, length, offset=start)
        self._map_start = start
        return self._map

    def _open_next(self) -> None:
        segment, self._next = self._next, self._next + 1  # a number a failed open used is not tried again
        self._fd = os.open(
            self.directory / f"{segment:012d}{SUFFIX}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600
        )
        self._segment = segment
        self._position = 0
        self._unresolved[segment] += 0
        self._bytes[segment] += 0

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()  # the pages stay in the page cache, dirty: nothing is lost by unmapping
        self._map = None

    def _seal(self) -> None:
        self._unmap()
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
