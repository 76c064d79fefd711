"""Batch scoring: a whole CRM export (CSV or Parquet; local, S3 or Azure Blob) scored with the online path's contract,
validation, booster, tiers and reason codes, sharded across the pods of a Kubernetes Indexed Job.

`python -m batch --input URI --output URI --model URI` — see docs/batch.md. Imports no serving framework.
"""
