"""Reference peers for `make bench` (issue 8): what a team would ship without this project, written small and fair.

* `stock_transformer` — the minimal KServe transformer: preprocess passes the V2 request through, KServe's default
  `predict` forwards it to the predictor over REST v2 or gRPC v2 (peers (a) and (b)).
* `fastapi_service` — a plain FastAPI service: pydantic `LeadFeatures`, API-key header, in-process
  `inplace_predict`, `TierMap`, one uvicorn worker (peer (c)).
* `workload` — the synthetic leads every target is sent, their request bodies and the booster's own scores.
* `launch` — starting the peers as real processes (the same way `hack.stack` starts ours).
* `stock_env` — a KServe-only venv the stock peers run from, so they load what a stock deployment loads.
* `measure` — wrk runs over rotating bodies, CPU and RSS from /proc, readiness timing.
* `stats` — per-round ratios, median and min–max spread, PASS/MISS verdicts flagged when the spread overlaps.
"""
