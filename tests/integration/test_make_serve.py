"""`make serve` on a clone with a built venv: trains the default model, starts both servers, answers a curl with
its printed dev key and with a key the user gave in API_KEYS, records an outcome where quality.report looks for it
(the README's outcomes curl), and stops both cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.dataset as ds

from hack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_make_serve_answers_a_curl_within_a_minute(tmp_path):
    ports = {
        name: str(free_port())
        for name in (
            "TRANSFORMER_HTTP_PORT",
            "TRANSFORMER_GRPC_PORT",
            "PREDICTOR_HTTP_PORT",
            "PREDICTOR_GRPC_PORT",
        )
    }
    own_key = "mine-" + secrets.token_hex(12)
    env = {**os.environ, **ports, "API_KEYS": f"me:{own_key}"}
    env.pop("DEV_API_KEY", None)
    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"MODEL_DIR={tmp_path / 'model'}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        key = None
        while time.monotonic() - started < 60 and key is None:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            match = re.search(r"Dev API key: (\S+)", line)
            key = match.group(1) if match else None
        assert key, "".join(output)
        curl = subprocess.run(
            [
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                f"localhost:{ports['TRANSFORMER_HTTP_PORT']}/v1/models/lead-scoring:predict",
                "-H",
                f"X-API-Key: {key}",
                "-d",
                "@docs/examples/v1-instances.json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, status = curl.stdout.rsplit("\n", 1)
        assert status == "200", curl.stdout
        predictions = json.loads(body)["predictions"]
        assert [p["lead_id"] for p in predictions] == ["acme-001", "globex-042"]
        assert all(p["tier"] in "ABCDE" for p in predictions)
        assert (
            httpx.get(f"http://127.0.0.1:{ports['PREDICTOR_HTTP_PORT']}/v2/health/ready").status_code == 200
        )
        # API_KEYS=name:key make serve: that key is accepted too, and only its name is printed.
        with open(ROOT / "docs/examples/v1-instances.json", "rb") as example:
            body = example.read()
        url = f"http://127.0.0.1:{ports['TRANSFORMER_HTTP_PORT']}/v1/models/lead-scoring:predict"
        assert httpx.post(url, content=body, headers={"x-api-key": own_key}, timeout=30).status_code == 200
        assert (
            httpx.post(url, content=body, headers={"x-api-key": own_key + "x"}, timeout=30).status_code == 401
        )
        assert "API_KEYS: me" in "".join(output) and own_key not in "".join(output)
        lead = "serve-" + secrets.token_hex(6)
        occurred = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        outcome = httpx.post(
            f"http://127.0.0.1:{ports['TRANSFORMER_HTTP_PORT']}/v1/outcomes",
            json={"outcomes": [{"lead_id": lead, "outcome": "converted", "occurred_at": occurred}]},
            headers={"x-api-key": key},
            timeout=30,
        )
        assert outcome.status_code == 200 and outcome.json()["recorded"] == 1, outcome.text
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches make and its children
        rest, _ = process.communicate(timeout=60)
        output.append(rest)
    assert "stopping" in "".join(output)
    # Ctrl-C flushed it into the lake `make serve` names, under _outcomes/ (quality.report's place for outcomes).
    outcomes = ds.dataset(
        ROOT / "var" / "lake" / "_outcomes", format="parquet", partitioning="hive"
    ).to_table()
    assert lead in outcomes["lead_id"].to_pylist()
    for port in ports.values():
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            raise AssertionError(f"something still listens on {port} after Ctrl-C")
        except httpx.TransportError:
            pass
