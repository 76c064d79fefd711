"""`--sink_encoder process`: lake files encoded in a real child process. The records reach the lake as with the
thread encoder, and the child's failures — killed, stuck, signalled with its process group, never started — cost
no record: the file is encoded in the thread instead and a new child takes over later. The child never outlives
the server."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.child_processes import alive, child_running, work_with_a_stuck_child
from tests.sink_servers import (
    FEATURE_NAMES,
    expected_rows,
    file_sink_config,
    sample_batch,
    sorted_rows,
    wait_for,
)
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink import encoder as encoder_module
from transformer.sink.arrow import pq
from transformer.sink.schema import lake_schema

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **overrides) -> SinkConfig:
    return file_sink_config(tmp_path, **{"encoder": "process", **overrides})


def read_lake(tmp_path: Path):
    return pq.read_table(tmp_path / "lake", partitioning=None, schema=lake_schema(FEATURE_NAMES))


def child_of(sink: ScoreSink) -> int:
    return child_running(sink._encoder.pid, "transformer.sink.encoder")


def flush(sink: ScoreSink, *batches) -> None:
    for batch in batches:
        assert sink.submit(batch)
    sink.flush()


def test_every_record_reaches_the_lake_through_the_child(tmp_path):
    sink = ScoreSink(config(tmp_path))
    sink.start()
    pid = child_of(sink)  # started with the sink, before any file is due
    now = datetime.now(UTC)
    batches = [
        sample_batch(100, seed=1, scored_at=now),
        sample_batch(1, seed=2, scored_at=now, model_name="lead-scoring-canary"),  # a second partition
        sample_batch(7, seed=3, scored_at=now, with_features=False),
        sample_batch(0, seed=4, scored_at=now),
    ]
    flush(sink, *batches)
    assert child_of(sink) == pid  # the same child encoded every file
    sink.close(grace_seconds=10)
    assert sorted_rows(read_lake(tmp_path)) == expected_rows(batches)
    wait_for(lambda: not alive(pid), timeout=10)
    # The child wrote only temp files the sink committed: nothing stray is left on the spool.
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file() and p.name != ".lock"]


def test_a_killed_child_costs_no_record_and_a_new_one_takes_over(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(encoder_module, "RESTART_AFTER_SECONDS", 0.0)
    sink = ScoreSink(config(tmp_path))
    first = sample_batch(5, seed=1)
    flush(sink, first)
    pid = child_of(sink)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid) or sink._encoder.child.process.poll() is not None, timeout=10)
    during = sample_batch(6, seed=2)
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        flush(sink, during)  # the dead child's socket fails: encoded in the thread
    assert any("encoder process failed" in r.getMessage() for r in caplog.records)
    after = sample_batch(7, seed=3)
    flush(sink, after)
    assert child_of(sink) != pid  # a new child
    sink.close(grace_seconds=10)
    assert sorted_rows(read_lake(tmp_path)) == expected_rows([first, during, after])


def test_a_stuck_child_is_replaced_after_its_timeout(tmp_path, caplog):
    sink = ScoreSink(config(tmp_path))
    sink.start()
    pid = child_of(sink)
    sink._encoder.timeout = 1.0
    stuck = sample_batch(4, seed=5)
    work_with_a_stuck_child(pid, caplog, lambda: flush(sink, stuck))
    sink.close(grace_seconds=10)
    assert sorted_rows(read_lake(tmp_path)) == expected_rows([stuck])


_SERVER = """
import signal, sys, threading
from datetime import UTC, datetime
from pathlib import Path
from tests.sink_servers import FEATURE_NAMES, sample_batch
from transformer.sink import ScoreSink, SinkConfig

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
sink = ScoreSink(SinkConfig(uri=sys.argv[1], spool_dir=Path(sys.argv[2]), feature_names=FEATURE_NAMES,
                            encoder="process", flush_seconds=60, flush_records=100_000))
sink.start()
encoded_in_thread = []
fallback = sink._encoder.fallback
original = fallback.encode
fallback.encode = lambda batches: encoded_in_thread.append(len(batches)) or original(batches)
assert sink.submit(sample_batch(9, seed=6, scored_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
print(sink._encoder.pid, flush=True)
stop.wait(60)
sink.close(grace_seconds=10)  # the shutdown flush, through the child
print("thread encoded", sum(encoded_in_thread), flush=True)
"""


def test_a_signal_to_the_servers_process_group_leaves_the_child_to_serve_the_shutdown_flush(tmp_path):
    """A Ctrl-C or `kill -- -<pgid>` reaches every process of the group: the child is not in it."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, (tmp_path / "lake").as_uri(), str(tmp_path / "spool")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        child = int(server.stdout.readline())
        assert os.getpgid(child) != os.getpgid(server.pid)
        os.killpg(server.pid, signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0
    assert "thread encoded 0" in out
    assert sorted_rows(read_lake(tmp_path)) == expected_rows(
        [sample_batch(9, seed=6, scored_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))]
    )
    wait_for(lambda: not alive(child), timeout=10)


def test_a_child_that_cannot_start_leaves_the_thread_to_encode(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    sink = ScoreSink(config(tmp_path))
    batch = sample_batch(3, seed=7)
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        flush(sink, batch)
    assert any("cannot start" in r.getMessage() for r in caplog.records)
    assert sink._encoder.pid is None
    sink.close(grace_seconds=10)
    assert sorted_rows(read_lake(tmp_path)) == expected_rows([batch])


def test_the_child_ends_with_a_killed_parent(tmp_path):
    """A SIGKILLed server leaves no encoder behind: the child's socket reaches EOF and it exits."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from tests.sink_servers import FEATURE_NAMES
        from transformer.sink import ScoreSink, SinkConfig
        sink = ScoreSink(SinkConfig(uri={(tmp_path / "lake").as_uri()!r}, spool_dir=Path({str(tmp_path / "spool")!r}),
                                    feature_names=FEATURE_NAMES, encoder="process"))
        sink.start()
        print(sink._encoder.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: not alive(child), timeout=10)
    finally:
        parent.kill()
        parent.wait(10)


def test_drops_are_counted_as_with_the_thread_encoder(tmp_path):
    """A request the child cannot encode costs only its own records (the culprit is found in the thread)."""
    from prometheus_client import REGISTRY

    def dropped(reason: str) -> float:
        return REGISTRY.get_sample_value("lead_scoring_sink_dropped_records_total", {"reason": reason}) or 0.0

    sink = ScoreSink(config(tmp_path))
    good = sample_batch(6, seed=1)
    bad = sample_batch(2, seed=2)
    bad.lead_ids[1] = 12345  # not a string: the Parquet encoder refuses it
    before = dropped("build_error")
    flush(sink, good, bad)
    sink.close(grace_seconds=10)
    assert dropped("build_error") - before == 2
    assert sorted_rows(read_lake(tmp_path)) == expected_rows([good])


def test_an_unknown_encoder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="encoder must be one of thread, process"):
        config(tmp_path, encoder="fork")
