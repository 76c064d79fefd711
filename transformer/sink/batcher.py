"""When to cut a file: by record count or by the age of the oldest buffered record. Pure, clock injected."""

from __future__ import annotations

from .records import ScoredBatch


class Batcher:
    """Owned by one thread; not thread-safe by design."""

    def __init__(self, flush_records: int, flush_seconds: float) -> None:
        self.flush_records = flush_records
        self.flush_seconds = flush_seconds
        self.batches: list[ScoredBatch] = []
        self.records = 0
        self._first_seen: float | None = None  # monotonic time the oldest buffered record was taken in

    def add(self, batch: ScoredBatch, now: float) -> None:
        if not self.batches:
            self._first_seen = now
        self.batches.append(batch)
        self.records += len(batch.lead_ids)

    def due(self, now: float) -> bool:
        if self.records >= self.flush_records:
            return True
        return bool(self.batches) and now - self._first_seen >= self.flush_seconds

    def take(self) -> list[ScoredBatch]:
        """Up to flush_records records (whole requests; a single large request may exceed it)."""
        taken = 0
        cut = 0
        while cut < len(self.batches) and taken < self.flush_records:
            taken += len(self.batches[cut].lead_ids)
            cut += 1
        out, self.batches = self.batches[:cut], self.batches[cut:]
        self.records -= taken
        if not self.batches:
            self._first_seen = None
        return out

    @property
    def oldest(self) -> ScoredBatch | None:
        return self.batches[0] if self.batches else None
