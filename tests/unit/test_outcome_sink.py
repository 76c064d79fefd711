"""The outcomes table rides on the sink's delivery: own schema, own day partitions, own spool and metrics."""

from datetime import UTC, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from contract.outcomes import outcome_key
from tests.sink_servers import FEATURE_NAMES, sample_batch
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink.outcomes import OUTCOME_METRICS, OutcomeBatch, outcome_sink, outcomes_schema, utc_day
from transformer.sink.sink_metrics import QUEUE_DEPTH

DAY = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)


def batch(day: datetime, n: int, **changes) -> OutcomeBatch:
    when = [day + timedelta(minutes=i) for i in range(n)]
    fields = dict(
        request_id="call-1",
        received_at=datetime.now(UTC),
        source="api",
        api_key_name="crm",
        lead_ids=[f"L-{i}" for i in range(n)],
        outcomes=["converted"] * n,
        occurred_at=when,
        outcome_ids=[outcome_key(f"L-{i}", "converted", w) for i, w in enumerate(when)],
        deal_values=[None] * n,
        scoring_ids=[None] * n,
        request_ids=[None] * n,
    )
    return OutcomeBatch(**{**fields, **changes})


def test_outcomes_land_in_day_partitions_with_their_schema(tmp_path):
    lake = tmp_path / "lake"
    sink = outcome_sink(SinkConfig(uri=lake.as_uri(), spool_dir=tmp_path / "spool"))
    assert sink.submit(batch(DAY, 20)) and sink.submit(batch(DAY + timedelta(days=1), 5))
    sink.close()
    files = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.parquet"))
    assert [f.split("/")[0] for f in files] == ["dt=2026-11-20", "dt=2026-11-21"]
    table = pq.read_table(lake / files[0])
    assert table.schema.equals(outcomes_schema()) and table.num_rows == 20
    assert table.column("occurred_at").to_pylist()[0] == DAY


def test_the_day_partition_is_always_zero_padded_and_in_utc():
    assert utc_day(datetime(1, 1, 1, 5, tzinfo=UTC)) == "0001-01-01"  # strftime's %Y would give "1-01-01"
    assert utc_day(datetime(2026, 3, 4, 23, tzinfo=timezone(timedelta(hours=-2)))) == "2026-03-05"


def test_a_malformed_batch_is_refused_before_it_is_queued(tmp_path):
    sink = outcome_sink(SinkConfig(uri=(tmp_path / "lake").as_uri(), spool_dir=tmp_path / "spool"))
    with pytest.raises(ValueError, match="one value per lead"):
        sink.submit(batch(DAY, 3, outcomes=["converted"]))
    with pytest.raises(ValueError, match="one UTC day"):
        sink.submit(batch(DAY, 60))  # 23:30 + 59 minutes crosses midnight
    assert sink.queue_depth == 0
    sink.close()


def test_two_sinks_in_one_process_keep_their_own_gauges(tmp_path):
    scores = ScoreSink(
        SinkConfig(
            uri=(tmp_path / "scores").as_uri(),
            spool_dir=tmp_path / "s-spool",
            feature_names=FEATURE_NAMES,
            flush_seconds=3600,
        )
    )
    outcomes = outcome_sink(
        SinkConfig(uri=(tmp_path / "outcomes").as_uri(), spool_dir=tmp_path / "o-spool", flush_seconds=3600)
    )
    scores.submit(sample_batch(7, seed=1))
    outcomes.submit(batch(DAY, 3))
    scores._update_gauges()
    outcomes._update_gauges()
    assert QUEUE_DEPTH._value.get() == 7
    assert OUTCOME_METRICS.QUEUE_DEPTH._value.get() == 3
    scores.close()
    outcomes.close()
