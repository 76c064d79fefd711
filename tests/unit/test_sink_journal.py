"""The sink's write-ahead journal: an answered request's records survive the process being killed before a flush."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from contract.outcomes import outcome_key
from tests.sink_servers import FEATURE_NAMES, file_sink_config, sample_batch
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink.journal import JOURNAL_DIR, Journal, read_frames
from transformer.sink.journal_codec import decode_outcomes, decode_scored, encode_outcomes, encode_scored
from transformer.sink.outcomes import OutcomeBatch, OutcomesTable
from transformer.sink.tables import ScoresTable

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **changes) -> SinkConfig:
    # nothing reaches the spool unless the test says so
    return file_sink_config(tmp_path, **{"flush_seconds": 3600, **changes})


def lake_scoring_ids(tmp_path: Path) -> list[str]:
    return [
        sid
        for path in (tmp_path / "lake").rglob("*.parquet")
        for sid in pq.read_table(path)["scoring_id"].to_pylist()
    ]


def test_a_journal_entry_rebuilds_the_same_rows():
    table = ScoresTable(SinkConfig(uri="file:///x", spool_dir=Path("/x"), feature_names=FEATURE_NAMES))
    for batch in (
        sample_batch(3, seed=1),
        sample_batch(1, seed=2, with_features=False),
        sample_batch(0, seed=3),
    ):
        again = decode_scored(encode_scored(batch))
        assert table.build([again]).equals(table.build([batch]))
        assert again.scored_at == batch.scored_at and again.buckets.dtype == batch.buckets.dtype
    when = datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC)
    outcomes = OutcomeBatch(
        request_id="call-1",
        received_at=datetime.now(UTC),
        source="api",
        api_key_name="crm",
        lead_ids=["L-1", "L-2"],
        outcomes=["converted", "open"],
        occurred_at=[when, when + timedelta(minutes=1)],
        outcome_ids=[outcome_key("L-1", "converted", when), outcome_key("L-2", "open", when)],
        deal_values=[1200.5, None],
        scoring_ids=["S-1", None],
        request_ids=[None, "r-2"],
    )
    rebuilt = decode_outcomes(encode_outcomes(outcomes))
    assert OutcomesTable().build([rebuilt]).equals(OutcomesTable().build([outcomes]))


def test_a_torn_tail_is_cut_and_every_entry_before_it_is_kept(tmp_path):
    journal = Journal(tmp_path)
    entries = [f"entry-{i}".encode() for i in range(3)]
    assert all(journal.append(entry) for entry in entries)
    (segment,) = (tmp_path / JOURNAL_DIR).iterdir()
    whole = segment.read_bytes()  # as a kill leaves it: the window reserved, its unused end zeros
    end = sum(8 + len(entry) for entry in entries)
    assert len(whole) > end and whole[end:] == bytes(len(whole) - end)
    assert read_frames(segment) == (entries, True)
    journal.close()
    assert segment.stat().st_size == journal.bytes == end, "sealing gives the unused end back"
    assert read_frames(segment) == (entries, True)
    segment.write_bytes(whole[: end - 3] + bytes(len(whole) - end + 3))  # a write the kill cut short
    assert read_frames(segment) == (entries[:2], False)
    segment.write_bytes(whole[: end - 1] + b"X" + whole[end:])  # a damaged last entry
    assert read_frames(segment) == (entries[:2], False)
    last = end - 8 - len(entries[2])
    # a header of zeros before a payload that is not (a write torn there)
    segment.write_bytes(whole[:last] + bytes(8) + whole[last + 8 :])
    assert read_frames(segment) == (entries[:2], False)


def test_entries_across_windows_and_segments_read_back_in_order(tmp_path, monkeypatch):
    page = os.sysconf("SC_PAGE_SIZE")
    monkeypatch.setattr("transformer.sink.journal.SEGMENT_BYTES", 32 * page)
    journal = Journal(tmp_path, max_bytes=64 * page)  # windows of 16 pages
    entries = [bytes([i % 251 + 1]) * (300 + i % 400) for i in range(400)]
    assert all(journal.append(entry) for entry in entries)
    assert journal.bytes <= 64 * page
    journal.close()
    segments = sorted((tmp_path / JOURNAL_DIR).iterdir())
    assert len(segments) >= 2 and sum(path.stat().st_size for path in segments) == journal.bytes
    assert [frame for path in segments for frame in read_frames(path)[0]] == entries
    assert all(read_frames(path)[1] for path in segments)


def test_a_segment_is_deleted_once_everything_in_it_is_resolved(tmp_path):
    journal = Journal(tmp_path)
    for _ in range(3):
        journal.append(b"a")
    assert journal.rotate() == [], "three entries still unresolved"
    journal.append(b"b")  # into the next segment
    first = journal.resolved(2)
    assert first == [] and journal.unresolved() == 2
    done = journal.resolved(1)
    assert [p.name for p in done] == ["000000000000.wal"]
    assert journal.resolved(1) == [], "the segment still written to is not done"
    assert [p.name for p in journal.rotate()] == ["000000000001.wal"]


def test_an_answered_batch_survives_a_kill_before_any_flush(tmp_path):
    """A child process submits and dies without closing its sink (as SIGKILL would leave it); the next start
    spools the journal, and closing uploads it: every batch once, nothing more."""
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from tests.sink_servers import FEATURE_NAMES, file_sink_config, sample_batch
        from transformer.sink import ScoreSink, SinkConfig
        sink = ScoreSink(SinkConfig(uri={(tmp_path / "lake").as_uri()!r}, spool_dir=Path({str(tmp_path / "spool")!r}),
                                    feature_names=FEATURE_NAMES, flush_seconds=3600))
        sink.start()
        for seed in range(20):
            assert sink.submit(sample_batch(1 + seed % 3, seed=seed))
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", child], cwd=ROOT, check=True, timeout=60)
    assert lake_scoring_ids(tmp_path) == [] and not list((tmp_path / "spool").rglob("*.parquet"))
    expected = sorted(sample_batch(1 + seed % 3, seed=seed).scoring_id for seed in range(20))

    sink = ScoreSink(config(tmp_path))
    sink.start()
    sink.close(grace_seconds=10)
    got = lake_scoring_ids(tmp_path)
    assert sorted(set(got)) == expected and len(got) == sum(1 + seed % 3 for seed in range(20))
    assert not list((tmp_path / "spool" / JOURNAL_DIR).iterdir()), "replayed segments are deleted"

    again = ScoreSink(config(tmp_path))  # a clean close leaves nothing to replay
    again.start()
    again.close(grace_seconds=10)
    assert sorted(lake_scoring_ids(tmp_path)) == sorted(got)


def test_flushed_batches_leave_no_journal_and_journaling_can_be_turned_off(tmp_path):
    sink = ScoreSink(config(tmp_path))
    sink.start()
    for seed in range(5):
        sink.submit(sample_batch(2, seed=seed))
    assert any((tmp_path / "spool" / JOURNAL_DIR).iterdir())
    sink.flush()
    assert not list((tmp_path / "spool" / JOURNAL_DIR).iterdir())
    sink.close(grace_seconds=10)

    off = tmp_path / "off"
    sink = ScoreSink(config(off, journal=False))
    sink.start()
    sink.submit(sample_batch(2, seed=9))
    assert not list((off / "spool" / JOURNAL_DIR).iterdir())
    sink.close(grace_seconds=10)
    assert len(lake_scoring_ids(off)) == 2


def test_a_journal_that_cannot_be_written_leaves_the_batch_in_memory(tmp_path, monkeypatch, caplog):
    sink = ScoreSink(config(tmp_path))
    sink.start()

    def full(fd, offset, length):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr("transformer.sink.journal.os.posix_fallocate", full)
    assert sink.submit(sample_batch(2, seed=1)), "the request is still recorded"
    monkeypatch.undo()
    assert "cannot append" in caplog.text
    sink.close(grace_seconds=10)
    assert len(lake_scoring_ids(tmp_path)) == 2


def test_the_journal_stops_at_its_bound_and_takes_entries_again_once_segments_go(tmp_path):
    page = os.sysconf("SC_PAGE_SIZE")
    journal = Journal(tmp_path, max_bytes=4 * page)  # windows of one page
    entry = b"x" * (page // 2 - 8)  # two frames a page
    taken = [journal.append(entry) for _ in range(10)]
    assert taken == [True] * 8 + [False] * 2, "the bound counts the disk the segment reserves"
    (segment,) = (tmp_path / JOURNAL_DIR).iterdir()
    assert journal.bytes == segment.stat().st_size == 4 * page
    deleted = journal.resolved(8) + journal.rotate()
    assert deleted == [segment] and journal.bytes == 0
    segment.unlink()  # what the sink does with the paths it is given
    assert journal.append(entry)
    assert journal.append(b"y" * (2 * page)), "a batch larger than a window takes a window of its size"
    assert not journal.append(b"z" * (4 * page)), "but never one past the bound"
    journal.close()
    (segment,) = (tmp_path / JOURNAL_DIR).iterdir()
    assert read_frames(segment) == ([entry, b"y" * (2 * page)], True)


def test_the_journal_takes_little_more_disk_than_it_holds_across_flush_passes(tmp_path):
    """Each flush pass seals a segment and the next request opens one. Whole reservations kept by sealed segments
    crowded a small spool volume off its disk (an audit lost 3,750 answered batches on a 3 MiB tmpfs)."""
    journal = Journal(tmp_path)
    entry = b"x" * 25_000  # a batch of 100 leads
    waiting = 0  # entries of the sealed segment the last pass has not spooled yet
    for _ in range(20):  # a pass: five requests, then the segment is sealed; the one before it is spooled
        assert all(journal.append(entry) for _ in range(5))
        for path in journal.resolved(waiting) + journal.rotate():
            path.unlink()
        waiting = 5
        on_disk = sum(path.stat().st_size for path in (tmp_path / JOURNAL_DIR).iterdir())
        held = 5 * (8 + len(entry))
        assert on_disk == journal.bytes == held, (on_disk, held)


def test_an_entry_that_could_not_be_written_keeps_later_entries_resolving_their_own(tmp_path):
    """One failed append (a full disk) used to shift every later resolution by one: a pass that spooled B0 and B1
    deleted the segment holding B2, which was still in memory, so a kill then lost B2 although it was journaled."""
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from tests.sink_servers import FEATURE_NAMES, file_sink_config, sample_batch
        from transformer.sink import ScoreSink, SinkConfig
        import transformer.sink.journal as journal

        sink = ScoreSink(SinkConfig(uri={(tmp_path / "lake").as_uri()!r}, spool_dir=Path({str(tmp_path / "spool")!r}),
                                    feature_names=FEATURE_NAMES, flush_records=2, flush_seconds=3600))
        assert sink.submit(sample_batch(1, seed=0))
        real_fallocate = journal.os.posix_fallocate
        journal.os.posix_fallocate = lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        sink._journal.rotate()  # B1 needs a new segment, and the disk refuses to reserve it
        assert sink.submit(sample_batch(1, seed=1)), "answered: in memory only"
        assert sink._journal.unresolved() == 1
        journal.os.posix_fallocate = real_fallocate
        assert sink.submit(sample_batch(1, seed=2))
        sink._spool_due(force=False)  # the batcher's pass: a file of B0 and B1; B2 stays in memory
        os._exit(0)  # killed before the next pass
        """
    )
    subprocess.run([sys.executable, "-c", child], cwd=ROOT, check=True, timeout=60)
    sink = ScoreSink(config(tmp_path))
    sink.start()
    sink.close(grace_seconds=10)
    assert sorted(set(lake_scoring_ids(tmp_path))) == sorted(
        sample_batch(1, seed=s).scoring_id for s in range(3)
    )


