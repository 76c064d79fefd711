"""Graceful drain on SIGTERM, in the order a load balancer needs:

1. readiness answers 503 at once, so Knative / the Service stops routing new requests here;
2. requests keep being served for `--drain_delay_seconds` while routing catches up;
3. the gRPC server stops taking calls and finishes those in flight;
4. uvicorn stops accepting connections and finishes in-flight HTTP requests;
5. the app's lifespan ends: the data lake is flushed to the spool and uploaded within `--drain_seconds`.

Steps 3 and 4 share one `--drain_seconds` deadline (HTTP keeps serving while gRPC stops, and uvicorn gets what is
left): each used to get the whole of it, one after the other, so a slow gRPC call and a slow upload together took
the flush's time and the kubelet's SIGKILL could land in the middle of the flush. The pod's budget is
queue-proxy drain + delay + drain_seconds (servers) + drain_seconds (flush) (tests/deploy/test_drain_budget.py).

KServe's ModelServer and uvicorn both install SIGTERM handlers; this one is installed last (from the app's lifespan,
inside the running server) and hands over to uvicorn's own handler when the delay has passed.
"""

from __future__ import annotations

import asyncio
import logging
import signal

log = logging.getLogger("transformer")


class Drain:
    def __init__(self, delay_seconds: float, drain_seconds: float):
        self.delay_seconds = delay_seconds
        self.drain_seconds = drain_seconds
        self.draining = False
        self._model_server = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._uvicorn_handler = None
        self._task: asyncio.Task | None = None

    def attach(self, model_server) -> None:
        self._model_server = model_server

    def install(self) -> None:
        """Call from inside the running server (after uvicorn captured the signals)."""
        self._loop = asyncio.get_running_loop()
        self._uvicorn_handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self._loop.call_soon_threadsafe(self._begin)

    def _begin(self) -> None:
        if self.draining:
            return
        self.draining = True
        log.info("SIGTERM: draining", extra={"delay_seconds": self.delay_seconds})
        self._task = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        await asyncio.sleep(self.delay_seconds)
        deadline = self._loop.time() + self.drain_seconds
        grpc_server = getattr(self._model_server, "_grpc_server", None)
        if grpc_server is not None:
            await grpc_server.stop(signal.SIGTERM)  # its grace period is drain_seconds
        rest_server = getattr(self._model_server, "_rest_server", None)
        if rest_server is not None:
            # uvicorn reads this when its shutdown starts, after this handler: what the gRPC stop left.
            rest_server.config.timeout_graceful_shutdown = max(0.0, deadline - self._loop.time())
        log.info("drain: stopping the HTTP server after in-flight requests")
        if callable(self._uvicorn_handler):
            self._uvicorn_handler(signal.SIGTERM, None)
