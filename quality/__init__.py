"""Realised model quality: outcomes joined with the lake's scorings, measured per model version and tier.

    python -m quality.backfill crm-export.csv --lake <uri>      # bulk outcomes in (validated row by row)
    python -m quality.report --lake <uri> --out <uri>            # join + measure → Parquet, gauges, Markdown, PNG

See docs/model-quality.md. Domain code: no KServe, FastAPI or gRPC here.
"""