def test_a_journal_that_cannot_open_a_segment_fails_no_request(tmp_path, monkeypatch, caplog):
    """A read-only or full journal folder raised out of submit(): every scoring request became a 500."""
    sink = ScoreSink(config(tmp_path))
    sink.start()
    monkeypatch.setattr(
        "transformer.sink.journal.os.open",
        lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")),
    )
    assert all(sink.submit(sample_batch(1, seed=s)) for s in range(3))
    monkeypatch.undo()
    assert "cannot append" in caplog.text and sink.queue_depth == 3
    sink.close(grace_seconds=10)
    assert len(lake_scoring_ids(tmp_path)) == 3


def test_a_disk_that_refuses_every_reservation_leaves_one_segment_not_one_per_request(tmp_path, monkeypatch):
    journal = Journal(tmp_path)
    monkeypatch.setattr(
        "transformer.sink.journal.os.posix_fallocate",
        lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")),
    )
    assert [journal.append(b"x" * 100) for _ in range(5)] == [False] * 5
    assert len(list((tmp_path / JOURNAL_DIR).iterdir())) == 1 and journal.bytes == 0
    monkeypatch.undo()
    assert journal.append(b"y" * 100), "the next append reserves in the same segment"
    journal.close()
    (segment,) = (tmp_path / JOURNAL_DIR).iterdir()
    assert read_frames(segment) == ([b"y" * 100], True)


