"""What a background thread costs the request path's Python work, by kind of background work (issue 17, sixth pass).

    python -m hack.bench_gil [--rounds 5] [--seconds 3] [--period 0.05] [--s3] [--azure]

The foreground does what the event loop does for a 100-lead V2 request, minus the network: an epoll poll, orjson
parse, the body → matrix decode, validation, an orjson answer. It runs alone, then with one background worker that
repeats a task every `--period` seconds (0.05: a 5,000-lead lake file every 50 ms, i.e. 100,000 leads/s), and
reports the foreground's requests/s as a share of the alone run of the same round, with how often the background
task really ran (a task starved of the GIL runs less often than asked). Background tasks:

  python       1 ms of pure Python (holds the GIL, few switches)
  numpy-small  100 numpy calls on 5,000 floats (~0.1 ms of CPU, up to 100 GIL releases)
  lake-file    the data lake's batcher work for one file: ScoresTable.build of 50 requests × 100 leads with
               features, then the Parquet encode (zstd, fsync) and the spool commit (rename)
  lake-file via the encoder process: what the batcher thread does with `--sink_encoder process` — pack the
               requests, hand them to the sink's encoder child, wait, commit — with the encoding in the child
  lake-file in a child process: the whole work, in another process (no shared GIL)

With `--s3` (a moto S3 server on loopback, in its own process), three more: the uploader's work for one lake file,
`S3Writer.put` through boto3, in a thread of this process ("s3-put"), in a child process ("s3-put in a child
process"), and what the uploader thread does with `--sink_uploader process` ("s3-put via the upload process": hand
the key to the sink's upload child, transformer/sink/writer_process.py, and wait for its answer). The CPU is spent
in every case; what differs is whose GIL boto3's Python holds. `--azure` does the same with `AzureBlobWriter.put`
through azure-storage-blob against azurite (hack/azurite.py): "blob-put", and so on.

Not a test; numbers depend on the machine. Exit 0 always (it asserts nothing about speed).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import select
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from contract.features import FEATURE_NAMES
from contract.validation import validate_matrix
from hack.azurite import azurite_container
from hack.bench_peers.moto_s3 import S3_ENV, s3_server
from hack.bench_peers.workload import lead_matrix
from transformer.codec import decode_v2
from transformer.sink import ScoredBatch, SinkConfig
from transformer.sink.encoder import encoder_for
from transformer.sink.spool import Spool
from transformer.sink.tables import ScoresTable
from transformer.v2_request import parse_json

LEADS = 100
REQUESTS_PER_FILE = 50


def _matrix() -> np.ndarray:
    """Valid leads from the synthetic population, gaps filled as the bench's tensor bodies fill them."""
    return lead_matrix(LEADS)


def _body(matrix: np.ndarray) -> bytes:
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": list(matrix.shape),
                    "data": matrix.astype(np.float64).reshape(-1).tolist(),
                }
            ]
        }
    )


def _request_work(body: bytes) -> None:
    leads = decode_v2(parse_json(orjson.loads(body)).inputs, max_leads=1000)
    validate_matrix(leads.matrix, 20)
    orjson.dumps({"score": leads.matrix[:, 0].tolist(), "lead_id": leads.lead_ids})


class LakeFile:
    """One lake file's worth of the batcher's work, through the sink's own table, encoder and spool."""

    def __init__(self, spool_dir: Path, encoder: str = "thread") -> None:
        config = SinkConfig(uri="file:///unused", spool_dir=spool_dir, feature_names=tuple(FEATURE_NAMES))
        self.table = ScoresTable(config)
        self.spool = Spool(spool_dir, max_bytes=1 << 40)
        self.encoder = encoder_for(encoder, self.table, spool_dir, config.compression)
        self.encoder.start()
        matrix = _matrix()
        self.batches = [
            ScoredBatch(
                request_id=f"r{i}",
                scored_at=datetime.now(UTC),
                model_name="lead-scoring",
                model_version="bench",
                api_key_name="bench",
                protocol="rest",
                request_form="v2_tensor",
                latency_ms=1.0,
                lead_ids=[str(j) for j in range(LEADS)],
                scores=matrix[:, 0].copy(),
                buckets=np.ones(LEADS, dtype=np.int8),
                tiers=["E"] * LEADS,
                features=matrix.copy(),  # one array per request, as the server's requests have
            )
            for i in range(REQUESTS_PER_FILE)
        ]
        self.files = 0

    def __call__(self) -> None:
        self.files += 1
        entry = self.spool.commit(
            f"bench/{self.files}.parquet", self.encoder.encode(self.batches), time.time()
        )
        self.spool.remove(entry)

    def close(self) -> None:
        self.encoder.close()


