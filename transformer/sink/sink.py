"""ScoreSink: the transformer's non-blocking door to the data lake.

    submit() ──deque──► batcher thread ──Parquet──► spool dir ──► uploader thread ──► Writer (file | S3 | Blob)

submit() is O(1) and never waits on I/O: it counts, appends to a deque and returns. Memory is bounded by
queue_max_records (records in memory, queued or buffered), the disk by spool_max_bytes; beyond either bound
records are dropped visibly (counter + throttled log), never by blocking the caller.
Delivery is at-least-once: a file leaves the spool only after the backend confirmed it; a crash between the
two re-uploads the same key, which the writers treat as already stored. Dedupe key: (request_id, row).
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import random
import threading
import time
from datetime import UTC, datetime

from . import sink_metrics as metrics
from .batcher import Batcher
from .layout import object_key
from .records import ScoredBatch, SinkConfig
from .schema import MICROS_PER_HOUR, build_table, epoch_micros, lake_schema
from .spool import Spool, SpoolFile, SpoolFull
from .throttle import ThrottledLog
from .writers import Writer, writer_for_uri

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class SpoolInUse(RuntimeError):
    """Another live sink owns this spool directory (give every replica its own, e.g. an emptyDir)."""


class ScoreSink:
    def __init__(self, config: SinkConfig, writer: Writer | None = None) -> None:
        self.config = config
        self.writer = writer or writer_for_uri(
            config.uri,
            s3_endpoint_url=config.s3_endpoint_url,
            azure_connection_string=config.azure_connection_string,
        )
        self.schema = lake_schema(config.feature_names, config.include_features)
        self._feature_width = len(self.schema) - len(lake_schema((), False))
        self.spool = Spool(config.spool_dir, config.spool_max_bytes, config.compression)
        self._lock_fd = self._lock_spool()
        self.spool.recover()

        self._queue: collections.deque[ScoredBatch] = collections.deque()
        self._in_memory = 0  # records queued or buffered, not yet on the spool
        self._count_lock = threading.Lock()
        self._batcher = Batcher(config.flush_records, config.flush_seconds)
        self._flush_lock = threading.Lock()  # one spooling pass at a time (batcher thread, flush(), close())

        self._tick = min(0.2, config.flush_seconds / 4)
        self._batch_wake = threading.Event()
        self._upload_wake = threading.Event()
        self._stop_batching = threading.Event()
        self._draining = False  # close() started: the uploader exits once the spool is empty
        self._halted = False  # grace period over: the uploader exits after the current attempt
        self._threads: list[threading.Thread] = []
        self._closed = False

        self._dropped_queue_full = metrics.DROPPED_RECORDS.labels(reason="queue_full")
        self._dropped_spool_full = metrics.DROPPED_RECORDS.labels(reason="spool_full")
        self._drop_log = ThrottledLog(log)
        self._upload_log = ThrottledLog(log)
        self._update_gauges()

    # ---- the scoring path -------------------------------------------------------------------------------------

    def submit(self, batch: ScoredBatch) -> bool:
        """Enqueue one scored request. Constant time, never blocks on I/O. False when dropped (memory bound).
        Raises ValueError for a malformed batch (a caller bug), without touching the queue."""
        n = len(batch.lead_ids)
        if not (len(batch.scores) == len(batch.buckets) == len(batch.tiers) == n):
            raise ValueError("lead_ids, scores, buckets and tiers must have the same length")
        if batch.features is not None and self._feature_width and batch.features.shape != (n, self._feature_width):
            raise ValueError(f"features must have shape ({n}, {self._feature_width}), got {batch.features.shape}")
        if batch.scored_at.tzinfo is None:
            raise ValueError("scored_at must be timezone-aware")
        if n == 0:
            return True
        with self._count_lock:
            # After close() nothing drains the queue any more: refuse visibly rather than hold records forever.
            if self._closed or self._in_memory + n > self.config.queue_max_records:
                dropped = True
            else:
                dropped = False
                self._in_memory += n
                depth = self._in_memory
        if dropped:
            self._dropped_queue_full.inc(n)
            self._drop_log.warning(
                "sink queue full (%d records in memory): dropped %d scored records of request %s",
                self.config.queue_max_records,
                n,
                batch.request_id,
            )
            return False
        self._queue.append(batch)
        if depth >= self.config.flush_records:
            self._batch_wake.set()
        return True

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batcher and uploader threads; files left on the spool by an earlier process go first."""
        if self._threads:
            return
        leftovers = self.spool.pending()
        if leftovers:
            log.info("sink: %d leftover spool files (%d bytes) to upload", len(leftovers), self.spool.bytes)
        for target, name in ((self._batch_loop, "sink-batcher"), (self._upload_loop, "sink-uploader")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def flush(self) -> None:
        """Write everything submitted so far to the spool. Blocks on disk I/O: not for the event loop."""
        self._spool_due(force=True)

    def close(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM path: spool what is in memory, upload within the grace period, stop the threads.
        Files not uploaded in time stay on the spool for the next start (at-least-once)."""
        if self._closed:
            return
        deadline = time.monotonic() + grace_seconds
        self._stop_batching.set()
        self._batch_wake.set()
        batcher, uploader = (self._threads + [None, None])[:2]
        if batcher is not None:
            batcher.join(max(0.0, deadline - time.monotonic()))
        self.flush()
        self._draining = True
        self._upload_wake.set()
        if uploader is not None:
            uploader.join(max(0.0, deadline - time.monotonic()))
            self._halted = True
            self._upload_wake.set()
            uploader.join(1.0)  # an attempt in flight keeps the daemon thread; we do not wait for it
        elif grace_seconds > 0:
            self._upload_pending(deadline)
        self._halted = True
        left = self.spool.pending()
        if left:
            log.warning("sink closed with %d files (%d bytes) still on the spool", len(left), self.spool.bytes)
        self._update_gauges()
        self._closed = True
        os.close(self._lock_fd)

    # ---- batching: queue -> spool ------------------------------------------------------------------------------

    def _batch_loop(self) -> None:
        while not self._stop_batching.is_set():
            self._batch_wake.wait(self._tick)
            self._batch_wake.clear()
            try:
                self._spool_due(force=False)
            except Exception:  # noqa: BLE001 - the thread must survive anything; records are counted as dropped
                log.exception("sink batcher failed")
            self._update_gauges()

    def _spool_due(self, force: bool) -> None:
        with self._flush_lock:
            now = time.monotonic()
            while True:
                try:
                    self._batcher.add(self._queue.popleft(), now)
                except IndexError:
                    break
            while self._batcher.due(now) or (force and self._batcher.records):
                self._spool_batches(self._batcher.take())
        self._update_gauges()

    def _spool_batches(self, batches: list[ScoredBatch]) -> None:
        groups: dict[tuple[str, int], list[ScoredBatch]] = {}
        for batch in batches:
            micros = epoch_micros(batch.scored_at)
            groups.setdefault((batch.model_name, micros // MICROS_PER_HOUR), []).append(batch)
        for (model_name, hour_index), group in groups.items():
            records = sum(len(b.lead_ids) for b in group)
            try:
                table = build_table(group, self.schema)
                oldest = group[0].scored_at.timestamp()
                self.spool.write(object_key(model_name, hour_index), table, oldest)
            except SpoolFull as full:
                self._drop_spooled(records, "spool full: %s", full)
            except Exception as error:  # noqa: BLE001 - e.g. disk error: the records cannot be kept
                self._drop_spooled(records, "cannot write to the spool: %r", error)
            finally:
                with self._count_lock:
                    self._in_memory -= records
        self._upload_wake.set()

    def _drop_spooled(self, records: int, reason: str, detail: object) -> None:
        self._dropped_spool_full.inc(records)
        self._drop_log.warning("sink dropped %d scored records, " + reason, records, detail)

    # ---- uploading: spool -> backend ---------------------------------------------------------------------------

    def _upload_loop(self) -> None:
        self._upload_pending(deadline=None)

    def _upload_pending(self, deadline: float | None) -> None:
        """Upload spool files oldest first, retrying each with capped exponential backoff until it is stored.
        With a deadline (close without threads) return when it passes; otherwise run until halted."""
        attempt = 0
        while not self._halted and (deadline is None or time.monotonic() < deadline):
            pending = self.spool.pending()
            if not pending:
                if self._draining or deadline is not None:
                    return
                self._upload_wake.wait(self._tick)
                self._upload_wake.clear()
                continue
            entry = pending[0]
            if self._upload(entry):
                attempt = 0
                continue
            delay = self._backoff(attempt)
            attempt += 1
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            self._upload_wake.wait(delay)
            self._upload_wake.clear()

    def _upload(self, entry: SpoolFile) -> bool:
        try:
            self.writer.put(entry.key, entry.path)
        except Exception as error:  # noqa: BLE001 - any failure is retried; the file stays on the spool
            metrics.UPLOAD_FAILURES.inc()
            self._upload_log.warning("sink upload of %s failed, will retry: %r", entry.key, error)
            self._update_gauges()
            return False
        metrics.RECORDS_WRITTEN.inc(entry.records)
        metrics.BYTES_WRITTEN.inc(entry.size)
        self.spool.remove(entry)
        self._update_gauges()
        return True

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.upload_retry_max_seconds, self.config.upload_retry_initial_seconds * 2**attempt)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, keeps replicas from retrying in step

    # ---- bookkeeping -------------------------------------------------------------------------------------------

    def _lock_spool(self) -> int:
        fd = os.open(self.config.spool_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolInUse(f"spool {self.config.spool_dir} is used by another live sink") from None
        return fd

    @property
    def queue_depth(self) -> int:
        return self._in_memory

    def oldest_unstored_age(self) -> float:
        """Seconds since the oldest record not yet in the backend was scored (0 when nothing waits)."""
        candidates = [self.spool.oldest_scored_at()]
        for oldest in (self._batcher.oldest, self._queue[0] if self._queue else None):
            if oldest is not None:
                candidates.append(oldest.scored_at.timestamp())
        known = [c for c in candidates if c is not None]
        return max(0.0, datetime.now(UTC).timestamp() - min(known)) if known else 0.0

    def _update_gauges(self) -> None:
        metrics.QUEUE_DEPTH.set(self._in_memory)
        metrics.SPOOL_BYTES.set(self.spool.bytes)
        try:
            metrics.OLDEST_UNSTORED_AGE.set(self.oldest_unstored_age())
        except IndexError:  # the queue emptied between the check and the read
            pass