def test_an_empty_entry_is_refused_and_hides_no_later_entry(tmp_path):
    """Stored, its zero header read as the segment's end: every later entry of the segment was invisible to replay."""
    journal = Journal(tmp_path)
    assert journal.append(b"a" * 10)
    assert not journal.append(b"")
    assert journal.append(b"b" * 10)
    (segment,) = (tmp_path / JOURNAL_DIR).iterdir()
    assert read_frames(segment) == ([b"a" * 10, b"b" * 10], True)
    assert journal.resolved(3) == [] and journal.unresolved() == 0


def test_a_reservation_the_disk_refuses_halfway_is_given_back(tmp_path, monkeypatch):
    """ext4 keeps what a refused posix_fallocate allocated; uncounted, it took the spool's room on a small volume."""
    page = os.sysconf("SC_PAGE_SIZE")
    journal = Journal(tmp_path, max_bytes=64 * page)
    assert journal.append(b"a" * 100)
    (segment,) = (tmp_path / JOURNAL_DIR).iterdir()
    reserved = segment.stat().st_size
    real = os.posix_fallocate

    def halfway(fd, offset, length):
        real(fd, offset, length // 2)
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr("transformer.sink.journal.os.posix_fallocate", halfway)
    assert not journal.append(b"b" * reserved)  # needs a larger window
    assert segment.stat().st_size == reserved == journal.bytes
    monkeypatch.undo()
    assert journal.append(b"c" * 100)
    journal.close()
    assert read_frames(segment) == ([b"a" * 100, b"c" * 100], True)


def test_a_segment_the_replay_cannot_delete_does_not_stop_the_start(tmp_path, monkeypatch, caplog):
    journal = Journal(tmp_path / "spool")
    journal.append(encode_scored(sample_batch(2, seed=4)))
    journal.close()
    real_unlink = Path.unlink

    def refuse(path, missing_ok=False):
        if path.suffix == ".wal":
            raise PermissionError(13, "denied")
        return real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    sink = ScoreSink(config(tmp_path))
    sink.start()
    assert "cannot delete the replayed segment" in caplog.text
    sink.close(grace_seconds=10)
    assert len(lake_scoring_ids(tmp_path)) == 2


def test_a_segment_holds_one_flush_window_not_two(tmp_path, monkeypatch):
    """Entries appended while a pass encodes its file belong to the next window: sealing the segment only after the
    pass let them pin it, so a kill replayed (duplicated) the window that pass had already spooled."""
    sink = ScoreSink(config(tmp_path, flush_records=2))
    for seed in range(2):
        sink.submit(sample_batch(1, seed=seed))
    spool = sink._spool_batches

    def spool_while_a_request_arrives(batches):
        sink.submit(sample_batch(1, seed=9))  # the event loop answers a request meanwhile
        return spool(batches)

    monkeypatch.setattr(sink, "_spool_batches", spool_while_a_request_arrives)
    sink._spool_due(force=False)
    segments = sorted((tmp_path / "spool" / JOURNAL_DIR).iterdir())
    assert len(segments) == 1 and len(read_frames(segments[0])[0]) == 1, (
        "only the request the pass did not spool"
    )
    monkeypatch.undo()
    sink.close(grace_seconds=10)
