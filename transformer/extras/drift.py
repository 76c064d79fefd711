"""Drift signals: population stability index (PSI) of each feature and of the score, live traffic vs training.

The model card carries the training distribution as binned histograms (`reference`, built by
predictor/train.py `reference_histogram`): inner cut points, the share of ALL rows in each bin, and the share of
missing values (its own bin). Here live rows are binned with the same cut points into a sliding window of recent
traffic, and PSI = sum((a - e) * ln(a / e)) over the bins, a = live share, e = training share.

Hot path: `observe()` bins a whole request for all 50 features and the score with one broadcast comparison against a
padded [max_edges, 51] table of cut points and one `bincount`, and adds the counts to the current chunk of a ring
buffer. No Python loop over features or rows. A chunk closes once it holds `window / n_chunks` rows (a big request
may overfill it), and the oldest chunks are dropped for as long as the others still hold `window` rows. So after
warm-up the window covers the most recent `window` rows plus less than one chunk (window/n_chunks + one request),
and old traffic leaves it a chunk at a time.

Above `max_rows_per_second` scored leads a second, each lead is kept with the same probability p = that cap / the lead
rate of the last second, whatever the size of its request. The window then holds a uniform sample that spans about
window / cap seconds of traffic instead of the last fraction of a second, and binning costs the same at 1,000 leads/s
as at 100,000.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping

import numpy as np
from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contract.features import FEATURE_NAMES, N_FEATURES
from contract.model_card import Histogram

SCORE = "score"
EPSILON = 1e-4  # floor on both shares: an empty bin costs a bounded amount instead of ln(0)
WATCH_THRESHOLD = 0.1  # PSI < 0.1 stable, 0.1–0.25 watch, > 0.25 act (the alerts fire above 0.25)
ACT_THRESHOLD = 0.25
MIN_ROWS = 500  # rows the window must hold before PSI is published: below it, PSI is sampling noise

FEATURE_PSI = Gauge(
    "lead_scoring_feature_psi",
    "Population stability index of a feature over the recent-traffic window vs the training "
    "distribution (absent until the window holds min_rows rows)",
    ["feature"],
)


class _GaugeOnceSet(Collector):
    """An unlabelled gauge with no sample until it is first set. A prometheus_client Gauge without labels reads 0
    from the start, which for a PSI means "stable": the dashboard showed the score as stable before anything was
    measured, and for ever when the card has no reference histograms (drift off)."""

    def __init__(self, name: str, documentation: str):
        self.name, self.documentation = name, documentation
        self._value: float | None = None

    def set(self, value: float) -> None:
        self._value = float(value)  # one attribute store: atomic for the scrape thread

    def describe(self):
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self):
        value = self._value
        return [] if value is None else [GaugeMetricFamily(self.name, self.documentation, value=value)]


SCORE_PSI = _GaugeOnceSet(
    "lead_scoring_score_psi",
    "Population stability index of the score over the recent-traffic window vs the training "
    "distribution (absent until the window holds min_rows rows)",
)
REGISTRY.register(SCORE_PSI)


_NONE = np.zeros(0, dtype=np.intp)


class DriftMonitor:
    def __init__(
        self,
        reference: Mapping[str, Histogram],
        window: int = 5000,
        publish_every_seconds: float = 10,
        min_rows: int = MIN_ROWS,
        n_chunks: int = 10,
        clock=time.monotonic,
        max_rows_per_second: float | None = None,
        seed: int | None = None,
    ):
        if window < n_chunks or n_chunks < 2:
            raise ValueError(f"window ({window}) must hold at least n_chunks ({n_chunks} >= 2) rows")
        if max_rows_per_second is not None and not max_rows_per_second > 0:
            raise ValueError(
                f"max_rows_per_second must be > 0 (or None: every row), got {max_rows_per_second}"
            )
        if not 1 <= min_rows <= window:
            raise ValueError(
                f"the window ({window} leads, --drift_window) must hold at least min_rows ({min_rows}), "
                "the leads PSI needs before it is published"
            )
        self.chunk_rows = math.ceil(window / n_chunks)
        # Features the card has no histogram for (an older card) are not monitored; the score is column 50.
        self.names = [name for name in (*FEATURE_NAMES, SCORE) if name in reference]
        if not self.names:
            raise ValueError("the reference holds no histogram for any feature or the score")
        columns = [FEATURE_NAMES.index(name) if name != SCORE else N_FEATURES for name in self.names]
        self._columns = np.array(columns)
        self._all_columns = self._columns.tolist() == list(range(N_FEATURES + 1))
        max_edges = max(len(reference[name].edges) for name in self.names)
        # Slots per monitored column: the bins, padding, then the missing bin last. Padding has expected share 0
        # and never receives rows, so after the epsilon floor it adds (eps - eps) * ln(1) = 0 to the PSI.
        self._slots = max_edges + 2
        if self._slots > 255:
            raise ValueError(f"reference histograms may have at most 253 cut points, got {max_edges}")
        # Edge-major [max_edges, 1, columns]: the hot comparison then runs along contiguous columns (about 4x
        # faster than an edge axis last), and the per-row bin is a sum over the first axis.
        self._edges = np.full((max(max_edges, 1), 1, len(self.names)), np.inf, dtype=np.float32)
        self._expected = np.zeros((len(self.names), self._slots))
        for i, name in enumerate(self.names):
            hist = reference[name]
            if len(hist.shares) != len(hist.edges) + 1:
                raise ValueError(
                    f"reference histogram of {name}: {len(hist.edges)} cut points need "
                    f"{len(hist.edges) + 1} shares, got {len(hist.shares)}"
                )
            self._edges[: len(hist.edges), 0, i] = hist.edges
            self._expected[i, : len(hist.shares)] = hist.shares
            self._expected[i, -1] = hist.missing_share
        self._expected = np.maximum(self._expected, EPSILON)
        self._offsets = (np.arange(len(self.names)) * self._slots)[None, :]
        self._missing_slot = self._slots - 1
        self._n_bins = len(self.names) * self._slots

        self.window = window
        self.n_chunks = n_chunks
        self.publish_every_seconds = publish_every_seconds
        self.min_rows = min_rows
        self._clock = clock
        # n_chunks full chunks already cover the window, so one more slot for the filling chunk is enough.
        self._slots_in_ring = n_chunks + 1
        self._counts = np.zeros((self._slots_in_ring, self._n_bins), dtype=np.int64)
        self._rows = [0] * self._slots_in_ring
        self._total_rows = 0
        self._current = 0
        self._oldest = 0
        self._last_publish = clock()
        self._lock = threading.Lock()
        # The sampler: only observe() touches it (one thread, the event loop).
        self.max_rows_per_second = max_rows_per_second
        self._keep = 1.0  # probability of keeping a lead; 1 until a second of traffic says otherwise
        self._rate_leads = 0
        self._rate_started = clock()
        self._rng = np.random.default_rng(seed)

    @property
    def rows(self) -> int:
        """Rows currently in the window."""
        return self._total_rows

    def observe(self, matrix: np.ndarray, scores: np.ndarray) -> None:
        """Add one scored request (float32 [N, 50] and [N]) to the window; publish when the interval is due."""
        if self.max_rows_per_second is not None:
            kept = self._sample(scores.shape[0])
            if kept is not None:
                if kept.size == 0:
                    return
                matrix, scores = matrix[kept], scores[kept]
        n = matrix.shape[0]
        values = np.empty((n, N_FEATURES + 1), dtype=np.float32)
        values[:, :N_FEATURES] = matrix
        values[:, N_FEATURES] = scores
        if not self._all_columns:
            values = values[:, self._columns]
        # bin = number of cut points <= value (searchsorted side="right", as the reference was built);
        # NaN compares False everywhere, so missing values are sent to their own slot explicitly.
        bins = (values >= self._edges).sum(axis=0, dtype=np.uint8)
        bins[np.isnan(values)] = self._missing_slot
        counts = np.bincount((bins + self._offsets).ravel(), minlength=self._n_bins)
        due = False
        with self._lock:
            slot = self._current
            self._counts[slot] += counts
            self._rows[slot] += n
            self._total_rows += n
            # Drop the oldest chunks while the rest still cover the window (checked per request, so the window
            # never carries more than one surplus chunk).
            while self._oldest != slot and self._total_rows - self._rows[self._oldest] >= self.window:
                self._evict_oldest()
            if self._rows[slot] >= self.chunk_rows:
                # Now at most n_chunks chunks are in use (each full one holds >= window/n_chunks rows), so the
                # next slot of the n_chunks + 1 is free and zeroed.
                self._current = (slot + 1) % self._slots_in_ring
            now = self._clock()
            if now - self._last_publish >= self.publish_every_seconds:
                self._last_publish = now
                due = True
        if due:
            self.publish()

    def _sample(self, n: int) -> np.ndarray | None:
        """Rows of this request to keep: None = all of them. Each row independently with probability `_keep`, so a
        lead's chance does not depend on how many leads came with it. `_keep` is re-set once a second."""
        self._rate_leads += n
        now = self._clock()
        elapsed = now - self._rate_started
        if elapsed >= 1.0:
            self._keep = min(1.0, self.max_rows_per_second * elapsed / max(self._rate_leads, 1))
            self._rate_leads, self._rate_started = 0, now
        keep = self._keep
        if keep >= 1.0:
            return None
        if n == 1:  # the common single-lead request: one scalar draw
            return None if self._rng.random() < keep else _NONE
        return np.flatnonzero(self._rng.random(n) < keep)

    def _evict_oldest(self) -> None:
        self._total_rows -= self._rows[self._oldest]
        self._rows[self._oldest] = 0
        self._counts[self._oldest] = 0
        self._oldest = (self._oldest + 1) % self._slots_in_ring

    def psi(self) -> tuple[dict[str, float], float]:
        """PSI per monitored feature and of the score, over the current window. NaN while the window is empty."""
        with self._lock:
            counts = self._counts.sum(axis=0)
            rows = self._total_rows
        if rows == 0:
            values = np.full(len(self.names), np.nan)
        else:
            actual = np.maximum(counts.reshape(len(self.names), self._slots) / rows, EPSILON)
            values = ((actual - self._expected) * np.log(actual / self._expected)).sum(axis=1)
        by_name = dict(zip(self.names, values.tolist(), strict=True))
        score = by_name.pop(SCORE, math.nan)
        return by_name, score

    def publish(self) -> bool:
        """Set the gauges from the window; returns False (gauges untouched) while it holds fewer than min_rows."""
        if self.rows < self.min_rows:
            return False
        features, score = self.psi()
        for name, value in features.items():
            FEATURE_PSI.labels(name).set(value)
        if not math.isnan(score):
            SCORE_PSI.set(score)
        return True
