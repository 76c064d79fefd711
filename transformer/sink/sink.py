"""ScoreSink: the transformer's non-blocking door to the data lake.

    submit() ──deque──► batcher thread ──Parquet──► spool dir ──► uploader thread ──► Writer (file | S3 | Blob)

submit() is O(1) and never waits on I/O: it counts, appends to a deque and returns. Memory is bounded by
queue_max_records (records in memory, queued or buffered), the disk by spool_max_bytes; beyond either bound
records are dropped visibly (counter + throttled log), never by blocking the caller.
Delivery is at-least-once while the spool survives: a file leaves the spool only after the backend confirmed it; a
crash between the two re-uploads the same key, which the writers treat as already stored. Dedupe key:
(scoring_id, row). docs/data-lake.md states what a lost spool volume (a deleted pod) costs.

The uploader never lets one file hold up the others: each file has its own retry schedule, a file that cannot be
read or fails the integrity check is set aside (quarantine), a vanished one is counted as lost, and no error ends
the thread.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .batcher import Batcher
from .encoder import BuildFailed, encoder_for
from .integrity import CorruptSpoolFile, check_spool_file
from .journal import Journal, max_bytes_for
from .records import ScoredBatch, SinkConfig
from .spool import Spool, SpoolFile, SpoolFull, describe
from .tables import RecordTable, ScoresTable
from .throttle import ThrottledLog
from .writers import Writer, writer_for_uri

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class SpoolInUse(RuntimeError):
    """Another live sink owns this spool directory (give every replica its own, e.g. an emptyDir)."""


@dataclass
class _Retry:
    """Upload schedule of one spool file."""

    failures: int = 0
    not_before: float = 0.0  # monotonic
    checked: bool = False  # passed the integrity check (done once: it reads the whole file)
    records: int | None = None  # what the file holds, once checked (the check counts an adopted file's rows)


# What an outcome takes on the spool before the first file says (one is ~100 bytes: --outcomes_spool_max_bytes), and
# the margin kept over what the files say (small files carry a larger share of Parquet's footer).
_FIRST_GUESS_BYTES_PER_RECORD = 200.0
_ROOM_MARGIN = 1.5


def _writer_for(config: SinkConfig) -> Writer:
    where = dict(
        s3_endpoint_url=config.s3_endpoint_url, azure_connection_string=config.azure_connection_string
    )
    if config.uploader == "process":
        from .writer_process import ProcessWriter

        return ProcessWriter(config.uri, **where)
    return writer_for_uri(config.uri, **where)


def _drop_reason(error: BaseException) -> str:
    if isinstance(error, SpoolFull):
        return "spool_full"
    if isinstance(error, OSError):
        code = error.errno or _errno_in_message(str(error))
        return "disk_full" if code in (errno.ENOSPC, errno.EDQUOT) else "disk_error"
    return "build_error"


def _errno_in_message(message: str) -> int | None:
    """pyarrow's IOError often carries the errno only in its text ("... No space left on device")."""
    for code in (errno.ENOSPC, errno.EDQUOT):
        if os.strerror(code) in message:
            return code
    return None


