"""SIGTERM under steady load: readiness goes false first, no request fails, every record reaches the lake."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pyarrow.dataset as ds

from hack.stack import start_transformer
from predictor.synthetic import as_records, sample_features

LEADS = as_records(sample_features(5, seed=61))


def test_sigterm_during_load_loses_no_request_and_no_record(artifact, logs_dir, api_key, tmp_path):
    lake = tmp_path / "lake"
    server = start_transformer(
        artifact,
        logs_dir,
        api_keys=f"tests:{api_key}",
        extra_args=[
            "--sink_uri",
            lake.as_uri(),
            "--sink_spool_dir",
            str(tmp_path / "spool"),
            # Only the shutdown flush can deliver these records: neither count nor age would cut a file first.
            "--sink_flush_seconds",
            "600",
            "--sink_flush_records",
            "1000000",
            "--drain_delay_seconds",
            "2",
        ],
    )
    server.wait_ready()
    routable = threading.Event()
    routable.set()
    ok_ids: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def balancer():
        # What Knative does: stop routing to a replica once its readiness fails.
        while routable.is_set():
            try:
                if httpx.get(server.url + "/v2/health/ready", timeout=2).status_code != 200:
                    routable.clear()
            except httpx.HTTPError:
                routable.clear()
            time.sleep(0.05)

    def client(worker: int):
        with httpx.Client(base_url=server.url, headers={"x-api-key": api_key}, timeout=10) as http:
            n = 0
            while routable.is_set():
                rid = f"w{worker}-{n}"
                n += 1
                try:
                    response = http.post(
                        "/v1/models/lead-scoring:predict",
                        json={"instances": LEADS},
                        headers={"x-request-id": rid},
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{rid}: {type(exc).__name__}")
                    continue
                with lock:
                    (ok_ids if response.status_code == 200 else failures).append(
                        rid if response.status_code == 200 else f"{rid}: {response.status_code}"
                    )

    threads = [threading.Thread(target=balancer)] + [
        threading.Thread(target=client, args=(i,)) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    sent_before_term = len(ok_ids)
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert server.process.wait(60) == 0, server.log_tail()

    assert sent_before_term > 20, "the load never got going"
    assert failures == []
    table = ds.dataset(lake, format="parquet", partitioning="hive").to_table(columns=["request_id", "row"])
    stored = table.column("request_id").to_pylist()
    assert len(stored) == len(ok_ids) * len(LEADS)
    assert set(stored) == set(ok_ids)
    log = server.log_path.read_text()
    assert "SIGTERM: draining" in log and "flushing the data lake" in log
