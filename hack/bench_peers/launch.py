"""Start the reference peers as real processes on loopback, like `hack.stack` starts ours (same Server handle)."""

from __future__ import annotations

from pathlib import Path

from hack.stack import MODEL_NAME, Server, _spawn, free_port


def start_stock_transformer(log_dir: Path, predictor: str, protocol: str) -> Server:
    http_port, grpc_port = free_port(), free_port()
    # Latency logging off, as on the predictor: four log lines per request would be a cost of the setup, not of KServe.
    return _spawn(f"stock-transformer-{protocol}",
                  ["-m", "hack.bench_peers.stock_transformer", "--model_name", MODEL_NAME,
                   "--predictor_host", predictor, "--predictor_protocol", protocol,
                   "--http_port", str(http_port), "--grpc_port", str(grpc_port), "--enable_latency_logging", "false"],
                  log_dir, None, http_port, grpc_port)


def start_fastapi_service(model_dir: Path, log_dir: Path, api_key: str) -> Server:
    port = free_port()
    return _spawn("fastapi-peer", ["-m", "hack.bench_peers.fastapi_service", "--model-dir", str(model_dir),
                                   "--port", str(port)], log_dir, {"PEER_API_KEY": api_key}, port, 0)
