"""`--metrics_port`: Prometheus metrics on a port of their own, and none on the public API port.

On Knative the API port is the one the queue-proxy forwards from the public ingress, and Kourier cannot block a
path, so /metrics there would hand anyone on the internet our traffic, outcomes, tier mix, model version and
drift (no keys or lead ids: tests/integration/test_observability_e2e.py checks the labels). A second,
undeclared port is reachable only at the pod IP: the queue-proxy proxies exactly USER_PORT and the Knative
Services target only the queue-proxy (docs/kubernetes.md, Metrics). prometheus_client's own HTTP server serves
the process registry there, the same registry KServe's /metrics renders.
"""

from __future__ import annotations

from prometheus_client import start_http_server

from transformer.serving.repository import answer_not_found

# Every interface: Prometheus scrapes the pod IP. Nothing public routes to this port (module docstring).
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # nosec B104
MOVED = "metrics are not served on this port; Prometheus scrapes them on the pod's separate metrics port"


def check_ports(metrics_port: int, *, http_port: int, grpc_port: int | None) -> None:
    """A clash would fail later with a bare 'address in use' from whichever server binds second."""
    taken = {"--http_port": http_port, **({"--grpc_port": grpc_port} if grpc_port else {})}
    for flag, port in taken.items():
        if metrics_port == port:
            raise ValueError(
                f"--metrics_port {metrics_port} is also {flag}: the metrics port must be a port of its own"
            )


def serve_metrics(port: int) -> None:
    """Start the scrape endpoint on a daemon thread (it lives as long as the process, through the drain)."""
    try:
        start_http_server(port, addr=_ALL_INTERFACES)
    except OSError as exc:
        raise ValueError(f"--metrics_port {port}: cannot listen ({exc.strerror or exc})") from None


class MetricsOnOwnPort:
    """Pure ASGI: GET /metrics on the API port answers 404 `{"error": ...}` before KServe's route can render it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].rstrip("/") == "/metrics":
            return await answer_not_found(send, MOVED)
        return await self.app(scope, receive, send)
