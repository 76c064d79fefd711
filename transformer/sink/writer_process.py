"""A Writer whose puts run in a child process (`--sink_uploader process`).

An upload is GIL-heavy Python in the storage SDK (botocore signs, checksums and streams a file in ~1.6–2.2 ms of
CPU), and in the server's uploader thread the event loop pays for every hand-off: with a lake file put to S3 twenty
times a second the event loop kept 83 % of its requests/s, with the same puts made by a child 99 %
(`hack/bench_gil.py --s3`, docs/performance.md, ninth pass). The child also keeps boto3 or the Azure SDK (~25–40 MB
of RSS) out of the server.

The child builds the real writer (writers.writer_for_uri) from the lake URI, the endpoint and the connection string
the server was given; credentials it finds as the server would have (it inherits the environment: IRSA, EKS Pod
Identity, workload identity, AWS_*). Each put is answered with a plain value, and the sink's delivery is unchanged:
a put that failed in the child raises here as it would have in the thread, and the file is retried.

If the child dies, stalls or cannot start, puts are made by a writer in the server (built when first needed) until a
new child is tried. A put whose answer never came may have stored the object; its retry is safe, because a writer
never replaces an object (writers.py).

    python -m transformer.sink.writer_process <fd>   # the child; spoken to over the inherited socket <fd>
"""

from __future__ import annotations

import logging
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from .child import ChildFailed, ChildProcess, answered_error, error_answer, serve
from .locations import lake_location
from .writers import Writer, writer_for_uri

log = logging.getLogger(__name__)

# The SDKs give up on a put well within this (S3: 5 s connect + 30 s read, two attempts; Blob: alike): a child
# silent for longer is stuck and is replaced.
ANSWER_TIMEOUT_SECONDS = 120.0
# After a child failed, the server's own writer makes the puts for this long before a new child is tried.
RESTART_AFTER_SECONDS = 30.0


class ProcessWriter:
    def __init__(
        self,
        uri: str,
        *,
        s3_endpoint_url: str | None = None,
        azure_connection_string: str | None = None,
        timeout: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        # A URI no writer accepts stops the server now, as the in-server writer would have, without the SDKs.
        lake_location(uri, azure_connection_string=azure_connection_string)
        self._where = dict(
            uri=uri, s3_endpoint_url=s3_endpoint_url, azure_connection_string=azure_connection_string
        )
        self.timeout = timeout
        # Started by the first put, not with the server: its imports (boto3 ~0.3 s of CPU) stay off the cold start.
        self.child = ChildProcess(
            "transformer.sink.writer_process",
            hello=self._where,
            name="sink upload process",
            instead="uploading from the server",
            log=log,
            timeout=timeout,
            restart_after=RESTART_AFTER_SECONDS,
        )
        self._fallback: Writer | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def put(self, key: str, local_path: Path) -> bool:
        request = (key, str(local_path))
        try:
            answer = self.child.ask(lambda connection: connection.send(request), self.timeout)
        except ChildFailed:
            return self.fallback().put(key, local_path)
        if answer[0] != "stored":
            raise answered_error(answer)
        return bool(answer[1])

    def fallback(self) -> Writer:
        if self._fallback is None:
            self._fallback = writer_for_uri(**self._where)
        return self._fallback

    def close(self) -> None:
        """Ends the child (a put still in flight after a second is cut short: its file stays on the spool)."""
        self.child.close()


def _put(writer_of, request: tuple[str, str]) -> tuple:
    key, path = request
    try:
        fresh = writer_of().put(key, Path(path))
    except Exception as error:  # noqa: BLE001 - the server retries; it sees the error's type and message
        return error_answer(error)
    return ("stored", fresh)


def main(argv: list[str]) -> int:
    connection = Connection(int(argv[0]))
    try:
        where = connection.recv()
    except (EOFError, OSError):
        return 0
    writer: list[Writer] = []

    def writer_of() -> Writer:
        # Built on the first put and again after a failed build (credentials that appear later, say): its error
        # is that put's answer.
        if not writer:
            writer.append(writer_for_uri(**where))
        return writer[0]

    return serve(connection, lambda request: _put(writer_of, request), lambda c: c.recv())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
