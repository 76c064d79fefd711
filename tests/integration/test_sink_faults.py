"""Fault injection on the sink (issue 19): real spool files made to vanish, rot or refuse deletion, real stores
(moto's S3 server, azurite, a lake folder) refusing one object, a real full disk. In every case the files behind a
bad one keep flowing, the uploader outlives the error, and every record is either stored or counted."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from prometheus_client import REGISTRY

from tests.sink_servers import FEATURE_NAMES, expected_rows, sample_batch, sorted_rows, wait_for
from transformer.sink import ScoreSink, SinkConfig, lake_schema

FAST_RETRIES = dict(upload_retry_initial_seconds=0.05, upload_retry_max_seconds=0.5)
PATIENCE = 20.0  # seconds; only guards against hanging


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def dropped(reason: str) -> float:
    return metric("lead_scoring_sink_dropped_records_total", reason=reason)


def quarantined() -> float:
    return metric("lead_scoring_sink_quarantined_files_total")


def spool_one(sink: ScoreSink, batch):
    """Put one request on the spool as its own file; the spool entry."""
    known = {f.key for f in sink.spool.pending()}
    assert sink.submit(batch)
    sink.flush()
    (entry,) = [f for f in sink.spool.pending() if f.key not in known]
    return entry


@contextlib.contextmanager
def refusing_changes(path: Path):
    """Make the filesystem itself refuse to delete `path` (a file) or to add names to it (a directory): the
    immutable attribute as root (EPERM), a read-only directory otherwise (EACCES)."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip(f"chattr +i is not supported on the filesystem of {path}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        folder = path if path.is_dir() else path.parent
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)


# ---- reading the stores back -------------------------------------------------------------------------------------


def s3_config(server, tmp_path, **overrides) -> SinkConfig:
    return SinkConfig(
        uri="s3://lake/scores",
        spool_dir=tmp_path / "spool",
        s3_endpoint_url=server.endpoint_url,
        feature_names=FEATURE_NAMES,
        **{**FAST_RETRIES, **overrides},
    )


def s3_objects(server) -> dict[str, bytes]:
    client = server.client()
    listed = client.list_objects_v2(Bucket="lake", Prefix="scores/").get("Contents", [])
    return {o["Key"]: client.get_object(Bucket="lake", Key=o["Key"])["Body"].read() for o in listed}


def read_all(objects: dict[str, bytes]) -> pa.Table:
    """Every object decodes in full, as a query engine would read it."""
    tables = [pq.read_table(io.BytesIO(data)) for data in objects.values()]
    return pa.concat_tables(tables) if tables else lake_schema(FEATURE_NAMES).empty_table()


def blob_objects(server) -> dict[str, bytes]:
    container = BlobServiceClient.from_connection_string(server.connection_string).get_container_client(
        "lake"
    )
    return {
        b.name: container.download_blob(b.name).readall()
        for b in container.list_blobs(name_starts_with="scores/")
    }


# ---- defect 1: one bad file must not hold up the files behind it -------------------------------------------------