def _python_ms() -> None:
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass


_FLOATS = np.random.default_rng(5).random(5000)


def _numpy_small() -> None:
    for _ in range(100):
        np.isnan(_FLOATS)


def _repeat(task: Callable[[], None], stop, period: float, done) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        task()
        with done.get_lock():
            done.value += 1
        stop.wait(max(0.0, period - (time.perf_counter() - started)))


def _lake_in_child(spool_dir: str, stop, period: float, done) -> None:
    _repeat(LakeFile(Path(spool_dir)), stop, period, done)


_BUCKET = "bench-lake"


class StorePut:
    """One lake file's upload as the sink's uploader thread makes it: `put` on the lake's writer, built from the
    URI as the server builds it (`writer_for_uri`), or with `--sink_uploader process`, the `ProcessWriter` that
    hands the put to the sink's upload child and waits for its answer. A new key each time."""

    def __init__(self, where: dict, lake_file: str, uploader: str = "thread") -> None:
        from transformer.sink.writer_process import ProcessWriter
        from transformer.sink.writers import writer_for_uri

        # A fresh prefix each time: a key stored in an earlier round would be refused (412), a cheaper request.
        where = {**where, "uri": f"{where['uri']}/{uuid.uuid4().hex}"}
        self.writer = ProcessWriter(**where) if uploader == "process" else writer_for_uri(**where)
        self.path = Path(lake_file)
        self.puts = 0
        if uploader == "process":
            self()  # the child starts (imports the SDK) now, outside the measured window

    def __call__(self) -> None:
        self.puts += 1
        self.writer.put(f"{self.puts}.parquet", self.path)

    def close(self) -> None:
        close = getattr(self.writer, "close", None)
        if close is not None:
            close()


def _put_in_thread(where: dict, lake_file: str, uploader: str, body: bytes, seconds: float, period: float):
    put = StorePut(where, lake_file, uploader)
    try:
        return _with_thread(put, body, seconds, period)
    finally:
        put.close()


def _put_in_child(where: dict, lake_file: str, stop, period: float, done) -> None:
    _repeat(StorePut(where, lake_file), stop, period, done)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set for the bench and the children it spawns, as a pod's environment is for the server and its children."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _foreground(body: bytes, seconds: float) -> float:
    # Each request also polls, as an event loop turn does (epoll); like the loop's socket calls, the poll releases
    # the GIL, which is when a waiting background thread takes it.
    poller, done, end = select.epoll(), 0, time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            poller.poll(0)
            _request_work(body)
            done += 1
    finally:
        poller.close()
    return done / seconds


def _with_thread(task: Callable[[], None], body: bytes, seconds: float, period: float) -> tuple[float, float]:
    """(foreground requests/s, background tasks/s) over the same window."""
    stop, done = threading.Event(), multiprocessing.Value("l", 0)
    worker = threading.Thread(target=_repeat, args=(task, stop, period, done), daemon=True)
    worker.start()
    try:
        _first_task_done(done, worker.is_alive, "thread")
        before = done.value
        return _foreground(body, seconds), (done.value - before) / seconds
    finally:
        stop.set()
        worker.join()


def _first_task_done(done, alive: Callable[[], bool], what: str) -> None:
    """Wait until the background task has run once, so that the window measures its steady state: a first task
    can take longer than the window (a child's imports, an SDK client built, the encoder child still starting on a
    busy machine), and the window would then see no task at all."""
    deadline = time.monotonic() + 60
    while done.value == 0:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the background {what} did not finish its first task")
        time.sleep(0.02)


