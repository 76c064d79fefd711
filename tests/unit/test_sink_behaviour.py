"""The sink's promises to the scoring path: bounded memory and disk with visible drops, flush by count or age,
spool files left by a dead process uploaded at start, close() delivering what is in memory."""

import logging
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from tests.sink_servers import (
    FEATURE_NAMES,
    expected_rows,
    file_sink_config,
    sample_batch,
    sorted_rows,
    wait_for,
)
from transformer.sink import ScoreSink, SinkConfig, SpoolInUse, lake_schema
from transformer.sink.batcher import Batcher
from transformer.sink.schema import build_table
from transformer.sink.spool import Spool


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("lead_scoring_sink_dropped_records_total", {"reason": reason})


def config(tmp_path, **overrides) -> SinkConfig:
    return file_sink_config(tmp_path, **overrides)


def lake_files(tmp_path) -> list:
    return sorted((tmp_path / "lake").rglob("*.parquet"))


def read_lake(tmp_path):
    return pq.read_table(tmp_path / "lake", partitioning=None, schema=lake_schema(FEATURE_NAMES))


def test_batcher_cuts_by_record_count():
    batcher = Batcher(flush_records=10, flush_seconds=60)
    for seed in range(3):
        batcher.add(sample_batch(3, seed=seed), now=0.0)
    assert not batcher.due(now=0.0)  # 9 records
    batcher.add(sample_batch(3, seed=3), now=0.0)
    assert batcher.due(now=0.0)  # 12 records
    taken = batcher.take()
    assert sum(len(b) for b in taken) == 12 and batcher.records == 0


def test_batcher_cuts_by_age_of_the_oldest_record():
    batcher = Batcher(flush_records=1000, flush_seconds=5)
    assert not batcher.due(now=100.0)  # nothing buffered, nothing due
    batcher.add(sample_batch(1, seed=1), now=100.0)
    batcher.add(sample_batch(1, seed=2), now=104.0)
    assert not batcher.due(now=104.9)
    assert batcher.due(now=105.0)
    assert len(batcher.take()) == 2 and not batcher.due(now=1e9)


def test_batcher_takes_at_most_flush_records_per_file():
    batcher = Batcher(flush_records=4, flush_seconds=60)
    for seed in range(5):
        batcher.add(sample_batch(2, seed=seed), now=0.0)
    assert sum(len(b) for b in batcher.take()) == 4
    assert batcher.records == 6 and batcher.due(now=0.0)


def test_worker_flushes_when_the_count_is_reached(tmp_path):
    sink = ScoreSink(config(tmp_path, flush_records=50, flush_seconds=3600))
    sink.start()
    try:
        batches = [sample_batch(10, seed=s) for s in range(5)]
        for batch in batches:
            sink.submit(batch)
        wait_for(lambda: lake_files(tmp_path))  # no flush() call: the count alone cut the file
        assert sorted_rows(read_lake(tmp_path)) == expected_rows(batches)
    finally:
        sink.close()


def test_worker_flushes_when_the_oldest_record_is_old_enough(tmp_path):
    sink = ScoreSink(config(tmp_path, flush_records=1_000_000, flush_seconds=0.2))
    sink.start()
    try:
        batch = sample_batch(1, seed=9)
        sink.submit(batch)
        wait_for(lambda: lake_files(tmp_path))
        assert sorted_rows(read_lake(tmp_path)) == expected_rows([batch])
    finally:
        sink.close()


def test_full_queue_drops_visibly_without_blocking(tmp_path, caplog):
    sink = ScoreSink(config(tmp_path, queue_max_records=10))  # not started: nothing drains the queue
    before = dropped("queue_full")
    assert sink.submit(sample_batch(6, seed=1))
    assert sink.submit(sample_batch(4, seed=2))
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        assert not sink.submit(sample_batch(3, seed=3))
        assert not sink.submit(sample_batch(1, seed=4))
    assert dropped("queue_full") - before == 4
    assert sink.queue_depth == 10
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1  # rate-limited
    sink.close()
    assert read_lake(tmp_path).num_rows == 10  # what was accepted is delivered


