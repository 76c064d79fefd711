"""Peer (c): a plain FastAPI scoring service, the design a team would write first without KServe.

    PEER_API_KEY=secret python -m hack.bench_peers.fastapi_service --model-dir predictor/model --port 8080

POST /score        one lead object (the 50 named features)  → {"score", "bucket", "tier"}
POST /score/batch  {"leads": [lead, ...]}                    → {"results": [...]}
GET  /healthz      200 once the booster is loaded
Header `x-api-key` must equal $PEER_API_KEY. Validation is the pydantic model itself (422 on a bad lead).
The uvicorn access log is off: one fewer cost than the seed had, so the peer is, if anything, flattered.
"""

from __future__ import annotations

import argparse
import hmac
import math
import os
from pathlib import Path

import numpy as np
import uvicorn
import xgboost as xgb
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from contract.features import LeadFeatures
from contract.model_card import find_booster, load_card


class LeadBatch(BaseModel):
    leads: list[LeadFeatures] = Field(min_length=1, max_length=1000)


def _row(lead: LeadFeatures) -> list[float]:
    # Field order is the booster's feature order; None is a missing value for xgboost.
    return [math.nan if value is None else float(value) for value in lead.__dict__.values()]


def build_app(model_dir: Path, api_key: str) -> FastAPI:
    booster = xgb.Booster(params={"nthread": 1}, model_file=bytearray(find_booster(model_dir).read_bytes()))
    tier_map = load_card(model_dir).tier_map
    expected = api_key.encode()
    app = FastAPI(title="lead scoring (plain FastAPI peer)")

    def check_key(value: str | None) -> None:
        if value is None or not hmac.compare_digest(value.encode(), expected):
            raise HTTPException(status_code=401, detail="missing or unknown API key")

    def score(rows: list[list[float]]) -> list[dict]:
        scores = booster.inplace_predict(np.asarray(rows, dtype=np.float32), missing=np.nan)
        buckets = tier_map.buckets(scores)
        tiers = tier_map.tiers(buckets)
        return [
            {"score": float(s), "bucket": int(b), "tier": str(t)}
            for s, b, t in zip(scores, buckets, tiers, strict=True)
        ]

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/score")
    async def score_one(lead: LeadFeatures, x_api_key: str | None = Header(default=None)) -> dict:
        check_key(x_api_key)
        return score([_row(lead)])[0]

    @app.post("/score/batch")
    async def score_batch(batch: LeadBatch, x_api_key: str | None = Header(default=None)) -> dict:
        check_key(x_api_key)
        return {"results": score([_row(lead) for lead in batch.leads])}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hack.bench_peers.fastapi_service")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    api_key = os.environ.get("PEER_API_KEY")
    if not api_key:
        raise SystemExit("PEER_API_KEY is required")
    uvicorn.run(
        build_app(args.model_dir, api_key),
        host="127.0.0.1",
        port=args.port,
        workers=1,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
