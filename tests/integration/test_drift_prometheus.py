"""Drift signals end to end: PSI near zero for training-like traffic and high for shifted traffic, read from a real
Prometheus scraping the transformer."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from contract.features import FEATURE_INDEX, FEATURES
from hack.stack import start_transformer
from predictor.synthetic import sample_features
from tests.prometheus_server import PROMETHEUS, scalar, start_prometheus, stop, wait_until

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="prometheus not installed (make tools)")
WINDOW = 2000


def _send(server, api_key: str, x: np.ndarray) -> None:
    for i, f in enumerate(FEATURES):  # JSON tensors cannot carry NaN: fill like an enrichment default
        x[np.isnan(x[:, i]), i] = f.minimum
    with httpx.Client(base_url=server.url, headers={"x-api-key": api_key}, timeout=10) as http:
        for chunk in np.array_split(x, max(1, len(x) // 500)):
            body = {
                "inputs": [
                    {
                        "name": "leads",
                        "datatype": "FP32",
                        "shape": list(chunk.shape),
                        "data": chunk.ravel().tolist(),
                    }
                ]
            }
            assert http.post("/v2/models/lead-scoring/infer", json=body).status_code == 200


def _psi(prometheus: str, feature: str) -> float | None:
    return scalar(prometheus, f'lead_scoring_feature_psi{{feature="{feature}"}}')


def _trickle(server, api_key: str, x: np.ndarray, check):
    """Keep a little traffic flowing (the gauges are recomputed as requests arrive) until `check()` holds."""

    def condition():
        _send(server, api_key, x[:5].copy())
        return check()

    return condition


def test_psi_is_low_on_training_like_traffic_and_high_on_shifted_traffic(
    artifact, logs_dir, api_key, tmp_path
):
    server = start_transformer(
        artifact,
        logs_dir,
        api_keys=f"tests:{api_key}",
        extra_args=["--drift_window", str(WINDOW), "--drift_publish_seconds", "0.5"],
    )
    prometheus = None
    try:
        server.wait_ready()
        # Nothing measured yet: no PSI series at all (the score's read 0, i.e. "stable", on the dashboard).
        samples = [
            line
            for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines()
            if line.startswith(("lead_scoring_feature_psi", "lead_scoring_score_psi"))
        ]
        assert samples == []
        prometheus, url = start_prometheus(f"127.0.0.1:{server.http_port}", tmp_path)
        # Training-like leads, filled the same way as the shifted ones below so only the shift differs.
        _send(server, api_key, sample_features(WINDOW + 500, seed=901))
        calm = sample_features(100, seed=903)
        wait_until(
            _trickle(server, api_key, calm, lambda: _psi(url, "web_visits_30d") is not None),
            "PSI in Prometheus",
            process=prometheus,
        )
        calm_visits = _psi(url, "web_visits_30d")
        calm_score = scalar(url, "lead_scoring_score_psi")

        shifted = sample_features(WINDOW + 500, seed=902)
        shifted[:, FEATURE_INDEX["web_visits_30d"]] *= 5
        shifted[:, FEATURE_INDEX["demo_requested"]] = 1
        _send(server, api_key, shifted)
        wait_until(
            _trickle(server, api_key, shifted, lambda: (_psi(url, "web_visits_30d") or 0) > 0.25),
            "web_visits_30d drift in Prometheus",
            process=prometheus,
        )
        wait_until(
            lambda: (scalar(url, "lead_scoring_score_psi") or 0) > 0.25,
            "score drift in Prometheus",
            process=prometheus,
        )
        assert calm_visits < 0.1, calm_visits
        assert calm_score is not None and calm_score < 0.1, calm_score
        assert _psi(url, "region") < 0.1  # an untouched feature stays calm
        alert_expr = "max by (feature) (lead_scoring_feature_psi) > 0.25"
        assert scalar(url, alert_expr) is not None
    finally:
        if prometheus is not None:
            stop(prometheus)
        server.stop()
