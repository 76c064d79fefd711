"""Where a lake file is encoded: in the sink's batcher thread, or in a child process (`--sink_encoder`).

Encoding a 5,000-record file (table, Parquet, zstd, fsync) is ~10 ms of CPU, much of it in pyarrow, which lets go
of the GIL and takes it back many times a file. In a thread of the server each hand-off makes the event loop wait:
at in-process batch load the lake cost the event loop 20–30 % of its requests/s (docs/performance.md, sixth pass).
In a child process the same work shares no GIL; the batcher thread only packs the batches (~0.4 ms a file,
transformer/sink/transport.py) and waits on a socket.

The child only encodes: it writes a complete temp file into the spool folder and answers its name, size and CRC;
the sink commits it (byte budget, rename, upload queue), so the spool keeps one owner. If the child dies, stalls or
cannot start, the batches it was given are still in the sink's hands: they are encoded in the thread instead, and a
new child is started for a later file. An encoder failure never costs a record.

    python -m transformer.sink.encoder <fd>   # the child; spoken to over the inherited socket <fd>
"""

from __future__ import annotations

import logging
import os
import pickle
import socket

# subprocess runs this module with our own interpreter and an argument list (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from .records import ENCODERS
from .spool import EncodedFile, encode_file
from .throttle import ThrottledLog
from .transport import pack, unpack

log = logging.getLogger(__name__)

# A file is encoded in ~10 ms; a child that has not answered in this long is stuck (or starved) and is replaced.
ANSWER_TIMEOUT_SECONDS = 60.0
# After a child failed, files are encoded in the thread for this long before a new child is tried, so a child that
# cannot live (no memory for it, say) does not cost a start per file.
RESTART_AFTER_SECONDS = 30.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class BuildFailed(Exception):
    """The batches cannot become a table (a malformed request): the sink looks for the culprit, the rest is kept."""


class ThreadEncoder:
    """Encodes in the calling thread."""

    def __init__(self, table, directory: Path, compression: str) -> None:
        self.table = table
        self.directory = Path(directory)
        self.compression = compression

    def start(self) -> None:
        """Loads pyarrow (the table's schema) now, while the server starts, rather than in the batcher thread while
        the first file's requests are served. The process encoder's fallback never starts: its server loads
        pyarrow only if the child fails."""
        _ = self.table.schema

    def encode(self, batches: Sequence) -> EncodedFile:
        return _encode(self.table, self.directory, self.compression, batches)

    def close(self) -> None:
        return None


class ProcessEncoder:
    """Encodes in one long-lived child process; the thread is the fallback."""

    def __init__(
        self, table, directory: Path, compression: str, timeout: float = ANSWER_TIMEOUT_SECONDS
    ) -> None:
        self.fallback = ThreadEncoder(table, directory, compression)
        self.timeout = timeout
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._not_before = 0.0  # monotonic: no new child before this
        self._closed = False
        self._log = ThrottledLog(log)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child now (the sink's start): its imports (~0.5 s of CPU) then run while the server starts, not
        when the first file is due. Without it, the first file starts the child."""
        if self._connection is None and not self._closed and time.monotonic() >= self._not_before:
            try:
                self._start()
            except Exception as error:  # noqa: BLE001 - no child (fork refused, …): the thread encodes
                self._failed(f"cannot start: {error!r}")

    def encode(self, batches: Sequence) -> EncodedFile:
        self.start()
        connection = self._connection
        if connection is None:
            return self.fallback.encode(batches)
        try:
            frames = pack(batches)
        except Exception:  # noqa: BLE001 - a batch the packer cannot take: the thread encoder says what is wrong
            return self.fallback.encode(batches)
        try:
            connection.send_bytes(len(frames).to_bytes(4, "little"))
            for frame in frames:
                connection.send_bytes(frame)
            if not connection.poll(self.timeout):
                raise TimeoutError(f"no answer in {self.timeout:g} s")
            answer = connection.recv()
        except (OSError, EOFError, TimeoutError, pickle.PickleError) as error:
            self._failed(f"{error!r}")
            return self.fallback.encode(batches)
        return _answer_to_result(answer)

    def close(self) -> None:
        """Ends the child (it exits when its socket closes); later files are encoded in the thread."""
        self._closed = True
        self._stop()

    def _stop(self) -> None:
        connection, process = self._connection, self._process
        self._connection = self._process = None
        if connection is not None:
            connection.close()
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        # The child must find this package however the parent found it (installed, or run from a checkout).
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_PROJECT_ROOT), path) if p)}
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module  # nosec B603
                [sys.executable, "-m", "transformer.sink.encoder", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                # Its own process group: a Ctrl-C in a terminal, or a signal to the server's group, must not end
                # the child while the server still flushes through it. It ends when the server closes the socket.
                process_group=0,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self._connection.send((self.fallback.table, str(self.fallback.directory), self.fallback.compression))

    def _failed(self, why: str) -> None:
        self._log.warning(
            "sink encoder process failed (%s): encoding in the batcher thread, a new process in %g s",
            why,
            RESTART_AFTER_SECONDS,
        )
        if self._process is not None:
            self._process.kill()  # stuck or half-dead: it gets no second chance to answer
        self._stop()
        self._not_before = time.monotonic() + RESTART_AFTER_SECONDS


def _encode(table, directory: Path, compression: str, batches: Sequence) -> EncodedFile:
    try:
        built = table.build(batches)
    except Exception as error:  # noqa: BLE001 - whatever the batches made pyarrow raise
        raise BuildFailed(repr(error)) from error
    return encode_file(built, directory, compression)


def _result_to_answer(table, directory: Path, compression: str, frames: Sequence[bytes]) -> tuple:
    """The child's answer: plain values only, so the parent never unpickles an exception class."""
    try:
        encoded = _encode(table, directory, compression, unpack(frames))
    except BuildFailed as error:
        return ("build_failed", str(error))
    except OSError as error:
        if error.errno is None:
            return ("os_error", None, str(error), None)
        return ("os_error", error.errno, error.strerror, error.filename)
    except Exception as error:  # noqa: BLE001 - reported, the parent counts the records as dropped
        return ("error", f"{type(error).__name__}: {error}")
    return ("encoded", str(encoded.temp), encoded.size, encoded.crc32, encoded.records)


def _answer_to_result(answer: tuple) -> EncodedFile:
    kind, *values = answer
    if kind == "encoded":
        temp, size, crc32, records = values
        return EncodedFile(Path(temp), size, crc32, records)
    if kind == "build_failed":
        raise BuildFailed(values[0])
    if kind == "os_error":
        code, message, filename = values
        raise OSError(code, message, filename) if code is not None else OSError(message)
    raise RuntimeError(values[0])


def encoder_for(mode: str, table, directory: Path, compression: str) -> ThreadEncoder | ProcessEncoder:
    if mode == "thread":
        return ThreadEncoder(table, directory, compression)
    if mode == "process":
        return ProcessEncoder(table, directory, compression)
    raise ValueError(f"sink encoder must be one of {', '.join(ENCODERS)}, got {mode!r}")


def main(argv: list[str]) -> int:
    connection = Connection(int(argv[0]))
    try:
        table, directory, compression = connection.recv()
        while True:
            count = int.from_bytes(connection.recv_bytes(), "little")
            frames = [connection.recv_bytes() for _ in range(count)]
            connection.send(_result_to_answer(table, Path(directory), compression, frames))
    except (EOFError, OSError):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
