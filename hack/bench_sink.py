"""Micro-benchmark of the data-lake sink: records/s from submit() until the records are on the spool.

    python -m hack.bench_sink [--records 300000] [--compression zstd]

Not a test. Uploads go to a throw-away local folder; the number measured is the spooling throughput
(build the Arrow table column-wise, write Parquet, fsync, rename), features included.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from transformer.sink import ScoredBatch, ScoreSink, SinkConfig

FEATURES = 50


class _DiscardWriter:
    """Uploads are not what is measured; keep the backend out of the numbers."""

    def put(self, key: str, local_path: Path) -> None:
        return None


def make_batches(leads_per_batch: int, distinct: int) -> list[ScoredBatch]:
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    batches = []
    for _ in range(distinct):
        scores = rng.random(leads_per_batch, dtype=np.float32)
        buckets = np.minimum(5, (scores * 5).astype(np.int8) + 1)
        batches.append(
            ScoredBatch(
                request_id=str(uuid.uuid4()),
                scored_at=now,
                model_name="lead-scoring",
                model_version="2025.01.1",
                api_key_name="crm-prod",
                protocol="rest",
                request_form="v2_tensor",
                latency_ms=4.2,
                lead_ids=[f"lead-{uuid.uuid4().hex[:12]}" for _ in range(leads_per_batch)],
                scores=scores,
                buckets=buckets,
                tiers=["ABCDE"[5 - b] for b in buckets],
                features=rng.random((leads_per_batch, FEATURES), dtype=np.float32),
            )
        )
    return batches


def run(leads_per_batch: int, records: int, compression: str) -> float:
    # Objects are built before the clock starts (the transformer builds them anyway); reused cyclically.
    pool = make_batches(leads_per_batch, max(1, min(20_000, records // leads_per_batch)))
    submits = records // leads_per_batch
    with tempfile.TemporaryDirectory() as spool_dir:
        config = SinkConfig(
            uri="file:///dev/null",
            spool_dir=Path(spool_dir),
            queue_max_records=records + 1,
            spool_max_bytes=1 << 40,
            feature_names=tuple(f"feature_{i}" for i in range(FEATURES)),
            compression=compression,
        )
        sink = ScoreSink(config, writer=_DiscardWriter())
        sink.start()
        started = time.perf_counter()
        for i in range(submits):
            if not sink.submit(pool[i % len(pool)]):
                raise SystemExit("a record was dropped: the benchmark would be meaningless")
        sink.flush()
        elapsed = time.perf_counter() - started
        sink.close(grace_seconds=30)
    return submits * leads_per_batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--compression", default="zstd")
    args = parser.parse_args()
    for leads_per_batch in (1, 100):
        rate = run(leads_per_batch, args.records, args.compression)
        print(f"leads/request={leads_per_batch:>3}  records/s={rate:,.0f}  (features on, {args.compression})")


if __name__ == "__main__":
    main()
