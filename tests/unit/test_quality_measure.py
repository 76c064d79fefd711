"""The job on a small file lake that holds what real lakes hold: schema-v1 files next to v2 ones, shadow rows."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contract.outcomes import outcome_key
from quality.attribution import Window
from quality.lake import Lake
from quality.report import measure
from tests.sink_servers import FEATURE_NAMES, sample_batch
from transformer.sink import ScoreSink, SinkConfig
from transformer.sink.outcomes import OutcomeBatch, outcome_sink

NOW = datetime.now(UTC).replace(microsecond=0)


def test_v1_files_and_shadow_rows_are_measured_each_under_their_version(tmp_path):
    lake = tmp_path / "lake"
    scored_at = NOW - timedelta(hours=2)
    # A schema-v1 file (no scoring_id column), as the transformer wrote it before the migration.
    v2_like = sample_batch(40, scored_at=scored_at, seed=1)
    v1_table = pa.table(
        {
            "request_id": ["old-request"] * 40,
            "row": pa.array(range(40), pa.int32()),
            "lead_id": v2_like.lead_ids,
            "scored_at": pa.array([scored_at] * 40, pa.timestamp("us", tz="UTC")),
            "model_name": ["lead-scoring"] * 40,
            "model_version": ["v-old"] * 40,
            "score": pa.array(v2_like.scores),
            "bucket": pa.array(v2_like.buckets),
            "tier": v2_like.tiers,
        }
    ).replace_schema_metadata({b"lead_scoring.schema_version": b"1"})
    folder = lake / f"model=lead-scoring/dt={scored_at:%Y-%m-%d}/hour={scored_at:%H}"
    folder.mkdir(parents=True)
    pq.write_table(v1_table, folder / "old.parquet")
    # Shadow rows of the same leads (schema v2), in their own model partition.
    sink = ScoreSink(SinkConfig(uri=lake.as_uri(), spool_dir=tmp_path / "spool", feature_names=FEATURE_NAMES))
    shadow = sample_batch(40, scored_at=scored_at, seed=1, model_name="lead-scoring-shadow")
    sink.submit(shadow)
    sink.close()
    labels = np.arange(40) % 4 == 0
    occurred = [NOW - timedelta(hours=1)] * 40
    outcomes = outcome_sink(SinkConfig(uri=(lake / "_outcomes").as_uri(), spool_dir=tmp_path / "o-spool"))
    kinds = ["converted" if y else "disqualified" for y in labels]
    outcomes.submit(
        OutcomeBatch(
            request_id="r",
            received_at=NOW,
            source="api",
            api_key_name="crm",
            lead_ids=v2_like.lead_ids,
            outcomes=kinds,
            occurred_at=occurred,
            outcome_ids=[
                outcome_key(lead, k, t) for lead, k, t in zip(v2_like.lead_ids, kinds, occurred, strict=True)
            ],
            deal_values=[None] * 40,
            scoring_ids=[None] * 40,
            request_ids=[None] * 40,
        )
    )
    outcomes.close()

    result = measure(
        Lake(lake.as_uri()), Window(NOW - timedelta(days=1), NOW + timedelta(minutes=1), timedelta(days=90))
    )
    overall = {r["model_version"]: r for r in result.rows if r["tier"] == "all"}
    assert set(overall) == {"v-old", shadow.model_version}
    assert overall["v-old"]["labelled_leads"] == 40 and overall["v-old"]["conversions"] == 10
    assert {r["model_name"] for r in result.rows} == {"lead-scoring", "lead-scoring-shadow"}
    assert result.counts["unattributed_labels"] == 0


def test_the_report_states_the_label_window_as_given_and_the_attribution_rule():
    """A 0.5-day window was printed as "at most 0 days"; the heading said "latest scoring" though a scoring the
    outcome names by scoring_id takes precedence."""
    from quality.report import QualityResult, markdown

    def heading(label_window: timedelta) -> str:
        window = Window(NOW - timedelta(days=30), NOW, label_window)
        return markdown(QualityResult(window=window, run_at=NOW)).splitlines()[2]

    assert "at most 12 hours before the outcome" in heading(timedelta(days=0.5))
    assert "at most 90 days before the outcome" in heading(timedelta(days=90))
    assert "at most 1 day before the outcome" in heading(timedelta(days=1))
    assert "at most 1.5 days before the outcome" in heading(timedelta(days=1.5))
    assert "at most 36,525 days before the outcome" in heading(timedelta(days=36_525))
    assert "the scoring the outcome names by `scoring_id`, else on the latest scoring" in heading(
        timedelta(days=1)
    )
    assert heading(timedelta(days=1)).startswith("Leads whose first terminal outcome occurred ")
