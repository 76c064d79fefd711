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
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from .child import ChildFailed, ChildProcess, answered_error, error_answer, serve
from .records import ENCODERS
from .spool import EncodedFile, encode_file
from .transport import pack, unpack

log = logging.getLogger(__name__)

# A file is encoded in ~10 ms; a child that has not answered in this long is stuck (or starved) and is replaced.
ANSWER_TIMEOUT_SECONDS = 60.0
# After a child failed, files are encoded in the thread for this long before a new child is tried, so a child that
# cannot live (no memory for it, say) does not cost a start per file.
RESTART_AFTER_SECONDS = 30.0


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
    """Encodes in one long-lived child process (child.py); the thread is the fallback."""

    def __init__(
        self, table, directory: Path, compression: str, timeout: float = ANSWER_TIMEOUT_SECONDS
    ) -> None:
        self.fallback = ThreadEncoder(table, directory, compression)
        self.timeout = timeout
        self.child = ChildProcess(
            "transformer.sink.encoder",
            hello=(table, str(directory), compression),
            name="sink encoder process",
            instead="encoding in the batcher thread",
            log=log,
            timeout=timeout,
            restart_after=RESTART_AFTER_SECONDS,
        )

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def start(self) -> None:
        """Start the child now (the sink's start): its imports (~0.5 s of CPU) then run while the server starts, not
        when the first file is due. Without it, the first file starts the child."""
        self.child.start()

    def encode(self, batches: Sequence) -> EncodedFile:
        if not self.child.start():
            return self.fallback.encode(batches)
        try:
            frames = pack(batches)
        except Exception:  # noqa: BLE001 - a batch the packer cannot take: the thread encoder says what is wrong
            return self.fallback.encode(batches)

        def send(connection) -> None:
            connection.send_bytes(len(frames).to_bytes(4, "little"))
            for frame in frames:
                connection.send_bytes(frame)

        try:
            answer = self.child.ask(send, self.timeout)
        except ChildFailed:
            return self.fallback.encode(batches)
        return _answer_to_result(answer)

    def close(self) -> None:
        """Ends the child; later files are encoded in the thread."""
        self.child.close()


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
    except Exception as error:  # noqa: BLE001 - reported, the parent counts the records as dropped
        return error_answer(error)
    return ("encoded", str(encoded.temp), encoded.size, encoded.crc32, encoded.records)


def _answer_to_result(answer: tuple) -> EncodedFile:
    kind, *values = answer
    if kind == "encoded":
        temp, size, crc32, records = values
        return EncodedFile(Path(temp), size, crc32, records)
    if kind == "build_failed":
        raise BuildFailed(values[0])
    raise answered_error(answer)


def encoder_for(mode: str, table, directory: Path, compression: str) -> ThreadEncoder | ProcessEncoder:
    if mode == "thread":
        return ThreadEncoder(table, directory, compression)
    if mode == "process":
        return ProcessEncoder(table, directory, compression)
    raise ValueError(f"sink encoder must be one of {', '.join(ENCODERS)}, got {mode!r}")


def _receive_frames(connection: Connection) -> list[bytes]:
    count = int.from_bytes(connection.recv_bytes(), "little")
    return [connection.recv_bytes() for _ in range(count)]


def main(argv: list[str]) -> int:
    connection = Connection(int(argv[0]))
    try:
        table, directory, compression = connection.recv()
    except (EOFError, OSError):
        return 0
    return serve(
        connection,
        lambda frames: _result_to_answer(table, Path(directory), compression, frames),
        _receive_frames,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