class ScoreSink:
    def __init__(
        self, config: SinkConfig, writer: Writer | None = None, table: RecordTable | None = None
    ) -> None:
        self.config = config
        # What the rows are (schema, partitions, checks, metrics); the delivery below is the same for every table.
        self.table = table or ScoresTable(config)
        metrics = self.metrics = self.table.metrics
        self.writer = writer or _writer_for(config)
        self._owns_writer = writer is None  # a writer it was given is its caller's to close
        self.spool = Spool(config.spool_dir, config.spool_max_bytes, config.compression)
        self._lock_fd = self._lock_spool()
        self.spool.recover()
        # Replays what an earlier process left (start()) whether or not this one journals.
        self._journal = Journal(config.spool_dir, max_bytes_for(config.spool_max_bytes))
        self._journaling = config.journal
        self._journal_log = ThrottledLog(log)
        self._encoder = encoder_for(config.encoder, self.table, config.spool_dir, config.compression)

        self._queue: collections.deque[ScoredBatch] = collections.deque()
        self._in_memory = 0  # records queued or buffered, not yet on the spool
        # For a table whose caller is told of a refusal (outcomes: 503, retried), what a record takes on the spool,
        # learnt from the files written (start: a cautious guess), and whether the spool refused a file since the
        # last upload freed room. `submit` refuses what the spool may not hold, instead of answering "recorded" and
        # dropping it when the flush finds the spool full.
        self._spool_bytes_per_record = _FIRST_GUESS_BYTES_PER_RECORD
        self._spool_refused = False
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
        self._closing = False

        self._dropped = {
            reason: metrics.DROPPED_RECORDS.labels(reason=reason) for reason in metrics.DROP_REASONS
        }
        # The same counts, for the shutdown line: the metric dies with the process before the next scrape, and
        # the drop warnings are throttled, so drops in the last seconds would otherwise leave no trace.
        self._dropped_since_start: collections.Counter[str] = collections.Counter()
        self._dropped_count_lock = threading.Lock()
        self._drop_listeners: list[Callable[[str, int], None]] = []
        self._retries: dict[str, _Retry] = {}  # by spool key; owned by whoever runs _upload_pending
        self._store_failures = (
            0  # consecutive failed uploads of any file: paces attempts while the store is down
        )
        # No attempt before this monotonic instant while uploads fail: a new spool file wakes the uploader, and
        # without it each new file would be tried at once, whatever the backoff says.
        self._store_paused_until = 0.0
        self._drop_log = ThrottledLog(log)
        self._upload_log = ThrottledLog(log)
        self._delete_log = ThrottledLog(log)
        self._update_gauges()

    # ---- the scoring path -------------------------------------------------------------------------------------

    def submit(self, batch: ScoredBatch) -> bool:
        """Enqueue one scored request. Constant time, never blocks on I/O. False when refused (memory bound, or
        closing): counted as dropped when the table says a refusal loses the records.
        Raises ValueError for a malformed batch (a caller bug), without touching the queue."""
        n = len(batch.lead_ids)
        self.table.check(batch)
        if n == 0:
            return True
        entry = self.table.to_journal(batch) if self._journaling else None
        with self._count_lock:
            # Once close() has begun, its last flush may already have run: refuse visibly rather than hold records
            # that nothing will drain (they used to be accepted, and lost uncounted).
            closing = self._closing
            if closing or self._in_memory + n > self.config.queue_max_records or not self._spool_has_room(n):
                dropped = True
            else:
                dropped = False
                self._in_memory += n
                depth = self._in_memory
                # In the journal before the answer; in the queue in the same order (the journal resolves FIFO).
                journaled = entry is None or self._journal.append(entry)
                self._queue.append(batch)
        if dropped:
            state = (
                "closing (submitted after shutdown began)"
                if closing
                else f"queue full ({self.config.queue_max_records} records in memory)"
                if self._in_memory + n > self.config.queue_max_records
                else f"spool full ({self.spool.bytes} of {self.spool.max_bytes} bytes; the store is not taking files)"
            )
            if self.table.refusal_is_loss:
                self._count_dropped("closed" if closing else "queue_full", n)
            self._drop_log.warning(
                "sink %s: %s %d %s of request %s",
                state,
                "dropped" if self.table.refusal_is_loss else "refused",
                n,
                self.table.records,
                batch.request_id,
            )
            return False
        if not journaled:
            self._journal_log.warning(
                "sink journal: cannot append to %s (disk full, or at its bound): request %s is in memory only until "
                "the next flush",
                self._journal.directory,
                batch.request_id,
            )
        if depth >= self.config.flush_records:
            self._batch_wake.set()
        return True

    def _spool_has_room(self, n: int) -> bool:
        """Whether the spool can still hold these n records with every record in memory, when a refusal is not a
        loss (the caller answers 503 and is retried). A table whose refusal is a loss (scores: the answer is the
        score, the record is on the side) takes everything while memory allows; the flush counts what does not fit."""
        if self.table.refusal_is_loss:
            return True
        if self._spool_refused:
            return False
        needed = (self._in_memory + n) * self._spool_bytes_per_record * _ROOM_MARGIN
        return self.spool.bytes + needed <= self.spool.max_bytes

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batcher and uploader threads; files left on the spool by an earlier process go first."""
        if self._threads:
            return
        leftovers = self.spool.pending()
        if leftovers:
            log.warning(
                "sink: %d bytes left on the spool by an earlier process: %s; uploading them first",
                self.spool.bytes,
                describe(leftovers, self.table.records),
            )
        self._encoder.start()
        self._replay_journal()
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
        with self._count_lock:
            self._closing = (
                True  # what is submitted from now on is refused and counted, not left in the queue
            )
        deadline = time.monotonic() + grace_seconds
        self._stop_batching.set()
        self._batch_wake.set()
        batcher, uploader = (self._threads + [None, None])[:2]
        if batcher is not None:
            batcher.join(max(0.0, deadline - time.monotonic()))
        self.flush()
        with self._count_lock:
            done = self._journal.rotate()
            self._journal.close()
        self._delete_segments(done)
        self._encoder.close()
        self._draining = True
        self._upload_wake.set()
        if uploader is not None and uploader.is_alive():
            uploader.join(max(0.0, deadline - time.monotonic()))
            self._halted = True
            self._upload_wake.set()
            uploader.join(1.0)  # an attempt in flight keeps the daemon thread; we do not wait for it
        elif grace_seconds > 0:
            self._upload_pending(deadline)  # no uploader (never started, or it died): drain from here
        self._halted = True
        if self._owns_writer and hasattr(self.writer, "close"):
            self.writer.close()  # the upload child, after the last put
        with self._dropped_count_lock:
            dropped = dict(self._dropped_since_start)
        if dropped:
            log.warning(
                "sink closed having dropped %d %s since it started (%s): they are not in the lake",
                sum(dropped.values()),
                self.table.records,
                ", ".join(f"{reason}: {n}" for reason, n in sorted(dropped.items())),
            )
        left = self.spool.pending()
        if left:
            # Kept for the next start on this spool; lost if the spool's volume goes with the pod (an emptyDir).
            log.warning(
                "sink closed with %d bytes still on the spool %s: %s; the next start on this spool uploads "
                "them; they are lost if the volume is deleted",
                self.spool.bytes,
                self.config.spool_dir,
                describe(left, self.table.records),
            )
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
            with self._count_lock:
                queued, self._queue = self._queue, collections.deque()
                if force or self._in_memory >= self.config.flush_records or self._batcher.due(now):
                    # A file is cut in this pass: entries from now on go to a new segment, so the sealed one holds
                    # only batches this pass spools (or, past flush_records, the next one), never a whole
                    # further flush window that a crash would replay as duplicates.
                    done = self._journal.rotate()
                else:
                    done = []
            self._delete_segments(done)
            for batch in queued:
                self._batcher.add(batch, now)
            resolved = 0
            while self._batcher.due(now) or (force and self._batcher.records):
                taken = self._batcher.take()
                self._spool_batches(taken)
                resolved += len(taken)
            if resolved:
                # Spooled or counted as dropped: their journal entries are done with.
                with self._count_lock:
                    done = self._journal.resolved(resolved)
                self._delete_segments(done)
        self._update_gauges()

    def _delete_segments(self, paths: list) -> None:
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as error:  # the batches are spooled; a leftover segment is replayed at least once
                self._journal_log.warning("sink journal: cannot delete %s: %s", path, error)

    def _replay_journal(self) -> None:
        """Spool the batches an earlier process journaled and never spooled: it answered them, then died without
        closing the sink (SIGKILL, OOM kill). At least once: a batch it spooled just before dying comes again."""
        replayed = requests = 0
        leftovers = self._journal.leftovers()
        if leftovers:
            log.warning(
                "sink: spooling %d journal segments (%d bytes) left by an earlier process that stopped without "
                "closing the sink",
                len(leftovers),
                sum(p.stat().st_size for p in leftovers if p.exists()),
            )
        for path in leftovers:
            batches = []
            try:
                payloads = list(self._journal.iter_payloads(path))
            except OSError as error:  # unreadable: kept for a start that can read it, never a failed start
                log.error("sink journal: cannot read %s (%s): left for the next start", path, error)
                continue
            for payload in payloads:
                try:
                    batches.append(self.table.from_journal(payload))
                except Exception:  # noqa: BLE001 - a damaged entry: the others are still good
                    log.warning("sink journal %s: an unreadable entry was skipped", path, exc_info=True)
            records = sum(len(b) for b in batches)
            if batches:
                with self._count_lock:
                    self._in_memory += records
                self._spool_batches(batches)
            self._journal.replayed(path)
            replayed, requests = replayed + records, requests + len(batches)
        if replayed:
            log.warning(
                "sink: %d %s of %d requests were journaled by an earlier process that stopped without closing "
                "the sink (SIGKILL, OOM kill); spooled now",
                replayed,
                self.table.records,
                requests,
            )

    def _spool_batches(self, batches: list[ScoredBatch]) -> None:
        groups: dict[object, list[ScoredBatch]] = {}
        for batch in batches:
            groups.setdefault(self.table.partition_of(batch), []).append(batch)
        for partition, group in groups.items():
            records = sum(len(b.lead_ids) for b in group)
            kept = group
            try:
                encoded, kept = self._encode(group)
                if encoded is not None:
                    oldest = self.table.recorded_at(kept[0]).timestamp()
                    self.spool.commit(self.table.object_key(partition), encoded, oldest)
                    if encoded.records:
                        seen = encoded.size / encoded.records
                        self._spool_bytes_per_record = 0.8 * self._spool_bytes_per_record + 0.2 * seen
            except Exception as error:  # noqa: BLE001 - full spool, disk error …: the records cannot be kept
                reason = _drop_reason(error)
                if reason == "spool_full":
                    self._spool_refused = True
                message = "spool full: %s" if reason == "spool_full" else "cannot write to the spool: %r"
                self._drop(reason, sum(len(b.lead_ids) for b in kept), message, error)
            finally:
                with self._count_lock:
                    self._in_memory -= records
        self._upload_wake.set()

    def _encode(self, group: list[ScoredBatch]):
        """The encoded file of a group; when its table cannot be built, of its requests that can be (the others are
        dropped as build_error), so one malformed request never costs the records of its neighbours."""
        try:
            return self._encoder.encode(group), group
        except BuildFailed:  # find the culprit below
            good = []
            for batch in group:
                try:
                    self.table.build([batch])
                except Exception as error:  # noqa: BLE001 - a caller bug the submit() checks do not catch
                    self._drop(
                        "build_error",
                        len(batch.lead_ids),
                        "cannot encode request %s: %r",
                        batch.request_id,
                        error,
                    )
                else:
                    good.append(batch)
            return (self._encoder.encode(good) if good else None), good

    def add_drop_listener(self, listener: Callable[[str, int], None]) -> None:
        """Call `listener(reason, records)` after every drop (from whichever thread dropped)."""
        self._drop_listeners.append(listener)

    def _count_dropped(self, reason: str, records: int) -> None:
        self._dropped[reason].inc(records)
        with self._dropped_count_lock:
            self._dropped_since_start[reason] += records
        for listener in self._drop_listeners:
            try:
                listener(reason, records)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the sink's threads
                log.exception("sink drop listener failed")

    def _drop(self, reason: str, records: int, message: str, *args: object) -> None:
        self._count_dropped(reason, records)
        self._drop_log.warning(
            "sink dropped %d %s (%s): " + message, records, self.table.records, reason, *args
        )

    # ---- uploading: spool -> backend ---------------------------------------------------------------------------

    def _upload_loop(self) -> None:
        self._upload_pending(deadline=None)

    def _upload_pending(self, deadline: float | None) -> None:
        """Upload spool files oldest first until halted (or, with a deadline, until it passes or the spool is
        empty). A failed file waits out its own backoff while the others go on; while every upload fails (the
        store is down) attempts are paced by the same capped backoff. Nothing raised here ends the loop."""
        while not self._halted and (deadline is None or time.monotonic() < deadline):
            try:
                wait = self._upload_next()
            except Exception:  # noqa: BLE001 - the uploader must outlive any error; the files stay spooled
                self._upload_log.warning("sink uploader: unexpected error, carrying on", exc_info=True)
                wait = self._tick
            if wait is None:  # the spool is empty
                if self._draining or deadline is not None:
                    return
                wait = self._tick
            if wait > 0:
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                self._upload_wake.wait(wait)
                self._upload_wake.clear()

    def _upload_next(self) -> float | None:
        """Try the oldest file that is due. Seconds to wait before the next try; None when nothing is pending."""
        pending = self.spool.pending()
        if not pending:
            self._retries.clear()
            return None
        now = time.monotonic()
        if now < self._store_paused_until:
            return self._store_paused_until - now
        due = next((f for f in pending if self._retry(f).not_before <= now), None)
        if due is None:
            return min(self._retry(f).not_before for f in pending) - now
        try:
            stored = self._upload(due)
        except Exception:  # noqa: BLE001 - e.g. stat() of the file fails: this file waits, the others go on
            self._schedule_retry(due)
            self._upload_log.warning(
                "sink upload of %s failed unexpectedly, will retry", due.key, exc_info=True
            )
            stored = False
        if stored:
            self._store_failures = 0
            self._store_paused_until = 0.0
            return 0.0
        if due.key not in self._retries:  # set aside (quarantined, lost): nothing to wait for
            return 0.0
        self._store_failures += 1
        wait = self._backoff(self._store_failures - 1)
        self._store_paused_until = time.monotonic() + wait
        return wait

    def _retry(self, entry: SpoolFile) -> _Retry:
        return self._retries.setdefault(entry.key, _Retry())

    def _schedule_retry(self, entry: SpoolFile) -> None:
        retry = self._retry(entry)
        retry.not_before = time.monotonic() + self._backoff(retry.failures)
        retry.failures += 1

    def _upload(self, entry: SpoolFile) -> bool:
        """One attempt. True when stored; False when it failed (retry scheduled) or was set aside (no retry)."""
        if not entry.path.exists():
            self._set_aside(entry)
            self._drop(
                "spool_file_lost", entry.records or 0, "spool file %s vanished before upload", entry.path
            )
            return False
        retry = self._retry(entry)
        if not retry.checked:
            try:
                rows = check_spool_file(entry.path, entry.crc32)
            except CorruptSpoolFile as error:
                self._quarantine(entry, error)
                return False
            retry.checked = True
            retry.records = entry.records if entry.records is not None else rows
        try:
            fresh = self.writer.put(entry.key, entry.path)
        except Exception as error:  # noqa: BLE001 - any failure is retried; the file stays on the spool
            self._schedule_retry(entry)
            self.metrics.UPLOAD_FAILURES.inc()
            self._upload_log.warning(
                "sink upload of %s failed (attempt %d), will retry: %r",
                entry.key,
                self._retry(entry).failures,
                error,
            )
            self._update_gauges()
            return False
        self._spool_refused = False  # the file leaves the spool below: room again
        if fresh:
            self.metrics.RECORDS_WRITTEN.inc(retry.records or 0)
            self.metrics.BYTES_WRITTEN.inc(entry.size)
        else:
            # An earlier process stored it and died before deleting the spool file: counted then, not again.
            log.info(
                "sink: %s was already in the lake (an earlier attempt stored it); not counted again",
                entry.key,
            )
        self._retries.pop(entry.key, None)
        try:
            self.spool.remove(entry)
        except (
            OSError
        ) as error:  # EROFS, EIO, ESTALE …: stored all the same; a later start re-puts the same key
            self._delete_log.warning("sink stored %s but cannot delete its spool file: %r", entry.key, error)
        self._update_gauges()
        return True

    def _set_aside(self, entry: SpoolFile) -> None:
        self.spool.forget(entry)
        self._retries.pop(entry.key, None)
        self._update_gauges()

    def _quarantine(self, entry: SpoolFile, error: Exception) -> None:
        self._retries.pop(entry.key, None)
        target = self.spool.quarantine(entry)
        self.metrics.QUARANTINED_FILES.inc()
        log.error(
            "sink: spool file %s (%s) failed the integrity check and was not uploaded: %s; moved to %s",
            entry.key,
            f"{entry.records} {self.table.records}"
            if entry.records is not None
            else f"{self.table.records} uncounted: unreadable footer",
            error,
            target or "nowhere (left in place)",
        )
        self._update_gauges()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.config.upload_retry_max_seconds, self.config.upload_retry_initial_seconds * 2**attempt
        )
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
        queue = self._queue  # swapped, never emptied, by the batcher: its first batch stays valid
        for oldest in (self._batcher.oldest, queue[0] if queue else None):
            if oldest is not None:
                candidates.append(self.table.recorded_at(oldest).timestamp())
        known = [c for c in candidates if c is not None]
        return max(0.0, datetime.now(UTC).timestamp() - min(known)) if known else 0.0

    def _update_gauges(self) -> None:
        self.metrics.QUEUE_DEPTH.set(self._in_memory)
        self.metrics.SPOOL_BYTES.set(self.spool.bytes)
        try:
            self.metrics.OLDEST_UNSTORED_AGE.set(self.oldest_unstored_age())
        except IndexError:  # the queue emptied between the check and the read
            pass
