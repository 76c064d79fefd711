"""SIGTERM under steady load: readiness goes false first, no request fails, every record reaches the lake."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import httpx
import pyarrow.dataset as ds

from hack.stack import start_transformer
from predictor.synthetic import as_records, sample_features

LEADS = as_records(sample_features(5, seed=61))


def start_with_lake(artifact, logs_dir, api_key, tmp_path, *extra: str):
    """A transformer with a file:// lake at tmp_path/lake and its spool at tmp_path/spool."""
    return start_transformer(
        artifact,
        logs_dir,
        api_keys=f"tests:{api_key}",
        extra_args=[
            "--sink_uri",
            (tmp_path / "lake").as_uri(),
            "--sink_spool_dir",
            str(tmp_path / "spool"),
            *extra,
        ],
    )


def test_sigterm_during_load_loses_no_request_and_no_record(artifact, logs_dir, api_key, tmp_path):
    lake = tmp_path / "lake"
    server = start_with_lake(
        artifact,
        logs_dir,
        api_key,
        tmp_path,
        # Only the shutdown flush can deliver these records: neither count nor age would cut a file first.
        "--sink_flush_seconds",
        "600",
        "--sink_flush_records",
        "1000000",
        "--drain_delay_seconds",
        "2",
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


def test_the_grpc_and_http_drains_share_one_deadline(artifact, logs_dir, api_key, tmp_path):
    """A gRPC call and an HTTP upload that never finish, at SIGTERM: the servers get `--drain_seconds` together,
    then the lake flush its own. They used to get it one after the other (gRPC, then uvicorn), so the pod needed
    queue-proxy + delay + 3 × drain_seconds and the kubelet's SIGKILL could cut the flush short."""
    drain_seconds, delay = 5.0, 0.5
    server = start_with_lake(
        artifact,
        logs_dir,
        api_key,
        tmp_path,
        "--drain_delay_seconds",
        str(delay),
        "--drain_seconds",
        str(drain_seconds),
    )
    server.wait_ready()
    stuck_grpc = subprocess.Popen(  # HTTP/2 with its body still to come: a call the gRPC server cannot finish
        [
            "curl", "-s", "--http2-prior-knowledge", "-T", "-",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-H", f"x-api-key: {api_key}",
            f"http://127.0.0.1:{server.grpc_port}/inference.GRPCInferenceService/ModelInfer",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stuck_grpc.stdin.write(b"\x00\x00\x00\x10\x00")  # a frame header announcing 4 KiB, and none of it
    stuck_grpc.stdin.flush()
    upload = socket.create_connection(("127.0.0.1", server.http_port))
    upload.sendall(
        b"POST /v1/models/lead-scoring:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-api-key: " + api_key.encode() + b'\r\nContent-Length: 100000\r\n\r\n{"instances": ['
    )
    try:
        time.sleep(1)  # both requests are in flight
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0, server.log_tail()
        took = time.monotonic() - started
    finally:
        upload.close()
        stuck_grpc.kill()
        stuck_grpc.wait(10)
    # One deadline: delay + drain_seconds (+ an empty flush and process exit); two would be at least delay + 10 s.
    assert delay + drain_seconds - 0.5 < took < delay + drain_seconds + 3, (took, server.log_tail())
