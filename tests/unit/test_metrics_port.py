"""The --metrics_port flag as parsed, and the guard that keeps /metrics off the API port (a fake inner app)."""

from __future__ import annotations

import asyncio
import sys

import orjson
import pytest

from transformer.serving.metrics_port import MetricsOnOwnPort, check_ports


def parse(argv: list[str], environ: dict[str, str]):
    from transformer.cli import build_parser

    saved, sys.argv = sys.argv, ["transformer"]  # kserve.model_server parses sys.argv on import
    try:
        return build_parser(environ).parse_args(argv)
    finally:
        sys.argv = saved


def test_metrics_port_is_unset_by_default_and_read_from_the_environment():
    assert parse([], {}).metrics_port is None
    assert parse([], {"METRICS_PORT": "9095"}).metrics_port == 9095
    assert parse(["--metrics_port", "9100"], {"METRICS_PORT": "9095"}).metrics_port == 9100


@pytest.mark.parametrize("value", ["0", "65536", "-1"])
def test_metrics_port_outside_the_tcp_range_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(["--metrics_port", value], {})
    assert exit_.value.code == 2
    assert "must be a TCP port 1-65535" in capsys.readouterr().err


def test_a_metrics_port_shared_with_a_server_port_is_named():
    check_ports(9095, http_port=8080, grpc_port=8081)
    check_ports(8081, http_port=8080, grpc_port=None)  # gRPC disabled: 8081 is free
    with pytest.raises(ValueError, match="--metrics_port 8080 is also --http_port"):
        check_ports(8080, http_port=8080, grpc_port=8081)
    with pytest.raises(ValueError, match="--metrics_port 8081 is also --grpc_port"):
        check_ports(8081, http_port=8080, grpc_port=8081)


def call(path: str) -> tuple[int | None, bytes, bool]:
    reached = []

    async def inner(scope, receive, send):
        reached.append(scope["path"])

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(MetricsOnOwnPort(inner)({"type": "http", "path": path, "method": "GET"}, None, send))
    status = sent[0]["status"] if sent else None
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, body, bool(reached)


def test_guard_answers_metrics_itself_and_passes_everything_else():
    status, body, reached = call("/metrics")
    assert (status, reached) == (404, False)
    assert set(orjson.loads(body)) == {"error"}
    for path in ("/v2/health/ready", "/v1/models/lead-scoring:predict", "/metricsx"):
        assert call(path) == (None, b"", True), path