def _with_child(
    target: Callable, args: tuple, body: bytes, seconds: float, period: float
) -> tuple[float, float]:
    """`target(*args, stop, period, done)` repeats its task in a child process while the foreground runs."""
    context = multiprocessing.get_context("spawn")
    stop, done = context.Event(), context.Value("l", 0)
    child = context.Process(target=target, args=(*args, stop, period, done), daemon=True)
    child.start()
    try:
        _first_task_done(done, child.is_alive, "child process")
        before = done.value
        return _foreground(body, seconds), (done.value - before) / seconds
    finally:
        stop.set()
        child.join(10)


def run(
    rounds: int, seconds: float, period: float, s3: bool = False, azure: bool = False
) -> dict[str, dict[str, list[float]]]:
    """Per variant and round: the foreground's share of its alone rate in the same round ("share"), and how many
    background tasks a second ran meanwhile ("tasks_per_second": a task starved of the GIL runs less often than
    `period` asks, which makes its cost look smaller)."""
    body = _body(_matrix())
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gil-") as tmp, contextlib.ExitStack() as stack:
        lake = LakeFile(Path(tmp) / "thread")
        via_encoder = LakeFile(Path(tmp) / "encoder", encoder="process")
        variants: dict[str, Callable[[], tuple[float, float]]] = {
            "python": lambda: _with_thread(_python_ms, body, seconds, period),
            "numpy-small": lambda: _with_thread(_numpy_small, body, seconds, period),
            "lake-file": lambda: _with_thread(lake, body, seconds, period),
            "lake-file via the encoder process": lambda: _with_thread(via_encoder, body, seconds, period),
            "lake-file in a child process": lambda: _with_child(
                _lake_in_child, (str(Path(tmp) / "child"),), body, seconds, period
            ),
        }
        stores: dict[str, dict] = {}
        if s3:
            stack.enter_context(_environment(S3_ENV))
            stores["s3-put"] = {
                "uri": f"s3://{_BUCKET}/bench",
                "s3_endpoint_url": stack.enter_context(s3_server(_BUCKET)),
            }
        if azure:
            azurite = stack.enter_context(azurite_container(Path(tmp) / "azurite", _BUCKET))
            stores["blob-put"] = {
                "uri": azurite.url(_BUCKET, "bench"),
                "azure_connection_string": azurite.connection_string,
            }
        if stores:
            # A real lake file, encoded as the sink encodes it, kept for every upload.
            lake_file = str(lake.encoder.encode(lake.batches).temp)
        for name, where in stores.items():
            variants[name] = functools.partial(
                _put_in_thread, where, lake_file, "thread", body, seconds, period
            )
            variants[f"{name} in a child process"] = functools.partial(
                _with_child, _put_in_child, (where, lake_file), body, seconds, period
            )
            variants[f"{name} via the upload process"] = functools.partial(
                _put_in_thread, where, lake_file, "process", body, seconds, period
            )
        try:
            for _ in range(rounds):
                for name, measure in variants.items():
                    alone = _foreground(body, seconds)
                    rate, tasks = measure()
                    result = results.setdefault(name, {"share": [], "tasks_per_second": []})
                    result["share"].append(rate / alone)
                    result["tasks_per_second"].append(tasks)
        finally:
            via_encoder.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.bench_gil", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--period", type=float, default=0.05, help="seconds between background tasks")
    parser.add_argument("--s3", action="store_true", help="also an S3 upload per task (moto on loopback)")
    parser.add_argument(
        "--azure", action="store_true", help="also a Blob upload per task (azurite on loopback)"
    )
    args = parser.parse_args(argv)
    results = run(args.rounds, args.seconds, args.period, args.s3, args.azure)
    print(
        f"\nforeground req/s with the background task, as % of alone in the same round; asked: a task every "
        f"{args.period:g} s ({1 / args.period:g}/s)\n"
    )
    print("| background task | foreground, median | min–max | background tasks/s achieved, median |")
    print("|---|--:|--:|--:|")
    for name, result in results.items():
        share = result["share"]
        print(
            f"| {name} | {100 * statistics.median(share):.0f} % | {100 * min(share):.0f}–{100 * max(share):.0f} % "
            f"| {statistics.median(result['tasks_per_second']):.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