def test_a_vanished_spool_file_is_counted_and_the_files_behind_it_still_upload(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    lost, behind = sample_batch(4, seed=1), sample_batch(6, seed=2)
    first = spool_one(sink, lost)
    spool_one(sink, behind)
    first.path.unlink()  # gone before its upload: an operator's cleanup, a damaged volume
    before = dropped("spool_file_lost")
    sink.start()
    try:
        wait_for(lambda: s3_objects(moto_s3), timeout=PATIENCE)
        wait_for(lambda: not sink.spool.pending(), timeout=PATIENCE)
    finally:
        sink.close(grace_seconds=2)
    assert sorted_rows(read_all(s3_objects(moto_s3))) == expected_rows([behind])
    assert dropped("spool_file_lost") - before == len(lost)


def test_damaged_and_unreadable_spool_files_are_quarantined_and_never_reach_the_lake(azurite, tmp_path):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.get_container_client("lake").create_container()
    sink = ScoreSink(azurite.sink_config(tmp_path, **FAST_RETRIES))
    good = sample_batch(5, seed=3)
    truncated = spool_one(sink, sample_batch(7, seed=1))
    unreadable = spool_one(sink, sample_batch(2, seed=2))
    spool_one(sink, good)
    data = truncated.path.read_bytes()
    truncated.path.write_bytes(data[: len(data) // 2])  # a torn write: footer gone
    unreadable.path.unlink()
    unreadable.path.mkdir()  # open() now fails with EISDIR, as root too
    before = quarantined()
    sink.start()
    try:
        wait_for(lambda: not sink.spool.pending(), timeout=PATIENCE)
    finally:
        sink.close(grace_seconds=2)
    # The lake holds the good file only, and every object in it decodes: queries over the partition keep working.
    assert sorted_rows(read_all(blob_objects(azurite))) == expected_rows([good])
    assert quarantined() - before == 2
    quarantine = tmp_path / "spool" / "quarantine"
    assert (quarantine / truncated.key).read_bytes() == data[: len(data) // 2]
    assert (quarantine / unreadable.key).is_dir()
    # A restart does not try them again: the quarantine is not part of the spool's queue.
    again = ScoreSink(azurite.sink_config(tmp_path))
    assert again.spool.pending() == []
    again.close(grace_seconds=0)


def test_a_bit_flip_inside_a_data_page_is_caught_before_upload(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    damaged = spool_one(sink, sample_batch(50, seed=4))
    data = bytearray(damaged.path.read_bytes())
    data[len(data) // 4] ^= 0xFF  # inside the column chunks; the footer still parses
    damaged.path.write_bytes(bytes(data))
    pq.read_metadata(damaged.path)  # a footer-only check would let it through
    before = quarantined()
    sink.start()
    try:
        wait_for(lambda: quarantined() > before, timeout=PATIENCE)
    finally:
        sink.close(grace_seconds=1)
    assert s3_objects(moto_s3) == {}


def test_a_file_this_process_wrote_is_vouched_for_by_its_crc_so_even_a_change_that_decodes_is_caught(
    moto_s3, tmp_path
):
    """Own files are checked by the CRC-32 of the bytes written (no second decode). A changed statistics value in
    the footer still decodes, page checksums and all: only the CRC can tell."""
    moto_s3.client().create_bucket(Bucket="lake")
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    entry = spool_one(sink, sample_batch(20, seed=6))
    assert entry.crc32 is not None
    data = entry.path.read_bytes()
    footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    needle = b"lead-"  # lead ids appear in the footer's min/max statistics of lead_id
    at = data.index(needle, footer_start)
    changed = data[:at] + b"LEAD-" + data[at + len(needle) :]
    entry.path.write_bytes(changed)
    assert pq.ParquetFile(entry.path, page_checksum_verification=True).read().num_rows == 20  # still decodes
    before = quarantined()
    sink.start()
    try:
        wait_for(lambda: quarantined() > before, timeout=PATIENCE)
    finally:
        sink.close(grace_seconds=1)
    assert s3_objects(moto_s3) == {}


def test_a_damaged_file_left_by_an_earlier_process_is_decoded_in_full_and_quarantined(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    moto_s3.stop()  # the first life cannot upload: its files stay on the spool
    first = ScoreSink(s3_config(moto_s3, tmp_path))
    damaged = spool_one(first, sample_batch(50, seed=7))
    intact = sample_batch(3, seed=8)
    spool_one(first, intact)
    first.close(grace_seconds=0)
    data = bytearray(damaged.path.read_bytes())
    data[len(data) // 4] ^= 0xFF  # inside the column chunks; the footer still parses
    damaged.path.write_bytes(bytes(data))
    moto_s3.start()
    again = ScoreSink(s3_config(moto_s3, tmp_path))
    assert all(f.crc32 is None for f in again.spool.pending())  # nothing vouches for another process's bytes
    before = quarantined()
    again.start()
    try:
        wait_for(lambda: not again.spool.pending(), timeout=PATIENCE)
    finally:
        again.close(grace_seconds=2)
    assert quarantined() - before == 1
    assert sorted_rows(read_all(s3_objects(moto_s3))) == expected_rows([intact])


def test_a_leftover_whose_footer_cannot_be_read_is_never_reported_as_holding_zero_records(
    moto_s3, tmp_path, caplog
):
    """A leftover adopted with an unreadable footer was logged as 0 records, and if it later passed the full check
    (the read error was transient), its upload added 0 to records_written_total. Its count is unknown until the
    check decodes it; the start line says so, and the upload counts what the check found."""
    moto_s3.client().create_bucket(Bucket="lake")
    moto_s3.stop()  # the first life cannot upload: its files stay on the spool
    first = ScoreSink(s3_config(moto_s3, tmp_path))
    flaky_batch, torn_batch, intact_batch = (sample_batch(n, seed=s) for s, n in ((11, 40), (12, 9), (13, 3)))
    flaky = spool_one(first, flaky_batch)
    torn = spool_one(first, torn_batch)
    spool_one(first, intact_batch)
    first.close(grace_seconds=0)
    whole = flaky.path.read_bytes()
    flaky.path.write_bytes(whole[:100])  # unreadable while the next process adopts it …
    torn_bytes = torn.path.read_bytes()
    torn.path.write_bytes(torn_bytes[: len(torn_bytes) // 2])  # … this one for good
    again = ScoreSink(s3_config(moto_s3, tmp_path))
    flaky.path.write_bytes(whole)  # … and readable again before its upload
    moto_s3.start()
    written = metric("lead_scoring_sink_records_written_total")
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        again.start()
        try:
            wait_for(lambda: not again.spool.pending(), timeout=PATIENCE)
        finally:
            again.close(grace_seconds=2)
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "3 scored records in 3 files, 2 of them with an unreadable footer (count unknown)" in line
        and "left on the spool by an earlier process" in line
        for line in lines
    ), lines
    assert any(
        torn.key in line and "(scored records uncounted: unreadable footer)" in line for line in lines
    ), lines
    assert metric("lead_scoring_sink_records_written_total") - written == 40 + 3
    assert sorted_rows(read_all(s3_objects(moto_s3))) == expected_rows([flaky_batch, intact_batch])


def test_a_store_refusing_one_object_does_not_hold_up_the_others(tmp_path):
    lake = tmp_path / "lake"
    refused = lake / "model=lead-scoring" / "dt=2025-01-01" / "hour=03"
    refused.mkdir(parents=True)
    sink = ScoreSink(
        SinkConfig(
            uri=lake.as_uri(), spool_dir=tmp_path / "spool", feature_names=FEATURE_NAMES, **FAST_RETRIES
        )
    )
    stuck_batch = sample_batch(3, seed=1, scored_at=datetime(2025, 1, 1, 3, 10, tzinfo=UTC))
    later_batch = sample_batch(4, seed=2, scored_at=datetime(2025, 1, 1, 4, 10, tzinfo=UTC))
    stuck = spool_one(sink, stuck_batch)  # oldest: first in line
    spool_one(sink, later_batch)
    failures = metric("lead_scoring_sink_upload_failures_total")
    with refusing_changes(refused):
        sink.start()
        wait_for(
            lambda: list((lake / "model=lead-scoring" / "dt=2025-01-01" / "hour=04").glob("*.parquet")),
            timeout=PATIENCE,
        )
        wait_for(lambda: metric("lead_scoring_sink_upload_failures_total") - failures >= 2, timeout=PATIENCE)
        # Retried, kept, not given up (waited for: the later file leaves the spool just after its upload).
        wait_for(lambda: [f.key for f in sink.spool.pending()] == [stuck.key], timeout=PATIENCE)
    wait_for(lambda: not sink.spool.pending(), timeout=PATIENCE)  # the store takes it once it can
    sink.close(grace_seconds=2)
    table = pq.read_table(lake, partitioning=None, schema=lake_schema(FEATURE_NAMES))
    assert sorted_rows(table) == expected_rows([stuck_batch, later_batch])


# ---- defect 2: a failed delete must not kill the uploader --------------------------------------------------------


def test_a_spool_file_that_cannot_be_deleted_does_not_stop_the_uploader(moto_s3, tmp_path):
    moto_s3.client().create_bucket(Bucket="lake")
    config = s3_config(moto_s3, tmp_path, flush_seconds=3600, flush_records=1_000_000)
    sink = ScoreSink(config)
    first_batch, second_batch, late_batch = (sample_batch(n, seed=s) for s, n in ((1, 3), (2, 4), (3, 5)))
    undeletable = spool_one(sink, first_batch)
    spool_one(sink, second_batch)
    with refusing_changes(undeletable.path):
        sink.start()
        wait_for(lambda: len(s3_objects(moto_s3)) == 2, timeout=PATIENCE)  # the file after it went too
        assert sink.submit(late_batch)  # still accepting; only close() flushes it (no size or age flush due)
        sink.close(grace_seconds=10)
        assert undeletable.path.exists()
    objects = s3_objects(moto_s3)
    assert sorted_rows(read_all(objects)) == expected_rows([first_batch, second_batch, late_batch])
    # The stored file stayed on disk; the next start on this spool re-puts the same key, which the store
    # reports as existing: no duplicate, and the file is gone.
    again = ScoreSink(config)
    again.start()
    wait_for(lambda: not again.spool.pending(), timeout=PATIENCE)
    again.close(grace_seconds=2)
    assert not undeletable.path.exists()
    assert s3_objects(moto_s3).keys() == objects.keys()


# ---- drop reasons say what happened ------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: a real ENOSPC. Needs root (mount)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("encoder", ["thread", "process"])
def test_a_full_disk_is_counted_as_disk_full_not_spool_full(encoder, tiny_disk, tmp_path, caplog):
    sink = ScoreSink(
        SinkConfig(
            uri=(tmp_path / "lake").as_uri(),
            spool_dir=tiny_disk / "spool",
            feature_names=FEATURE_NAMES,
            encoder=encoder,
        )
    )  # the byte budget (1 GiB) is far away
    before = {reason: dropped(reason) for reason in ("disk_full", "spool_full")}
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        assert sink.submit(sample_batch(3000, seed=1))  # ~800 KB of Parquet
        sink.flush()
    sink.close(grace_seconds=0)
    assert dropped("disk_full") - before["disk_full"] == 3000
    assert dropped("spool_full") == before["spool_full"]
    assert any("disk_full" in r.getMessage() and "No space left" in r.getMessage() for r in caplog.records)
    assert not [p for p in (tiny_disk / "spool").rglob("*") if p.is_file() and p.name != ".lock"]


@pytest.mark.parametrize("encoder", ["thread", "process"])
def test_a_spool_that_refuses_writes_is_counted_as_disk_error(encoder, tmp_path):
    sink = ScoreSink(
        SinkConfig(
            uri=(tmp_path / "lake").as_uri(),
            spool_dir=tmp_path / "spool",
            feature_names=FEATURE_NAMES,
            encoder=encoder,
        )
    )
    before = {reason: dropped(reason) for reason in ("disk_error", "spool_full")}
    with refusing_changes(tmp_path / "spool"):  # EPERM/EACCES, as a read-only or failing volume would
        assert sink.submit(sample_batch(8, seed=1))
        sink.flush()
    sink.close(grace_seconds=0)
    assert dropped("disk_error") - before["disk_error"] == 8
    assert dropped("spool_full") == before["spool_full"]


def test_a_request_that_cannot_be_encoded_costs_only_its_own_records(tmp_path):
    sink = ScoreSink(
        SinkConfig(
            uri=(tmp_path / "lake").as_uri(), spool_dir=tmp_path / "spool", feature_names=FEATURE_NAMES
        )
    )
    good = sample_batch(6, seed=1)
    bad = sample_batch(2, seed=2)
    bad.lead_ids[1] = 12345  # not a string: submit() does not look inside, the Parquet encoder refuses it
    before = {reason: dropped(reason) for reason in ("build_error", "spool_full")}
    assert sink.submit(good) and sink.submit(bad)
    sink.close(grace_seconds=5)  # both requests are in one file's worth of records
    assert dropped("build_error") - before["build_error"] == 2
    assert dropped("spool_full") == before["spool_full"]
    table = pq.read_table(tmp_path / "lake", partitioning=None, schema=lake_schema(FEATURE_NAMES))
    assert sorted_rows(table) == expected_rows([good])


def test_while_the_store_is_down_new_spool_files_do_not_hurry_the_attempts(moto_s3, tmp_path):
    """Each new spool file wakes the uploader; it used to try that file at once, so attempts followed the flush
    rate (one per file) instead of the backoff. Now the backoff paces every attempt while uploads fail."""
    moto_s3.client().create_bucket(Bucket="lake")
    moto_s3.stop()
    sink = ScoreSink(
        s3_config(moto_s3, tmp_path, upload_retry_initial_seconds=0.5, upload_retry_max_seconds=30.0)
    )
    sink.start()
    failures = lambda: REGISTRY.get_sample_value("lead_scoring_sink_upload_failures_total") or 0.0  # noqa: E731
    before, batches = failures(), []
    started = time.monotonic()
    while time.monotonic() - started < 6.0:  # a new spool file every 0.3 s
        batches.append(sample_batch(2, seed=len(batches)))
        assert sink.submit(batches[-1])
        sink.flush()
        time.sleep(0.3)
    attempts = failures() - before
    # Backoff 0.5 s doubling, jitter down to half: at most 1 + 4 attempts start within 6 s (0.25+0.5+1+2 = 3.75 s
    # before the fifth); one per file would be ~20.
    assert len(sink.spool.pending()) >= 15 and 1 <= attempts <= 5, attempts
    moto_s3.start()
    sink.close(
        grace_seconds=PATIENCE
    )  # the pause is capped by the backoff: within the grace, all of it lands
    assert sorted_rows(read_all(s3_objects(moto_s3))) == expected_rows(batches)


def test_every_drop_is_in_the_shutdown_line_even_those_the_throttled_warnings_left_out(tmp_path, caplog):
    """Drop warnings are throttled (one per 10 s) and the counter dies with the process: drops in a pod's last
    seconds (a full spool during SIGTERM's drain) left no trace. The shutdown line counts them all, by reason."""
    sink = ScoreSink(
        SinkConfig(
            uri=(tmp_path / "lake").as_uri(),
            spool_dir=tmp_path / "spool",
            feature_names=FEATURE_NAMES,
            spool_max_bytes=1,  # every file is over budget: each flush drops its records as spool_full
        )
    )
    before = dropped("spool_full")
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        for seed in range(4):
            assert sink.submit(sample_batch(5, seed=seed))
            sink.flush()
        sink.close(grace_seconds=0)
    assert dropped("spool_full") - before == 20
    warnings = [r.getMessage() for r in caplog.records if "sink dropped" in r.getMessage()]
    assert len(warnings) == 1  # throttled: the other three drops said nothing at the time
    closing = [r.getMessage() for r in caplog.records if "sink closed having dropped" in r.getMessage()]
    assert closing == [
        "sink closed having dropped 20 scored records since it started (spool_full: 20): they are not in the lake"
    ]


# ---- what is left at shutdown is counted, and delivered by the next start ---------------------------------------


def test_records_left_on_the_spool_at_shutdown_are_logged_and_uploaded_by_the_next_start(
    moto_s3, tmp_path, caplog
):
    moto_s3.client().create_bucket(Bucket="lake")
    moto_s3.stop()  # the store is down for the whole first life
    sink = ScoreSink(s3_config(moto_s3, tmp_path))
    sink.start()
    batches = [sample_batch(4, seed=1), sample_batch(3, seed=2)]
    for batch in batches:
        assert sink.submit(batch)
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        sink.close(grace_seconds=0.5)
    closing = [r.getMessage() for r in caplog.records if "sink closed with" in r.getMessage()]
    assert closing and "7 scored records in 1 file;" in closing[0]

    moto_s3.start()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformer.sink"):
        again = ScoreSink(s3_config(moto_s3, tmp_path))
        again.start()
    assert any(
        "left on the spool by an earlier process: 7 scored records in 1 file;" in r.getMessage()
        for r in caplog.records
    )
    wait_for(lambda: not again.spool.pending(), timeout=PATIENCE)
    again.close(grace_seconds=2)
    assert sorted_rows(read_all(s3_objects(moto_s3))) == expected_rows(batches)


def test_a_request_submitted_while_the_sink_closes_is_refused_and_counted(tmp_path):
    """close() set its flag only at the very end: a submit() during the flush and upload was accepted (True: the
    outcomes route told its client "recorded") and then nothing drained it, uncounted."""
    import threading

    from transformer.sink.local import LocalFolderWriter

    class HeldWriter(LocalFolderWriter):
        """The lake folder, with each upload held until the test lets it go: close() is certainly mid-way."""

        entered, release = threading.Event(), threading.Event()

        def put(self, key, local_path):
            self.entered.set()
            self.release.wait(PATIENCE)
            super().put(key, local_path)

    lake = tmp_path / "lake"
    writer = HeldWriter(lake)
    sink = ScoreSink(
        SinkConfig(uri=lake.as_uri(), spool_dir=tmp_path / "spool", feature_names=FEATURE_NAMES),
        writer=writer,
    )
    sink.start()
    accepted, late = sample_batch(3, seed=1), sample_batch(4, seed=2)
    assert sink.submit(accepted)
    closing = threading.Thread(target=sink.close, kwargs={"grace_seconds": PATIENCE})
    closing.start()
    try:
        assert writer.entered.wait(PATIENCE), "close() never reached the upload"
        before = dropped("closed")
        assert sink.submit(late) is False
        assert dropped("closed") - before == 4
    finally:
        writer.release.set()
        closing.join(PATIENCE)
    table = pq.read_table(lake, partitioning=None, schema=lake_schema(FEATURE_NAMES))
    assert sorted_rows(table) == expected_rows([accepted])


def outcome_batch(seed: int, n: int = 50):
    from contract.outcomes import outcome_key
    from transformer.sink.outcomes import OutcomeBatch

    when = [datetime(2026, 11, 20, 9, tzinfo=UTC)] * n
    leads = [f"lead-{seed}-{i}" for i in range(n)]
    return OutcomeBatch(
        request_id=f"call-{seed}",
        received_at=datetime.now(UTC),
        source="api",
        api_key_name="crm",
        lead_ids=leads,
        outcomes=["converted"] * n,
        occurred_at=when,
        outcome_ids=[outcome_key(lead, "converted", t) for lead, t in zip(leads, when, strict=True)],
        deal_values=[None] * n,
        scoring_ids=[None] * n,
        request_ids=[None] * n,
    )


def test_outcomes_are_refused_before_the_spool_is_full_never_accepted_and_then_dropped(moto_s3, tmp_path):
    """The outcomes recorder answered "recorded" (200) while its spool was full, then dropped the outcomes at the
    flush (spool_full). A refusal is the intake's 503, which the CRM retries; it now refuses what the spool may not
    hold, and nothing it took is dropped."""
    from transformer.sink.outcomes import outcome_sink

    moto_s3.client().create_bucket(Bucket="lake")
    moto_s3.stop()  # the store is down: files stay on the spool
    config = SinkConfig(
        uri="s3://lake/outcomes",
        spool_dir=tmp_path / "spool",
        s3_endpoint_url=moto_s3.endpoint_url,
        spool_max_bytes=40_000,
        journal=False,
        **FAST_RETRIES,
    )
    sink = outcome_sink(config)
    spool_full = metric("lead_scoring_outcomes_sink_dropped_records_total", reason="spool_full")
    accepted = []
    sink.start()
    try:
        for seed in range(200):
            batch = outcome_batch(seed)
            if not sink.submit(batch):
                break
            accepted.append(batch)
            sink.flush()
        else:
            pytest.fail("a 40 kB spool took 10,000 outcomes")
        assert len(accepted) >= 3  # it did take outcomes while there was room
        assert metric("lead_scoring_outcomes_sink_dropped_records_total", reason="spool_full") == spool_full
        assert sum(f.records for f in sink.spool.pending()) == 50 * len(accepted)
        moto_s3.start()
        wait_for(lambda: not sink.spool.pending(), timeout=PATIENCE)
        assert sink.submit(outcome_batch(999))  # room again once the store took the files
    finally:
        sink.close(grace_seconds=5)
    client = moto_s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="lake", Prefix="outcomes/").get("Contents", [])]
    stored = pa.concat_tables(
        [pq.read_table(io.BytesIO(client.get_object(Bucket="lake", Key=k)["Body"].read())) for k in keys]
    )
    expected = {lead for b in [*accepted, outcome_batch(999)] for lead in b.lead_ids}
    assert sorted(stored["lead_id"].to_pylist()) == sorted(expected)


# ---- a file stored twice is counted once -------------------------------------------------------------------------


@pytest.mark.parametrize("uploader", ["thread", "process"])
@pytest.mark.parametrize("store", ["folder", "s3", "blob"])
def test_a_file_stored_before_a_crash_and_put_again_is_not_counted_twice(
    store, uploader, moto_s3, azurite, tmp_path, caplog
):
    """A crash between "stored" and "spool file deleted" leaves the file; the next start re-puts its key, which the
    store keeps. records_written_total counted those records a second time, so it overstated the lake."""
    if store == "s3":
        moto_s3.client().create_bucket(Bucket="lake")
        config = s3_config(moto_s3, tmp_path, uploader=uploader)
        objects = lambda: s3_objects(moto_s3)  # noqa: E731
    elif store == "blob":
        BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
            "lake"
        ).create_container()
        config = azurite.sink_config(tmp_path, uploader=uploader, **FAST_RETRIES)
        objects = lambda: blob_objects(azurite)  # noqa: E731
    else:
        lake = tmp_path / "lake"
        config = SinkConfig(
            uri=lake.as_uri(),
            spool_dir=tmp_path / "spool",
            feature_names=FEATURE_NAMES,
            uploader=uploader,
            **FAST_RETRIES,
        )
        objects = lambda: {str(p.relative_to(lake)): p.read_bytes() for p in lake.rglob("*.parquet")}  # noqa: E731
    written = lambda: metric("lead_scoring_sink_records_written_total")  # noqa: E731
    stored_bytes = lambda: metric("lead_scoring_sink_bytes_written_total")  # noqa: E731
    batch = sample_batch(6, seed=8)
    sink = ScoreSink(config)
    entry = spool_one(sink, batch)
    crash_copy = entry.path.read_bytes()
    before = written()
    sink.start()
    wait_for(lambda: not sink.spool.pending(), timeout=PATIENCE)
    sink.close(grace_seconds=2)
    assert written() - before == 6
    stored = objects()
    assert len(stored) == 1
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_bytes(crash_copy)  # as if the process died before deleting it

    before, before_bytes = written(), stored_bytes()
    caplog.set_level(logging.INFO, logger="transformer.sink.sink")
    again = ScoreSink(config)
    assert [f.key for f in again.spool.pending()] == [entry.key]
    again.start()
    wait_for(lambda: not again.spool.pending(), timeout=PATIENCE)
    again.close(grace_seconds=2)
    assert objects() == stored  # kept, not replaced, no second object
    assert written() - before == 0 and stored_bytes() - before_bytes == 0
    assert any(
        "already in the lake" in r.getMessage() and entry.key in r.getMessage() for r in caplog.records
    )
