"""The upstream fact behind transformer/serving/event_loop.py: a one-worker `kserve.ModelServer` runs on asyncio's
own loop whatever its `event_loop` says (kserve 0.21: `start()` awaits uvicorn's `Server.serve()` inside its own
`asyncio.run`, and uvicorn applies `loop=` only in `Server.run()`). If a KServe upgrade starts honouring the flag,
this fails, and the transformer's default and docs/performance.md's thirteenth pass need another look."""

from __future__ import annotations

import subprocess
import sys

import httpx

from hack.stack import Server, free_port

# A stock ModelServer asked for uvloop, whose model answers with the package of the loop it runs on.
_STOCK_SERVER = """
import asyncio, sys
from kserve import Model, ModelServer

class LoopReporter(Model):
    def __init__(self):
        super().__init__("loop-reporter")
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [type(asyncio.get_running_loop()).__module__]}

ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, event_loop="uvloop").start([LoopReporter()])
"""


def test_a_one_worker_kserve_server_asked_for_uvloop_runs_on_asyncios_loop(tmp_path):
    port = free_port()
    log_path = tmp_path / "stock.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _STOCK_SERVER, str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    server = Server("stock-model-server", process, port, 0, log_path)
    try:
        server.wait_ready(path="/v1/models/loop-reporter")
        answer = httpx.post(
            f"{server.url}/v1/models/loop-reporter:predict", json={"instances": [[1]]}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == ["asyncio.unix_events"], server.log_tail()
    finally:
        server.stop()
