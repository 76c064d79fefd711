"""The file:// backend end to end with the worker threads, read back as a Hive-partitioned dataset; partial copies
of a killed process cleaned at start."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.dataset as ds
import pytest

from tests.sink_servers import FEATURE_NAMES, REPO, expected_rows, sample_batch, sorted_rows, wait_for
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink.local import INCOMING_DIR, LocalFolderWriter


def test_lake_reads_back_as_a_hive_partitioned_dataset(tmp_path):
    sink = ScoreSink(
        SinkConfig(
            uri=f"file://{tmp_path / 'lake'}",
            spool_dir=tmp_path / "spool",
            feature_names=FEATURE_NAMES,
            flush_records=40,
        )
    )
    sink.start()
    batches = [sample_batch(1, seed=s) for s in range(50)] + [sample_batch(100, seed=99)]
    for batch in batches:
        assert sink.submit(batch)
    sink.close()
    dataset = ds.dataset(tmp_path / "lake", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert set(table.column("model").to_pylist()) == {"lead-scoring"}
    assert len(list((tmp_path / "lake").rglob("*.parquet"))) >= 2
    rows = [{k: v for k, v in r.items() if k not in ("model", "dt", "hour")} for r in sorted_rows(table)]
    assert rows == expected_rows(batches)
    assert not list((tmp_path / "lake").rglob("*.tmp"))


def test_a_folder_where_the_file_goes_is_an_error_not_a_stored_file(tmp_path):
    """put() took any existing name as "stored by an earlier attempt": a folder in the way lost the file silently.
    Now it raises, so the sink retries (and counts) and batch scoring stops with the reason."""
    source = tmp_path / "part.parquet"
    source.write_bytes(b"PAR1 stand-in")
    writer = LocalFolderWriter(tmp_path / "lake")
    key = "model=m/dt=2026-12-07/hour=06/a.parquet"
    (tmp_path / "lake" / key).mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="not a file"):
        writer.put(key, source)
    writer.put("model=m/dt=2026-12-07/hour=06/b.parquet", source)
    writer.put("model=m/dt=2026-12-07/hour=06/b.parquet", source)  # a real earlier copy: stored, once
    assert (tmp_path / "lake" / "model=m/dt=2026-12-07/hour=06/b.parquet").read_bytes() == source.read_bytes()


KILLED_COPY = """
import sys
from pathlib import Path
from transformer.sink.local import LocalFolderWriter
LocalFolderWriter(Path(sys.argv[1])).put("model=m/dt=2025-01-01/hour=00/a.parquet", Path(sys.argv[2]))
"""


def start_copy(lake, source) -> subprocess.Popen:
    """A process of this host copying `source` (a FIFO) into the lake folder with the real writer."""
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_COPY, str(lake), str(source)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )


def feed_until_mid_copy(feed, lake) -> None:
    """Write 1 MiB into the copy and wait until its temp file holds some of it: the copy is certainly in flight."""
    feed.write(b"PAR1" + b"\0" * (1 << 20))
    feed.flush()
    wait_for(lambda: [p for p in (lake / INCOMING_DIR).glob(".*.tmp") if p.stat().st_size > 0], timeout=20)


def test_partial_copies_of_a_killed_process_are_removed_at_start(tmp_path):
    lake, source = tmp_path / "lake", tmp_path / "source.fifo"
    os.mkfifo(source)  # the copy blocks on it: the child is certainly mid-copy when it is killed
    child = start_copy(lake, source)
    try:
        with open(source, "wb") as feed:
            feed_until_mid_copy(feed, lake)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    (partial,) = (lake / INCOMING_DIR).glob(".*.tmp")
    assert not (lake / "model=m").exists() or not list((lake / "model=m").rglob("*.parquet"))
    # Another replica's temp files: an old one (its process is long dead) and one being written right now.
    stale, live = lake / INCOMING_DIR / ".other-pod-1.tmp", lake / INCOMING_DIR / ".other-pod-2.tmp"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    LocalFolderWriter(lake)  # this replica starts again (same $HOSTNAME)
    assert not partial.exists() and not stale.exists()
    assert live.exists()  # may be a live copy of another replica: left alone


def test_a_writer_starting_on_the_same_host_leaves_a_copy_in_flight_alone(tmp_path):
    """quality.report, batch scoring and the transformer share a host name and may share a lake folder. A start
    removed every temp file of the host, so a second quality run broke the first one's copy (FileNotFoundError)."""
    lake, source = tmp_path / "lake", tmp_path / "source.fifo"
    os.mkfifo(source)
    copier = start_copy(lake, source)
    try:
        with open(source, "wb") as feed:
            feed_until_mid_copy(feed, lake)
            LocalFolderWriter(lake)  # another process of this host starts while the copy is in flight
            feed.write(b"\0" * 1024)
        _, err = copier.communicate(timeout=20)
    finally:
        if copier.poll() is None:
            copier.kill()
    assert copier.returncode == 0, err
    stored = lake / "model=m/dt=2025-01-01/hour=00/a.parquet"
    assert stored.stat().st_size == 4 + (1 << 20) + 1024
    assert not list((lake / INCOMING_DIR).glob(".*.tmp"))
