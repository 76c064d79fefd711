"""What the operator sees: a progress bar with rows/s and ETA in a terminal; one JSON line per shard elsewhere."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Redraws at most 5 times a second; `total` may be unknown (CSV), then there is no ETA."""

    def __init__(
        self, label: str, total: int | None, stream: TextIO | None = None, enabled: bool | None = None
    ):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.2:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            eta = _clock((self.total - self.done) / rate) if rate else "?"
            text = f"{self.label} [{bar:<30}] {share:6.1%} {self.done:,}/{self.total:,} rows  {rate:,.0f} rows/s  ETA {eta}"
        else:
            text = f"{self.label} {self.done:,} rows  {rate:,.0f} rows/s"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def log_line(event: str, **fields: object) -> None:
    """One JSON object per line on stdout: what the cluster's log pipeline indexes."""
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()
