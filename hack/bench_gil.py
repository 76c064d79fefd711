"""What a background thread costs the request path's Python work, by kind of background work (issue 17, sixth pass).

    python -m hack.bench_gil [--rounds 5] [--seconds 3] [--period 0.05] [--s3]

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
in every case; what differs is whose GIL boto3's Python holds.

Not a test; numbers depend on the machine. Exit 0 always (it asserts nothing about speed).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import select
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from contract.features import FEATURE_NAMES
from contract.validation import validate_matrix
from hack.bench_peers.moto_s3 import S3_ENV, s3_client, s3_server
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


_S3_BUCKET = "bench-lake"


class S3Put:
    """One lake file's upload, as the sink's uploader does it (`S3Writer.put`), each time under a new key."""

    def __init__(self, endpoint: str, lake_file: str) -> None:
        from transformer.sink.s3 import S3Writer

        # A fresh prefix each time: a key stored in an earlier round would be refused (412), a cheaper request.
        self.writer = S3Writer(_S3_BUCKET, f"bench/{uuid.uuid4().hex}", client=s3_client(endpoint))
        self.path = Path(lake_file)
        self.puts = 0

    def __call__(self) -> None:
        self.puts += 1
        self.writer.put(f"{self.puts}.parquet", self.path)


class S3PutViaUploadProcess(S3Put):
    """The same upload through the sink's upload child, as the uploader thread makes it with `--sink_uploader
    process`."""

    def __init__(self, endpoint: str, lake_file: str) -> None:
        from transformer.sink.writer_process import ProcessWriter

        self.writer = ProcessWriter(f"s3://{_S3_BUCKET}/bench/{uuid.uuid4().hex}", s3_endpoint_url=endpoint)
        self.path = Path(lake_file)
        self.puts = 0
        # The child inherits the environment, as it does in a pod: moto's credentials, for the time it starts.
        saved = {name: os.environ.get(name) for name in S3_ENV}
        os.environ.update(S3_ENV)
        try:
            self()  # the child starts (imports boto3) now, outside the measured window
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _s3_put_via_upload_process(endpoint: str, lake_file: str, body: bytes, seconds: float, period: float):
    put = S3PutViaUploadProcess(endpoint, lake_file)
    try:
        return _with_thread(put, body, seconds, period)
    finally:
        put.writer.close()


def _s3_put_in_child(endpoint: str, lake_file: str, stop, period: float, done) -> None:
    _repeat(S3Put(endpoint, lake_file), stop, period, done)


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
        return _foreground(body, seconds), done.value / seconds
    finally:
        stop.set()
        worker.join()


def _with_child(
    target: Callable, args: tuple, body: bytes, seconds: float, period: float
) -> tuple[float, float]:
    """`target(*args, stop, period, done)` repeats its task in a child process while the foreground runs."""
    context = multiprocessing.get_context("spawn")
    stop, done = context.Event(), context.Value("l", 0)
    child = context.Process(target=target, args=(*args, stop, period, done), daemon=True)
    child.start()
    time.sleep(1.0)  # past the child's imports, which would otherwise be measured
    try:
        before = done.value
        return _foreground(body, seconds), (done.value - before) / seconds
    finally:
        stop.set()
        child.join(10)


def run(rounds: int, seconds: float, period: float, s3: bool = False) -> dict[str, dict[str, list[float]]]:
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
        if s3:
            endpoint = stack.enter_context(s3_server(_S3_BUCKET))
            # A real lake file, encoded as the sink encodes it, kept for every upload.
            lake_file = lake.encoder.encode(lake.batches).temp
            variants["s3-put"] = lambda: _with_thread(S3Put(endpoint, str(lake_file)), body, seconds, period)
            variants["s3-put in a child process"] = lambda: _with_child(
                _s3_put_in_child, (endpoint, str(lake_file)), body, seconds, period
            )
            variants["s3-put via the upload process"] = lambda: _s3_put_via_upload_process(
                endpoint, str(lake_file), body, seconds, period
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
    args = parser.parse_args(argv)
    results = run(args.rounds, args.seconds, args.period, args.s3)
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