@pytest.mark.parametrize("encoder", ["thread", "process"])
def test_full_spool_drops_visibly(encoder, tmp_path, caplog):
    probe = ScoreSink(config(tmp_path / "probe"))
    probe.submit(sample_batch(20, seed=1))
    probe.flush()
    one_file = probe.spool.bytes
    probe.close(grace_seconds=0)

    sink = ScoreSink(
        config(tmp_path, spool_max_bytes=one_file * 3 // 2, encoder=encoder)
    )  # one file, not two
    before = dropped("spool_full")
    kept = sample_batch(20, seed=2)
    sink.submit(kept)
    sink.flush()
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        assert sink.submit(sample_batch(20, seed=3))  # accepted in memory; the spool refuses it later
        sink.flush()
    assert dropped("spool_full") - before == 20
    assert any("spool full" in r.getMessage() for r in caplog.records)
    assert len(sink.spool.pending()) == 1 and sink.queue_depth == 0
    sink.close()
    assert sorted_rows(read_lake(tmp_path)) == expected_rows([kept])


def test_leftover_spool_files_are_uploaded_at_start(tmp_path):
    batches = [sample_batch(7, seed=1), sample_batch(2, seed=2)]
    schema = lake_schema(FEATURE_NAMES)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 30)  # what a killed process left behind
    for i, batch in enumerate(batches):
        spool.write(
            f"model=lead-scoring/dt=2025-01-01/hour=0{i}/left-{i}.parquet", build_table([batch], schema), 0
        )
    (tmp_path / "spool" / "model=lead-scoring" / ".half-written.parquet.tmp").write_bytes(b"PAR1 trunc")

    sink = ScoreSink(config(tmp_path))
    before = REGISTRY.get_sample_value("lead_scoring_sink_records_written_total")
    sink.start()
    try:
        wait_for(lambda: not sink.spool.pending())
        assert REGISTRY.get_sample_value("lead_scoring_sink_records_written_total") - before == 9
        assert [p.name for p in lake_files(tmp_path)] == ["left-0.parquet", "left-1.parquet"]
        assert sorted_rows(read_lake(tmp_path)) == expected_rows(batches)
        assert not list((tmp_path / "spool").rglob("*.tmp")) and not list(
            (tmp_path / "spool").rglob("*.parquet")
        )
    finally:
        sink.close()


def test_close_delivers_what_is_in_memory(tmp_path):
    sink = ScoreSink(config(tmp_path, flush_records=1_000_000, flush_seconds=3600))
    sink.start()
    batches = [sample_batch(3, seed=s) for s in range(4)]
    for batch in batches:
        sink.submit(batch)
    sink.close(grace_seconds=10)
    assert sorted_rows(read_lake(tmp_path)) == expected_rows(batches)
    assert sink.spool.pending() == [] and sink.queue_depth == 0
    before = dropped("closed")
    assert not sink.submit(sample_batch(2, seed=9))  # nothing would ever drain it: refused, visibly
    assert dropped("closed") - before == 2


def test_one_live_sink_per_spool(tmp_path):
    sink = ScoreSink(config(tmp_path))
    with pytest.raises(SpoolInUse):
        ScoreSink(config(tmp_path))
    sink.close()
    ScoreSink(config(tmp_path)).close()  # released on close


def test_malformed_batches_are_refused_without_queueing(tmp_path):
    sink = ScoreSink(config(tmp_path))
    wrong_width = sample_batch(2, seed=1, width=49)
    naive_time = sample_batch(1, seed=2, scored_at=datetime(2025, 1, 1))
    for batch in (wrong_width, naive_time):
        with pytest.raises(ValueError):
            sink.submit(batch)
    assert sink.queue_depth == 0
    sink.close()


def test_oldest_unstored_age_covers_memory_and_spool(tmp_path):
    sink = ScoreSink(config(tmp_path))
    assert sink.oldest_unstored_age() == 0.0
    sink.submit(sample_batch(1, seed=1, scored_at=datetime(2020, 1, 1, tzinfo=UTC)))
    assert sink.oldest_unstored_age() > 3600
    sink.flush()  # now on the spool, still not stored
    assert sink.oldest_unstored_age() > 3600
    sink.close()
    assert sink.oldest_unstored_age() == 0.0
    assert REGISTRY.get_sample_value("lead_scoring_sink_oldest_unstored_age_seconds") == 0.0


def test_a_folder_sync_that_fails_after_the_rename_keeps_the_file_queued(tmp_path, monkeypatch, caplog):
    """The file is in place once renamed; a failed fsync of its folder raised, so its records were counted dropped
    (disk_error) while the file stayed on the spool, outside the upload queue and the byte budget."""
    from transformer.sink import spool as spool_module

    def refuse(path):
        raise OSError(5, "Input/output error")

    sink = ScoreSink(config(tmp_path))
    sink.start()
    monkeypatch.setattr(spool_module, "_fsync_dir", refuse)
    before = dropped("disk_error")
    batch = sample_batch(3, seed=4)
    with caplog.at_level(logging.WARNING, logger="transformer.sink.spool"):
        assert sink.submit(batch)
        sink.flush()
    monkeypatch.undo()
    sink.close(grace_seconds=10)
    assert dropped("disk_error") == before
    assert sorted_rows(read_lake(tmp_path)) == expected_rows([batch])
    assert any("could not sync the folder" in r.getMessage() for r in caplog.records)
